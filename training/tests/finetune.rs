//! Fine-tuning on the tiny models: the differentiable model equals the engine (1e-4, with and
//! without an adapter, from a GGUF and from an HF folder), a LoRA run halves the training
//! loss, a resumed run ends where an uninterrupted one does, and the exports (PEFT adapter,
//! merged GGUF) reproduce the trained model in the engine.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::Device;
use mimir::engine::clock::SystemClock;
use mimir::engine::generate::Session;
use mimir::engine::generation_config::GenerationConfig;
use mimir::engine::gguf::GgufFile;
use mimir::engine::lora::Adapter;
use mimir::engine::model::{LoadOptions, Model};
use mimir_train::config::{LoraSettings, TrainingConfig};
use mimir_train::data::Example;
use mimir_train::export::{export_adapter, export_merged_gguf};
use mimir_train::tiny::{write_tiny, GgufType, TinyFiles, TinySpec};
use mimir_train::train::{
    finetune, read_tensors, BaseWeights, Checkpoint, FinetuneOptions, LoraSet, RunInfo, TensorFile,
    TrainModel,
};

mod support;

use support::{argmax, max_abs_diff, TOKENS};

/// `shared/phi3-tokenizer/ggml-vocab-phi-3.gguf` in an ancestor of the crate.
fn vocab_gguf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/phi3-tokenizer/ggml-vocab-phi-3.gguf"))
        .find(|p| p.is_file())
        .expect("shared/phi3-tokenizer/ggml-vocab-phi-3.gguf in an ancestor folder")
}

fn tiny(spec: &TinySpec, dir: &Path) -> TinyFiles {
    write_tiny(spec, dir, Some(&vocab_gguf())).unwrap()
}

fn engine(path: &Path, adapter: Option<Adapter>) -> Model {
    let options = LoadOptions {
        context_cap: 64,
        adapter,
        ..LoadOptions::default()
    };
    if path.is_dir() {
        return Model::from_hf_dir(path, &options).unwrap();
    }
    let mut reader = BufReader::new(File::open(path).unwrap());
    let file = GgufFile::read(&mut reader, &path.display().to_string()).unwrap();
    Model::from_gguf(&file, &mut reader, &options).unwrap()
}

fn engine_logits(path: &Path, adapter: Option<Adapter>, ids: &[u32]) -> Vec<Vec<f32>> {
    engine(path, adapter)
        .forward(ids, true)
        .unwrap()
        .to_vec2()
        .unwrap()
}

fn read_adapter(dir: &Path) -> Adapter {
    let config = fs::read_to_string(dir.join("adapter_config.json")).unwrap();
    let weights = fs::read(dir.join("adapter_model.safetensors")).unwrap();
    Adapter::from_peft(&config, &weights, &dir.display().to_string()).unwrap()
}

fn settings(modules: &[&str]) -> LoraSettings {
    LoraSettings {
        r: 8,
        alpha: 16.0,
        dropout: 0.05,
        target_modules: modules.iter().map(|m| m.to_string()).collect(),
        use_rslora: false,
    }
}

/// The forward pass equals the engine's on `model` (GGUF or folder), with no adapter (fresh
/// LoRA: B = 0) and with the tiny generator's non-zero adapter.
fn check_forward(files: &TinyFiles, model: &Path) {
    let weights = BaseWeights::load(model, &Device::Cpu).unwrap();
    let config = weights.config.clone();
    let modules: Vec<&str> = mimir_train::train::arch_modules(config.arch)
        .iter()
        .map(|m| m.peft_name())
        .collect();
    let fresh = LoraSet::init(&config, &settings(&modules), 1, &Device::Cpu).unwrap();
    let plain = TrainModel::new(weights, fresh);
    let ours: Vec<Vec<f32>> = plain.logits(&TOKENS).unwrap().to_vec2().unwrap();
    let reference = engine_logits(model, None, &TOKENS);
    let diff = max_abs_diff(&ours, &reference);
    assert!(
        diff < 1e-4,
        "{}: no adapter: max abs diff {diff}",
        model.display()
    );

    let adapter_dir = files.adapter_config.parent().unwrap();
    let adapter = read_adapter(adapter_dir);
    let weights = BaseWeights::load(model, &Device::Cpu).unwrap();
    let lora = LoraSet::from_adapter(&config, &adapter, &Device::Cpu).unwrap();
    let adapted = TrainModel::new(weights, lora);
    let ours: Vec<Vec<f32>> = adapted.logits(&TOKENS).unwrap().to_vec2().unwrap();
    let reference_adapted = engine_logits(model, Some(adapter), &TOKENS);
    let diff = max_abs_diff(&ours, &reference_adapted);
    assert!(
        diff < 1e-4,
        "{}: adapter: max abs diff {diff}",
        model.display()
    );
    assert!(
        max_abs_diff(&reference, &reference_adapted) > 1e-2,
        "the adapter must move the logits"
    );
}

