//! Resumable checkpoints: the LoRA matrices, AdamW's moments and the step count in one
//! safetensors file, written atomically, so an interrupted run continues exactly where the
//! last checkpoint left it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Device;

use super::error::TrainError;
use super::lora::LoraSet;
use super::optim::AdamW;
use super::tensor_file::{read_tensors, tensors_bytes, TensorFile};
use crate::atomic_file::write_atomically;

/// The checkpoint's file name inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Optimiser steps completed.
    pub step: usize,
}

fn moment_key(kind: &str, index: usize) -> String {
    format!("optimizer.{kind}.{index}")
}

impl Checkpoint {
    /// The checkpoint file of the run folder `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CHECKPOINT_FILE)
    }

    /// Writes `lora` and `optim` at this step to `dir`'s checkpoint, atomically.
    pub fn save(&self, dir: &Path, lora: &LoraSet, optim: &AdamW) -> Result<(), TrainError> {
        let path = Self::path(dir);
        let mut tensors = lora.named_tensors();
        for (i, (m, v)) in optim.m.iter().zip(&optim.v).enumerate() {
            tensors.push((moment_key("m", i), m.clone()));
            tensors.push((moment_key("v", i), v.clone()));
        }
        let metadata = HashMap::from([
            ("step".to_owned(), self.step.to_string()),
            ("optimizer.step".to_owned(), optim.step.to_string()),
        ]);
        let bytes = tensors_bytes(&tensors, metadata, &path)?;
        write_atomically(
            &path,
            |p, doing, e| TrainError::io(p, doing, e),
            |w| {
                std::io::Write::write_all(w, &bytes)
                    .map_err(|e| TrainError::io(&path, "writing", e))
            },
        )
    }

    /// Reads `dir`'s checkpoint into `lora` and `optim` (which must be shaped for the same
    /// run) and returns where it stood.
    pub fn load(
        dir: &Path,
        lora: &LoraSet,
        optim: &mut AdamW,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, "reading", e))?;
        let TensorFile {
            mut tensors,
            metadata,
        } = read_tensors(&bytes, &path, device)?;
        lora.load(&tensors, &path)?;
        let number = |key: &str| -> Result<usize, TrainError> {
            metadata
                .get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| TrainError::invalid(&path, format!("metadata {key} is missing")))
        };
        for i in 0..optim.m.len() {
            for (kind, slot) in [("m", &mut optim.m[i]), ("v", &mut optim.v[i])] {
                let key = moment_key(kind, i);
                let value = tensors.remove(&key).ok_or_else(|| {
                    TrainError::invalid(&path, format!("tensor {key} is missing"))
                })?;
                if value.dims() != slot.dims() {
                    return Err(TrainError::invalid(
                        &path,
                        format!(
                            "tensor {key}: shape {:?}, expected {:?}",
                            value.dims(),
                            slot.dims()
                        ),
                    ));
                }
                *slot = value;
            }
        }
        optim.step = number("optimizer.step")?;
        Ok(Self {
            step: number("step")?,
        })
    }

    /// Reads only the LoRA matrices of `dir`'s checkpoint into `lora` (for export).
    pub fn load_lora(dir: &Path, lora: &LoraSet, device: &Device) -> Result<Self, TrainError> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, "reading", e))?;
        let TensorFile { tensors, metadata } = read_tensors(&bytes, &path, device)?;
        lora.load(&tensors, &path)?;
        let step = metadata
            .get("step")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| TrainError::invalid(&path, "metadata step is missing"))?;
        Ok(Self { step })
    }
}
