use std::arch::x86_64::*;

use super::{scaled, Activation, KQuant, Terms, SUPER};

pub(super) use crate::int8::avx2::available;

/// The lanes of `v` summed.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// Σ w·s over 16 values: the weights as i16 lanes, `s` the activations' sums per 16.
///
/// # Safety
/// `sums` must point at 16 readable values.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn weighted_sixteen(w: __m256i, sums: *const i16) -> i32 {
    hsum(_mm256_madd_epi16(
        w,
        _mm256_loadu_si256(sums as *const __m256i),
    ))
}

/// 32 unsigned quants (below 64) times the 32 activation quants at `x`, each pair of
/// products summed in i16 by `maddubs` (at most 2·63·127, no saturation), then each
/// 16-bit lane weighted by `scales` into eight i32 sums.
///
/// # Safety
/// `x` must point at 32 readable quants.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn products(q: __m256i, x: *const i8, scales: __m256i) -> __m256i {
    let x = _mm256_loadu_si256(x as *const __m256i);
    _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), scales)
}

/// What a super-block's quants are weighed with.
struct Header {
    d: f32,
    dmin: f32,
    /// Q4_K and Q5_K's minimums, each twice as i16 lanes, one per activation sum of 16
    /// (zero for Q6_K).
    mins: __m256i,
    /// Each chunk's scales as i16 lanes, one per pair of products.
    scales: [__m256i; 8],
    /// Q6_K's 16 scales widened to i16, for its offset of 32.
    q6_scales: __m256i,
}

/// The header of a super-block of `kind`: the 6-bit scales and minimums of Q4_K and Q5_K
/// unpacked by shuffles ([`scales_and_mins`]), and each chunk's scales spread over its
/// lanes by one byte shuffle.
///
/// # Safety
/// `block` must be one super-block of `kind`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn header(kind: KQuant, block: &[u8]) -> Header {
    // The i16 lane `k` of each 128-bit half in all eight of its lanes, `k` given per half.
    let spread = |v: __m256i, low: usize, high: usize| {
        let (low, high) = ((2 * low) as i16, (2 * high) as i16);
        let (low, high) = (low | (low + 1) << 8, high | (high + 1) << 8);
        _mm256_shuffle_epi8(
            v,
            _mm256_setr_m128i(_mm_set1_epi16(low), _mm_set1_epi16(high)),
        )
    };
    // SAFETY: a super-block is at least 144 bytes; the loads read bytes 0..16 (Q4_K, Q5_K)
    // and its 16 scales at 192..208 (Q6_K).
    unsafe {
        match kind {
            KQuant::Q4K | KQuant::Q5K => {
                let packed = scales_and_mins(_mm_loadu_si128(block.as_ptr() as *const __m128i));
                let wide = _mm256_cvtepu8_epi16(packed);
                let scales = _mm256_permute2x128_si256::<0x00>(wide, wide);
                let mins = _mm256_extracti128_si256::<1>(wide);
                let (d, dmin) = super::d_dmin(kind, block);
                Header {
                    d,
                    dmin,
                    mins: _mm256_setr_m128i(
                        _mm_unpacklo_epi16(mins, mins),
                        _mm_unpackhi_epi16(mins, mins),
                    ),
                    scales: std::array::from_fn(|c| spread(scales, c, c)),
                    q6_scales: _mm256_setzero_si256(),
                }
            }
            KQuant::Q6K => {
                let scales = block.as_ptr().add(192) as *const __m128i;
                let wide = _mm256_cvtepi8_epi16(_mm_loadu_si128(scales));
                let halves = [
                    _mm256_permute2x128_si256::<0x00>(wide, wide),
                    _mm256_permute2x128_si256::<0x11>(wide, wide),
                ];
                // Chunk `c` holds values 16·(2c) .. 16·(2c + 2): scales 2c and 2c + 1.
                Header {
                    d: super::d_dmin(kind, block).0,
                    dmin: 0.0,
                    mins: _mm256_setzero_si256(),
                    scales: std::array::from_fn(|c| {
                        spread(halves[c / 4], 2 * c % 8, (2 * c + 1) % 8)
                    }),
                    q6_scales: wide,
                }
            }
        }
    }
}

/// A Q4_K or Q5_K super-block's eight 6-bit scales (bytes 0..8) and minimums (bytes
/// 8..16) from its first 16 bytes, as the SIMD128 `scales_and_mins` unpacks them.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn scales_and_mins(header: __m128i) -> __m128i {
    let low = _mm_shuffle_epi8(
        header,
        _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15),
    );
    let masked = _mm_and_si128(
        low,
        _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0),
    );
    let nibbles = _mm_and_si128(
        _mm_srli_epi16::<4>(low),
        _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15),
    );
    // A negative index makes a zero byte.
    let top = _mm_shuffle_epi8(
        header,
        _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11),
    );
    let top = _mm_and_si128(_mm_srli_epi16::<2>(top), _mm_set1_epi8(0x30));
    _mm_or_si128(_mm_or_si128(masked, nibbles), top)
}

