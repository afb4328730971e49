//! One turn of the chat: the student's text as written, or Mimir's reply as safe markdown
//! with its timing underneath.

use leptos::prelude::*;

use super::markdown_view::MarkdownView;
use crate::conversation::{Reply, Turn};

/// A turn, drawn according to who wrote it.
#[component]
pub fn Message(
    /// The turn to draw; it changes while a reply streams.
    #[prop(into)]
    turn: Signal<Turn>,
) -> impl IntoView {
    // Re-render only when the author changes (never, in practice), not on every token.
    let is_user = Memo::new(move |_| turn.with(|t| matches!(t, Turn::User { .. })));
    move || {
        if is_user.get() {
            let text = Signal::derive(move || match turn.get() {
                Turn::User { text, .. } => text,
                Turn::Assistant(_) => String::new(),
            });
            let subject = Signal::derive(move || match turn.get() {
                Turn::User { subject, .. } => subject,
                Turn::Assistant(_) => None,
            });
            view! { <UserMessage text=text subject=subject /> }.into_any()
        } else {
            let reply = Signal::derive(move || match turn.get() {
                Turn::Assistant(reply) => reply,
                Turn::User { .. } => Reply::default(),
            });
            view! { <AssistantMessage reply=reply /> }.into_any()
        }
    }
}

/// The student's message: plain text, line breaks kept by CSS.
#[component]
pub fn UserMessage(
    /// What the student wrote.
    #[prop(into)]
    text: Signal<String>,
    /// The subject the engine detected, shown as a small chip.
    #[prop(into, optional)]
    subject: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="message message-user">
            <span class="visually-hidden">"You said: "</span>
            <p class="message-text">{move || text.get()}</p>
            {move || {
                subject
                    .get()
                    .map(|s| {
                        view! {
                            <span class="subject-chip" title="Detected subject">
                                <span class="visually-hidden">"Subject: "</span>
                                {s}
                            </span>
                        }
                    })
            }}
        </div>
    }
}

/// Mimir's reply: markdown, a cursor while streaming, the error if it failed, and a subtle
/// timing line. The timing line always takes its height so the list does not jump when a
/// reply ends.
#[component]
pub fn AssistantMessage(
    /// The reply, updated as tokens arrive.
    #[prop(into)]
    reply: Signal<Reply>,
) -> impl IntoView {
    let text = Memo::new(move |_| reply.with(|r| r.text.clone()));
    let streaming = Memo::new(move |_| reply.with(|r| r.streaming));
    let error = Memo::new(move |_| reply.with(|r| r.error.clone()));
    let stats = Memo::new(move |_| reply.with(Reply::stats_line));
    let tool_note = Memo::new(move |_| reply.with(|r| r.tool_note.clone()));
    view! {
        <div
            class="message message-assistant"
            class:message-streaming=move || streaming.get()
            aria-busy=move || streaming.get().to_string()
        >
            <span class="visually-hidden">"Mimir said: "</span>
            {move || {
                tool_note
                    .get()
                    .map(|note| {
                        view! {
                            <p class="message-tool">
                                <span class="visually-hidden">"Tool used: "</span>
                                {note}
                            </p>
                        }
                    })
            }}
            <MarkdownView text=text />
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! { <p class="message-error" role="alert">{e}</p> }
                    })
            }}
            <p class="message-stats">{move || stats.get().unwrap_or_default()}</p>
        </div>
    }
}
