//! `convert`: a tiny HF folder converted to GGUF gives the folder's logits (F32) and argmax
//! (Q8_0), and with the adapter merged equals the generator's own merged GGUF.

use std::fs::File;
use std::io::BufReader;
use std::process::Command;

use mimir::engine::gguf::GgufFile;
use mimir::engine::lora::Adapter;
use mimir::engine::model::Model;
use mimir::engine::tokenizer::{GgufVocab, Tokenizer};
use mimir_train::convert::{convert, requantize_gguf};
use mimir_train::tiny::{write_merged_gguf, write_tiny, GgufType, TinyFiles, TinySpec};

mod support;

use support::{argmaxes, gguf_logits, max_abs_diff, options, TOKENS};

fn adapter(files: &TinyFiles) -> Adapter {
    let config = std::fs::read_to_string(&files.adapter_config).unwrap();
    let weights = std::fs::read(&files.adapter_weights).unwrap();
    Adapter::from_peft(&config, &weights, "tiny adapter").unwrap()
}

fn check(spec: &TinySpec) {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(spec, dir.path(), None).unwrap();
    let hf = files.hf_config.parent().unwrap();
    let mut folder_model = Model::from_hf_dir(hf, &options()).unwrap();
    let folder: Vec<Vec<f32>> = folder_model
        .forward(&TOKENS, true)
        .unwrap()
        .to_vec2()
        .unwrap();

    let f32_out = dir.path().join("converted-f32.gguf");
    convert(hf, None, GgufType::F32, &f32_out).unwrap();
    let diff = max_abs_diff(&gguf_logits(&f32_out), &folder);
    assert!(
        diff <= 1e-4,
        "{:?}: F32 conversion differs by {diff}",
        spec.arch
    );
    // The conversion is the generator's own F32 GGUF, tensor for tensor.
    let ours = GgufFile::read(&mut BufReader::new(File::open(&f32_out).unwrap()), "ours").unwrap();
    let reference = files.gguf(GgufType::F32).unwrap();
    let theirs =
        GgufFile::read(&mut BufReader::new(File::open(reference).unwrap()), "ref").unwrap();
    assert_eq!(
        ours.tensor_infos(),
        theirs.tensor_infos(),
        "{:?}",
        spec.arch
    );

    let q8_out = dir.path().join("converted-q8_0.gguf");
    convert(hf, None, GgufType::Q8_0, &q8_out).unwrap();
    let q8 = gguf_logits(&q8_out);
    assert_eq!(q8, gguf_logits(files.gguf(GgufType::Q8_0).unwrap()));
    let agree = argmaxes(&q8)
        .iter()
        .zip(argmaxes(&folder))
        .filter(|(a, b)| **a == *b)
        .count();
    assert!(
        agree >= TOKENS.len() - 1,
        "{:?}: Q8_0 argmax agrees at {agree} positions",
        spec.arch
    );

    let merged_out = dir.path().join("converted-merged.gguf");
    convert(hf, Some(&adapter(&files)), GgufType::F32, &merged_out).unwrap();
    let reference = dir.path().join("merged-f32.gguf");
    write_merged_gguf(spec, GgufType::F32, &reference, None).unwrap();
    let diff = max_abs_diff(&gguf_logits(&merged_out), &gguf_logits(&reference));
    assert!(
        diff <= 1e-4,
        "{:?}: merged conversion differs by {diff}",
        spec.arch
    );
    assert!(max_abs_diff(&gguf_logits(&merged_out), &folder) > 1e-3);
}

#[test]
fn phi3_conversions_match() {
    check(&TinySpec::phi3());
}

#[test]
fn llama_conversions_match() {
    check(&TinySpec::llama());
}

#[test]
fn cli_converts_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(&TinySpec::llama(), dir.path(), None).unwrap();
    let hf = files.hf_config.parent().unwrap();
    let out = dir.path().join("cli.gguf");
    let status = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .args(["convert", "--quant", "q4_k", "--model"])
        .arg(hf)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(out.is_file());
    assert!(!dir.path().join("cli.gguf.part").exists());
    assert_eq!(gguf_logits(&out).len(), TOKENS.len());

    let missing = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .args(["convert", "--model"])
        .arg(dir.path().join("nowhere"))
        .arg("--out")
        .arg(dir.path().join("none.gguf"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("nowhere/config.json"), "{stderr}");
    assert!(!dir.path().join("none.gguf").exists());
}

