//! A weight matrix whose matmul runs in `mimir-kernels` rather than candle: Q8_0 and Q4_1
//! packed for the int8 and int4 matmuls, and the K-quants (Q4_K, Q5_K, Q6_K) as the file
//! stores them.
//!
//! candle's Q8_0 kernel for wasm32 converts two f16 scales per 32-value block in software
//! (wasm has no f16 instructions) and works one weight row at a time; natively its AVX kernel
//! also goes row by row. The packed layout (four rows per group, f32 scales, one stream per
//! decode step) is described in [`mimir_kernels::int8`]. candle's SIMD128 code for Q4_K and
//! Q6_K widens every product to i32, and Q5_K has none; [`mimir_kernels::kquant`] says what
//! it does instead; natively the kernels' AVX2 code is llama.cpp's approach. candle has no
//! SIMD code for Q4_1 at all ([`mimir_kernels::int4`]). bench/NOTES.md has what each gains.
//! The quants are the file's own (in wasm32 the K-quants' moved within each super-block), so
//! results equal candle's up to the summation order and the activations' rounding.

use std::borrow::Cow;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor, D};
use mimir_kernels::kquant::{self, KQuant};
use mimir_kernels::{int4, int8};

/// A `[rows, cols]` matrix in one of the kernels' layouts.
#[derive(Debug)]
pub struct KernelMatrix {
    rows: usize,
    cols: usize,
    layout: Layout,
    bytes: Vec<u8>,
}

/// How [`KernelMatrix::bytes`] are laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// Q8_0 packed four rows at a time ([`int8::pack_q8_0`]).
    Int8,
    /// Q4_1 packed four rows at a time ([`int4::pack_q4_1`]).
    Int4,
    /// A K-quant, rows of super-blocks as GGUF stores them, each super-block's quants
    /// re-laid in place into the interleaved order the kernels read ([`kquant::pack`]).
    KQuant(KQuant),
}

impl Layout {
    fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q8_0 => Some(Layout::Int8),
            GgmlDType::Q4_1 => Some(Layout::Int4),
            GgmlDType::Q4K => Some(Layout::KQuant(KQuant::Q4K)),
            GgmlDType::Q5K => Some(Layout::KQuant(KQuant::Q5K)),
            GgmlDType::Q6K => Some(Layout::KQuant(KQuant::Q6K)),
            _ => None,
        }
    }

    /// Whether the kernel has SIMD code for this machine (else candle's is the faster one).
    fn accelerated(self) -> bool {
        match self {
            Layout::Int8 => int8::accelerated(),
            Layout::Int4 => int4::accelerated(),
            Layout::KQuant(_) => kquant::accelerated(),
        }
    }
}

impl KernelMatrix {
    /// Whether `weight` is served by the kernels here: a Q8_0, Q4_1 or K-quant matrix, where
    /// the kernels have SIMD code for the machine (wasm32's SIMD128, x86-64's AVX2); elsewhere
    /// candle's kernels are the faster ones.
    pub fn serves(weight: &QTensor) -> bool {
        Self::serves_type(weight.dtype(), weight.shape().rank())
    }

    /// [`KernelMatrix::serves`] for a tensor of `dtype` with `rank` dimensions.
    pub fn serves_type(dtype: GgmlDType, rank: usize) -> bool {
        rank == 2 && Layout::of(dtype).is_some_and(Layout::accelerated)
    }

    /// A `[rows, cols]` tensor of a type the kernels read, in their layout.
    pub fn from_qtensor(weight: &QTensor) -> Result<Self> {
        if weight.shape().rank() != 2 || Layout::of(weight.dtype()).is_none() {
            candle_core::bail!(
                "a kernel matrix needs a Q8_0, Q4_1, Q4_K, Q5_K or Q6_K matrix, not {:?} {:?}",
                weight.dtype(),
                weight.shape()
            );
        }
        let (rows, cols) = weight.shape().dims2()?;
        Self::build(weight.dtype(), weight.data()?, rows, cols)
    }

    /// A `[rows, cols]` matrix of `dtype` from its bytes as a GGUF file stores them (K-quant
    /// bytes are kept, not copied, and re-laid in place where the kernels need it).
    pub fn from_bytes(dtype: GgmlDType, bytes: Vec<u8>, rows: usize, cols: usize) -> Result<Self> {
        Self::build(dtype, Cow::Owned(bytes), rows, cols)
    }

