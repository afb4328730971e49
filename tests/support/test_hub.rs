//! Where the browser tests find the local hub.

/// The local hub `make test-wasm` starts (`MIMIR_TEST_HUB` at build time overrides it).
pub const HUB: &str = match option_env!("MIMIR_TEST_HUB") {
    Some(hub) => hub,
    None => "http://127.0.0.1:8091",
};
