//! Attention of a single new position over the KV cache (every decode step), through
//! `mimir-kernels`' loops over the cache's own storage.
//!
//! For one query row the general path's two matmuls go through gemm's packing, which costs
//! more than the arithmetic: in wasm32 4.5 ms of a 21 ms SmolLM2 decode step in Chromium,
//! against about 1.4 ms here; natively SmolLM2 Q8_0 decodes about 5 % faster here. (A prefill
//! is left to the matmuls: in wasm32 looping over its queries the same way was slower, 96
//! against 107 tok/s.)

use candle_core::{CpuStorage, Device, Layout, Result, Storage, Tensor, WithDType};
use half::f16;
use mimir_kernels::attention::{one_query, CacheValue, CacheView};

/// Whether decode steps take this path: where the loops have SIMD code (wasm32, and x86-64
/// CPUs with AVX2); the portable loops lose to gemm's.
pub fn serves() -> bool {
    mimir_kernels::attention::accelerated()
}

/// `softmax(q kᵀ / √d) v` for `q` `[1, heads, 1, d]` against `k`/`v` `[1, kv_heads, n, d]`
/// (views of the cache whose rows are contiguous, both f32 or both f16); returns
/// `[1, heads, 1, d]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, heads, seq, d) = q.dims4()?;
    let (kb, kv_heads, n, kd) = k.dims4()?;
    if b != 1
        || kb != 1
        || seq != 1
        || kd != d
        || v.dims() != k.dims()
        || kv_heads == 0
        || heads % kv_heads != 0
    {
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
    let (keys, values) = ((k_cpu, k_layout), (v_cpu, v_layout));
    let out = match (k_cpu, v_cpu) {
        (CpuStorage::F16(_), CpuStorage::F16(_)) => {
            attend::<f16>(&q, keys, values, kv_heads, n, d)?
        }
        _ => attend::<f32>(&q, keys, values, kv_heads, n, d)?,
    };
    Tensor::from_vec(out, (1, heads, 1, d), &Device::Cpu)
}

/// [`one_query`] over the keys' and values' storage, both of type `T`.
fn attend<T: WithDType + CacheValue>(
    q: &[f32],
    (k_storage, k_layout): (&CpuStorage, &Layout),
    (v_storage, v_layout): (&CpuStorage, &Layout),
    kv_heads: usize,
    n: usize,
    d: usize,
) -> Result<Vec<f32>> {
    let keys = cache_view::<T>(k_storage, k_layout, kv_heads, n, d)?;
    let values = cache_view::<T>(v_storage, v_layout, kv_heads, n, d)?;
    Ok(one_query(q, keys, values, kv_heads, n, d))
}

/// The storage under a `[1, kv_heads, n, d]` cache view, from its first value to its last.
fn cache_view<'a, T: WithDType + CacheValue>(
    storage: &'a CpuStorage,
    layout: &Layout,
    kv_heads: usize,
    n: usize,
    d: usize,
) -> Result<CacheView<'a, T>> {
    let stride = layout.stride();
    if stride[3] != 1 || stride[2] != d {
        candle_core::bail!("attention loops: cache rows are not contiguous ({stride:?})");
    }
    let data = storage.as_slice::<T>()?;
    let (start, head_stride) = (layout.start_offset(), stride[1]);
    let end = start + (kv_heads - 1) * head_stride + n * d;
    if data.len() < end {
        candle_core::bail!("attention loops: the cache view runs past its storage");
    }
    Ok(CacheView {
        data: &data[start..end],
        head_stride,
    })
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use candle_core::DType;

    use super::*;
    use crate::engine::model::{max_abs_diff, KvCache};

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
            let mut cache = KvCache::new(2, 16, 16, DType::F32, &Device::Cpu).unwrap();
            let past = values(&[1, 2, 4, 16], 1);
            cache.append(&past, &(&past * 0.5).unwrap()).unwrap();
            let new = values(&[1, 2, new_positions, 16], 2);
            let (k, v) = cache.append(&new, &new).unwrap();
            assert!(!k.is_contiguous());
            let q = values(&[1, 6, 1, 16], 3);
            let got = attention(&q, &k, &v).unwrap();
            let expected = super::super::layers::general_attention(&q, &k, &v, 16).unwrap();
            assert_eq!(got.dims(), expected.dims());
            let diff = max_abs_diff(&got, &expected);
            assert!(diff < 1e-5, "{new_positions} new: max abs diff {diff}");
        }
    }

    #[test]
    fn reads_an_f16_cache_as_the_general_attention_reads_it_widened() {
        let mut cache = KvCache::new(2, 16, 16, DType::F16, &Device::Cpu).unwrap();
        let past = values(&[1, 2, 5, 16], 4);
        cache.append(&past, &(&past * 0.5).unwrap()).unwrap();
        let new = values(&[1, 2, 1, 16], 5);
        let (k, v) = cache.append(&new, &new).unwrap();
        assert_eq!((k.dtype(), v.dtype()), (DType::F16, DType::F16));
        let q = values(&[1, 6, 1, 16], 6);
        let got = attention(&q, &k, &v).unwrap();
        let wide = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let expected =
            super::super::layers::general_attention(&q, &wide(&k), &wide(&v), 16).unwrap();
        let diff = max_abs_diff(&got, &expected);
        assert!(diff < 1e-5, "max abs diff {diff}");
    }

    #[test]
    fn refuses_more_than_one_query() {
        let q = values(&[1, 2, 4, 16], 1);
        let k = values(&[1, 2, 3, 16], 2);
        let err = attention(&q, &k, &k).unwrap_err().to_string();
        assert!(err.contains("attention loops"), "{err}");
    }
}
