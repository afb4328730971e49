//! `adapter_config.json`: the fields of PEFT's `LoraConfig` the engine uses, validated once.

use serde::Deserialize;
use serde_json::Value;

use super::{LoraError, TargetModule};

/// Largest `lora_alpha` taken; PEFT's adapters use a few hundred at most, and a huge scale
/// would only turn the model's output into infinities.
const MAX_ALPHA: f64 = 65536.0;

/// Which modules an adapter says it targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetModules {
    /// PEFT's `"all-linear"`: every projection of the block.
    AllLinear,
    /// The modules listed (or the one named by a plain string).
    Listed(Vec<TargetModule>),
}

impl TargetModules {
    /// Whether `module` is among the targets.
    pub fn contains(&self, module: TargetModule) -> bool {
        match self {
            Self::AllLinear => true,
            Self::Listed(modules) => modules.contains(&module),
        }
    }
}

/// The validated configuration of a LoRA adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    /// The rank `r` of every A/B pair.
    pub r: usize,
    /// `lora_alpha`; the update is scaled by `lora_alpha / r` (or `/ sqrt(r)` with rsLoRA).
    pub lora_alpha: f64,
    /// The targeted modules.
    pub target_modules: TargetModules,
    /// Rank-stabilised scaling (`lora_alpha / sqrt(r)`).
    pub use_rslora: bool,
    /// Dropout used in training; inference ignores it.
    pub lora_dropout: f64,
    /// The base model the adapter was trained on, when the file names it.
    pub base_model_name_or_path: Option<String>,
}

/// The file as PEFT writes it; every field optional so that a missing key gets its own error.
/// Keys the engine has no use for (`task_type`, `revision`, ...) are ignored.
#[derive(Deserialize)]
struct RawConfig {
    peft_type: Option<String>,
    r: Option<u64>,
    lora_alpha: Option<f64>,
    target_modules: Option<Value>,
    use_rslora: Option<bool>,
    lora_dropout: Option<f64>,
    base_model_name_or_path: Option<String>,
    fan_in_fan_out: Option<bool>,
    bias: Option<String>,
    use_dora: Option<bool>,
    modules_to_save: Option<Value>,
    rank_pattern: Option<Value>,
    alpha_pattern: Option<Value>,
    layer_replication: Option<Value>,
}

/// Whether a JSON value is absent in effect: `null`, `[]` or `{}`.
fn is_empty(value: &Option<Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

impl AdapterConfig {
    /// Parses and checks `adapter_config.json`; `adapter` names the adapter in errors.
    pub fn from_json(json: &str, adapter: &str) -> Result<Self, LoraError> {
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| LoraError::ConfigJson {
            adapter: adapter.to_string(),
            error: e.to_string(),
        })?;
        let missing = |key| LoraError::MissingKey {
            adapter: adapter.to_string(),
            key,
        };
        let invalid = |key, value: String, why: &str| LoraError::InvalidConfig {
            adapter: adapter.to_string(),
            key,
            value,
            why: why.to_string(),
        };
        let unsupported = |what: String| LoraError::Unsupported {
            adapter: adapter.to_string(),
            what,
        };

        if let Some(kind) = raw.peft_type.as_deref().filter(|k| *k != "LORA") {
            return Err(unsupported(format!("peft_type {kind:?} (LORA is)")));
        }
        if raw.fan_in_fan_out == Some(true) {
            return Err(unsupported("fan_in_fan_out true (Conv1D weights)".into()));
        }
        if let Some(bias) = raw.bias.as_deref().filter(|b| *b != "none") {
            return Err(unsupported(format!("bias {bias:?} (only \"none\" is)")));
        }
        if raw.use_dora == Some(true) {
            return Err(unsupported("use_dora true (DoRA)".into()));
        }
        for (key, value) in [
            ("modules_to_save", &raw.modules_to_save),
            ("rank_pattern", &raw.rank_pattern),
            ("alpha_pattern", &raw.alpha_pattern),
            ("layer_replication", &raw.layer_replication),
        ] {
            if !is_empty(value) {
                let shown = value.as_ref().map(Value::to_string).unwrap_or_default();
                return Err(unsupported(format!("{key} {shown}")));
            }
        }

        let r = raw.r.ok_or_else(|| missing("r"))?;
        let r = usize::try_from(r)
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| invalid("r", r.to_string(), "the rank must be positive"))?;
        let lora_alpha = raw.lora_alpha.ok_or_else(|| missing("lora_alpha"))?;
        if !(lora_alpha > 0.0 && lora_alpha <= MAX_ALPHA) {
            return Err(invalid(
                "lora_alpha",
                lora_alpha.to_string(),
                "must be in (0, 65536]",
            ));
        }
        let lora_dropout = raw.lora_dropout.unwrap_or(0.0);
        if !(0.0..1.0).contains(&lora_dropout) {
            return Err(invalid(
                "lora_dropout",
                lora_dropout.to_string(),
                "must be in [0, 1)",
            ));
        }
        let targets = raw
            .target_modules
            .ok_or_else(|| missing("target_modules"))?;
        let target_modules = parse_targets(&targets, adapter)?;
        Ok(Self {
            r,
            lora_alpha,
            target_modules,
            use_rslora: raw.use_rslora.unwrap_or(false),
            lora_dropout,
            base_model_name_or_path: raw.base_model_name_or_path,
        })
    }

    /// The factor the update `B A` is multiplied by: `lora_alpha / r`, or
    /// `lora_alpha / sqrt(r)` with rsLoRA.
    pub fn scale(&self) -> f64 {
        let r = self.r as f64;
        if self.use_rslora {
            self.lora_alpha / r.sqrt()
        } else {
            self.lora_alpha / r
        }
    }
}

