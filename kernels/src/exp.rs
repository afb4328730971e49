//! `eˣ` several lanes at a time, for the softmax and SiLU: Cephes' `expf` (a range reduction
//! by ln 2 and a degree-7 polynomial), within 2 ulp of the exact value. Four lanes in SIMD128,
//! which has no exponential instruction (the library's scalar `expf` costs a call per value),
//! and eight in AVX2 with FMA natively.

/// Inputs are clamped to this range first: below it `eˣ` gives about 1e-38 rather than 0,
/// above it about 2e38 rather than infinity.
const LOWEST: f32 = -87.3;
const HIGHEST: f32 = 88.3;
/// ln 2 in two parts, so that `x - k ln 2` is exact.
const LN2_HIGH: f32 = 0.693_359_4;
const LN2_LOW: f32 = -2.121_944_4e-4;
/// The polynomial's coefficients, highest degree first, after the leading 1.987_569_1e-4.
const LEAD: f32 = 1.987_569_1e-4;
const COEFFICIENTS: [f32; 5] = [
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

/// `eˣ` per lane; inputs below -87.3 give about 1e-38 rather than 0, above 88.3 about 2e38
/// rather than infinity, and NaN stays NaN.
#[cfg(target_arch = "wasm32")]
pub(crate) fn exp4(x: std::arch::wasm32::v128) -> std::arch::wasm32::v128 {
    use std::arch::wasm32::*;

    let x = f32x4_pmin(f32x4_pmax(x, f32x4_splat(LOWEST)), f32x4_splat(HIGHEST));
    // x = k ln 2 + r with |r| ≤ ln 2 / 2.
    let k = f32x4_nearest(f32x4_mul(x, f32x4_splat(std::f32::consts::LOG2_E)));
    let r = f32x4_sub(x, f32x4_mul(k, f32x4_splat(LN2_HIGH)));
    let r = f32x4_sub(r, f32x4_mul(k, f32x4_splat(LN2_LOW)));
    let mut p = f32x4_splat(LEAD);
    for c in COEFFICIENTS {
        p = f32x4_add(f32x4_mul(p, r), f32x4_splat(c));
    }
    let y = f32x4_add(
        f32x4_add(f32x4_mul(f32x4_mul(p, r), r), r),
        f32x4_splat(1.0),
    );
    // 2ᵏ, built in the exponent bits.
    let two_k = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(k), i32x4_splat(127)), 23);
    f32x4_mul(y, two_k)
}

/// Whether the CPU has what [`exp8`] needs: AVX2 and FMA (detected once; later calls read a
/// cached flag).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// [`exp4`]'s eight-lane twin in AVX2, its multiply-adds fused (within the same 2 ulp, not
/// bit for bit equal), for CPUs that have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;

    // max and min return their second operand where either is NaN: x goes second to stay NaN.
    let x = _mm256_min_ps(
        _mm256_set1_ps(HIGHEST),
        _mm256_max_ps(_mm256_set1_ps(LOWEST), x),
    );
    let k = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HIGH), x);
    let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LOW), r);
    let mut p = _mm256_set1_ps(LEAD);
    for c in COEFFICIENTS {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let y = _mm256_add_ps(
        _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r),
        _mm256_set1_ps(1.0),
    );
    let two_k = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(k),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(y, _mm256_castsi256_ps(two_k))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// `eˣ` of each of four values, by this build's vector code.
    fn exp_lanes(x: [f32; 4]) -> [f32; 4] {
        #[cfg(target_arch = "wasm32")]
        {
            use std::arch::wasm32::*;
            let lanes = super::exp4(f32x4(x[0], x[1], x[2], x[3]));
            [
                f32x4_extract_lane::<0>(lanes),
                f32x4_extract_lane::<1>(lanes),
                f32x4_extract_lane::<2>(lanes),
                f32x4_extract_lane::<3>(lanes),
            ]
        }
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::*;
            assert!(super::avx2_fma(), "the CPU lacks AVX2 and FMA");
            let mut out = [0f32; 8];
            // SAFETY: the CPU has AVX2 and FMA, and `out` holds eight f32.
            unsafe {
                let lanes = _mm256_setr_ps(x[0], x[1], x[2], x[3], x[3], x[2], x[1], x[0]);
                _mm256_storeu_ps(out.as_mut_ptr(), super::exp8(lanes));
            }
            assert_eq!(
                out[..4]
                    .iter()
                    .rev()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                out[4..].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            [out[0], out[1], out[2], out[3]]
        }
    }

    #[test]
    fn within_two_ulp_of_the_exact_exponential() {
        for i in (0..=40_000).step_by(4) {
            let x = [0, 1, 2, 3].map(|j| -87.0 + (i + j) as f32 * 0.0043);
            for (x, got) in x.into_iter().zip(exp_lanes(x)) {
                let exact = (x as f64).exp();
                let ulp = f64::from(f32::EPSILON) * exact;
                assert!(
                    (f64::from(got) - exact).abs() <= 2.0 * ulp,
                    "exp({x}) = {got}, not {exact}"
                );
            }
        }
        let lanes = exp_lanes([f32::NAN, f32::NEG_INFINITY, -1000.0, 0.0]);
        assert!(lanes[0].is_nan());
        assert!(lanes[1] < 1e-37);
        assert!(lanes[2] < 1e-37);
        assert_eq!(lanes[3], 1.0);
    }
}
