//! Q8_0 weights packed four rows at a time, and their matmul with 8-bit activations.
//!
//! A packed matrix holds, per group of four rows (the last padded with zero rows) and per
//! 32-value block, the four rows' scales as f32 and then their four runs of 32 quants: 144
//! bytes read front to back. A decode step thus streams every weight once, in order; each
//! activation block is widened once for four rows, and the four sums are scaled together.
//! In a relaxed-SIMD build, where the browser's relaxed dot multiplies unsigned bytes (x86 with
//! AVX-VNNI), the weights plus 128 are the dot's operand instead (module `quads`): a prompt
//! takes four activation rows per vector, a decode step 16 products per dot.

use thiserror::Error;

use crate::activations::{self, Quantized};
use crate::pool::{self, Pool};

/// Values per quantization block.
pub const BLOCK: usize = 32;
/// Bytes of one Q8_0 block in a GGUF file: an f16 scale, then 32 signed quants.
pub const Q8_0_BLOCK_BYTES: usize = 2 + BLOCK;
/// Rows packed together.
pub const GROUP: usize = 4;
/// Bytes of one block of a group: four f32 scales, then four runs of 32 quants.
pub const GROUP_BLOCK_BYTES: usize = GROUP * 4 + GROUP * BLOCK;

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
            let quants = at + GROUP * 4 + BLOCK * lane;
            packed[quants..quants + BLOCK].copy_from_slice(&block[2..]);
        }
    }
    Ok(packed)
}

/// Where block `b` of `row`'s group starts in a packed matrix of `blocks` blocks per row.
fn offset(row: usize, b: usize, blocks: usize) -> usize {
    ((row / GROUP) * blocks + b) * GROUP_BLOCK_BYTES
}

/// Row `row` of a packed matrix with `cols` columns, dequantized.
pub fn unpack_row(packed: &[u8], cols: usize, row: usize) -> Vec<f32> {
    let blocks = cols / BLOCK;
    let lane = row % GROUP;
    let mut values = Vec::with_capacity(cols);
    for b in 0..blocks {
        let at = offset(row, b, blocks);
        let s = &packed[at + 4 * lane..at + 4 * lane + 4];
        let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let quants = at + GROUP * 4 + BLOCK * lane;
        values.extend(
            packed[quants..quants + BLOCK]
                .iter()
                .map(|&q| q as i8 as f32 * scale),
        );
    }
    values
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
    let Quantized { quants, scales } = activations::quantize::<BLOCK>(x);
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    if vnni_dot() {
        if m >= quads::MIN_ROWS {
            let x = quads::Quads::new(&quants, &scales, m);
            return Ok(by_groups(
                pool,
                packed,
                group_bytes,
                rows,
                m,
                |group, out| quads::dot4(&x, group, out),
            ));
        }
        let corrections = quads::corrections(&quants);
        return Ok(by_groups(
            pool,
            packed,
            group_bytes,
            rows,
            m,
            each_row(|r, group| {
                quads::row_dot4(
                    &quants[r * cols..(r + 1) * cols],
                    &scales[r * blocks..(r + 1) * blocks],
                    &corrections[r * blocks..(r + 1) * blocks],
                    group,
                )
            }),
        ));
    }
    Ok(by_groups(
        pool,
        packed,
        group_bytes,
        rows,
        m,
        each_row(|r, group| {
            dot4(
                &quants[r * cols..(r + 1) * cols],
                &scales[r * blocks..(r + 1) * blocks],
                group,
            )
        }),
    ))
}

/// Whether this build's relaxed SIMD dot is x86's `vpdpbusd` (AVX-VNNI), so that a prompt of
/// four rows or more takes four activation rows per vector (module `quads`); false in every
/// other build.
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

