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
