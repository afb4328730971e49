//! PEFT LoRA adapters in the engine: the unmerged side path over a base GGUF gives the logits
//! of the model with the adapter merged into its weights (which the tiny generator writes
//! independently, in HF order, before llama.cpp's q/k permutation), and broken adapters are
//! refused with errors that name the tensor.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use mimir::engine::gguf::GgufFile;
use mimir::engine::lora::{Adapter, LoraError};
use mimir::engine::model::{LoadOptions, Model, ModelError};
use mimir_train::tiny::{write_merged_gguf, write_tiny, GgufType, TinyFiles, TinySpec};

mod support;

use support::{argmax, max_abs_diff, TOKENS};

struct Fixture {
    _dir: tempfile::TempDir,
    files: TinyFiles,
    config: String,
    weights: Vec<u8>,
    merged: HashMap<GgufType, std::path::PathBuf>,
}

fn fixture(spec: &TinySpec) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(spec, dir.path(), None).unwrap();
    let mut merged = HashMap::new();
    for ty in [GgufType::F32, GgufType::Q8_0] {
        let path = dir.path().join(format!("merged-{}", ty.file_name()));
        write_merged_gguf(spec, ty, &path, None).unwrap();
        merged.insert(ty, path);
    }
    Fixture {
        config: fs::read_to_string(&files.adapter_config).unwrap(),
        weights: fs::read(&files.adapter_weights).unwrap(),
        _dir: dir,
        files,
        merged,
    }
}

fn load(path: &Path, adapter: Option<Adapter>) -> Result<Model, ModelError> {
    let mut reader = BufReader::new(File::open(path).unwrap());
    let file = GgufFile::read(&mut reader, &path.display().to_string()).unwrap();
    let options = LoadOptions {
        context_cap: 64,
        adapter,
        ..LoadOptions::default()
    };
    Model::from_gguf(&file, &mut reader, &options)
}

/// Logits of every position, `[TOKENS.len()][vocab]`.
fn logits(model: &mut Model) -> Vec<Vec<f32>> {
    model.forward(&TOKENS, true).unwrap().to_vec2().unwrap()
}

/// The last position's logits, one token at a time through the KV cache.
fn stepwise(model: &mut Model) -> Vec<f32> {
    let mut last = Vec::new();
    for id in TOKENS {
        last = model.forward(&[id], false).unwrap().to_vec1().unwrap();
    }
    last
}

fn adapter(f: &Fixture) -> Adapter {
    Adapter::from_peft(&f.config, &f.weights, "tiny-adapter").unwrap()
}

/// F32: side path = merged within 1e-4, at every position and through the cache; the adapter
/// visibly moves the logits. Q8_0: the same argmax as the merged Q8_0 model.
fn check_side_path(spec: &TinySpec) {
    let f = fixture(spec);
    let base = f.files.gguf(GgufType::F32).unwrap();
    let mut adapted = load(base, Some(adapter(&f))).unwrap();
    let ours = logits(&mut adapted);
    let merged = logits(&mut load(&f.merged[&GgufType::F32], None).unwrap());
    let diff = max_abs_diff(&ours, &merged);
    assert!(diff <= 1e-4, "{:?}: side path vs merged {diff}", spec.arch);

    let plain = logits(&mut load(base, None).unwrap());
    let moved = max_abs_diff(&plain, &merged);
    assert!(
        moved > 1e-2,
        "{:?}: the adapter moves logits by {moved}",
        spec.arch
    );

    let cached = stepwise(&mut load(base, Some(adapter(&f))).unwrap());
    let diff = max_abs_diff(&[cached], &merged[TOKENS.len() - 1..]);
    assert!(
        diff <= 1e-4,
        "{:?}: cached side path vs merged {diff}",
        spec.arch
    );

    let q8 = f.files.gguf(GgufType::Q8_0).unwrap();
    let ours = logits(&mut load(q8, Some(adapter(&f))).unwrap());
    let merged_q8 = logits(&mut load(&f.merged[&GgufType::Q8_0], None).unwrap());
    let ours: Vec<usize> = ours.iter().map(|r| argmax(r)).collect();
    let reference: Vec<usize> = merged_q8.iter().map(|r| argmax(r)).collect();
    assert_eq!(ours, reference, "{:?}: Q8_0 argmax", spec.arch);
}

#[test]
fn phi3_side_path_equals_merged_weights() {
    check_side_path(&TinySpec::phi3());
}

/// Also proves the q/k row permutation: the tiny generator merges in HF order and permutes
/// afterwards, so an unpermuted `lora_B` would give different logits.
#[test]
fn llama_side_path_equals_merged_weights() {
    check_side_path(&TinySpec::llama());
}

/// The adapter's tensors, to be edited and written back.
fn tensors(f: &Fixture) -> HashMap<String, Tensor> {
    candle_core::safetensors::load_buffer(&f.weights, &Device::Cpu).unwrap()
}

fn serialize(tensors: &HashMap<String, Tensor>) -> Vec<u8> {
    safetensors::serialize(tensors.iter().map(|(k, v)| (k.clone(), v)), None).unwrap()
}