/// The shared Phi-3 vocabulary GGUF (its `tokenizer.*` keys go into the tiny GGUFs).
fn phi3_vocab() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/phi3-tokenizer/ggml-vocab-phi-3.gguf")
}

#[test]
fn requantizing_a_gguf_equals_the_generators_file_and_keeps_the_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = phi3_vocab();
    let spec = TinySpec::phi3();
    let files = write_tiny(&spec, dir.path(), Some(&vocab)).unwrap();

    // F32 → Q8_0 quantizes the same f32 weights the generator quantized: the same file, byte
    // for byte, tokenizer and chat template included; only `general.file_type` was changed.
    let q8_out = dir.path().join("requantized-q8_0.gguf");
    requantize_gguf(files.gguf(GgufType::F32).unwrap(), GgufType::Q8_0, &q8_out).unwrap();
    let expected = std::fs::read(files.gguf(GgufType::Q8_0).unwrap()).unwrap();
    assert!(std::fs::read(&q8_out).unwrap() == expected);
    let read = |path: &std::path::Path| {
        GgufFile::read(&mut BufReader::new(File::open(path).unwrap()), "out").unwrap()
    };
    let out = read(&q8_out);
    assert!(out.get("tokenizer.ggml.tokens").is_some());
    assert!(out.get("tokenizer.ggml.model").is_some());

    // Tensors already in the target type are copied; vectors keep their type.
    let again = dir.path().join("again-q8_0.gguf");
    requantize_gguf(&q8_out, GgufType::Q8_0, &again).unwrap();
    assert!(std::fs::read(&again).unwrap() == expected);

    // Q4_0 → Q8_0: every matrix becomes Q8_0, norms stay F32, the model still runs and
    // agrees with its source on the argmax.
    let q4_source = files.gguf(GgufType::Q4_0).unwrap();
    let from_q4 = dir.path().join("from-q4_0.gguf");
    requantize_gguf(q4_source, GgufType::Q8_0, &from_q4).unwrap();
    let converted = read(&from_q4);
    for info in converted.tensor_infos() {
        let expected = if info.dims.len() == 2 {
            candle_core::quantized::GgmlDType::Q8_0
        } else {
            candle_core::quantized::GgmlDType::F32
        };
        assert_eq!(info.dtype, expected, "{}", info.name);
    }
    assert_eq!(
        converted.get("general.file_type"),
        Some(&mimir::engine::gguf::Value::U32(7))
    );
    assert_eq!(
        argmaxes(&gguf_logits(&from_q4)),
        argmaxes(&gguf_logits(q4_source))
    );
}

#[test]
fn requantizing_a_truncated_gguf_fails_naming_the_tensor_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(&TinySpec::llama(), dir.path(), None).unwrap();
    let bytes = std::fs::read(files.gguf(GgufType::F32).unwrap()).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let out = dir.path().join("out.gguf");
    let error = requantize_gguf(&cut, GgufType::Q8_0, &out)
        .unwrap_err()
        .to_string();
    assert!(error.contains("cut.gguf"), "{error}");
    assert!(!out.exists());
    assert!(!dir.path().join("out.gguf.part").exists());
}

/// sha256 of a file, lowercase hex.
fn sha256_hex(path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    std::io::copy(&mut File::open(path).unwrap(), &mut hasher).unwrap();
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `scripts/setup.sh` derives the bundled Q8_0 model from the fetched Q4_1 with `convert`; the
/// conversion is deterministic, so `public/catalog.json` can pin its size and sha256, and the
/// file setup wrote is exactly that file.
#[test]
fn the_bundled_q8_0_model_is_the_catalogs_compact_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalog_path = root.join("public/catalog.json");
    let catalog = mimir::catalog::Catalog::from_json(
        &std::fs::read_to_string(&catalog_path).unwrap(),
        "public/catalog.json",
    )
    .unwrap();
    let source = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        source.is_file(),
        "{} is missing: run scripts/setup.sh",
        source.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("SmolLM2-135M-Instruct.Q8_0.gguf");
    requantize_gguf(&source, GgufType::Q8_0, &fresh).unwrap();
    let shipped = root.join(&catalog.compact.url);
    for file in [&fresh, &shipped] {
        assert_eq!(
            std::fs::metadata(file).unwrap().len(),
            catalog.compact.size,
            "{}",
            file.display()
        );
        assert_eq!(
            sha256_hex(file),
            catalog.compact.sha256,
            "{}",
            file.display()
        );
    }
}