/// Dot products of one quantized activation row with the four rows of a packed group.
fn dot4(xq: &[i8], xs: &[f32], group: &[u8]) -> [f32; 4] {
    assert!(
        xq.len() == xs.len() * BLOCK && group.len() == xs.len() * GROUP_BLOCK_BYTES,
        "int8 matmul: activation and weight group disagree in length"
    );
    #[cfg(target_arch = "wasm32")]
    {
        simd128::dot4(xq, xs, group)
    }
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2::dot4(xq, xs, group) };
        }
        portable_dot4(xq, xs, group)
    }
    #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
    {
        portable_dot4(xq, xs, group)
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

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_dot4(xq: &[i8], xs: &[f32], group: &[u8]) -> [f32; 4] {
    let mut acc = [0f32; GROUP];
    for ((x, &x_scale), block) in xq
        .chunks_exact(BLOCK)
        .zip(xs)
        .zip(group.chunks_exact(GROUP_BLOCK_BYTES))
    {
        let (scales, quants) = block.split_at(GROUP * 4);
        for (lane, acc) in acc.iter_mut().enumerate() {
            let s = &scales[4 * lane..4 * lane + 4];
            let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            let w = &quants[BLOCK * lane..BLOCK * (lane + 1)];
            let dot: i32 = x
                .iter()
                .zip(w)
                .map(|(&a, &b)| a as i32 * b as i8 as i32)
                .sum();
            *acc += dot as f32 * (x_scale * scale);
        }
    }
    acc
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod simd128 {
    use std::arch::wasm32::*;

    use super::{BLOCK, GROUP, GROUP_BLOCK_BYTES};

    /// The products of one row's 32 quants with the widened activation block, summed
    /// pairwise into four i32 lanes.
    ///
    /// # Safety
    /// `w` must point at 32 readable bytes.
    #[inline(always)]
    unsafe fn row_dot(x: &[v128; 4], w: *const u8) -> v128 {
        let low = i32x4_add(
            i32x4_dot_i16x8(i16x8_load_extend_i8x8(w as *const i8), x[0]),
            i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(8) as *const i8), x[1]),
        );
        let high = i32x4_add(
            i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(16) as *const i8), x[2]),
            i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(24) as *const i8), x[3]),
        );
        i32x4_add(low, high)
    }

    /// The 32 quants at `p`, widened to four i16x8 vectors.
    ///
    /// # Safety
    /// `p` must point at 32 readable bytes.
    #[inline(always)]
    unsafe fn widen(p: *const i8) -> [v128; 4] {
        [
            i16x8_load_extend_i8x8(p),
            i16x8_load_extend_i8x8(p.add(8)),
            i16x8_load_extend_i8x8(p.add(16)),
            i16x8_load_extend_i8x8(p.add(24)),
        ]
    }

    /// The high nibble of each byte of `v`, as a byte. V8 lowers `i8x16.shr_u` to a 16-bit
    /// shift and a mask it builds anew at every use (five instructions on x86-64); a 16-bit
    /// shift and a constant mask are two, and the Q4_K decode ran 1.16× faster for it. The
    /// K-quant kernels shift 16-bit lanes wherever a mask follows for the same reason.
    #[inline(always)]
    pub(crate) fn high_nibbles(v: v128) -> v128 {
        v128_and(u16x8_shr(v, 4), u8x16_splat(0x0F))
    }

    /// `[Σa, Σb, Σc, Σd]`: the lanes of four vectors summed, one vector per output lane.
    #[inline(always)]
    pub(crate) fn transpose_sum(a: v128, b: v128, c: v128, d: v128) -> v128 {
        let ab = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(a, b),
            i32x4_shuffle::<2, 6, 3, 7>(a, b),
        );
        let cd = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(c, d),
            i32x4_shuffle::<2, 6, 3, 7>(c, d),
        );
        i32x4_add(
            i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
            i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
        )
    }

    pub(crate) fn lanes(v: v128) -> [f32; 4] {
        [
            f32x4_extract_lane::<0>(v),
            f32x4_extract_lane::<1>(v),
            f32x4_extract_lane::<2>(v),
            f32x4_extract_lane::<3>(v),
        ]
    }

    pub(super) fn dot4(xq: &[i8], xs: &[f32], group: &[u8]) -> [f32; 4] {
        let mut acc = f32x4_splat(0.0);
        for (b, &x_scale) in xs.iter().enumerate() {
            // SAFETY: `dot4` checked that the activation row holds `xs.len()` blocks of 32
            // quants and the group `xs.len()` blocks of GROUP_BLOCK_BYTES.
            unsafe {
                let x = widen(xq.as_ptr().add(b * BLOCK));
                let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
                let scales = v128_load(at as *const v128);
                let w = at.add(GROUP * 4);
                let sums = transpose_sum(
                    row_dot(&x, w),
                    row_dot(&x, w.add(BLOCK)),
                    row_dot(&x, w.add(2 * BLOCK)),
                    row_dot(&x, w.add(3 * BLOCK)),
                );
                let scale = f32x4_mul(scales, f32x4_splat(x_scale));
                acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(sums), scale));
            }
        }
        lanes(acc)
    }
}

