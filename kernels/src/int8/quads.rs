//! A Q8_0 matmul by relaxed dots, where the browser multiplies the dot's second operand as
//! unsigned bytes and adds the products without saturating: Chromium on x86-64 with AVX-VNNI,
//! one `vpdpbusd` per sixteen products ([`unsigned_dot`] tells).
//!
//! Relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s` is exact everywhere only with a 7-bit
//! second operand, which Q8_0's signed weights are not. Where the dot is `vpdpbusd`, the weights
//! plus 128 (0..=255) are an exact operand, and the 128·Σx it adds is taken off by starting
//! each sum at −128·Σx. Four activation rows share a vector ([`Quads`]: lane i holds row i's
//! quants 4k..4k+4), so that one weight row's four quants, spread over the lanes, multiply all
//! four rows at once and a block's sums come out one row per lane, with no transposes; a quad's
//! eight vectors are loaded once per block for the group's four weight rows, and each weight
//! row is two loads and eight shuffles (the group's words, plus 128, are transposed back into
//! rows once per group). 1.85–2.0× the i16 path at 64 rows in the kernel bench
//! (bench/NOTES.md). A decode step's one row ([`row_dot4`])
//! takes each vector of the group's words, plus 128, by one dot with the expanded activations.

use std::arch::wasm32::*;

use super::simd128::lanes;
use super::{Row, BLOCK, EXPANDED_BLOCK, GROUP, GROUP_BLOCK_BYTES, WORD};

/// Activation rows from which a matmul takes this path: fewer would leave most of a quad's
/// lanes padding.
pub(crate) const MIN_ROWS: usize = 4;

/// Whether relaxed SIMD's dot multiplies its second operand's bytes as unsigned and adds the
/// products in i32 without saturating, as x86's `vpdpbusd` does. Elsewhere the answer differs:
/// `pmaddubsw` (x86 without AVX-VNNI) saturates its pairs, Arm's dots take both operands as
/// signed. V8 lowers the instruction alike in both its tiers.
#[target_feature(enable = "relaxed-simd")]
pub(super) fn unsigned_dot() -> bool {
    let a = std::hint::black_box(i8x16_splat(-128));
    let b = std::hint::black_box(u8x16_splat(255));
    i32x4_extract_lane::<0>(i32x4_relaxed_dot_i8x16_i7x16_add(a, b, i32x4_splat(0)))
        == 4 * -128 * 255
}

/// Activation rows four at a time: per quad of rows and block, eight vectors whose lane i holds
/// row i's quants 4k..4k+4 (vector k), then per quad and block Σx of each row (i32) and each
/// row's scale. The last quad's missing rows are zeros. The Q4_1 matmul's prompts read them too.
pub(crate) struct Quads {
    quants: Vec<v128>,
    sums: Vec<v128>,
    scales: Vec<v128>,
    blocks: usize,
}

impl Quads {
    /// The quads of `m` rows of quants `xq`, `xs` their block scales.
    #[target_feature(enable = "relaxed-simd")]
    pub(crate) fn new(xq: &[i8], xs: &[f32], m: usize) -> Self {
        let blocks = xs.len() / m;
        assert!(xq.len() == m * blocks * BLOCK && xs.len() == m * blocks);
        let units = m.div_ceil(4) * blocks;
        let mut quads = Quads {
            quants: Vec::with_capacity(8 * units),
            sums: Vec::with_capacity(units),
            scales: Vec::with_capacity(units),
            blocks,
        };
        let zeros = [0i8; BLOCK];
        for quad in 0..m.div_ceil(4) {
            for b in 0..blocks {
                let row = |i: usize| {
                    let r = 4 * quad + i;
                    if r < m {
                        &xq[(r * blocks + b) * BLOCK..][..BLOCK]
                    } else {
                        &zeros[..]
                    }
                };
                let rows = [row(0), row(1), row(2), row(3)];
                let mut sums = i32x4_splat(0);
                for half in 0..2 {
                    // SAFETY: each row holds BLOCK = 32 quants.
                    let v =
                        rows.map(|r| unsafe { v128_load(r[16 * half..].as_ptr() as *const v128) });
                    for k in transpose(v) {
                        // Σx per row: a second operand of ones is exact on every lowering.
                        sums = i32x4_relaxed_dot_i8x16_i7x16_add(k, i8x16_splat(1), sums);
                        quads.quants.push(k);
                    }
                }
                quads.sums.push(sums);
                let scale = |i: usize| {
                    let r = 4 * quad + i;
                    if r < m {
                        xs[r * blocks + b]
                    } else {
                        0.0
                    }
                };
                quads
                    .scales
                    .push(f32x4(scale(0), scale(1), scale(2), scale(3)));
            }
        }
        quads
    }

