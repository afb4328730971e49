//! Q8_0 weights packed four rows at a time, and their matmul with 8-bit activations.
//!
//! A packed matrix holds, per group of four rows (the last padded with zero rows) and per
//! 32-value block, the four rows' scales as f32 and then their quants a word (four quants) at a
//! time: word 0 of rows 0, 1, 2 and 3, then word 1 of each, up to word 7: 144 bytes read front
//! to back. A decode step thus streams every weight once, in order. Each 16 bytes of quants hold
//! one word of the four rows, and the activations are laid beside them with each word repeated
//! four times ([`Rows`]), so that a dot product of the two, four products per 32-bit lane, leaves
//! each row's sum in its own lane: a block's vectors add up to the four rows' sums with no sums
//! across lanes, and the four are scaled together.
//!
//! Where the dot multiplies unsigned bytes by signed ones in one instruction (x86's `vpdpbusd`:
//! natively with AVX-VNNI, and in the browser's relaxed dot on such a CPU), the weights plus 128
//! are its unsigned operand and each block's sums start at −128·Σx. A relaxed-SIMD build's
//! prompts take four activation rows per vector there (module `quads`).

use thiserror::Error;

use crate::activations::{self, Quantized};
use crate::pool::{self, Pool};

/// Values per quantization block.
pub const BLOCK: usize = 32;
/// Bytes of one Q8_0 block in a GGUF file: an f16 scale, then 32 signed quants.
pub const Q8_0_BLOCK_BYTES: usize = 2 + BLOCK;
/// Rows packed together.
pub const GROUP: usize = 4;
/// Bytes of one block of a group: four f32 scales, then the four rows' 128 quants a word at a
/// time.
pub const GROUP_BLOCK_BYTES: usize = GROUP * 4 + GROUP * BLOCK;
/// Quants per word: what one 32-bit lane of a dot product multiplies.
pub(crate) const WORD: usize = 4;
/// Bytes of one expanded activation block ([`Rows`]): each word repeated once per row of a group.
pub(crate) const EXPANDED_BLOCK: usize = GROUP * BLOCK;

/// Shapes and sizes that do not fit together.
#[derive(Debug, Error, PartialEq)]
pub enum Int8Error {
    /// The columns are not whole blocks, or the data is not `rows × cols` of Q8_0.
    #[error(
        "a Q8_0 [{rows}, {cols}] matrix holds {expected} bytes in whole 32-value rows, not {found}"
    )]
    Q8_0Size {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// Activations that are not whole rows of the weight's width.
    #[error("int8 matmul: {found} input values are not rows of a [{rows}, {cols}] weight")]
    Width {
        /// Weight rows.
        rows: usize,
        /// Weight columns.
        cols: usize,
        /// The number of activation values.
        found: usize,
    },
}

