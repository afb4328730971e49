//! The real model the native tests run against.

use std::path::PathBuf;

/// `models/SmolLM2-135M-Instruct.Q4_1.gguf`, which `scripts/setup.sh` fetches.
pub fn smollm2_path() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}