/// A tiny Phi-3 folder with the real Phi-3 `tokenizer.json` and `tokenizer_config.json`
/// beside its weights (the model has Phi-3's 32064 rows).
fn phi3_folder_with_tokenizer(dir: &std::path::Path) -> std::path::PathBuf {
    let files = write_tiny(&TinySpec::phi3(), dir, None).unwrap();
    let hf = files.hf_config.parent().unwrap().to_owned();
    let shared = phi3_vocab().parent().unwrap().to_owned();
    for name in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(shared.join(name), hf.join(name)).unwrap();
    }
    hf
}

#[test]
fn converting_a_folder_with_a_tokenizer_writes_llama_cpps_tokenizer_keys() {
    let dir = tempfile::tempdir().unwrap();
    let hf = phi3_folder_with_tokenizer(dir.path());
    let out = dir.path().join("with-tokenizer.gguf");
    let embedded = convert(&hf, None, GgufType::Q8_0, &out).unwrap();
    assert_eq!(embedded, Some(hf.join("tokenizer.json")));

    let read = |path: &std::path::Path| {
        GgufFile::read(&mut BufReader::new(File::open(path).unwrap()), "gguf").unwrap()
    };
    let (ours, theirs) = (read(&out), read(&phi3_vocab()));
    let vocab = GgufVocab::from_gguf(&ours).unwrap();
    let reference = GgufVocab::from_gguf(&theirs).unwrap();
    assert_eq!(vocab.model, "llama");
    assert_eq!(vocab.tokens, reference.tokens);
    assert_eq!(
        vocab
            .chat_template
            .as_deref()
            .map(|t| t.contains("<|assistant|>")),
        Some(true)
    );
    assert_eq!(
        (vocab.bos_id, vocab.eos_id),
        (reference.bos_id, reference.eos_id)
    );

    // The engine's tokenizer from the GGUF alone encodes a chat prompt as tokenizer.json does.
    let from_gguf = Tokenizer::from_gguf_vocab(&vocab, "with-tokenizer.gguf").unwrap();
    let json = std::fs::read(hf.join("tokenizer.json")).unwrap();
    let from_json = Tokenizer::from_json_bytes(&json, "tokenizer.json").unwrap();
    let prompt = "<|system|>\nYou are Mimir.<|end|>\n<|user|>\nWhat is 7 × 8?  Größe 🤖<|end|>\n<|assistant|>\n";
    assert_eq!(
        from_gguf.encode(prompt, true).unwrap(),
        from_json.encode(prompt, true).unwrap()
    );

    // `generate` needs no --tokenizer for it.
    let output = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .args([
            "generate",
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "3",
            "--ignore-eos",
            "--model",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        reply["tokens"].as_array().map(Vec::len),
        Some(3),
        "{stdout}"
    );
    assert!(reply["text"].is_string(), "{stdout}");
}

#[test]
fn a_tokenizer_larger_than_the_model_is_an_error_naming_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let small = TinySpec {
        vocab: 1000,
        ..TinySpec::llama()
    };
    let files = write_tiny(&small, dir.path(), None).unwrap();
    let hf = files.hf_config.parent().unwrap();
    std::fs::copy(
        phi3_vocab().parent().unwrap().join("tokenizer.json"),
        hf.join("tokenizer.json"),
    )
    .unwrap();
    let out = dir.path().join("out.gguf");
    let error = convert(hf, None, GgufType::F32, &out)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("tokenizer.json") && error.contains("rows"),
        "{error}"
    );
    assert!(!out.exists());

    std::fs::write(hf.join("tokenizer.json"), b"{\"model\": ").unwrap();
    let error = convert(hf, None, GgufType::F32, &out)
        .unwrap_err()
        .to_string();
    assert!(error.contains("tokenizer.json"), "{error}");
    assert!(!out.exists());
}
