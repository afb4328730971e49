//! Building blocks shared by every decoder: projections, norms, rotary embedding, KV cache,
//! and token-embedding lookup straight from quantized rows.

use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, DType, Device, Module, Result, Storage, Tensor, WithDType, D};
use half::f16;
use mimir_kernels::attention::causal_softmax;
use mimir_kernels::swiglu::{swiglu, swiglu_stacked};

use super::attention_loops;
use super::kernel_matrix::KernelMatrix;

/// A linear projection over quantized (or f32/f16) weights, `y = x Wᵀ`, optionally with a
/// LoRA side path: `y = x Wᵀ + scale · (x Aᵀ) Bᵀ`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    lora: Option<LoraDelta>,
}

/// Where a projection's matmul runs: candle's kernels, or ours where they have SIMD code for
/// the type (see [`KernelMatrix::serves`]).
#[derive(Debug, Clone)]
enum Weight {
    Candle(QMatMul),
    Kernel(Arc<KernelMatrix>),
}

impl Linear {
    /// Wraps a `[out, in]` weight.
    pub fn new(weight: QTensor) -> Result<Self> {
        Self::shared(Arc::new(weight))
    }

    /// Wraps a weight that is also used elsewhere (tied embeddings).
    pub fn shared(weight: Arc<QTensor>) -> Result<Self> {
        let weight = if KernelMatrix::serves(&weight) {
            Weight::Kernel(Arc::new(KernelMatrix::from_qtensor(&weight)?))
        } else {
            Weight::Candle(QMatMul::from_arc(weight)?)
        };
        Ok(Self { weight, lora: None })
    }

    /// Wraps a weight in the kernels' layout.
    pub fn kernel(weight: KernelMatrix) -> Self {
        Self {
            weight: Weight::Kernel(Arc::new(weight)),
            lora: None,
        }
    }

    /// Adds a low-rank update beside the (untouched) base weight.
    pub fn with_lora(self, lora: LoraDelta) -> Self {
        Self {
            lora: Some(lora),
            ..self
        }
    }

    /// The projections as one, their outputs side by side ([`KernelMatrix::stack`]): `None`
    /// unless every part runs in the kernels without a LoRA update.
    pub fn stack(parts: &[&Linear]) -> Option<Self> {
        let matrices = parts
            .iter()
            .map(|p| match (&p.weight, &p.lora) {
                (Weight::Kernel(w), None) => Some(w.as_ref()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        KernelMatrix::stack(&matrices).map(Self::kernel)
    }

    /// Applies the projection to `[.., in]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = match &self.weight {
            Weight::Candle(w) => w.forward(xs)?,
            Weight::Kernel(w) => w.forward(xs)?,
        };
        match &self.lora {
            None => Ok(ys),
            Some(lora) => ys + lora.forward(xs)?,
        }
    }
}

/// The update of a LoRA pair, `scale · (x Aᵀ) Bᵀ`, kept as two thin f32 matrices so the
/// quantized base weight is never dequantized (the rank is far below the layer sizes). `Aᵀ`
/// and `Bᵀ` are transposed views that share the adapter's storage, and the scale is applied
/// to the rank-wide intermediate, so loading an adapter copies none of its weights.
#[derive(Debug, Clone)]
pub struct LoraDelta {
    /// `Aᵀ`, `[in, r]`.
    a_t: Tensor,
    /// `Bᵀ`, `[r, out]`.
    b_t: Tensor,
    scale: f64,
}

impl LoraDelta {
    /// Builds the update from `A` `[r, in]`, `B` `[out, r]` and the adapter's scale.
    pub fn new(a: &Tensor, b: &Tensor, scale: f64) -> Result<Self> {
        Ok(Self {
            a_t: a.t()?,
            b_t: b.t()?,
            scale,
        })
    }