const QKV_A: &str = "base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight";
const QKV_B: &str = "base_model.model.model.layers.0.self_attn.qkv_proj.lora_B.weight";

/// The error of loading the F32 phi3 base with the adapter `config` + `weights`, whether
/// parsing or fitting refuses it.
fn phi3_error(f: &Fixture, config: &str, weights: &[u8]) -> String {
    let err = match Adapter::from_peft(config, weights, "bad") {
        Err(e) => ModelError::Adapter(e),
        Ok(adapter) => match load(f.files.gguf(GgufType::F32).unwrap(), Some(adapter)) {
            Err(e) => e,
            Ok(_) => panic!("the adapter was accepted"),
        },
    };
    assert!(matches!(err, ModelError::Adapter(_)), "{err:?}");
    err.to_string()
}

#[test]
fn broken_adapters_are_refused_with_the_tensor_named() {
    let f = fixture(&TinySpec::phi3());
    let cfg = |from: &str, to: &str| {
        assert!(f.config.contains(from), "{from}");
        f.config.replacen(from, to, 1)
    };
    let edited = |edit: &dyn Fn(&mut HashMap<String, Tensor>)| {
        let mut t = tensors(&f);
        edit(&mut t);
        serialize(&t)
    };

    let mut cases: Vec<(&str, String, Vec<u8>, String)> = vec![
        (
            "malformed JSON",
            f.config[..f.config.len() / 2].to_string(),
            f.weights.clone(),
            "adapter bad: adapter_config.json: EOF while parsing".into(),
        ),
        (
            "missing r",
            cfg("\"r\": 4,", ""),
            f.weights.clone(),
            "adapter bad: adapter_config.json has no \"r\"".into(),
        ),
        (
            "missing lora_alpha",
            cfg("\"lora_alpha\": 8,", ""),
            f.weights.clone(),
            "adapter_config.json has no \"lora_alpha\"".into(),
        ),
        (
            "unknown target module in the config",
            cfg("\"o_proj\"", "\"wo\""),
            f.weights.clone(),
            "unknown target module \"wo\"".into(),
        ),
        (
            "fan_in_fan_out",
            cfg("\"fan_in_fan_out\": false", "\"fan_in_fan_out\": true"),
            f.weights.clone(),
            "fan_in_fan_out true (Conv1D weights) is not supported".into(),
        ),
        (
            "bias",
            cfg("\"bias\": \"none\"", "\"bias\": \"lora_only\""),
            f.weights.clone(),
            "bias \"lora_only\" (only \"none\" is) is not supported".into(),
        ),
        (
            "a llama module in a phi3 adapter",
            cfg("\"o_proj\"", "\"o_proj\", \"q_proj\""),
            edited(&|t| {
                for half in ["lora_A", "lora_B"] {
                    let from = format!("base_model.model.model.layers.1.self_attn.qkv_proj.{half}.weight");
                    let to = from.replace("qkv_proj", "q_proj");
                    let v = t.remove(&from).unwrap();
                    t.insert(to, v);
                }
            }),
            "tensor base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight: a phi3 model has no q_proj"
                .into(),
        ),
        (
            "wrong shape",
            f.config.clone(),
            edited(&|t| {
                let b = t[QKV_B].narrow(0, 0, 190).unwrap();
                t.insert(QKV_B.into(), b);
            }),
            format!(
                "adapter bad: tensor {QKV_B}: shape [190, 4] but the base weight \
                 blk.0.attn_qkv.weight needs [192, 4]"
            ),
        ),
        (
            "wrong input width",
            f.config.clone(),
            edited(&|t| {
                let a = t[QKV_A].narrow(1, 0, 32).unwrap();
                t.insert(QKV_A.into(), a);
            }),
            format!(
                "tensor {QKV_A}: shape [4, 32] but the base weight blk.0.attn_qkv.weight needs [4, 64]"
            ),
        ),
        (
            "wrong rank",
            cfg("\"r\": 4", "\"r\": 3"),
            f.weights.clone(),
            "has rank 4 but adapter_config.json says r = 3".into(),
        ),
        (
            "A without B",
            f.config.clone(),
            edited(&|t| {
                t.remove(QKV_B);
            }),
            format!("tensor {QKV_A} has no matching {QKV_B}"),
        ),
        (
            "layer index out of range",
            f.config.clone(),
            edited(&|t| {
                for half in ["lora_A", "lora_B"] {
                    let from = format!("base_model.model.model.layers.1.mlp.down_proj.{half}.weight");
                    let v = t.remove(&from).unwrap();
                    t.insert(from.replace("layers.1", "layers.7"), v);
                }
            }),
            "tensor base_model.model.model.layers.7.mlp.down_proj.lora_A.weight: layer 7 is out of \
             range (the model has 2 blocks)"
                .into(),
        ),
        (
            "unsupported dtype",
            f.config.clone(),
            edited(&|t| {
                let b = t[QKV_B].to_dtype(DType::F64).unwrap();
                t.insert(QKV_B.into(), b);
            }),
            format!("tensor {QKV_B}: dtype F64 is not supported (f32, f16, bf16 are)"),
        ),
        (
            "unknown tensor",
            f.config.clone(),
            edited(&|t| {
                let a = t[QKV_A].clone();
                t.insert("base_model.model.lm_head.lora_A.weight".into(), a);
            }),
            "tensor base_model.model.lm_head.lora_A.weight: not a PEFT LoRA key".into(),
        ),
    ];
    for len in [0, 7, 8, 100, f.weights.len() / 2, f.weights.len() - 1] {
        cases.push((
            "truncated safetensors",
            f.config.clone(),
            f.weights[..len].to_vec(),
            "adapter bad: adapter_model.safetensors: ".into(),
        ));
    }
    for (what, config, weights, expected) in cases {
        let err = phi3_error(&f, &config, &weights);
        assert!(
            err.contains(&expected),
            "{what}: {err}\nexpected: {expected}"
        );
    }
}

