//! Opening a Hugging Face model folder from disk (native only; the browser hands readers to
//! [`Model::from_hf`] itself).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::engine::hf::{
    shard_files, HfError, HfWeights, Shard, CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE,
};

use super::{LoadOptions, Model, ModelError};

/// The weights of the model folder `dir`: `config.json` and `model.safetensors`, or the
/// shards `model.safetensors.index.json` lists. Shards are opened (headers checked), not read.
pub fn open_hf_dir(dir: &Path) -> Result<HfWeights<BufReader<File>>, ModelError> {
    let config_path = dir.join(CONFIG_FILE);
    let config = read_text(&config_path)?;
    let index_path = dir.join(INDEX_FILE);
    let files = if index_path.is_file() {
        shard_files(&read_text(&index_path)?, &index_path.display().to_string())?
    } else {
        vec![WEIGHTS_FILE.to_string()]
    };
    let mut shards = Vec::with_capacity(files.len());
    for name in files {
        let path = dir.join(name);
        let shown = path.display().to_string();
        let file = File::open(&path).map_err(|source| HfError::Io {
            file: shown.clone(),
            what: "opening the shard".to_string(),
            source,
        })?;
        shards.push(Shard::open(BufReader::new(file), &shown)?);
    }
    HfWeights::new(&config, &config_path.display().to_string(), shards)
}

fn read_text(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|source| {
        HfError::Io {
            file: path.display().to_string(),
            what: "reading".to_string(),
            source,
        }
        .into()
    })
}

impl Model {
    /// Loads the Hugging Face model folder `dir` (see [`open_hf_dir`] and [`Model::from_hf`]).
    pub fn from_hf_dir(dir: &Path, options: &LoadOptions) -> Result<Self, ModelError> {
        Self::from_hf(&mut open_hf_dir(dir)?, options)
    }
}