    /// The update for `[.., in]`, shaped `[.., out]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims();
        let (inputs, outputs) = (xs.dim(D::Minus1)?, self.b_t.dim(1)?);
        let rows = xs.elem_count() / inputs.max(1);
        let ys =
            (xs.reshape((rows, inputs))?.matmul(&self.a_t)? * self.scale)?.matmul(&self.b_t)?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = outputs;
        }
        ys.reshape(shape)
    }

    /// The update as a dense `[out, in]` matrix, `scale · B A`, for merging into a weight.
    pub fn dense(&self) -> Result<Tensor> {
        self.b_t.t()?.matmul(&self.a_t.t()?)? * self.scale
    }
}

/// Root-mean-square layer norm with a learned scale.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// Builds the norm from its (dequantized) scale vector.
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self {
            weight,
            eps: eps as f32,
        }
    }

    /// Normalises the last dimension.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(&xs.contiguous()?, &self.weight, self.eps)
    }
}

/// Rotary position embedding tables.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// NeoX layout (rotate halves) rather than interleaved pairs.
    neox: bool,
}

impl Rope {
    /// Precomputes `max_positions` rows for heads of size `head_dim`.
    pub fn new(
        head_dim: usize,
        base: f32,
        max_positions: usize,
        neox: bool,
        device: &Device,
    ) -> Result<Self> {
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1f32 / base.powf(i as f32 / head_dim as f32))
            .collect();
        let inv_freq = Tensor::new(inv_freq.as_slice(), device)?;
        let positions = Tensor::arange(0, max_positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max_positions, 1))?;
        let angles = positions.matmul(&inv_freq.reshape((1, head_dim / 2))?)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
            neox,
        })
    }

    /// Number of positions the tables cover.
    pub fn max_positions(&self) -> usize {
        self.cos.dim(0).unwrap_or(0)
    }

    /// Rotates `[batch, heads, seq, head_dim]` for positions `start..start + seq`.
    pub fn apply(&self, xs: &Tensor, start: usize) -> Result<Tensor> {
        let seq = xs.dim(2)?;
        let cos = self.cos.narrow(0, start, seq)?;
        let sin = self.sin.narrow(0, start, seq)?;
        let xs = xs.contiguous()?;
        if self.neox {
            candle_nn::rotary_emb::rope(&xs, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope_i(&xs, &cos, &sin)
        }
    }
}

