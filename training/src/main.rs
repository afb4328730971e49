//! `mimir-train`: Mimir's native command-line tools.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use mimir::engine::chat::{build_prompt, ChatTemplate, PromptPiece};
use mimir::engine::clock::SystemClock;
use mimir::engine::generate::Session;
use mimir::engine::generation_config::GenerationConfig;
use mimir::engine::gguf::GgufFile;
use mimir::engine::lora::Adapter;
use mimir::engine::model::{LoadOptions, Model};
use mimir::engine::tokenizer::Tokenizer;
use mimir_train::convert::convert;
use mimir_train::eval_actions as eval;
use mimir_train::hub::{load_faults, HubConfig, HubServer, Mode};
use mimir_train::tiny::{write_hub, write_tiny, GgufType, TinySpec};

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
    },
    /// Write deterministic random tiny models (HF folder, GGUFs in several types, a PEFT
    /// adapter) for tests.
    Tiny {
        /// Architecture.
        #[arg(long, value_enum)]
        arch: TinyArch,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
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
    /// with llama.cpp's tensor names and metadata.
    Convert {
        /// A Hugging Face model folder (`config.json`, safetensors).
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
        /// The system message for `--prompt`.
        #[arg(long, default_value = "You are Mimir, a tutoring assistant.")]
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

#[derive(Clone, Copy, ValueEnum)]
enum TinyArch {
    Phi3,
    Llama,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Hub { root, port, faults } => {
            let mut config = HubConfig::new(root);
            config.port = port;
            if let Some(file) = faults {
                config.faults = load_faults(&file)?;
            }
            serve(config)
        }
        Command::Static { root, port } => {
            let mut config = HubConfig::new(root);
            config.port = port;
            config.mode = Mode::Static;
            serve(config)
        }
        Command::Tiny { arch, out, seed } => {
            let mut spec = match arch {
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
            let quant = match quant {
                Quant::F32 => GgufType::F32,
                Quant::F16 => GgufType::F16,
                Quant::Q8_0 => GgufType::Q8_0,
                Quant::Q4K => GgufType::Q4K,
            };
            convert(&model, adapter.as_ref(), quant, &out)?;
            println!("{}", out.display());
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
    let examples = eval::read_examples(data)?;
    let mut session = eval::load_session(model, tokenizer)?;
    let report = eval::evaluate(&mut session, &examples)?;
    print!("{}", eval::render(&report));
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
