//! The SIMD128 Q8_0 matmul, and the lanes of a vector, which the other wasm32 kernels read too.

use std::arch::wasm32::*;

use super::{Row, BLOCK, EXPANDED_BLOCK, GROUP, GROUP_BLOCK_BYTES, WORD};

/// The four lanes of `v` as f32.
pub(crate) fn lanes(v: v128) -> [f32; 4] {
    [
        f32x4_extract_lane::<0>(v),
        f32x4_extract_lane::<1>(v),
        f32x4_extract_lane::<2>(v),
        f32x4_extract_lane::<3>(v),
    ]
}

/// One expanded activation row against one packed group, the products widened to i16: per
/// word, the expanded activations' first eight bytes (the word twice) meet rows 0 and 1 in one
/// `i32x4.dot_i16x8_s` and rows 2 and 3 in another, each lane a pair of products, and the
/// block's pairs are added row by row at its end. Equal to the portable loop bit for bit.
pub(super) fn dot4(x: Row, group: &[u8]) -> [f32; GROUP] {
    let mut acc = f32x4_splat(0.0);
    for (b, &x_scale) in x.scales.iter().enumerate() {
        // SAFETY: `super::dot4` asserted that the row holds `x.scales.len()` expanded blocks
        // and the group as many blocks of GROUP_BLOCK_BYTES, four f32 scales first.
        unsafe {
            let xq = x.quants.as_ptr().add(b * EXPANDED_BLOCK);
            let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
            let w = at.add(GROUP * 4) as *const i8;
            let (mut low, mut high) = (i32x4_splat(0), i32x4_splat(0));
            for k in 0..BLOCK / WORD {
                let word = i16x8_load_extend_i8x8(xq.add(GROUP * WORD * k));
                let rows01 = i16x8_load_extend_i8x8(w.add(GROUP * WORD * k));
                let rows23 = i16x8_load_extend_i8x8(w.add(GROUP * WORD * k + 2 * WORD));
                low = i32x4_add(low, i32x4_dot_i16x8(rows01, word));
                high = i32x4_add(high, i32x4_dot_i16x8(rows23, word));
            }
            // Lanes 2i and 2i + 1 of `low` are row i's pairs (rows 0 and 1), of `high` rows 2
            // and 3's.
            let sums = i32x4_add(
                i32x4_shuffle::<0, 2, 4, 6>(low, high),
                i32x4_shuffle::<1, 3, 5, 7>(low, high),
            );
            let scale = f32x4_mul(v128_load(at as *const v128), f32x4_splat(x_scale));
            acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(sums), scale));
        }
    }
    lanes(acc)
}
