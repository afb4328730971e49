#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

const KINDS: [KQuant; 3] = [KQuant::Q4K, KQuant::Q5K, KQuant::Q6K];

/// [`gguf_matrix`] [`pack`]ed, as the kernels read it.
fn matrix(kind: KQuant, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
    let mut bytes = gguf_matrix(kind, rows, cols, seed);
    pack(kind, &mut bytes, rows, cols).unwrap();
    bytes
}

/// `rows × cols` of `kind` in GGUF's order from a deterministic byte pattern, with every f16
/// field set to a small positive value (random bytes would make some of them inf or NaN),
/// every third `d` a subnormal f16 as a quantized model's often are.
fn gguf_matrix(kind: KQuant, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
    let mut bytes: Vec<u8> = (0..kind.matrix_bytes(rows, cols).unwrap())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    for (i, block) in bytes.chunks_exact_mut(kind.block_bytes()).enumerate() {
        let d = match i % 3 {
            2 => half::f16::from_f32(3e-5 + (i % 5) as f32 * 1e-6),
            _ => half::f16::from_f32(0.01 + (i % 5) as f32 * 0.003),
        };
        assert_eq!(d.is_normal(), i % 3 != 2);
        let d = d.to_le_bytes();
        let dmin = half::f16::from_f32(0.02 + (i % 3) as f32 * 0.005).to_le_bytes();
        match kind {
            KQuant::Q6K => block[208..210].copy_from_slice(&d),
            _ => {
                block[0..2].copy_from_slice(&d);
                block[2..4].copy_from_slice(&dmin);
            }
        }
    }
    bytes
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 31 + seed) as f32 * 0.37).sin() * (1.0 + (i % 7) as f32))
        .collect()
}