/// Packs GGUF Q8_0 bytes of a `[rows, cols]` matrix.
pub fn pack_q8_0(data: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>, Int8Error> {
    let blocks = cols / BLOCK;
    let expected = rows * blocks * Q8_0_BLOCK_BYTES;
    if !cols.is_multiple_of(BLOCK) || data.len() != expected {
        return Err(Int8Error::Q8_0Size {
            rows,
            cols,
            expected,
            found: data.len(),
        });
    }
    let mut packed = vec![0u8; rows.div_ceil(GROUP) * blocks * GROUP_BLOCK_BYTES];
    if blocks == 0 {
        return Ok(packed);
    }
    for (row, source) in data.chunks_exact(blocks * Q8_0_BLOCK_BYTES).enumerate() {
        let lane = row % GROUP;
        for (b, block) in source.chunks_exact(Q8_0_BLOCK_BYTES).enumerate() {
            let at = offset(row, b, blocks);
            let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            packed[at + 4 * lane..at + 4 * lane + 4].copy_from_slice(&scale.to_le_bytes());
            for (k, word) in block[2..].chunks_exact(WORD).enumerate() {
                let to = at + quant_at(lane, k * WORD);
                packed[to..to + WORD].copy_from_slice(word);
            }
        }
    }
    Ok(packed)
}

/// Where block `b` of `row`'s group starts in a packed matrix of `blocks` blocks per row.
fn offset(row: usize, b: usize, blocks: usize) -> usize {
    ((row / GROUP) * blocks + b) * GROUP_BLOCK_BYTES
}

/// Where quant `i` of the group's row `lane` lies in a packed block.
fn quant_at(lane: usize, i: usize) -> usize {
    GROUP * 4 + (i / WORD) * GROUP * WORD + lane * WORD + i % WORD
}

/// Row `row` of a packed matrix with `cols` columns, dequantized.
pub fn unpack_row(packed: &[u8], cols: usize, row: usize) -> Vec<f32> {
    let blocks = cols / BLOCK;
    let lane = row % GROUP;
    let mut values = Vec::with_capacity(cols);
    for b in 0..blocks {
        let block = &packed[offset(row, b, blocks)..][..GROUP_BLOCK_BYTES];
        let scale = f32_at(block, 4 * lane);
        values.extend((0..BLOCK).map(|i| block[quant_at(lane, i)] as i8 as f32 * scale));
    }
    values
}

/// The little-endian f32 at `at` (a packed block's scale; Q4_1's minimums too).
pub(crate) fn f32_at(bytes: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// `out = x Wᵀ` for `x` holding rows of `cols` values and `W` a packed `[rows, cols]`
/// matrix; `out` gets `rows` values per row of `x`.
pub fn matmul(packed: &[u8], rows: usize, cols: usize, x: &[f32]) -> Result<Vec<f32>, Int8Error> {
    matmul_on(pool::global(), packed, rows, cols, x)
}

/// [`matmul`] with its weight rows split across `pool`, or on the caller alone.
pub(crate) fn matmul_on(
    pool: Option<&Pool>,
    packed: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Result<Vec<f32>, Int8Error> {
    if cols == 0 || !cols.is_multiple_of(BLOCK) || !x.len().is_multiple_of(cols) {
        return Err(Int8Error::Width {
            rows,
            cols,
            found: x.len(),
        });
    }
    let blocks = cols / BLOCK;
    let group_bytes = blocks * GROUP_BLOCK_BYTES;
    if packed.len() != rows.div_ceil(GROUP) * group_bytes {
        return Err(Int8Error::Q8_0Size {
            rows,
            cols,
            expected: rows.div_ceil(GROUP) * group_bytes,
            found: packed.len(),
        });
    }
    let m = x.len() / cols;
    let quantized = activations::quantize::<BLOCK>(x);
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    if vnni_dot() && m >= quads::MIN_ROWS {
        let x = quads::Quads::new(&quantized.quants, &quantized.scales, m);
        return Ok(by_groups(
            pool,
            packed,
            group_bytes,
            rows,
            m,
            |group, out| quads::dot4(&x, group, out),
        ));
    }
    let x = Rows::new(quantized, m);
    Ok(by_groups(
        pool,
        packed,
        group_bytes,
        rows,
        m,
        each_row(|r, group| dot4(x.row(r), group)),
    ))
}

/// Quantized activation rows as the decode paths read them: each word of quants repeated once
/// per row of a group (the 16 bytes beside a group's 16 bytes of that word), and each block's
/// scale and Σx (the dots of Q8_0's weights plus 128 start from −128·Σx; Q4_1's minimums
/// multiply it). The Q4_1 matmul reads them too.
pub(crate) struct Rows {
    quants: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    blocks: usize,
}

/// One row of [`Rows`].
#[derive(Clone, Copy)]
pub(crate) struct Row<'a> {
    /// [`EXPANDED_BLOCK`] bytes per block.
    pub quants: &'a [i8],
    /// One per block.
    pub scales: &'a [f32],
    /// Σx, one per block.
    pub sums: &'a [i32],
}

impl Rows {
    /// The `m` rows of `quantized`, expanded.
    pub(crate) fn new(quantized: Quantized, m: usize) -> Self {
        let Quantized { quants, scales } = quantized;
        let mut expanded = vec![0i8; quants.len() * GROUP];
        for (word, out) in quants
            .chunks_exact(WORD)
            .zip(expanded.chunks_exact_mut(WORD * GROUP))
        {
            for copy in out.chunks_exact_mut(WORD) {
                copy.copy_from_slice(word);
            }
        }
        Rows {
            sums: quants
                .chunks_exact(BLOCK)
                .map(|block| block.iter().map(|&q| q as i32).sum())
                .collect(),
            quants: expanded,
            blocks: scales.len() / m.max(1),
            scales,
        }
    }

    /// Row `r`.
    pub(crate) fn row(&self, r: usize) -> Row<'_> {
        let blocks = r * self.blocks..(r + 1) * self.blocks;
        Row {
            quants: &self.quants[blocks.start * EXPANDED_BLOCK..blocks.end * EXPANDED_BLOCK],
            scales: &self.scales[blocks.clone()],
            sums: &self.sums[blocks],
        }
    }
}

/// Whether this build's relaxed SIMD dot is x86's `vpdpbusd` (AVX-VNNI), so that the weights
/// plus 128 are its operand, and a prompt of four rows or more takes four activation rows per
/// vector (module `quads`); false in every other build.
pub(crate) fn vnni_dot() -> bool {
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    {
        quads::unsigned_dot()
    }
    #[cfg(not(all(target_arch = "wasm32", feature = "relaxed-simd")))]
    {
        false
    }
}

/// Activation rows whose sums [`by_groups`] keeps on the stack.
const FEW_ROWS: usize = 8;

/// [`by_groups`]'s `dots` from `dot4(r, group)`: activation row `r` against the four rows of
/// `group`, one row after the other.
pub(crate) fn each_row(
    dot4: impl Fn(usize, &[u8]) -> [f32; GROUP] + Sync,
) -> impl Fn(&[u8], &mut [[f32; GROUP]]) + Sync {
    move |group, out| {
        for (r, out) in out.iter_mut().enumerate() {
            *out = dot4(r, group);
        }
    }
}

/// The `[m, rows]` product of `m` activation rows with a matrix packed in groups of four
/// rows of `group_bytes` each, from `dots(group, sums)`, which writes each activation row's
/// four dot products with the rows of `group` into `sums` (`m` of them). One group at a time,
/// every activation row against it while it is hot; the padding rows of the last group are
/// dropped. Runs of groups are split across `pool`.
pub(crate) fn by_groups(
    pool: Option<&Pool>,
    packed: &[u8],
    group_bytes: usize,
    rows: usize,
    m: usize,
    dots: impl Fn(&[u8], &mut [[f32; GROUP]]) + Sync,
) -> Vec<f32> {
    let mut out = vec![0f32; m * rows];
    let shared = pool::Disjoint::new(&mut out);
    let groups = rows.div_ceil(GROUP);
    pool::for_each_range(pool, groups, grain(group_bytes), |range| {
        // A decode step's few rows on the stack, so that its tasks (hundreds a step, on every
        // thread) do not take the allocator's lock.
        let (mut few, mut many) = ([[0f32; GROUP]; FEW_ROWS], Vec::new());
        let sums = if m <= FEW_ROWS {
            &mut few[..m]
        } else {
            many.resize(m, [0f32; GROUP]);
            &mut many[..]
        };
        for g in range {
            let group = &packed[g * group_bytes..(g + 1) * group_bytes];
            let first = g * GROUP;
            let valid = (rows - first).min(GROUP);
            dots(group, sums);
            for (r, four) in sums.iter().enumerate() {
                // SAFETY: each group's rows are written by the one task that has the group.
                let out = unsafe { shared.slice(r * rows + first..r * rows + first + valid) };
                out.copy_from_slice(&four[..valid]);
            }
        }
    });
    out
}

/// Weight units (rows or groups of `bytes` each) worth handing to a thread of their own:
/// enough that each task streams about 32 KiB of weights, many times what starting it costs
/// (and little enough that SmolLM2's 115 KiB k and v projections split).
pub(crate) fn grain(bytes: usize) -> usize {
    (32 * 1024 / bytes.max(1)).max(1)
}

/// Dot products of one expanded activation row with the four rows of a packed group.
fn dot4(x: Row, group: &[u8]) -> [f32; GROUP] {
    let blocks = x.scales.len();
    assert!(
        x.quants.len() == blocks * EXPANDED_BLOCK
            && x.sums.len() == blocks
            && group.len() == blocks * GROUP_BLOCK_BYTES,
        "int8 matmul: activation and weight group disagree in length"
    );
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    if vnni_dot() {
        return quads::row_dot4(x, group);
    }
    #[cfg(target_arch = "wasm32")]
    {
        simd128::dot4(x, group)
    }
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            // SAFETY: the CPU has AVX2 (and AVX-VNNI where `vnni` says so), checked just
            // here; the lengths are asserted above.
            return unsafe { avx2::dot4::<avx2::Vnni, avx2::Madd>(avx2::vnni(), x, group) };
        }
        portable_dot4(x, group)
    }
    #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
    {
        portable_dot4(x, group)
    }
}

