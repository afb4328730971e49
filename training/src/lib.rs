//! Mimir's native tools: the local Hugging Face-style hub used in development and tests,
//! and (as they land) dataset acquisition, LoRA fine-tuning, evaluation and export.

mod atomic_file;
pub mod config;
pub mod convert;
pub mod data;
pub mod eval;
pub mod eval_actions;
pub mod export;
pub mod hub;
pub mod session;
pub mod tiny;
pub mod train;

/// Starts the thread pool the engine's matmuls split across, with as many threads as candle's
/// own operations use (`RAYON_NUM_THREADS`, or every core); returns that count. The matmuls
/// give the same bits on any count.
pub fn start_kernel_threads() -> Result<usize, mimir_kernels::pool::PoolError> {
    let threads = candle_core::utils::get_num_threads();
    if threads > 1 {
        mimir_kernels::pool::start_native(threads)?;
    }
    Ok(threads)
}
