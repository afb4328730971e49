//! The training loop: epochs of shuffled examples, gradient accumulation, clipping, AdamW on
//! the warmup/decay schedule, an eval loss per epoch, checkpoints, metrics and the plot.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;

use super::checkpoint::Checkpoint;
use super::encode::{encode_example, Encoded};
use super::error::{CandleContext, TrainError};
use super::lora::LoraSet;
use super::metrics::{append_metric, progress, read_metrics, write_metrics, Record};
use super::model::{Mode, TrainModel};
use super::optim::AdamW;
use super::plot::{loss_svg, PLOT_FILE};
use super::rng::Rng;
use super::run_info::RunInfo;
use super::schedule::{clip_grad_norm, LinearSchedule};
use super::weights::Base;
use crate::config::TrainingConfig;
use crate::data::Example;

/// What to fine-tune, on what, and where the run lives.
#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    /// Hyper-parameters (`model_config.json`'s `training` section).
    pub training: TrainingConfig,
    /// The base model: a GGUF file or a Hugging Face folder.
    pub model: PathBuf,
    /// A `tokenizer.json` to use instead of the model's own.
    pub tokenizer: Option<PathBuf>,
    /// Normalised JSONL to train on.
    pub train: PathBuf,
    /// Normalised JSONL to evaluate on each epoch; without it `eval_fraction` of the
    /// training examples is held out (seeded).
    pub eval: Option<PathBuf>,
    /// The run folder.
    pub out: PathBuf,
    /// Continue the run in `out` from its checkpoint.
    pub resume: bool,
    /// Stop after this many optimiser steps in all (the schedule still plans the whole run).
    pub max_steps: Option<usize>,
    /// Also checkpoint every this many steps (0: only at epoch ends and at the stop).
    pub checkpoint_every: usize,
}

/// What a call to [`finetune`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The step the call started from (0, or the checkpoint's).
    pub first_step: usize,
    /// Steps completed when it stopped.
    pub last_step: usize,
    /// Training loss of every step it ran.
    pub losses: Vec<f64>,
    /// Eval loss of every epoch it finished.
    pub eval_losses: Vec<f64>,
    /// Tokens run through the model in training steps.
    pub tokens: usize,
    /// Wall time of the steps, in seconds.
    pub seconds: f64,
    /// Examples dropped because truncation left them without a target token.
    pub skipped: usize,
}

