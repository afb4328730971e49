//! The AVX2 Q4_1 matmul, with AVX-VNNI where the CPU has it.

use std::arch::x86_64::*;

use super::{Row, GROUP, GROUP_BLOCK_BYTES};
use crate::int8::avx2::{fold, PREFETCH};
use crate::int8::EXPANDED_BLOCK;

/// How a block's two vectors of quants (words 0 and 1 of the four rows, then 2 and 3) meet the
/// expanded activations: their low nibbles words 0..4 of the activations, their high ones words
/// 4..8; the four rows' exact sums, one per lane.
trait Block {
    /// # Safety
    /// The CPU must have the instructions; `w` must point at a packed block's 64 bytes of
    /// quants and `x` at its [`EXPANDED_BLOCK`] activations.
    unsafe fn sums(w: *const u8, x: *const i8) -> __m128i;
}

/// Vector `i` of the quants at `w`, split into its low and high nibbles, and the activations
/// each meets.
///
/// # Safety
/// As [`Block::sums`]; `i` is 0 or 1.
#[inline(always)]
unsafe fn halves(w: *const u8, x: *const i8, i: usize) -> [(__m256i, __m256i); 2] {
    // SAFETY: as the contract says.
    unsafe {
        let q = _mm256_loadu_si256(w.add(32 * i) as *const __m256i);
        let mask = _mm256_set1_epi8(0x0F);
        let load = |at: usize| _mm256_loadu_si256(x.add(at) as *const __m256i);
        [
            (_mm256_and_si256(q, mask), load(32 * i)),
            (
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask),
                load(EXPANDED_BLOCK / 2 + 32 * i),
            ),
        ]
    }
}

/// AVX-VNNI: one `vpdpbusd` per 32 nibbles (unsigned, 0..16) and activations, in two chains.
struct Vnni;

impl Block for Vnni {
    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn sums(w: *const u8, x: *const i8) -> __m128i {
        let mut acc = [_mm256_setzero_si256(); 2];
        for i in 0..2 {
            // SAFETY: as the contract says.
            for (acc, (q, x)) in acc.iter_mut().zip(unsafe { halves(w, x, i) }) {
                *acc = _mm256_dpbusd_avx_epi32(*acc, q, x);
            }
        }
        fold(_mm256_add_epi32(acc[0], acc[1]))
    }
}

/// AVX2: `maddubs` sums the products in pairs as i16 (at most 2·15·127, no saturation), and
/// `madd` by ones sums the pairs into i32.
struct Madd;

impl Block for Madd {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn sums(w: *const u8, x: *const i8) -> __m128i {
        let mut acc = _mm256_setzero_si256();
        for i in 0..2 {
            // SAFETY: as the contract says.
            for (q, x) in unsafe { halves(w, x, i) } {
                let pairs = _mm256_maddubs_epi16(q, x);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
            }
        }
        fold(acc)
    }
}

/// The SIMD128 `dot4`'s AVX2 twin, equal to the portable loop bit for bit.
///
/// # Safety
/// The CPU must have AVX2 and what `B` uses; the lengths must be as `super::dot4` asserts.
#[inline(always)]
unsafe fn dot4_with<B: Block>(x: Row, group: &[u8]) -> [f32; GROUP] {
    let mut acc = _mm_setzero_ps();
    for (b, (&x_scale, &x_sum)) in x.scales.iter().zip(x.sums).enumerate() {
        // SAFETY: in bounds by this function's contract.
        unsafe {
            let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH) as *const i8);
            let sums = B::sums(at.add(GROUP * 8), x.quants.as_ptr().add(b * EXPANDED_BLOCK));
            let scale = _mm_mul_ps(_mm_loadu_ps(at as *const f32), _mm_set1_ps(x_scale));
            acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(sums), scale));
            let mins = _mm_loadu_ps(at.add(GROUP * 4) as *const f32);
            acc = _mm_add_ps(acc, _mm_mul_ps(mins, _mm_set1_ps(x_scale * x_sum as f32)));
        }
    }
    let mut out = [0f32; GROUP];
    // SAFETY: `out` holds four f32.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), acc) };
    out
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn dot4_vnni(x: Row, group: &[u8]) -> [f32; GROUP] {
    // SAFETY: as `dot4`'s contract.
    unsafe { dot4_with::<Vnni>(x, group) }
}

#[target_feature(enable = "avx2")]
unsafe fn dot4_madd(x: Row, group: &[u8]) -> [f32; GROUP] {
    // SAFETY: as `dot4`'s contract.
    unsafe { dot4_with::<Madd>(x, group) }
}

/// One expanded activation row against one packed group: by `vpdpbusd` when `vnni`, else by
/// `maddubs`.
///
/// # Safety
/// The CPU must have AVX2, and AVX-VNNI when `vnni`; the lengths must be as `super::dot4`
/// asserts.
pub(super) unsafe fn dot4(vnni: bool, x: Row, group: &[u8]) -> [f32; GROUP] {
    // SAFETY: as this function's contract.
    unsafe {
        if vnni {
            dot4_vnni(x, group)
        } else {
            dot4_madd(x, group)
        }
    }
}
