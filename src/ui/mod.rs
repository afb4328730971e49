//! The browser user interface (Leptos, client-side rendered).

mod app;
pub mod status_button;
pub mod worker_client;

pub use app::App;
