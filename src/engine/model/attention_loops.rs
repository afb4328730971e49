//! Attention of a single new position over the KV cache (every decode step), as plain loops
//! over the cache's own storage.
//!
//! For one query row the general path's two matmuls go through gemm's packing, which in wasm32
//! costs more than the arithmetic: 4.5 ms of a 21 ms SmolLM2 decode step in Chromium, against
//! under 1 ms here. Each head is a dot product per cached position, a softmax and a weighted
//! sum of the values, in f32x4 on wasm32. (A prefill is left to the matmuls: looping over its
//! queries the same way was slower, 96 against 107 tok/s.)

use candle_core::{CpuStorage, Device, Layout, Result, Storage, Tensor};

/// Whether decode steps take this path: in wasm32 only (natively gemm's AVX kernels win).
pub fn serves() -> bool {
    cfg!(target_arch = "wasm32")
}

/// `softmax(q kᵀ / √d) v` for `q` `[1, heads, 1, d]` against `k`/`v` `[1, kv_heads, n, d]`
/// (views of the cache whose rows are contiguous); returns `[1, heads, 1, d]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, heads, seq, d) = q.dims4()?;
    let (kb, kv_heads, n, kd) = k.dims4()?;
    if b != 1 || kb != 1 || seq != 1 || kd != d || v.dims() != k.dims() || heads % kv_heads != 0 {
        candle_core::bail!(
            "attention loops: q {:?} against k {:?} / v {:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let q = q.flatten_all()?.to_vec1::<f32>()?;
    let (k_storage, k_layout) = k.storage_and_layout();
    let (v_storage, v_layout) = v.storage_and_layout();
    let (Storage::Cpu(k_cpu), Storage::Cpu(v_cpu)) = (&*k_storage, &*v_storage) else {
        candle_core::bail!("attention loops run on the CPU");
    };
    let (keys, k_head) = cache_rows(k_cpu, k_layout, kv_heads, n, d)?;
    let (values, v_head) = cache_rows(v_cpu, v_layout, kv_heads, n, d)?;
    let group = heads / kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; heads * d];
    let mut scores = vec![0f32; n];
    for h in 0..heads {
        let kv = h / group;
        let query = &q[h * d..(h + 1) * d];
        let keys = &keys[kv * k_head..kv * k_head + n * d];
        for (score, key) in scores.iter_mut().zip(keys.chunks_exact(d)) {
            *score = dot(query, key) * scale;
        }
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut total = 0.0;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            total += *score;
        }
        let out = &mut out[h * d..(h + 1) * d];
        let values = &values[kv * v_head..kv * v_head + n * d];
        for (&weight, value) in scores.iter().zip(values.chunks_exact(d)) {
            add_scaled(out, value, weight / total);
        }
    }
    Tensor::from_vec(out, (1, heads, 1, d), &Device::Cpu)
}

/// The storage under a `[1, kv_heads, n, d]` cache view, from its first value to its last,
/// and the distance between heads.
fn cache_rows<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    kv_heads: usize,
    n: usize,
    d: usize,
) -> Result<(&'a [f32], usize)> {
    let stride = layout.stride();
    if stride[3] != 1 || stride[2] != d {
        candle_core::bail!("attention loops: cache rows are not contiguous ({stride:?})");
    }
    let data = storage.as_slice::<f32>()?;
    let (start, head_stride) = (layout.start_offset(), stride[1]);
    let end = start + (kv_heads - 1) * head_stride + n * d;
    if data.len() < end {
        candle_core::bail!("attention loops: the cache view runs past its storage");
    }
    Ok((&data[start..end], head_stride))
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

    use candle_core::DType;

    use super::*;
    use crate::engine::model::KvCache;

    fn values(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 17 + seed) as f32 * 0.31).sin())
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn equals_the_general_attention_over_a_cache_view() {
        // Six query heads over two kv heads; the cache holds 4 positions and then 1 or 9 more,
        // in a buffer of 16 (so the views are strided).
        for new_positions in [1, 9] {
            let mut cache = KvCache::new(16, DType::F32);
            let past = values(&[1, 2, 4, 16], 1);
            cache.append(&past, &(&past * 0.5).unwrap()).unwrap();
            let new = values(&[1, 2, new_positions, 16], 2);
            let (k, v) = cache.append(&new, &new).unwrap();
            assert!(!k.is_contiguous());
            let q = values(&[1, 6, 1, 16], 3);
            let got = attention(&q, &k, &v).unwrap();
            let expected = super::super::layers::general_attention(&q, &k, &v, 16).unwrap();
            assert_eq!(got.dims(), expected.dims());
            let diff = (got - expected)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "{new_positions} new: max abs diff {diff}");
        }
    }

    #[test]
    fn refuses_more_than_one_query() {
        let q = values(&[1, 2, 4, 16], 1);
        let k = values(&[1, 2, 3, 16], 2);
        let err = attention(&q, &k, &k).unwrap_err().to_string();
        assert!(err.contains("attention loops"), "{err}");
    }
}
