//! `mimir-train data`: read the sources, drop duplicates and empty rows, split, write JSONL.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use mimir::conversation::DEFAULT_SYSTEM_PROMPT;
use mimir_train::data::{
    load_jsonl, load_mimir_csv, load_url, prepare, synthetic, write_jsonl, SplitOptions,
};

/// Arguments of `mimir-train data`.
#[derive(Args)]
pub struct DataArgs {
    /// A Mimir CSV (`Prompt, Model Response, Issues, Ideal Response`); repeatable.
    #[arg(long)]
    csv: Vec<PathBuf>,
    /// A JSONL file (`{"messages": [...]}` or `{"prompt", "response"}` lines); repeatable.
    #[arg(long)]
    jsonl: Vec<PathBuf>,
    /// An http(s) URL of a CSV or JSONL file; repeatable.
    #[arg(long)]
    url: Vec<String>,
    /// Number of synthetic tutoring turns to generate.
    #[arg(long, default_value_t = 0)]
    synthetic: usize,
    /// Seed of the synthetic generator.
    #[arg(long, default_value_t = 0)]
    synthetic_seed: u64,
    /// A `model_config.json` giving `training.eval_fraction` and `training.seed`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Fraction held out for evaluation (overrides the config; default 0.1).
    #[arg(long)]
    eval_fraction: Option<f64>,
    /// Seed of the split (overrides the config; default 42).
    #[arg(long)]
    seed: Option<u64>,
    /// System prompt for examples without one (default: the app's).
    #[arg(long, default_value = DEFAULT_SYSTEM_PROMPT, hide_default_value = true)]
    system: String,
    /// Output folder: `train.jsonl`, `eval.jsonl`, `summary.json`.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `mimir-train data`.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    if args.csv.is_empty() && args.jsonl.is_empty() && args.url.is_empty() && args.synthetic == 0 {
        bail!("give at least one source: --csv, --jsonl, --url or --synthetic N");
    }
    let training = super::model_config(args.config.as_deref())?.map(|c| c.training);
    let options = SplitOptions {
        eval_fraction: args
            .eval_fraction
            .or(training.as_ref().map(|t| t.eval_fraction))
            .unwrap_or(0.1),
        seed: args.seed.or(training.map(|t| t.seed)).unwrap_or(42),
    };
    let system = args.system.as_str();
    let mut sources = Vec::new();
    for path in &args.csv {
        sources.push(load_mimir_csv(path, system)?);
    }
    for path in &args.jsonl {
        sources.push(load_jsonl(path, system)?);
    }
    for url in &args.url {
        sources.push(load_url(url, system)?);
    }
    if args.synthetic > 0 {
        sources.push(synthetic(args.synthetic, args.synthetic_seed, system));
    }
    let prepared = prepare(sources, options)?;
    for row in &prepared.malformed {
        eprintln!("{row}");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_jsonl(&args.out.join("train.jsonl"), &prepared.train)?;
    write_jsonl(&args.out.join("eval.jsonl"), &prepared.eval)?;
    let summary = args.out.join("summary.json");
    let json = serde_json::to_string_pretty(&prepared.summary)? + "\n";
    std::fs::write(&summary, json).with_context(|| format!("writing {}", summary.display()))?;
    print!("{}", prepared.summary.table());
    println!(
        "split: eval_fraction {}, seed {}; wrote {}",
        options.eval_fraction,
        options.seed,
        args.out.display()
    );
    Ok(())
}
