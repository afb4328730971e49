//! llama.cpp's K-quant matrices (Q4_K, Q5_K, Q6_K), read as a GGUF file stores them, and their
//! matmul with 8-bit activations.
//!
//! A row is a run of 256-value super-blocks. Q4_K and Q5_K give each 32-value sub-block a
//! 6-bit scale and a 6-bit minimum (value = d·scale·q − dmin·min, q in 0..16 or 0..32); Q6_K
//! gives each 16 values a signed 8-bit scale (value = d·scale·q, q in -32..32). Activations
//! are rounded to 8 bits with one scale per super-block, as llama.cpp's Q8_K does, so a
//! super-block's products are summed exactly in i32 and scaled once.
//!
//! In wasm32 candle's SIMD128 code for these types stores the unpacked quants, multiplies them
//! in i16 and widens every product to 32 bits to scale it (Q4_K, Q6_K), or has none (Q5_K).
//! Here eight products are summed into i32 pairs by one `i32x4.dot_i16x8_s` and a sub-block's
//! sums are scaled once; with the `relaxed-simd` feature, sixteen by one
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s`, exact because the quants (unsigned, below 64) are its
//! 7-bit operand. In a decode step a Q4_K or Q5_K super-block's 6-bit scales and minimums are
//! unpacked by a few shuffles in registers, and its eight sub-blocks' sums weighed together;
//! four super-blocks' sums are then summed across and scaled in one vector, their f16 scales
//! converted together (every path adds a row's super-blocks in four lanes, `Terms`, so that
//! this order is everyone's).
//! For a prompt (several activation rows) each super-block is unpacked once into i16 weights
//! with the scales multiplied in, and every row then costs one `dot_i16x8_s` per eight
//! products; four weight rows and two activation rows go together, so that each load serves
//! several products. bench/NOTES.md has what each gains.
//!
//! On x86-64 with AVX2, `maddubs` multiplies 32 unsigned quants by 32 activation quants and
//! sums them in pairs, and `madd` weighs the pairs by their scales, as llama.cpp's AVX2 code
//! does; the scales come out of the header by byte shuffles, as in wasm32, and each chunk's
//! scale is spread over its lanes by one more; each super-block is unpacked once for all of a
//! prompt's rows, and its floats are combined as the portable loop combines them.

use thiserror::Error;

use crate::pool::{self, Pool};
use crate::{activations, int8};

/// Values per super-block.
pub const SUPER: usize = 256;

/// A K-quant type this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KQuant {
    /// 4-bit quants, 6-bit scales and minimums per 32 values: 144 bytes per super-block.
    Q4K,
    /// Q4_K plus a fifth bit per quant: 176 bytes.
    Q5K,
    /// 6-bit quants, 8-bit scales per 16 values: 210 bytes.
    Q6K,
}

impl KQuant {
    /// Bytes of one super-block.
    pub const fn block_bytes(self) -> usize {
        match self {
            KQuant::Q4K => 144,
            KQuant::Q5K => 176,
            KQuant::Q6K => 210,
        }
    }

    /// Bytes of a `[rows, cols]` matrix, if `cols` is whole super-blocks.
    pub fn matrix_bytes(self, rows: usize, cols: usize) -> Option<usize> {
        cols.is_multiple_of(SUPER)
            .then(|| rows * cols / SUPER * self.block_bytes())
    }
}

/// Shapes and sizes that do not fit together.
#[derive(Debug, Error, PartialEq)]
pub enum KQuantError {
    /// The columns are not whole super-blocks, or the data is not `rows × cols` of `kind`.
    #[error("a {kind:?} [{rows}, {cols}] matrix needs whole 256-value rows and {expected} bytes, not {found}")]
    Size {
        /// The type.
        kind: KQuant,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Bytes the shape needs (0 when the columns are not whole super-blocks).
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// Activations that are not whole rows of the weight's width.
    #[error("K-quant matmul: {found} input values are not rows of a [{rows}, {cols}] weight")]
    Width {
        /// Weight rows.
        rows: usize,
        /// Weight columns.
        cols: usize,
        /// The number of activation values.
        found: usize,
    },
}

/// Checks that `bytes` holds a `[rows, cols]` matrix of `kind`.
pub fn check(kind: KQuant, bytes: usize, rows: usize, cols: usize) -> Result<(), KQuantError> {
    match kind.matrix_bytes(rows, cols) {
        Some(expected) if expected == bytes => Ok(()),
        expected => Err(KQuantError::Size {
            kind,
            rows,
            cols,
            expected: expected.unwrap_or(0),
            found: bytes,
        }),
    }
}

/// Row `row` of a `[rows, cols]` matrix of `kind`, dequantized as llama.cpp does (the same
/// float operations in the same order).
pub fn dequantize_row(kind: KQuant, data: &[u8], cols: usize, row: usize) -> Vec<f32> {
    let row_bytes = cols / SUPER * kind.block_bytes();
    let mut values = Vec::with_capacity(cols);
    for block in data[row * row_bytes..(row + 1) * row_bytes].chunks_exact(kind.block_bytes()) {
        let b = Block::unpack(kind, block);
        values.extend(b.quants.iter().enumerate().map(|(i, &q)| {
            let (scale, min) = (b.scales[i / 16] as f32, b.mins[i / 32] as f32);
            match kind {
                KQuant::Q6K => b.d * scale * q as f32,
                KQuant::Q4K | KQuant::Q5K => b.d * scale * q as f32 - b.dmin * min,
            }
        }));
    }
    values
}

/// `out = x Wᵀ` for `x` holding rows of `cols` values and `W` a `[rows, cols]` matrix of
/// `kind`; `out` gets `rows` values per row of `x`.
pub fn matmul(
    kind: KQuant,
    data: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Result<Vec<f32>, KQuantError> {
    matmul_on(pool::global(), kind, data, rows, cols, x)
}

/// [`matmul`] with its weight rows split across `pool`, or on the caller alone.
pub(crate) fn matmul_on(
    pool: Option<&Pool>,
    kind: KQuant,
    data: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> Result<Vec<f32>, KQuantError> {
    check(kind, data.len(), rows, cols)?;
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(KQuantError::Width {
            rows,
            cols,
            found: x.len(),
        });
    }
    let m = x.len() / cols;
    let supers = cols / SUPER;
    let x = activations::quantize::<SUPER>(x);
    let sums = sub_block_sums(&x.quants);
    let xs: Vec<Activation> = (0..m)
        .map(|i| Activation {
            quants: &x.quants[i * cols..(i + 1) * cols],
            scales: &x.scales[i * supers..(i + 1) * supers],
            sums: &sums[i * cols / 16..(i + 1) * cols / 16],
        })
        .collect();
    let mut out = vec![0f32; m * rows];
    let shared = pool::Disjoint::new(&mut out);
    let row_bytes = supers * kind.block_bytes();
    let row = |r: usize| &data[r * row_bytes..(r + 1) * row_bytes];
    // One weight row at a time (a prompt in wasm32: four), every activation row against it
    // while it is hot; runs of rows split across `pool`.
    pool::for_each_range(pool, rows, int8::grain(row_bytes), |range| {
        #[cfg(not(target_arch = "wasm32"))]
        let rest = range.start;
        #[cfg(target_arch = "wasm32")]
        let rest = {
            let mut r = range.start;
            if m > 1 {
                let mut dots = vec![[0f32; ROWS]; m];
                while r + ROWS <= range.end {
                    let group = std::array::from_fn(|k| row(r + k));
                    simd128::dot_row_group(kind, group, &xs, &mut dots);
                    for (i, dots) in dots.iter().enumerate() {
                        // SAFETY: each weight row's results are written by the one task that
                        // has it.
                        unsafe { shared.slice(i * rows + r..i * rows + r + ROWS) }
                            .copy_from_slice(dots);
                    }
                    r += ROWS;
                }
            }
            r
        };
        let mut dots = vec![0f32; m];
        for r in rest..range.end {
            dot_rows(kind, row(r), &xs, &mut dots);
            for (i, &dot) in dots.iter().enumerate() {
                // SAFETY: each weight row's results are written by the one task that has it.
                unsafe { shared.slice(i * rows + r..i * rows + r + 1)[0] = dot };
            }
        }
    });
    Ok(out)
}

/// Weight rows a wasm32 prompt multiplies together: each widened activation load serves four
/// rows, where one row at a time loaded every activation byte once per product (each weight
/// load then serves two activation rows).
#[cfg(target_arch = "wasm32")]
const ROWS: usize = 4;

/// One quantized activation row.
#[derive(Clone)]
struct Activation<'a> {
    quants: &'a [i8],
    /// One per super-block.
    scales: &'a [f32],
    /// The quants summed per 16 values (at most 16 · 127 in magnitude): for the minimums of
    /// Q4_K and Q5_K (two per 32-value sub-block), and for Q6_K's offset of 32 where its quants
    /// are multiplied unsigned.
    sums: &'a [i16],
}

fn sub_block_sums(quants: &[i8]) -> Vec<i16> {
    quants
        .chunks_exact(16)
        .map(|q| q.iter().map(|&q| q as i16).sum())
        .collect()
}

/// Checks that `row` is whole super-blocks of `kind`, that each of `xs` holds 256 quants and
/// 16 sums per super-block, and that there are `outs` results for them: what the SIMD paths'
/// unchecked loads rely on.
#[cfg_attr(
    not(any(target_arch = "wasm32", target_arch = "x86_64")),
    allow(dead_code)
)]
fn assert_lengths(kind: KQuant, row: &[u8], xs: &[Activation], outs: usize) {
    let supers = row.len() / kind.block_bytes();
    assert!(
        row.len().is_multiple_of(kind.block_bytes())
            && outs == xs.len()
            && xs
                .iter()
                .all(|x| x.quants.len() == supers * SUPER && x.sums.len() == supers * 16),
        "K-quant matmul: activation and weight row disagree in length"
    );
}

/// The dot products of one weight row with each activation row, into `out`.
fn dot_rows(kind: KQuant, row: &[u8], xs: &[Activation], out: &mut [f32]) {
    #[cfg(target_arch = "wasm32")]
    {
        if let [x] = xs {
            out[0] = simd128::dot(kind, row, x);
        } else {
            simd128::dot_row_group(kind, [row], xs, out.as_chunks_mut().0);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::available() {
            assert_lengths(kind, row, xs, out.len());
            // SAFETY: the CPU has AVX2, and the lengths are as `avx2::dot_rows` needs them.
            unsafe { avx2::dot_rows(kind, row, xs, out) };
            return;
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        for (x, out) in xs.iter().zip(out) {
            *out = portable_dot(kind, row, x);
        }
    }
}

/// Whether [`matmul`] runs SIMD code on this machine: SIMD128 in wasm32, AVX2 on x86-64 when
/// the CPU has it.
pub fn accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cfg!(target_arch = "wasm32")
    }
}

/// Where a Q4_K or Q5_K super-block keeps its fields.
struct Q45<'a> {
    d: f32,
    dmin: f32,
    scales: [u8; 8],
    mins: [u8; 8],
    /// Q5_K's 32 bytes of fifth bits.
    high: Option<&'a [u8]>,
    /// 128 bytes, two 4-bit quants each.
    qs: &'a [u8],
}

impl<'a> Q45<'a> {
    fn read(kind: KQuant, block: &'a [u8]) -> Self {
        let (scales, mins) = scales_and_mins(&block[4..16]);
        let (high, qs) = match kind {
            KQuant::Q5K => (Some(&block[16..48]), &block[48..176]),
            _ => (None, &block[16..144]),
        };
        let (d, dmin) = d_dmin(kind, block);
        Q45 {
            d,
            dmin,
            scales,
            mins,
            high,
            qs,
        }
    }
}

/// A super-block's scale `d` and minimum scale `dmin`: Q4_K and Q5_K's first four bytes, Q6_K's
/// `d` stored after its quants and scales (it has no minimums: zero).
#[inline(always)]
fn d_dmin(kind: KQuant, block: &[u8]) -> (f32, f32) {
    match kind {
        KQuant::Q6K => (f16_to_f32([block[208], block[209]]), 0.0),
        KQuant::Q4K | KQuant::Q5K => (
            f16_to_f32([block[0], block[1]]),
            f16_to_f32([block[2], block[3]]),
        ),
    }
}

/// A super-block's fields, unpacked.
struct Block {
    d: f32,
    dmin: f32,
    /// Scale per 16 values (Q4_K and Q5_K repeat each sub-block's scale twice).
    scales: [i32; 16],
    /// Minimum per 32 values (zero for Q6_K).
    mins: [u8; 8],
    quants: [i8; SUPER],
}

impl Block {
    fn unpack(kind: KQuant, block: &[u8]) -> Self {
        let mut b = Block {
            d: 0.0,
            dmin: 0.0,
            scales: [0; 16],
            mins: [0; 8],
            quants: [0; SUPER],
        };
        match kind {
            KQuant::Q4K | KQuant::Q5K => {
                let h = Q45::read(kind, block);
                (b.d, b.dmin, b.mins) = (h.d, h.dmin, h.mins);
                for (pair, &scale) in b.scales.chunks_exact_mut(2).zip(&h.scales) {
                    pair.fill(scale as i32);
                }
                for (i, q) in b.quants.iter_mut().enumerate() {
                    let (chunk, half, l) = (i / 64, (i / 32) % 2, i % 32);
                    let byte = h.qs[32 * chunk + l];
                    let nibble = if half == 0 { byte & 0xF } else { byte >> 4 };
                    let fifth = h.high.map_or(0, |h| (h[l] >> (2 * chunk + half)) & 1);
                    *q = (nibble | fifth << 4) as i8;
                }
            }
            KQuant::Q6K => {
                let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
                b.d = d_dmin(kind, block).0;
                for (s, &byte) in b.scales.iter_mut().zip(scales) {
                    *s = byte as i8 as i32;
                }
                for (i, q) in b.quants.iter_mut().enumerate() {
                    let (half, quarter, l) = (i / 128, (i / 32) % 4, i % 32);
                    let low = ql[64 * half + 32 * (quarter % 2) + l];
                    let low = if quarter < 2 { low & 0xF } else { low >> 4 };
                    let high = (qh[32 * half + l] >> (2 * quarter)) & 3;
                    *q = (low | high << 4) as i8 - 32;
                }
            }
        }
        b
    }
}

/// The eight 6-bit scales and minimums packed in 12 bytes (llama.cpp's `get_scale_min_k4`,
/// four at a time): bytes 0-3 hold scales 0-3 and bytes 4-7 minimums 0-3 in their low six
/// bits, bytes 8-11 the low four bits of scales and minimums 4-7, and the spare top bits of
/// bytes 0-7 their high two bits.
fn scales_and_mins(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (a, b, c) = (word(0), word(1), word(2));
    let scales = [a & LOW6, (c & LOW4) | (((a >> 6) & LOW2) << 4)];
    let mins = [b & LOW6, ((c >> 4) & LOW4) | (((b >> 6) & LOW2) << 4)];
    let bytes = |w: [u32; 2]| {
        let (lo, hi) = (w[0].to_le_bytes(), w[1].to_le_bytes());
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
    };
    (bytes(scales), bytes(mins))
}

/// An f16 as f32: the bits moved for normal numbers (the scales almost always are), the
/// `half` crate for the rest. In wasm32 this is a few integer operations where `half`'s
/// software conversion branches on every case.
#[inline(always)]
fn f16_to_f32(bytes: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes(bytes) as u32;
    let exponent = h & 0x7c00;
    if exponent == 0 || exponent == 0x7c00 {
        return half::f16::from_bits(h as u16).to_f32();
    }
    f32::from_bits(((h & 0x8000) << 16) | (((h & 0x7fff) << 13) + ((127 - 15) << 23)))
}

/// A super-block's contribution from its exact integer sums: `sumi` is Σ scale·q·x and
/// `summ` Σ min·Σx over the sub-blocks.
#[inline(always)]
fn scaled(kind: KQuant, x_scale: f32, d: f32, dmin: f32, sumi: i32, summ: i32) -> f32 {
    match kind {
        KQuant::Q6K => x_scale * (d * sumi as f32),
        KQuant::Q4K | KQuant::Q5K => x_scale * (d * sumi as f32 - dmin * summ as f32),
    }
}

/// A dot product's super-block terms ([`scaled`]), added in four lanes by super-block index
/// mod 4, the lanes summed pairwise at the end: the order every path keeps, so that SIMD code
/// may finish four super-blocks in one vector and still equal the portable loop bit for bit.
#[derive(Debug, Clone, Copy, Default)]
struct Terms([f32; 4]);

impl Terms {
    fn add(&mut self, s: usize, term: f32) {
        self.0[s % 4] += term;
    }

    fn total(self) -> f32 {
        let [a, b, c, d] = self.0;
        (a + b) + (c + d)
    }
}

/// Σ min·Σx over a super-block's eight sub-blocks.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn min_sum(mins: &[u8; 8], sums: &[i16]) -> i32 {
    mins.iter()
        .zip(sums.chunks_exact(2))
        .map(|(&m, s)| m as i32 * (s[0] as i32 + s[1] as i32))
        .sum()
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_dot(kind: KQuant, row: &[u8], x: &Activation) -> f32 {
    let mut terms = Terms::default();
    for (s, block) in row.chunks_exact(kind.block_bytes()).enumerate() {
        let b = Block::unpack(kind, block);
        let xq = &x.quants[s * SUPER..(s + 1) * SUPER];
        let sumi: i32 = (0..16)
            .map(|g| {
                let dot: i32 = (16 * g..16 * g + 16)
                    .map(|i| b.quants[i] as i32 * xq[i] as i32)
                    .sum();
                b.scales[g] * dot
            })
            .sum();
        let summ = min_sum(&b.mins, &x.sums[16 * s..16 * s + 16]);
        terms.add(s, scaled(kind, x.scales[s], b.d, b.dmin, sumi, summ));
    }
    terms.total()
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use std::arch::wasm32::*;

    use super::{d_dmin, scaled, Activation, KQuant, Terms, SUPER};
    use crate::int8::simd128::{high_nibbles, transpose_sum};

    /// Σ q·x over 16 lanes, as four i32 sums added to `acc`: `q` widened in registers, `x`
    /// as it is loaded.
    ///
    /// # Safety
    /// `x` must point at 16 readable quants.
    #[cfg(not(feature = "relaxed-simd"))]
    #[inline(always)]
    unsafe fn products(acc: v128, q: v128, x: *const i8) -> v128 {
        let low = i32x4_dot_i16x8(i16x8_extend_low_i8x16(q), i16x8_load_extend_i8x8(x));
        let high = i32x4_dot_i16x8(i16x8_extend_high_i8x16(q), i16x8_load_extend_i8x8(x.add(8)));
        i32x4_add(acc, i32x4_add(low, high))
    }

    /// [`products`] for `q` in 0..128, by relaxed SIMD's
    /// `i32x4.relaxed_dot_i8x16_i7x16_add_s`: sixteen byte products, four per i32 lane, in
    /// one instruction. Its result is implementation-defined only where a lane of its second
    /// operand has the top bit set, which these quants never have, so it is exact.
    ///
    /// # Safety
    /// `x` must point at 16 readable quants.
    #[cfg(feature = "relaxed-simd")]
    #[inline(always)]
    unsafe fn products(acc: v128, q: v128, x: *const i8) -> v128 {
        i32x4_relaxed_dot_i8x16_i7x16_add(v128_load(x as *const v128), q, acc)
    }

    #[inline(always)]
    fn hsum(v: v128) -> i32 {
        let v = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
        let v = i32x4_add(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
        i32x4_extract_lane::<0>(v)
    }

    /// A super-block's eight minimums, lanes 8..16 of `packed` ([`scales_and_mins`]), each
    /// twice as i16 lanes: the weights of the activations' 16 sums per 16 values in
    /// `super::min_sum`'s Σ min·Σx, by [`weighted_sixteen`].
    #[inline(always)]
    fn min_weights(packed: v128) -> (v128, v128) {
        let zero = i32x4_splat(0);
        let low = i8x16_shuffle::<8, 16, 8, 16, 9, 16, 9, 16, 10, 16, 10, 16, 11, 16, 11, 16>(
            packed, zero,
        );
        let high = i8x16_shuffle::<12, 16, 12, 16, 13, 16, 13, 16, 14, 16, 14, 16, 15, 16, 15, 16>(
            packed, zero,
        );
        (low, high)
    }

    /// Σ w·s over 16 values as four i32 lanes to be summed, the weights `low` and `high` as
    /// i16 lanes and `s` as loaded (|w·s| stays below 2^18).
    ///
    /// # Safety
    /// `sums` must point at 16 readable values.
    #[inline(always)]
    unsafe fn weighted_sixteen(low: v128, high: v128, sums: *const i16) -> v128 {
        i32x4_add(
            i32x4_dot_i16x8(low, v128_load(sums as *const v128)),
            i32x4_dot_i16x8(high, v128_load(sums.add(8) as *const v128)),
        )
    }

    /// Bit `bit` of each byte of `v`, moved to bit 4 (Q5_K's fifth bit). The shift is of
    /// 16-bit lanes ([`high_nibbles`] says why): the bits it moves across bytes are masked.
    #[inline(always)]
    fn fifth_bit(v: v128, bit: u32) -> v128 {
        let moved = if bit <= 4 {
            i16x8_shl(v, 4 - bit)
        } else {
            u16x8_shr(v, bit - 4)
        };
        v128_and(moved, u8x16_splat(0x10))
    }

    /// Calls `f(j, a, b)` for each sub-block `j` of a Q4_K or Q5_K super-block, `a` and `b`
    /// holding its values 0..16 and 16..32 as unsigned bytes: the low nibbles of a 32-byte
    /// chunk of quants for even `j`, the high ones for odd, with Q5_K's fifth bit `j` of the
    /// matching byte of `high` at bit 4.
    ///
    /// # Safety
    /// `qs` and `high` must point at 128 and 32 readable bytes.
    #[inline(always)]
    unsafe fn each_q45_sub_block(
        qs: *const u8,
        high: Option<*const u8>,
        mut f: impl FnMut(usize, v128, v128),
    ) {
        let load = |p: *const u8| v128_load(p as *const v128);
        let nibbles = u8x16_splat(0x0F);
        let high = high.map(|h| (load(h), load(h.add(16))));
        for chunk in 0..4 {
            let q1 = load(qs.add(32 * chunk));
            let q2 = load(qs.add(32 * chunk + 16));
            for half in 0..2 {
                let (mut a, mut b) = if half == 0 {
                    (v128_and(q1, nibbles), v128_and(q2, nibbles))
                } else {
                    (high_nibbles(q1), high_nibbles(q2))
                };
                let j = 2 * chunk + half;
                if let Some((h1, h2)) = high {
                    a = v128_or(a, fifth_bit(h1, j as u32));
                    b = v128_or(b, fifth_bit(h2, j as u32));
                }
                f(j, a, b);
            }
        }
    }

    /// The four quarters of 16 Q6_K values (value l, l + 32, l + 64, l + 96 of a half) as
    /// unsigned bytes 0..64, from 16 bytes of `ql` (`l1`), the 16 bytes 32 further on (`l2`)
    /// and 16 bytes of `qh`: low four bits from `l1` (quarters 0, 2) or `l2`, low nibble for
    /// quarters 0 and 1; high two bits 2t, 2t+1 of `h`, moved to bits 4 and 5. Its shifts are
    /// of 16-bit lanes, the bits they move across bytes masked.
    #[inline(always)]
    fn q6_quarters(l1: v128, l2: v128, h: v128) -> [v128; 4] {
        let (low4, high2) = (u8x16_splat(0x0F), u8x16_splat(0x30));
        [
            v128_or(v128_and(l1, low4), v128_and(i16x8_shl(h, 4), high2)),
            v128_or(v128_and(l2, low4), v128_and(i16x8_shl(h, 2), high2)),
            v128_or(high_nibbles(l1), v128_and(h, high2)),
            v128_or(high_nibbles(l2), v128_and(u16x8_shr(h, 2), high2)),
        ]
    }

    /// The SIMD128 twin of `portable_dot`, equal to it bit for bit: the integer sums are
    /// exact, and the floats are combined in the same order ([`super::Terms`]), four
    /// super-blocks' terms in one vector.
    #[cfg_attr(feature = "relaxed-simd", target_feature(enable = "relaxed-simd"))]
    pub(super) fn dot(kind: KQuant, row: &[u8], x: &Activation) -> f32 {
        let bytes = kind.block_bytes();
        super::assert_lengths(kind, row, std::slice::from_ref(x), 1);
        let supers = row.len() / bytes;
        let whole = supers - supers % 4;
        let mut lanes = f32x4_splat(0.0);
        for s in (0..whole).step_by(4) {
            // SAFETY: the row holds super-blocks s..s + 4, and `x` their 1024 quants, 64 sums
            // and four scales (asserted above).
            lanes = f32x4_add(lanes, unsafe {
                four_terms(
                    kind,
                    row.as_ptr().add(s * bytes),
                    x.quants.as_ptr().add(s * SUPER),
                    x.sums.as_ptr().add(16 * s),
                    x.scales.as_ptr().add(s),
                )
            });
        }
        let mut terms = Terms(crate::int8::simd128::lanes(lanes));
        for (s, block) in row.chunks_exact(bytes).enumerate().skip(whole) {
            // SAFETY: as above, for super-block `s`.
            let (sumi, summ) = unsafe {
                block_sums(
                    kind,
                    block.as_ptr(),
                    x.quants.as_ptr().add(s * SUPER),
                    x.sums.as_ptr().add(16 * s),
                )
            };
            let (d, dmin) = d_dmin(kind, block);
            terms.add(
                s,
                scaled(kind, x.scales[s], d, dmin, hsum(sumi), hsum(summ)),
            );
        }
        terms.total()
    }

    /// Four consecutive super-blocks' terms (`super::scaled`) as f32 lanes, each computed as
    /// the scalar code computes it: their integer sums summed across by shuffles into one
    /// vector each, their f16 scales converted together.
    ///
    /// # Safety
    /// `block` must point at four super-blocks of `kind`, `xq` at their 1024 activation
    /// quants, `sums` at their 64 activation sums and `x_scales` at their four scales.
    #[inline(always)]
    unsafe fn four_terms(
        kind: KQuant,
        block: *const u8,
        xq: *const i8,
        sums: *const i16,
        x_scales: *const f32,
    ) -> v128 {
        let at = |k: usize| block.add(k * kind.block_bytes());
        // Per super-block [Σ of sumi lanes 0, 2 | 1, 3, Σ of summ lanes 0, 2 | 1, 3].
        let (h0, h1) = (
            halves(kind, at(0), xq, sums),
            halves(kind, at(1), xq.add(SUPER), sums.add(16)),
        );
        let h01 = i32x4_add(
            i32x4_shuffle::<0, 2, 4, 6>(h0, h1),
            i32x4_shuffle::<1, 3, 5, 7>(h0, h1),
        );
        let (h2, h3) = (
            halves(kind, at(2), xq.add(2 * SUPER), sums.add(32)),
            halves(kind, at(3), xq.add(3 * SUPER), sums.add(48)),
        );
        let h23 = i32x4_add(
            i32x4_shuffle::<0, 2, 4, 6>(h2, h3),
            i32x4_shuffle::<1, 3, 5, 7>(h2, h3),
        );
        let sumi = f32x4_convert_i32x4(i32x4_shuffle::<0, 2, 4, 6>(h01, h23));
        let summ = f32x4_convert_i32x4(i32x4_shuffle::<1, 3, 5, 7>(h01, h23));
        let x_scale = v128_load(x_scales as *const v128);
        match kind {
            KQuant::Q4K | KQuant::Q5K => {
                // Each super-block's d and dmin, the f16 pair it starts with, in one lane.
                let mut pairs = i32x4_splat(0);
                pairs = u32x4_replace_lane::<0>(pairs, (at(0) as *const u32).read_unaligned());
                pairs = u32x4_replace_lane::<1>(pairs, (at(1) as *const u32).read_unaligned());
                pairs = u32x4_replace_lane::<2>(pairs, (at(2) as *const u32).read_unaligned());
                pairs = u32x4_replace_lane::<3>(pairs, (at(3) as *const u32).read_unaligned());
                let d = scales_to_f32(v128_and(pairs, u32x4_splat(0xFFFF)));
                let dmin = scales_to_f32(u32x4_shr(pairs, 16));
                f32x4_mul(
                    x_scale,
                    f32x4_sub(f32x4_mul(d, sumi), f32x4_mul(dmin, summ)),
                )
            }
            KQuant::Q6K => {
                let d = |k: usize| (at(k).add(208) as *const u16).read_unaligned() as u32;
                let d = scales_to_f32(u32x4(d(0), d(1), d(2), d(3)));
                f32x4_mul(x_scale, f32x4_mul(d, sumi))
            }
        }
    }

    /// The f16 values in the low 16 bits of each i32 lane of `bits` (the high bits zero) as
    /// f32 lanes, exactly as `super::f16_to_f32` converts each, and without a float operation
    /// on a subnormal: a quantized model's scales are often subnormal f16 (every `d` of the
    /// Phi-3-shaped bench file is), and a float operation that reads or makes a subnormal f32
    /// costs x86 CPUs a slow microcode assist (with attention's `widen`, which multiplies,
    /// a `[16384, 3072]` Q4_K decode took 2.6 ms in Chromium; with this, 1.7). The bits are
    /// moved and the exponent rebiased, once more for infinities and NaNs; zeros and
    /// subnormals are renormalized by a subtraction of normal floats, 2⁻¹⁴·(1 + m/1024) −
    /// 2⁻¹⁴ being m·2⁻²⁴ exactly.
    #[inline(always)]
    pub(super) fn scales_to_f32(bits: v128) -> v128 {
        const EXPONENT: u32 = 0x7C00 << 13;
        let magnitude = i32x4_shl(v128_and(bits, u32x4_splat(0x7FFF)), 13);
        let exponent = v128_and(magnitude, u32x4_splat(EXPONENT));
        let rebias = u32x4_splat((127 - 15) << 23);
        let rebiased = i32x4_add(magnitude, rebias);
        let special = u32x4_eq(exponent, u32x4_splat(EXPONENT));
        let rebiased = i32x4_add(rebiased, v128_and(special, rebias));
        let renormalized = f32x4_sub(
            i32x4_add(rebiased, u32x4_splat(1 << 23)),
            f32x4_splat(f32::from_bits(113 << 23)),
        );
        let tiny = u32x4_eq(exponent, u32x4_splat(0));
        let value = v128_bitselect(renormalized, rebiased, tiny);
        v128_or(value, i32x4_shl(v128_and(bits, u32x4_splat(0x8000)), 16))
    }

    /// A super-block's [`block_sums`] half summed across: Σ scale·q·x of its lanes 0 and 2,
    /// then of 1 and 3, then the same of Σ min·Σx.
    ///
    /// # Safety
    /// As for [`block_sums`].
    #[inline(always)]
    unsafe fn halves(kind: KQuant, block: *const u8, xq: *const i8, sums: *const i16) -> v128 {
        let (sumi, summ) = block_sums(kind, block, xq, sums);
        i32x4_add(
            i32x4_shuffle::<0, 1, 4, 5>(sumi, summ),
            i32x4_shuffle::<2, 3, 6, 7>(sumi, summ),
        )
    }

    /// A super-block's Σ scale·q·x and (Q4_K, Q5_K) Σ min·Σx, each as four i32 lanes to be
    /// summed ([`q45_sums`], [`q6_sums`]; the second is zero for Q6_K).
    ///
    /// # Safety
    /// `block` must point at one super-block of `kind`, `xq` at 256 quants and `sums` at 16
    /// values.
    #[inline(always)]
    unsafe fn block_sums(
        kind: KQuant,
        block: *const u8,
        xq: *const i8,
        sums: *const i16,
    ) -> (v128, v128) {
        match kind {
            KQuant::Q4K | KQuant::Q5K => q45_sums(kind, block, xq, sums),
            KQuant::Q6K => (q6_sums(block, xq, sums), i32x4_splat(0)),
        }
    }

    /// The dot products of `R` weight rows with several activation rows (a prompt): `out[i][k]`
    /// is activation row `i` against weight row `k`. Each super-block of the rows is unpacked
    /// once into i16 weights with their scales multiplied in (|scale·q| ≤ 63·31 for Q4_K and
    /// Q5_K, 128·32 for Q6_K), and each pair then takes one `i32x4.dot_i16x8_s` per eight
    /// products. Activation rows go two at a time, so each widened activation load is
    /// multiplied with all the weight rows and each weight load with both activation rows.
    /// Equal to `dot` per pair, bit for bit.
    pub(super) fn dot_row_group<const R: usize>(
        kind: KQuant,
        rows: [&[u8]; R],
        xs: &[Activation],
        out: &mut [[f32; R]],
    ) {
        let bytes = kind.block_bytes();
        for row in rows {
            super::assert_lengths(kind, row, xs, out.len());
        }
        let mut terms = vec![[Terms::default(); R]; xs.len()];
        let mut w = [[0i16; SUPER]; R];
        for s in 0..rows[0].len() / bytes {
            // SAFETY: each block is one super-block of `kind`; each `w[k]` holds 256 values.
            let unpacked: [_; R] = std::array::from_fn(|k| unsafe {
                unpack(
                    kind,
                    &rows[k][s * bytes..(s + 1) * bytes],
                    w[k].as_mut_ptr(),
                )
            });
            let quants = |x: &Activation| x.quants[s * SUPER..].as_ptr();
            let finish = |x: &Activation, terms: &mut [Terms; R], sumi: [i32; R]| {
                for (k, &(d, dmin, mins)) in unpacked.iter().enumerate() {
                    // SAFETY: each row holds 16 sums per super-block (asserted above).
                    let summ = mins.map_or(0, |(low, high)| unsafe {
                        hsum(weighted_sixteen(low, high, x.sums[16 * s..].as_ptr()))
                    });
                    terms[k].add(s, scaled(kind, x.scales[s], d, dmin, sumi[k], summ));
                }
            };
            // Activation rows two at a time, so that each weight load serves two as well.
            let mut pairs = terms.chunks_exact_mut(2);
            for (x, terms) in xs.chunks_exact(2).zip(&mut pairs) {
                // SAFETY: each row holds `supers` super-blocks of quants (asserted above).
                let [a, b] = unsafe { weighted_sums(&w, [quants(&x[0]), quants(&x[1])]) };
                finish(&x[0], &mut terms[0], a);
                finish(&x[1], &mut terms[1], b);
            }
            if let ([x], [terms]) = (xs.chunks_exact(2).remainder(), pairs.into_remainder()) {
                // SAFETY: as above.
                let [sumi] = unsafe { weighted_sums(&w, [quants(x)]) };
                finish(x, terms, sumi);
            }
        }
        for (out, terms) in out.iter_mut().zip(terms) {
            *out = terms.map(Terms::total);
        }
    }

    /// A super-block unpacked into `w` as [`dot_row_group`] does; returns its `d`, `dmin` and
    /// its minimums' weights ([`min_weights`]; none for Q6_K).
    ///
    /// # Safety
    /// `block` must be one super-block of `kind`, and `w` point at 256 writable values.
    #[inline(always)]
    unsafe fn unpack(kind: KQuant, block: &[u8], w: *mut i16) -> (f32, f32, Option<(v128, v128)>) {
        let mins = match kind {
            KQuant::Q4K | KQuant::Q5K => Some(min_weights(unpack_q45(kind, block.as_ptr(), w))),
            KQuant::Q6K => {
                unpack_q6(block.as_ptr(), w);
                None
            }
        };
        let (d, dmin) = d_dmin(kind, block);
        (d, dmin, mins)
    }

    /// Σ w·x over 256 values for each of `w` and each activation row at `xq` (|w| ≤ 4096, so
    /// each i32 lane stays far from overflow): every activation load is widened once for all
    /// the weight rows, and every weight load serves all the activation rows.
    ///
    /// # Safety
    /// Each of `xq` must point at 256 readable quants.
    #[inline(always)]
    unsafe fn weighted_sums<const R: usize, const A: usize>(
        w: &[[i16; SUPER]; R],
        xq: [*const i8; A],
    ) -> [[i32; R]; A] {
        let mut acc = [[i32x4_splat(0); R]; A];
        for i in 0..SUPER / 8 {
            let x = xq.map(|x| i16x8_load_extend_i8x8(x.add(8 * i)));
            for (k, w) in w.iter().enumerate() {
                let w = v128_load(w.as_ptr().add(8 * i) as *const v128);
                for (acc, &x) in acc.iter_mut().zip(&x) {
                    acc[k] = i32x4_add(acc[k], i32x4_dot_i16x8(w, x));
                }
            }
        }
        acc.map(|acc| acc.map(hsum))
    }

    /// Stores 16 unsigned byte values of `q` times `scale` as i16 at `w`.
    ///
    /// # Safety
    /// `w` must point at 16 writable values.
    #[inline(always)]
    unsafe fn store_scaled(q: v128, scale: v128, w: *mut i16) {
        v128_store(w as *mut v128, i16x8_mul(i16x8_extend_low_u8x16(q), scale));
        v128_store(
            w.add(8) as *mut v128,
            i16x8_mul(i16x8_extend_high_u8x16(q), scale),
        );
    }

    /// A Q4_K or Q5_K super-block as 256 values scale·q; returns its scales and minimums as
    /// [`scales_and_mins`] packs them.
    ///
    /// # Safety
    /// `block` must point at one super-block of `kind`, and `w` at 256 writable values.
    #[inline(always)]
    unsafe fn unpack_q45(kind: KQuant, block: *const u8, w: *mut i16) -> v128 {
        let packed = scales_and_mins(v128_load(block as *const v128));
        let mut scales = [0u8; 16];
        v128_store(scales.as_mut_ptr() as *mut v128, packed);
        let (high, qs) = q45_quants(kind, block);
        each_q45_sub_block(qs, high, |j, a, b| {
            let scale = i16x8_splat(scales[j] as i16);
            store_scaled(a, scale, w.add(32 * j));
            store_scaled(b, scale, w.add(32 * j + 16));
        });
        packed
    }

    /// Where a Q4_K or Q5_K super-block at `block` keeps Q5_K's 32 bytes of fifth bits (none
    /// for Q4_K) and its 128 bytes of quants.
    ///
    /// # Safety
    /// `block` must point at one super-block of `kind`.
    #[inline(always)]
    unsafe fn q45_quants(kind: KQuant, block: *const u8) -> (Option<*const u8>, *const u8) {
        match kind {
            KQuant::Q5K => (Some(block.add(16)), block.add(48)),
            _ => (None, block.add(16)),
        }
    }

    /// A Q6_K super-block as 256 values scale·(q − 32).
    ///
    /// # Safety
    /// `block` must point at 210 readable bytes and `w` at 256 writable values.
    #[inline(always)]
    unsafe fn unpack_q6(block: *const u8, w: *mut i16) {
        let scales = block.add(192) as *const i8;
        let offset = i16x8_splat(32);
        each_q6_quarters(block, |first, quarters| {
            for (t, q) in quarters.into_iter().enumerate() {
                let at = first + 32 * t;
                let scale = i16x8_splat(*scales.add(at / 16) as i16);
                let low = i16x8_sub(i16x8_extend_low_u8x16(q), offset);
                let high = i16x8_sub(i16x8_extend_high_u8x16(q), offset);
                v128_store(w.add(at) as *mut v128, i16x8_mul(low, scale));
                v128_store(w.add(at + 8) as *mut v128, i16x8_mul(high, scale));
            }
        });
    }

    /// Calls `f(first, q)` for each four runs of 16 Q6_K values that share their bytes:
    /// `q[t]` holds values `first + 32t .. first + 32t + 16` as unsigned bytes 0..64, for
    /// `first` = 0, 16, 128, 144.
    ///
    /// # Safety
    /// `block` must point at 210 readable bytes.
    #[inline(always)]
    unsafe fn each_q6_quarters(block: *const u8, mut f: impl FnMut(usize, [v128; 4])) {
        let load = |p: *const u8| v128_load(p as *const v128);
        for half in 0..2 {
            let ql = block.add(64 * half);
            let qh = block.add(128 + 32 * half);
            for sixteen in 0..2 {
                let l1 = load(ql.add(16 * sixteen));
                let l2 = load(ql.add(32 + 16 * sixteen));
                f(
                    128 * half + 16 * sixteen,
                    q6_quarters(l1, l2, load(qh.add(16 * sixteen))),
                );
            }
        }
    }

    /// Σ scale·q·x − Σ min·Σx over a Q4_K or Q5_K super-block, its scales and minimums
    /// unpacked in registers ([`scales_and_mins`]): each sub-block's products stay four i32
    /// lanes until the eight are summed across and weighed together.
    ///
    /// # Safety
    /// `block` must point at one super-block of `kind`, `xq` at 256 quants and `sums` at 16
    /// values.
    #[inline(always)]
    unsafe fn q45_sums(
        kind: KQuant,
        block: *const u8,
        xq: *const i8,
        sums: *const i16,
    ) -> (v128, v128) {
        let packed = scales_and_mins(v128_load(block as *const v128));
        let (high, qs) = q45_quants(kind, block);
        let mut sub = [i32x4_splat(0); 8];
        each_q45_sub_block(qs, high, |j, a, b| {
            sub[j] = products(
                products(i32x4_splat(0), a, xq.add(32 * j)),
                b,
                xq.add(32 * j + 16),
            );
        });
        let scales = u16x8_extend_low_u8x16(packed);
        let sumi = i32x4_add(
            i32x4_mul(
                transpose_sum(sub[0], sub[1], sub[2], sub[3]),
                u32x4_extend_low_u16x8(scales),
            ),
            i32x4_mul(
                transpose_sum(sub[4], sub[5], sub[6], sub[7]),
                u32x4_extend_high_u16x8(scales),
            ),
        );
        let (low, high) = min_weights(packed);
        (sumi, weighted_sixteen(low, high, sums))
    }

    /// A Q4_K or Q5_K super-block's eight 6-bit scales (lanes 0..8) and minimums (lanes
    /// 8..16), as `super::scales_and_mins` unpacks them, from the super-block's first 16
    /// bytes (`d`, `dmin`, then the 12 packed bytes q0 to q11). Scale j < 4 is q[j] & 63 and
    /// minimum j is q[j + 4] & 63; scale j ≥ 4 takes its low four bits from q[j + 4] and its
    /// high two from the top of q[j − 4], minimum j ≥ 4 from the high nibble of q[j + 4] and
    /// the top of q[j].
    #[inline(always)]
    pub(super) fn scales_and_mins(header: v128) -> v128 {
        // q0..3, q8..11, q4..7, q8..11: the bytes holding each value's low bits.
        let low = i8x16_shuffle::<4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15>(
            header, header,
        );
        let masked = v128_and(
            low,
            u8x16(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0),
        );
        let nibbles = v128_and(
            u16x8_shr(low, 4),
            u8x16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15),
        );
        // q0..3 under scales 4..7 and q4..7 under minimums 4..7: their top two bits.
        let top = i8x16_shuffle::<16, 16, 16, 16, 4, 5, 6, 7, 16, 16, 16, 16, 8, 9, 10, 11>(
            header,
            i32x4_splat(0),
        );
        let top = v128_and(u16x8_shr(top, 2), u8x16_splat(0x30));
        v128_or(v128_or(masked, nibbles), top)
    }

    /// Σ scale·(q − 32)·x over a Q6_K super-block as four i32 lanes to be summed, `sums`
    /// being the activations' sums per 16 values.
    ///
    /// # Safety
    /// `block` must point at 210 readable bytes, `xq` at 256 quants and `sums` at 16 values.
    #[inline(always)]
    unsafe fn q6_sums(block: *const u8, xq: *const i8, sums: *const i16) -> v128 {
        let scales = v128_load(block.add(192) as *const v128);
        // The scales of runs r, r + 2, r + 4, r + 6 as i32 lanes, for r = 0, 8, 1, 9.
        let sorted =
            i8x16_shuffle::<0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15>(scales, scales);
        let (even, odd) = (
            i16x8_extend_low_i8x16(sorted),
            i16x8_extend_high_i8x16(sorted),
        );
        let weights = [
            i32x4_extend_low_i16x8(even),
            i32x4_extend_high_i16x8(even),
            i32x4_extend_low_i16x8(odd),
            i32x4_extend_high_i16x8(odd),
        ];
        // The quants are multiplied as they are unpacked, 0..64, and 32·Σ scale·Σx is taken
        // off once: relaxed SIMD's dot needs its second operand non-negative. Four runs of 16
        // are summed across together and weighed by their scales at once.
        let mut acc = i32x4_splat(0);
        each_q6_quarters(block, |first, q| {
            let at = |t: usize| xq.add(first + 32 * t);
            let zero = i32x4_splat(0);
            let sums = transpose_sum(
                products(zero, q[0], at(0)),
                products(zero, q[1], at(1)),
                products(zero, q[2], at(2)),
                products(zero, q[3], at(3)),
            );
            // Runs first / 16 + 2t: r = 0, 8, 1, 9 for first = 0, 128, 16, 144.
            let weights = weights[2 * (first % 128 / 16) + first / 128];
            acc = i32x4_add(acc, i32x4_mul(sums, weights));
        });
        let offset = weighted_sixteen(
            i16x8_extend_low_i8x16(scales),
            i16x8_extend_high_i8x16(scales),
            sums,
        );
        i32x4_sub(acc, i32x4_shl(offset, 5))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{scaled, Activation, KQuant, Terms, SUPER};

    pub(super) use crate::int8::avx2::available;

    /// The lanes of `v` summed.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// Σ w·s over 16 values: the weights as i16 lanes, `s` the activations' sums per 16.
    ///
    /// # Safety
    /// `sums` must point at 16 readable values.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn weighted_sixteen(w: __m256i, sums: *const i16) -> i32 {
        hsum(_mm256_madd_epi16(
            w,
            _mm256_loadu_si256(sums as *const __m256i),
        ))
    }

    /// 32 unsigned quants (below 64) times the 32 activation quants at `x`, each pair of
    /// products summed in i16 by `maddubs` (at most 2·63·127, no saturation), then each
    /// 16-bit lane weighted by `scales` into eight i32 sums.
    ///
    /// # Safety
    /// `x` must point at 32 readable quants.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn products(q: __m256i, x: *const i8, scales: __m256i) -> __m256i {
        let x = _mm256_loadu_si256(x as *const __m256i);
        _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), scales)
    }

    /// What a super-block's quants are weighed with.
    struct Header {
        d: f32,
        dmin: f32,
        /// Q4_K and Q5_K's minimums, each twice as i16 lanes, one per activation sum of 16
        /// (zero for Q6_K).
        mins: __m256i,
        /// Each chunk's scales as i16 lanes, one per pair of products.
        scales: [__m256i; 8],
        /// Q6_K's 16 scales widened to i16, for its offset of 32.
        q6_scales: __m256i,
    }

    /// The header of a super-block of `kind`: the 6-bit scales and minimums of Q4_K and Q5_K
    /// unpacked by shuffles ([`scales_and_mins`]), and each chunk's scales spread over its
    /// lanes by one byte shuffle.
    ///
    /// # Safety
    /// `block` must be one super-block of `kind`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn header(kind: KQuant, block: &[u8]) -> Header {
        // The i16 lane `k` of each 128-bit half in all eight of its lanes, `k` given per half.
        let spread = |v: __m256i, low: usize, high: usize| {
            let (low, high) = ((2 * low) as i16, (2 * high) as i16);
            let (low, high) = (low | (low + 1) << 8, high | (high + 1) << 8);
            _mm256_shuffle_epi8(
                v,
                _mm256_setr_m128i(_mm_set1_epi16(low), _mm_set1_epi16(high)),
            )
        };
        // SAFETY: a super-block is at least 144 bytes; the loads read bytes 0..16 (Q4_K, Q5_K)
        // and its 16 scales at 192..208 (Q6_K).
        unsafe {
            match kind {
                KQuant::Q4K | KQuant::Q5K => {
                    let packed = scales_and_mins(_mm_loadu_si128(block.as_ptr() as *const __m128i));
                    let wide = _mm256_cvtepu8_epi16(packed);
                    let scales = _mm256_permute2x128_si256::<0x00>(wide, wide);
                    let mins = _mm256_extracti128_si256::<1>(wide);
                    let (d, dmin) = super::d_dmin(kind, block);
                    Header {
                        d,
                        dmin,
                        mins: _mm256_setr_m128i(
                            _mm_unpacklo_epi16(mins, mins),
                            _mm_unpackhi_epi16(mins, mins),
                        ),
                        scales: std::array::from_fn(|c| spread(scales, c, c)),
                        q6_scales: _mm256_setzero_si256(),
                    }
                }
                KQuant::Q6K => {
                    let scales = block.as_ptr().add(192) as *const __m128i;
                    let wide = _mm256_cvtepi8_epi16(_mm_loadu_si128(scales));
                    let halves = [
                        _mm256_permute2x128_si256::<0x00>(wide, wide),
                        _mm256_permute2x128_si256::<0x11>(wide, wide),
                    ];
                    // Chunk `c` holds values 16·(2c) .. 16·(2c + 2): scales 2c and 2c + 1.
                    Header {
                        d: super::d_dmin(kind, block).0,
                        dmin: 0.0,
                        mins: _mm256_setzero_si256(),
                        scales: std::array::from_fn(|c| {
                            spread(halves[c / 4], 2 * c % 8, (2 * c + 1) % 8)
                        }),
                        q6_scales: wide,
                    }
                }
            }
        }
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

    /// Calls `f(c, q)` for each 32-value chunk `c` of a super-block of `kind`, `q` holding its
    /// quants as unsigned bytes.
    ///
    /// Q4_K and Q5_K: each 32-byte run of quants holds chunk `2r` in its low nibbles and
    /// `2r + 1` in its high ones, Q5_K's fifth bits `c` of the 32 bytes of `high`. Q6_K: value
    /// `l + 32t` of a 128-value half takes its low four bits from byte `l` (t = 0, 2) or
    /// `l + 32` of the half's `ql`, the low nibble for t < 2, and its high two bits from bits
    /// 2t, 2t + 1 of byte `l` of the half's `qh`.
    ///
    /// # Safety
    /// `block` must be one super-block of `kind`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn each_chunk(kind: KQuant, block: &[u8], mut f: impl FnMut(usize, __m256i)) {
        let p = block.as_ptr();
        let low4 = _mm256_set1_epi8(0x0F);
        // SAFETY: `block` holds the super-block; every load stays inside it (Q4_K: quants
        // at 16..144; Q5_K: fifth bits at 16..48, quants at 48..176; Q6_K: `ql` at 0..128,
        // `qh` at 128..192).
        let load = |at: usize| unsafe { _mm256_loadu_si256(p.add(at) as *const __m256i) };
        match kind {
            KQuant::Q4K | KQuant::Q5K => {
                let (high, qs) = match kind {
                    KQuant::Q5K => (Some(load(16)), 48),
                    _ => (None, 16),
                };
                let fifth = |bits: __m256i, c: usize| {
                    let bit = _mm256_srl_epi16(bits, _mm_cvtsi32_si128(c as i32));
                    _mm256_slli_epi16::<4>(_mm256_and_si256(bit, _mm256_set1_epi8(1)))
                };
                for r in 0..4 {
                    let q = load(qs + 32 * r);
                    let mut low = _mm256_and_si256(q, low4);
                    let mut top = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low4);
                    if let Some(bits) = high {
                        low = _mm256_or_si256(low, fifth(bits, 2 * r));
                        top = _mm256_or_si256(top, fifth(bits, 2 * r + 1));
                    }
                    f(2 * r, low);
                    f(2 * r + 1, top);
                }
            }
            KQuant::Q6K => {
                let high2 = _mm256_set1_epi8(0x30);
                for half in 0..2 {
                    let (l1, l2, h) =
                        (load(64 * half), load(64 * half + 32), load(128 + 32 * half));
                    let quarters = [
                        _mm256_or_si256(
                            _mm256_and_si256(l1, low4),
                            _mm256_and_si256(_mm256_slli_epi16::<4>(h), high2),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(l2, low4),
                            _mm256_and_si256(_mm256_slli_epi16::<2>(h), high2),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(l1), low4),
                            _mm256_and_si256(h, high2),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(l2), low4),
                            _mm256_and_si256(_mm256_srli_epi16::<2>(h), high2),
                        ),
                    ];
                    for (t, q) in quarters.into_iter().enumerate() {
                        f(4 * half + t, q);
                    }
                }
            }
        }
    }

    /// A super-block's contribution to one activation row's dot product, from its integer
    /// sum Σ scale·q·x over the chunks: Q4_K and Q5_K take off Σ min·Σx, Q6_K 32·Σ scale·Σx
    /// (its quants were multiplied unsigned), and the floats are combined as the portable
    /// loop combines them.
    ///
    /// # Safety
    /// `sums` must point at the super-block's 16 activation sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish(kind: KQuant, u: &Header, x_scale: f32, sumi: i32, sums: *const i16) -> f32 {
        // SAFETY: `sums` as this function's contract says.
        unsafe {
            match kind {
                KQuant::Q4K | KQuant::Q5K => {
                    let summ = weighted_sixteen(u.mins, sums);
                    scaled(kind, x_scale, u.d, u.dmin, sumi, summ)
                }
                KQuant::Q6K => {
                    let sumi = sumi - 32 * weighted_sixteen(u.q6_scales, sums);
                    scaled(kind, x_scale, u.d, 0.0, sumi, 0)
                }
            }
        }
    }

    /// The AVX2 twin of `portable_dot` for each activation row, equal to it bit for bit: the
    /// integer sums are exact, and the floats are combined by the same code in the same
    /// order. One row (decode) multiplies each chunk as it is unpacked; several (a prompt)
    /// unpack each super-block once for all of them.
    ///
    /// # Safety
    /// The CPU must have AVX2; `row` must be whole super-blocks of `kind`, each of `xs` hold
    /// 256 quants and 16 sums per super-block, and `out` one value per row of `xs`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_rows(kind: KQuant, row: &[u8], xs: &[Activation], out: &mut [f32]) {
        let blocks = row.chunks_exact(kind.block_bytes()).enumerate();
        if let [x] = xs {
            let mut terms = Terms::default();
            for (s, block) in blocks {
                // SAFETY: by this function's contract every pointer below stays inside the
                // super-block, its 256 activation quants and their 16 sums.
                unsafe {
                    let h = header(kind, block);
                    let xq = x.quants.as_ptr().add(s * SUPER);
                    let mut acc = _mm256_setzero_si256();
                    each_chunk(kind, block, |c, q| {
                        acc = _mm256_add_epi32(acc, products(q, xq.add(32 * c), h.scales[c]));
                    });
                    let sums = x.sums.as_ptr().add(16 * s);
                    terms.add(s, finish(kind, &h, x.scales[s], hsum(acc), sums));
                }
            }
            out[0] = terms.total();
            return;
        }
        let mut terms = vec![Terms::default(); xs.len()];
        let mut quants = [_mm256_setzero_si256(); SUPER / 32];
        for (s, block) in blocks {
            // SAFETY: as above.
            unsafe {
                let h = header(kind, block);
                each_chunk(kind, block, |c, q| quants[c] = q);
                for (x, terms) in xs.iter().zip(terms.iter_mut()) {
                    let xq = x.quants.as_ptr().add(s * SUPER);
                    let mut acc = _mm256_setzero_si256();
                    for (c, &q) in quants.iter().enumerate() {
                        acc = _mm256_add_epi32(acc, products(q, xq.add(32 * c), h.scales[c]));
                    }
                    let sums = x.sums.as_ptr().add(16 * s);
                    terms.add(s, finish(kind, &h, x.scales[s], hsum(acc), sums));
                }
            }
        }
        for (out, terms) in out.iter_mut().zip(terms) {
            *out = terms.total();
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    const KINDS: [KQuant; 3] = [KQuant::Q4K, KQuant::Q5K, KQuant::Q6K];

    /// `rows × cols` of `kind` from a deterministic byte pattern, with every f16 field set to
    /// a small positive value (random bytes would make some of them inf or NaN), every third
    /// `d` a subnormal f16 as a quantized model's often are.
    fn matrix(kind: KQuant, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
        let mut bytes: Vec<u8> = (0..kind.matrix_bytes(rows, cols).unwrap())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        for (i, block) in bytes.chunks_exact_mut(kind.block_bytes()).enumerate() {
            let d = match i % 3 {
                2 => half::f16::from_f32(3e-5 + (i % 5) as f32 * 1e-6),
                _ => half::f16::from_f32(0.01 + (i % 5) as f32 * 0.003),
            };
            assert_eq!(d.is_normal(), i % 3 != 2);
            let d = d.to_le_bytes();
            let dmin = half::f16::from_f32(0.02 + (i % 3) as f32 * 0.005).to_le_bytes();
            match kind {
                KQuant::Q6K => block[208..210].copy_from_slice(&d),
                _ => {
                    block[0..2].copy_from_slice(&d);
                    block[2..4].copy_from_slice(&dmin);
                }
            }
        }
        bytes
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 31 + seed) as f32 * 0.37).sin() * (1.0 + (i % 7) as f32))
            .collect()
    }

    #[test]
    fn the_matmul_is_the_dense_product_to_int8_precision() {
        for kind in KINDS {
            let (rows, cols) = (5, 512);
            let w = matrix(kind, rows, cols, 7);
            let x = values(3 * cols, 1);
            let got = matmul(kind, &w, rows, cols, &x).unwrap();
            let dense: Vec<f32> = (0..rows)
                .flat_map(|c| dequantize_row(kind, &w, cols, c))
                .collect();
            crate::assert_near_dense_product(&format!("{kind:?}"), &got, &x, &dense, cols);
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_pool_splits_the_matmul_without_changing_a_bit() {
        for kind in KINDS {
            let (rows, cols) = (300, 1024);
            assert!(rows >= 2 * int8::grain(cols / SUPER * kind.block_bytes()));
            let w = matrix(kind, rows, cols, 11);
            for m in [1, 3] {
                let x = values(m * cols, 2);
                crate::assert_pool_changes_nothing(&format!("{kind:?}"), |pool| {
                    matmul_on(pool, kind, &w, rows, cols, &x).unwrap()
                });
            }
        }
    }

    /// Whatever path this target takes (SIMD128 in wasm32) against the portable loops, on
    /// weights whose bytes cover every bit pattern and activations at ±127, in rows of whole
    /// groups of four super-blocks, of fewer, and of groups and a rest.
    #[test]
    fn the_simd_paths_equal_the_portable_loops_bit_for_bit() {
        for (kind, supers) in KINDS.into_iter().flat_map(|k| [(k, 3), (k, 8), (k, 9)]) {
            let cols = supers * SUPER;
            let w = matrix(kind, 2, cols, 3);
            let mut x = values(cols, 5);
            (x[0], x[1], x[300]) = (-200.0, 200.0, 0.0);
            let q = activations::quantize::<SUPER>(&x);
            let sums = sub_block_sums(&q.quants);
            let xs = Activation {
                quants: &q.quants,
                scales: &q.scales,
                sums: &sums,
            };
            for row in w.chunks_exact(cols / SUPER * kind.block_bytes()) {
                let expected = portable_dot(kind, row, &xs).to_bits();
                for m in [1, 3] {
                    let mut out = vec![0f32; m];
                    let rows: Vec<_> = (0..m).map(|_| xs.clone()).collect();
                    dot_rows(kind, row, &rows, &mut out);
                    assert!(
                        out.iter().all(|v| v.to_bits() == expected),
                        "{kind:?}, {supers} super-blocks, {m} rows"
                    );
                }
            }
        }
    }

    /// A prompt through the matmul (in wasm32, weight rows four at a time and the rest one by
    /// one) against the portable loop for every pair of rows.
    #[test]
    fn a_prompt_equals_the_portable_loop_bit_for_bit() {
        for kind in KINDS {
            let (rows, cols, m) = (7, 5 * SUPER, 3);
            let w = matrix(kind, rows, cols, 13);
            let mut x = values(m * cols, 9);
            (x[0], x[cols + 1]) = (-300.0, 300.0);
            let got = matmul_on(None, kind, &w, rows, cols, &x).unwrap();
            let row_bytes = cols / SUPER * kind.block_bytes();
            for (i, x) in x.chunks_exact(cols).enumerate() {
                let q = activations::quantize::<SUPER>(x);
                let sums = sub_block_sums(&q.quants);
                let xs = Activation {
                    quants: &q.quants,
                    scales: &q.scales,
                    sums: &sums,
                };
                for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                    assert_eq!(
                        got[i * rows + r].to_bits(),
                        portable_dot(kind, row, &xs).to_bits(),
                        "{kind:?}, activation row {i}, weight row {r}"
                    );
                }
            }
        }
    }

    /// The in-register unpacking of the 6-bit scales and minimums (SIMD128, AVX2) against
    /// the scalar one, over headers whose 12 bytes take every bit pattern many times.
    #[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
    #[test]
    fn scales_and_minimums_unpack_in_registers_as_in_scalars() {
        let blocks = matrix(KQuant::Q4K, 64, 16 * SUPER, 17);
        for block in blocks.chunks_exact(KQuant::Q4K.block_bytes()) {
            let (scales, mins) = scales_and_mins(&block[4..16]);
            let mut lanes = [0u8; 16];
            #[cfg(target_arch = "wasm32")]
            // SAFETY: a super-block is 144 bytes, and `lanes` 16; each access is 16 bytes.
            unsafe {
                use std::arch::wasm32::{v128_load, v128_store};
                let packed = simd128::scales_and_mins(v128_load(block.as_ptr().cast()));
                v128_store(lanes.as_mut_ptr().cast(), packed);
            }
            #[cfg(target_arch = "x86_64")]
            {
                if !avx2::available() {
                    return;
                }
                // SAFETY: the CPU has AVX2; a super-block is 144 bytes, and `lanes` 16.
                unsafe {
                    use std::arch::x86_64::{_mm_loadu_si128, _mm_storeu_si128};
                    let packed = avx2::scales_and_mins(_mm_loadu_si128(block.as_ptr().cast()));
                    _mm_storeu_si128(lanes.as_mut_ptr().cast(), packed);
                }
            }
            assert_eq!(lanes[..8], scales, "scales of {:?}", &block[4..16]);
            assert_eq!(lanes[8..], mins, "minimums of {:?}", &block[4..16]);
        }
    }

    #[test]
    fn f16_scales_convert_as_the_half_crate_does() {
        for bits in 0..=u16::MAX {
            let expected = half::f16::from_bits(bits).to_f32();
            let got = f16_to_f32(bits.to_le_bytes());
            assert!(
                got.to_bits() == expected.to_bits() || (got.is_nan() && expected.is_nan()),
                "{bits:#06x}: {got} against {expected}"
            );
        }
    }

    #[cfg(target_arch = "wasm32")]
    #[test]
    fn f16_scales_convert_four_at_a_time_as_one_by_one() {
        use std::arch::wasm32::{u32x4, v128_store};
        for first in (0..=u16::MAX).step_by(4) {
            let bits = [first, first + 1, first + 2, first + 3].map(u32::from);
            let mut got = [0f32; 4];
            // SAFETY: `got` holds four f32.
            unsafe {
                let lanes = u32x4(bits[0], bits[1], bits[2], bits[3]);
                v128_store(got.as_mut_ptr().cast(), simd128::scales_to_f32(lanes));
            }
            for (&h, got) in bits.iter().zip(got) {
                let want = f16_to_f32((h as u16).to_le_bytes());
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{h:#06x}: {got:e} against {want:e}"
                );
            }
        }
    }

    #[test]
    fn sizes_that_disagree_are_errors() {
        let w = matrix(KQuant::Q4K, 2, 256, 1);
        assert_eq!(
            matmul(KQuant::Q4K, &w[1..], 2, 256, &[0.0; 256]).unwrap_err(),
            KQuantError::Size {
                kind: KQuant::Q4K,
                rows: 2,
                cols: 256,
                expected: 288,
                found: 287
            }
        );
        assert!(check(KQuant::Q6K, 0, 1, 100).is_err());
        assert_eq!(
            matmul(KQuant::Q4K, &w, 2, 256, &[0.0; 300])
                .unwrap_err()
                .to_string(),
            "K-quant matmul: 300 input values are not rows of a [2, 256] weight"
        );
    }
}
