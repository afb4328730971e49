//! Q4_1 weights packed four rows at a time, and their matmul with 8-bit activations.
//!
//! A Q4_1 block is 32 values `d·q + m`, `q` in 0..16: an f16 scale `d`, an f16 minimum `m`
//! and 16 bytes holding value `j` in the low nibble of byte `j` and value `j + 16` in the high
//! one. A packed matrix holds, per group of four rows (the last padded with zero rows) and
//! per block, the four rows' scales and then their minimums as f32, then their quants a word
//! (four bytes) at a time, word 0 of rows 0, 1, 2 and 3, then word 1 of each (as
//! [`crate::int8`] lays out Q8_0): 96 bytes read front to back. A word's low nibbles are values
//! 4k..4k + 4 and its high nibbles values 16 + 4k.., so against words k and k + 4 of the
//! activations, each repeated four times ([`Rows`]), a dot product leaves each row's sum in its
//! own lane. Against an activation block of quants `x` and scale `s`, a row's block gives
//! `d·s·Σq·x + m·s·Σx`.
//!
//! candle has SIMD code for Q4_1 neither in wasm32 nor on x86-64.

use thiserror::Error;

use crate::activations;
use crate::int8::{by_groups, each_row, f32_at, Row, Rows, EXPANDED_BLOCK, GROUP, WORD};
use crate::pool::{self, Pool};

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes of one Q4_1 block in a GGUF file: f16 scale and minimum, then 16 bytes of quants.
pub const Q4_1_BLOCK_BYTES: usize = 4 + BLOCK / 2;
/// Bytes of one block of a group: four f32 scales, four f32 minimums, the four rows' 64 bytes
/// of quants a word at a time.
pub const GROUP_BLOCK_BYTES: usize = GROUP * 8 + GROUP * BLOCK / 2;

/// Shapes and sizes that do not fit together.
#[derive(Debug, Error, PartialEq)]
pub enum Int4Error {
    /// The columns are not whole blocks, or the data is not `rows × cols` of Q4_1.
    #[error(
        "a Q4_1 [{rows}, {cols}] matrix holds {expected} bytes in whole 32-value rows, not {found}"
    )]
    Q4_1Size {
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
    #[error("int4 matmul: {found} input values are not rows of a [{rows}, {cols}] weight")]
    Width {
        /// Weight rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// The number of activation values.
        found: usize,
    },
}

