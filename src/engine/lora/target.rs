//! The linear layers of a decoder block an adapter can target, by their PEFT names.

use std::fmt;

/// One projection of a decoder block, named as transformers names the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetModule {
    /// Phi-3's fused query/key/value projection.
    QkvProj,
    /// Llama's query projection.
    QProj,
    /// Llama's key projection.
    KProj,
    /// Llama's value projection.
    VProj,
    /// The attention output projection (both architectures).
    OProj,
    /// Phi-3's fused gate/up projection.
    GateUpProj,
    /// Llama's gate projection.
    GateProj,
    /// Llama's up projection.
    UpProj,
    /// The MLP down projection (both architectures).
    DownProj,
}

impl TargetModule {
    /// Every module, in block order.
    pub const ALL: [TargetModule; 9] = [
        Self::QkvProj,
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateUpProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// The module's name (`qkv_proj`), as in `target_modules`.
    pub fn peft_name(self) -> &'static str {
        match self {
            Self::QkvProj => "qkv_proj",
            Self::QProj => "q_proj",
            Self::KProj => "k_proj",
            Self::VProj => "v_proj",
            Self::OProj => "o_proj",
            Self::GateUpProj => "gate_up_proj",
            Self::GateProj => "gate_proj",
            Self::UpProj => "up_proj",
            Self::DownProj => "down_proj",
        }
    }

    /// The submodule of the block that holds it (`self_attn` or `mlp`).
    pub fn parent(self) -> &'static str {
        match self {
            Self::QkvProj | Self::QProj | Self::KProj | Self::VProj | Self::OProj => "self_attn",
            Self::GateUpProj | Self::GateProj | Self::UpProj | Self::DownProj => "mlp",
        }
    }

    /// The module called `name` (`qkv_proj`), if there is one.
    pub fn from_peft_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.peft_name() == name)
    }
}

impl fmt::Display for TargetModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.peft_name())
    }
}