    fn build(dtype: GgmlDType, bytes: Cow<[u8]>, rows: usize, cols: usize) -> Result<Self> {
        let Some(layout) = Layout::of(dtype) else {
            candle_core::bail!("the kernels do not read {dtype:?}");
        };
        let bytes = match layout {
            Layout::Int8 => {
                int8::pack_q8_0(&bytes, rows, cols).map_err(candle_core::Error::wrap)?
            }
            Layout::Int4 => {
                int4::pack_q4_1(&bytes, rows, cols).map_err(candle_core::Error::wrap)?
            }
            Layout::KQuant(kind) => {
                let mut bytes = bytes.into_owned();
                kquant::pack(kind, &mut bytes, rows, cols).map_err(candle_core::Error::wrap)?;
                bytes
            }
        };
        Ok(Self {
            rows,
            cols,
            layout,
            bytes,
        })
    }

    /// The matrices' rows one after the other, as one matrix: projections of the same input
    /// (q, k and v; gate and up) then take one matmul, whose activations are rounded once and
    /// whose rows split across the pool together. Each row's products are those of its own
    /// matrix, so the results are the same. `None` when the parts differ in type or width, or
    /// a part before the last ends in a group of four rows padded out.
    pub fn stack(parts: &[&KernelMatrix]) -> Option<Self> {
        let first = parts.first()?;
        let grouped = matches!(first.layout, Layout::Int8 | Layout::Int4);
        let fits = parts
            .iter()
            .all(|m| m.layout == first.layout && m.cols == first.cols)
            && parts[..parts.len() - 1]
                .iter()
                .all(|m| !grouped || m.rows.is_multiple_of(int8::GROUP));
        if !fits {
            return None;
        }
        let mut bytes = Vec::with_capacity(parts.iter().map(|m| m.bytes.len()).sum());
        for part in parts {
            bytes.extend_from_slice(&part.bytes);
        }
        Some(Self {
            rows: parts.iter().map(|m| m.rows).sum(),
            cols: first.cols,
            layout: first.layout,
            bytes,
        })
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Row `row`, dequantized (an embedding lookup).
    pub fn row(&self, row: usize) -> Vec<f32> {
        match self.layout {
            Layout::Int8 => int8::unpack_row(&self.bytes, self.cols, row),
            Layout::Int4 => int4::unpack_row(&self.bytes, self.cols, row),
            Layout::KQuant(kind) => kquant::dequantize_row(kind, &self.bytes, self.cols, row),
        }
    }

    /// `xs Wᵀ` for `[.., cols]` activations, shaped `[.., rows]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let cols = xs.dim(D::Minus1)?;
        if cols != self.cols {
            candle_core::bail!(
                "kernel matmul: inputs of {cols} values against a [{}, {}] weight",
                self.rows,
                self.cols
            );
        }
        let values = xs.flatten_all()?.to_vec1::<f32>()?;
        let out = match self.layout {
            Layout::Int8 => int8::matmul(&self.bytes, self.rows, self.cols, &values)
                .map_err(candle_core::Error::wrap)?,
            Layout::Int4 => int4::matmul(&self.bytes, self.rows, self.cols, &values)
                .map_err(candle_core::Error::wrap)?,
            Layout::KQuant(kind) => {
                kquant::matmul(kind, &self.bytes, self.rows, self.cols, &values)
                    .map_err(candle_core::Error::wrap)?
            }
        };
        let mut shape = xs.dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = self.rows;
        }
        Tensor::from_vec(out, shape, &Device::Cpu)
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

    /// Each type the kernels read, with a width that is whole blocks of it.
    const TYPES: [(GgmlDType, usize); 5] = [
        (GgmlDType::Q8_0, 96),
        // candle's Q4_1 matmul asserts an even number of blocks.
        (GgmlDType::Q4_1, 128),
        (GgmlDType::Q4K, 512),
        (GgmlDType::Q5K, 512),
        (GgmlDType::Q6K, 256),
    ];

    #[test]
    fn matches_candle_s_matmul_for_decode_and_prefill() {
        for (dtype, cols) in TYPES {
            // 7 rows: for Q8_0 and Q4_1, one full group of four and a group of three.
            let weight = QTensor::quantize(&values(7, cols, 1), dtype).unwrap();
            let ours = KernelMatrix::from_qtensor(&weight).unwrap();
            assert_eq!(ours.dims(), (7, cols));
            let candle = QMatMul::from_qtensor(weight).unwrap();
            for m in [1, 5] {
                let xs = values(m, cols, 2).reshape((1, m, cols)).unwrap();
                let got = ours.forward(&xs).unwrap();
                assert_eq!(got.dims(), [1, m, 7]);
                let expected = candle.forward(&xs).unwrap();
                let diff = max_abs(&(&got - &expected).unwrap());
                assert!(
                    diff <= 2e-3 * max_abs(&expected),
                    "{dtype:?}, m {m}: max abs diff {diff}"
                );
            }
        }
    }

