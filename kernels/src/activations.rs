//! Activations rounded to 8 bits per block, for the integer matmuls: each block of values gets
//! the scale that maps its largest magnitude to 127 (NaNs are passed over when finding it), and
//! every value is rounded half to even. wasm32 has that rounding as an instruction, while the
//! half-away rounding of `f32::round` costs a library call per value there.

/// Values rounded block by block, and the blocks' scales.
pub(crate) struct Quantized {
    /// One signed quant per value, in -127..=127.
    pub quants: Vec<i8>,
    /// One scale per block: value ≈ quant × scale.
    pub scales: Vec<f32>,
}

/// Quantizes `values` in blocks of `N` values (a multiple of 16 that divides the length; a
/// constant, so that each block's loops are unrolled).
pub(crate) fn quantize<const N: usize>(values: &[f32]) -> Quantized {
    assert!(
        N.is_multiple_of(16) && values.len().is_multiple_of(N),
        "activations: {} values are not blocks of {N}",
        values.len()
    );
    let mut quants = vec![0i8; values.len()];
    let scales = values
        .chunks_exact(N)
        .zip(quants.chunks_exact_mut(N))
        .map(|(values, quants)| quantize_block::<N>(values, quants))
        .collect();
    Quantized { quants, scales }
}

/// Quantizes one block into `quants` and returns its scale.
fn quantize_block<const N: usize>(block: &[f32], quants: &mut [i8]) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        simd128::quantize_block::<N>(block, quants)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        portable_quantize_block(block, quants)
    }
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_quantize_block(block: &[f32], quants: &mut [i8]) -> f32 {
    let max = block.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = max / 127.0;
    let inverse = if scale == 0.0 { 0.0 } else { 1.0 / scale };
    for (q, x) in quants.iter_mut().zip(block) {
        *q = (x * inverse).round_ties_even() as i8;
    }
    scale
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use std::arch::wasm32::*;

    /// The SIMD128 twin of `portable_quantize_block`, equal to it bit for bit.
    pub(super) fn quantize_block<const N: usize>(block: &[f32], quants: &mut [i8]) -> f32 {
        assert!(block.len() == N && quants.len() == N);
        let p = block.as_ptr();
        // SAFETY: every load reads 4 of the block's values and every store 16 of `quants`,
        // inside the lengths checked above.
        unsafe {
            let at = |i: usize| v128_load(p.add(4 * i) as *const v128);
            // `pmax(m, x)` keeps `m` when `x` is NaN, as `f32::max` does.
            let mut max = f32x4_splat(0.0);
            for i in 0..N / 4 {
                max = f32x4_pmax(max, f32x4_abs(at(i)));
            }
            max = f32x4_pmax(max, i32x4_shuffle::<2, 3, 0, 1>(max, max));
            max = f32x4_pmax(max, i32x4_shuffle::<1, 0, 3, 2>(max, max));
            let scale = f32x4_extract_lane::<0>(max) / 127.0;
            let inverse = f32x4_splat(if scale == 0.0 { 0.0 } else { 1.0 / scale });
            let q = |i: usize| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(at(i), inverse)));
            for sixteen in 0..N / 16 {
                let i = 4 * sixteen;
                let bytes = i8x16_narrow_i16x8(
                    i16x8_narrow_i32x4(q(i), q(i + 1)),
                    i16x8_narrow_i32x4(q(i + 2), q(i + 3)),
                );
                v128_store(quants.as_mut_ptr().add(16 * sixteen) as *mut v128, bytes);
            }
            scale
        }
    }
}

/// Five blocks of `block` activations that test rounding's edges: values at ±127, halves that
/// round to even, zeros, a NaN (block 3) and a block of zeros (block 4).
#[cfg(test)]
pub(crate) fn awkward_values(blocks: usize, block: usize) -> Vec<f32> {
    (0..blocks * block)
        .map(|i| match (i / block, i % 8) {
            (4, _) => 0.0,
            (_, 0) => 127.0,
            (_, 1) => -127.0,
            (_, 2) => 2.5,
            (_, 3) => -0.5,
            (3, 4) => f32::NAN,
            _ => ((i * 53) as f32 * 0.37).sin() * 90.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// Whatever path this target takes (SIMD128 in wasm32) against the portable loop, for
    /// the matmuls' two block sizes, on [`awkward_values`].
    #[test]
    fn quantizing_equals_the_portable_loop_bit_for_bit() {
        fn check<const N: usize>() {
            let block = N;
            let values = awkward_values(5, block);
            let got = quantize::<N>(&values);
            let mut expected = vec![0i8; values.len()];
            for (b, (values, q)) in values
                .chunks_exact(block)
                .zip(expected.chunks_exact_mut(block))
                .enumerate()
            {
                let scale = portable_quantize_block(values, q);
                assert_eq!(
                    got.scales[b].to_bits(),
                    scale.to_bits(),
                    "block {b} of {block}"
                );
            }
            assert_eq!(got.quants, expected, "blocks of {block}");
            assert_eq!(
                (got.quants[2], got.quants[3]),
                (2, 0),
                "2.5 and -0.5 round to even"
            );
            assert!(got.scales[4] == 0.0 && got.quants[4 * block..].iter().all(|&q| q == 0));
        }
        check::<32>();
        check::<256>();
    }
}
