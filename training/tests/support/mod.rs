//! Helpers shared by the model tests: the token ids they run, load options, logits of a GGUF
//! file and comparisons. Each test crate uses a subset.
#![allow(dead_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use mimir::engine::gguf::GgufFile;
use mimir::engine::model::{LoadOptions, Model};

/// `<s>` and a few ordinary tokens.
pub const TOKENS: [u32; 5] = [1, 15043, 3186, 29892, 920];

/// A small context: the tests run a handful of positions.
pub fn options() -> LoadOptions {
    LoadOptions {
        context_cap: 64,
        ..LoadOptions::default()
    }
}

/// Logits at every position of [`TOKENS`] for the GGUF at `path`.
pub fn gguf_logits(path: &Path) -> Vec<Vec<f32>> {
    let mut reader = BufReader::new(File::open(path).unwrap());
    let file = GgufFile::read(&mut reader, &path.display().to_string()).unwrap();
    let mut model = Model::from_gguf(&file, &mut reader, &options()).unwrap();
    model.forward(&TOKENS, true).unwrap().to_vec2().unwrap()
}

/// Largest absolute difference between two logit matrices of the same shape.
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The index of the largest value.
pub fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap()
}

/// The argmax of every row.
pub fn argmaxes(logits: &[Vec<f32>]) -> Vec<usize> {
    logits.iter().map(|row| argmax(row)).collect()
}

/// Finds `shared/phi3-tokenizer/ggml-vocab-phi-3.gguf` in an ancestor of the crate.
pub fn vocab_gguf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/phi3-tokenizer/ggml-vocab-phi-3.gguf"))
        .find(|path| path.is_file())
        .expect("shared/phi3-tokenizer/ggml-vocab-phi-3.gguf in an ancestor folder")
}
