//! Q4_1 weights packed four rows at a time, and their matmul with 8-bit activations.
//!
//! A Q4_1 block is 32 values `d·q + m`, `q` in 0..16: an f16 scale `d`, an f16 minimum `m`
//! and 16 bytes holding value `j` in the low nibble of byte `j` and value `j + 16` in the high
//! one. A packed matrix holds, per group of four rows (the last padded with zero rows) and
//! per block, the four rows' scales and then their minimums as f32, then their four runs of
//! 16 bytes as the file stores them: 96 bytes read front to back, as [`crate::int8`] lays out
//! Q8_0. Against an activation block of quants `x` and scale `s`, a row's block gives
//! `d·s·Σq·x + m·s·Σx`; `s·Σx` is worked out once per activation block.
//!
//! candle has SIMD code for Q4_1 neither in wasm32 nor on x86-64.

use thiserror::Error;

use crate::activations::{self, Quantized};
use crate::int8::{by_groups, each_row, GROUP};
use crate::pool::{self, Pool};

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes of one Q4_1 block in a GGUF file: f16 scale and minimum, then 16 bytes of quants.
pub const Q4_1_BLOCK_BYTES: usize = 4 + BLOCK / 2;
/// Bytes of one block of a group: four f32 scales, four f32 minimums, four runs of quants.
pub const GROUP_BLOCK_BYTES: usize = GROUP * 8 + GROUP * BLOCK / 2;

/// Shapes and sizes that do not fit together.
#[derive(Debug, Error, PartialEq)]
pub enum Int4Error {
    /// The columns are not whole blocks, or the data is not `rows × cols` of Q4_1.
    #[error(
        "a Q4_1 [{rows}, {cols}] matrix holds {expected} bytes in whole 32-value rows, not {found}"
    )]
    Q4_1Size {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// Activations that are not whole rows of the weight's width.
    #[error("int4 matmul: {found} input values are not rows of a [{rows}, {cols}] weight")]
    Width {
        /// Weight rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// The number of activation values.
        found: usize,
    },
}

