//! Attention of a single new position over the KV cache (every decode step).
//!
//! Each head is a dot product per cached position, a softmax and a weighted sum of the
//! values, in f32x4 on wasm32 and f32x8 with AVX2 natively (the exponentials too). For one
//! query row this beats a general matmul, whose packing costs more than the arithmetic. The
//! heads are split across the matmuls' thread pool once the cache is long enough to be worth
//! it: in a threaded SmolLM2 decode step attention was a fifth of the engine thread's time,
//! with the other thread idle.
//!
//! The cache may hold f16 (Phi-3-mini's, whose f32 cache would not fit beside its weights in
//! wasm32's 4 GiB): its values are widened in registers as they are read, rather than the
//! whole cache copied to f32 every step.

use half::f16;

use crate::pool::{self, Pool};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "wasm32")]
mod simd128;

/// Whether [`one_query`] runs SIMD code here: in wasm32, and on x86-64 CPUs with AVX2, FMA and
/// F16C (elsewhere its portable loops lose to a general matmul's).
pub fn accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cfg!(target_arch = "wasm32")
    }
}

/// One layer's cached keys or values: for each kv head, `n` rows of `d` values, the heads
/// `head_stride` values apart.
#[derive(Debug, Clone, Copy)]
pub struct CacheView<'a, T> {
    /// The values, from the first head's first row to the last head's last.
    pub data: &'a [T],
    /// Values between the starts of consecutive heads.
    pub head_stride: usize,
}

impl<'a, T> CacheView<'a, T> {
    /// The first `len` values of head `h`.
    fn head(&self, h: usize, len: usize) -> &'a [T] {
        &self.data[h * self.head_stride..h * self.head_stride + len]
    }
}

/// A type the cache is stored in: f32 or f16. For f16 the results equal, bit for bit, those
/// over the same values stored as f32.
pub trait CacheValue: Copy + Sync + sealed::Lanes {}

impl CacheValue for f32 {}
impl CacheValue for f16 {}

/// How the loops read a cached type. Sealed: only the two types above implement it.
mod sealed {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    use half::f16;

    pub trait Lanes: Copy {
        /// The value as f32, exactly.
        fn to_f32(self) -> f32;

        /// Four values from `p` as f32x4.
        ///
        /// # Safety
        /// `p` must point at four readable values.
        #[cfg(target_arch = "wasm32")]
        unsafe fn load4(p: *const Self) -> std::arch::wasm32::v128;

        /// Eight values from `p` as f32x8.
        ///
        /// # Safety
        /// The CPU must have AVX2 and F16C; `p` must point at eight readable values.
        #[cfg(target_arch = "x86_64")]
        unsafe fn load8(p: *const Self) -> __m256;
    }

    impl Lanes for f32 {
        #[inline(always)]
        fn to_f32(self) -> f32 {
            self
        }

        #[cfg(target_arch = "wasm32")]
        #[inline(always)]
        unsafe fn load4(p: *const f32) -> std::arch::wasm32::v128 {
            // SAFETY: by the contract.
            unsafe { std::arch::wasm32::v128_load(p.cast()) }
        }

        #[cfg(target_arch = "x86_64")]
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn load8(p: *const f32) -> __m256 {
            // SAFETY: by the contract.
            unsafe { _mm256_loadu_ps(p) }
        }
    }

    impl Lanes for f16 {
        #[inline(always)]
        fn to_f32(self) -> f32 {
            f16::to_f32(self)
        }

        #[cfg(target_arch = "wasm32")]
        #[inline(always)]
        unsafe fn load4(p: *const f16) -> std::arch::wasm32::v128 {
            use std::arch::wasm32::u32x4_load_extend_u16x4;
            // SAFETY: by the contract.
            super::simd128::widen(unsafe { u32x4_load_extend_u16x4(p.cast()) })
        }

        /// F16C's conversion, exact as `half`'s (which uses it where the CPU has it).
        #[cfg(target_arch = "x86_64")]
        #[inline]
        #[target_feature(enable = "avx2,f16c")]
        unsafe fn load8(p: *const f16) -> __m256 {
            // SAFETY: by the contract.
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
        }
    }
}

