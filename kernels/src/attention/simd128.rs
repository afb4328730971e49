//! The attention loops in SIMD128: four f32 lanes, f16 widened in registers.

use std::arch::wasm32::*;

use super::sealed::Lanes;
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

pub(super) fn dot<T: Lanes>(a: &[f32], b: &[T]) -> f32 {
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

pub(super) fn add_scaled<T: Lanes>(out: &mut [f32], x: &[T], weight: f32) {
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
