use std::arch::wasm32::*;

use super::{d_dmin, order, scaled, Activation, KQuant, Terms, SUPER};

/// The vector constants of the decode kernels, read once per row from a static.
///
/// V8 builds a `v128.const` where it is used, from a 64-bit immediate moved to a vector
/// register and spread or inserted (three to five instructions), and LLVM puts the constants
/// inside the loops that use them: a Q4_K super-block's decode spent about 25 of its ~185
/// instructions on them. Read from memory once per row (a volatile read, which LLVM can
/// neither fold back into constants nor repeat), they stay in registers or are reloaded from
/// the stack by one load each.
#[derive(Clone, Copy)]
pub(super) struct Constants {
    low_nibbles: v128,
    fifth_bit: v128,
    /// The high two bits of a Q6_K quant, at bits 4 and 5.
    high_pair: v128,
    /// Scales and minimums unpacked ([`scales_and_mins`]): the low bits' masks, the high
    /// nibbles' mask, the top bits' mask.
    header_low: v128,
    header_nibbles: v128,
    header_top: v128,
    /// [`scales_to_f32`]'s masks and offsets.
    f16_magnitude: v128,
    f16_exponent: v128,
    f16_sign: v128,
    rebias: v128,
    implicit_one: v128,
    smallest_normal: v128,
}

/// `x` in every byte, as a constant.
const fn bytes(x: u8) -> v128 {
    u8x16(x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x)
}

/// `x` in every 32-bit lane, as a constant.
const fn words(x: u32) -> v128 {
    u32x4(x, x, x, x)
}

static CONSTANTS: Constants = Constants {
    low_nibbles: bytes(0x0F),
    fifth_bit: bytes(0x10),
    high_pair: bytes(0x30),
    header_low: u8x16(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0),
    header_nibbles: u8x16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15),
    header_top: u8x16(0, 0, 0, 0, 48, 48, 48, 48, 0, 0, 0, 0, 48, 48, 48, 48),
    f16_magnitude: words(0x7FFF),
    f16_exponent: words(0x7C00 << 13),
    f16_sign: words(0x8000),
    rebias: words((127 - 15) << 23),
    implicit_one: words(1 << 23),
    smallest_normal: words(113 << 23),
};

impl Constants {
    #[inline(always)]
    pub(super) fn get() -> Self {
        // SAFETY: a static, read as the value it is.
        unsafe { std::ptr::read_volatile(&CONSTANTS) }
    }
}

/// The high nibble of each byte of `v`, by a 16-bit shift and a mask. V8 lowers `i8x16.shr_u`
/// to a 16-bit shift and a mask it builds anew at every use (five instructions on x86-64); a
/// 16-bit shift and a mask kept in a register are two, and the Q4_K decode ran 1.16× faster for
/// it. The kernels shift 16-bit lanes wherever a mask follows for the same reason.
#[inline(always)]
fn high_nibbles(c: &Constants, v: v128) -> v128 {
    v128_and(u16x8_shr(v, 4), c.low_nibbles)
}

