//! `mimir-train`: Mimir's native command-line tools.

mod cli;

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use mimir::conversation::DEFAULT_SYSTEM_PROMPT;
use mimir::engine::chat::{build_prompt, ChatTemplate, PromptPiece};
use mimir::engine::clock::SystemClock;
use mimir::engine::generate::Session;
use mimir::engine::generation_config::GenerationConfig;
use mimir::engine::gguf::GgufFile;
use mimir::engine::lora::Adapter;
use mimir::engine::model::{LoadOptions, Model};
use mimir::engine::tokenizer::Tokenizer;
use mimir_train::config::ModelConfig as TrainModelConfig;
use mimir_train::config::{ServerConfig, SERVER_CONFIG};
use mimir_train::convert::{convert, requantize_gguf};
use mimir_train::eval_actions;
use mimir_train::export::{export_adapter, export_merged_gguf};
use mimir_train::hub::{
    load_faults, parse_header, space_headers, HubConfig, HubServer, Mode, STATIC_SPACE_HEADERS,
};
use mimir_train::tiny::{write_full_size_gguf, write_hub, write_tiny, GgufType, TinySpec};
use mimir_train::train::{finetune, FinetuneOptions};

#[derive(Parser)]
#[command(name = "mimir-train", version, about = "Mimir's native tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a folder as the Hugging Face Hub does (`/{owner}/{repo}/resolve/{rev}/{path}`),
    /// on 127.0.0.1 only, with optional fault injection.
    Hub {
        /// Folder holding `{owner}/{repo}/{files}`.
        #[arg(long)]
        root: PathBuf,
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8081)]
        port: u16,
        /// JSON file with faults to inject: `{"faults": [{"path": "...", "status": 500}]}`.
        #[arg(long)]
        faults: Option<PathBuf>,
    },
    /// Serve a built app folder with the headers a static Hugging Face Space sends
    /// (COOP/COEP/CORP), on 127.0.0.1 only.
    Static {
        /// The folder to serve (`dist/` or `space/`).
        #[arg(long)]
        root: PathBuf,
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Send the `custom_headers` of this Space README's front matter instead of the
        /// default COOP/COEP pair.
        #[arg(long)]
        space_readme: Option<PathBuf>,
        /// One more header for every answer, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// Write deterministic random tiny models (HF folder, GGUFs in several types, a PEFT
    /// adapter) for tests.
    Tiny {
        /// Architecture.
        #[arg(long, value_enum, required_unless_present = "shape")]
        arch: Option<TinyArch>,
        /// Instead of a tiny model: one GGUF file with a real model's exact shapes and random
        /// weights, written one tensor at a time (`phi3-mini`: ~2.4 GB in Q4_K_M).
        #[arg(long, value_enum, conflicts_with = "arch", requires = "quant")]
        shape: Option<Shape>,
        /// The full-size model's tensor types (with `--shape`).
        #[arg(long, value_enum)]
        quant: Option<ShapeQuant>,
        /// Output folder (the GGUF file with `--shape`).
        #[arg(long)]
        out: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Rewrite `server_config.json` from every `<dir>/<model>/model_config.json`.
    Configs {
        /// The configs folder (`training/configs`).
        #[arg(long, default_value = "training/configs")]
        dir: PathBuf,
    },
    /// Fill a local hub folder with tiny stand-ins for the catalog's repositories.
    HubData {
        /// The hub root (`hub-data/`).
        #[arg(long)]
        root: PathBuf,
    },
    /// Print `{"argmax_all": [...], "last_logits": [...]}` for a token sequence.
    Logits {
        /// A GGUF model file or a Hugging Face model folder.
        #[arg(long)]
        model: PathBuf,
        /// A PEFT LoRA adapter folder (`adapter_config.json`, `adapter_model.safetensors`).
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// Comma-separated token ids.
        #[arg(long, value_delimiter = ',', required = true)]
        tokens: Vec<u32>,
    },
    /// Convert a Hugging Face model folder (and optionally a PEFT adapter, merged) to a GGUF
    /// with llama.cpp's tensor names and metadata, or re-quantize a GGUF (metadata kept).
    Convert {
        /// A Hugging Face model folder (`config.json`, safetensors), or a GGUF file.
        #[arg(long)]
        model: PathBuf,
        /// A PEFT LoRA adapter folder, merged into the weights.
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// Tensor type of the matrices (norms stay F32).
        #[arg(long, value_enum, default_value_t = Quant::F16)]
        quant: Quant,
        /// The GGUF file to write (atomically).
        #[arg(long)]
        out: PathBuf,
    },
    /// LoRA fine-tuning of a GGUF or Hugging Face model on normalised JSONL examples.
    Finetune {
        /// The model's `model_config.json` (its `training` section is used).
        #[arg(long)]
        config: PathBuf,
        /// A GGUF model file or a Hugging Face model folder (the frozen base).
        #[arg(long)]
        model: PathBuf,
        /// A `tokenizer.json` (default: the GGUF's vocabulary or the folder's own).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Training examples (normalised JSONL).
        #[arg(long)]
        train: PathBuf,
        /// Eval examples (default: `eval_fraction` of --train held out).
        #[arg(long)]
        eval: Option<PathBuf>,
        /// The run folder (checkpoint, metrics.jsonl, loss.svg, run.json).
        #[arg(long)]
        out: PathBuf,
        /// Continue the run in --out from its checkpoint.
        #[arg(long)]
        resume: bool,
        /// Stop after this many optimiser steps (the schedule still plans the whole run).
        #[arg(long)]
        max_steps: Option<usize>,
        /// Also checkpoint every N steps (0: at epoch ends and at the stop only).
        #[arg(long, default_value_t = 0)]
        checkpoint_every: usize,
    },
    /// Export a fine-tuning run: a PEFT adapter folder and/or a merged quantized GGUF.
    Export {
        /// The run folder `finetune --out` wrote.
        #[arg(long)]
        run: PathBuf,
        /// Write the PEFT adapter (`adapter_config.json`, `adapter_model.safetensors`) here.
        #[arg(long)]
        adapter_out: Option<PathBuf>,
        /// Write the base with the adapter merged in, as a GGUF, to this file.
        #[arg(long)]
        merged_gguf: Option<PathBuf>,
        /// Tensor type of the merged GGUF's matrices.
        #[arg(long, value_enum, default_value_t = Quant::Q8_0)]
        quant: Quant,
    },
    /// Generate and print `{"tokens": [...], "text": "..."}`.
    Generate {
        /// A GGUF model file or a Hugging Face model folder.
        #[arg(long)]
        model: PathBuf,
        /// A PEFT LoRA adapter folder (`adapter_config.json`, `adapter_model.safetensors`).
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// A `tokenizer.json` (default: the GGUF's own vocabulary).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Prompt token ids, used as they are.
        #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
        tokens: Option<Vec<u32>>,
        /// A student message, rendered with the model's chat template.
        #[arg(long)]
        prompt: Option<String>,
        /// The system message for `--prompt` (default: the app's).
        #[arg(long, default_value = DEFAULT_SYSTEM_PROMPT, hide_default_value = true)]
        system: String,
        /// Most tokens to generate.
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// Sampling temperature (0 = greedy).
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Top-k (0 = off).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Top-p (1 = off).
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        /// Sampling seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Keep going past end-of-turn tokens.
        #[arg(long)]
        ignore_eos: bool,
    },
    /// Build training JSONL (train/eval split) from Mimir CSVs, JSONL files, URLs and
    /// synthetic turns.
    Data(cli::data::DataArgs),
    /// Answer a rubric's prompts with a model and report rubric and tone-rule pass rates.
    Eval(cli::eval::EvalArgs),
    /// Classify an action-labelled set of student messages; print kind and subject
    /// accuracy and the misses as a table, then the whole report as one JSON line.
    EvalActions {
        /// A GGUF model file.
        #[arg(long)]
        model: PathBuf,
        /// A `tokenizer.json` (default: the GGUF's own vocabulary).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// JSON lines of `{"message", "kind", "subject"}`.
        #[arg(long, default_value = "training/data/actions.jsonl")]
        data: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Quant {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_k")]
    Q4K,
}

impl Quant {
    fn gguf_type(self) -> GgufType {
        match self {
            Quant::F32 => GgufType::F32,
            Quant::F16 => GgufType::F16,
            Quant::Q8_0 => GgufType::Q8_0,
            Quant::Q4K => GgufType::Q4K,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Shape {
    /// Phi-3-mini-4k-instruct: hidden 3072, 32 layers, 32 heads, ffn 8192, vocab 32064.
    Phi3Mini,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShapeQuant {
    /// llama.cpp's Q4_K_M recipe (Q4_K, Q5_K for attn_qkv, Q6_K for output and some ffn_down).
    #[value(name = "q4_k_m")]
    Q4KM,
}

#[derive(Clone, Copy, ValueEnum)]
enum TinyArch {
    Phi3,
    Llama,
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    if matches!(
        command,
        Command::Eval(_)
            | Command::EvalActions { .. }
            | Command::Generate { .. }
            | Command::Logits { .. }
    ) {
        mimir_train::start_kernel_threads()?;
    }
    match command {
        Command::Data(args) => cli::data::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Hub { root, port, faults } => {
            let mut config = HubConfig::new(root);
            config.port = port;
            if let Some(file) = faults {
                config.faults = load_faults(&file)?;
            }
            serve(config)
        }
        Command::Static {
            root,
            port,
            space_readme,
            headers,
        } => {
            let mut config = HubConfig::new(root);
            config.port = port;
            config.mode = Mode::Static;
            config.headers = match space_readme {
                Some(readme) => space_headers(&readme)?,
                None if headers.is_empty() => Vec::new(),
                None => STATIC_SPACE_HEADERS
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
            };
            for header in &headers {
                config.headers.push(parse_header(header)?);
            }
            serve(config)
        }
        Command::Tiny {
            shape: Some(Shape::Phi3Mini),
            quant: Some(ShapeQuant::Q4KM),
            out,
            seed,
            ..
        } => {
            let spec = TinySpec {
                seed,
                ..TinySpec::phi3_mini()
            };
            let vocab = shared_file("ggml-vocab-phi-3.gguf")?;
            write_full_size_gguf(&spec, &out, Some(&vocab))?;
            println!("{}", out.display());
            Ok(())
        }
        Command::Tiny {
            arch, out, seed, ..
        } => {
            let mut spec = match arch.context("--arch or --shape is required")? {
                TinyArch::Phi3 => TinySpec::phi3(),
                TinyArch::Llama => TinySpec::llama(),
            };
            spec.seed = seed;
            let files = write_tiny(&spec, &out, Some(&shared_file("ggml-vocab-phi-3.gguf")?))?;
            for path in files.paths() {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Configs { dir } => {
            let server = ServerConfig::collect(&dir)?;
            let path = dir.join(SERVER_CONFIG);
            std::fs::write(&path, server.to_json())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{}: {} models", path.display(), server.models.len());
            Ok(())
        }
        Command::HubData { root } => {
            let files = write_hub(
                &root,
                &shared_file("ggml-vocab-phi-3.gguf")?,
                &shared_file("tokenizer.json")?,
            )?;
            println!(
                "hub data in {}: {} file(s) rewritten",
                root.display(),
                files.rewritten.len()
            );
            Ok(())
        }
        Command::Convert {
            model,
            adapter,
            quant,
            out,
        } => {
            let adapter = adapter.as_deref().map(load_adapter).transpose()?;
            let quant = quant.gguf_type();
            if model.is_file() {
                if adapter.is_some() {
                    bail!("--adapter works with a model folder, not a GGUF file");
                }
                requantize_gguf(&model, quant, &out)?;
            } else {
                if convert(&model, adapter.as_ref(), quant, &out)?.is_none() {
                    eprintln!(
                        "note: {} has no tokenizer.json, so {} has no tokenizer metadata \
                         (give generate a --tokenizer)",
                        model.display(),
                        out.display()
                    );
                }
            }
            println!("{}", out.display());
            Ok(())
        }
        Command::Finetune {
            config,
            model,
            tokenizer,
            train,
            eval,
            out,
            resume,
            max_steps,
            checkpoint_every,
        } => {
            let summary = finetune(&FinetuneOptions {
                training: TrainModelConfig::load(&config)?.training,
                model,
                tokenizer,
                train,
                eval,
                out,
                resume,
                max_steps,
                checkpoint_every,
            })?;
            println!(
                "{}",
                serde_json::json!({
                    "steps": [summary.first_step, summary.last_step],
                    "first_loss": summary.losses.first(),
                    "last_loss": summary.losses.last(),
                    "eval_losses": summary.eval_losses,
                    "tokens": summary.tokens,
                    "seconds": summary.seconds,
                    "skipped_examples": summary.skipped,
                })
            );
            Ok(())
        }
        Command::Export {
            run,
            adapter_out,
            merged_gguf,
            quant,
        } => {
            if adapter_out.is_none() && merged_gguf.is_none() {
                bail!("give --adapter-out and/or --merged-gguf");
            }
            if let Some(dir) = adapter_out {
                export_adapter(&run, &dir)?;
                println!("{}", dir.display());
            }
            if let Some(file) = merged_gguf {
                export_merged_gguf(&run, &file, quant.gguf_type())?;
                println!("{}", file.display());
            }
            Ok(())
        }
        Command::Logits {
            model,
            adapter,
            tokens,
        } => {
            let options = LoadOptions {
                context_cap: tokens.len(),
                adapter: adapter.as_deref().map(load_adapter).transpose()?,
                ..LoadOptions::default()
            };
            let mut model = load_model(&model, &options)?;
            let all: Vec<Vec<f32>> = model.forward(&tokens, true)?.to_vec2()?;
            let argmax_all: Vec<usize> = all
                .iter()
                .map(|row| {
                    (0..row.len())
                        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                        .unwrap_or(0)
                })
                .collect();
            let last_logits = all.last().cloned().unwrap_or_default();
            println!(
                "{}",
                serde_json::json!({ "argmax_all": argmax_all, "last_logits": last_logits })
            );
            Ok(())
        }
        Command::EvalActions {
            model,
            tokenizer,
            data,
        } => eval_actions(&model, tokenizer.as_deref(), &data),
        Command::Generate {
            model,
            adapter,
            tokenizer,
            tokens,
            prompt,
            system,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            seed,
            ignore_eos,
        } => {
            let options = LoadOptions {
                adapter: adapter.as_deref().map(load_adapter).transpose()?,
                ..LoadOptions::default()
            };
            let mut session = if model.is_dir() {
                // A folder has no GGUF vocabulary: its own tokenizer.json unless one is given.
                let path = tokenizer.unwrap_or_else(|| model.join("tokenizer.json"));
                let tokenizer = read_tokenizer(&path)?;
                let loaded = Model::from_hf_dir(&model, &options)?;
                let template = ChatTemplate::from_gguf_template(None, loaded.config().arch.name());
                Session::new(loaded, tokenizer, template)
            } else {
                let tokenizer = tokenizer.as_deref().map(read_tokenizer).transpose()?;
                let mut reader = open(&model)?;
                Session::from_gguf(
                    &mut reader,
                    &model.display().to_string(),
                    &options,
                    tokenizer,
                )?
            };
            let ids = match (tokens, prompt) {
                (Some(ids), _) => ids,
                (None, Some(text)) => {
                    let messages = build_prompt(&system, None, &[], &text);
                    let pieces: Vec<PromptPiece> = session.template().render(&messages, true);
                    session.tokenizer().encode_prompt(&pieces, true)?
                }
                (None, None) => bail!("give --tokens or --prompt"),
            };
            let config = GenerationConfig {
                temperature,
                top_k,
                top_p,
                seed,
                max_tokens: max_new_tokens,
                repetition_penalty: 1.0,
                context_length: options.context_cap,
                ..GenerationConfig::default()
            };
            config.validate("command line")?;
            let reply = session.generate(
                &ids,
                &config,
                ignore_eos,
                &SystemClock::default(),
                &mut |_| true,
            )?;
            println!(
                "{}",
                serde_json::json!({ "tokens": reply.tokens, "text": reply.text, "stats": reply.stats })
            );
            Ok(())
        }
    }
}

/// `eval-actions`: the table for people, then the report as JSON.
fn eval_actions(model: &Path, tokenizer: Option<&Path>, data: &Path) -> anyhow::Result<()> {
    let examples = eval_actions::read_examples(data)?;
    let mut session = eval_actions::load_session(model, tokenizer)?;
    let report = eval_actions::evaluate(&mut session, &examples)?;
    print!("{}", eval_actions::render(&report));
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Reads the PEFT adapter in `dir`.
fn load_adapter(dir: &Path) -> anyhow::Result<Adapter> {
    let config_path = dir.join("adapter_config.json");
    let config = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let weights_path = dir.join("adapter_model.safetensors");
    let weights = std::fs::read(&weights_path)
        .with_context(|| format!("reading {}", weights_path.display()))?;
    Ok(Adapter::from_peft(
        &config,
        &weights,
        &dir.display().to_string(),
    )?)
}

/// A GGUF file, or a Hugging Face model folder when `path` is a directory.
fn load_model(path: &Path, options: &LoadOptions) -> anyhow::Result<Model> {
    if path.is_dir() {
        return Ok(Model::from_hf_dir(path, options)?);
    }
    let mut reader = open(path)?;
    let file = GgufFile::read(&mut reader, &path.display().to_string())?;
    Ok(Model::from_gguf(&file, &mut reader, options)?)
}

/// A `tokenizer.json`.
fn read_tokenizer(path: &Path) -> anyhow::Result<Tokenizer> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Tokenizer::from_json_bytes(
        &bytes,
        &path.display().to_string(),
    )?)
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    Ok(BufReader::new(
        File::open(path).with_context(|| format!("opening {}", path.display()))?,
    ))
}

/// A file of `../shared/phi3-tokenizer/` beside the checkout.
fn shared_file(name: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/phi3-tokenizer")
        .join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: the checkout needs ../shared beside it",
            path.display()
        );
    }
    Ok(path)
}

fn serve(config: HubConfig) -> anyhow::Result<()> {
    let shown = config.root.display().to_string();
    let what = match config.mode {
        Mode::Hub => "hub",
        Mode::Static => "static app",
    };
    let server = HubServer::start(config).with_context(|| format!("starting the {what} server"))?;
    println!("{what} serving {shown} at {}", server.url());
    std::io::stdout().flush()?;
    server.run_forever();
    Ok(())
}
