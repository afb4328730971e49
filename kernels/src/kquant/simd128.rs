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
    let low =
        i8x16_shuffle::<8, 16, 8, 16, 9, 16, 9, 16, 10, 16, 10, 16, 11, 16, 11, 16>(packed, zero);
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
    let low =
        i8x16_shuffle::<4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15>(header, header);
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