#[test]
fn the_matmul_is_the_dense_product_to_int8_precision() {
    for kind in KINDS {
        let (rows, cols) = (5, 512);
        let w = matrix(kind, rows, cols, 7);
        let x = values(3 * cols, 1);
        let got = matmul(kind, &w, rows, cols, &x).unwrap();
        let dense: Vec<f32> = (0..rows)
            .flat_map(|c| dequantize_row(kind, &w, cols, c))
            .collect();
        crate::assert_near_dense_product(&format!("{kind:?}"), &got, &x, &dense, cols);
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn a_pool_splits_the_matmul_without_changing_a_bit() {
    for kind in KINDS {
        let (rows, cols) = (300, 1024);
        assert!(rows >= 2 * int8::grain(cols / SUPER * kind.block_bytes()));
        let w = matrix(kind, rows, cols, 11);
        for m in [1, 3] {
            let x = values(m * cols, 2);
            crate::assert_pool_changes_nothing(&format!("{kind:?}"), |pool| {
                matmul_on(pool, kind, &w, rows, cols, &x).unwrap()
            });
        }
    }
}

/// Whatever path this target takes (SIMD128 in wasm32) against the portable loops, on
/// weights whose bytes cover every bit pattern and activations at ±127, in rows of whole
/// groups of four super-blocks, of fewer, and of groups and a rest.
#[test]
fn the_simd_paths_equal_the_portable_loops_bit_for_bit() {
    for (kind, supers) in KINDS.into_iter().flat_map(|k| [(k, 3), (k, 8), (k, 9)]) {
        let cols = supers * SUPER;
        let w = matrix(kind, 2, cols, 3);
        let mut x = values(cols, 5);
        (x[0], x[1], x[300]) = (-200.0, 200.0, 0.0);
        let q = Quantized::new(kind, &x);
        let xs = q.row(0, cols);
        for row in w.chunks_exact(cols / SUPER * kind.block_bytes()) {
            let expected = portable_dot(kind, row, &xs).to_bits();
            for m in [1, 3] {
                let mut out = vec![0f32; m];
                let rows: Vec<_> = (0..m).map(|_| xs.clone()).collect();
                dot_rows(kind, row, &rows, &mut out);
                assert!(
                    out.iter().all(|v| v.to_bits() == expected),
                    "{kind:?}, {supers} super-blocks, {m} rows"
                );
                // Natively `dot_rows` takes AVX-VNNI where the CPU has it: the AVX2 path
                // without it too.
                #[cfg(target_arch = "x86_64")]
                if avx2::available() {
                    // SAFETY: the CPU has AVX2 and F16C; the lengths agree (as
                    // `dot_rows` asserted above).
                    unsafe { avx2::dot_rows(false, kind, row, &rows, &mut out) };
                    assert!(
                        out.iter().all(|v| v.to_bits() == expected),
                        "{kind:?}, {supers} super-blocks, {m} rows, without AVX-VNNI"
                    );
                }
            }
        }
    }
}

/// A prompt through the matmul (in wasm32, weight rows four at a time and the rest one by
/// one) against the portable loop for every pair of rows.
#[test]
fn a_prompt_equals_the_portable_loop_bit_for_bit() {
    for kind in KINDS {
        let (rows, cols, m) = (7, 5 * SUPER, 3);
        let w = matrix(kind, rows, cols, 13);
        let mut x = values(m * cols, 9);
        (x[0], x[cols + 1]) = (-300.0, 300.0);
        let got = matmul_on(None, kind, &w, rows, cols, &x).unwrap();
        let row_bytes = cols / SUPER * kind.block_bytes();
        for (i, x) in x.chunks_exact(cols).enumerate() {
            let q = Quantized::new(kind, x);
            let xs = q.row(0, cols);
            for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                assert_eq!(
                    got[i * rows + r].to_bits(),
                    portable_dot(kind, row, &xs).to_bits(),
                    "{kind:?}, activation row {i}, weight row {r}"
                );
            }
        }
    }
}

/// The in-register unpacking of the 6-bit scales and minimums (SIMD128, AVX2) against
/// the scalar one, over headers whose 12 bytes take every bit pattern many times.
#[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
#[test]
fn scales_and_minimums_unpack_in_registers_as_in_scalars() {
    let blocks = matrix(KQuant::Q4K, 64, 16 * SUPER, 17);
    for block in blocks.chunks_exact(KQuant::Q4K.block_bytes()) {
        let (scales, mins) = scales_and_mins(&block[4..16]);
        let mut lanes = [0u8; 16];
        #[cfg(target_arch = "wasm32")]
        // SAFETY: a super-block is 144 bytes, and `lanes` 16; each access is 16 bytes.
        unsafe {
            use std::arch::wasm32::{v128_load, v128_store};
            let packed = simd128::scales_and_mins(
                &simd128::Constants::get(),
                v128_load(block.as_ptr().cast()),
            );
            v128_store(lanes.as_mut_ptr().cast(), packed);
        }
        #[cfg(target_arch = "x86_64")]
        {
            if !avx2::available() {
                return;
            }
            // SAFETY: the CPU has AVX2; a super-block is 144 bytes, and `lanes` 16.
            unsafe {
                use std::arch::x86_64::{_mm_loadu_si128, _mm_storeu_si128};
                let packed = avx2::scales_and_mins(_mm_loadu_si128(block.as_ptr().cast()));
                _mm_storeu_si128(lanes.as_mut_ptr().cast(), packed);
            }
        }
        assert_eq!(lanes[..8], scales, "scales of {:?}", &block[4..16]);
        assert_eq!(lanes[8..], mins, "minimums of {:?}", &block[4..16]);
    }
}

/// Every value of a super-block read back from the interleaved order as from
/// GGUF's (on every target, so the relayout is checked natively too; in wasm32 its quants
/// move by shuffles), and a packed matrix dequantized to the values of the file's.
#[test]
fn interleaving_moves_no_value() {
    for kind in KINDS {
        let gguf = gguf_matrix(kind, 3, 2 * SUPER, 17);
        for block in gguf.chunks_exact(kind.block_bytes()) {
            let mut interleaved = block.to_vec();
            order::interleave_block(kind, &mut interleaved);
            assert_eq!(
                Block::unpack_in(kind, &interleaved, true),
                Block::unpack_in(kind, block, false),
                "{kind:?}"
            );
        }
        let packed = matrix(kind, 3, 2 * SUPER, 17);
        for row in 0..3 {
            let expected: Vec<f32> = gguf[row * 2 * kind.block_bytes()..]
                .chunks_exact(kind.block_bytes())
                .take(2)
                .flat_map(|block| Block::unpack_in(kind, block, false).values(kind))
                .collect();
            assert_eq!(
                dequantize_row(kind, &packed, 2 * SUPER, row),
                expected,
                "{kind:?}"
            );
        }
    }
}

#[test]
fn f16_scales_convert_as_the_half_crate_does() {
    for bits in 0..=u16::MAX {
        let expected = half::f16::from_bits(bits).to_f32();
        let got = f16_to_f32(bits.to_le_bytes());
        assert!(
            got.to_bits() == expected.to_bits() || (got.is_nan() && expected.is_nan()),
            "{bits:#06x}: {got} against {expected}"
        );
    }
}

#[cfg(target_arch = "wasm32")]
#[test]
fn f16_scales_convert_four_at_a_time_as_one_by_one() {
    use std::arch::wasm32::{u32x4, v128_store};
    for first in (0..=u16::MAX).step_by(4) {
        let bits = [first, first + 1, first + 2, first + 3].map(u32::from);
        let mut got = [0f32; 4];
        // SAFETY: `got` holds four f32.
        unsafe {
            let lanes = u32x4(bits[0], bits[1], bits[2], bits[3]);
            v128_store(
                got.as_mut_ptr().cast(),
                simd128::scales_to_f32(&simd128::Constants::get(), lanes),
            );
        }
        for (&h, got) in bits.iter().zip(got) {
            let want = f16_to_f32((h as u16).to_le_bytes());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}: {got:e} against {want:e}"
            );
        }
    }
}

#[test]
fn sizes_that_disagree_are_errors() {
    let w = matrix(KQuant::Q4K, 2, 256, 1);
    assert_eq!(
        matmul(KQuant::Q4K, &w[1..], 2, 256, &[0.0; 256]).unwrap_err(),
        KQuantError::Size {
            kind: KQuant::Q4K,
            rows: 2,
            cols: 256,
            expected: 288,
            found: 287
        }
    );
    assert!(check(KQuant::Q6K, 0, 1, 100).is_err());
    assert_eq!(
        matmul(KQuant::Q4K, &w, 2, 256, &[0.0; 300])
            .unwrap_err()
            .to_string(),
        "K-quant matmul: 300 input values are not rows of a [2, 256] weight"
    );
}
