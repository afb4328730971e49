//! The AVX2 Q8_0 matmul, with AVX-VNNI where the CPU has it, and the decode loop the Q4_1 one
//! shares ([`dot4`] over a [`Block`]).

use std::arch::x86_64::*;

use super::{Row, EXPANDED_BLOCK, GROUP, GROUP_BLOCK_BYTES};

/// Whether the CPU has AVX2 (detected once; later calls read a cached flag).
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Whether the CPU has AVX-VNNI, whose `vpdpbusd` multiplies 32 byte pairs (unsigned by signed)
/// and adds them four by four into i32 lanes in one instruction.
pub(crate) fn vnni() -> bool {
    std::is_x86_feature_detected!("avxvnni")
}

/// A packed format's block, and how its quants meet the expanded activations by one way of
/// multiplying bytes: the four rows' exact sums, one per lane.
pub(crate) trait Block {
    /// Bytes of one block of a group.
    const BYTES: usize;
    /// Whether four f32 minimums follow the four f32 scales (Q4_1), each multiplied by s·Σx.
    const MINS: bool;

    /// # Safety
    /// The CPU must have the instructions; `w` must point at a packed block's quants (after
    /// its scales and minimums), `x` at its [`EXPANDED_BLOCK`] activations; `sum` is the
    /// block's Σx.
    unsafe fn sums(w: *const u8, x: *const i8, sum: i32) -> __m128i;
}

/// `[v.low + v.high]`: the 128-bit halves of `v` added, the same row in lanes i and i + 4.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn fold(v: __m256i) -> __m128i {
    _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
}

/// Q8_0 by AVX-VNNI: the weights plus 128 by one `vpdpbusd` per vector, in two chains started
/// at −128·Σx and at zero.
pub(super) struct Vnni;

impl Block for Vnni {
    const BYTES: usize = GROUP_BLOCK_BYTES;
    const MINS: bool = false;

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn sums(w: *const u8, x: *const i8, sum: i32) -> __m128i {
        let load = |i: usize, p: *const i8| {
            // SAFETY: vector i of 4 lies in the block's 128 bytes, by the contract.
            unsafe { _mm256_loadu_si256(p.add(32 * i) as *const __m256i) }
        };
        let quants = |i: usize| _mm256_xor_si256(load(i, w as *const i8), _mm256_set1_epi8(-128));
        let mut even = _mm256_zextsi128_si256(_mm_set1_epi32(-128 * sum));
        let mut odd = _mm256_setzero_si256();
        even = _mm256_dpbusd_avx_epi32(even, quants(0), load(0, x));
        odd = _mm256_dpbusd_avx_epi32(odd, quants(1), load(1, x));
        even = _mm256_dpbusd_avx_epi32(even, quants(2), load(2, x));
        odd = _mm256_dpbusd_avx_epi32(odd, quants(3), load(3, x));
        fold(_mm256_add_epi32(even, odd))
    }
}

/// Q8_0 by AVX2: `maddubs` multiplies `|w|` (unsigned; `|-128|` reads as 128, so every weight is
/// exact) by `x` carrying `w`'s sign, summing pairs as i16 (the activation quants lie in
/// -127..=127, so no pair saturates), and `madd` by ones sums the pairs into i32.
pub(super) struct Madd;

impl Block for Madd {
    const BYTES: usize = GROUP_BLOCK_BYTES;
    const MINS: bool = false;

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn sums(w: *const u8, x: *const i8, _sum: i32) -> __m128i {
        let mut acc = _mm256_setzero_si256();
        for i in 0..4 {
            // SAFETY: vector i of 4 lies in the block's 128 bytes, by the contract.
            let (w, x) = unsafe {
                (
                    _mm256_loadu_si256(w.add(32 * i) as *const __m256i),
                    _mm256_loadu_si256(x.add(32 * i) as *const __m256i),
                )
            };
            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
        }
        fold(acc)
    }
}

/// How far ahead of the block being read a decode asks for the weights (past the group's end,
/// the next group's, which `by_groups` takes next). The hardware's own prefetching left a decode
/// step at about 10.7 GB/s of a 12.5 GB/s single-thread read (`examples/smollm2.rs`, SmolLM2's
/// matrices); 2 KiB ahead it reads 11.1–11.7.
pub(crate) const PREFETCH: usize = 2048;

/// The SIMD128 `dot4`s' AVX2 twin, equal to the portable loops bit for bit (whole blocks summed
/// exactly in i32, then scaled and added in the same order; then, for Q4_1, the minimum times
/// s·Σx).
///
/// # Safety
/// The CPU must have AVX2 and what `B` uses; the lengths must be as the format's `dot4` asserts.
#[inline(always)]
unsafe fn dot4_with<B: Block>(x: Row, group: &[u8]) -> [f32; GROUP] {
    let quants = if B::MINS { GROUP * 8 } else { GROUP * 4 };
    let mut acc = _mm_setzero_ps();
    for (b, (&x_scale, &sum)) in x.scales.iter().zip(x.sums).enumerate() {
        // SAFETY: in bounds by this function's contract.
        unsafe {
            let at = group.as_ptr().add(b * B::BYTES);
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH) as *const i8);
            let sums = B::sums(
                at.add(quants),
                x.quants.as_ptr().add(b * EXPANDED_BLOCK),
                sum,
            );
            let scale = _mm_mul_ps(_mm_loadu_ps(at as *const f32), _mm_set1_ps(x_scale));
            acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(sums), scale));
            if B::MINS {
                let mins = _mm_loadu_ps(at.add(GROUP * 4) as *const f32);
                acc = _mm_add_ps(acc, _mm_mul_ps(mins, _mm_set1_ps(x_scale * sum as f32)));
            }
        }
    }
    let mut out = [0f32; GROUP];
    // SAFETY: `out` holds four f32.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), acc) };
    out
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn dot4_vnni<B: Block>(x: Row, group: &[u8]) -> [f32; GROUP] {
    // SAFETY: as `dot4`'s contract.
    unsafe { dot4_with::<B>(x, group) }
}

#[target_feature(enable = "avx2")]
unsafe fn dot4_madd<B: Block>(x: Row, group: &[u8]) -> [f32; GROUP] {
    // SAFETY: as `dot4`'s contract.
    unsafe { dot4_with::<B>(x, group) }
}

/// One expanded activation row against one packed group: by `V` (the format's `vpdpbusd`
/// blocks) when `vnni`, else by `M` (its `maddubs` ones).
///
/// # Safety
/// The CPU must have AVX2, and AVX-VNNI when `vnni`; the lengths must be as the format's
/// `dot4` asserts.
pub(crate) unsafe fn dot4<V: Block, M: Block>(vnni: bool, x: Row, group: &[u8]) -> [f32; GROUP] {
    // SAFETY: as this function's contract.
    unsafe {
        if vnni {
            dot4_vnni::<V>(x, group)
        } else {
            dot4_madd::<M>(x, group)
        }
    }
}