    #[test]
    fn the_file_s_bytes_read_as_the_tensor_does() {
        for (dtype, cols) in TYPES {
            let weight = QTensor::quantize(&values(5, cols, 3), dtype).unwrap();
            let bytes = weight.data().unwrap().into_owned();
            let from_bytes = KernelMatrix::from_bytes(dtype, bytes.clone(), 5, cols).unwrap();
            let from_tensor = KernelMatrix::from_qtensor(&weight).unwrap();
            assert_eq!(from_bytes.bytes, from_tensor.bytes, "{dtype:?}");
            let err = KernelMatrix::from_bytes(dtype, bytes[1..].to_vec(), 5, cols).unwrap_err();
            assert!(err.to_string().contains("bytes"), "{dtype:?}: {err}");
        }
    }

    #[test]
    fn rows_dequantize_as_candle_does() {
        for (dtype, cols) in TYPES {
            let weight = QTensor::quantize(&values(3, cols, 5), dtype).unwrap();
            let dense = weight.dequantize(&Device::Cpu).unwrap();
            let ours = KernelMatrix::from_qtensor(&weight).unwrap();
            for row in 0..3 {
                let expected = dense.get(row).unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(ours.row(row), expected, "{dtype:?} row {row}");
            }
        }
    }

    #[test]
    fn stacked_matrices_give_each_part_s_products() {
        for (dtype, cols) in TYPES {
            let parts: Vec<KernelMatrix> = [(8, 1), (4, 2), (3, 3)]
                .iter()
                .map(|&(rows, seed)| {
                    let w = QTensor::quantize(&values(rows, cols, seed), dtype).unwrap();
                    KernelMatrix::from_qtensor(&w).unwrap()
                })
                .collect();
            let stacked = KernelMatrix::stack(&parts.iter().collect::<Vec<_>>()).unwrap();
            assert_eq!(stacked.dims(), (15, cols));
            for m in [1, 3] {
                let xs = values(m, cols, 4);
                let separate: Vec<Tensor> = parts.iter().map(|p| p.forward(&xs).unwrap()).collect();
                let expected = Tensor::cat(&separate, 1).unwrap();
                let got = stacked.forward(&xs).unwrap();
                assert_eq!(
                    got.to_vec2::<f32>().unwrap(),
                    expected.to_vec2::<f32>().unwrap(),
                    "{dtype:?}, m {m}"
                );
            }
            // A part of three rows before another: for the grouped layouts its last group is
            // padded, and the rows after it would be misread.
            let padded_first = KernelMatrix::stack(&[&parts[2], &parts[0]]);
            let grouped = matches!(dtype, GgmlDType::Q8_0 | GgmlDType::Q4_1);
            assert_eq!(padded_first.is_none(), grouped, "{dtype:?}");
        }
        let narrow = KernelMatrix::from_qtensor(
            &QTensor::quantize(&values(4, 64, 1), GgmlDType::Q8_0).unwrap(),
        )
        .unwrap();
        let wide = KernelMatrix::from_qtensor(
            &QTensor::quantize(&values(4, 96, 1), GgmlDType::Q8_0).unwrap(),
        )
        .unwrap();
        assert!(KernelMatrix::stack(&[&narrow, &wide]).is_none());
        assert!(KernelMatrix::stack(&[]).is_none());
    }

    #[test]
    fn refuses_other_types_and_wrong_widths() {
        let f32_weight = QTensor::quantize(&values(2, 32, 1), GgmlDType::F32).unwrap();
        let err = KernelMatrix::from_qtensor(&f32_weight)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs a Q8_0, Q4_1, Q4_K, Q5_K or Q6_K matrix"),
            "{err}"
        );
        let weight = QTensor::quantize(&values(2, 64, 1), GgmlDType::Q8_0).unwrap();
        let ours = KernelMatrix::from_qtensor(&weight).unwrap();
        let err = ours.forward(&values(1, 32, 1)).unwrap_err().to_string();
        assert!(
            err.contains("inputs of 32 values against a [2, 64] weight"),
            "{err}"
        );
        assert_eq!(KernelMatrix::serves(&weight), int8::accelerated());
        let q4_1 = QTensor::quantize(&values(2, 64, 1), GgmlDType::Q4_1).unwrap();
        assert_eq!(KernelMatrix::serves(&q4_1), int4::accelerated());
        let q4k = QTensor::quantize(&values(2, 256, 1), GgmlDType::Q4K).unwrap();
        assert_eq!(KernelMatrix::serves(&q4k), kquant::accelerated());
        assert!(!KernelMatrix::serves(&f32_weight));
    }
}
