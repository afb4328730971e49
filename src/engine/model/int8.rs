//! Q8_0 weights in the layout the browser's matmul wants, and that matmul.
//!
//! candle's Q8_0 kernel for wasm32 converts two f16 scales per 32-value block in software
//! (wasm has no f16 instructions) and works one weight row at a time. Here the rows are packed
//! in groups of four at load: for each block, the four rows' scales as f32, then their four
//! 32-quant runs, 144 bytes read front to back. A decode step then streams every weight once,
//! in order, and each activation block is widened once for four rows, whose four sums are
//! scaled together in one vector. The quants are the file's own, so the result equals
//! candle's up to the summation order and the activation scale (f32 here, f16 in candle).

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor, D};

/// Values per quantization block.
const BLOCK: usize = 32;
/// Bytes of one Q8_0 block in a GGUF file: an f16 scale, then 32 signed quants.
const BLOCK_BYTES: usize = 2 + BLOCK;
/// Rows packed together.
const GROUP: usize = 4;
/// Bytes of one block of a group: four f32 scales, then four runs of 32 quants.
const GROUP_BLOCK_BYTES: usize = GROUP * 4 + GROUP * BLOCK;

/// A `[rows, cols]` matrix of Q8_0 blocks, packed four rows at a time (the last group padded
/// with zero rows).
#[derive(Debug)]
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    packed: Vec<u8>,
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

    /// Packs a Q8_0 `[rows, cols]` tensor.
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
        let blocks = cols / BLOCK;
        if cols % BLOCK != 0 || data.len() != rows * blocks * BLOCK_BYTES {
            candle_core::bail!(
                "a Q8_0 [{rows}, {cols}] matrix holds {} bytes, not {}",
                data.len(),
                rows * blocks * BLOCK_BYTES
            );
        }
        let mut packed = vec![0u8; rows.div_ceil(GROUP) * blocks * GROUP_BLOCK_BYTES];
        for (row, source) in data.chunks_exact(blocks * BLOCK_BYTES).enumerate() {
            for (b, block) in source.chunks_exact(BLOCK_BYTES).enumerate() {
                let at = Self::offset(row, b, blocks);
                let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                let lane = row % GROUP;
                packed[at + 4 * lane..at + 4 * lane + 4].copy_from_slice(&scale.to_le_bytes());
                let quants = at + GROUP * 4 + BLOCK * lane;
                packed[quants..quants + BLOCK].copy_from_slice(&block[2..]);
            }
        }
        Ok(Self { rows, cols, packed })
    }

    /// Where block `b` of `row`'s group starts.
    fn offset(row: usize, b: usize, blocks: usize) -> usize {
        ((row / GROUP) * blocks + b) * GROUP_BLOCK_BYTES
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Row `row`, dequantized (an embedding lookup).
    pub fn row(&self, row: usize) -> Vec<f32> {
        let blocks = self.cols / BLOCK;
        let lane = row % GROUP;
        (0..blocks)
            .flat_map(|b| {
                let at = Self::offset(row, b, blocks);
                let s = &self.packed[at + 4 * lane..at + 4 * lane + 4];
                let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                let quants = at + GROUP * 4 + BLOCK * lane;
                self.packed[quants..quants + BLOCK]
                    .iter()
                    .map(move |&q| q as i8 as f32 * scale)
            })
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
        let blocks = cols / BLOCK;
        let group_bytes = blocks * GROUP_BLOCK_BYTES;
        let mut out = vec![0f32; m * self.rows];
        // One group of rows at a time, every activation row against it while it is hot.
        for (g, group) in self.packed.chunks_exact(group_bytes).enumerate() {
            let first = g * GROUP;
            let valid = (self.rows - first).min(GROUP);
            for r in 0..m {
                let x = (
                    &xq.quants[r * cols..(r + 1) * cols],
                    &xq.scales[r * blocks..(r + 1) * blocks],
                );
                let dots = dot4(x, group);
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

/// One activation row: its quants and its per-block scales.
type Row<'a> = (&'a [i8], &'a [f32]);

/// Dot products of one activation row with the four rows of a packed group.
fn dot4(x: Row, group: &[u8]) -> [f32; 4] {
    assert!(
        x.0.len() == x.1.len() * BLOCK && group.len() == x.1.len() * GROUP_BLOCK_BYTES,
        "int8 matmul: activation and weight group disagree in length"
    );
    #[cfg(target_arch = "wasm32")]
    {
        simd128::dot4(x, group)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        portable_dot4(x, group)
    }
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_dot4((xq, xs): Row, group: &[u8]) -> [f32; 4] {
    let mut acc = [0f32; GROUP];
    for ((x, &x_scale), block) in xq
        .chunks_exact(BLOCK)
        .zip(xs)
        .zip(group.chunks_exact(GROUP_BLOCK_BYTES))
    {
        let (scales, quants) = block.split_at(GROUP * 4);
        for (lane, acc) in acc.iter_mut().enumerate() {
            let s = &scales[4 * lane..4 * lane + 4];
            let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            let w = &quants[BLOCK * lane..BLOCK * (lane + 1)];
            let dot: i32 = x
                .iter()
                .zip(w)
                .map(|(&a, &b)| a as i32 * b as i8 as i32)
                .sum();
            *acc += dot as f32 * (x_scale * scale);
        }
    }
    acc
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use std::arch::wasm32::*;

    use super::{Row, BLOCK, GROUP, GROUP_BLOCK_BYTES};

    /// The products of one row's 32 quants with the widened activation block, summed
    /// pairwise into four i32 lanes.
    ///
    /// # Safety
    /// `w` must point at 32 readable bytes.
    #[inline(always)]
    unsafe fn row_dot(x: &[v128; 4], w: *const u8) -> v128 {
        let low = i32x4_add(
            i32x4_dot_i16x8(i16x8_load_extend_i8x8(w as *const i8), x[0]),
            i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(8) as *const i8), x[1]),
        );
        let high = i32x4_add(
            i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(16) as *const i8), x[2]),
            i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(24) as *const i8), x[3]),
        );
        i32x4_add(low, high)
    }

    /// `[Σa, Σb, Σc, Σd]`: the lanes of four vectors summed, one vector per output lane.
    #[inline(always)]
    fn transpose_sum(a: v128, b: v128, c: v128, d: v128) -> v128 {
        let ab = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(a, b),
            i32x4_shuffle::<2, 6, 3, 7>(a, b),
        );
        let cd = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(c, d),
            i32x4_shuffle::<2, 6, 3, 7>(c, d),
        );
        i32x4_add(
            i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
            i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
        )
    }

    pub(super) fn dot4((xq, xs): Row, group: &[u8]) -> [f32; 4] {
        let mut acc = f32x4_splat(0.0);
        for (b, &x_scale) in xs.iter().enumerate() {
            // SAFETY: `dot4` checked that the activation row holds `xs.len()` blocks of 32
            // quants and the group `xs.len()` blocks of GROUP_BLOCK_BYTES.
            unsafe {
                let xp = xq.as_ptr().add(b * BLOCK);
                let x = [
                    i16x8_load_extend_i8x8(xp),
                    i16x8_load_extend_i8x8(xp.add(8)),
                    i16x8_load_extend_i8x8(xp.add(16)),
                    i16x8_load_extend_i8x8(xp.add(24)),
                ];
                let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
                let scales = v128_load(at as *const v128);
                let w = at.add(GROUP * 4);
                let sums = transpose_sum(
                    row_dot(&x, w),
                    row_dot(&x, w.add(BLOCK)),
                    row_dot(&x, w.add(2 * BLOCK)),
                    row_dot(&x, w.add(3 * BLOCK)),
                );
                let scale = f32x4_mul(scales, f32x4_splat(x_scale));
                acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(sums), scale));
            }
        }
        [
            f32x4_extract_lane::<0>(acc),
            f32x4_extract_lane::<1>(acc),
            f32x4_extract_lane::<2>(acc),
            f32x4_extract_lane::<3>(acc),
        ]
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
