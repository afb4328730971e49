//! Prefill and decode speed of Mimir's engine against candle-transformers' `quantized_llama`
//! / `quantized_phi3` on the same GGUF, measured in one run:
//! `cargo run --release -p mimir-train --bin bench -- --model FILE.gguf [--json]`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_phi3};
use clap::Parser;
use mimir::engine::generate::PROMPT_CHUNK;
use mimir::engine::gguf::GgufFile;
use mimir::engine::model::{LoadOptions, Model};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Prefill and decode tok/s: Mimir's engine vs candle-transformers"
)]
struct Args {
    /// A GGUF model (`llama` or `phi3`).
    #[arg(long)]
    model: PathBuf,
    /// Prompt length (token ids are a fixed pseudo-random sequence).
    #[arg(long, default_value_t = 200)]
    prompt_tokens: usize,
    /// Tokens decoded one at a time after the prompt (greedy).
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    /// CPU threads, for candle and Mimir's matmuls alike (sets `RAYON_NUM_THREADS`; default:
    /// all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object (for `make bench`) instead of a table.
    #[arg(long)]
    json: bool,
    /// Run Mimir's engine alone, without loading candle-transformers' (for profiling it).
    #[arg(long)]
    no_reference: bool,
}

/// Seconds spent loading, on prefill (the first token's logits) and on decoding.
struct Timing {
    load_s: f64,
    prefill_s: f64,
    decode_s: f64,
}

/// A model under test: runs `ids` at `position` and returns the last position's logits.
trait Runner {
    fn step(&mut self, ids: &[u32], position: usize) -> anyhow::Result<Tensor>;
}

struct Ours(Model);

impl Runner for Ours {
    fn step(&mut self, ids: &[u32], _position: usize) -> anyhow::Result<Tensor> {
        // A prompt in the runs a chat session takes.
        Ok(self.0.forward_chunked(ids, PROMPT_CHUNK)?)
    }
}

enum Reference {
    Llama(quantized_llama::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
}

impl Runner for Reference {
    fn step(&mut self, ids: &[u32], position: usize) -> anyhow::Result<Tensor> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
        let logits = match self {
            Reference::Llama(m) => m.forward(&input, position)?,
            Reference::Phi3(m) => m.forward(&input, position)?,
        };
        Ok(logits.squeeze(0)?)
    }
}

fn run(
    runner: &mut dyn Runner,
    load_s: f64,
    prompt: &[u32],
    decode: usize,
) -> anyhow::Result<Timing> {
    let start = Instant::now();
    let mut logits = runner.step(prompt, 0)?;
    let mut next = logits.argmax(0)?.to_scalar::<u32>()?;
    let prefill_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..decode {
        logits = runner.step(&[next], prompt.len() + i)?;
        next = logits.argmax(0)?.to_scalar::<u32>()?;
    }
    Ok(Timing {
        load_s,
        prefill_s,
        decode_s: start.elapsed().as_secs_f64(),
    })
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    Ok(BufReader::new(
        File::open(path).with_context(|| format!("opening {}", path.display()))?,
    ))
}

/// candle-transformers' model for the file's architecture.
fn load_reference(path: &Path, shown: &str, arch: &str) -> anyhow::Result<Reference> {
    let mut reader = open(path)?;
    let content = gguf_file::Content::read(&mut reader).with_context(|| shown.to_string())?;
    Ok(match arch {
        "llama" => Reference::Llama(quantized_llama::ModelWeights::from_gguf(
            content,
            &mut reader,
            &Device::Cpu,
        )?),
        _ => Reference::Phi3(quantized_phi3::ModelWeights::from_gguf(
            false,
            content,
            &mut reader,
            &Device::Cpu,
        )?),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(threads) = args.threads {
        // Read by candle's and rayon's thread pools on first use, which is below.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let threads = mimir_train::start_kernel_threads()?;
    let shown = args.model.display().to_string();
    let context = args.prompt_tokens + args.decode_tokens + 1;

    let start = Instant::now();
    let mut reader = open(&args.model)?;
    let file = GgufFile::read(&mut reader, &shown)?;
    let options = LoadOptions {
        context_cap: context,
        ..LoadOptions::default()
    };
    let ours = Model::from_gguf(&file, &mut reader, &options)?;
    let ours_load_s = start.elapsed().as_secs_f64();
    if ours.context_length() < context {
        bail!(
            "{shown}: {context} positions needed, the model holds {}",
            ours.context_length()
        );
    }
    let vocab = ours.config().vocab as u64;
    let arch = ours.config().arch.name();
    // A fixed pseudo-random prompt away from the special tokens at both ends of the vocab.
    let prompt: Vec<u32> = (0..args.prompt_tokens as u64)
        .map(|i| (100 + (i * 7919 + 13) % (vocab - 200)) as u32)
        .collect();

    let mut ours = Ours(ours);
    let mut engines = vec![(
        "mimir",
        run(&mut ours, ours_load_s, &prompt, args.decode_tokens)?,
    )];
    drop(ours);
    if !args.no_reference {
        let start = Instant::now();
        let mut reference = load_reference(&args.model, &shown, arch)?;
        let load_s = start.elapsed().as_secs_f64();
        let t = run(&mut reference, load_s, &prompt, args.decode_tokens)?;
        engines.push(("candle-transformers", t));
    }
    if args.json {
        let engines: Vec<serde_json::Value> = engines
            .iter()
            .map(|(name, t)| {
                serde_json::json!({
                    "engine": name,
                    "load_ms": t.load_s * 1e3,
                    "ttft_ms": t.prefill_s * 1e3,
                    "prefill_tok_s": args.prompt_tokens as f64 / t.prefill_s,
                    "decode_tok_s": args.decode_tokens as f64 / t.decode_s,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "model": shown,
                "arch": arch,
                "vocab": vocab,
                "threads": threads,
                "prompt_tokens": args.prompt_tokens,
                "decode_tokens": args.decode_tokens,
                "prompt": prompt,
                "engines": engines,
            })
        );
        return Ok(());
    }
    println!(
        "{shown} ({arch}), {} prompt tokens, {} decoded, {threads} thread(s)",
        args.prompt_tokens, args.decode_tokens
    );
    println!(
        "{:<22} {:>10} {:>14} {:>14}",
        "engine", "load ms", "prefill tok/s", "decode tok/s"
    );
    for (name, t) in &engines {
        println!(
            "{name:<22} {:>10.0} {:>14.1} {:>14.1}",
            t.load_s * 1e3,
            args.prompt_tokens as f64 / t.prefill_s,
            args.decode_tokens as f64 / t.decode_s
        );
    }
    Ok(())
}
