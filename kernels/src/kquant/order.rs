//! The interleaved order in which the kernels keep a K-quant super-block's quants.
//!
//! GGUF keeps the 128 quant bytes as four 32-byte chunks: byte l of chunk c holds value l of
//! sub-block 2c in its low nibble and of sub-block 2c + 1 in its high one. Q5_K's 32 bytes of
//! fifth bits give bit j of byte l to value l of sub-block j. A SIMD128 dot over 16 such bytes
//! sums four products per lane, all of one sub-block, so a decode had to sum each sub-block's
//! lanes across (two 4×4 transposes per super-block) before its scale could weigh them.
//!
//! Interleaved, quant word k (bytes 4k..4k + 4) of chunk c moves to word 4k + c: the 16 bytes
//! of vector k hold word k of each chunk, and a dot over their low nibbles leaves sub-block
//! 2c's products in lane c (the high nibbles: sub-block 2c + 1). After the eight vectors each
//! lane holds one sub-block's whole sum, weighed by its scale in one multiply. Q5_K's fifth
//! bits are interleaved to match: bit k of byte 16p + 4c + t is the fifth bit of value
//! 4k + t of sub-block 2c + p, so one shift and mask of byte vector p gives the fifth bits of
//! vector k's nibbles p. The header (d, dmin, scales, minimums) stays where it is.
//!
//! Q6_K has a scale per run of 16 values. GGUF keeps each half (128 values) as 64 bytes of
//! low four bits, `ql` (byte l of region r: quarter r's value l in the low nibble, quarter
//! r + 2's in the high), and 32 bytes of high two bits, `qh` (bits 2q, 2q + 1 of byte l for
//! quarter q). A run is a quarter's values 0..16 or 16..32 (`six` 0 or 1), so the four runs
//! that the same unpacking of the same bytes gives are those of the two halves and the two
//! sixteens. Interleaved, word k of the 16 bytes of half h, region r and sixteen `six` moves
//! to word 4k + 2h + six of region r's 64 bytes (and `qh` likewise): each vector holds four
//! bytes of each of the four, and a dot over one unpacked quarter leaves one run per lane.
//!
//! AVX2's vectors are 32 bytes: each holds two of these 16-byte vectors (k = 2v and 2v + 1),
//! so its lanes c and c + 4 sum the same sub-block (run), folded together once per
//! super-block. The activations are permuted the same way once per matmul
//! ([`activation_index`]), the values that meet one kernel vector's bytes side by side, so
//! every product pairs the same two values as in GGUF's order and the integer sums are exact
//! as ever.
//! bench/NOTES.md has what it gains.
//!
//! The relayout is a permutation within each super-block: the same bytes, none added, so a
//! matrix is re-laid in place as it is loaded (`super::pack`).

use super::{KQuant, SUPER};

/// The 16-byte vectors of the interleaved order in one vector of this target's kernels:
/// SIMD128's 16 bytes in wasm32, AVX2's 32 elsewhere (the portable loop reads any order).
const HALVES: usize = if cfg!(target_arch = "wasm32") { 1 } else { 2 };

/// Where a Q4_K or Q5_K super-block's quant bytes start.
pub(super) fn quants_at(kind: KQuant) -> usize {
    match kind {
        KQuant::Q5K => 48,
        _ => 16,
    }
}

/// The index in the 128 quant bytes of byte `l` (0..32) of chunk `chunk`.
pub(super) fn quant_byte(interleaved: bool, chunk: usize, l: usize) -> usize {
    if interleaved {
        16 * (l / 4) + 4 * chunk + l % 4
    } else {
        32 * chunk + l
    }
}

/// Q5_K's fifth bit of value `l` (0..32) of sub-block `j`, from its 32 bytes `high`.
pub(super) fn fifth_bit(interleaved: bool, high: &[u8], j: usize, l: usize) -> u8 {
    if interleaved {
        (high[16 * (j % 2) + 4 * (j / 2) + l % 4] >> (l / 4)) & 1
    } else {
        (high[l] >> j) & 1
    }
}

/// Where Q6_K keeps the low bits (in its 128 bytes `ql`) and the high bits (in its 64 bytes
/// `qh`) of value `l` (0..32) of the quarters of region `region` (0 or 1) of half `half`.
pub(super) fn q6_bytes(interleaved: bool, half: usize, region: usize, l: usize) -> (usize, usize) {
    if interleaved {
        let (k, lane) = ((l % 16) / 4, 2 * half + l / 16);
        (
            64 * region + 16 * k + 4 * lane + l % 4,
            16 * k + 4 * lane + l % 4,
        )
    } else {
        (64 * half + 32 * region + l, 32 * half + l)
    }
}

/// Re-lays one super-block from GGUF's order into the interleaved one.
pub(super) fn interleave_block(kind: KQuant, block: &mut [u8]) {
    if kind == KQuant::Q6K {
        interleave_q6(block);
        return;
    }
    let at = quants_at(kind);
    let quants: &mut [u8; 128] = (&mut block[at..at + 128]).try_into().unwrap();
    #[cfg(target_arch = "wasm32")]
    super::simd128::interleave_quants(quants);
    #[cfg(not(target_arch = "wasm32"))]
    interleave_quants(quants);
    if kind == KQuant::Q5K {
        interleave_fifth_bits(&mut block[16..48]);
    }
}