/// Keys and values of the positions seen so far, for one attention layer.
///
/// The buffers are allocated when the model loads, at the layer's full capacity, and written
/// in place after that: a decode step copies only its own position, where concatenating would
/// copy the whole cache every token, and the memory a conversation needs is taken before it
/// starts (for Phi-3-mini at 2048 positions in f16, 805 MB in all), so a device that lacks it
/// fails the load with an error rather than a chat with an abort.
/// They are not zeroed: a position is written before it is read, and the pages of positions a
/// chat never reaches are never touched. (Allocated at the first append, each layer's
/// buffers took the memory after the previous layer's transient tensors, and each layer of the
/// first prompt wrote its own on pages never touched before: Chromium's renderer took 11-15 k
/// page faults a second through a 64-token Phi-3 prompt, against about 1.5 k now.)
/// Stored as f16 the values are widened where attention reads them: a decode step's loops
/// read the f16 buffers themselves, where widening the views would copy the whole cache to
/// f32 every token.
#[derive(Debug)]
pub struct KvCache {
    /// `[1, kv_heads, capacity, head_dim]` keys and values.
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl KvCache {
    /// A cache for up to `capacity` positions of `kv_heads` heads of `head_dim` values,
    /// stored as `dtype` (`F32` or `F16`); refuses one that does not fit in memory.
    pub fn new(
        kv_heads: usize,
        capacity: usize,
        head_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let shape = (1, kv_heads, capacity, head_dim);
        let empty = || match dtype {
            DType::F32 => uninitialized::<f32>(shape, device),
            DType::F16 => uninitialized::<f16>(shape, device),
            other => candle_core::bail!("a KV cache of {other:?} (f32 and f16 are stored)"),
        };
        Ok(Self {
            k: empty()?,
            v: empty()?,
            len: 0,
        })
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The type the keys and values are stored in.
    pub fn dtype(&self) -> DType {
        self.k.dtype()
    }

    /// Most positions the cache holds.
    pub fn capacity(&self) -> usize {
        self.k.dim(2).unwrap_or(0)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `[batch, kv_heads, seq, head_dim]` keys and values; returns views of all of
    /// them, in the cache's type.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (batch, heads, seq, dim) = k.dims4()?;
        let (_, cache_heads, capacity, cache_dim) = self.k.dims4()?;
        if (batch, heads, dim) != (1, cache_heads, cache_dim) || v.dims() != k.dims() {
            candle_core::bail!(
                "the KV cache holds [1, {cache_heads}, _, {cache_dim}], keys {:?} and values {:?} \
                 were appended",
                k.dims(),
                v.dims()
            );
        }
        let total = self.len + seq;
        if total > capacity {
            candle_core::bail!("the KV cache holds {capacity} positions, {total} were asked for");
        }
        let dtype = self.k.dtype();
        self.k
            .slice_set(&k.to_dtype(dtype)?.contiguous()?, 2, self.len)?;
        self.v
            .slice_set(&v.to_dtype(dtype)?.contiguous()?, 2, self.len)?;
        self.len = total;
        // Narrowed views, not copies: attention reads them with the buffers' strides.
        Ok((self.k.narrow(2, 0, total)?, self.v.narrow(2, 0, total)?))
    }

    /// Keeps only the first `len` positions (to reuse a shared prompt prefix); the buffers stay
    /// allocated for the positions that follow.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Bytes the cache holds once allocated, for `positions` of `kv_dim` (heads × head size)
    /// per layer, keys and values.
    pub fn bytes(positions: usize, kv_dim: usize, dtype: DType) -> usize {
        2 * positions * kv_dim * dtype.size_in_bytes()
    }
}

/// A tensor whose memory is taken but not written, or an error where the memory is not there
/// (an infallible allocation would abort the worker instead).
fn uninitialized<T: WithDType>(
    shape: (usize, usize, usize, usize),
    device: &Device,
) -> Result<Tensor> {
    let (a, b, c, d) = shape;
    let values = [b, c, d].iter().try_fold(a, |n, &m| n.checked_mul(m));
    let mut data: Vec<T> = Vec::new();
    match values {
        Some(values) if data.try_reserve_exact(values).is_ok() => {
            // SAFETY: as in candle's `Tensor::empty`: the capacity holds `values` elements of
            // a plain number type, and none is read before `KvCache::append` writes it (the
            // views it returns end at the positions written, and `truncate` only shortens
            // them).
            unsafe { data.set_len(values) };
            Tensor::from_vec(data, shape, device)
        }
        _ => {
            let bytes = [a, b, c, d, T::DTYPE.size_in_bytes()]
                .iter()
                .map(|&n| n as u128)
                .product::<u128>();
            candle_core::bail!("{} MB for the KV cache do not fit in memory", bytes >> 20)
        }
    }
}

/// Token embeddings looked up from the quantized rows themselves, so the table is never held
/// a second time as f32 (for Phi-3-mini that copy alone would be ~394 MB of wasm memory).
#[derive(Debug)]
pub struct Embedding {
    table: Table,
    vocab: usize,
    dim: usize,
}

/// The table as loaded, or in the kernels' layout where they serve its type, in which form it
/// also serves as a tied output projection without a second copy.
#[derive(Debug)]
enum Table {
    Candle(Arc<QTensor>),
    Kernel(Arc<KernelMatrix>),
}

impl Embedding {
    /// Wraps a `[vocab, dim]` table.
    pub fn new(table: QTensor) -> Result<Self> {
        let (vocab, dim) = table.shape().dims2()?;
        let table = if KernelMatrix::serves(&table) {
            Table::Kernel(Arc::new(KernelMatrix::from_qtensor(&table)?))
        } else {
            Table::Candle(Arc::new(table))
        };
        Ok(Self { table, vocab, dim })
    }

    /// Wraps a `[vocab, dim]` table in the kernels' layout.
    pub fn kernel(table: KernelMatrix) -> Self {
        let (vocab, dim) = table.dims();
        Self {
            table: Table::Kernel(Arc::new(table)),
            vocab,
            dim,
        }
    }

    /// The output projection of a model with tied embeddings: the table itself, shared.
    pub fn tied_output(&self) -> Result<Linear> {
        match &self.table {
            Table::Candle(table) => Linear::shared(Arc::clone(table)),
            Table::Kernel(table) => Ok(Linear {
                weight: Weight::Kernel(Arc::clone(table)),
                lora: None,
            }),
        }
    }

    /// Looks up `ids`, returning `[ids.len(), dim]` in f32.
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        let device = Device::Cpu;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab) {
            candle_core::bail!("token id {id} is outside the vocabulary of {}", self.vocab);
        }
        let table = match &self.table {
            Table::Kernel(table) => {
                let values = ids.iter().flat_map(|&id| table.row(id as usize)).collect();
                return Tensor::from_vec(values, (ids.len(), self.dim), &device);
            }
            Table::Candle(table) => table,
        };
        let dtype = table.dtype();
        let row_bytes = self.dim / dtype.block_size() * dtype.type_size();
        let data = table.data()?;
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids {
            let id = id as usize;
            let bytes = &data[id * row_bytes..(id + 1) * row_bytes];
            let row = match dtype {
                GgmlDType::F32 => Tensor::from_vec(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect::<Vec<_>>(),
                    self.dim,
                    &device,
                )?,
                _ => {
                    qtensor_from_ggml(dtype, bytes, vec![self.dim], &device)?.dequantize(&device)?
                }
            };
            rows.push(row);
        }
        Tensor::stack(&rows, 0)
    }
}

