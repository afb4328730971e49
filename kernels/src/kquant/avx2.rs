use std::arch::x86_64::*;

use super::{d_dmin, order, scaled, Activation, KQuant, Terms, SUPER};
pub(super) use crate::int8::avx2::vnni;

/// Whether the CPU has what these kernels need: AVX2, and F16C for the super-blocks' f16
/// scales (detected once; later calls read a cached flag).
pub(super) fn available() -> bool {
    crate::int8::avx2::available() && std::is_x86_feature_detected!("f16c")
}

/// How 32 unsigned quants meet 32 activation quants: each i32 lane of the result is `acc`'s
/// plus the four products of its four bytes, exactly.
trait Dot {
    /// # Safety
    /// The CPU must have the instructions; `x` must point at 32 readable quants.
    unsafe fn dot(acc: __m256i, q: __m256i, x: *const i8) -> __m256i;
}

/// AVX-VNNI: one `vpdpbusd`, which sums in i32.
struct Vnni;

impl Dot for Vnni {
    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn dot(acc: __m256i, q: __m256i, x: *const i8) -> __m256i {
        // SAFETY: `x` as the contract says.
        _mm256_dpbusd_avx_epi32(acc, q, unsafe { _mm256_loadu_si256(x as *const __m256i) })
    }
}

/// AVX2: `maddubs` sums the products in pairs as i16 (at most 2·63·127, no saturation), and
/// `madd` by ones sums the pairs into i32.
struct Madd;

impl Dot for Madd {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dot(acc: __m256i, q: __m256i, x: *const i8) -> __m256i {
        // SAFETY: `x` as the contract says.
        let x = unsafe { _mm256_loadu_si256(x as *const __m256i) };
        let pairs = _mm256_maddubs_epi16(q, x);
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }
}

/// `[Σa, Σb, Σc, Σd]`: the lanes of four vectors summed, one vector per output lane.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose_sum(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
    let abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    _mm_add_epi32(
        _mm256_castsi256_si128(abcd),
        _mm256_extracti128_si256::<1>(abcd),
    )
}

/// The lanes of `v` summed.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256i) -> i32 {
    hsum128(_mm_add_epi32(
        _mm256_castsi256_si128(v),
        _mm256_extracti128_si256::<1>(v),
    ))
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum128(s: __m128i) -> i32 {
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// `[a.low + a.high, b.low + b.high]`: the 128-bit halves of `a` and of `b` added.
#[inline]
#[target_feature(enable = "avx2")]
fn fold(a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(a, b),
        _mm256_permute2x128_si256::<0x31>(a, b),
    )
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

/// What a super-block's sums are weighed with.
struct Header {
    /// The scale of each i32 lane of [`block_sums`]'s folded sums, as i32: Q4_K and Q5_K's
    /// eight sub-blocks in the first vector (the second unused), Q6_K's 16 runs in both.
    scales: [__m256i; 2],
    /// As i16: Q4_K and Q5_K's eight minimums in the low half, Q6_K's 16 scales (for its
    /// offset of 32).
    weights: __m256i,
}

/// The header of the super-block at `block`: Q4_K and Q5_K's 6-bit scales and minimums
/// unpacked by shuffles ([`scales_and_mins`]), the scales put in the order of the folded
/// lanes (sub-blocks 0, 2, 4, 6, then 1, 3, 5, 7); Q6_K's scales in the order of its folded
/// lanes, quarter by quarter (runs 0, 1, 8, 9 of quarter 0, 2, 3, 10, 11 of quarter 1, ...).
///
/// # Safety
/// `block` must point at one super-block of `kind`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn header(kind: KQuant, block: *const u8) -> Header {
    // SAFETY: a Q4_K or Q5_K super-block starts with 16 bytes of header; Q6_K keeps its 16
    // scales at 192..208.
    unsafe {
        match kind {
            KQuant::Q4K | KQuant::Q5K => {
                let packed = scales_and_mins(_mm_loadu_si128(block as *const __m128i));
                let folded = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, -1, -1, -1, -1, -1, -1, -1, -1);
                Header {
                    scales: [
                        _mm256_cvtepu8_epi32(_mm_shuffle_epi8(packed, folded)),
                        _mm256_setzero_si256(),
                    ],
                    weights: _mm256_zextsi128_si256(_mm_cvtepu8_epi16(_mm_srli_si128::<8>(packed))),
                }
            }
            KQuant::Q6K => {
                let scales = _mm_loadu_si128(block.add(192) as *const __m128i);
                let folded = _mm_shuffle_epi8(
                    scales,
                    _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15),
                );
                Header {
                    scales: [
                        _mm256_cvtepi8_epi32(folded),
                        _mm256_cvtepi8_epi32(_mm_srli_si128::<8>(folded)),
                    ],
                    weights: _mm256_cvtepi8_epi16(scales),
                }
            }
        }
    }
}

