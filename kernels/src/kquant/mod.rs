//! llama.cpp's K-quant matrices (Q4_K, Q5_K, Q6_K), read as a GGUF file stores them with each
//! super-block's quants moved within it ([`pack`]), and their matmul with 8-bit activations.
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
//! 7-bit operand. The quants are re-laid at load ([`pack`], module `order`) so that
//! each lane of a dot sums one sub-block (Q6_K: one run of 16), and one multiply weighs them
//! by their scales; the activations are permuted to match once per matmul. In a decode step a
//! Q4_K or Q5_K super-block's 6-bit scales and minimums are unpacked by a few shuffles in
//! registers; four super-blocks' sums are then summed across and scaled in one vector, their
//! f16 scales converted together (every path adds a row's super-blocks in four lanes,
//! `Terms`, so that this order is everyone's). The decode reads its vector constants once per
//! row from a static.
//! For a prompt (several activation rows) each super-block is unpacked once for all the rows:
//! Q4_K and Q5_K, with relaxed SIMD, into bytes that every activation row then takes by
//! relaxed dots; otherwise into i16 weights with the scales multiplied in, one `dot_i16x8_s`
//! per eight products, two activation rows at a time. Four weight rows go together, so that
//! each load serves several products. bench/NOTES.md has what each gains.
//!
//! On x86-64 with AVX2 the same interleaved quants are read 32 bytes at a time: AVX-VNNI's
//! `vpdpbusd` multiplies 32 unsigned quants by 32 activation quants and adds them four by
//! four into i32 lanes in one instruction (without AVX-VNNI, `maddubs` and `madd` by ones do
//! the same), each lane one sub-block's (run's), weighed by the scales in one multiply per
//! super-block; the scales come out of the header by byte shuffles, as in wasm32; a decode
//! finishes four super-blocks in one vector, their f16 scales converted by F16C; a prompt
//! unpacks each super-block once for all of its rows.

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

/// Re-lays a `[rows, cols]` matrix of `kind`, as a GGUF file stores it, in place into the
/// order the kernels read ([`matmul`], [`dequantize_row`]): each super-block's quants
/// interleaved (module `order`). Each super-block is re-laid on its own, so packed matrices
/// stacked row-wise are the packed stack.
pub fn pack(kind: KQuant, data: &mut [u8], rows: usize, cols: usize) -> Result<(), KQuantError> {
    check(kind, data.len(), rows, cols)?;
    for block in data.chunks_exact_mut(kind.block_bytes()) {
        order::interleave_block(kind, block);
    }
    Ok(())
}

/// Row `row` of a `[rows, cols]` matrix of `kind` ([`pack`]ed), dequantized as llama.cpp does
/// (the same float operations in the same order).
pub fn dequantize_row(kind: KQuant, data: &[u8], cols: usize, row: usize) -> Vec<f32> {
    let row_bytes = cols / SUPER * kind.block_bytes();
    data[row * row_bytes..(row + 1) * row_bytes]
        .chunks_exact(kind.block_bytes())
        .flat_map(|block| Block::unpack(kind, block).values(kind))
        .collect()
}

/// `out = x Wᵀ` for `x` holding rows of `cols` values and `W` a `[rows, cols]` matrix of
/// `kind` ([`pack`]ed); `out` gets `rows` values per row of `x`.
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
    let x = Quantized::new(kind, x);
    let xs: Vec<Activation> = (0..m).map(|i| x.row(i, cols)).collect();
    let mut out = vec![0f32; m * rows];
    let shared = pool::Disjoint::new(&mut out);
    let row_bytes = cols / SUPER * kind.block_bytes();
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

/// Activation rows rounded to 8 bits for a matmul with `kind`, with their sums.
struct Quantized {
    /// In the order of `kind`'s quants ([`order::activation_index`]).
    quants: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i16>,
    sums32: Vec<i16>,
}

impl Quantized {
    fn new(kind: KQuant, x: &[f32]) -> Self {
        let x = activations::quantize::<SUPER>(x);
        let sums = sub_block_sums(&x.quants);
        let sums32 = sums.chunks_exact(2).map(|pair| pair[0] + pair[1]).collect();
        Quantized {
            quants: order::interleave_activations(kind, &x.quants),
            scales: x.scales,
            sums,
            sums32,
        }
    }

    /// Row `i` of rows of `cols` values.
    fn row(&self, i: usize, cols: usize) -> Activation<'_> {
        let supers = cols / SUPER;
        Activation {
            quants: &self.quants[i * cols..(i + 1) * cols],
            scales: &self.scales[i * supers..(i + 1) * supers],
            sums: &self.sums[i * supers * 16..(i + 1) * supers * 16],
            sums32: &self.sums32[i * supers * 8..(i + 1) * supers * 8],
        }
    }
}