/// Packs GGUF Q4_1 bytes of a `[rows, cols]` matrix.
pub fn pack_q4_1(data: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>, Int4Error> {
    let blocks = cols / BLOCK;
    let expected = rows * blocks * Q4_1_BLOCK_BYTES;
    if !cols.is_multiple_of(BLOCK) || data.len() != expected {
        return Err(Int4Error::Q4_1Size {
            rows,
            cols,
            expected,
            found: data.len(),
        });
    }
    let mut packed = vec![0u8; rows.div_ceil(GROUP) * blocks * GROUP_BLOCK_BYTES];
    if blocks == 0 {
        return Ok(packed);
    }
    let f16 = |b: &[u8]| {
        half::f16::from_le_bytes([b[0], b[1]])
            .to_f32()
            .to_le_bytes()
    };
    for (row, source) in data.chunks_exact(blocks * Q4_1_BLOCK_BYTES).enumerate() {
        let lane = row % GROUP;
        for (b, block) in source.chunks_exact(Q4_1_BLOCK_BYTES).enumerate() {
            let at = offset(row, b, blocks);
            packed[at + 4 * lane..at + 4 * lane + 4].copy_from_slice(&f16(&block[0..2]));
            let min = at + GROUP * 4 + 4 * lane;
            packed[min..min + 4].copy_from_slice(&f16(&block[2..4]));
            let quants = at + GROUP * 8 + BLOCK / 2 * lane;
            packed[quants..quants + BLOCK / 2].copy_from_slice(&block[4..]);
        }
    }
    Ok(packed)
}

/// Where block `b` of `row`'s group starts in a packed matrix of `blocks` blocks per row.
fn offset(row: usize, b: usize, blocks: usize) -> usize {
    ((row / GROUP) * blocks + b) * GROUP_BLOCK_BYTES
}

fn f32_at(bytes: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Row `row` of a packed matrix with `cols` columns, dequantized as llama.cpp does (`d·q + m`).
pub fn unpack_row(packed: &[u8], cols: usize, row: usize) -> Vec<f32> {
    let blocks = cols / BLOCK;
    let lane = row % GROUP;
    let mut values = vec![0f32; cols];
    for (b, out) in values.chunks_exact_mut(BLOCK).enumerate() {
        let at = offset(row, b, blocks);
        let scale = f32_at(packed, at + 4 * lane);
        let min = f32_at(packed, at + GROUP * 4 + 4 * lane);
        let quants = at + GROUP * 8 + BLOCK / 2 * lane;
        for (j, &byte) in packed[quants..quants + BLOCK / 2].iter().enumerate() {
            out[j] = (byte & 0xF) as f32 * scale + min;
            out[j + BLOCK / 2] = (byte >> 4) as f32 * scale + min;
        }
    }
    values
}

/// `out = x Wᵀ` for `x` holding rows of `cols` values and `W` a packed `[rows, cols]`
/// matrix; `out` gets `rows` values per row of `x`.
pub fn matmul(packed: &[u8], rows: usize, cols: usize, x: &[f32]) -> Result<Vec<f32>, Int4Error> {
    matmul_on(pool::global(), packed, rows, cols, x)
}

/// [`matmul`] with its weight rows split across `pool`, or on the caller alone.
pub(crate) fn matmul_on(
    pool: Option<&Pool>,
    packed: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Result<Vec<f32>, Int4Error> {
    if cols == 0 || !cols.is_multiple_of(BLOCK) || !x.len().is_multiple_of(cols) {
        return Err(Int4Error::Width {
            rows,
            cols,
            found: x.len(),
        });
    }
    let blocks = cols / BLOCK;
    let group_bytes = blocks * GROUP_BLOCK_BYTES;
    if packed.len() != rows.div_ceil(GROUP) * group_bytes {
        return Err(Int4Error::Q4_1Size {
            rows,
            cols,
            expected: rows.div_ceil(GROUP) * group_bytes,
            found: packed.len(),
        });
    }
    let m = x.len() / cols;
    let Quantized { quants, scales } = activations::quantize::<BLOCK>(x);
    let sums = scaled_sums(&quants, &scales);
    Ok(by_groups(
        pool,
        packed,
        group_bytes,
        rows,
        m,
        each_row(|r, group| {
            let blocks = r * blocks..(r + 1) * blocks;
            dot4(
                &quants[r * cols..(r + 1) * cols],
                &scales[blocks.clone()],
                &sums[blocks],
                group,
            )
        }),
    ))
}

/// `s·Σx` per activation block: what the minimums are multiplied by.
fn scaled_sums(quants: &[i8], scales: &[f32]) -> Vec<f32> {
    quants
        .chunks_exact(BLOCK)
        .zip(scales)
        .map(|(q, &s)| s * q.iter().map(|&q| q as i32).sum::<i32>() as f32)
        .collect()
}

/// Dot products of one quantized activation row (quants, scales and [`scaled_sums`] per
/// block) with the four rows of a packed group.
fn dot4(xq: &[i8], xs: &[f32], sums: &[f32], group: &[u8]) -> [f32; GROUP] {
    assert!(
        xq.len() == xs.len() * BLOCK
            && sums.len() == xs.len()
            && group.len() == xs.len() * GROUP_BLOCK_BYTES,
        "int4 matmul: activation and weight group disagree in length"
    );
    #[cfg(target_arch = "wasm32")]
    {
        simd128::dot4(xq, xs, sums, group)
    }
    #[cfg(target_arch = "x86_64")]
    {
        if crate::int8::avx2::available() {
            // SAFETY: the CPU has AVX2, checked just above; the lengths are asserted.
            return unsafe { avx2::dot4(xq, xs, sums, group) };
        }
        portable_dot4(xq, xs, sums, group)
    }
    #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
    {
        portable_dot4(xq, xs, sums, group)
    }
}

/// Whether [`matmul`] runs SIMD code on this machine (as [`crate::int8::accelerated`]).
pub fn accelerated() -> bool {
    crate::int8::accelerated()
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_dot4(xq: &[i8], xs: &[f32], sums: &[f32], group: &[u8]) -> [f32; GROUP] {
    let mut acc = [0f32; GROUP];
    for (((x, &x_scale), &x_sum), block) in xq
        .chunks_exact(BLOCK)
        .zip(xs)
        .zip(sums)
        .zip(group.chunks_exact(GROUP_BLOCK_BYTES))
    {
        for (lane, acc) in acc.iter_mut().enumerate() {
            let scale = f32_at(block, 4 * lane);
            let min = f32_at(block, GROUP * 4 + 4 * lane);
            let w = &block[GROUP * 8 + BLOCK / 2 * lane..][..BLOCK / 2];
            let dot: i32 = w
                .iter()
                .enumerate()
                .map(|(j, &b)| (b & 0xF) as i32 * x[j] as i32 + (b >> 4) as i32 * x[j + 16] as i32)
                .sum();
            *acc += dot as f32 * (x_scale * scale);
            *acc += min * x_sum;
        }
    }
    acc
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use std::arch::wasm32::*;

    use super::{BLOCK, GROUP, GROUP_BLOCK_BYTES};
    use crate::int8::simd128::{high_nibbles, lanes, transpose_sum};

    /// One row's 16 bytes of quants at `w` times the activation block `x`, as four i32 sums.
    ///
    /// # Safety
    /// `w` must point at 16 readable bytes.
    #[cfg(not(feature = "relaxed-simd"))]
    #[inline(always)]
    unsafe fn row_dot(x: &[v128; 4], w: *const u8) -> v128 {
        let q = v128_load(w as *const v128);
        let (low, high) = (v128_and(q, u8x16_splat(0x0F)), high_nibbles(q));
        i32x4_add(
            i32x4_add(
                i32x4_dot_i16x8(u16x8_extend_low_u8x16(low), x[0]),
                i32x4_dot_i16x8(u16x8_extend_high_u8x16(low), x[1]),
            ),
            i32x4_add(
                i32x4_dot_i16x8(u16x8_extend_low_u8x16(high), x[2]),
                i32x4_dot_i16x8(u16x8_extend_high_u8x16(high), x[3]),
            ),
        )
    }

    /// The 32 activation quants at `p`, widened to four i16x8 vectors.
    ///
    /// # Safety
    /// `p` must point at 32 readable bytes.
    #[cfg(not(feature = "relaxed-simd"))]
    #[inline(always)]
    unsafe fn activations(p: *const i8) -> [v128; 4] {
        [
            i16x8_load_extend_i8x8(p),
            i16x8_load_extend_i8x8(p.add(8)),
            i16x8_load_extend_i8x8(p.add(16)),
            i16x8_load_extend_i8x8(p.add(24)),
        ]
    }

    /// [`row_dot`] by relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s`, sixteen products
    /// per instruction; exact, because the quants (0..16) are its 7-bit operand.
    ///
    /// # Safety
    /// `w` must point at 16 readable bytes.
    #[cfg(feature = "relaxed-simd")]
    #[inline(always)]
    unsafe fn row_dot(x: &[v128; 2], w: *const u8) -> v128 {
        let q = v128_load(w as *const v128);
        let (low, high) = (v128_and(q, u8x16_splat(0x0F)), high_nibbles(q));
        let low = i32x4_relaxed_dot_i8x16_i7x16_add(x[0], low, i32x4_splat(0));
        i32x4_relaxed_dot_i8x16_i7x16_add(x[1], high, low)
    }

    /// The 32 activation quants at `p` as two vectors of sixteen bytes.
    ///
    /// # Safety
    /// `p` must point at 32 readable bytes.
    #[cfg(feature = "relaxed-simd")]
    #[inline(always)]
    unsafe fn activations(p: *const i8) -> [v128; 2] {
        [
            v128_load(p as *const v128),
            v128_load(p.add(16) as *const v128),
        ]
    }

    /// The SIMD128 twin of `portable_dot4`, equal to it bit for bit (whole blocks summed
    /// exactly in i32, then scaled and added in the same order).
    #[cfg_attr(feature = "relaxed-simd", target_feature(enable = "relaxed-simd"))]
    pub(super) fn dot4(xq: &[i8], xs: &[f32], sums: &[f32], group: &[u8]) -> [f32; GROUP] {
        let mut acc = f32x4_splat(0.0);
        for (b, (&x_scale, &x_sum)) in xs.iter().zip(sums).enumerate() {
            // SAFETY: `super::dot4` checked that the activation row holds `xs.len()` blocks
            // of 32 quants and the group `xs.len()` blocks of GROUP_BLOCK_BYTES.
            unsafe {
                let x = activations(xq.as_ptr().add(b * BLOCK));
                let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
                let scales = v128_load(at as *const v128);
                let mins = v128_load(at.add(GROUP * 4) as *const v128);
                let w = at.add(GROUP * 8);
                let dots = transpose_sum(
                    row_dot(&x, w),
                    row_dot(&x, w.add(BLOCK / 2)),
                    row_dot(&x, w.add(BLOCK)),
                    row_dot(&x, w.add(3 * BLOCK / 2)),
                );
                let scale = f32x4_mul(scales, f32x4_splat(x_scale));
                acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(dots), scale));
                acc = f32x4_add(acc, f32x4_mul(mins, f32x4_splat(x_sum)));
            }
        }
        lanes(acc)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUP, GROUP_BLOCK_BYTES};
    use crate::int8::avx2::transpose_sum;

    /// Eight i32 partial sums of one row's 16 bytes of quants at `w` times the activation
    /// block: the low nibbles (values 0..16) and high nibbles (16..32) side by side, as the
    /// activations lie, multiplied by `maddubs` (unsigned 0..16 by signed, no saturation).
    ///
    /// # Safety
    /// The CPU must have AVX2, and `w` must point at 16 readable bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn row_dot(x: __m256i, w: *const u8) -> __m256i {
        let q = _mm_loadu_si128(w as *const __m128i);
        let nibbles = _mm256_and_si256(
            _mm256_set_m128i(_mm_srli_epi16::<4>(q), q),
            _mm256_set1_epi8(0x0F),
        );
        _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles, x), _mm256_set1_epi16(1))
    }

    /// The AVX2 twin of `portable_dot4`, equal to it bit for bit.
    ///
    /// # Safety
    /// The CPU must have AVX2; the lengths must be as `super::dot4` asserts.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot4(xq: &[i8], xs: &[f32], sums: &[f32], group: &[u8]) -> [f32; 4] {
        let mut acc = _mm_setzero_ps();
        for (b, (&x_scale, &x_sum)) in xs.iter().zip(sums).enumerate() {
            // SAFETY: in bounds by this function's contract.
            unsafe {
                let x = _mm256_loadu_si256(xq.as_ptr().add(b * BLOCK) as *const __m256i);
                let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
                let scales = _mm_loadu_ps(at as *const f32);
                let mins = _mm_loadu_ps(at.add(GROUP * 4) as *const f32);
                let w = at.add(GROUP * 8);
                let dots = transpose_sum(
                    row_dot(x, w),
                    row_dot(x, w.add(BLOCK / 2)),
                    row_dot(x, w.add(BLOCK)),
                    row_dot(x, w.add(3 * BLOCK / 2)),
                );
                let scale = _mm_mul_ps(scales, _mm_set1_ps(x_scale));
                acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(dots), scale));
                acc = _mm_add_ps(acc, _mm_mul_ps(mins, _mm_set1_ps(x_sum)));
            }
        }
        let mut out = [0f32; GROUP];
        // SAFETY: `out` holds four f32.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), acc) };
        out
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// `rows × cols` Q4_1 bytes with scale `0.25 + row / 8`, minimum `-1 - row / 4` and quants
    /// `(i * 7 + row) mod 16`, and the values they stand for.
    fn q4_1(rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        let (mut bytes, mut dense) = (Vec::new(), vec![0f32; rows * cols]);
        for row in 0..rows {
            let scale = half::f16::from_f32(0.25 + row as f32 / 8.0);
            let min = half::f16::from_f32(-1.0 - row as f32 / 4.0);
            for block in 0..cols / BLOCK {
                bytes.extend(scale.to_le_bytes());
                bytes.extend(min.to_le_bytes());
                let q = |i: usize| ((block * BLOCK + i) * 7 + row) % 16;
                for j in 0..BLOCK / 2 {
                    bytes.push((q(j) | q(j + 16) << 4) as u8);
                }
                for i in 0..BLOCK {
                    dense[row * cols + block * BLOCK + i] =
                        q(i) as f32 * scale.to_f32() + min.to_f32();
                }
            }
        }
        (bytes, dense)
    }

    #[test]
    fn packed_rows_unpack_to_the_dequantized_matrix() {
        let (bytes, dense) = q4_1(5, 64);
        let packed = pack_q4_1(&bytes, 5, 64).unwrap();
        assert_eq!(packed.len(), 2 * 2 * GROUP_BLOCK_BYTES);
        for row in 0..5 {
            assert_eq!(
                unpack_row(&packed, 64, row),
                dense[row * 64..(row + 1) * 64]
            );
        }
    }

    #[test]
    fn the_matmul_is_the_dense_product_to_int8_precision() {
        let (bytes, dense) = q4_1(6, 96);
        let packed = pack_q4_1(&bytes, 6, 96).unwrap();
        let x: Vec<f32> = (0..3 * 96).map(|i| (i as f32 * 0.7).sin()).collect();
        let got = matmul(&packed, 6, 96, &x).unwrap();
        crate::assert_near_dense_product("Q4_1", &got, &x, &dense, 96);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_pool_splits_the_matmul_without_changing_a_bit() {
        let (rows, cols) = (203, 1024);
        let grain = crate::int8::grain(cols / BLOCK * GROUP_BLOCK_BYTES);
        assert!(rows / GROUP >= 2 * grain);
        let packed = pack_q4_1(&q4_1(rows, cols).0, rows, cols).unwrap();
        for m in [1, 3] {
            let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.3).cos()).collect();
            crate::assert_pool_changes_nothing("Q4_1", |pool| {
                matmul_on(pool, &packed, rows, cols, &x).unwrap()
            });
        }
    }

    /// Whatever SIMD path this target dispatches to (SIMD128 with or without relaxed SIMD,
    /// AVX2) against the portable loops: every nibble value in both halves of a byte, and the
    /// activations of [`activations::awkward_values`].
    #[test]
    fn the_simd_paths_equal_the_portable_loops_bit_for_bit() {
        let blocks = 5;
        let group: Vec<u8> = (0..blocks * GROUP_BLOCK_BYTES)
            .map(|i| match i % GROUP_BLOCK_BYTES {
                s if s < GROUP * 4 => [0x00, 0x00, 0x80, 0x3f][s % 4], // 1.0f32
                m if m < GROUP * 8 => [0x00, 0x00, 0x40, 0xbf][m % 4], // -0.75f32
                q => (q * 37 + i / 7) as u8,
            })
            .collect();
        let values = activations::awkward_values(blocks, BLOCK);
        let Quantized {
            quants: xq,
            scales: xs,
        } = activations::quantize::<BLOCK>(&values);
        let sums = scaled_sums(&xq, &xs);
        assert_eq!(
            dot4(&xq, &xs, &sums, &group),
            portable_dot4(&xq, &xs, &sums, &group)
        );
    }

    #[test]
    fn sizes_that_disagree_are_errors() {
        let (bytes, _) = q4_1(2, 64);
        assert!(matches!(
            pack_q4_1(&bytes[1..], 2, 64),
            Err(Int4Error::Q4_1Size {
                expected: 80,
                found: 79,
                ..
            })
        ));
        assert!(pack_q4_1(&bytes, 2, 68).is_err());
        let packed = pack_q4_1(&bytes, 2, 64).unwrap();
        let err = matmul(&packed, 2, 64, &[0.0; 65]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "int4 matmul: 65 input values are not rows of a [2, 64] weight"
        );
        assert!(matmul(&packed[1..], 2, 64, &[0.0; 64]).is_err());
    }
}
