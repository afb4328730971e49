//! The scrolling list of turns. It follows new tokens while the reader is at the bottom and
//! stays put when they have scrolled up to read.

use leptos::html::Div;
use leptos::prelude::*;

use super::message::Message;
use crate::conversation::{Conversation, Turn};

/// How close to the bottom (pixels) still counts as "following the reply".
const FOLLOW_SLACK_PX: i32 = 48;

/// The conversation's turns, or a greeting when there are none.
#[component]
pub fn MessageList(
    /// The conversation to draw.
    #[prop(into)]
    conversation: Signal<Conversation>,
) -> impl IntoView {
    let list = NodeRef::<Div>::new();
    let following = RwSignal::new(true);
    let len = Memo::new(move |_| conversation.with(|c| c.turns().len()));

    Effect::new(move |_| {
        conversation.track();
        if let (Some(el), true) = (list.get(), following.get_untracked()) {
            el.set_scroll_top(el.scroll_height());
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            let gap = el.scroll_height() - el.scroll_top() - el.client_height();
            following.set(gap <= FOLLOW_SLACK_PX);
        }
    };

    view! {
        <div
            class="message-list"
            node_ref=list
            on:scroll=on_scroll
            role="log"
            aria-live="polite"
            aria-label="Conversation"
            tabindex="0"
        >
            <Show when=move || len.get() == 0>
                <div class="message message-assistant message-greeting">
                    <p>
                        "Hello, I am Mimir, a tutoring assistant. Which subject would you like to work on, or which test are you preparing for?"
                    </p>
                </div>
            </Show>
            <For each=move || 0..len.get() key=|index| *index let:index>
                <Message turn=Signal::derive(move || {
                    conversation
                        .with(|c| c.turns().get(index).cloned())
                        .unwrap_or(Turn::User {
                            text: String::new(),
                            subject: None,
                        })
                }) />
            </For>
        </div>
    }
}