/// Scaled dot-product attention with grouped-query heads and a causal mask over a cache:
/// `q` is `[b, heads, seq, d]` in f32, `k`/`v` are `[b, kv_heads, past + seq, d]` in f32 or
/// f16 (widened for the matmuls, read as they are by a decode step's loops).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, head_dim: usize) -> Result<Tensor> {
    if attention_loops::serves() && q.dim(2)? == 1 && k.dim(0)? == 1 {
        return attention_loops::attention(q, k, v);
    }
    let widen = |t: &Tensor| match t.dtype() {
        DType::F32 => Ok(t.clone()),
        _ => t.to_dtype(DType::F32),
    };
    general_attention(q, &widen(k)?, &widen(v)?, head_dim)
}

/// [`attention`] through matmuls, for any number of query positions.
pub(super) fn general_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    head_dim: usize,
) -> Result<Tensor> {
    let (b, heads, seq, d) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    let total = k.dim(2)?;
    let group = heads / kv_heads;
    // Fold the query heads of a group into the sequence axis instead of copying k and v.
    let q = q.reshape((b, kv_heads, group * seq, d))?;
    let scores = q.matmul(&k.t()?)?;
    let mut probs = scores.flatten_all()?.to_vec1::<f32>()?;
    causal_softmax(&mut probs, total, seq, 1.0 / (head_dim as f32).sqrt());
    let probs = Tensor::from_vec(probs, scores.shape(), q.device())?;
    probs.matmul(v)?.reshape((b, heads, seq, d))
}

/// SiLU-gated feed-forward: `down(silu(gate) * up)`, the activation in `mimir-kernels`
/// ([`swiglu`]; candle's where the values are not f32).
pub fn gated_mlp(gate: &Tensor, up: &Tensor, down: &Linear) -> Result<Tensor> {
    if gate.dtype() != DType::F32 || up.dtype() != DType::F32 {
        return down.forward(&(candle_nn::ops::silu(gate)? * up)?);
    }
    if gate.dims() != up.dims() {
        candle_core::bail!(
            "gated mlp: gate {:?} against up {:?}",
            gate.dims(),
            up.dims()
        );
    }
    let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let gated = swiglu(&values(gate)?, &values(up)?);
    down.forward(&Tensor::from_vec(gated, gate.shape(), gate.device())?)
}

