//! Hugging Face model folders: the tiny generator's folder gives the logits of its own F32
//! GGUF (Llama's q/k permutation included), sharded folders load like unsharded ones, and
//! broken folders are refused with errors that name the file and tensor.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use candle_core::quantized::GgmlDType;
use mimir::engine::model::{LoadOptions, Model, ModelError};
use mimir_train::tiny::{write_tiny, GgufType, TinyFiles, TinySpec};
use safetensors::SafeTensors;

mod support;

use support::{gguf_logits, max_abs_diff, options, TOKENS};

fn folder_logits(dir: &Path, options: &LoadOptions) -> Vec<Vec<f32>> {
    let mut model = Model::from_hf_dir(dir, options).unwrap();
    model.forward(&TOKENS, true).unwrap().to_vec2().unwrap()
}

fn tiny(spec: &TinySpec) -> (tempfile::TempDir, TinyFiles) {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(spec, dir.path(), None).unwrap();
    (dir, files)
}

fn hf_dir(files: &TinyFiles) -> &Path {
    files.hf_config.parent().unwrap()
}

/// Copies the folder's config into `out` and splits its weights into two shards with an index.
fn shard(files: &TinyFiles, out: &Path) {
    fs::create_dir_all(out).unwrap();
    fs::copy(&files.hf_config, out.join("config.json")).unwrap();
    let bytes = fs::read(&files.hf_weights).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = tensors.names();
    names.sort();
    let mut weight_map = HashMap::new();
    for (i, part) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let views = part
            .iter()
            .map(|n| (n.to_string(), tensors.tensor(n).unwrap()));
        fs::write(
            out.join(&file),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
        for name in part {
            weight_map.insert(name.to_string(), file.clone());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    fs::write(out.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

fn check_folder_equals_gguf(spec: &TinySpec) {
    let (dir, files) = tiny(spec);
    let reference = gguf_logits(files.gguf(GgufType::F32).unwrap());
    let folder = folder_logits(hf_dir(&files), &options());
    let diff = max_abs_diff(&folder, &reference);
    assert!(
        diff <= 1e-4,
        "{:?}: folder vs F32 GGUF differ by {diff}",
        spec.arch
    );

    let sharded = dir.path().join("sharded");
    shard(&files, &sharded);
    let from_shards = folder_logits(&sharded, &options());
    assert_eq!(from_shards, folder, "{:?}: sharded folder", spec.arch);

    // Weights quantized at load are the Q8_0 GGUF's weights.
    let q8 = LoadOptions {
        weight_type: Some(GgmlDType::Q8_0),
        ..options()
    };
    let quantized = folder_logits(hf_dir(&files), &q8);
    let q8_gguf = gguf_logits(files.gguf(GgufType::Q8_0).unwrap());
    assert_eq!(max_abs_diff(&quantized, &q8_gguf), 0.0, "{:?}", spec.arch);
}

#[test]
fn phi3_folder_equals_its_gguf() {
    check_folder_equals_gguf(&TinySpec::phi3());
}

#[test]
fn llama_folder_equals_its_gguf() {
    check_folder_equals_gguf(&TinySpec::llama());
}

fn load_error(dir: &Path) -> String {
    let err: ModelError = Model::from_hf_dir(dir, &options()).unwrap_err();
    err.to_string()
}

#[test]
fn a_missing_shard_is_named() {
    let (dir, files) = tiny(&TinySpec::llama());
    let sharded = dir.path().join("sharded");
    shard(&files, &sharded);
    fs::remove_file(sharded.join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_error(&sharded);
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
    assert!(err.contains("opening the shard"), "{err}");
}

#[test]
fn a_shape_mismatch_names_the_tensor() {
    let (_dir, files) = tiny(&TinySpec::llama());
    let config = fs::read_to_string(&files.hf_config).unwrap();
    let config = config.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96");
    fs::write(&files.hf_config, config).unwrap();
    let err = load_error(hf_dir(&files));
    assert!(
        err.contains("model.layers.0.mlp.gate_proj.weight (blk.0.ffn_gate.weight)"),
        "{err}"
    );
    assert!(err.contains("shape [128, 64]"), "{err}");
    assert!(err.contains("[96, 64]"), "{err}");
}

#[test]
fn a_truncated_safetensors_is_refused() {
    let (_dir, files) = tiny(&TinySpec::phi3());
    let bytes = fs::read(&files.hf_weights).unwrap();
    for cut in [4, 100, bytes.len() / 2, bytes.len() - 1] {
        fs::write(&files.hf_weights, &bytes[..cut]).unwrap();
        let err = load_error(hf_dir(&files));
        assert!(err.contains("model.safetensors"), "cut at {cut}: {err}");
        assert!(
            err.contains("not a valid safetensors file"),
            "cut at {cut}: {err}"
        );
    }
    fs::write(&files.hf_weights, &bytes).unwrap();
    assert!(Model::from_hf_dir(hf_dir(&files), &options()).is_ok());
}

#[test]
fn a_missing_tensor_is_named() {
    let (_dir, files) = tiny(&TinySpec::phi3());
    let bytes = fs::read(&files.hf_weights).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let kept = tensors
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.layers.1.mlp.down_proj.weight");
    let rewritten = safetensors::serialize(kept, None).unwrap();
    fs::write(&files.hf_weights, rewritten).unwrap();
    let err = load_error(hf_dir(&files));
    assert!(
        err.contains(
            "tensor model.layers.1.mlp.down_proj.weight (blk.1.ffn_down.weight) is missing"
        ),
        "{err}"
    );
}