/// Runs (or resumes) the fine-tuning described by `options`.
pub fn finetune(options: &FinetuneOptions) -> Result<RunSummary, TrainError> {
    let t = &options.training;
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, "creating the run folder", e))?;
    let device = super::device()?;
    let base = Base::load(&options.model, options.tokenizer.as_deref(), &device)?;

    let mut train_examples = Example::read_jsonl(&options.train)?;
    let eval_examples = match &options.eval {
        Some(path) => Example::read_jsonl(path)?,
        None => hold_out(&mut train_examples, t.eval_fraction, t.seed),
    };
    let mut skipped = 0;
    let mut encode_all = |examples: &[Example]| -> Result<Vec<Encoded>, TrainError> {
        let mut encoded = Vec::with_capacity(examples.len());
        for example in examples {
            let e = encode_example(example, &base.tokenizer, base.template, t.max_seq_len)?;
            if e.target_count() == 0 {
                skipped += 1;
            } else {
                encoded.push(e);
            }
        }
        Ok(encoded)
    };
    let train = encode_all(&train_examples)?;
    let eval = encode_all(&eval_examples)?;
    if train.is_empty() {
        return Err(TrainError::invalid(
            &options.train,
            "no example has an assistant token within max_seq_len",
        ));
    }

    let batches_per_epoch = train.len().div_ceil(t.batch_size);
    let steps_per_epoch = batches_per_epoch.div_ceil(t.gradient_accumulation_steps);
    let total_steps = steps_per_epoch * t.epochs;
    let info = RunInfo {
        model: options.model.clone(),
        tokenizer: options.tokenizer.clone(),
        training: t.clone(),
        arch: base.weights.config.arch.name().to_owned(),
        train_examples: train.len(),
        eval_examples: eval.len(),
        steps_per_epoch,
        total_steps,
    };
    let lora = LoraSet::init(&base.weights.config, &t.lora, t.seed, &device)?;
    let model = TrainModel::new(base.weights, lora);
    let vars = model.lora().vars();
    let mut optim = AdamW::new(&vars, t.weight_decay).context(|| "optimiser state".into())?;

    let mut records = Vec::new();
    let start = if options.resume {
        let previous = RunInfo::load(out)?;
        if previous != info {
            return Err(TrainError::invalid(
                out.join(super::RUN_FILE),
                format!("the run was started with other inputs; now: {info:?}"),
            ));
        }
        let checkpoint = Checkpoint::load(out, model.lora(), &mut optim, &device)?;
        records = read_metrics(out)?;
        records.retain(|r| r.step() <= checkpoint.step);
        write_metrics(out, &records)?;
        checkpoint.step
    } else {
        if Checkpoint::path(out).exists() {
            return Err(TrainError::invalid(
                Checkpoint::path(out),
                "a run already lives here: pass --resume or choose another --out",
            ));
        }
        info.save(out)?;
        write_metrics(out, &[])?;
        0
    };

    let schedule = LinearSchedule::new(t.learning_rate, t.warmup_ratio, total_steps);
    let end = options
        .max_steps
        .map_or(total_steps, |m| m.min(total_steps));
    let started = Instant::now();
    let mut summary = RunSummary {
        first_step: start,
        last_step: start,
        losses: Vec::new(),
        eval_losses: Vec::new(),
        tokens: 0,
        seconds: 0.0,
        skipped,
    };
    for step in start..end {
        let step_started = Instant::now();
        let epoch = step / steps_per_epoch;
        let order = epoch_order(train.len(), t.seed, epoch);
        let first_batch = (step % steps_per_epoch) * t.gradient_accumulation_steps;
        let last_batch = (first_batch + t.gradient_accumulation_steps).min(batches_per_epoch);
        let examples: Vec<&Encoded> = order
            [first_batch * t.batch_size..(last_batch * t.batch_size).min(train.len())]
            .iter()
            .map(|&i| &train[i])
            .collect();
        let targets: usize = examples.iter().map(|e| e.target_count()).sum();
        let tokens: usize = examples.iter().map(|e| e.ids.len()).sum();

        let mut rng = Rng::new(t.seed, 0xD0_0000 + step as u64);
        let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
        let mut loss_sum = 0.0;
        for example in examples {
            let (nll, _) = model.nll(example, &mut Mode::Train(&mut rng))?;
            let context = || format!("step {}: backward pass", step + 1);
            loss_sum += f64::from(nll.to_scalar::<f32>().context(context)?);
            let store = (nll / targets as f64)
                .and_then(|l| l.backward())
                .context(context)?;
            for (slot, var) in grads.iter_mut().zip(&vars) {
                if let Some(g) = store.get(var.as_tensor()) {
                    *slot = Some(match slot.take() {
                        Some(acc) => (acc + g).context(context)?,
                        None => g.clone(),
                    });
                }
            }
        }
        let mut grads: Vec<Tensor> = grads
            .into_iter()
            .zip(&vars)
            .map(|(g, var)| g.map_or_else(|| var.as_tensor().zeros_like(), Ok))
            .collect::<candle_core::Result<_>>()
            .context(|| "gradients".into())?;
        let update = || format!("step {}: optimiser update", step + 1);
        let grad_norm = clip_grad_norm(&mut grads, t.max_grad_norm).context(update)?;
        let lr = schedule.lr(step);
        optim.update(&vars, &grads, lr).context(update)?;

        let done = step + 1;
        let loss = loss_sum / targets as f64;
        let seconds = step_started.elapsed().as_secs_f64();
        let record = Record::Train {
            step: done,
            epoch: epoch + 1,
            loss,
            lr,
            grad_norm,
            tokens,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        append_metric(out, &record)?;
        progress(&record, total_steps, t.epochs, start);
        records.push(record);
        summary.losses.push(loss);
        summary.tokens += tokens;
        summary.last_step = done;

        let epoch_end = done % steps_per_epoch == 0;
        if epoch_end && !eval.is_empty() {
            let eval_loss = evaluate(&model, &eval)?;
            let record = Record::Eval {
                step: done,
                epoch: epoch + 1,
                eval_loss,
            };
            eprintln!("epoch {}: eval loss {eval_loss:.4}", epoch + 1);
            append_metric(out, &record)?;
            records.push(record);
            summary.eval_losses.push(eval_loss);
        }
        let periodic =
            options.checkpoint_every > 0 && done.is_multiple_of(options.checkpoint_every);
        if epoch_end || periodic || done == end {
            Checkpoint { step: done }.save(out, model.lora(), &optim)?;
            let path = out.join(PLOT_FILE);
            let title = format!("LoRA on {}", options.model.display());
            std::fs::write(&path, loss_svg(&records, &title))
                .map_err(|e| TrainError::io(&path, "writing", e))?;
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Mean loss per target token over `examples`, without dropout.
pub fn evaluate(model: &TrainModel, examples: &[Encoded]) -> Result<f64, TrainError> {
    let (mut sum, mut count) = (0.0, 0);
    for example in examples {
        let (nll, n) = model.nll(example, &mut Mode::Eval)?;
        sum += f64::from(nll.to_scalar::<f32>().context(|| "eval loss".into())?);
        count += n;
    }
    Ok(sum / count.max(1) as f64)
}

/// The order of the training examples in `epoch` (0-based): a seeded shuffle, so a resumed
/// run sees what the uninterrupted one would have.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed, 0xE0_0000 + epoch as u64).shuffle(&mut order);
    order
}

/// Moves a seeded `fraction` of `examples` (rounded, at least one when the fraction is
/// positive, never all) out into the returned eval split.
fn hold_out(examples: &mut Vec<Example>, fraction: f64, seed: u64) -> Vec<Example> {
    let n = examples.len();
    if fraction <= 0.0 || n < 2 {
        return Vec::new();
    }
    let count = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
    Rng::new(seed, 0x5_9117).shuffle(examples);
    examples.split_off(n - count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_out_keeps_the_seed_split_sizes() {
        let mut examples: Vec<Example> = (0..17)
            .map(|i| Example::new("", &format!("q{i}"), "a"))
            .collect();
        let eval = hold_out(&mut examples, 0.235, 42);
        assert_eq!((examples.len(), eval.len()), (13, 4));
        let mut again: Vec<Example> = (0..17)
            .map(|i| Example::new("", &format!("q{i}"), "a"))
            .collect();
        assert_eq!(hold_out(&mut again, 0.235, 42), eval);
    }
}