/// Vector `i` (0..8) of the super-block at `block`, as unsigned bytes in the order of the
/// activations' 32-byte vector `i` ([`order`]: each holds two of the interleaved order's
/// 16-byte vectors). Q4_K and Q5_K: `i = 2v + p`, nibbles `p` of quant bytes 32v..32v + 32,
/// so lane `c` of either half sums sub-block 2c + p; Q5_K's fifth bits, bit 2v (low half) or
/// 2v + 1 (high half) of `high`'s bytes 16p..16p + 16, at bit 4. Q6_K: `i = 4v + q`, quarter
/// `q` of bytes 32v..32v + 32 of `ql`'s two regions and of `qh` ([`q6_quarter`]), so each
/// lane sums one run of 16. Shifts are of 16-bit lanes, the bits they move across bytes
/// masked.
///
/// # Safety
/// `block` must point at one super-block of `kind`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn quants(kind: KQuant, block: *const u8, i: usize) -> __m256i {
    // SAFETY: every load stays inside the super-block (Q4_K: quants at 16..144; Q5_K: fifth
    // bits at 16..48, quants at 48..176; Q6_K: `ql` at 0..128, `qh` at 128..192).
    let load = |at: usize| unsafe { _mm256_loadu_si256(block.add(at) as *const __m256i) };
    let low4 = _mm256_set1_epi8(0x0F);
    match kind {
        KQuant::Q4K | KQuant::Q5K => {
            let (v, p) = (i / 2, i % 2);
            let bytes = load(order::quants_at(kind) + 32 * v);
            let nibbles = match p {
                0 => _mm256_and_si256(bytes, low4),
                _ => _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), low4),
            };
            if kind == KQuant::Q4K {
                return nibbles;
            }
            // SAFETY: as above.
            let high = unsafe { _mm_loadu_si128(block.add(16 + 16 * p) as *const __m128i) };
            // The high half one bit ahead, so that both halves take bit 2v to bit 4.
            let high = _mm256_srlv_epi32(
                _mm256_broadcastsi128_si256(high),
                _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1),
            );
            let fifth = match v {
                0 => _mm256_slli_epi16::<4>(high),
                1 => _mm256_slli_epi16::<2>(high),
                2 => high,
                _ => _mm256_srli_epi16::<2>(high),
            };
            _mm256_or_si256(nibbles, _mm256_and_si256(fifth, _mm256_set1_epi8(0x10)))
        }
        KQuant::Q6K => {
            let (v, q) = (i / 4, i % 4);
            q6_quarter(q, load(32 * v), load(64 + 32 * v), load(128 + 32 * v))
        }
    }
}

/// Quarter `q` of 32 Q6_K values as unsigned bytes 0..64, from 32 bytes of `ql`'s region 0
/// (`l1`), the matching 32 of region 1 (`l2`) and 32 of `qh` (`h`): the low four bits from
/// `l1` (quarters 0, 2) or `l2`, the low nibble for quarters 0 and 1; the high two bits 2q,
/// 2q + 1 of `h`, moved to bits 4 and 5.
#[inline]
#[target_feature(enable = "avx2")]
fn q6_quarter(q: usize, l1: __m256i, l2: __m256i, h: __m256i) -> __m256i {
    let (low4, high2) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
    let low = match q {
        0 => _mm256_and_si256(l1, low4),
        1 => _mm256_and_si256(l2, low4),
        2 => _mm256_and_si256(_mm256_srli_epi16::<4>(l1), low4),
        _ => _mm256_and_si256(_mm256_srli_epi16::<4>(l2), low4),
    };
    let high = match q {
        0 => _mm256_slli_epi16::<4>(h),
        1 => _mm256_slli_epi16::<2>(h),
        2 => h,
        _ => _mm256_srli_epi16::<2>(h),
    };
    _mm256_or_si256(low, _mm256_and_si256(high, high2))
}

