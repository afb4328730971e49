//! The browser user interface (Leptos, client-side rendered).

mod app;
pub mod status_button;

pub use app::App;
