//! Q8_0 weights packed for the int8 matmul of `mimir-kernels`, as a candle-facing matrix.
//!
//! candle's Q8_0 kernel for wasm32 converts two f16 scales per 32-value block in software
//! (wasm has no f16 instructions) and works one weight row at a time; natively its AVX kernel
//! also goes row by row. The packed layout (four rows per group, f32 scales, one stream per
//! decode step) is described in [`mimir_kernels::int8`]; bench/NOTES.md has what it gains.
//! The quants are the file's own, so the result equals candle's up to the summation order and
//! the activation scale (f32 here, f16 in candle).

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor, D};
use mimir_kernels::int8;

/// A `[rows, cols]` Q8_0 matrix, packed.
#[derive(Debug)]
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    packed: Vec<u8>,
}

impl Int8Matrix {
    /// Whether `weight` is served by this matmul here: Q8_0 matrices, where the kernel has
    /// SIMD code for the machine (wasm32's SIMD128, x86-64's AVX2); elsewhere candle's
    /// kernels are the faster ones.
    pub fn serves(weight: &QTensor) -> bool {
        Self::serves_type(weight.dtype(), weight.shape().rank())
    }

    /// [`Int8Matrix::serves`] for a tensor of `dtype` with `rank` dimensions.
    pub fn serves_type(dtype: GgmlDType, rank: usize) -> bool {
        int8::accelerated() && Self::fits(dtype, rank)
    }

    fn fits(dtype: GgmlDType, rank: usize) -> bool {
        dtype == GgmlDType::Q8_0 && rank == 2
    }

    /// Packs a Q8_0 `[rows, cols]` tensor.
    pub fn from_qtensor(weight: &QTensor) -> Result<Self> {
        if !Self::fits(weight.dtype(), weight.shape().rank()) {
            candle_core::bail!(
                "an int8 matrix needs a Q8_0 matrix, not {:?} {:?}",
                weight.dtype(),
                weight.shape()
            );
        }
        let (rows, cols) = weight.shape().dims2()?;
        Self::from_q8_0(&weight.data()?, rows, cols)
    }

    /// Packs the Q8_0 bytes of a `[rows, cols]` matrix as a GGUF file stores them.
    pub fn from_q8_0(bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        let packed = int8::pack_q8_0(bytes, rows, cols).map_err(candle_core::Error::wrap)?;
        Ok(Self { rows, cols, packed })
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Row `row`, dequantized (an embedding lookup).
    pub fn row(&self, row: usize) -> Vec<f32> {
        int8::unpack_row(&self.packed, self.cols, row)
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
        let out = int8::matmul(&self.packed, self.rows, self.cols, &values)
            .map_err(candle_core::Error::wrap)?;
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
    fn the_file_s_bytes_pack_as_the_tensor_does() {
        let weight = QTensor::quantize(&values(5, 64, 3), GgmlDType::Q8_0).unwrap();
        let from_bytes = Int8Matrix::from_q8_0(&weight.data().unwrap(), 5, 64).unwrap();
        let from_tensor = Int8Matrix::from_qtensor(&weight).unwrap();
        assert_eq!(from_bytes.packed, from_tensor.packed);
        assert!(Int8Matrix::from_q8_0(&weight.data().unwrap()[1..], 5, 64).is_err());
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
        assert_eq!(Int8Matrix::serves(&weight), int8::accelerated());
    }
}