/// Σ q·x over 16 lanes, added to `acc` with lane c summing the products of bytes 4c..4c + 4:
/// one lane per lane group of the interleaved quants ([`order`]). Without relaxed SIMD, `q` is
/// widened in registers and `x` as it is loaded, and `i32x4.dot_i16x8_s` pairs bytes 2i and
/// 2i + 1 of each half, so its two halves' pairs are then added across.
///
/// # Safety
/// `x` must point at 16 readable quants.
#[cfg(not(feature = "relaxed-simd"))]
#[inline(always)]
unsafe fn products(acc: v128, q: v128, x: *const i8) -> v128 {
    let low = i32x4_dot_i16x8(i16x8_extend_low_i8x16(q), i16x8_load_extend_i8x8(x));
    let high = i32x4_dot_i16x8(i16x8_extend_high_i8x16(q), i16x8_load_extend_i8x8(x.add(8)));
    let pairs = i32x4_add(
        i32x4_shuffle::<0, 2, 4, 6>(low, high),
        i32x4_shuffle::<1, 3, 5, 7>(low, high),
    );
    i32x4_add(acc, pairs)
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
fn fifth_bit(c: &Constants, v: v128, bit: u32) -> v128 {
    let moved = if bit <= 4 {
        i16x8_shl(v, 4 - bit)
    } else {
        u16x8_shr(v, bit - 4)
    };
    v128_and(moved, c.fifth_bit)
}

/// Calls `f(k, low, high)` for each vector `k` of a Q4_K or Q5_K super-block's interleaved
/// quants ([`order`]): `low` holds values 4k..4k + 4 of sub-blocks 0, 2, 4 and 6 (four lanes
/// each) as unsigned bytes, the low nibbles of the vector, and `high` those of sub-blocks 1,
/// 3, 5 and 7, its high nibbles; Q5_K's fifth bits, the matching bits k of `high`'s two
/// vectors, at bit 4.
///
/// # Safety
/// `qs` and `high` must point at 128 and 32 readable bytes.
#[inline(always)]
unsafe fn each_q45_vector(
    c: &Constants,
    qs: *const u8,
    high: Option<*const u8>,
    mut f: impl FnMut(usize, v128, v128),
) {
    let load = |p: *const u8| v128_load(p as *const v128);
    let fifth = high.map(|h| (load(h), load(h.add(16))));
    // Unrolled by hand: LLVM keeps a loop of eight here, and its accumulators in memory.
    macro_rules! vector {
        ($($k:literal)*) => {$({
            let quants = load(qs.add(16 * $k));
            let (mut low, mut high) = (v128_and(quants, c.low_nibbles), high_nibbles(c, quants));
            if let Some((even, odd)) = fifth {
                low = v128_or(low, fifth_bit(c, even, $k));
                high = v128_or(high, fifth_bit(c, odd, $k));
            }
            f($k, low, high);
        })*};
    }
    vector!(0 1 2 3 4 5 6 7);
}

/// The four quarters of 16 Q6_K values (value l of quarters 0 to 3 of a half) as unsigned
/// bytes 0..64, from 16 bytes of `ql`'s region 0 (`l1`), the matching 16 of region 1 (`l2`)
/// and 16 bytes of `qh` ([`order`]): low four bits from `l1` (quarters 0, 2) or `l2`, low
/// nibble for quarters 0 and 1; high two bits 2t, 2t+1 of `h`, moved to bits 4 and 5. Its
/// shifts are of 16-bit lanes, the bits they move across bytes masked.
#[inline(always)]
fn q6_quarters(c: &Constants, l1: v128, l2: v128, h: v128) -> [v128; 4] {
    let (low4, high2) = (c.low_nibbles, c.high_pair);
    [
        v128_or(v128_and(l1, low4), v128_and(i16x8_shl(h, 4), high2)),
        v128_or(v128_and(l2, low4), v128_and(i16x8_shl(h, 2), high2)),
        v128_or(high_nibbles(c, l1), v128_and(h, high2)),
        v128_or(high_nibbles(c, l2), v128_and(u16x8_shr(h, 2), high2)),
    ]
}

/// The SIMD128 twin of `portable_dot`, equal to it bit for bit: the integer sums are
/// exact, and the floats are combined in the same order ([`super::Terms`]), four
/// super-blocks' terms in one vector.
#[cfg_attr(feature = "relaxed-simd", target_feature(enable = "relaxed-simd"))]
pub(super) fn dot(kind: KQuant, row: &[u8], x: &Activation) -> f32 {
    // One loop per kind: with the kind a variable, V8 keeps the values of the Q4_K and Q5_K
    // paths alive across their branches and spills most of them (2× slower).
    match kind {
        KQuant::Q4K => dot_of(KQuant::Q4K, row, x),
        KQuant::Q5K => dot_of(KQuant::Q5K, row, x),
        KQuant::Q6K => dot_of(KQuant::Q6K, row, x),
    }
}

/// [`dot`] for one `kind`, a constant where it is inlined.
#[inline(always)]
fn dot_of(kind: KQuant, row: &[u8], x: &Activation) -> f32 {
    let bytes = kind.block_bytes();
    super::assert_lengths(kind, row, std::slice::from_ref(x), 1);
    let c = Constants::get();
    let supers = row.len() / bytes;
    let whole = supers - supers % 4;
    let mut lanes = f32x4_splat(0.0);
    for s in (0..whole).step_by(4) {
        // SAFETY: the row holds super-blocks s..s + 4, and `x` their quants, sums and scales
        // (asserted above).
        lanes = f32x4_add(lanes, unsafe {
            four_terms(kind, &c, row.as_ptr().add(s * bytes), x, s)
        });
    }
    let mut terms = Terms(crate::int8::simd128::lanes(lanes));
    for (s, block) in row.chunks_exact(bytes).enumerate().skip(whole) {
        // SAFETY: as above, for super-block `s`.
        let (sumi, summ) = unsafe { block_sums(kind, &c, block.as_ptr(), x, s) };
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
/// `block` must point at four super-blocks of `kind`, and `x` hold super-blocks s..s + 4.
#[inline(always)]
unsafe fn four_terms(
    kind: KQuant,
    c: &Constants,
    block: *const u8,
    x: &Activation,
    s: usize,
) -> v128 {
    let at = |k: usize| block.add(k * kind.block_bytes());
    // Per super-block [Σ of sumi lanes 0, 2 | 1, 3, Σ of summ lanes 0, 2 | 1, 3].
    let (h0, h1) = (
        halves(kind, c, at(0), x, s),
        halves(kind, c, at(1), x, s + 1),
    );
    let h01 = i32x4_add(
        i32x4_shuffle::<0, 2, 4, 6>(h0, h1),
        i32x4_shuffle::<1, 3, 5, 7>(h0, h1),
    );
    let (h2, h3) = (
        halves(kind, c, at(2), x, s + 2),
        halves(kind, c, at(3), x, s + 3),
    );
    let h23 = i32x4_add(
        i32x4_shuffle::<0, 2, 4, 6>(h2, h3),
        i32x4_shuffle::<1, 3, 5, 7>(h2, h3),
    );
    let sumi = f32x4_convert_i32x4(i32x4_shuffle::<0, 2, 4, 6>(h01, h23));
    let summ = f32x4_convert_i32x4(i32x4_shuffle::<1, 3, 5, 7>(h01, h23));
    let x_scale = v128_load(x.scales.as_ptr().add(s) as *const v128);
    match kind {
        KQuant::Q4K | KQuant::Q5K => {
            // Each super-block's d and dmin, the f16 pair it starts with, in one lane.
            let mut pairs = i32x4_splat(0);
            pairs = u32x4_replace_lane::<0>(pairs, (at(0) as *const u32).read_unaligned());
            pairs = u32x4_replace_lane::<1>(pairs, (at(1) as *const u32).read_unaligned());
            pairs = u32x4_replace_lane::<2>(pairs, (at(2) as *const u32).read_unaligned());
            pairs = u32x4_replace_lane::<3>(pairs, (at(3) as *const u32).read_unaligned());
            let d = scales_to_f32(c, u32x4_shr(i32x4_shl(pairs, 16), 16));
            let dmin = scales_to_f32(c, u32x4_shr(pairs, 16));
            f32x4_mul(
                x_scale,
                f32x4_sub(f32x4_mul(d, sumi), f32x4_mul(dmin, summ)),
            )
        }
        KQuant::Q6K => {
            let d = |k: usize| (at(k).add(208) as *const u16).read_unaligned() as u32;
            let d = scales_to_f32(c, u32x4(d(0), d(1), d(2), d(3)));
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
pub(super) fn scales_to_f32(c: &Constants, bits: v128) -> v128 {
    let magnitude = i32x4_shl(v128_and(bits, c.f16_magnitude), 13);
    let exponent = v128_and(magnitude, c.f16_exponent);
    let rebiased = i32x4_add(magnitude, c.rebias);
    let special = u32x4_eq(exponent, c.f16_exponent);
    let rebiased = i32x4_add(rebiased, v128_and(special, c.rebias));
    // 2⁻¹⁴·(1 + m/1024) − 2⁻¹⁴, both normal.
    let renormalized = f32x4_sub(i32x4_add(rebiased, c.implicit_one), c.smallest_normal);
    let tiny = u32x4_eq(exponent, u32x4_splat(0));
    let value = v128_bitselect(renormalized, rebiased, tiny);
    v128_or(value, i32x4_shl(v128_and(bits, c.f16_sign), 16))
}

/// A super-block's [`block_sums`] half summed across: Σ scale·q·x of its lanes 0 and 2,
/// then of 1 and 3, then the same of Σ min·Σx.
///
/// # Safety
/// As for [`block_sums`].
#[inline(always)]
unsafe fn halves(kind: KQuant, c: &Constants, block: *const u8, x: &Activation, s: usize) -> v128 {
    let (sumi, summ) = block_sums(kind, c, block, x, s);
    i32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(sumi, summ),
        i32x4_shuffle::<2, 3, 6, 7>(sumi, summ),
    )
}

/// Super-block `s`'s Σ scale·q·x and (Q4_K, Q5_K) Σ min·Σx, each as four i32 lanes to be
/// summed ([`q45_sums`], [`q6_sums`]; the second is zero for Q6_K).
///
/// # Safety
/// `block` must point at one super-block of `kind`, and `x` hold super-block `s`.
#[inline(always)]
unsafe fn block_sums(
    kind: KQuant,
    c: &Constants,
    block: *const u8,
    x: &Activation,
    s: usize,
) -> (v128, v128) {
    let xq = x.quants.as_ptr().add(s * SUPER);
    match kind {
        KQuant::Q4K | KQuant::Q5K => q45_sums(kind, c, block, xq, x.sums32.as_ptr().add(8 * s)),
        KQuant::Q6K => (
            q6_sums(c, block, xq, x.sums.as_ptr().add(16 * s)),
            i32x4_splat(0),
        ),
    }
}

/// The dot products of `R` weight rows with several activation rows (a prompt): `out[i][k]`
/// is activation row `i` against weight row `k`. With relaxed SIMD, Q4_K and Q5_K take
/// `q45_row_group`. Otherwise each super-block of the rows is unpacked once into i16
/// weights with their scales multiplied in (|scale·q| ≤ 63·31 for Q4_K and Q5_K, 128·32 for
/// Q6_K), in the activations' interleaved order, and each pair then takes one
/// `i32x4.dot_i16x8_s` per eight products. Activation rows go two at a time, so each widened
/// activation load is multiplied with all the weight rows and each weight load with both
/// activation rows. Equal to `dot` per pair, bit for bit.
pub(super) fn dot_row_group<const R: usize>(
    kind: KQuant,
    rows: [&[u8]; R],
    xs: &[Activation],
    out: &mut [[f32; R]],
) {
    #[cfg(feature = "relaxed-simd")]
    if kind != KQuant::Q6K {
        return q45_row_group(kind, rows, xs, out);
    }
    let bytes = kind.block_bytes();
    for row in rows {
        super::assert_lengths(kind, row, xs, out.len());
    }
    let c = Constants::get();
    let mut terms = vec![[Terms::default(); R]; xs.len()];
    let mut w = [[0i16; SUPER]; R];
    for s in 0..rows[0].len() / bytes {
        // SAFETY: each block is one super-block of `kind`; each `w[k]` holds 256 values.
        let unpacked: [_; R] = std::array::from_fn(|k| unsafe {
            unpack(
                kind,
                &c,
                &rows[k][s * bytes..(s + 1) * bytes],
                w[k].as_mut_ptr(),
            )
        });
        let quants = |x: &Activation| x.quants[s * SUPER..].as_ptr();
        let finish = |x: &Activation, terms: &mut [Terms; R], sumi: [i32; R]| {
            for (k, &(d, dmin, packed)) in unpacked.iter().enumerate() {
                // SAFETY: each row holds 8 sums per 32 values per super-block (asserted above).
                let summ = packed.map_or(0, |packed| unsafe {
                    hsum(min_sums(packed, x.sums32[8 * s..].as_ptr()))
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

/// [`dot_row_group`] for Q4_K and Q5_K with relaxed SIMD: each super-block of the rows is
/// split into its nibbles once, as bytes in the interleaved order ([`each_q45_vector`]), and
/// every activation row then takes one relaxed dot per 16 products, each of its loads serving
/// all the weight rows, with each sub-block's sum in its own lane as in the decode
/// ([`q45_sums`]). The i16 path's `i32x4.dot_i16x8_s` takes eight products per instruction.
/// Equal to `dot` per pair, bit for bit.
#[cfg(feature = "relaxed-simd")]
#[target_feature(enable = "relaxed-simd")]
fn q45_row_group<const R: usize>(
    kind: KQuant,
    rows: [&[u8]; R],
    xs: &[Activation],
    out: &mut [[f32; R]],
) {
    let bytes = kind.block_bytes();
    for row in rows {
        super::assert_lengths(kind, row, xs, out.len());
    }
    let c = Constants::get();
    let mut terms = vec![[Terms::default(); R]; xs.len()];
    // Per weight row, vector k's low nibbles at 2k and its high ones at 2k + 1.
    let mut nibbles = [[i32x4_splat(0); 16]; R];
    for s in 0..rows[0].len() / bytes {
        let headers: [_; R] = std::array::from_fn(|r| {
            let block = &rows[r][s * bytes..(s + 1) * bytes];
            // SAFETY: `block` is one super-block of `kind`.
            let packed = unsafe {
                let (high, qs) = q45_quants(kind, block.as_ptr());
                each_q45_vector(&c, qs, high, |k, low, high| {
                    nibbles[r][2 * k] = low;
                    nibbles[r][2 * k + 1] = high;
                });
                scales_and_mins(&c, v128_load(block.as_ptr() as *const v128))
            };
            let (d, dmin) = d_dmin(kind, block);
            // The minimums as i16, for `min_sums`'s dot with each row's sums.
            (
                d,
                dmin,
                paired_scales(packed),
                u16x8_extend_high_u8x16(packed),
            )
        });
        for (x, terms) in xs.iter().zip(&mut terms) {
            let xq = x.quants[s * SUPER..(s + 1) * SUPER].as_ptr();
            // SAFETY: the row holds 8 sums per 32 values per super-block (asserted above).
            let sums32 = unsafe { v128_load(x.sums32[8 * s..].as_ptr() as *const v128) };
            for (r, &(d, dmin, scales, mins)) in headers.iter().enumerate() {
                // SAFETY: the row holds 256 quants from `xq` (asserted above).
                let sumi = weighed(unsafe { nibble_sums(&nibbles[r], xq) }, scales);
                let summ = i32x4_dot_i16x8(mins, sums32);
                terms[r].add(
                    s,
                    scaled(kind, x.scales[s], d, dmin, hsum(sumi), hsum(summ)),
                );
            }
        }
    }
    for (out, terms) in out.iter_mut().zip(terms) {
        *out = terms.map(Terms::total);
    }
}

/// A super-block's sums over its low and high nibbles ([`q45_sums`]'s), from `nibbles` as
/// [`q45_row_group`] keeps them, each lane one sub-block's.
///
/// # Safety
/// `xq` must point at 256 readable quants.
#[cfg(feature = "relaxed-simd")]
#[inline(always)]
unsafe fn nibble_sums(nibbles: &[v128; 16], xq: *const i8) -> (v128, v128) {
    let zero = i32x4_splat(0);
    let (mut low, mut high) = ([zero; 2], [zero; 2]);
    // Unrolled by hand, as in `each_q45_vector`.
    macro_rules! vector {
        ($($k:literal)*) => {$(
            low[$k % 2] = products(low[$k % 2], nibbles[2 * $k], xq.add(32 * $k));
            high[$k % 2] = products(high[$k % 2], nibbles[2 * $k + 1], xq.add(32 * $k + 16));
        )*};
    }
    vector!(0 1 2 3 4 5 6 7);
    (i32x4_add(low[0], low[1]), i32x4_add(high[0], high[1]))
}

/// A super-block unpacked into `w` as [`dot_row_group`] does (Q4_K and Q5_K in the
/// interleaved order, as the activations are); returns its `d`, `dmin` and its scales and
/// minimums as [`scales_and_mins`] packs them (none for Q6_K).
///
/// # Safety
/// `block` must be one super-block of `kind`, and `w` point at 256 writable values.
#[inline(always)]
unsafe fn unpack(
    kind: KQuant,
    c: &Constants,
    block: &[u8],
    w: *mut i16,
) -> (f32, f32, Option<v128>) {
    let mins = match kind {
        KQuant::Q4K | KQuant::Q5K => Some(unpack_q45(kind, c, block.as_ptr(), w)),
        KQuant::Q6K => {
            unpack_q6(c, block.as_ptr(), w);
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

/// Stores 16 unsigned byte values of `q` as i16 at `w`, its low eight times `scales[0]` and
/// its high eight times `scales[1]`.
///
/// # Safety
/// `w` must point at 16 writable values.
#[inline(always)]
unsafe fn store_scaled(q: v128, scales: [v128; 2], w: *mut i16) {
    v128_store(
        w as *mut v128,
        i16x8_mul(i16x8_extend_low_u8x16(q), scales[0]),
    );
    v128_store(
        w.add(8) as *mut v128,
        i16x8_mul(i16x8_extend_high_u8x16(q), scales[1]),
    );
}

/// A Q4_K or Q5_K super-block as 256 values scale·q in the interleaved order ([`order`]: the
/// four lanes of group c of vector k's low nibbles belong to sub-block 2c, of its high ones
/// to 2c + 1); returns its scales and minimums as [`scales_and_mins`] packs them.
///
/// # Safety
/// `block` must point at one super-block of `kind`, and `w` at 256 writable values.
#[inline(always)]
unsafe fn unpack_q45(kind: KQuant, c: &Constants, block: *const u8, w: *mut i16) -> v128 {
    let packed = scales_and_mins(c, v128_load(block as *const v128));
    let scales = u16x8_extend_low_u8x16(packed);
    let low_scales = [
        i16x8_shuffle::<0, 0, 0, 0, 2, 2, 2, 2>(scales, scales),
        i16x8_shuffle::<4, 4, 4, 4, 6, 6, 6, 6>(scales, scales),
    ];
    let high_scales = [
        i16x8_shuffle::<1, 1, 1, 1, 3, 3, 3, 3>(scales, scales),
        i16x8_shuffle::<5, 5, 5, 5, 7, 7, 7, 7>(scales, scales),
    ];
    let (high, qs) = q45_quants(kind, block);
    each_q45_vector(c, qs, high, |k, low, high| {
        store_scaled(low, low_scales, w.add(32 * k));
        store_scaled(high, high_scales, w.add(32 * k + 16));
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
    let high = (kind == KQuant::Q5K).then(|| block.add(16));
    (high, block.add(order::quants_at(kind)))
}

/// A Q6_K super-block as 256 values scale·(q − 32), in the interleaved order ([`order`]).
///
/// # Safety
/// `block` must point at 210 readable bytes and `w` at 256 writable values.
#[inline(always)]
unsafe fn unpack_q6(c: &Constants, block: *const u8, w: *mut i16) {
    let scales = v128_load(block.add(192) as *const v128);
    let (first, second) = (
        i16x8_extend_low_i8x16(scales),
        i16x8_extend_high_i8x16(scales),
    );
    // Quarter q's lane groups 0 and 1 (half 0) take runs 2q and 2q + 1, groups 2 and 3 (half
    // 1) runs 8 + 2q and 9 + 2q: each spread over its four lanes.
    macro_rules! spread {
        ($a:literal $b:literal) => {
            [
                i16x8_shuffle::<$a, $a, $a, $a, $b, $b, $b, $b>(first, first),
                i16x8_shuffle::<$a, $a, $a, $a, $b, $b, $b, $b>(second, second),
            ]
        };
    }
    let weights = [spread!(0 1), spread!(2 3), spread!(4 5), spread!(6 7)];
    let offset = i16x8_splat(32);
    each_q6_vector(c, block, |k, quarters| {
        for (quarter, q) in quarters.into_iter().enumerate() {
            let at = 64 * k + 16 * quarter;
            let low = i16x8_sub(i16x8_extend_low_u8x16(q), offset);
            let high = i16x8_sub(i16x8_extend_high_u8x16(q), offset);
            v128_store(w.add(at) as *mut v128, i16x8_mul(low, weights[quarter][0]));
            v128_store(
                w.add(at + 8) as *mut v128,
                i16x8_mul(high, weights[quarter][1]),
            );
        }
    });
}

/// Calls `f(k, q)` for each vector `k` (0..4) of a Q6_K super-block's interleaved quants
/// ([`order`]): `q[quarter]` holds, in lane group 2h + six, values 16·six + 4k .. 16·six +
/// 4k + 4 of that quarter of half h, as unsigned bytes 0..64.
///
/// # Safety
/// `block` must point at 210 readable bytes.
#[inline(always)]
unsafe fn each_q6_vector(c: &Constants, block: *const u8, mut f: impl FnMut(usize, [v128; 4])) {
    let load = |p: *const u8| v128_load(p as *const v128);
    // Unrolled by hand, as in `each_q45_vector`.
    macro_rules! vector {
        ($($k:literal)*) => {$(
            f(
                $k,
                q6_quarters(
                    c,
                    load(block.add(16 * $k)),
                    load(block.add(64 + 16 * $k)),
                    load(block.add(128 + 16 * $k)),
                ),
            );
        )*};
    }
    vector!(0 1 2 3);
}

/// Σ scale·q·x and Σ min·Σx over a Q4_K or Q5_K super-block, interleaved ([`order`]), each
/// as four i32 lanes to be summed: its scales and minimums unpacked in registers
/// ([`scales_and_mins`]), lane c of the dots over the low nibbles is sub-block 2c's sum and
/// of the high ones sub-block 2c + 1's, so one multiply by the scales in the same lanes
/// weighs them all. Two accumulators per nibble keep each chain of dependent dots four long.
///
/// # Safety
/// `block` must point at one super-block of `kind`, `xq` at its 256 activation quants
/// (interleaved) and `sums32` at their 8 sums per 32 values.
#[inline(always)]
unsafe fn q45_sums(
    kind: KQuant,
    c: &Constants,
    block: *const u8,
    xq: *const i8,
    sums32: *const i16,
) -> (v128, v128) {
    let packed = scales_and_mins(c, v128_load(block as *const v128));
    let (high, qs) = q45_quants(kind, block);
    let zero = i32x4_splat(0);
    let (mut low_sums, mut high_sums) = ([zero; 2], [zero; 2]);
    each_q45_vector(c, qs, high, |k, low, high| {
        low_sums[k % 2] = products(low_sums[k % 2], low, xq.add(32 * k));
        high_sums[k % 2] = products(high_sums[k % 2], high, xq.add(32 * k + 16));
    });
    let sums = (
        i32x4_add(low_sums[0], low_sums[1]),
        i32x4_add(high_sums[0], high_sums[1]),
    );
    (
        weighed(sums, paired_scales(packed)),
        min_sums(packed, sums32),
    )
}

/// A Q4_K or Q5_K super-block's sub-block scales, lanes 0..8 of `packed`
/// ([`scales_and_mins`]), in the lanes of its interleaved sums: lane c of the first holds
/// sub-block 2c's scale, of the second 2c + 1's, as i32.
#[inline(always)]
fn paired_scales(packed: v128) -> (v128, v128) {
    // As u16 lanes: i32 lane c holds scale 2c in its low half, 2c + 1 in its high.
    let scales = u16x8_extend_low_u8x16(packed);
    (u32x4_shr(i32x4_shl(scales, 16), 16), u32x4_shr(scales, 16))
}

/// Σ scale·q·x over a super-block as four i32 lanes to be summed, from its sums over the low
/// and the high nibbles, one sub-block per lane, and [`paired_scales`].
#[inline(always)]
fn weighed((low, high): (v128, v128), (even, odd): (v128, v128)) -> v128 {
    i32x4_add(i32x4_mul(low, even), i32x4_mul(high, odd))
}

/// Σ min·Σx over a super-block as four i32 lanes to be summed: its minimums, lanes 8..16 of
/// `packed` ([`scales_and_mins`]), widened to i16 and dotted with the activations' sums per
/// 32 values (each at most 32·127, so a lane stays below 2^19).
///
/// # Safety
/// `sums32` must point at 8 readable values.
#[inline(always)]
unsafe fn min_sums(packed: v128, sums32: *const i16) -> v128 {
    i32x4_dot_i16x8(
        u16x8_extend_high_u8x16(packed),
        v128_load(sums32 as *const v128),
    )
}

/// A Q4_K or Q5_K super-block's eight 6-bit scales (lanes 0..8) and minimums (lanes
/// 8..16), as `super::scales_and_mins` unpacks them, from the super-block's first 16
/// bytes (`d`, `dmin`, then the 12 packed bytes q0 to q11). Scale j < 4 is q[j] & 63 and
/// minimum j is q[j + 4] & 63; scale j ≥ 4 takes its low four bits from q[j + 4] and its
/// high two from the top of q[j − 4], minimum j ≥ 4 from the high nibble of q[j + 4] and
/// the top of q[j].
#[inline(always)]
pub(super) fn scales_and_mins(c: &Constants, header: v128) -> v128 {
    // q0..3, q8..11, q4..7, q8..11: the bytes holding each value's low bits.
    let low =
        i8x16_shuffle::<4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15>(header, header);
    let masked = v128_and(low, c.header_low);
    let nibbles = v128_and(u16x8_shr(low, 4), c.header_nibbles);
    // q0..3 under scales 4..7 and q4..7 under minimums 4..7: their top two bits (whole
    // words moved, so that V8 needs no byte shuffle and its mask; the mask keeps the rest
    // out).
    let top = i32x4_shuffle::<0, 1, 0, 2>(header, header);
    let top = v128_and(u16x8_shr(top, 2), c.header_top);
    v128_or(v128_or(masked, nibbles), top)
}

/// Σ scale·(q − 32)·x over a Q6_K super-block, interleaved ([`order`]), as four i32 lanes to
/// be summed, `sums` being the activations' sums per 16 values: each quarter's dots leave one
/// run of 16 per lane, so one multiply by their scales in the same lanes weighs them.
///
/// # Safety
/// `block` must point at 210 readable bytes, `xq` at 256 quants (interleaved) and `sums` at
/// 16 values.
#[inline(always)]
unsafe fn q6_sums(c: &Constants, block: *const u8, xq: *const i8, sums: *const i16) -> v128 {
    let scales = v128_load(block.add(192) as *const v128);
    // Quarter q's runs, lane by lane: 2q, 2q + 1, 8 + 2q, 9 + 2q; their scales as i32 lanes.
    let sorted =
        i8x16_shuffle::<0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15>(scales, scales);
    let (first, second) = (
        i16x8_extend_low_i8x16(sorted),
        i16x8_extend_high_i8x16(sorted),
    );
    let weights = [
        i32x4_extend_low_i16x8(first),
        i32x4_extend_high_i16x8(first),
        i32x4_extend_low_i16x8(second),
        i32x4_extend_high_i16x8(second),
    ];
    // The quants are multiplied as they are unpacked, 0..64, and 32·Σ scale·Σx is taken
    // off once: relaxed SIMD's dot needs its second operand non-negative.
    let zero = i32x4_splat(0);
    let mut acc = [zero; 4];
    each_q6_vector(c, block, |k, q| {
        let at = |quarter: usize| xq.add(64 * k + 16 * quarter);
        acc[0] = products(acc[0], q[0], at(0));
        acc[1] = products(acc[1], q[1], at(1));
        acc[2] = products(acc[2], q[2], at(2));
        acc[3] = products(acc[3], q[3], at(3));
    });
    let weighed = i32x4_add(
        i32x4_add(i32x4_mul(acc[0], weights[0]), i32x4_mul(acc[1], weights[1])),
        i32x4_add(i32x4_mul(acc[2], weights[2]), i32x4_mul(acc[3], weights[3])),
    );
    let offset = weighted_sixteen(
        i16x8_extend_low_i8x16(scales),
        i16x8_extend_high_i8x16(scales),
        sums,
    );
    i32x4_sub(weighed, i32x4_shl(offset, 5))
}

/// `order::interleave_quants` by shuffles: the eight vectors hold words 0..4 and 4..8 of each
/// chunk, and two 4×4 transposes of their i32 lanes gather word k of the four chunks into
/// vector k.
pub(super) fn interleave_quants(quants: &mut [u8; 128]) {
    let at = |i: usize| quants.as_ptr().wrapping_add(16 * i) as *const v128;
    // SAFETY: the eight vectors lie within the 128 bytes.
    let v: [v128; 8] = std::array::from_fn(|i| unsafe { v128_load(at(i)) });
    let mut out = [i32x4_splat(0); 8];
    for half in 0..2 {
        let [a, b, c, d] = [0, 2, 4, 6].map(|chunk| v[chunk + half]);
        let (ab_low, ab_high) = (
            i32x4_shuffle::<0, 4, 1, 5>(a, b),
            i32x4_shuffle::<2, 6, 3, 7>(a, b),
        );
        let (cd_low, cd_high) = (
            i32x4_shuffle::<0, 4, 1, 5>(c, d),
            i32x4_shuffle::<2, 6, 3, 7>(c, d),
        );
        out[4 * half] = i32x4_shuffle::<0, 1, 4, 5>(ab_low, cd_low);
        out[4 * half + 1] = i32x4_shuffle::<2, 3, 6, 7>(ab_low, cd_low);
        out[4 * half + 2] = i32x4_shuffle::<0, 1, 4, 5>(ab_high, cd_high);
        out[4 * half + 3] = i32x4_shuffle::<2, 3, 6, 7>(ab_high, cd_high);
    }
    for (i, v) in out.into_iter().enumerate() {
        // SAFETY: as above.
        unsafe { v128_store(quants.as_mut_ptr().add(16 * i) as *mut v128, v) };
    }
}
