//! `localStorage`: read and write one text value per key. Storage can be missing (private
//! windows, blocked cookies) or full; both are reported, never fatal.

/// Key of the stored conversation.
pub const CONVERSATION_KEY: &str = "mimir.conversation";
/// Key of the stored settings.
pub const PREFERENCES_KEY: &str = "mimir.preferences";

fn local_storage() -> Result<web_sys::Storage, String> {
    web_sys::window()
        .ok_or("no window")?
        .local_storage()
        .map_err(|e| format!("localStorage is blocked: {e:?}"))?
        .ok_or_else(|| "localStorage is not available".to_string())
}

/// The text stored under `key`, if any.
pub fn load(key: &str) -> Option<String> {
    local_storage().ok()?.get_item(key).ok()?
}

/// Stores `value` under `key`; the error names the key (a full quota, blocked storage).
pub fn save(key: &str, value: &str) -> Result<(), String> {
    local_storage()?
        .set_item(key, value)
        .map_err(|e| format!("could not save {key} ({} bytes): {e:?}", value.len()))
}