/// Whether [`matmul`] runs SIMD code on this machine: SIMD128 in wasm32 (the build enables
/// it), AVX2 on x86-64 when the CPU has it; elsewhere it runs portable loops.
pub fn accelerated() -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        true
    }
    #[cfg(target_arch = "x86_64")]
    {
        avx2::available()
    }
    #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
    {
        false
    }
}

/// What every SIMD path equals bit for bit: each block's products summed exactly in i32, then
/// multiplied by the product of the two scales and added to the row's sum, block after block.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_dot4(x: Row, group: &[u8]) -> [f32; GROUP] {
    let mut acc = [0f32; GROUP];
    for ((xq, &x_scale), block) in x
        .quants
        .chunks_exact(EXPANDED_BLOCK)
        .zip(x.scales)
        .zip(group.chunks_exact(GROUP_BLOCK_BYTES))
    {
        for (lane, acc) in acc.iter_mut().enumerate() {
            let dot: i32 = (0..BLOCK)
                .map(|i| {
                    // The expanded activations repeat each word once per lane.
                    let xi = xq[(i / WORD) * GROUP * WORD + i % WORD];
                    xi as i32 * block[quant_at(lane, i)] as i8 as i32
                })
                .sum();
            *acc += dot as f32 * (x_scale * f32_at(block, 4 * lane));
        }
    }
    acc
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod simd128;

