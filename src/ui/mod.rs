//! The browser user interface (Leptos, client-side rendered).

mod app;
pub mod button_group;
pub mod chat;
pub mod info_panel;
pub mod settings;
pub mod state;
pub mod status_button;
pub mod storage;
pub mod worker_client;

pub use app::App;

/// The page URL's parameter `name` (`?hub=…`, `?kernels=…`).
pub fn page_parameter(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}
