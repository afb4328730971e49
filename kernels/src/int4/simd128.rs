//! The SIMD128 Q4_1 matmul; with relaxed SIMD, sixteen products per dot, and prompts four
//! activation rows per vector.

use std::arch::wasm32::*;

use super::{Row, BLOCK, GROUP, GROUP_BLOCK_BYTES};
use crate::int8::simd128::lanes;
use crate::int8::{EXPANDED_BLOCK, WORD};

/// 0x0F in every byte, the mask of each nibble (the high ones shifted down as 16-bit lanes, as
/// the K-quant kernels' `high_nibbles` does). Read from memory once per call: V8 builds a
/// `v128.const` where it is used (three to five instructions), and LLVM would put it inside the
/// loop.
static LOW_NIBBLES: v128 = u8x16(
    0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F,
);

/// Words of a block's quants per row.
const WORDS: usize = BLOCK / 2 / WORD;

/// The four rows' sums of one block, the products widened to i16: per word, the weights of
/// rows 0 and 1 (then 2 and 3) loaded widened to i16, their low nibbles masked and high ones
/// shifted down, each against the expanded activations' first eight bytes (the word twice) in
/// one `i32x4.dot_i16x8_s`, each lane a pair of products; the pairs are added row by row at the
/// end.
///
/// # Safety
/// `w` must point at a packed block's 64 bytes of quants and `x` at its expanded activations.
#[cfg(not(feature = "relaxed-simd"))]
#[inline(always)]
unsafe fn block_sums(mask: v128, w: *const u8, x: *const i8) -> v128 {
    let (mut low, mut high) = (i32x4_splat(0), i32x4_splat(0));
    for k in 0..WORDS {
        // A byte widened to 16 bits: its low nibble masked (`mask`'s high bytes are the
        // widened zeros anyway), its high nibble shifted down.
        let rows = [0, 1].map(|pair| u16x8_load_extend_u8x8(w.add(GROUP * WORD * k + 8 * pair)));
        // Low nibbles are values 4k.., high ones 16 + 4k..: words k and k + 4.
        let x_low = i16x8_load_extend_i8x8(x.add(GROUP * WORD * k));
        let x_high = i16x8_load_extend_i8x8(x.add(GROUP * WORD * (k + WORDS)));
        low = i32x4_add(low, i32x4_dot_i16x8(v128_and(rows[0], mask), x_low));
        high = i32x4_add(high, i32x4_dot_i16x8(v128_and(rows[1], mask), x_low));
        low = i32x4_add(low, i32x4_dot_i16x8(u16x8_shr(rows[0], 4), x_high));
        high = i32x4_add(high, i32x4_dot_i16x8(u16x8_shr(rows[1], 4), x_high));
    }
    // Lanes 2i and 2i + 1 of `low` are row i's pairs (rows 0 and 1), of `high` rows 2 and 3's.
    i32x4_add(
        i32x4_shuffle::<0, 2, 4, 6>(low, high),
        i32x4_shuffle::<1, 3, 5, 7>(low, high),
    )
}

/// [`block_sums`] by relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s`, sixteen products
/// per instruction, each row's in its own lane; exact everywhere, because the quants (0..16)
/// are its 7-bit operand.
///
/// # Safety
/// `w` must point at a packed block's 64 bytes of quants and `x` at its expanded activations.
#[cfg(feature = "relaxed-simd")]
#[inline(always)]
unsafe fn block_sums(mask: v128, w: *const u8, x: *const i8) -> v128 {
    let (mut low, mut high) = (i32x4_splat(0), i32x4_splat(0));
    for k in 0..WORDS {
        let q = v128_load(w.add(GROUP * WORD * k) as *const v128);
        let x = |word: usize| v128_load(x.add(GROUP * WORD * word) as *const v128);
        low = i32x4_relaxed_dot_i8x16_i7x16_add(x(k), v128_and(q, mask), low);
        high =
            i32x4_relaxed_dot_i8x16_i7x16_add(x(k + WORDS), v128_and(u16x8_shr(q, 4), mask), high);
    }
    i32x4_add(low, high)
}

/// One expanded activation row against one packed group, equal to the portable loop bit for
/// bit (whole blocks summed exactly in i32, then scaled and added in the same order).
#[cfg_attr(feature = "relaxed-simd", target_feature(enable = "relaxed-simd"))]
pub(super) fn dot4(x: Row, group: &[u8]) -> [f32; GROUP] {
    // SAFETY: a static, read as the value it is.
    let mask = unsafe { std::ptr::read_volatile(&LOW_NIBBLES) };
    let mut acc = f32x4_splat(0.0);
    for (b, (&x_scale, &x_sum)) in x.scales.iter().zip(x.sums).enumerate() {
        // SAFETY: `super::dot4` asserted that the row holds `x.scales.len()` expanded blocks
        // and the group as many blocks of GROUP_BLOCK_BYTES, four f32 scales and four f32
        // minimums first.
        unsafe {
            let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
            let sums = block_sums(
                mask,
                at.add(GROUP * 8),
                x.quants.as_ptr().add(b * EXPANDED_BLOCK),
            );
            let scale = f32x4_mul(v128_load(at as *const v128), f32x4_splat(x_scale));
            acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(sums), scale));
            let mins = v128_load(at.add(GROUP * 4) as *const v128);
            acc = f32x4_add(acc, f32x4_mul(mins, f32x4_splat(x_scale * x_sum as f32)));
        }
    }
    lanes(acc)
}

/// Every activation row of `x` (four rows or more) against one packed group, by relaxed dots
/// with four activation rows per vector (`int8::quads`): `out[r]` gets row r's four sums, equal
/// bit for bit to the portable loop's. The group's nibbles are split once, and each row's
/// words transposed back together, values 0..16 (the low nibbles of words 0..4) in one vector
/// and 16..32 in the next. Exact on every lowering of the dot, the nibbles being 7-bit.
#[cfg(feature = "relaxed-simd")]
#[target_feature(enable = "relaxed-simd")]
pub(super) fn prompt(x: &crate::int8::quads::Quads, group: &[u8], out: &mut [[f32; GROUP]]) {
    use crate::int8::quads::{rows_dot4, transpose};

    // SAFETY: a static, read as the value it is.
    let mask = unsafe { std::ptr::read_volatile(&LOW_NIBBLES) };
    let mut rows = Vec::with_capacity(8 * group.len() / GROUP_BLOCK_BYTES);
    for block in group.chunks_exact(GROUP_BLOCK_BYTES) {
        let words: [v128; WORDS] = std::array::from_fn(|k| {
            // SAFETY: a block's quants are four vectors, after eight f32.
            unsafe { v128_load(block[GROUP * 8 + GROUP * WORD * k..].as_ptr() as *const v128) }
        });
        let low = transpose(words.map(|w| v128_and(w, mask)));
        let high = transpose(words.map(|w| v128_and(u16x8_shr(w, 4), mask)));
        for (low, high) in low.into_iter().zip(high) {
            rows.extend([low, high]);
        }
    }
    rows_dot4::<true>(x, &rows, group, GROUP_BLOCK_BYTES, out);
}