#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
pub(crate) mod quads;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;

/// Checks a packed matmul, `matmul(x)` for `x` rows of `cols` values, of 1, 4, 5 and 9 activation
/// rows (in a relaxed-SIMD build, from four rows on, four activation rows per vector) against
/// `portable` row by row and group by group, bit for bit: each row the activations of
/// [`activations::awkward_values`], shifted. `packed` holds `rows` rows in groups of four.
#[cfg(test)]
pub(crate) fn assert_prompts_equal_portable(
    packed: &[u8],
    rows: usize,
    cols: usize,
    matmul: impl Fn(&[f32]) -> Vec<f32>,
    portable: impl Fn(Row, &[u8]) -> [f32; GROUP],
) {
    let group_bytes = packed.len() / rows.div_ceil(GROUP);
    let awkward = activations::awkward_values(cols / BLOCK, BLOCK);
    for m in [1, 4, 5, 9] {
        let x: Vec<f32> = (0..m)
            .flat_map(|r| awkward.iter().cycle().skip(3 * r).take(cols))
            .copied()
            .collect();
        let got = matmul(&x);
        let expanded = Rows::new(activations::quantize::<BLOCK>(&x), m);
        for r in 0..m {
            let expected: Vec<f32> = packed
                .chunks_exact(group_bytes)
                .flat_map(|group| portable(expanded.row(r), group))
                .take(rows)
                .collect();
            let got = &got[r * rows..(r + 1) * rows];
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "row {r} of {m}: {got:?} against {expected:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// `rows × cols` Q8_0 bytes with scale `0.5 + row / 8` and quants `(i * 7 + row) mod 255 - 127`.
    fn q8_0(rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        let (mut bytes, mut dense) = (Vec::new(), Vec::new());
        for row in 0..rows {
            let scale = half::f16::from_f32(0.5 + row as f32 / 8.0);
            for block in 0..cols / BLOCK {
                bytes.extend(scale.to_le_bytes());
                for i in 0..BLOCK {
                    let q = ((block * BLOCK + i) * 7 + row) % 255;
                    let q = q as i32 - 127;
                    bytes.push(q as i8 as u8);
                    dense.push(q as f32 * scale.to_f32());
                }
            }
        }
        (bytes, dense)
    }

    #[test]
    fn packed_rows_unpack_to_the_dequantized_matrix() {
        let (bytes, dense) = q8_0(5, 64);
        let packed = pack_q8_0(&bytes, 5, 64).unwrap();
        assert_eq!(packed.len(), 2 * 2 * GROUP_BLOCK_BYTES);
        for row in 0..5 {
            assert_eq!(
                unpack_row(&packed, 64, row),
                dense[row * 64..(row + 1) * 64]
            );
        }
    }

    #[test]
    fn the_matmul_is_the_dense_product_to_int8_precision() {
        let (bytes, dense) = q8_0(6, 96);
        let packed = pack_q8_0(&bytes, 6, 96).unwrap();
        let x: Vec<f32> = (0..3 * 96).map(|i| (i as f32 * 0.7).sin()).collect();
        let got = matmul(&packed, 6, 96, &x).unwrap();
        crate::assert_near_dense_product("Q8_0", &got, &x, &dense, 96);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_pool_splits_the_matmul_without_changing_a_bit() {
        let (rows, cols) = (203, 1024);
        assert!(rows / GROUP >= 2 * grain(cols / BLOCK * GROUP_BLOCK_BYTES));
        let packed = pack_q8_0(&q8_0(rows, cols).0, rows, cols).unwrap();
        for m in [1, 3] {
            let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.3).cos()).collect();
            crate::assert_pool_changes_nothing("Q8_0", |pool| {
                matmul_on(pool, &packed, rows, cols, &x).unwrap()
            });
        }
    }

    /// Whatever SIMD path this target dispatches to (SIMD128, relaxed dots, AVX2 natively both
    /// with and without AVX-VNNI where the CPU has it) against the portable loop: weights
    /// across the whole i8 range, -128 included; the activations of
    /// [`activations::awkward_values`].
    #[test]
    fn the_simd_paths_equal_the_portable_loops_bit_for_bit() {
        let blocks = 5;
        let group: Vec<u8> = (0..blocks * GROUP_BLOCK_BYTES)
            .map(|i| match i % GROUP_BLOCK_BYTES {
                s if s < GROUP * 4 => [0x00, 0x00, 0x80, 0x3f][s % 4], // 1.0f32
                q if q % 3 == 0 => 0x80,                               // -128
                q => (q * 37 + i / 7) as u8,
            })
            .collect();
        let values = activations::awkward_values(blocks, BLOCK);
        let x = Rows::new(activations::quantize::<BLOCK>(&values), 1);
        let expected = portable_dot4(x.row(0), &group);
        assert_eq!(dot4(x.row(0), &group), expected);
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            for vnni in [false, avx2::vnni()] {
                // SAFETY: AVX2 is checked above, AVX-VNNI by `avx2::vnni`; `dot4`'s lengths.
                let got = unsafe { avx2::dot4::<avx2::Vnni, avx2::Madd>(vnni, x.row(0), &group) };
                assert_eq!(got, expected, "AVX-VNNI: {vnni}");
            }
        }
    }

    /// Matmuls of several activation rows (in a relaxed-SIMD build whose relaxed dot is
    /// unsigned, from four rows on, the `quads` path) against the portable loop row by row, bit
    /// for bit: weights across the whole i8 range, -128 included, two groups, the last padded;
    /// each row the activations of [`activations::awkward_values`], shifted.
    #[test]
    fn prompts_equal_the_portable_loops_bit_for_bit() {
        let (rows, blocks) = (7, 5);
        let cols = blocks * BLOCK;
        let (mut bytes, _) = q8_0(rows, cols);
        for (i, q) in bytes.iter_mut().enumerate() {
            if i % Q8_0_BLOCK_BYTES >= 2 && i % 5 == 0 {
                *q = 0x80;
            }
        }
        let packed = pack_q8_0(&bytes, rows, cols).unwrap();
        assert_prompts_equal_portable(
            &packed,
            rows,
            cols,
            |x| matmul_on(None, &packed, rows, cols, x).unwrap(),
            portable_dot4,
        );
    }

    #[test]
    fn sizes_that_disagree_are_errors() {
        let (bytes, _) = q8_0(2, 64);
        assert!(matches!(
            pack_q8_0(&bytes[1..], 2, 64),
            Err(Int8Error::Q8_0Size {
                expected: 136,
                found: 135,
                ..
            })
        ));
        assert!(pack_q8_0(&bytes, 2, 68).is_err());
        let packed = pack_q8_0(&bytes, 2, 64).unwrap();
        let err = matmul(&packed, 2, 64, &[0.0; 65]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "int8 matmul: 65 input values are not rows of a [2, 64] weight"
        );
        assert!(matmul(&packed[1..], 2, 64, &[0.0; 64]).is_err());
    }
}
