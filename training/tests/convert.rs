//! `convert`: a tiny HF folder converted to GGUF gives the folder's logits (F32) and argmax
//! (Q8_0), and with the adapter merged equals the generator's own merged GGUF.

use std::fs::File;
use std::io::BufReader;
use std::process::Command;

use mimir::engine::gguf::GgufFile;
use mimir::engine::lora::Adapter;
use mimir::engine::model::Model;
use mimir_train::convert::convert;
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
