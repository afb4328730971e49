//! `mimir-train eval`: answer every rubric prompt with the model and report the verdicts.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use mimir::conversation::DEFAULT_SYSTEM_PROMPT;
use mimir::engine::clock::SystemClock;
use mimir::tutor::Tutor;
use mimir_train::eval::{
    evaluate, load_rubric, parse_now, utc_now, EvalOptions, EvalReport, RunInfo, TutorPlanning,
};
use mimir_train::session::open_session;

/// Arguments of `mimir-train eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// A GGUF model file or a Hugging Face model folder.
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter folder.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// A `tokenizer.json` (default: the GGUF's own vocabulary, or the folder's file).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The rubric (`training/data/rubric_eval.jsonl`).
    #[arg(long)]
    rubric: PathBuf,
    /// The model's `model_config.json`: token cap, penalties, stop ids, tone rule settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Sample with the config's temperature, top-k, top-p and seed instead of greedy decoding.
    #[arg(long)]
    sample: bool,
    /// Override the config's token cap.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Plan each turn with Mimir's tutor first, as the app's worker does: classify the
    /// message, add the strategy snippet, call a tool and give its result as context.
    #[arg(long)]
    tutor: bool,
    /// The student's date and time for the tutor's `date_time` tool, `YYYY-MM-DDTHH:MM`
    /// (default: the system clock, in UTC).
    #[arg(long, requires = "tutor")]
    now: Option<String>,
    /// The student's locale for `date_time`.
    #[arg(long, default_value = "en", requires = "tutor")]
    locale: String,
}

/// Runs `mimir-train eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = super::model_config(args.config.as_deref())?;
    let (mut generation, tone) = config.map(|c| (c.generation, c.eval)).unwrap_or_default();
    if let Some(max_tokens) = args.max_tokens {
        generation.max_tokens = max_tokens;
    }
    let decoding = if args.sample {
        format!(
            "sampled (temperature {}, top_k {}, top_p {}, seed {})",
            generation.temperature, generation.top_k, generation.top_p, generation.seed
        )
    } else {
        generation = EvalOptions::greedy(&generation);
        "greedy".to_owned()
    };
    generation.validate("eval settings")?;
    let items = load_rubric(&args.rubric)?;
    let now = match (&args.now, args.tutor) {
        (Some(text), _) => Some(parse_now(text, &args.locale)?),
        (None, true) => Some(utc_now(&args.locale)),
        (None, false) => None,
    };
    let mut session = open_session(
        &args.model,
        args.adapter.as_deref(),
        args.tokenizer.as_deref(),
        generation.context_length,
    )
    .with_context(|| format!("opening {}", args.model.display()))?;
    let mut tutor = if let Some(now) = now {
        let tutor = Tutor::new(&mut session).context("building the tutor for the model")?;
        Some(TutorPlanning { tutor, now })
    } else {
        None
    };
    let options = EvalOptions {
        generation,
        system: DEFAULT_SYSTEM_PROMPT.to_owned(),
        tone,
    };
    let mut run = RunInfo {
        model: args.model.display().to_string(),
        adapter: args.adapter.as_ref().map(|a| a.display().to_string()),
        rubric: args.rubric.display().to_string(),
        planned: items.len(),
        decoding,
        max_tokens: options.generation.max_tokens,
        tutor_now: tutor.as_ref().map(|t| {
            format!(
                "{}T{:02}:{:02} {}",
                t.now.iso_date(),
                t.now.hour,
                t.now.minute,
                t.now.locale
            )
        }),
        seconds: 0.0,
    };
    let mut done = Vec::with_capacity(items.len());
    let mut write_error = None;
    let results = evaluate(
        &mut session,
        &items,
        &options,
        tutor.as_mut(),
        &SystemClock::default(),
        &mut |result| {
            done.push(result.clone());
            eprintln!(
                "[{}/{}] {}: {} ({} tokens, {:.1} s){}",
                done.len(),
                items.len(),
                result.id,
                if result.passed() { "pass" } else { "FAIL" },
                result.generated_tokens,
                result.seconds,
                result
                    .turn
                    .as_ref()
                    .map(|t| format!(" {}", t.summary()))
                    .unwrap_or_default()
            );
            // The report so far, so a long run cut short still leaves its verdicts.
            if let (Some(path), None) = (&args.json, &write_error) {
                run.seconds = started.elapsed().as_secs_f64();
                let partial = EvalReport::new(run.clone(), done.clone());
                write_error = std::fs::write(path, partial.to_json()).err();
            }
        },
    )?;
    if let Some(error) = write_error {
        return Err(error).context("writing the JSON report");
    }
    run.seconds = started.elapsed().as_secs_f64();
    let report = EvalReport::new(run, results);
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}
