//! Q8_0 weights in the layout the browser's matmul wants, and that matmul.
//!
//! candle's Q8_0 kernel for wasm32 converts two f16 scales per 32-value block in software
//! (wasm has no f16 instructions) and reloads the activation block for every weight row. Here
//! the weight scales are widened to f32 once, at load, and each activation block is loaded
//! once for four weight rows. The quants are the file's own, so the result equals candle's up
//! to the summation order and the activation scale (f32 here, f16 in candle).

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor, D};

/// Values per quantization block.
const BLOCK: usize = 32;
/// Bytes of one Q8_0 block in a GGUF file: an f16 scale, then 32 signed quants.
const BLOCK_BYTES: usize = 2 + BLOCK;

/// A `[rows, cols]` matrix of Q8_0 blocks: quants row by row, and one f32 scale per block.
#[derive(Debug)]
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    quants: Vec<i8>,
    scales: Vec<f32>,
}

/// Rows of activations quantized to 8 bits per block, as the weights are.
struct Quantized {
    quants: Vec<i8>,
    scales: Vec<f32>,
}

impl Int8Matrix {
    /// Whether `weight` is served by this matmul on this target: Q8_0 matrices, in wasm32
    /// only (natively candle's AVX2 kernel is the faster one).
    pub fn serves(weight: &QTensor) -> bool {
        cfg!(target_arch = "wasm32") && Self::fits(weight)
    }

    fn fits(weight: &QTensor) -> bool {
        weight.dtype() == GgmlDType::Q8_0 && weight.shape().rank() == 2
    }

    /// Re-lays a Q8_0 `[rows, cols]` tensor.
    pub fn from_qtensor(weight: &QTensor) -> Result<Self> {
        if !Self::fits(weight) {
            candle_core::bail!(
                "an int8 matrix needs a Q8_0 matrix, not {:?} {:?}",
                weight.dtype(),
                weight.shape()
            );
        }
        let (rows, cols) = weight.shape().dims2()?;
        let data = weight.data()?;
        let blocks = rows * cols / BLOCK;
        if cols % BLOCK != 0 || data.len() != blocks * BLOCK_BYTES {
            candle_core::bail!(
                "a Q8_0 [{rows}, {cols}] matrix holds {} bytes, not {}",
                data.len(),
                blocks * BLOCK_BYTES
            );
        }
        let mut quants = Vec::with_capacity(rows * cols);
        let mut scales = Vec::with_capacity(blocks);
        for block in data.chunks_exact(BLOCK_BYTES) {
            scales.push(half::f16::from_le_bytes([block[0], block[1]]).to_f32());
            quants.extend(block[2..].iter().map(|&q| q as i8));
        }
        Ok(Self {
            rows,
            cols,
            quants,
            scales,
        })
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Row `row`, dequantized (an embedding lookup).
    pub fn row(&self, row: usize) -> Vec<f32> {
        let quants = &self.quants[row * self.cols..(row + 1) * self.cols];
        let scales = &self.scales[row * self.cols / BLOCK..(row + 1) * self.cols / BLOCK];
        quants
            .chunks_exact(BLOCK)
            .zip(scales)
            .flat_map(|(block, &scale)| block.iter().map(move |&q| q as f32 * scale))
            .collect()
    }

    /// `xs Wᵀ` for `[.., cols]` activations, shaped `[.., rows]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let cols = xs.dim(D::Minus1)?;
        if cols != self.cols {
            candle_core::bail!(
                "int8 matmul: inputs of {cols} values against a [{}, {}] weight",
                self.rows,
                self.cols
            );
        }
        let values = xs.flatten_all()?.to_vec1::<f32>()?;
        let m = values.len() / cols;
        let xq = quantize(&values, cols);
        let mut out = vec![0f32; m * self.rows];
        let col_blocks = self.cols / BLOCK;
        let weights = |row: usize| {
            let row = row.min(self.rows - 1);
            (
                &self.quants[row * self.cols..(row + 1) * self.cols],
                &self.scales[row * col_blocks..(row + 1) * col_blocks],
            )
        };
        // Four weight rows at a time, every activation row against them while they are hot.
        for first in (0..self.rows).step_by(4) {
            let group = [
                weights(first),
                weights(first + 1),
                weights(first + 2),
                weights(first + 3),
            ];
            let valid = (self.rows - first).min(4);
            for r in 0..m {
                let x = (
                    &xq.quants[r * cols..(r + 1) * cols],
                    &xq.scales[r * col_blocks..(r + 1) * col_blocks],
                );
                let dots = dot4(x, &group);
                out[r * self.rows + first..r * self.rows + first + valid]
                    .copy_from_slice(&dots[..valid]);
            }
        }
        let mut shape = xs.dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = self.rows;
        }
        Tensor::from_vec(out, shape, &Device::Cpu)
    }
}

/// Quantizes rows of `cols` values (a multiple of [`BLOCK`]) block by block, with the scale
/// that maps each block's largest magnitude to 127.
fn quantize(values: &[f32], cols: usize) -> Quantized {
    debug_assert_eq!(cols % BLOCK, 0);
    let mut quants = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / BLOCK);
    for block in values.chunks_exact(BLOCK) {
        let max = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = max / 127.0;
        let inverse = if scale == 0.0 { 0.0 } else { 1.0 / scale };
        scales.push(scale);
        quants.extend(block.iter().map(|x| (x * inverse).round() as i8));
    }
    Quantized { quants, scales }
}

type Row<'a> = (&'a [i8], &'a [f32]);