    /// Rows, counting the last quad's padding.
    fn rows(&self) -> usize {
        4 * self.scales.len() / self.blocks.max(1)
    }
}

/// Four vectors of four 32-bit lanes, transposed: vector k gets lane k of each.
pub(crate) fn transpose([r0, r1, r2, r3]: [v128; 4]) -> [v128; 4] {
    let t0 = i32x4_shuffle::<0, 4, 1, 5>(r0, r1);
    let t1 = i32x4_shuffle::<0, 4, 1, 5>(r2, r3);
    let t2 = i32x4_shuffle::<2, 6, 3, 7>(r0, r1);
    let t3 = i32x4_shuffle::<2, 6, 3, 7>(r2, r3);
    [
        i32x4_shuffle::<0, 1, 4, 5>(t0, t1),
        i32x4_shuffle::<2, 3, 6, 7>(t0, t1),
        i32x4_shuffle::<0, 1, 4, 5>(t2, t3),
        i32x4_shuffle::<2, 3, 6, 7>(t2, t3),
    ]
}

/// Every activation row of `x` against one packed group: `out[r]` gets row r's four sums,
/// equal bit for bit to the portable loop's. Only where [`unsigned_dot`] holds.
#[target_feature(enable = "relaxed-simd")]
pub(super) fn dot4(x: &Quads, group: &[u8], out: &mut [[f32; GROUP]]) {
    assert!(
        group.len() == x.blocks * GROUP_BLOCK_BYTES,
        "int8 prompt: activation quads and weight group disagree in length"
    );
    // The quants plus 128, as unsigned bytes: the dot's second operand. A block's vector k
    // holds word k of the four rows, so that four of them, transposed, are four rows' words
    // 0..4 (or 4..8).
    let mut rows = Vec::with_capacity(8 * x.blocks);
    for block in group.chunks_exact(GROUP_BLOCK_BYTES) {
        let words: [v128; 8] = std::array::from_fn(|k| {
            // SAFETY: a block's quants are eight vectors.
            let w = unsafe { v128_load(block[GROUP * 4 + 16 * k..].as_ptr() as *const v128) };
            v128_xor(w, u8x16_splat(0x80))
        });
        let low = transpose([words[0], words[1], words[2], words[3]]);
        let high = transpose([words[4], words[5], words[6], words[7]]);
        for (low, high) in low.into_iter().zip(high) {
            rows.extend([low, high]);
        }
    }
    rows_dot4::<false>(x, &rows, group, GROUP_BLOCK_BYTES, out);
}

