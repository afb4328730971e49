//! Mimir's numeric inner loops, over plain slices: the matmuls of Q8_0 and Q4_1 weights
//! (packed four rows at a time), the matmul of K-quant weights (Q4_K, Q5_K, Q6_K), the
//! attention of one query over the KV cache and the gated MLP's activation, with SIMD128 code
//! on wasm32, AVX2 code for the matmuls and the attention on x86-64 (chosen at run time), and
//! portable loops elsewhere. The engine uses each matmul and the attention wherever they have
//! SIMD code (elsewhere candle's and gemm's kernels), and the activation everywhere.
//! [`warm_up`] runs each of them on small data, so that a browser has compiled them optimised
//! before a prompt.
//!
//! They live in a crate of their own so that every build optimises them: in a dev build the
//! workspace's own crates are compiled at opt-level 0, where these loops are 10 to 50 times
//! slower.

mod activations;
pub mod attention;
#[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
mod exp;
pub mod int4;
pub mod int8;
pub mod kquant;
pub mod pool;
pub mod swiglu;
mod warm_up;

pub use warm_up::warm_up;

/// The vector instructions this build's kernels run on this machine, for the logs: in wasm32
/// "SIMD128" or "SIMD128 + relaxed SIMD" (the `relaxed-simd` feature), with " (VNNI dot)"
/// where the browser's relaxed dot is x86's `vpdpbusd` and the Q8_0 matmul takes its faster paths
/// (`int8::vnni_dot`); natively "AVX2" where the CPU has it (every matmul then runs AVX2 code),
/// "AVX2 + AVX-VNNI" where it also has AVX-VNNI (the Q8_0 and K-quant matmuls' dots then
/// take `vpdpbusd`), and "portable" elsewhere.
pub fn instructions() -> &'static str {
    if cfg!(all(target_arch = "wasm32", feature = "relaxed-simd")) {
        if int8::vnni_dot() {
            "SIMD128 + relaxed SIMD (VNNI dot)"
        } else {
            "SIMD128 + relaxed SIMD"
        }
    } else if cfg!(target_arch = "wasm32") {
        "SIMD128"
    } else if int8::accelerated() {
        if vnni() {
            "AVX2 + AVX-VNNI"
        } else {
            "AVX2"
        }
    } else {
        "portable"
    }
}

/// Whether the CPU has AVX-VNNI (natively on x86-64; false elsewhere).
fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        int8::avx2::vnni()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

// The wasm32 tests run in the browser, where the SIMD128 paths run in the product.
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Checks a matmul's `[m, rows]` output against the product of `x` (`m` rows of `cols`) with
/// the dequantized `[rows, cols]` weight `dense`: each value within 1 % of the sum of its
/// products' magnitudes, which 8-bit activations stay well inside.
#[cfg(test)]
pub(crate) fn assert_near_dense_product(
    what: &str,
    got: &[f32],
    x: &[f32],
    dense: &[f32],
    cols: usize,
) {
    let (m, rows) = (x.len() / cols, dense.len() / cols);
    assert_eq!(got.len(), m * rows);
    for r in 0..m {
        let xr = &x[r * cols..(r + 1) * cols];
        for (c, w) in dense.chunks_exact(cols).enumerate() {
            let exact: f32 = xr.iter().zip(w).map(|(a, b)| a * b).sum();
            let norm: f32 = xr.iter().zip(w).map(|(a, b)| (a * b).abs()).sum();
            let diff = (got[r * rows + c] - exact).abs();
            assert!(
                diff <= 0.01 * norm,
                "{what} [{r}, {c}]: {} against {exact}",
                got[r * rows + c]
            );
        }
    }
}

/// Checks that `product` gives the same bits computed on the caller alone and split across a
/// pool of three native threads.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn assert_pool_changes_nothing(
    what: &str,
    product: impl Fn(Option<&pool::Pool>) -> Vec<f32>,
) {
    let alone = product(None);
    let split = product(Some(&pool::tests::native(3)));
    assert_eq!(alone.len(), split.len());
    for (i, (a, s)) in alone.iter().zip(&split).enumerate() {
        assert_eq!(
            a.to_bits(),
            s.to_bits(),
            "{what} [{i}]: {s} split, {a} alone"
        );
    }
}
