//! The run's LoRA matrices as a PEFT adapter: `adapter_config.json` and
//! `adapter_model.safetensors` with PEFT's key names, as `peft` writes them and the engine's
//! `Adapter::from_peft` reads them.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Device;
use mimir::engine::lora::Adapter;
use serde_json::json;

use super::ExportError;
use crate::atomic_file::write_atomically;
use crate::config::LoraSettings;
use crate::train::{read_tensors, tensors_bytes, Checkpoint, RunInfo};

/// The adapter's configuration file name.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The adapter's weights file name.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// `adapter_config.json` for `lora` on `base_model`, with the keys `peft` 0.x writes.
pub fn adapter_config_json(lora: &LoraSettings, base_model: &str) -> String {
    // PEFT writes an integral alpha as an integer.
    let alpha = if lora.alpha.fract() == 0.0 && lora.alpha.abs() < 1e15 {
        json!(lora.alpha as i64)
    } else {
        json!(lora.alpha)
    };
    let config = json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": alpha,
        "lora_dropout": lora.dropout,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": lora.r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": lora.target_modules,
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": lora.use_rslora,
    });
    let mut text = serde_json::to_string_pretty(&config).expect("adapter config serialises");
    text.push('\n');
    text
}

/// The adapter files of the run in `run`: the config's text and the weights' bytes (the
/// checkpoint's LoRA matrices, f32, under their PEFT keys).
pub fn run_adapter(run: &Path) -> Result<(String, Vec<u8>), ExportError> {
    let info = RunInfo::load(run)?;
    let path = Checkpoint::path(run);
    let bytes = std::fs::read(&path).map_err(|e| ExportError::io(&path, "reading", e))?;
    let tensors = read_tensors(&bytes, &path, &Device::Cpu)?.tensors;
    let mut lora: Vec<_> = tensors
        .into_iter()
        .filter(|(name, _)| name.starts_with("base_model."))
        .collect();
    lora.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    let weights = tensors_bytes(&lora, metadata, &path)?;
    let config = adapter_config_json(&info.training.lora, &info.training.base_model);
    Ok((config, weights))
}

/// Writes the run's adapter to `out` (created if needed), each file atomically, and returns
/// it as the engine loads it (which checks it).
pub fn export_adapter(run: &Path, out: &Path) -> Result<Adapter, ExportError> {
    let (config, weights) = run_adapter(run)?;
    let adapter = Adapter::from_peft(&config, &weights, &out.display().to_string())?;
    std::fs::create_dir_all(out).map_err(|e| ExportError::io(out, "creating the folder", e))?;
    for (name, bytes) in [
        (ADAPTER_CONFIG, config.as_bytes()),
        (ADAPTER_WEIGHTS, &weights),
    ] {
        let path = out.join(name);
        write_atomically(&path, ExportError::io, |w| {
            std::io::Write::write_all(w, bytes).map_err(|e| ExportError::io(&path, "writing", e))
        })?;
    }
    Ok(adapter)
}