/// Packs GGUF Q4_1 bytes of a `[rows, cols]` matrix.
pub fn pack_q4_1(data: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>, Int4Error> {
    let blocks = cols / BLOCK;
    let expected = rows * blocks * Q4_1_BLOCK_BYTES;
    if !cols.is_multiple_of(BLOCK) || data.len() != expected {
        return Err(Int4Error::Q4_1Size {
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
    let f16 = |b: &[u8]| {
        half::f16::from_le_bytes([b[0], b[1]])
            .to_f32()
            .to_le_bytes()
    };
    for (row, source) in data.chunks_exact(blocks * Q4_1_BLOCK_BYTES).enumerate() {
        let lane = row % GROUP;
        for (b, block) in source.chunks_exact(Q4_1_BLOCK_BYTES).enumerate() {
            let at = offset(row, b, blocks);
            packed[at + 4 * lane..at + 4 * lane + 4].copy_from_slice(&f16(&block[0..2]));
            let min = at + GROUP * 4 + 4 * lane;
            packed[min..min + 4].copy_from_slice(&f16(&block[2..4]));
            for (k, word) in block[4..].chunks_exact(WORD).enumerate() {
                let to = at + byte_at(lane, k * WORD);
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

/// Where byte `j` of the group's row `lane`'s quants lies in a packed block.
fn byte_at(lane: usize, j: usize) -> usize {
    GROUP * 8 + (j / WORD) * GROUP * WORD + lane * WORD + j % WORD
}

/// Row `row` of a packed matrix with `cols` columns, dequantized as llama.cpp does (`d·q + m`).
pub fn unpack_row(packed: &[u8], cols: usize, row: usize) -> Vec<f32> {
    let blocks = cols / BLOCK;
    let lane = row % GROUP;
    let mut values = vec![0f32; cols];
    for (b, out) in values.chunks_exact_mut(BLOCK).enumerate() {
        let at = offset(row, b, blocks);
        let scale = f32_at(packed, at + 4 * lane);
        let min = f32_at(packed, at + GROUP * 4 + 4 * lane);
        for j in 0..BLOCK / 2 {
            let byte = packed[at + byte_at(lane, j)];
            out[j] = (byte & 0xF) as f32 * scale + min;
            out[j + BLOCK / 2] = (byte >> 4) as f32 * scale + min;
        }
    }
    values
}

/// `out = x Wᵀ` for `x` holding rows of `cols` values and `W` a packed `[rows, cols]`
/// matrix; `out` gets `rows` values per row of `x`.
pub fn matmul(packed: &[u8], rows: usize, cols: usize, x: &[f32]) -> Result<Vec<f32>, Int4Error> {
    matmul_on(pool::global(), packed, rows, cols, x)
}

/// [`matmul`] with its weight rows split across `pool`, or on the caller alone.
pub(crate) fn matmul_on(
    pool: Option<&Pool>,
    packed: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Result<Vec<f32>, Int4Error> {
    if cols == 0 || !cols.is_multiple_of(BLOCK) || !x.len().is_multiple_of(cols) {
        return Err(Int4Error::Width {
            rows,
            cols,
            found: x.len(),
        });
    }
    let blocks = cols / BLOCK;
    let group_bytes = blocks * GROUP_BLOCK_BYTES;
    if packed.len() != rows.div_ceil(GROUP) * group_bytes {
        return Err(Int4Error::Q4_1Size {
            rows,
            cols,
            expected: rows.div_ceil(GROUP) * group_bytes,
            found: packed.len(),
        });
    }
    let m = x.len() / cols;
    let quantized = activations::quantize::<BLOCK>(x);
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    if m >= crate::int8::quads::MIN_ROWS {
        let x = crate::int8::quads::Quads::new(&quantized.quants, &quantized.scales, m);
        return Ok(by_groups(
            pool,
            packed,
            group_bytes,
            rows,
            m,
            |group, out| simd128::prompt(&x, group, out),
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

/// Dot products of one expanded activation row with the four rows of a packed group.
fn dot4(x: Row, group: &[u8]) -> [f32; GROUP] {
    let blocks = x.scales.len();
    assert!(
        x.quants.len() == blocks * EXPANDED_BLOCK
            && x.sums.len() == blocks
            && group.len() == blocks * GROUP_BLOCK_BYTES,
        "int4 matmul: activation and weight group disagree in length"
    );
    #[cfg(target_arch = "wasm32")]
    {
        simd128::dot4(x, group)
    }
    #[cfg(target_arch = "x86_64")]
    {
        if crate::int8::avx2::available() {
            // SAFETY: the CPU has AVX2 (and AVX-VNNI where `vnni` says so), checked just
            // here; the lengths are asserted above.
            return unsafe { avx2::dot4(crate::int8::avx2::vnni(), x, group) };
        }
        portable_dot4(x, group)
    }
    #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
    {
        portable_dot4(x, group)
    }
}

/// Whether [`matmul`] runs SIMD code on this machine (as [`crate::int8::accelerated`]).
pub fn accelerated() -> bool {
    crate::int8::accelerated()
}

/// What every SIMD path equals bit for bit: each block's products summed exactly in i32 and
/// multiplied by the product of the two scales, then the minimum times `s·Σx`, each added to the
/// row's sum, block after block.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_dot4(x: Row, group: &[u8]) -> [f32; GROUP] {
    // The expanded activations repeat each word once per lane.
    let at = |i: usize| (i / WORD) * GROUP * WORD + i % WORD;
    let mut acc = [0f32; GROUP];
    for (((xq, &x_scale), &x_sum), block) in x
        .quants
        .chunks_exact(EXPANDED_BLOCK)
        .zip(x.scales)
        .zip(x.sums)
        .zip(group.chunks_exact(GROUP_BLOCK_BYTES))
    {
        let x_sum = x_scale * x_sum as f32;
        for (lane, acc) in acc.iter_mut().enumerate() {
            let scale = f32_at(block, 4 * lane);
            let min = f32_at(block, GROUP * 4 + 4 * lane);
            let dot: i32 = (0..BLOCK / 2)
                .map(|j| {
                    let byte = block[byte_at(lane, j)];
                    (byte & 0xF) as i32 * xq[at(j)] as i32
                        + (byte >> 4) as i32 * xq[at(j + BLOCK / 2)] as i32
                })
                .sum();
            *acc += dot as f32 * (x_scale * scale);
            *acc += min * x_sum;
        }
    }
    acc
}

#[cfg(target_arch = "wasm32")]
mod simd128;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// `rows × cols` Q4_1 bytes with scale `0.25 + row / 8`, minimum `-1 - row / 4` and quants
    /// `(i * 7 + row) mod 16`, and the values they stand for.
    fn q4_1(rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        let (mut bytes, mut dense) = (Vec::new(), vec![0f32; rows * cols]);
        for row in 0..rows {
            let scale = half::f16::from_f32(0.25 + row as f32 / 8.0);
            let min = half::f16::from_f32(-1.0 - row as f32 / 4.0);
            for block in 0..cols / BLOCK {
                bytes.extend(scale.to_le_bytes());
                bytes.extend(min.to_le_bytes());
                let q = |i: usize| ((block * BLOCK + i) * 7 + row) % 16;
                for j in 0..BLOCK / 2 {
                    bytes.push((q(j) | q(j + 16) << 4) as u8);
                }
                for i in 0..BLOCK {
                    dense[row * cols + block * BLOCK + i] =
                        q(i) as f32 * scale.to_f32() + min.to_f32();
                }
            }
        }
        (bytes, dense)
    }

    #[test]
    fn packed_rows_unpack_to_the_dequantized_matrix() {
        let (bytes, dense) = q4_1(5, 64);
        let packed = pack_q4_1(&bytes, 5, 64).unwrap();
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
        let (bytes, dense) = q4_1(6, 96);
        let packed = pack_q4_1(&bytes, 6, 96).unwrap();
        let x: Vec<f32> = (0..3 * 96).map(|i| (i as f32 * 0.7).sin()).collect();
        let got = matmul(&packed, 6, 96, &x).unwrap();
        crate::assert_near_dense_product("Q4_1", &got, &x, &dense, 96);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_pool_splits_the_matmul_without_changing_a_bit() {
        let (rows, cols) = (203, 1024);
        let grain = crate::int8::grain(cols / BLOCK * GROUP_BLOCK_BYTES);
        assert!(rows / GROUP >= 2 * grain);
        let packed = pack_q4_1(&q4_1(rows, cols).0, rows, cols).unwrap();
        for m in [1, 3] {
            let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.3).cos()).collect();
            crate::assert_pool_changes_nothing("Q4_1", |pool| {
                matmul_on(pool, &packed, rows, cols, &x).unwrap()
            });
        }
    }

    /// Whatever SIMD path this target dispatches to (SIMD128 with or without relaxed SIMD,
    /// AVX2 natively both with and without AVX-VNNI where the CPU has it) against the portable
    /// loop: every nibble value in both halves of a byte, and the
    /// activations of [`activations::awkward_values`].
    #[test]
    fn the_simd_paths_equal_the_portable_loops_bit_for_bit() {
        let blocks = 5;
        let group: Vec<u8> = (0..blocks * GROUP_BLOCK_BYTES)
            .map(|i| match i % GROUP_BLOCK_BYTES {
                s if s < GROUP * 4 => [0x00, 0x00, 0x80, 0x3f][s % 4], // 1.0f32
                m if m < GROUP * 8 => [0x00, 0x00, 0x40, 0xbf][m % 4], // -0.75f32
                q => (q * 37 + i / 7) as u8,
            })
            .collect();
        let values = activations::awkward_values(blocks, BLOCK);
        let x = Rows::new(activations::quantize::<BLOCK>(&values), 1);
        let expected = portable_dot4(x.row(0), &group);
        assert_eq!(dot4(x.row(0), &group), expected);
        #[cfg(target_arch = "x86_64")]
        if crate::int8::avx2::available() {
            for vnni in [false, crate::int8::avx2::vnni()] {
                // SAFETY: AVX2 is checked above, AVX-VNNI by `vnni`; `dot4`'s lengths.
                let got = unsafe { avx2::dot4(vnni, x.row(0), &group) };
                assert_eq!(got, expected, "AVX-VNNI: {vnni}");
            }
        }
    }

    /// Matmuls of several activation rows against the portable loop row by row, bit for bit
    /// (`int8::assert_prompts_equal_portable`): two groups, the last padded.
    #[test]
    fn prompts_equal_the_portable_loops_bit_for_bit() {
        let (rows, blocks) = (7, 5);
        let cols = blocks * BLOCK;
        let packed = pack_q4_1(&q4_1(rows, cols).0, rows, cols).unwrap();
        crate::int8::assert_prompts_equal_portable(
            &packed,
            rows,
            cols,
            |x| matmul_on(None, &packed, rows, cols, x).unwrap(),
            portable_dot4,
        );
    }

    #[test]
    fn sizes_that_disagree_are_errors() {
        let (bytes, _) = q4_1(2, 64);
        assert!(matches!(
            pack_q4_1(&bytes[1..], 2, 64),
            Err(Int4Error::Q4_1Size {
                expected: 80,
                found: 79,
                ..
            })
        ));
        assert!(pack_q4_1(&bytes, 2, 68).is_err());
        let packed = pack_q4_1(&bytes, 2, 64).unwrap();
        let err = matmul(&packed, 2, 64, &[0.0; 65]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "int4 matmul: 65 input values are not rows of a [2, 64] weight"
        );
        assert!(matmul(&packed[1..], 2, 64, &[0.0; 64]).is_err());
    }
}