/// Every activation row of `x` against one packed group whose block `b` is `block_bytes` at
/// `group`, starting with four f32 scales, and whose four rows' 32 quants (as the dot's second
/// operand) are `rows[8b + 2j]` (values 0..16 of row j) and `rows[8b + 2j + 1]` (16..32):
/// `out[r]` gets row r's four sums. Each weight row's four quants k are splat across the lanes
/// and dotted with the quad's vector k, so a block's sums come out one activation row per lane.
/// Q8_0's sums (`MINS` false) start at −128·Σx, its quants being offset by 128; Q4_1's (`MINS`)
/// at zero, and each row then adds its minimum (four f32 after the scales) times s·Σx.
#[target_feature(enable = "relaxed-simd")]
pub(crate) fn rows_dot4<const MINS: bool>(
    x: &Quads,
    rows: &[v128],
    group: &[u8],
    block_bytes: usize,
    out: &mut [[f32; GROUP]],
) {
    let blocks = x.blocks;
    assert!(
        rows.len() == 8 * blocks
            && group.len() == blocks * block_bytes
            && block_bytes >= GROUP * 8
            && out.len() <= x.rows(),
        "quads: activation quads and weight group disagree in length"
    );
    let dot = i32x4_relaxed_dot_i8x16_i7x16_add;
    for (quad, out) in out.chunks_mut(4).enumerate() {
        let mut acc = [f32x4_splat(0.0); GROUP];
        // SAFETY: unit = quad · blocks + b < x.scales.len() (asserted: out.len() <= x.rows()),
        // with eight quant vectors each; `rows` holds eight vectors per block, and `group`'s
        // blocks start with four f32 scales and (Q4_1) four f32 minimums (asserted).
        unsafe {
            for b in 0..blocks {
                let unit = quad * blocks + b;
                let xq = x.quants.as_ptr().add(8 * unit);
                let xq: [v128; 8] = std::array::from_fn(|k| *xq.add(k));
                let x_sums = *x.sums.as_ptr().add(unit);
                let start = if MINS {
                    i32x4_splat(0)
                } else {
                    i32x4_neg(i32x4_shl(x_sums, 7))
                };
                let x_scales = *x.scales.as_ptr().add(unit);
                let scaled_sums = f32x4_mul(x_scales, f32x4_convert_i32x4(x_sums));
                let w_scales = group.as_ptr().add(b * block_bytes) as *const f32;
                for (j, acc) in acc.iter_mut().enumerate() {
                    let w = rows.as_ptr().add(8 * b + 2 * j);
                    let (w0, w1) = (*w, *w.add(1));
                    let mut sums = start;
                    sums = dot(xq[0], i32x4_shuffle::<0, 0, 0, 0>(w0, w0), sums);
                    sums = dot(xq[1], i32x4_shuffle::<1, 1, 1, 1>(w0, w0), sums);
                    sums = dot(xq[2], i32x4_shuffle::<2, 2, 2, 2>(w0, w0), sums);
                    sums = dot(xq[3], i32x4_shuffle::<3, 3, 3, 3>(w0, w0), sums);
                    sums = dot(xq[4], i32x4_shuffle::<0, 0, 0, 0>(w1, w1), sums);
                    sums = dot(xq[5], i32x4_shuffle::<1, 1, 1, 1>(w1, w1), sums);
                    sums = dot(xq[6], i32x4_shuffle::<2, 2, 2, 2>(w1, w1), sums);
                    sums = dot(xq[7], i32x4_shuffle::<3, 3, 3, 3>(w1, w1), sums);
                    let scale =
                        f32x4_mul(x_scales, v128_load32_splat(w_scales.add(j) as *const u32));
                    *acc = f32x4_add(*acc, f32x4_mul(f32x4_convert_i32x4(sums), scale));
                    if MINS {
                        let min = v128_load32_splat(w_scales.add(GROUP + j) as *const u32);
                        *acc = f32x4_add(*acc, f32x4_mul(min, scaled_sums));
                    }
                }
            }
        }
        let acc = acc.map(lanes);
        for (i, out) in out.iter_mut().enumerate() {
            *out = [acc[0][i], acc[1][i], acc[2][i], acc[3][i]];
        }
    }
}

/// One expanded activation row against one packed group: each of a block's eight vectors of
/// words (one word of each of the four rows), plus 128, by one relaxed dot with the same word of
/// the activations repeated four times, from the block's −128·Σx, so that each row's sum
/// lands in its own lane; scaled as the SIMD128 `dot4` scales them, equal bit for bit to the
/// portable loop. Only where [`unsigned_dot`] holds.
#[target_feature(enable = "relaxed-simd")]
pub(super) fn row_dot4(x: Row, group: &[u8]) -> [f32; GROUP] {
    let mut acc = f32x4_splat(0.0);
    for (b, (&x_scale, &sum)) in x.scales.iter().zip(x.sums).enumerate() {
        // SAFETY: `super::dot4` asserted that the row holds `x.scales.len()` expanded blocks
        // and the group as many blocks of GROUP_BLOCK_BYTES, four f32 scales first.
        unsafe {
            let xq = x.quants.as_ptr().add(b * EXPANDED_BLOCK);
            let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
            let w = at.add(GROUP * 4);
            let mut sums = i32x4_splat(-128 * sum);
            for k in 0..BLOCK / WORD {
                let word = GROUP * WORD * k;
                sums = i32x4_relaxed_dot_i8x16_i7x16_add(
                    v128_load(xq.add(word) as *const v128),
                    v128_xor(v128_load(w.add(word) as *const v128), u8x16_splat(0x80)),
                    sums,
                );
            }
            let scale = f32x4_mul(v128_load(at as *const v128), f32x4_splat(x_scale));
            acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(sums), scale));
        }
    }
    lanes(acc)
}