/// Super-block `s`'s sums against activation row `x`, before the sum across lanes: the
/// lanes of the first add up to Σ scale·q·x (Q6_K: its quants taken unsigned, the offset of
/// 32·Σ scale·Σx taken off), those of the second to Σ min·Σx (zero for Q6_K). `quants(i)` is
/// [`quants`]`(kind, block, i)`, computed or kept.
///
/// # Safety
/// `x` must hold super-block `s`'s quants and sums.
#[inline(always)]
unsafe fn block_sums<D: Dot>(
    kind: KQuant,
    h: &Header,
    quants: impl Fn(usize) -> __m256i,
    x: &Activation,
    s: usize,
) -> (__m256i, __m128i) {
    // SAFETY: by the contract, every read below stays inside super-block `s` of `x`.
    unsafe {
        let xq = x.quants.as_ptr().add(s * SUPER);
        match kind {
            KQuant::Q4K | KQuant::Q5K => {
                // Low nibbles (even vectors) and high ones: lane c of either half of `acc[p]`
                // sums sub-block 2c + p.
                let mut acc = [_mm256_setzero_si256(); 2];
                for i in 0..8 {
                    acc[i % 2] = D::dot(acc[i % 2], quants(i), xq.add(32 * i));
                }
                let sums32 = _mm_loadu_si128(x.sums32.as_ptr().add(8 * s) as *const __m128i);
                (
                    _mm256_mullo_epi32(fold(acc[0], acc[1]), h.scales[0]),
                    _mm_madd_epi16(_mm256_castsi256_si128(h.weights), sums32),
                )
            }
            KQuant::Q6K => {
                // Quarter q's runs in `acc[q]`.
                let mut acc = [_mm256_setzero_si256(); 4];
                for i in 0..8 {
                    acc[i % 4] = D::dot(acc[i % 4], quants(i), xq.add(32 * i));
                }
                let sums = _mm256_loadu_si256(x.sums.as_ptr().add(16 * s) as *const __m256i);
                let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(h.weights, sums));
                let weighed = _mm256_add_epi32(
                    _mm256_mullo_epi32(fold(acc[0], acc[1]), h.scales[0]),
                    _mm256_mullo_epi32(fold(acc[2], acc[3]), h.scales[1]),
                );
                (_mm256_sub_epi32(weighed, offset), _mm_setzero_si128())
            }
        }
    }
}

/// Four consecutive super-blocks' terms (`super::scaled`) as f32 lanes, each computed as the
/// scalar code computes it: their sums ([`block_sums`]) summed across into one vector each
/// by horizontal adds ([`transpose_sum`] for the eight-lane ones), their f16 scales converted
/// together by F16C.
///
/// # Safety
/// `block` must point at the four super-blocks, `x_scales` at their four activation scales.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn four_terms(
    kind: KQuant,
    block: *const u8,
    sums: [(__m256i, __m128i); 4],
    x_scales: *const f32,
) -> __m128 {
    let [a, b, c, d] = sums;
    let sumi = _mm_cvtepi32_ps(transpose_sum(a.0, b.0, c.0, d.0));
    // SAFETY: by the contract, each read is inside one of the four super-blocks or of the
    // four scales.
    unsafe {
        let at = |k: usize| block.add(k * kind.block_bytes());
        let x_scale = _mm_loadu_ps(x_scales);
        match kind {
            KQuant::Q4K | KQuant::Q5K => {
                let summ = _mm_hadd_epi32(_mm_hadd_epi32(a.1, b.1), _mm_hadd_epi32(c.1, d.1));
                let summ = _mm_cvtepi32_ps(summ);
                // Each super-block's d and dmin, the f16 pair it starts with; the four d, then
                // the four dmin.
                let pair = |k: usize| (at(k) as *const i32).read_unaligned();
                let pairs = _mm_setr_epi32(pair(0), pair(1), pair(2), pair(3));
                let scales = _mm256_cvtph_ps(_mm_shuffle_epi8(
                    pairs,
                    _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15),
                ));
                let (d, dmin) = (
                    _mm256_castps256_ps128(scales),
                    _mm256_extractf128_ps::<1>(scales),
                );
                _mm_mul_ps(
                    x_scale,
                    _mm_sub_ps(_mm_mul_ps(d, sumi), _mm_mul_ps(dmin, summ)),
                )
            }
            KQuant::Q6K => {
                let d = |k: usize| (at(k).add(208) as *const i16).read_unaligned();
                let d = _mm_cvtph_ps(_mm_setr_epi16(d(0), d(1), d(2), d(3), 0, 0, 0, 0));
                _mm_mul_ps(x_scale, _mm_mul_ps(d, sumi))
            }
        }
    }
}

/// One weight row against one activation row (decode): each super-block's quants unpacked
/// as they are multiplied, four super-blocks finished in one vector.
///
/// # Safety
/// As for [`dot_rows`], with one activation row.
#[inline(always)]
unsafe fn decode<D: Dot>(kind: KQuant, row: &[u8], x: &Activation) -> f32 {
    let bytes = kind.block_bytes();
    let supers = row.len() / bytes;
    let whole = supers - supers % 4;
    // SAFETY: by the contract, the row holds `supers` super-blocks and `x` their quants,
    // sums and scales.
    unsafe {
        let sums = |s: usize| {
            let block = row.as_ptr().add(s * bytes);
            let h = header(kind, block);
            block_sums::<D>(kind, &h, |i| quants(kind, block, i), x, s)
        };
        let mut lanes = _mm_setzero_ps();
        for s in (0..whole).step_by(4) {
            let four = [sums(s), sums(s + 1), sums(s + 2), sums(s + 3)];
            let block = row.as_ptr().add(s * bytes);
            let terms = four_terms(kind, block, four, x.scales.as_ptr().add(s));
            lanes = _mm_add_ps(lanes, terms);
        }
        let mut terms = Terms::default();
        _mm_storeu_ps(terms.0.as_mut_ptr(), lanes);
        for (s, block) in row.chunks_exact(bytes).enumerate().skip(whole) {
            let (sumi, summ) = sums(s);
            let (d, dmin) = d_dmin(kind, block);
            terms.add(
                s,
                scaled(kind, x.scales[s], d, dmin, hsum(sumi), hsum128(summ)),
            );
        }
        terms.total()
    }
}

