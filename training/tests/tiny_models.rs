//! Independent checks that the tiny models are right: candle-transformers' own loaders read
//! our files, and its non-quantized HF models and quantized GGUF models give the same logits.
//! The HF path uses `config.json` + `model.safetensors`; the GGUF path uses llama.cpp names
//! and layout (Llama q/k permuted), so equal logits prove names, layout and permutation.

use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, phi3, quantized_llama, quantized_phi3};
use mimir::engine::gguf::{write_gguf, GgufFile};
use mimir::engine::model::{LoadOptions, Model};
use mimir_train::tiny::{write_tiny, Arch, GgufType, TinySpec};

mod support;
use support::vocab_gguf;

/// The prompt every model runs: `<s>` and two ordinary tokens.
const TOKENS: [u32; 3] = [1, 15043, 3186];

fn input() -> Tensor {
    Tensor::new(&TOKENS, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

/// Logits of the last position as a flat vector (models return `[1, vocab]` or `[1, 1, vocab]`).
fn flat(logits: Tensor) -> Vec<f32> {
    logits.flatten_all().unwrap().to_vec1().unwrap()
}

/// Last-position logits of candle-transformers' non-quantized model on `hf/`.
fn hf_logits(arch: Arch, hf: &Path) -> Vec<f32> {
    let dev = Device::Cpu;
    let config = std::fs::read(hf.join("config.json")).unwrap();
    let weights = [hf.join("model.safetensors")];
    // SAFETY: the file was just written by this test and is not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&weights, DType::F32, &dev).unwrap() };
    match arch {
        Arch::Llama => {
            let cfg: llama::LlamaConfig = serde_json::from_slice(&config).unwrap();
            let cfg = cfg.into_config(false);
            let model = llama::Llama::load(vb, &cfg).unwrap();
            let mut cache = llama::Cache::new(false, DType::F32, &cfg, &dev).unwrap();
            flat(model.forward(&input(), 0, &mut cache).unwrap())
        }
        Arch::Phi3 => {
            let cfg: phi3::Config = serde_json::from_slice(&config).unwrap();
            let mut model = phi3::Model::new(&cfg, vb).unwrap();
            flat(model.forward(&input(), 0).unwrap())
        }
    }
}

/// Last-position logits of candle-transformers' quantized model on a GGUF.
fn gguf_logits(arch: Arch, path: &Path) -> Vec<f32> {
    let dev = Device::Cpu;
    let mut file = File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    match arch {
        Arch::Llama => {
            let mut model =
                quantized_llama::ModelWeights::from_gguf(content, &mut file, &dev).unwrap();
            flat(model.forward(&input(), 0).unwrap())
        }
        Arch::Phi3 => {
            let mut model =
                quantized_phi3::ModelWeights::from_gguf(false, content, &mut file, &dev).unwrap();
            flat(model.forward(&input(), 0).unwrap())
        }
    }
}

/// Our engine on a GGUF: the last-position logits of `TOKENS` in one pass, and the same
/// logits computed one token at a time through the KV cache.
fn engine_logits(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let load = || {
        let mut reader = std::io::BufReader::new(File::open(path).unwrap());
        let file = GgufFile::read(&mut reader, &path.display().to_string()).unwrap();
        Model::from_gguf(
            &file,
            &mut reader,
            &LoadOptions {
                context_cap: 64,
                ..LoadOptions::default()
            },
        )
        .unwrap()
    };
    let whole = load().forward(&TOKENS, false).unwrap().to_vec1().unwrap();
    let mut model = load();
    let mut stepwise = Vec::new();
    for id in TOKENS {
        stepwise = model.forward(&[id], false).unwrap().to_vec1().unwrap();
    }
    (whole, stepwise)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Writes `spec`, checks HF and f32-GGUF logits agree to 1e-4, and that every quantized GGUF
/// loads and stays near them; returns the folder and the HF logits.
fn check_arch(spec: &TinySpec) -> (tempfile::TempDir, Vec<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(spec, dir.path(), Some(&vocab_gguf())).unwrap();
    let hf = hf_logits(spec.arch, &dir.path().join("hf"));
    assert_eq!(hf.len(), spec.vocab);
    assert!(hf.iter().all(|v| v.is_finite()));
    let spread = hf.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        spread > 0.1 && spread < 20.0,
        "logits should be sane, max |logit| {spread}"
    );

    let f32_path = files.gguf(GgufType::F32).unwrap();
    let gguf = gguf_logits(spec.arch, f32_path);
    assert_eq!(gguf.len(), spec.vocab);
    let diff = max_abs_diff(&hf, &gguf);
    assert!(
        diff <= 1e-4,
        "{:?}: HF vs f32 GGUF max abs diff {diff}",
        spec.arch
    );

    // Our engine equals the HF reference on F32 weights, with and without the KV cache.
    let (ours, stepwise) = engine_logits(f32_path);
    let diff = max_abs_diff(&hf, &ours);
    assert!(
        diff <= 1e-4,
        "{:?}: engine vs HF max abs diff {diff}",
        spec.arch
    );
    let diff = max_abs_diff(&ours, &stepwise);
    assert!(
        diff <= 1e-4,
        "{:?}: cached vs one pass max abs diff {diff}",
        spec.arch
    );

    // quantization error grows with fewer bits, but every file loads and stays close
    for (ty, bound) in [
        (GgufType::F16, 0.01),
        (GgufType::Q8_0, 0.05),
        (GgufType::Q4K, 0.05),
        (GgufType::Q4_0, 0.5),
    ] {
        let logits = gguf_logits(spec.arch, files.gguf(ty).unwrap());
        assert!(logits.iter().all(|v| v.is_finite()));
        let (ours, _) = engine_logits(files.gguf(ty).unwrap());
        assert_eq!(
            argmax(&ours),
            argmax(&logits),
            "{:?} {ty:?}: engine vs candle-transformers",
            spec.arch
        );
        let diff = max_abs_diff(&hf, &logits);
        assert!(
            diff <= bound,
            "{:?} {ty:?}: max abs diff {diff} > {bound}",
            spec.arch
        );
        assert!(diff > 0.0, "{ty:?} should differ from f32");
    }
    (dir, hf)
}

#[test]
fn phi3_gguf_matches_hf_model() {
    check_arch(&TinySpec::phi3());
}

#[test]
fn llama_gguf_matches_hf_model() {
    check_arch(&TinySpec::llama());
}

/// The check above can fail: a Llama GGUF with q and k left in HF order (no permutation)
/// gives different logits.
#[test]
fn llama_gguf_without_permutation_differs() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny(&TinySpec::llama(), dir.path(), None).unwrap();
    let hf = hf_logits(Arch::Llama, &dir.path().join("hf"));
    let path = dir.path().join(GgufType::F32.file_name());
    let gguf = GgufFile::read(&mut File::open(&path).unwrap(), "f32").unwrap();
    let dev = Device::Cpu;
    let hf_weights =
        candle_core::safetensors::load(dir.path().join("hf/model.safetensors"), &dev).unwrap();
    let mut tensors = Vec::new();
    for info in gguf.tensor_infos() {
        let mut tensor = gguf
            .tensor(&mut File::open(&path).unwrap(), &info.name, &dev)
            .unwrap();
        for (gguf_part, hf_part) in [("attn_q", "q_proj"), ("attn_k", "k_proj")] {
            if let Some(layer) = info
                .name
                .strip_prefix("blk.")
                .and_then(|rest| rest.strip_suffix(&format!(".{gguf_part}.weight")))
            {
                let hf_name = format!("model.layers.{layer}.self_attn.{hf_part}.weight");
                let unpermuted = &hf_weights[&hf_name];
                tensor = candle_core::quantized::QTensor::quantize(
                    unpermuted,
                    candle_core::quantized::GgmlDType::F32,
                )
                .unwrap();
            }
        }
        tensors.push((info.name.clone(), tensor));
    }
    let refs: Vec<_> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    let wrong = dir.path().join("unpermuted.gguf");
    let mut out = File::create(&wrong).unwrap();
    write_gguf(&mut out, gguf.metadata(), &refs).unwrap();
    drop(out);
    let diff = max_abs_diff(&hf, &gguf_logits(Arch::Llama, &wrong));
    assert!(
        diff > 1e-3,
        "unpermuted q/k should change the logits, diff {diff}"
    );
}