/// Dot products of one activation row with four weight rows.
fn dot4(x: Row, w: &[Row; 4]) -> [f32; 4] {
    #[cfg(target_arch = "wasm32")]
    {
        simd128::dot4(x, w)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        portable_dot4(x, w)
    }
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_dot4((xq, xs): Row, w: &[Row; 4]) -> [f32; 4] {
    w.map(|(wq, ws)| {
        xq.chunks_exact(BLOCK)
            .zip(wq.chunks_exact(BLOCK))
            .zip(xs.iter().zip(ws))
            .map(|((a, b), (sa, sb))| {
                let dot: i32 = a.iter().zip(b).map(|(&a, &b)| a as i32 * b as i32).sum();
                dot as f32 * (sa * sb)
            })
            .sum()
    })
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use std::arch::wasm32::*;

    use super::{Row, BLOCK};

    /// The 16-bit products of a block's 32 quants, summed pairwise into four i32 lanes.
    #[inline(always)]
    fn block_dot(x: [v128; 4], w: *const i8) -> v128 {
        // SAFETY: the caller passes the start of a whole 32-quant block.
        let (w0, w1) = unsafe {
            (
                v128_load(w as *const v128),
                v128_load(w.add(16) as *const v128),
            )
        };
        let low = i32x4_add(
            i32x4_dot_i16x8(i16x8_extend_low_i8x16(w0), x[0]),
            i32x4_dot_i16x8(i16x8_extend_high_i8x16(w0), x[1]),
        );
        let high = i32x4_add(
            i32x4_dot_i16x8(i16x8_extend_low_i8x16(w1), x[2]),
            i32x4_dot_i16x8(i16x8_extend_high_i8x16(w1), x[3]),
        );
        i32x4_add(low, high)
    }

    fn sum(v: v128) -> f32 {
        f32x4_extract_lane::<0>(v)
            + f32x4_extract_lane::<1>(v)
            + f32x4_extract_lane::<2>(v)
            + f32x4_extract_lane::<3>(v)
    }

    pub(super) fn dot4((xq, xs): Row, w: &[Row; 4]) -> [f32; 4] {
        let mut acc = [f32x4_splat(0.0); 4];
        for (b, &x_scale) in xs.iter().enumerate() {
            let at = b * BLOCK;
            // SAFETY: every row holds `xs.len()` whole blocks (checked when the matrix and the
            // activations were built), so `at..at + 32` is inside each of them.
            let x = unsafe {
                let p = xq.as_ptr().add(at);
                let (x0, x1) = (
                    v128_load(p as *const v128),
                    v128_load(p.add(16) as *const v128),
                );
                [
                    i16x8_extend_low_i8x16(x0),
                    i16x8_extend_high_i8x16(x0),
                    i16x8_extend_low_i8x16(x1),
                    i16x8_extend_high_i8x16(x1),
                ]
            };
            for (acc, (wq, ws)) in acc.iter_mut().zip(w) {
                let dot = block_dot(x, unsafe { wq.as_ptr().add(at) });
                let scale = f32x4_splat(x_scale * ws[b]);
                *acc = f32x4_add(*acc, f32x4_mul(f32x4_convert_i32x4(dot), scale));
            }
        }
        acc.map(sum)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use candle_core::quantized::QMatMul;
    use candle_core::Module;

    use super::*;

    fn values(rows: usize, cols: usize, seed: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 31 + seed) as f32 * 0.37).sin() * (1.0 + (i % 7) as f32))
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn matches_candle_s_q8_0_matmul_for_decode_and_prefill() {
        // 7 rows: one full group of four and a group of three.
        let weight = QTensor::quantize(&values(7, 96, 1), GgmlDType::Q8_0).unwrap();
        let ours = Int8Matrix::from_qtensor(&weight).unwrap();
        assert_eq!(ours.dims(), (7, 96));
        let candle = QMatMul::from_qtensor(weight).unwrap();
        for m in [1, 5] {
            let xs = values(m, 96, 2).reshape((1, m, 96)).unwrap();
            let got = ours.forward(&xs).unwrap();
            assert_eq!(got.dims(), [1, m, 7]);
            let expected = candle.forward(&xs).unwrap();
            let diff = max_abs(&(&got - &expected).unwrap());
            assert!(
                diff <= 2e-3 * max_abs(&expected),
                "m {m}: max abs diff {diff}"
            );
        }
    }

    #[test]
    fn rows_dequantize_as_candle_does() {
        let weight = QTensor::quantize(&values(3, 64, 5), GgmlDType::Q8_0).unwrap();
        let dense = weight.dequantize(&Device::Cpu).unwrap();
        let ours = Int8Matrix::from_qtensor(&weight).unwrap();
        for row in 0..3 {
            let expected = dense.get(row).unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(ours.row(row), expected);
        }
    }

    #[test]
    fn refuses_other_types_and_wrong_widths() {
        let f32_weight = QTensor::quantize(&values(2, 32, 1), GgmlDType::F32).unwrap();
        let err = Int8Matrix::from_qtensor(&f32_weight)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a Q8_0 matrix"), "{err}");
        let weight = QTensor::quantize(&values(2, 64, 1), GgmlDType::Q8_0).unwrap();
        let ours = Int8Matrix::from_qtensor(&weight).unwrap();
        let err = ours.forward(&values(1, 32, 1)).unwrap_err().to_string();
        assert!(
            err.contains("inputs of 32 values against a [2, 64] weight"),
            "{err}"
        );
        assert_eq!(Int8Matrix::serves(&weight), cfg!(target_arch = "wasm32"));
    }
}