/// `softmax(q kᵀ / √d) v` for one query row per head (`q` holds `heads × d` values), over `n`
/// positions of `kv_heads` heads (query head `h` reads kv head `h / (heads / kv_heads)`);
/// returns `heads × d` values. Runs of heads are split across the global pool when each run
/// has enough work.
///
/// # Panics
/// When the sizes disagree: `heads` not a multiple of `kv_heads`, `q` not `heads × d`, or a
/// view shorter than its heads and rows.
pub fn one_query<T: CacheValue>(
    q: &[f32],
    keys: CacheView<T>,
    values: CacheView<T>,
    kv_heads: usize,
    n: usize,
    d: usize,
) -> Vec<f32> {
    one_query_on(pool::global(), q, keys, values, kv_heads, n, d)
}

/// Multiply-adds that make a run of heads worth a task of its own: a short cache is done
/// sooner on one thread than the pool takes to hand out the tasks.
const TASK_WORK: usize = 16 * 1024;

/// The fewest heads a task gets over `n` cached positions of `d` values: keys and values make
/// two multiply-adds per cached value.
fn heads_per_task(n: usize, d: usize) -> usize {
    TASK_WORK.div_ceil((2 * n * d).max(1)).max(1)
}

/// [`one_query`] with its heads split across `pool`, or on the caller alone.
pub(crate) fn one_query_on<T: CacheValue>(
    pool: Option<&Pool>,
    q: &[f32],
    keys: CacheView<T>,
    values: CacheView<T>,
    kv_heads: usize,
    n: usize,
    d: usize,
) -> Vec<f32> {
    let heads = q.len() / d.max(1);
    assert!(
        kv_heads > 0 && heads.is_multiple_of(kv_heads) && q.len() == heads * d,
        "attention: {} query values for heads of {d} over {kv_heads} kv heads",
        q.len()
    );
    for view in [keys, values] {
        assert!(
            view.data.len() >= (kv_heads - 1) * view.head_stride + n * d,
            "attention: a cache view of {} values for {kv_heads} heads of {n} × {d}",
            view.data.len()
        );
    }
    let group = heads / kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; heads * d];
    let shared = pool::Disjoint::new(&mut out);
    pool::for_each_range(pool, heads, heads_per_task(n, d), |range| {
        let mut scores = vec![0f32; n];
        for h in range {
            let kv = h / group;
            // SAFETY: each head's values are written by the one task that has the head.
            let out = unsafe { shared.slice(h * d..(h + 1) * d) };
            let this = Head {
                query: &q[h * d..(h + 1) * d],
                keys: keys.head(kv, n * d),
                values: values.head(kv, n * d),
                scale,
            };
            head(this, &mut scores, out);
        }
    });
    out
}

/// One query head and its kv head's cached rows, `query.len()` values each: what [`head`]
/// attends over.
#[derive(Clone, Copy)]
struct Head<'a, T> {
    query: &'a [f32],
    keys: &'a [T],
    values: &'a [T],
    /// What the dots are multiplied by: 1/√d.
    scale: f32,
}

impl<'a, T> Head<'a, T> {
    /// Each key.
    fn key_rows(&self) -> std::slice::ChunksExact<'a, T> {
        self.keys.chunks_exact(self.query.len())
    }

    /// Each value.
    fn value_rows(&self) -> std::slice::ChunksExact<'a, T> {
        self.values.chunks_exact(self.query.len())
    }
}

/// One instruction set's loops over cached rows, which [`by_fours`] drives.
///
/// # Safety
/// Each method needs the CPU to have the implementation's instructions.
trait RowKernels {
    /// f32 lanes in one vector: rows of a multiple of this many values go four at a time.
    const LANES: usize;

    /// The dots of `query` with the four rows `rows` starts with.
    ///
    /// # Panics
    /// When `rows` holds fewer than four rows of `query.len()`, or that is not a multiple of
    /// [`Self::LANES`].
    unsafe fn dot4<T: sealed::Lanes>(query: &[f32], rows: &[T]) -> [f32; 4];

    /// `out += Σᵣ weights[r] · row r` over the four rows `rows` starts with, in one pass over
    /// `out`: bit for bit the sums [`Self::add_scaled`] gives row by row.
    ///
    /// # Panics
    /// As [`Self::dot4`], with `out` for the query.
    unsafe fn add4<T: sealed::Lanes>(out: &mut [f32], rows: &[T], weights: [f32; 4]);

    /// `Σ aᵢ bᵢ` of one row of any length.
    unsafe fn dot<T: sealed::Lanes>(a: &[f32], b: &[T]) -> f32;

