//! The AVX2 Q4_1 matmul, with AVX-VNNI where the CPU has it.

use std::arch::x86_64::*;

use super::{Row, GROUP, GROUP_BLOCK_BYTES};
use crate::int8::avx2::{self, fold, Block};
use crate::int8::EXPANDED_BLOCK;

/// Vector `i` of a block's quants at `w` (words 0 and 1 of the four rows, then 2 and 3), split
/// into its low nibbles, which meet words 0..4 of the expanded activations, and its high ones,
/// which meet words 4..8.
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

/// Q4_1 by AVX-VNNI: one `vpdpbusd` per 32 nibbles (unsigned, 0..16) and activations, in two
/// chains.
struct Vnni;

impl Block for Vnni {
    const BYTES: usize = GROUP_BLOCK_BYTES;
    const MINS: bool = true;

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn sums(w: *const u8, x: *const i8, _sum: i32) -> __m128i {
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

/// Q4_1 by AVX2: `maddubs` sums the products in pairs as i16 (at most 2·15·127, no
/// saturation), and `madd` by ones sums the pairs into i32.
struct Madd;

impl Block for Madd {
    const BYTES: usize = GROUP_BLOCK_BYTES;
    const MINS: bool = true;

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn sums(w: *const u8, x: *const i8, _sum: i32) -> __m128i {
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

/// One expanded activation row against one packed group: by `vpdpbusd` when `vnni`, else by
/// `maddubs`.
///
/// # Safety
/// The CPU must have AVX2, and AVX-VNNI when `vnni`; the lengths must be as `super::dot4`
/// asserts.
pub(super) unsafe fn dot4(vnni: bool, x: Row, group: &[u8]) -> [f32; GROUP] {
    // SAFETY: as this function's contract.
    unsafe { avx2::dot4::<Vnni, Madd>(vnni, x, group) }
}
