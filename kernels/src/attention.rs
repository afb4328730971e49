//! Attention of a single new position over the KV cache (every decode step).
//!
//! Each head is a dot product per cached position, a softmax and a weighted sum of the
//! values, in f32x4 on wasm32. For one query row this beats a general matmul, whose packing
//! costs more than the arithmetic.

/// One layer's cached keys or values: for each kv head, `n` rows of `d` values, the heads
/// `head_stride` values apart.
#[derive(Debug, Clone, Copy)]
pub struct CacheView<'a> {
    /// The values, from the first head's first row to the last head's last.
    pub data: &'a [f32],
    /// Values between the starts of consecutive heads.
    pub head_stride: usize,
}

/// `softmax(q kᵀ / √d) v` for one query row per head (`q` holds `heads × d` values), over `n`
/// positions of `kv_heads` heads (query head `h` reads kv head `h / (heads / kv_heads)`);
/// returns `heads × d` values.
///
/// # Panics
/// When the sizes disagree: `heads` not a multiple of `kv_heads`, `q` not `heads × d`, or a
/// view shorter than its heads and rows.
pub fn one_query(
    q: &[f32],
    keys: CacheView,
    values: CacheView,
    kv_heads: usize,
    n: usize,
    d: usize,
) -> Vec<f32> {
    let heads = q.len() / d.max(1);
    assert!(
        kv_heads > 0 && heads.is_multiple_of(kv_heads) && q.len() == heads * d,
        "attention: {} query values for heads of {d} over {kv_heads} kv heads",
        q.len()
    );
    for view in [keys, values] {
        assert!(
            view.data.len() >= (kv_heads - 1) * view.head_stride + n * d,
            "attention: a cache view of {} values for {kv_heads} heads of {n} × {d}",
            view.data.len()
        );
    }
    let group = heads / kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; heads * d];
    let mut scores = vec![0f32; n];
    for h in 0..heads {
        let kv = h / group;
        let query = &q[h * d..(h + 1) * d];
        let head_keys = &keys.data[kv * keys.head_stride..kv * keys.head_stride + n * d];
        for (score, key) in scores.iter_mut().zip(head_keys.chunks_exact(d)) {
            *score = dot(query, key) * scale;
        }
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut total = 0.0;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            total += *score;
        }
        let out = &mut out[h * d..(h + 1) * d];
        let head_values = &values.data[kv * values.head_stride..kv * values.head_stride + n * d];
        for (&weight, value) in scores.iter().zip(head_values.chunks_exact(d)) {
            add_scaled(out, value, weight / total);
        }
    }
    out
}

/// `Σ aᵢ bᵢ`.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        simd128::dot(a, b)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }
}

/// `out += weight · x`.
fn add_scaled(out: &mut [f32], x: &[f32], weight: f32) {
    #[cfg(target_arch = "wasm32")]
    {
        simd128::add_scaled(out, x, weight)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        for (o, x) in out.iter_mut().zip(x) {
            *o += weight * x;
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use std::arch::wasm32::*;

    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = f32x4_splat(0.0);
        let mut i = 0;
        while i + 4 <= n {
            // SAFETY: `i + 4 <= n` and both slices hold at least `n` values.
            unsafe {
                let x = v128_load(a.as_ptr().add(i) as *const v128);
                let y = v128_load(b.as_ptr().add(i) as *const v128);
                acc = f32x4_add(acc, f32x4_mul(x, y));
            }
            i += 4;
        }
        let mut sum = f32x4_extract_lane::<0>(acc)
            + f32x4_extract_lane::<1>(acc)
            + f32x4_extract_lane::<2>(acc)
            + f32x4_extract_lane::<3>(acc);
        for j in i..n {
            sum += a[j] * b[j];
        }
        sum
    }

    pub(super) fn add_scaled(out: &mut [f32], x: &[f32], weight: f32) {
        let n = out.len().min(x.len());
        let w = f32x4_splat(weight);
        let mut i = 0;
        while i + 4 <= n {
            // SAFETY: `i + 4 <= n` and both slices hold at least `n` values.
            unsafe {
                let o = out.as_mut_ptr().add(i) as *mut v128;
                let y = v128_load(x.as_ptr().add(i) as *const v128);
                v128_store(o, f32x4_add(v128_load(o), f32x4_mul(w, y)));
            }
            i += 4;
        }
        for j in i..n {
            out[j] += weight * x[j];
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn equals_the_softmax_of_the_scores_written_out() {
        // Four query heads over two kv heads, three positions of 8 values, heads 40 apart.
        let (d, n, stride) = (8, 3, 40);
        let q: Vec<f32> = (0..4 * d).map(|i| (i as f32 * 0.3).cos()).collect();
        let data: Vec<f32> = (0..stride + n * d)
            .map(|i| (i as f32 * 0.17).sin())
            .collect();
        let view = CacheView {
            data: &data,
            head_stride: stride,
        };
        let got = one_query(&q, view, view, 2, n, d);
        for h in 0..4 {
            let rows = |j: usize| &data[(h / 2) * stride + j * d..(h / 2) * stride + (j + 1) * d];
            let scores: Vec<f32> = (0..n)
                .map(|j| {
                    q[h * d..(h + 1) * d]
                        .iter()
                        .zip(rows(j))
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                        / (d as f32).sqrt()
                })
                .collect();
            let total: f32 = scores.iter().map(|s| s.exp()).sum();
            for i in 0..d {
                let expected: f32 = (0..n).map(|j| scores[j].exp() / total * rows(j)[i]).sum();
                assert!(
                    (got[h * d + i] - expected).abs() < 1e-5,
                    "head {h}, value {i}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "a cache view of")]
    fn a_short_view_is_refused() {
        let data = [0.0; 10];
        let view = CacheView {
            data: &data,
            head_stride: 8,
        };
        one_query(&[0.0; 16], view, view, 2, 1, 8);
    }
}