/// [`gated_mlp`] on a fused gate-and-up projection's output `[.., 2 · ffn]` (the gate's `ffn`
/// values first), its activation computed from the output in place. Split into two views,
/// each half was copied twice on its way to [`swiglu`], and in Chromium the down projection
/// after those copies ran 2.5× slower than alone (bench/NOTES.md, "A Phi-3 prompt matmul by
/// matmul ..."): in place, a Phi-3 prompt is 1.2× faster.
pub fn gated_mlp_stacked(gate_up: &Tensor, ffn: usize, down: &Linear) -> Result<Tensor> {
    let mut shape = gate_up.dims().to_vec();
    if shape.last() != Some(&(2 * ffn)) || ffn == 0 {
        candle_core::bail!("gated mlp: {shape:?} is not {ffn} gate and {ffn} up values wide");
    }
    let in_place = {
        let (storage, layout) = gate_up.storage_and_layout();
        match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) => {
                Some(swiglu_stacked(&values[start..end], ffn))
            }
            _ => None,
        }
    };
    let Some(gated) = in_place else {
        let (gate, up) = split_last(gate_up, ffn)?;
        return gated_mlp(&gate, &up, down);
    };
    if let Some(last) = shape.last_mut() {
        *last = ffn;
    }
    down.forward(&Tensor::from_vec(gated, shape, gate_up.device())?)
}

/// The last position of `[b, seq, hidden]`, as `[b, hidden]`.
pub fn last_position(xs: &Tensor) -> Result<Tensor> {
    let seq = xs.dim(1)?;
    xs.narrow(1, seq - 1, 1)?.squeeze(1)
}

