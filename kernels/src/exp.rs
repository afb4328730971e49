//! `eˣ` four lanes at a time in SIMD128, for the softmax and SiLU: Cephes' `expf` (a range
//! reduction by ln 2 and a degree-7 polynomial), within 2 ulp of the exact value. wasm32 has no
//! exponential instruction, and the library's scalar `expf` costs a call per value.

use std::arch::wasm32::*;

/// `eˣ` per lane; inputs below -87.3 give about 1e-38 rather than 0, above 88.3 about 2e38
/// rather than infinity, and NaN stays NaN.
pub(crate) fn exp4(x: v128) -> v128 {
    let x = f32x4_pmin(f32x4_pmax(x, f32x4_splat(-87.3)), f32x4_splat(88.3));
    // x = k ln 2 + r with |r| ≤ ln 2 / 2; ln 2 in two parts keeps r exact.
    let k = f32x4_nearest(f32x4_mul(x, f32x4_splat(std::f32::consts::LOG2_E)));
    let r = f32x4_sub(x, f32x4_mul(k, f32x4_splat(0.693_359_4)));
    let r = f32x4_sub(r, f32x4_mul(k, f32x4_splat(-2.121_944_4e-4)));
    let mut p = f32x4_splat(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
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

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn within_two_ulp_of_the_exact_exponential() {
        for i in 0..=40_000 {
            let x = -87.0 + i as f32 * 0.0043;
            let got = f32x4_extract_lane::<0>(exp4(f32x4_splat(x)));
            let exact = (x as f64).exp();
            let ulp = f64::from(f32::EPSILON) * exact;
            assert!(
                (f64::from(got) - exact).abs() <= 2.0 * ulp,
                "exp({x}) = {got}, not {exact}"
            );
        }
        let lanes = exp4(f32x4(f32::NAN, f32::NEG_INFINITY, -1000.0, 0.0));
        assert!(f32x4_extract_lane::<0>(lanes).is_nan());
        assert!(f32x4_extract_lane::<1>(lanes) < 1e-37);
        assert!(f32x4_extract_lane::<2>(lanes) < 1e-37);
        assert_eq!(f32x4_extract_lane::<3>(lanes), 1.0);
    }
}