#[test]
fn forward_equals_the_engine_on_tiny_models() {
    for spec in [TinySpec::phi3(), TinySpec::llama()] {
        let dir = tempfile::tempdir().unwrap();
        let files = tiny(&spec, dir.path());
        check_forward(&files, files.gguf(GgufType::F32).unwrap());
        check_forward(&files, files.hf_config.parent().unwrap());
    }
}

/// Four short tutoring exchanges, written as JSONL to `path`.
fn write_examples(path: &Path, count: usize) {
    let pairs = [
        ("Hello!", "Hello! I am Mimir, a tutoring assistant."),
        ("What is 2 + 2?", "2 + 2 is 4. Shall we try a harder one?"),
        ("Define a noun.", "A noun names a person, place or thing."),
        ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet."),
        (
            "What is H2O?",
            "H2O is water: two hydrogen atoms and one oxygen atom.",
        ),
        ("Name a prime.", "Seven is a prime number."),
    ];
    let lines: Vec<String> = pairs
        .iter()
        .take(count)
        .map(|(q, a)| serde_json::to_string(&Example::new("You are Mimir.", q, a)).unwrap())
        .collect();
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn training(modules: &[&str], epochs: usize) -> TrainingConfig {
    TrainingConfig {
        base_model: "tiny/llama".into(),
        lora: settings(modules),
        epochs,
        batch_size: 1,
        gradient_accumulation_steps: 2,
        learning_rate: 1e-2,
        warmup_ratio: 0.1,
        weight_decay: 0.0,
        max_grad_norm: 1.0,
        eval_fraction: 0.0,
        max_seq_len: 128,
        seed: 7,
    }
}

struct Run {
    _dir: tempfile::TempDir,
    files: TinyFiles,
    options: FinetuneOptions,
}

fn run_setup(epochs: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    // Hidden 128 rather than the tiny default 64: with the output norm capping the hidden
    // state, 64 random dimensions cannot make the target tokens likely enough to halve the loss.
    let spec = TinySpec {
        hidden: 128,
        ffn: 256,
        ..TinySpec::llama()
    };
    let files = tiny(&spec, &dir.path().join("tiny"));
    let train = dir.path().join("train.jsonl");
    write_examples(&train, 4);
    let eval = dir.path().join("eval.jsonl");
    fs::write(
        &eval,
        fs::read_to_string(&train)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned()
            + "\n",
    )
    .unwrap();
    let options = FinetuneOptions {
        training: training(
            &[
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
            epochs,
        ),
        model: files.gguf(GgufType::F32).unwrap().to_owned(),
        tokenizer: None,
        train,
        eval: Some(eval),
        out: dir.path().join("run"),
        resume: false,
        max_steps: None,
        checkpoint_every: 0,
    };
    Run {
        _dir: dir,
        files,
        options,
    }
}

/// Epochs of the loss test: 2 optimiser steps each (4 examples, accumulation 2).
const EPOCHS: usize = 20;

#[test]
fn lora_run_halves_the_training_loss_and_exports_what_it_learned() {
    let run = run_setup(EPOCHS);
    let summary = finetune(&run.options).unwrap();
    let (first, last) = (summary.losses[0], *summary.losses.last().unwrap());
    assert!(
        last <= 0.5 * first,
        "loss {first} -> {last}: {:?}",
        summary.losses
    );
    assert_eq!(summary.eval_losses.len(), EPOCHS);
    assert!(summary.eval_losses[EPOCHS - 1] < summary.eval_losses[0]);
    let out = &run.options.out;
    for file in [
        "run.json",
        "checkpoint.safetensors",
        "metrics.jsonl",
        "loss.svg",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let metrics = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics.lines().filter(|l| l.contains("\"train\"")).count(),
        2 * EPOCHS
    );

    // The exported adapter, loaded by the engine, gives the trained model's logits.
    let info = RunInfo::load(out).unwrap();
    let weights = BaseWeights::load(&info.model, &Device::Cpu).unwrap();
    let lora = LoraSet::init(&weights.config, &info.training.lora, 0, &Device::Cpu).unwrap();
    Checkpoint::load_lora(out, &lora, &Device::Cpu).unwrap();
    let trained = TrainModel::new(weights, lora);
    let ours: Vec<Vec<f32>> = trained.logits(&TOKENS).unwrap().to_vec2().unwrap();
    let adapter_dir = out.join("adapter");
    export_adapter(out, &adapter_dir).unwrap();
    let adapter = read_adapter(&adapter_dir);
    assert_eq!(
        adapter.config().base_model_name_or_path.as_deref(),
        Some("tiny/llama")
    );
    let theirs = engine_logits(&info.model, Some(adapter), &TOKENS);
    let diff = max_abs_diff(&ours, &theirs);
    assert!(diff < 1e-4, "exported adapter: max abs diff {diff}");
    let base = engine_logits(&info.model, None, &TOKENS);
    assert!(
        max_abs_diff(&base, &theirs) > 1e-2,
        "training must move the logits"
    );

    // The merged F32 GGUF generates what base + adapter generates, greedily; the merged Q8_0
    // ranks tokens as base + adapter does.
    let prompt = [1, 15043, 3186];
    let exported = read_adapter(&adapter_dir);
    let reference = greedy(&info.model, Some(exported.clone()), &prompt);
    let forced: Vec<u32> = prompt.iter().chain(&reference).copied().collect();
    let expected = engine_logits(&info.model, Some(exported), &forced);
    for quant in [GgufType::F32, GgufType::Q8_0] {
        let merged = out.join(format!("merged-{}", quant.file_name()));
        export_merged_gguf(out, &merged, quant).unwrap();
        if quant == GgufType::F32 {
            assert_eq!(greedy(&merged, None, &prompt), reference, "merged f32");
        } else {
            // Q8_0 rounds the weights (and the engine's int8 matmul the activations), and this
            // random model's logits lie close together, so a greedy run may turn off at a
            // near-tie. Teacher-forced on the reference's tokens, no logit moves by more
            // than 3 % of the largest, and the top token is the reference's at four
            // positions in five, and at the others one within 0.1 of it (here 2 of 19
            // positions differ, by 0.03 and 0.001).
            let got = engine_logits(&merged, None, &forced);
            let largest = expected.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
            let diff = max_abs_diff(&got, &expected);
            assert!(diff <= 0.03 * largest, "merged q8_0: max abs diff {diff}");
            let mut turns = 0;
            for (pos, (g, e)) in got.iter().zip(&expected).enumerate() {
                let (top, mine) = (argmax(e), argmax(g));
                if mine != top {
                    turns += 1;
                    let gap = e[top] - e[mine];
                    assert!(
                        gap < 0.1,
                        "merged q8_0, position {pos}: {mine} for {top}, {gap}"
                    );
                }
            }
            assert!(5 * turns <= forced.len(), "merged q8_0: {turns} turns");
        }
        let file =
            GgufFile::read(&mut BufReader::new(File::open(&merged).unwrap()), "merged").unwrap();
        assert!(
            file.get("tokenizer.ggml.tokens").is_some(),
            "keeps the tokenizer"
        );
    }
    drop(run.files);
}

/// 16 greedy tokens after `prompt`.
fn greedy(model: &Path, adapter: Option<Adapter>, prompt: &[u32]) -> Vec<u32> {
    let options = LoadOptions {
        context_cap: 64,
        adapter,
        ..LoadOptions::default()
    };
    let mut reader = BufReader::new(File::open(model).unwrap());
    let mut session =
        Session::from_gguf(&mut reader, &model.display().to_string(), &options, None).unwrap();
    let config = GenerationConfig {
        temperature: 0.0,
        max_tokens: 16,
        repetition_penalty: 1.0,
        context_length: 64,
        ..GenerationConfig::default()
    };
    session
        .generate(prompt, &config, true, &SystemClock::default(), &mut |_| {
            true
        })
        .unwrap()
        .tokens
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let straight = run_setup(2);
    finetune(&straight.options).unwrap();

    let split = run_setup(2);
    let first = FinetuneOptions {
        max_steps: Some(3),
        ..split.options.clone()
    };
    assert_eq!(finetune(&first).unwrap().last_step, 3);
    let again = finetune(&split.options).unwrap_err().to_string();
    assert!(again.contains("--resume"), "{again}");
    let resumed = finetune(&FinetuneOptions {
        resume: true,
        ..split.options.clone()
    })
    .unwrap();
    assert_eq!((resumed.first_step, resumed.last_step), (3, 4));

    let read = |dir: &Path| {
        let path = dir.join("checkpoint.safetensors");
        let TensorFile { tensors, metadata } =
            read_tensors(&fs::read(&path).unwrap(), &path, &Device::Cpu).unwrap();
        let mut values: Vec<(String, Vec<f32>)> = tensors
            .into_iter()
            .map(|(name, t)| (name, t.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        (values, metadata)
    };
    let (expected, expected_meta) = read(&straight.options.out);
    let (got, got_meta) = read(&split.options.out);
    assert_eq!(got_meta, expected_meta);
    assert_eq!(got.len(), expected.len());
    for ((name, a), (_, b)) in got.iter().zip(&expected) {
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff <= 1e-6, "{name}: resumed differs by {diff}");
    }
    let lines = |dir: &Path| {
        fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines(&split.options.out), lines(&straight.options.out));
}