/// Splits the last dimension at `first`.
pub fn split_last(xs: &Tensor, first: usize) -> Result<(Tensor, Tensor)> {
    let total = xs.dim(D::Minus1)?;
    Ok((
        xs.narrow(D::Minus1, 0, first)?,
        xs.narrow(D::Minus1, first, total - first)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::max_abs_diff;

    fn values(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i * 13 + seed) as f32).cos()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn the_stacked_gated_mlp_equals_the_one_on_its_halves() {
        let down =
            Linear::new(QTensor::quantize(&values(&[4, 6], 5), GgmlDType::F32).unwrap()).unwrap();
        let gate_up = (values(&[1, 3, 12], 6) * 4.0).unwrap();
        let (gate, up) = split_last(&gate_up, 6).unwrap();
        let expected = gated_mlp(&gate, &up, &down).unwrap();
        let got = gated_mlp_stacked(&gate_up, 6, &down).unwrap();
        assert_eq!(got.dims(), [1, 3, 4]);
        assert_eq!(max_abs_diff(&got, &expected), 0.0);
        // A view that is not contiguous takes the split path, with the same result.
        let wide = Tensor::cat(&[&gate_up, &gate_up], 2).unwrap();
        let view = wide.narrow(2, 12, 12).unwrap();
        let got = gated_mlp_stacked(&view, 6, &down).unwrap();
        assert_eq!(max_abs_diff(&got, &expected), 0.0);
        let error = gated_mlp_stacked(&gate_up, 5, &down)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is not 5 gate and 5 up values wide"),
            "{error}"
        );
    }

    #[test]
    fn lora_side_path_equals_the_merged_weight() {
        let (w, a, b) = (values(&[6, 4], 1), values(&[2, 4], 2), values(&[6, 2], 3));
        let scale = 1.5;
        let merged = (&w + (b.matmul(&a).unwrap() * scale).unwrap()).unwrap();
        let dense =
            |t: &Tensor| Linear::new(QTensor::quantize(t, GgmlDType::F32).unwrap()).unwrap();
        let side = dense(&w).with_lora(LoraDelta::new(&a, &b, scale).unwrap());
        let xs = values(&[1, 3, 4], 4);
        let got = side.forward(&xs).unwrap();
        assert_eq!(got.dims(), [1, 3, 6]);
        let expected = dense(&merged).forward(&xs).unwrap();
        let diff = max_abs_diff(&got, &expected);
        assert!(diff < 1e-5, "max abs diff {diff}");
        let plain = dense(&w).forward(&xs).unwrap();
        let moved = (plain - expected)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(moved.to_scalar::<f32>().unwrap() > 0.1);
    }

    #[test]
    fn the_cache_returns_every_position_appended_and_overwrites_after_truncating() {
        for (dtype, tolerance) in [(DType::F32, 0.0), (DType::F16, 1e-3)] {
            let mut cache = KvCache::new(2, 8, 4, dtype, &Device::Cpu).unwrap();
            let steps = [
                values(&[1, 2, 3, 4], 1),
                values(&[1, 2, 1, 4], 2),
                values(&[1, 2, 2, 4], 3),
            ];
            let mut seen: Vec<Tensor> = Vec::new();
            let wide = |t: Tensor| t.to_dtype(DType::F32).unwrap();
            for step in &steps {
                let v = (step * 2.0).unwrap();
                let (k_all, v_all) = cache.append(step, &v).unwrap();
                seen.push(step.clone());
                let expected = Tensor::cat(&seen, 2).unwrap();
                assert_eq!(k_all.dims(), expected.dims());
                assert_eq!((k_all.dtype(), v_all.dtype()), (dtype, dtype));
                let (k_all, v_all) = (wide(k_all), wide(v_all));
                assert!(max_abs_diff(&k_all, &expected) <= tolerance, "{dtype:?}");
                assert!(max_abs_diff(&v_all, &(expected * 2.0).unwrap()) <= 2.0 * tolerance);
            }
            assert_eq!(cache.len(), 6);

            // A shorter prefix is kept, and what follows it is written over.
            cache.truncate(2);
            let fresh = values(&[1, 2, 1, 4], 9);
            let (k_all, _) = cache.append(&fresh, &fresh).unwrap();
            let k_all = wide(k_all);
            let expected = Tensor::cat(&[&steps[0].narrow(2, 0, 2).unwrap(), &fresh], 2).unwrap();
            assert!(max_abs_diff(&k_all, &expected) <= tolerance, "{dtype:?}");
            assert_eq!(cache.len(), 3);
        }
    }

    #[test]
    fn the_cache_refuses_more_positions_than_its_capacity_and_keeps_what_it_has() {
        let mut cache = KvCache::new(1, 4, 2, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(cache.capacity(), 4);
        let three = values(&[1, 1, 3, 2], 1);
        cache.append(&three, &three).unwrap();
        let err = cache.append(&three, &three).unwrap_err().to_string();
        assert!(err.contains("holds 4 positions, 6 were asked for"), "{err}");
        assert_eq!(cache.len(), 3);
        let one = values(&[1, 1, 1, 2], 2);
        let (k_all, _) = cache.append(&one, &one).unwrap();
        assert_eq!(k_all.dims(), [1, 1, 4, 2]);
        assert_eq!(KvCache::bytes(2048, 3072, DType::F16) * 32, 805_306_368);
    }

    #[test]
    fn the_cache_refuses_keys_of_another_shape_and_types_it_does_not_store() {
        let mut cache = KvCache::new(2, 4, 2, DType::F16, &Device::Cpu).unwrap();
        let one_head = values(&[1, 1, 1, 2], 1);
        let err = cache.append(&one_head, &one_head).unwrap_err().to_string();
        assert!(
            err.contains("holds [1, 2, _, 2], keys [1, 1, 1, 2]"),
            "{err}"
        );
        assert!(cache.is_empty());
        let err = KvCache::new(2, 4, 2, DType::BF16, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("a KV cache of BF16"), "{err}");
    }

    #[test]
    fn a_cache_larger_than_memory_is_an_error() {
        // 2^48 f32 values: a PiB, past any allocator (and past wasm32's usize).
        let side = 1 << 16;
        let err = KvCache::new(side, side, side, DType::F32, &Device::Cpu).unwrap_err();
        assert!(
            err.to_string()
                .contains("1073741824 MB for the KV cache do not fit in memory"),
            "{err}"
        );
    }
}