/// One quantized activation row.
#[derive(Clone)]
struct Activation<'a> {
    /// In the order of the weights' quants ([`Quantized::quants`]).
    quants: &'a [i8],
    /// One per super-block.
    scales: &'a [f32],
    /// The quants summed per 16 values (at most 16 · 127 in magnitude): for Q6_K's offset of 32
    /// where its quants are multiplied unsigned, and for AVX2's minimums of Q4_K and Q5_K (two
    /// per 32-value sub-block).
    sums: &'a [i16],
    /// The quants summed per 32 values (a Q4_K or Q5_K sub-block), for the minimums' Σ min·Σx.
    sums32: &'a [i16],
}

fn sub_block_sums(quants: &[i8]) -> Vec<i16> {
    quants
        .chunks_exact(16)
        .map(|q| q.iter().map(|&q| q as i16).sum())
        .collect()
}

/// Checks that `row` is whole super-blocks of `kind`, that each of `xs` holds 256 quants, 16
/// sums per 16 and 8 per 32 per super-block, and that there are `outs` results for them: what
/// the SIMD paths' unchecked loads rely on.
#[cfg_attr(
    not(any(target_arch = "wasm32", target_arch = "x86_64")),
    allow(dead_code)
)]
fn assert_lengths(kind: KQuant, row: &[u8], xs: &[Activation], outs: usize) {
    let supers = row.len() / kind.block_bytes();
    assert!(
        row.len().is_multiple_of(kind.block_bytes())
            && outs == xs.len()
            && xs.iter().all(|x| x.quants.len() == supers * SUPER
                && x.sums.len() == supers * 16
                && x.sums32.len() == supers * 8),
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
            // SAFETY: the CPU has AVX2 and F16C, and AVX-VNNI where `vnni()` says so; the
            // lengths are as `avx2::dot_rows` needs them.
            unsafe { avx2::dot_rows(avx2::vnni(), kind, row, xs, out) };
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
/// the CPU has it (and F16C).
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
        let at = order::quants_at(kind);
        let high = (kind == KQuant::Q5K).then(|| &block[16..48]);
        let qs = &block[at..at + 128];
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
#[cfg_attr(test, derive(Debug, PartialEq))]
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
    /// The 256 values, as llama.cpp dequantizes them.
    fn values(self, kind: KQuant) -> impl Iterator<Item = f32> {
        (0..SUPER).map(move |i| {
            let q = self.quants[i] as f32;
            let (scale, min) = (self.scales[i / 16] as f32, self.mins[i / 32] as f32);
            match kind {
                KQuant::Q6K => self.d * scale * q,
                KQuant::Q4K | KQuant::Q5K => self.d * scale * q - self.dmin * min,
            }
        })
    }

    /// A super-block in the order this target's kernels keep it ([`pack`]).
    fn unpack(kind: KQuant, block: &[u8]) -> Self {
        Self::unpack_in(kind, block, true)
    }

    /// A super-block in GGUF's order, or interleaved ([`order`]).
    fn unpack_in(kind: KQuant, block: &[u8], interleaved: bool) -> Self {
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
                    let byte = h.qs[order::quant_byte(interleaved, chunk, l)];
                    let nibble = if half == 0 { byte & 0xF } else { byte >> 4 };
                    let fifth = h
                        .high
                        .map_or(0, |h| order::fifth_bit(interleaved, h, 2 * chunk + half, l));
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
                    let (low, high) = order::q6_bytes(interleaved, half, quarter % 2, l);
                    let low = ql[low];
                    let low = if quarter < 2 { low & 0xF } else { low >> 4 };
                    let high = (qh[high] >> (2 * quarter)) & 3;
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

/// Σ min·Σx over a super-block's eight sub-blocks, from the activations' sums per 32.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn min_sum(mins: &[u8; 8], sums32: &[i16]) -> i32 {
    mins.iter()
        .zip(sums32)
        .map(|(&m, &s)| m as i32 * s as i32)
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
                    .map(|i| b.quants[i] as i32 * xq[order::activation_index(kind, i)] as i32)
                    .sum();
                b.scales[g] * dot
            })
            .sum();
        let summ = min_sum(&b.mins, &x.sums32[8 * s..8 * s + 8]);
        terms.add(s, scaled(kind, x.scales[s], b.d, b.dmin, sumi, summ));
    }
    terms.total()
}

mod order;

#[cfg(target_arch = "wasm32")]
mod simd128;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(test)]
mod tests;
