//! The real models the native tests run against.

use std::path::PathBuf;

/// `models/SmolLM2-135M-Instruct.Q4_1.gguf`, which `scripts/setup.sh` fetches.
pub fn smollm2_path() -> PathBuf {
    model_path("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// `models/SmolLM2-135M-Instruct.Q8_0.gguf`, the file the app bundles, which
/// `scripts/setup.sh` re-quantizes from the Q4_1.
#[allow(dead_code)] // Not every test binary that includes this module uses it.
pub fn shipped_smollm2_path() -> PathBuf {
    model_path("SmolLM2-135M-Instruct.Q8_0.gguf")
}

fn model_path(file: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(file);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}