#[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
mod quads;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUP, GROUP_BLOCK_BYTES};

    /// Whether the CPU has AVX2 (detected once; later calls read a cached flag).
    pub(crate) fn available() -> bool {
        std::is_x86_feature_detected!("avx2")
    }

    /// Eight i32 partial sums of one row's 32 quants times the activation block.
    ///
    /// `maddubs` multiplies unsigned by signed bytes, so it gets `|w|` and `x` carrying
    /// `w`'s sign. `|-128|` reads as 128 unsigned, so every weight is exact; the activation
    /// quants lie in -127..=127, so no pair of products saturates the i16 sums.
    ///
    /// # Safety
    /// The CPU must have AVX2, and `w` must point at 32 readable bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn row_dot(x: __m256i, w: *const u8) -> __m256i {
        let w = _mm256_loadu_si256(w as *const __m256i);
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        _mm256_madd_epi16(products, _mm256_set1_epi16(1))
    }

    /// `[Σa, Σb, Σc, Σd]`: the lanes of four vectors summed, one vector per output lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn transpose_sum(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
        let abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
        _mm_add_epi32(
            _mm256_castsi256_si128(abcd),
            _mm256_extracti128_si256::<1>(abcd),
        )
    }

    /// The AVX2 twin of the SIMD128 `dot4`, equal to the portable one bit for bit (whole
    /// blocks summed exactly in i32, then scaled and added in the same order).
    ///
    /// # Safety
    /// The CPU must have AVX2; `xq` must hold `xs.len()` blocks of 32 quants and `group`
    /// `xs.len()` blocks of GROUP_BLOCK_BYTES (`super::dot4` asserts both).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot4(xq: &[i8], xs: &[f32], group: &[u8]) -> [f32; 4] {
        let mut acc = _mm_setzero_ps();
        for (b, &x_scale) in xs.iter().enumerate() {
            // SAFETY: in bounds by this function's contract.
            unsafe {
                let x = _mm256_loadu_si256(xq.as_ptr().add(b * BLOCK) as *const __m256i);
                let at = group.as_ptr().add(b * GROUP_BLOCK_BYTES);
                let scales = _mm_loadu_ps(at as *const f32);
                let w = at.add(GROUP * 4);
                let sums = transpose_sum(
                    row_dot(x, w),
                    row_dot(x, w.add(BLOCK)),
                    row_dot(x, w.add(2 * BLOCK)),
                    row_dot(x, w.add(3 * BLOCK)),
                );
                let scale = _mm_mul_ps(scales, _mm_set1_ps(x_scale));
                acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(sums), scale));
            }
        }
        let mut out = [0f32; 4];
        // SAFETY: `out` holds four f32.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), acc) };
        out
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

    /// Whatever SIMD path this target dispatches to (SIMD128, AVX2) against the portable
    /// loops: weights across the whole i8 range, -128 included; the activations of
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
        let Quantized {
            quants: xq,
            scales: xs,
        } = activations::quantize::<BLOCK>(&values);
        assert_eq!(dot4(&xq, &xs, &group), portable_dot4(&xq, &xs, &group));
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
        let group_bytes = blocks * GROUP_BLOCK_BYTES;
        for m in [1, 4, 5, 9] {
            let awkward = activations::awkward_values(blocks, BLOCK);
            let x: Vec<f32> = (0..m)
                .flat_map(|r| awkward.iter().cycle().skip(3 * r).take(cols))
                .copied()
                .collect();
            let got = matmul_on(None, &packed, rows, cols, &x).unwrap();
            let Quantized { quants, scales } = activations::quantize::<BLOCK>(&x);
            for r in 0..m {
                let expected: Vec<f32> = packed
                    .chunks_exact(group_bytes)
                    .flat_map(|group| {
                        portable_dot4(
                            &quants[r * cols..(r + 1) * cols],
                            &scales[r * blocks..(r + 1) * blocks],
                            group,
                        )
                    })
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