/// One weight row against several activation rows (a prompt): each super-block unpacked
/// once for all of them.
///
/// # Safety
/// As for [`dot_rows`].
#[inline(always)]
unsafe fn prompt<D: Dot>(kind: KQuant, row: &[u8], xs: &[Activation], out: &mut [f32]) {
    let mut terms = vec![Terms::default(); xs.len()];
    for (s, block) in row.chunks_exact(kind.block_bytes()).enumerate() {
        // SAFETY: by the contract, `block` is one super-block of `kind` and each of `xs`
        // holds its quants, sums and scales.
        unsafe {
            let h = header(kind, block.as_ptr());
            let q: [__m256i; 8] = std::array::from_fn(|i| quants(kind, block.as_ptr(), i));
            let (d, dmin) = d_dmin(kind, block);
            for (x, terms) in xs.iter().zip(terms.iter_mut()) {
                let (sumi, summ) = block_sums::<D>(kind, &h, |i| q[i], x, s);
                terms.add(
                    s,
                    scaled(kind, x.scales[s], d, dmin, hsum(sumi), hsum128(summ)),
                );
            }
        }
    }
    for (out, terms) in out.iter_mut().zip(terms) {
        *out = terms.total();
    }
}

/// [`decode`] or [`prompt`], compiled once per kind (the kind a constant in each).
#[inline(always)]
unsafe fn rows<D: Dot>(kind: KQuant, row: &[u8], xs: &[Activation], out: &mut [f32]) {
    #[inline(always)]
    unsafe fn of<D: Dot>(kind: KQuant, row: &[u8], xs: &[Activation], out: &mut [f32]) {
        // SAFETY: as this function's caller's contract says.
        unsafe {
            match xs {
                [x] => out[0] = decode::<D>(kind, row, x),
                _ => prompt::<D>(kind, row, xs, out),
            }
        }
    }
    // SAFETY: as above.
    unsafe {
        match kind {
            KQuant::Q4K => of::<D>(KQuant::Q4K, row, xs, out),
            KQuant::Q5K => of::<D>(KQuant::Q5K, row, xs, out),
            KQuant::Q6K => of::<D>(KQuant::Q6K, row, xs, out),
        }
    }
}

#[target_feature(enable = "avx2,f16c,avxvnni")]
unsafe fn rows_vnni(kind: KQuant, row: &[u8], xs: &[Activation], out: &mut [f32]) {
    // SAFETY: as [`dot_rows`]' contract says.
    unsafe { rows::<Vnni>(kind, row, xs, out) }
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn rows_madd(kind: KQuant, row: &[u8], xs: &[Activation], out: &mut [f32]) {
    // SAFETY: as [`dot_rows`]' contract says.
    unsafe { rows::<Madd>(kind, row, xs, out) }
}

/// The AVX2 twin of `portable_dot` for each activation row, over super-blocks interleaved as
/// [`super::pack`] lays them, equal to it bit for bit: the integer sums are exact, and the
/// floats are combined by the same operations in the same order. With `vnni` each 32 byte
/// products take one AVX-VNNI `vpdpbusd`, otherwise AVX2's `maddubs` and `madd`; each lane of
/// a dot sums one sub-block (Q6_K: one run of 16), weighed by its scale once per super-block.
///
/// # Safety
/// The CPU must have AVX2 and F16C ([`available`]), and AVX-VNNI where `vnni` ([`vnni`]);
/// `row` must be whole super-blocks of `kind`, each of `xs` hold 256 quants, 16 sums per 16
/// and 8 per 32 per super-block, and `out` one value per row of `xs`.
pub(super) unsafe fn dot_rows(
    vnni: bool,
    kind: KQuant,
    row: &[u8],
    xs: &[Activation],
    out: &mut [f32],
) {
    // SAFETY: as this function's contract says.
    unsafe {
        if vnni {
            rows_vnni(kind, row, xs, out)
        } else {
            rows_madd(kind, row, xs, out)
        }
    }
}
