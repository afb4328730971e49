//! The attention loops in SIMD128: four f32 lanes, f16 widened in registers, and four cached
//! rows at a time where rows are whole vectors (driven by [`super::by_fours`]).

use std::arch::wasm32::*;

use super::sealed::Lanes;
use super::RowKernels;
use crate::exp::exp4;

/// Four f16, the low halves of u32 lanes, as f32, exactly as `half` converts them: the
/// exponent and mantissa moved into place read as an f32 2¹¹² times too small (a
/// subnormal f16 lands on a subnormal f32, so the multiply makes it exact), infinities
/// and NaNs (at least 2¹⁶ once scaled) given the all-ones exponent, then the sign. The
/// multiply costs x86 a microcode assist on a subnormal f16, which a cache's values rarely
/// are; the conversion the K-quant scales need instead, often subnormal
/// (`kquant::simd128::scales_to_f32`), made this loop 1.45× slower on normal values (a
/// layer's decode attention over 2048 positions, 3.8–4.1 → 5.7–5.8 ms in Chromium).
#[inline(always)]
pub(super) fn widen(h: v128) -> v128 {
    let moved = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
    let value = f32x4_mul(moved, f32x4_splat(f32::from_bits((127 + 112) << 23)));
    let special = v128_and(
        f32x4_ge(value, f32x4_splat(65536.0)),
        u32x4_splat(0x7f80_0000),
    );
    let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
    v128_or(v128_or(value, special), sign)
}

/// The SIMD128 loops, for [`super::by_fours`].
pub(super) struct Simd128;

impl RowKernels for Simd128 {
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn dot4<T: Lanes>(query: &[f32], rows: &[T]) -> [f32; 4] {
        let mut dots = [0f32; 4];
        // SAFETY: `dots` holds four f32.
        unsafe { v128_store(dots.as_mut_ptr().cast(), dot_rows4(query, rows)) };
        dots
    }

    #[inline(always)]
    unsafe fn add4<T: Lanes>(out: &mut [f32], rows: &[T], weights: [f32; 4]) {
        add_rows4(out, rows, weights)
    }

    #[inline(always)]
    unsafe fn dot<T: Lanes>(a: &[f32], b: &[T]) -> f32 {
        dot(a, b)
    }

    #[inline(always)]
    unsafe fn add_scaled<T: Lanes>(out: &mut [f32], row: &[T], weight: f32) {
        add_scaled(out, row, weight)
    }
}

/// The dots of `query` (whole vectors) with the four rows `rows` starts with, one per lane.
#[inline(always)]
fn dot_rows4<T: Lanes>(query: &[f32], rows: &[T]) -> v128 {
    let d = query.len();
    assert!(rows.len() >= 4 * d && d.is_multiple_of(4));
    let mut acc = [f32x4_splat(0.0); 4];
    for c in (0..d).step_by(4) {
        // SAFETY: `c + 4 <= d`, and `rows` holds four rows of `d`.
        unsafe {
            let q = v128_load(query.as_ptr().add(c) as *const v128);
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = f32x4_add(*acc, f32x4_mul(q, T::load4(rows.as_ptr().add(r * d + c))));
            }
        }
    }
    // Lane r of the result is the sum of acc[r]'s lanes: pairs of rows first, then the halves.
    let [a, b, c, e] = acc;
    let ab = f32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(a, b),
        i32x4_shuffle::<2, 6, 3, 7>(a, b),
    );
    let ce = f32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(c, e),
        i32x4_shuffle::<2, 6, 3, 7>(c, e),
    );
    f32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(ab, ce),
        i32x4_shuffle::<2, 3, 6, 7>(ab, ce),
    )
}

/// `out += Σᵣ weights[r] · row r` over the four rows `rows` starts with, in one pass over `out`
/// (whole vectors): the sums [`add_scaled`] gives row by row, bit for bit.
#[inline(always)]
fn add_rows4<T: Lanes>(out: &mut [f32], rows: &[T], weights: [f32; 4]) {
    let d = out.len();
    assert!(rows.len() >= 4 * d && d.is_multiple_of(4));
    let w = weights.map(|w| f32x4_splat(w));
    for c in (0..d).step_by(4) {
        // SAFETY: `c + 4 <= d`, and `rows` holds four rows of `d`.
        unsafe {
            let o = out.as_mut_ptr().add(c) as *mut v128;
            let mut sum = v128_load(o);
            for (r, w) in w.iter().enumerate() {
                sum = f32x4_add(sum, f32x4_mul(*w, T::load4(rows.as_ptr().add(r * d + c))));
            }
            v128_store(o, sum);
        }
    }
}

/// `Σ aᵢ bᵢ` of one row, four lanes at a time.
fn dot<T: Lanes>(a: &[f32], b: &[T]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = f32x4_splat(0.0);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: `i + 4 <= n` and both slices hold at least `n` values.
        unsafe {
            let x = v128_load(a.as_ptr().add(i) as *const v128);
            let y = T::load4(b.as_ptr().add(i));
            acc = f32x4_add(acc, f32x4_mul(x, y));
        }
        i += 4;
    }
    let mut sum = f32x4_extract_lane::<0>(acc)
        + f32x4_extract_lane::<1>(acc)
        + f32x4_extract_lane::<2>(acc)
        + f32x4_extract_lane::<3>(acc);
    for j in i..n {
        sum += a[j] * b[j].to_f32();
    }
    sum
}

/// Replaces each `s` by `eˢ⁻ᵐᵃˣ` and returns their sum, four at a time: the library's
/// scalar `expf` took a third of the attention's time.
pub(super) fn exp_minus(scores: &mut [f32], max: f32) -> f32 {
    let n = scores.len();
    let max4 = f32x4_splat(max);
    let mut sum = f32x4_splat(0.0);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: `i + 4 <= n`.
        unsafe {
            let p = scores.as_mut_ptr().add(i) as *mut v128;
            let e = exp4(f32x4_sub(v128_load(p), max4));
            v128_store(p, e);
            sum = f32x4_add(sum, e);
        }
        i += 4;
    }
    let mut total = f32x4_extract_lane::<0>(sum)
        + f32x4_extract_lane::<1>(sum)
        + f32x4_extract_lane::<2>(sum)
        + f32x4_extract_lane::<3>(sum);
    for score in &mut scores[i..] {
        let e = f32x4_extract_lane::<0>(exp4(f32x4_splat(*score - max)));
        *score = e;
        total += e;
    }
    total
}

/// `out += weight · x` for one row, four lanes at a time.
fn add_scaled<T: Lanes>(out: &mut [f32], x: &[T], weight: f32) {
    let n = out.len().min(x.len());
    let w = f32x4_splat(weight);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: `i + 4 <= n` and both slices hold at least `n` values.
        unsafe {
            let o = out.as_mut_ptr().add(i) as *mut v128;
            let y = T::load4(x.as_ptr().add(i));
            v128_store(o, f32x4_add(v128_load(o), f32x4_mul(w, y)));
        }
        i += 4;
    }
    for j in i..n {
        out[j] += weight * x[j].to_f32();
    }
}
