//! LoRA fine-tuning on CPU (or a GPU with the `cuda` feature): a differentiable Llama / Phi-3
//! over frozen f32 base weights, the examples tokenised as the engine renders them, AdamW with
//! warmup and linear decay, resumable checkpoints, `metrics.jsonl` and a loss-curve SVG.
//!
//! A run folder holds `run.json` (what was trained, on what), `checkpoint.safetensors` (the
//! LoRA matrices, the optimiser's moments and the step), `metrics.jsonl` and `loss.svg`;
//! [`crate::export`] turns it into a PEFT adapter or a merged GGUF.

mod checkpoint;
mod encode;
mod error;
mod lora;
mod metrics;
mod model;
mod optim;
mod plot;
mod rng;
mod run;
mod run_info;
mod schedule;
mod tensor_file;
mod weights;

pub use checkpoint::{Checkpoint, CHECKPOINT_FILE};
pub use encode::{encode_example, Encoded};
pub use error::TrainError;
pub use lora::{arch_modules, LoraLayer, LoraSet};
pub use metrics::{Record, METRICS_FILE};
pub use model::{Mode, TrainModel};
pub use optim::AdamW;
pub use plot::{loss_svg, PLOT_FILE};
pub use rng::Rng;
pub use run::{finetune, FinetuneOptions, RunSummary};
pub use run_info::{RunInfo, RUN_FILE};
pub use schedule::{clip_grad_norm, LinearSchedule};
pub use tensor_file::{read_tensors, tensors_bytes, TensorFile};
pub use weights::{hf_layout_heads, permute_for_rope, unpermute_for_rope, Base, BaseWeights};

/// The device training runs on: the first CUDA GPU with the `cuda` feature, else the CPU.
pub fn device() -> Result<candle_core::Device, TrainError> {
    #[cfg(feature = "cuda")]
    {
        candle_core::Device::new_cuda(0)
            .map_err(|source| TrainError::candle("opening CUDA device 0", source))
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(candle_core::Device::Cpu)
    }
}