    /// `out += weight · row` for one row of any length.
    unsafe fn add_scaled<T: sealed::Lanes>(out: &mut [f32], row: &[T], weight: f32);
}

/// [`head`] by `K`'s loops: the scores of four keys at a time where rows are whole vectors,
/// then each key left over, their softmax's numerators, and four values at a time added to
/// `out`, then each value left over. Four rows in one pass share the query's loads and `out`'s,
/// and their dots run in four chains rather than one (in SIMD128 a 64-value row's dot was
/// sixteen dependent adds). Inlined into a caller compiled with `K`'s instructions, so that
/// its loops are too.
///
/// # Safety
/// The CPU must have `K`'s instructions.
#[inline(always)]
unsafe fn by_fours<K: RowKernels, T: CacheValue>(
    head: Head<T>,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let d = head.query.len();
    let quads = if d.is_multiple_of(K::LANES) {
        scores.len() / 4
    } else {
        0
    };
    let keys = head.keys.chunks_exact(4 * d);
    for (four, keys) in scores.chunks_exact_mut(4).take(quads).zip(keys) {
        // SAFETY: by the contract.
        let dots = unsafe { K::dot4(head.query, keys) };
        for (score, dot) in four.iter_mut().zip(dots) {
            *score = dot * head.scale;
        }
    }
    for (score, key) in scores.iter_mut().zip(head.key_rows()).skip(4 * quads) {
        // SAFETY: by the contract.
        *score = unsafe { K::dot(head.query, key) } * head.scale;
    }
    let inverse = 1.0 / softmax_numerators(scores);
    let values = head.values.chunks_exact(4 * d);
    for (four, values) in scores.chunks_exact(4).take(quads).zip(values) {
        let weights = [0, 1, 2, 3].map(|r| four[r] * inverse);
        // SAFETY: by the contract.
        unsafe { K::add4(out, values, weights) };
    }
    for (&weight, value) in scores.iter().zip(head.value_rows()).skip(4 * quads) {
        // SAFETY: by the contract.
        unsafe { K::add_scaled(out, value, weight * inverse) };
    }
}

/// `out += Σⱼ softmax(scale · q·kⱼ)ⱼ vⱼ` over as many rows as `scores` holds, the scores
/// computed in `scores`.
fn head<T: CacheValue>(head: Head<T>, scores: &mut [f32], out: &mut [f32]) {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: every wasm32 build has SIMD128 (`.cargo/config.toml`).
        unsafe { by_fours::<simd128::Simd128, T>(head, scores, out) }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // SAFETY: the CPU has the instructions.
            return unsafe { avx2::head(head, scores, out) };
        }
        portable_head(head, scores, out)
    }
}

/// [`head`] in portable loops, a value at a time.
#[cfg(not(target_arch = "wasm32"))]
fn portable_head<T: CacheValue>(head: Head<T>, scores: &mut [f32], out: &mut [f32]) {
    for (score, key) in scores.iter_mut().zip(head.key_rows()) {
        let dot: f32 = head
            .query
            .iter()
            .zip(key)
            .map(|(q, k)| q * k.to_f32())
            .sum();
        *score = dot * head.scale;
    }
    let inverse = 1.0 / softmax_numerators(scores);
    for (&weight, value) in scores.iter().zip(head.value_rows()) {
        let weight = weight * inverse;
        for (o, v) in out.iter_mut().zip(value) {
            *o += weight * v.to_f32();
        }
    }
}

/// The softmax of a prompt's attention scores under the causal mask, in place: `scores` holds
/// rows of `total` values, a query's scores against every position of the cache, whose last
/// `seq` positions are the prompt's; row r is the query at prompt position `r % seq` (heads
/// and query heads of a group follow one another), which sees the `total - seq + r % seq + 1`
/// first positions. Its scores there are multiplied by `scale` and replaced by their softmax
/// (exponentials four at a time in wasm32); the later positions get 0.
///
/// # Panics
/// When `scores` is not whole rows of `total`, or `seq` exceeds `total` or is 0.
pub fn causal_softmax(scores: &mut [f32], total: usize, seq: usize, scale: f32) {
    assert!(
        seq > 0 && seq <= total && scores.len().is_multiple_of(total),
        "causal softmax: {} scores are not rows of {total} with {seq} queries",
        scores.len()
    );
    for (r, row) in scores.chunks_exact_mut(total).enumerate() {
        let (seen, masked) = row.split_at_mut(total - seq + r % seq + 1);
        for score in seen.iter_mut() {
            *score *= scale;
        }
        let inverse = 1.0 / softmax_numerators(seen);
        for score in seen {
            *score *= inverse;
        }
        masked.fill(0.0);
    }
}