/// The 128 quant bytes into the interleaved order: word k of chunk c to word 4k + c, whole
/// words at a time (byte by byte, natively, the Phi-3 file's load took 2 s longer). In
/// wasm32 `simd128::interleave_quants` does the same by shuffles.
#[cfg(not(target_arch = "wasm32"))]
fn interleave_quants(quants: &mut [u8; 128]) {
    let word = |i: usize| {
        [
            quants[4 * i],
            quants[4 * i + 1],
            quants[4 * i + 2],
            quants[4 * i + 3],
        ]
    };
    let gguf: [[u8; 4]; 32] = std::array::from_fn(word);
    for (i, out) in quants.chunks_exact_mut(4).enumerate() {
        let (k, chunk) = (i / 4, i % 4);
        out.copy_from_slice(&gguf[8 * chunk + k]);
    }
}

/// A Q6_K super-block's `ql` and `qh` into the interleaved order ([`q6_bytes`]), a word at a
/// time: word k of the 16 bytes of half h, region r and sixteen `six` to word 4k + 2h + six of
/// region r's 64 bytes (`qh`: of its 64).
fn interleave_q6(block: &mut [u8]) {
    let word = |at: usize| [block[at], block[at + 1], block[at + 2], block[at + 3]];
    let ql: [[u8; 4]; 32] = std::array::from_fn(|i| word(4 * i));
    let qh: [[u8; 4]; 16] = std::array::from_fn(|i| word(128 + 4 * i));
    for (i, out) in block[..192].chunks_exact_mut(4).enumerate() {
        let (region, k, lane) = ((i / 16) % 2, (i / 4) % 4, i % 4);
        let (half, six) = (lane / 2, lane % 2);
        out.copy_from_slice(&match i {
            0..32 => ql[16 * half + 8 * region + 4 * six + k],
            _ => qh[8 * half + 4 * six + k],
        });
    }
}

/// Q5_K's 32 bytes of fifth bits into the interleaved order: for each t, the eight bytes
/// 4k + t (bit j of byte k) become bytes 16p + 4c + t for j = 2c + p (bit k of byte j), an
/// 8×8 bit transpose done in one u64.
pub(super) fn interleave_fifth_bits(high: &mut [u8]) {
    let mut out = [0u8; 32];
    for t in 0..4 {
        let rows = u64::from_le_bytes(std::array::from_fn(|k| high[4 * k + t]));
        for (j, byte) in transpose_bits(rows).to_le_bytes().into_iter().enumerate() {
            out[16 * (j % 2) + 4 * (j / 2) + t] = byte;
        }
    }
    high.copy_from_slice(&out);
}

/// An 8×8 bit matrix, row r in byte r and column c in bit c, transposed (Hacker's Delight,
/// section 7-3): three rounds swap ever larger blocks across the diagonal.
fn transpose_bits(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// Where value `i` of a super-block's activation quants goes: in the order in which the
/// kernels unpack the quants, 16·HALVES bytes per vector. Q4_K and Q5_K: value l = 4k + t
/// of sub-block j = 2c + p meets lane c of 16-byte vector k's nibbles p; Q6_K: value
/// l = 16·six + 4k + t of quarter q of half h meets lane 2h + six of vector k's quarter q.
/// With one 16-byte vector per kernel vector (wasm32) that is 32k + 16p + 4c + t and
/// 64k + 16q + 4(2h + six) + t; with two, the vectors k = 2v and 2v + 1 of the same nibbles
/// or quarter lie side by side.
#[allow(clippy::modulo_one)] // HALVES is 1 in wasm32.
pub(super) fn activation_index(kind: KQuant, i: usize) -> usize {
    // The kernel vector that holds 16-byte vector k's `part`, and where in it.
    let at = |k: usize, part: usize, parts: usize| {
        16 * HALVES * (parts * (k / HALVES) + part) + 16 * (k % HALVES)
    };
    if kind == KQuant::Q6K {
        let (half, quarter, l) = (i / 128, (i / 32) % 4, i % 32);
        return at((l % 16) / 4, quarter, 4) + 4 * (2 * half + l / 16) + l % 4;
    }
    let (j, l) = (i / 32, i % 32);
    at(l / 4, j % 2, 2) + 4 * (j / 2) + l % 4
}

/// Activation quants, whole super-blocks, in the order of `kind`'s weights
/// ([`activation_index`], which moves runs of four values together).
pub(super) fn interleave_activations(kind: KQuant, quants: &[i8]) -> Vec<i8> {
    let mut out = vec![0i8; quants.len()];
    for (out, x) in out.chunks_exact_mut(SUPER).zip(quants.chunks_exact(SUPER)) {
        for (i, four) in x.chunks_exact(4).enumerate() {
            let to = activation_index(kind, 4 * i);
            out[to..to + 4].copy_from_slice(four);
        }
    }
    out
}
