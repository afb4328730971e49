//! PEFT LoRA adapters: `adapter_config.json` plus `adapter_model.safetensors`, read from bytes
//! (so the browser can hand over what it downloaded) and checked before any model sees them.
//!
//! The model applies an adapter as an unmerged side path over its quantized weights
//! (`y = x Wᵀ + scale · (x Aᵀ) Bᵀ`); fitting the pairs to a model's layers and shapes happens
//! when the model loads (see [`LoadOptions::adapter`](crate::engine::model::LoadOptions)).

mod config;
mod error;
mod target;
mod weights;

pub use config::{AdapterConfig, TargetModules};
pub use error::LoraError;
pub use target::TargetModule;
pub use weights::LoraPair;

/// A parsed, self-consistent LoRA adapter.
#[derive(Debug, Clone)]
pub struct Adapter {
    source: String,
    config: AdapterConfig,
    pairs: Vec<LoraPair>,
}

impl Adapter {
    /// Reads an adapter from the text of `adapter_config.json` and the bytes of
    /// `adapter_model.safetensors`; `source` names it in errors (a folder or repo).
    pub fn from_peft(
        config_json: &str,
        weights: &[u8],
        source: &str,
    ) -> Result<Adapter, LoraError> {
        let config = AdapterConfig::from_json(config_json, source)?;
        let pairs = weights::read_pairs(weights, &config, source)?;
        Ok(Self {
            source: source.to_string(),
            config,
            pairs,
        })
    }

    /// The name errors use for this adapter.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The validated `adapter_config.json`.
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }

    /// The factor each update `B A` is multiplied by.
    pub fn scale(&self) -> f64 {
        self.config.scale()
    }

    /// Every A/B pair, ordered by layer, then module.
    pub fn pairs(&self) -> &[LoraPair] {
        &self.pairs
    }

    /// The pair adapting `module` of block `layer`, if the adapter has one.
    pub fn pair(&self, layer: usize, module: TargetModule) -> Option<&LoraPair> {
        self.pairs
            .iter()
            .find(|p| p.layer == layer && p.module == module)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A raw safetensors entry for the tests: dtype, shape, little-endian bytes.
    struct Raw(safetensors::Dtype, Vec<usize>, Vec<u8>);

    impl safetensors::View for &Raw {
        fn dtype(&self) -> safetensors::Dtype {
            self.0
        }
        fn shape(&self) -> &[usize] {
            &self.1
        }
        fn data(&self) -> Cow<'_, [u8]> {
            Cow::Borrowed(&self.2)
        }
        fn data_len(&self) -> usize {
            self.2.len()
        }
    }

    fn f32s(shape: &[usize], start: f32) -> Raw {
        let n: usize = shape.iter().product();
        let bytes = (0..n)
            .flat_map(|i| (start + i as f32).to_le_bytes())
            .collect();
        Raw(safetensors::Dtype::F32, shape.to_vec(), bytes)
    }

    fn key(module: &str, half: &str) -> String {
        format!("base_model.model.model.layers.0.{module}.{half}.weight")
    }

    fn file(tensors: &[(String, Raw)]) -> Vec<u8> {
        safetensors::serialize(tensors.iter().map(|(k, v)| (k.clone(), v)), None).unwrap()
    }

    const CONFIG: &str = r#"{"r": 2, "lora_alpha": 4, "target_modules": ["o_proj", "down_proj"]}"#;

    fn o_pair() -> Vec<(String, Raw)> {
        vec![
            (key("self_attn.o_proj", "lora_A"), f32s(&[2, 3], 0.0)),
            (key("self_attn.o_proj", "lora_B"), f32s(&[5, 2], 10.0)),
        ]
    }

    #[test]
    fn reads_pairs_in_every_float_type() {
        let adapter = Adapter::from_peft(CONFIG, &file(&o_pair()), "t").unwrap();
        assert_eq!(adapter.scale(), 2.0);
        let pair = adapter.pair(0, TargetModule::OProj).unwrap();
        assert_eq!(pair.a.dims(), [2, 3]);
        assert_eq!(pair.b.to_vec2::<f32>().unwrap()[4], [18.0, 19.0]);
        assert!(adapter.pair(0, TargetModule::DownProj).is_none());

        // 1.5 and -2.0 are exact in f16 and bf16
        let f16 = [0x3e00u16, 0xc000].iter().flat_map(|v| v.to_le_bytes());
        let bf16 = [0x3fc0u16, 0xc000].iter().flat_map(|v| v.to_le_bytes());
        let tensors = vec![
            (
                key("mlp.down_proj", "lora_A"),
                Raw(safetensors::Dtype::F16, vec![2, 1], f16.collect()),
            ),
            (
                key("mlp.down_proj", "lora_B"),
                Raw(safetensors::Dtype::BF16, vec![1, 2], bf16.collect()),
            ),
        ];
        let adapter = Adapter::from_peft(CONFIG, &file(&tensors), "t").unwrap();
        let pair = adapter.pair(0, TargetModule::DownProj).unwrap();
        assert_eq!(pair.a.to_vec2::<f32>().unwrap(), [[1.5], [-2.0]]);
        assert_eq!(pair.b.to_vec2::<f32>().unwrap(), [[1.5, -2.0]]);
    }

    fn error(config: &str, tensors: &[(String, Raw)]) -> String {
        Adapter::from_peft(config, &file(tensors), "bad")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn refuses_inconsistent_tensors() {
        let mut a_only = o_pair();
        a_only.pop();
        assert_eq!(
            error(CONFIG, &a_only),
            "adapter bad: tensor base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight \
             has no matching base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight"
        );
        let b_only = vec![o_pair().remove(1)];
        assert!(error(CONFIG, &b_only).contains("lora_B.weight has no matching"));

        let mut wrong_rank = o_pair();
        wrong_rank[1].1 = f32s(&[5, 3], 0.0);
        assert_eq!(
            error(CONFIG, &wrong_rank),
            "adapter bad: tensor base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight: \
             shape [5, 3] has rank 3 but adapter_config.json says r = 2"
        );

        let mut not_listed = o_pair();
        not_listed[0].0 = key("self_attn.q_proj", "lora_A");
        assert!(error(CONFIG, &not_listed).contains("module q_proj is not in target_modules"));

        let mut vector = o_pair();
        vector[0].1 = f32s(&[2], 0.0);
        assert!(error(CONFIG, &vector).contains("shape [2] is not a matrix"));

        let mut ints = o_pair();
        ints[0].1 = Raw(safetensors::Dtype::I32, vec![2, 3], vec![0; 24]);
        assert!(error(CONFIG, &ints).contains("lora_A.weight: dtype I32 is not supported"));

        let mut unknown = o_pair();
        unknown[0].0 = "base_model.model.lm_head.lora_A.weight".into();
        assert!(error(CONFIG, &unknown).contains("not a PEFT LoRA key of a decoder layer"));

        assert!(error(CONFIG, &[]).contains("holds no lora_A / lora_B tensors"));
    }

    #[test]
    fn refuses_truncated_files_without_panicking() {
        let bytes = file(&o_pair());
        for len in 0..bytes.len() {
            let err = Adapter::from_peft(CONFIG, &bytes[..len], "cut").unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("adapter cut: adapter_model.safetensors: "),
                "{len}: {err}"
            );
        }
    }
}
