//! Where the student writes: the question box (Enter sends, Shift+Enter starts a new line),
//! Send or Stop, and the optional lesson notes sent as context.

use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

/// The question box with its Send / Stop button.
#[component]
pub fn Composer(
    /// True while a reply is streaming: Stop replaces Send and sending is blocked.
    #[prop(into)]
    generating: Signal<bool>,
    /// False until a model is live: the box can be typed in but nothing is sent.
    #[prop(into)]
    ready: Signal<bool>,
    /// Receives the trimmed question.
    on_send: Callback<String>,
    /// Asks for the reply in progress to stop.
    on_stop: Callback<()>,
) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let can_send = move || ready.get() && !generating.get() && draft.with(|d| !d.trim().is_empty());
    let send = move || {
        if !can_send() {
            return;
        }
        let question = draft.get_untracked().trim().to_string();
        draft.set(String::new());
        on_send.run(question);
    };
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            send();
        }
    };
    let placeholder = move || {
        if ready.get() {
            "Ask Mimir a question (Enter to send, Shift+Enter for a new line)"
        } else {
            "Waiting for a model; you can start typing"
        }
    };

    view! {
        <form
            class="composer"
            on:submit=move |ev| {
                ev.prevent_default();
                send();
            }
        >
            <label for="chat-input" class="visually-hidden">
                "Your question"
            </label>
            <textarea
                id="chat-input"
                class="composer-input"
                rows="2"
                placeholder=placeholder
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
                on:keydown=on_keydown
            ></textarea>
            <Show
                when=move || generating.get()
                fallback=move || {
                    view! {
                        <button
                            type="submit"
                            class="button button-primary composer-send"
                            disabled=move || !can_send()
                        >
                            "Send"
                        </button>
                    }
                }
            >
                <button
                    type="button"
                    class="button button-stop composer-stop"
                    on:click=move |_| on_stop.run(())
                >
                    "Stop"
                </button>
            </Show>
        </form>
    }
}

/// The collapsible "Lesson notes" field; its text goes to the engine as context.
#[component]
pub fn LessonNotes(
    /// The notes, shared with whoever builds the engine's messages.
    notes: RwSignal<String>,
) -> impl IntoView {
    view! {
        <details class="lesson-notes">
            <summary>
                "Lesson notes"
                <span class="lesson-notes-state">
                    {move || {
                        if notes.with(|n| n.trim().is_empty()) { "" } else { " (in use)" }
                    }}
                </span>
            </summary>
            <label for="lesson-notes-input" class="field-hint">
                "Paste notes from your lesson; Mimir uses them as context for each question."
            </label>
            <textarea
                id="lesson-notes-input"
                class="lesson-notes-input"
                rows="4"
                prop:value=move || notes.get()
                on:input=move |ev| notes.set(event_target_value(&ev))
            ></textarea>
        </details>
    }
}