/// Calls `f(c, q)` for each 32-value chunk `c` of a super-block of `kind`, `q` holding its
/// quants as unsigned bytes.
///
/// Q4_K and Q5_K: each 32-byte run of quants holds chunk `2r` in its low nibbles and
/// `2r + 1` in its high ones, Q5_K's fifth bits `c` of the 32 bytes of `high`. Q6_K: value
/// `l + 32t` of a 128-value half takes its low four bits from byte `l` (t = 0, 2) or
/// `l + 32` of the half's `ql`, the low nibble for t < 2, and its high two bits from bits
/// 2t, 2t + 1 of byte `l` of the half's `qh`.
///
/// # Safety
/// `block` must be one super-block of `kind`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn each_chunk(kind: KQuant, block: &[u8], mut f: impl FnMut(usize, __m256i)) {
    let p = block.as_ptr();
    let low4 = _mm256_set1_epi8(0x0F);
    // SAFETY: `block` holds the super-block; every load stays inside it (Q4_K: quants
    // at 16..144; Q5_K: fifth bits at 16..48, quants at 48..176; Q6_K: `ql` at 0..128,
    // `qh` at 128..192).
    let load = |at: usize| unsafe { _mm256_loadu_si256(p.add(at) as *const __m256i) };
    match kind {
        KQuant::Q4K | KQuant::Q5K => {
            let (high, qs) = match kind {
                KQuant::Q5K => (Some(load(16)), 48),
                _ => (None, 16),
            };
            let fifth = |bits: __m256i, c: usize| {
                let bit = _mm256_srl_epi16(bits, _mm_cvtsi32_si128(c as i32));
                _mm256_slli_epi16::<4>(_mm256_and_si256(bit, _mm256_set1_epi8(1)))
            };
            for r in 0..4 {
                let q = load(qs + 32 * r);
                let mut low = _mm256_and_si256(q, low4);
                let mut top = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low4);
                if let Some(bits) = high {
                    low = _mm256_or_si256(low, fifth(bits, 2 * r));
                    top = _mm256_or_si256(top, fifth(bits, 2 * r + 1));
                }
                f(2 * r, low);
                f(2 * r + 1, top);
            }
        }
        KQuant::Q6K => {
            let high2 = _mm256_set1_epi8(0x30);
            for half in 0..2 {
                let (l1, l2, h) = (load(64 * half), load(64 * half + 32), load(128 + 32 * half));
                let quarters = [
                    _mm256_or_si256(
                        _mm256_and_si256(l1, low4),
                        _mm256_and_si256(_mm256_slli_epi16::<4>(h), high2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(l2, low4),
                        _mm256_and_si256(_mm256_slli_epi16::<2>(h), high2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(l1), low4),
                        _mm256_and_si256(h, high2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(l2), low4),
                        _mm256_and_si256(_mm256_srli_epi16::<2>(h), high2),
                    ),
                ];
                for (t, q) in quarters.into_iter().enumerate() {
                    f(4 * half + t, q);
                }
            }
        }
    }
}

/// A super-block's contribution to one activation row's dot product, from its integer
/// sum Σ scale·q·x over the chunks: Q4_K and Q5_K take off Σ min·Σx, Q6_K 32·Σ scale·Σx
/// (its quants were multiplied unsigned), and the floats are combined as the portable
/// loop combines them.
///
/// # Safety
/// `sums` must point at the super-block's 16 activation sums.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn finish(kind: KQuant, u: &Header, x_scale: f32, sumi: i32, sums: *const i16) -> f32 {
    // SAFETY: `sums` as this function's contract says.
    unsafe {
        match kind {
            KQuant::Q4K | KQuant::Q5K => {
                let summ = weighted_sixteen(u.mins, sums);
                scaled(kind, x_scale, u.d, u.dmin, sumi, summ)
            }
            KQuant::Q6K => {
                let sumi = sumi - 32 * weighted_sixteen(u.q6_scales, sums);
                scaled(kind, x_scale, u.d, 0.0, sumi, 0)
            }
        }
    }
}

/// The AVX2 twin of `portable_dot` for each activation row, equal to it bit for bit: the
/// integer sums are exact, and the floats are combined by the same code in the same
/// order. One row (decode) multiplies each chunk as it is unpacked; several (a prompt)
/// unpack each super-block once for all of them.
///
/// # Safety
/// The CPU must have AVX2; `row` must be whole super-blocks of `kind`, each of `xs` hold
/// 256 quants and 16 sums per super-block, and `out` one value per row of `xs`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_rows(kind: KQuant, row: &[u8], xs: &[Activation], out: &mut [f32]) {
    let blocks = row.chunks_exact(kind.block_bytes()).enumerate();
    if let [x] = xs {
        let mut terms = Terms::default();
        for (s, block) in blocks {
            // SAFETY: by this function's contract every pointer below stays inside the
            // super-block, its 256 activation quants and their 16 sums.
            unsafe {
                let h = header(kind, block);
                let xq = x.quants.as_ptr().add(s * SUPER);
                let mut acc = _mm256_setzero_si256();
                each_chunk(kind, block, |c, q| {
                    acc = _mm256_add_epi32(acc, products(q, xq.add(32 * c), h.scales[c]));
                });
                let sums = x.sums.as_ptr().add(16 * s);
                terms.add(s, finish(kind, &h, x.scales[s], hsum(acc), sums));
            }
        }
        out[0] = terms.total();
        return;
    }
    let mut terms = vec![Terms::default(); xs.len()];
    let mut quants = [_mm256_setzero_si256(); SUPER / 32];
    for (s, block) in blocks {
        // SAFETY: as above.
        unsafe {
            let h = header(kind, block);
            each_chunk(kind, block, |c, q| quants[c] = q);
            for (x, terms) in xs.iter().zip(terms.iter_mut()) {
                let xq = x.quants.as_ptr().add(s * SUPER);
                let mut acc = _mm256_setzero_si256();
                for (c, &q) in quants.iter().enumerate() {
                    acc = _mm256_add_epi32(acc, products(q, xq.add(32 * c), h.scales[c]));
                }
                let sums = x.sums.as_ptr().add(16 * s);
                terms.add(s, finish(kind, &h, x.scales[s], hsum(acc), sums));
            }
        }
    }
    for (out, terms) in out.iter_mut().zip(terms) {
        *out = terms.total();
    }
}