/// Replaces each score `s` by `exp(s - max)` and returns their sum.
fn softmax_numerators(scores: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU has the instructions.
        return unsafe { avx2::softmax_numerators(scores) };
    }
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    #[cfg(target_arch = "wasm32")]
    {
        simd128::exp_minus(scores, max)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let mut total = 0.0;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            total += *score;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// A query of `heads × d` values, and a cache of two kv heads of `n` rows, `stride` apart.
    fn query_and_cache(heads: usize, d: usize, n: usize, stride: usize) -> (Vec<f32>, Vec<f32>) {
        let q = (0..heads * d).map(|i| (i as f32 * 0.3).cos()).collect();
        let data = (0..stride + n * d)
            .map(|i| (i as f32 * 0.17).sin())
            .collect();
        (q, data)
    }

    /// Against the softmax written out with the mask as -inf added, for two heads of three
    /// queries after two cached positions: within 1e-6, and the masked positions exactly 0.
    #[test]
    fn the_causal_softmax_is_the_masked_softmax_written_out() {
        let (seq, total, scale) = (3, 5, 0.5);
        let scores: Vec<f32> = (0..2 * seq * total)
            .map(|i| (i as f32 * 0.7).sin() * 30.0)
            .collect();
        let mut got = scores.clone();
        causal_softmax(&mut got, total, seq, scale);
        for (r, (row, got)) in scores
            .chunks_exact(total)
            .zip(got.chunks_exact(total))
            .enumerate()
        {
            let masked: Vec<f32> = row
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    if j > total - seq + r % seq {
                        f32::NEG_INFINITY
                    } else {
                        s * scale
                    }
                })
                .collect();
            let max = masked.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let sum: f32 = masked.iter().map(|s| (s - max).exp()).sum();
            for (j, (&s, &g)) in masked.iter().zip(got).enumerate() {
                let expected = (s - max).exp() / sum;
                assert!(
                    (g - expected).abs() <= 1e-6,
                    "[{r}, {j}]: {g} against {expected}"
                );
                if s == f32::NEG_INFINITY {
                    assert_eq!(g, 0.0);
                }
            }
        }
    }

    #[test]
    fn equals_the_softmax_of_the_scores_written_out() {
        // Four query heads over two kv heads, heads `stride` apart: three positions of 8 values
        // (rows one by one), and nine of 16 (two runs of four rows, then one).
        for (d, n, stride) in [(8, 3, 40), (16, 9, 150)] {
            let (q, data) = query_and_cache(4, d, n, stride);
            let view = CacheView {
                data: &data,
                head_stride: stride,
            };
            let got = one_query(&q, view, view, 2, n, d);
            for h in 0..4 {
                let row = |j: usize| &data[(h / 2) * stride + j * d..][..d];
                let scores: Vec<f32> = (0..n)
                    .map(|j| {
                        q[h * d..(h + 1) * d]
                            .iter()
                            .zip(row(j))
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                            / (d as f32).sqrt()
                    })
                    .collect();
                let total: f32 = scores.iter().map(|s| s.exp()).sum();
                for i in 0..d {
                    let expected: f32 = (0..n).map(|j| scores[j].exp() / total * row(j)[i]).sum();
                    assert!(
                        (got[h * d + i] - expected).abs() < 1e-5,
                        "{n} positions of {d}: head {h}, value {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_f16_cache_gives_what_the_f32_cache_of_its_values_gives_bit_for_bit() {
        // Rows of 10 values, so that both the vector loops and their tails run, and rows of 16
        // in runs of four and one left over.
        for (d, n, stride) in [(10, 5, 60), (16, 9, 150)] {
            let (q, data) = query_and_cache(4, d, n, stride);
            let halves: Vec<f16> = data.iter().map(|&x| f16::from_f32(x * 3.0)).collect();
            let widened: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
            let narrow = CacheView {
                data: &halves[..],
                head_stride: stride,
            };
            let wide = CacheView {
                data: &widened[..],
                head_stride: stride,
            };
            let narrow = one_query(&q, narrow, narrow, 2, n, d);
            let wide = one_query(&q, wide, wide, 2, n, d);
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            assert_eq!(bits(narrow), bits(wide), "{n} positions of {d}");
        }
    }

    /// Every f16, widened four at a time in registers, against the `half` crate.
    #[cfg(target_arch = "wasm32")]
    #[test]
    fn f16_widens_in_registers_as_the_half_crate_does() {
        use std::arch::wasm32::{u32x4, v128_store};
        for first in (0..=u16::MAX).step_by(4) {
            let bits = [first, first + 1, first + 2, first + 3];
            let mut got = [0f32; 4];
            let lanes = u32x4(
                bits[0].into(),
                bits[1].into(),
                bits[2].into(),
                bits[3].into(),
            );
            // SAFETY: `got` holds four f32.
            unsafe { v128_store(got.as_mut_ptr().cast(), simd128::widen(lanes)) };
            for (&h, got) in bits.iter().zip(got) {
                let want = f16::from_bits(h).to_f32();
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{h:#06x}: {got:e} against {want:e}"
                );
            }
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_pool_gives_what_one_thread_gives() {
        // Eight query heads over two kv heads, long enough a cache that the heads split.
        let (d, n, stride) = (64, 300, 300 * 64 + 5);
        let (q, data) = query_and_cache(8, d, n, stride);
        let view = CacheView {
            data: &data,
            head_stride: stride,
        };
        assert!(heads_per_task(n, d) < 8, "the heads would not split");
        let alone = one_query_on(None, &q, view, view, 2, n, d);
        let pool = crate::pool::tests::native(2);
        for _ in 0..20 {
            assert_eq!(one_query_on(Some(&pool), &q, view, view, 2, n, d), alone);
        }
        assert!(pool.work().tasks > 0, "nothing was offered to the pool");
    }

    /// AVX2's loops (which the tests above run where the CPU has them) against the portable
    /// ones, on rows with tails past the lanes.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_head_gives_what_the_portable_one_gives() {
        assert!(avx2::available(), "the CPU lacks AVX2, FMA or F16C");
        for (d, n) in [(64, 300), (13, 7), (24, 1)] {
            let (q, data) = query_and_cache(1, d, 2 * n, 0);
            let (keys, values) = data[..2 * n * d].split_at(n * d);
            let halves: Vec<f16> = data.iter().map(|&x| f16::from_f32(x)).collect();
            let (half_keys, half_values) = halves[..2 * n * d].split_at(n * d);
            let run = |f: &dyn Fn(&mut [f32], &mut [f32])| {
                let (mut scores, mut out) = (vec![0f32; n], vec![0.5f32; d]);
                f(&mut scores, &mut out);
                out
            };
            let wide = Head {
                query: &q,
                keys,
                values,
                scale: 0.3,
            };
            let narrow = Head {
                query: &q,
                keys: half_keys,
                values: half_values,
                scale: 0.3,
            };
            // SAFETY (both `avx2::head` calls): the CPU has the instructions, asserted above.
            let pairs = [
                (
                    run(&|s, o| unsafe { avx2::head(wide, s, o) }),
                    run(&|s, o| portable_head(wide, s, o)),
                ),
                (
                    run(&|s, o| unsafe { avx2::head(narrow, s, o) }),
                    run(&|s, o| portable_head(narrow, s, o)),
                ),
            ];
            for (got, want) in pairs {
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5,
                        "d {d}, n {n}, value {i}: {g} against {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn softmax_numerators_are_the_shifted_exponentials() {
        let mut scores = [0.5, -1.0, f32::NEG_INFINITY, 2.0, 1.5];
        let total = softmax_numerators(&mut scores);
        let expected = [(-1.5f32).exp(), (-3f32).exp(), 0.0, 1.0, (-0.5f32).exp()];
        for (got, want) in scores.iter().zip(expected) {
            assert!(
                (got - want).abs() <= 2.0 * f32::EPSILON,
                "{got} against {want}"
            );
        }
        assert!((total - expected.iter().sum::<f32>()).abs() < 1e-6);
    }

    #[test]
    #[should_panic(expected = "a cache view of")]
    fn a_short_view_is_refused() {
        let data = [0.0; 10];
        let view = CacheView {
            data: &data,
            head_stride: 8,
        };
        one_query(&[0.0; 16], view, view, 2, 1, 8);
    }
}
