//! The chat: message list, question box, lesson notes and the clear-chat action. It edits
//! only the conversation's display state; sending to and stopping the engine is left to the
//! callbacks.

mod composer;
mod markdown_view;
mod message;
mod message_list;

pub use composer::{Composer, LessonNotes};
pub use markdown_view::MarkdownView;
pub use message::{AssistantMessage, Message, UserMessage};
pub use message_list::MessageList;

use leptos::prelude::*;

use crate::conversation::Conversation;

/// The whole chat area.
///
/// `on_send` receives the trimmed question; the caller adds it with
/// [`Conversation::ask`] (which also opens the streaming reply) and sends the messages.
/// Clearing stops a reply in progress first (through `on_stop`).
#[component]
pub fn ChatView(
    /// The conversation shown, appended to by the caller as tokens arrive.
    conversation: RwSignal<Conversation>,
    /// The lesson notes sent as context.
    lesson_notes: RwSignal<String>,
    /// True while a reply streams.
    #[prop(into)]
    generating: Signal<bool>,
    /// True once a model is live.
    #[prop(into)]
    ready: Signal<bool>,
    /// Called with the student's question.
    on_send: Callback<String>,
    /// Called to stop the reply in progress.
    on_stop: Callback<()>,
) -> impl IntoView {
    let empty = Memo::new(move |_| conversation.with(Conversation::is_empty));
    let clear = move |_| {
        if generating.get_untracked() {
            on_stop.run(());
        }
        conversation.update(Conversation::clear);
    };
    view! {
        <section class="chat" aria-label="Chat with Mimir">
            <MessageList conversation=conversation />
            <div class="chat-controls">
                <LessonNotes notes=lesson_notes />
                <button
                    type="button"
                    class="button button-quiet chat-clear"
                    on:click=clear
                    disabled=move || empty.get()
                >
                    "Clear chat"
                </button>
            </div>
            <Composer generating=generating ready=ready on_send=on_send on_stop=on_stop />
        </section>
    }
}