/// Half-precision adapters (as PEFT saves from a bf16 or f16 model) load, and a llama
/// adapter cannot be fitted to a phi3 model.
#[test]
fn half_precision_loads_and_architectures_do_not_mix() {
    let f = fixture(&TinySpec::phi3());
    let half: HashMap<String, Tensor> = tensors(&f)
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::BF16).unwrap()))
        .collect();
    let bf16 = Adapter::from_peft(&f.config, &serialize(&half), "bf16").unwrap();
    let mut model = load(f.files.gguf(GgufType::F32).unwrap(), Some(bf16)).unwrap();
    let merged = logits(&mut load(&f.merged[&GgufType::F32], None).unwrap());
    // bf16 keeps 8 bits of mantissa: close to the merged model, not equal
    let diff = max_abs_diff(&logits(&mut model), &merged);
    assert!(diff > 0.0 && diff < 0.05, "bf16 adapter vs merged {diff}");

    let llama = fixture(&TinySpec::llama());
    let err = load(f.files.gguf(GgufType::F32).unwrap(), Some(adapter(&llama)))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("a phi3 model has no q_proj"), "{err}");
    assert!(matches!(
        load(llama.files.gguf(GgufType::F32).unwrap(), Some(adapter(&f))),
        Err(ModelError::Adapter(LoraError::NoSuchTarget { .. }))
    ));
}

/// `mimir-train logits --adapter DIR` prints the merged model's argmax and logits.
#[test]
fn cli_logits_load_the_adapter_folder() {
    let f = fixture(&TinySpec::phi3());
    let run = |model: &Path, adapter: Option<&Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mimir-train"));
        cmd.arg("logits").arg("--model").arg(model);
        if let Some(dir) = adapter {
            cmd.arg("--adapter").arg(dir);
        }
        let tokens: Vec<String> = TOKENS.iter().map(u32::to_string).collect();
        let out = cmd.arg("--tokens").arg(tokens.join(",")).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let adapter_dir = f.files.adapter_config.parent().unwrap();
    let ours = run(f.files.gguf(GgufType::F32).unwrap(), Some(adapter_dir));
    let merged = run(&f.merged[&GgufType::F32], None);
    assert_eq!(ours["argmax_all"], merged["argmax_all"]);
    let last = |v: &serde_json::Value| -> Vec<f32> {
        serde_json::from_value(v["last_logits"].clone()).unwrap()
    };
    let diff = max_abs_diff(&[last(&ours)], &[last(&merged)]);
    assert!(diff <= 1e-4, "CLI side path vs merged {diff}");

    // `generate --adapter` greedily continues as the merged model does.
    let tokenizer = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/phi3-tokenizer/tokenizer.json"))
        .find(|path| path.is_file())
        .expect("shared/phi3-tokenizer/tokenizer.json in an ancestor folder");
    let generate = |model: &Path, adapter: Option<&Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mimir-train"));
        cmd.arg("generate").arg("--model").arg(model);
        cmd.arg("--tokenizer").arg(&tokenizer);
        if let Some(dir) = adapter {
            cmd.arg("--adapter").arg(dir);
        }
        cmd.args([
            "--tokens",
            "1,15043,3186",
            "--max-new-tokens",
            "6",
            "--ignore-eos",
        ]);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["tokens"].clone()
    };
    let base = f.files.gguf(GgufType::F32).unwrap();
    let adapted = generate(base, Some(adapter_dir));
    assert_eq!(adapted, generate(&f.merged[&GgufType::F32], None));
    // The tiny adapter nudges the logits without changing this short greedy reply, so prove
    // that `generate` applies it at all with a copy scaled up a hundredfold.
    let strong = tempfile::tempdir().unwrap();
    fs::write(
        strong.path().join("adapter_config.json"),
        f.config
            .replacen("\"lora_alpha\": 8", "\"lora_alpha\": 800", 1),
    )
    .unwrap();
    fs::write(strong.path().join("adapter_model.safetensors"), &f.weights).unwrap();
    assert_ne!(generate(base, Some(strong.path())), generate(base, None));

    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .args([
            "logits",
            "--tokens",
            "1",
            "--adapter",
            "/nonexistent",
            "--model",
        ])
        .arg(f.files.gguf(GgufType::F32).unwrap())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/adapter_config.json"));
}
