//! The attention loops in AVX2 with FMA: eight f32 lanes, f16 widened by F16C, the
//! exponentials by [`exp8`], and four cached rows at a time where rows are whole vectors
//! (driven by [`super::by_fours`]). Natively, a decode step's attention went through gemm's
//! matmuls (one query row per head, packed like any matrix); with these loops SmolLM2 Q8_0
//! decodes about 5 % faster after a 200-token prompt (`bench --threads 1`), where the step's
//! keys and values, 12 MB in f32, are read at about what one thread reads from the L3
//! (`examples/attention.rs`).

use std::arch::x86_64::*;

use super::sealed::Lanes;
use super::{by_fours, CacheValue, Head, RowKernels};
use crate::exp::exp8;

/// Whether the CPU has the instructions these loops use: [`exp8`]'s, and F16C for an f16
/// cache.
pub(crate) fn available() -> bool {
    crate::exp::avx2_fma() && std::is_x86_feature_detected!("f16c")
}

/// [`super::head`] by [`super::by_fours`] over these loops, inlined here so that they are
/// compiled with the instructions.
///
/// # Safety
/// The CPU must have the instructions ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn head<T: CacheValue>(head: Head<T>, scores: &mut [f32], out: &mut [f32]) {
    // SAFETY: by the contract.
    unsafe { by_fours::<Avx2, T>(head, scores, out) }
}

/// The AVX2 loops, for [`super::by_fours`].
struct Avx2;

impl RowKernels for Avx2 {
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn dot4<T: Lanes>(query: &[f32], rows: &[T]) -> [f32; 4] {
        let mut dots = [0f32; 4];
        // SAFETY: the CPU has the instructions (the contract); `dots` holds four f32.
        unsafe { _mm_storeu_ps(dots.as_mut_ptr(), dot_rows4(query, rows)) };
        dots
    }

    #[inline(always)]
    unsafe fn add4<T: Lanes>(out: &mut [f32], rows: &[T], weights: [f32; 4]) {
        // SAFETY: by the contract.
        unsafe { add_rows4(out, rows, weights) }
    }

    #[inline(always)]
    unsafe fn dot<T: Lanes>(a: &[f32], b: &[T]) -> f32 {
        // SAFETY: by the contract.
        unsafe { dot(a, b) }
    }

    #[inline(always)]
    unsafe fn add_scaled<T: Lanes>(out: &mut [f32], row: &[T], weight: f32) {
        // SAFETY: by the contract.
        unsafe { add_scaled(out, row, weight) }
    }
}

/// The dots of `query` (whole vectors) with the four rows `rows` starts with, one per lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_rows4<T: Lanes>(query: &[f32], rows: &[T]) -> __m128 {
    let d = query.len();
    assert!(rows.len() >= 4 * d && d.is_multiple_of(8));
    let mut acc = [_mm256_setzero_ps(); 4];
    for c in (0..d).step_by(8) {
        // SAFETY: `c + 8 <= d`, and `rows` holds four rows of `d`.
        unsafe {
            let q = _mm256_loadu_ps(query.as_ptr().add(c));
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(q, T::load8(rows.as_ptr().add(r * d + c)), *acc);
            }
        }
    }
    // Pairs within each row, then pairs of pairs: lane r of each half holds half of row r's
    // sum; the halves added give it whole.
    let [a, b, c, e] = acc;
    let sums = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, e));
    _mm_add_ps(
        _mm256_castps256_ps128(sums),
        _mm256_extractf128_ps::<1>(sums),
    )
}

/// `out += Σᵣ weights[r] · row r` over the four rows `rows` starts with, in one pass over `out`
/// (whole vectors): the sums [`add_scaled`] gives row by row, bit for bit.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn add_rows4<T: Lanes>(out: &mut [f32], rows: &[T], weights: [f32; 4]) {
    let d = out.len();
    assert!(rows.len() >= 4 * d && d.is_multiple_of(8));
    let w = weights.map(|w| _mm256_set1_ps(w));
    for c in (0..d).step_by(8) {
        // SAFETY: `c + 8 <= d`, and `rows` holds four rows of `d`.
        unsafe {
            let o = out.as_mut_ptr().add(c);
            let mut sum = _mm256_loadu_ps(o);
            for (r, w) in w.iter().enumerate() {
                sum = _mm256_fmadd_ps(*w, T::load8(rows.as_ptr().add(r * d + c)), sum);
            }
            _mm256_storeu_ps(o, sum);
        }
    }
}

/// `Σ aᵢ bᵢ`, in two chains of eight lanes (a 64-value row is eight fused multiply-adds, which
/// one chain would wait on one by one).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot<T: Lanes>(a: &[f32], b: &[T]) -> f32 {
    let n = a.len().min(b.len());
    let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n` and both slices hold at least `n` values.
        unsafe {
            let (a, b) = (a.as_ptr().add(i), b.as_ptr().add(i));
            even = _mm256_fmadd_ps(_mm256_loadu_ps(a), T::load8(b), even);
            odd = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(8)), T::load8(b.add(8)), odd);
        }
        i += 16;
    }
    if i + 8 <= n {
        // SAFETY: as above.
        unsafe {
            let (a, b) = (a.as_ptr().add(i), b.as_ptr().add(i));
            even = _mm256_fmadd_ps(_mm256_loadu_ps(a), T::load8(b), even);
        }
        i += 8;
    }
    let mut sum = lane_sum(_mm256_add_ps(even, odd));
    for j in i..n {
        sum += a[j] * b[j].to_f32();
    }
    sum
}

/// `out += weight · row`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn add_scaled<T: Lanes>(out: &mut [f32], row: &[T], weight: f32) {
    let n = out.len().min(row.len());
    let w = _mm256_set1_ps(weight);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n` and both slices hold at least `n` values.
        unsafe {
            let o = out.as_mut_ptr().add(i);
            _mm256_storeu_ps(
                o,
                _mm256_fmadd_ps(w, T::load8(row.as_ptr().add(i)), _mm256_loadu_ps(o)),
            );
        }
        i += 8;
    }
    for j in i..n {
        out[j] += weight * row[j].to_f32();
    }
}

/// Replaces each score `s` by `exp(s - max)` and returns their sum, eight at a time.
#[target_feature(enable = "avx2,fma")]
pub(super) fn softmax_numerators(scores: &mut [f32]) -> f32 {
    let n = scores.len();
    let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`.
        max = _mm256_max_ps(max, unsafe { _mm256_loadu_ps(scores.as_ptr().add(i)) });
        i += 8;
    }
    let max = scores[i..].iter().fold(lane_max(max), |m, &s| m.max(s));
    let max8 = _mm256_set1_ps(max);
    let mut sum = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`.
        unsafe {
            let p = scores.as_mut_ptr().add(i);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), max8));
            _mm256_storeu_ps(p, e);
            sum = _mm256_add_ps(sum, e);
        }
        i += 8;
    }
    let mut total = lane_sum(sum);
    for score in &mut scores[i..] {
        let e = _mm256_cvtss_f32(exp8(_mm256_set1_ps(*score - max)));
        *score = e;
        total += e;
    }
    total
}

/// The sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn lane_sum(v: __m256) -> f32 {
    let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)))
}

/// The largest of the eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn lane_max(v: __m256) -> f32 {
    let v = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_max_ss(v, _mm_movehdup_ps(v)))
}