/// `target_modules`: a list of module names, `"all-linear"`, or one module name. PEFT also
/// accepts a regular expression as a string; that is refused rather than guessed at.
fn parse_targets(value: &Value, adapter: &str) -> Result<TargetModules, LoraError> {
    let invalid = |why: String| LoraError::InvalidConfig {
        adapter: adapter.to_string(),
        key: "target_modules",
        value: value.to_string(),
        why,
    };
    let names: Vec<&str> = match value {
        Value::String(s) if s == "all-linear" => return Ok(TargetModules::AllLinear),
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| invalid(format!("entry {v} is not a string")))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid("must be a list of module names or a string".into())),
    };
    if names.is_empty() {
        return Err(invalid("names no module".into()));
    }
    let mut modules = Vec::with_capacity(names.len());
    for name in names {
        // PEFT matches a target against the end of the module path: `qkv_proj` or
        // `self_attn.qkv_proj`.
        let (parent, last) = match name.rsplit_once('.') {
            Some((parent, last)) => (Some(parent), last),
            None => (None, name),
        };
        let module = TargetModule::from_peft_name(last)
            .filter(|m| parent.is_none_or(|p| p == m.parent()))
            .ok_or_else(|| {
                let known: Vec<&str> = TargetModule::ALL.iter().map(|m| m.peft_name()).collect();
                invalid(format!(
                    "unknown target module {name:?} (known: {})",
                    known.join(", ")
                ))
            })?;
        if !modules.contains(&module) {
            modules.push(module);
        }
    }
    Ok(TargetModules::Listed(modules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AdapterConfig, LoraError> {
        AdapterConfig::from_json(json, "test")
    }

    #[test]
    fn reads_what_peft_writes() {
        let config = parse(
            r#"{"base_model_name_or_path": "microsoft/Phi-3-mini-4k-instruct", "bias": "none",
                "fan_in_fan_out": false, "lora_alpha": 16, "lora_dropout": 0.05,
                "modules_to_save": null, "peft_type": "LORA", "r": 8, "rank_pattern": {},
                "target_modules": ["qkv_proj", "o_proj"], "task_type": "CAUSAL_LM",
                "use_dora": false, "use_rslora": false}"#,
        )
        .unwrap();
        assert_eq!(config.r, 8);
        assert_eq!(config.scale(), 2.0);
        assert_eq!(
            config.target_modules,
            TargetModules::Listed(vec![TargetModule::QkvProj, TargetModule::OProj])
        );
        assert_eq!(
            config.base_model_name_or_path.as_deref(),
            Some("microsoft/Phi-3-mini-4k-instruct")
        );
        assert_eq!(config.lora_dropout, 0.05);
    }

    #[test]
    fn rslora_scales_by_the_square_root_of_r() {
        let config =
            parse(r#"{"r": 16, "lora_alpha": 8, "target_modules": "q_proj", "use_rslora": true}"#)
                .unwrap();
        assert_eq!(config.scale(), 2.0);
        assert!(config.target_modules.contains(TargetModule::QProj));
        assert!(!config.target_modules.contains(TargetModule::KProj));
    }

    #[test]
    fn accepts_all_linear_and_qualified_names() {
        let all = parse(r#"{"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}"#).unwrap();
        assert!(all.target_modules.contains(TargetModule::DownProj));
        let qualified =
            parse(r#"{"r": 4, "lora_alpha": 8, "target_modules": ["mlp.down_proj", "down_proj"]}"#)
                .unwrap();
        assert_eq!(
            qualified.target_modules,
            TargetModules::Listed(vec![TargetModule::DownProj])
        );
    }

    #[test]
    fn refuses_what_it_does_not_implement() {
        let cases = [
            (r#"{"r": 4, "lora_alpha": 8"#, "adapter_config.json: EOF"),
            (
                r#"{"r": "4", "lora_alpha": 8, "target_modules": []}"#,
                "invalid type",
            ),
            (
                r#"{"lora_alpha": 8, "target_modules": ["o_proj"]}"#,
                "no \"r\"",
            ),
            (
                r#"{"r": 4, "target_modules": ["o_proj"]}"#,
                "no \"lora_alpha\"",
            ),
            (r#"{"r": 4, "lora_alpha": 8}"#, "no \"target_modules\""),
            (
                r#"{"r": 0, "lora_alpha": 8, "target_modules": ["o_proj"]}"#,
                "r 0",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": []}"#,
                "names no module",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["wq"]}"#,
                "unknown target module \"wq\"",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["mlp.o_proj"]}"#,
                "unknown target module \"mlp.o_proj\"",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ".*proj"}"#,
                "unknown target module",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["o_proj"], "fan_in_fan_out": true}"#,
                "fan_in_fan_out true (Conv1D weights) is not supported",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["o_proj"], "bias": "all"}"#,
                "bias \"all\"",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["o_proj"], "use_dora": true}"#,
                "DoRA",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["o_proj"], "rank_pattern": {"o_proj": 8}}"#,
                "rank_pattern {\"o_proj\":8}",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["o_proj"], "peft_type": "IA3"}"#,
                "peft_type \"IA3\"",
            ),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["o_proj"], "lora_dropout": 1.5}"#,
                "lora_dropout 1.5",
            ),
        ];
        for (json, expected) in cases {
            let err = parse(json).unwrap_err().to_string();
            assert!(err.starts_with("adapter test: "), "{json}: {err}");
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
