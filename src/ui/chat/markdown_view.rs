//! Draws a parsed reply ([`crate::markdown`]) as DOM elements whose text is set as text
//! nodes: nothing from the model is ever interpreted as HTML.

use leptos::prelude::*;

use crate::markdown::{parse, Block, Inline};

/// A reply's markdown, parsed and drawn.
#[component]
pub fn MarkdownView(
    /// The markdown source.
    #[prop(into)]
    text: Signal<String>,
) -> impl IntoView {
    view! {
        <div class="markdown">
            {move || text.with(|t| parse(t)).into_iter().map(block_view).collect_view()}
        </div>
    }
}

fn blocks_view(blocks: Vec<Block>) -> impl IntoView {
    blocks.into_iter().map(block_view).collect_view()
}

fn block_view(block: Block) -> AnyView {
    match block {
        Block::Paragraph(content) => view! { <p>{inlines_view(content)}</p> }.into_any(),
        // The page title is the only h1/h2; reply headings start at h3.
        Block::Heading { level, content } => match level {
            1 => view! { <h3>{inlines_view(content)}</h3> }.into_any(),
            2 => view! { <h4>{inlines_view(content)}</h4> }.into_any(),
            3 => view! { <h5>{inlines_view(content)}</h5> }.into_any(),
            _ => view! { <h6>{inlines_view(content)}</h6> }.into_any(),
        },
        Block::List { start: None, items } => {
            view! { <ul>{items.into_iter().map(item_view).collect_view()}</ul> }.into_any()
        }
        Block::List {
            start: Some(start),
            items,
        } => view! {
            <ol start=start.to_string()>{items.into_iter().map(item_view).collect_view()}</ol>
        }
        .into_any(),
        Block::Code { language, text } => view! {
            <pre class="code-block" data-language=language>
                <code>{text}</code>
            </pre>
        }
        .into_any(),
        Block::Quote(blocks) => view! { <blockquote>{blocks_view(blocks)}</blockquote> }.into_any(),
        Block::Rule => view! { <hr /> }.into_any(),
    }
}

fn item_view(blocks: Vec<Block>) -> impl IntoView {
    view! { <li>{blocks_view(blocks)}</li> }
}

fn inlines_view(inlines: Vec<Inline>) -> impl IntoView {
    inlines.into_iter().map(inline_view).collect_view()
}

fn inline_view(inline: Inline) -> AnyView {
    match inline {
        Inline::Text(text) => text.into_any(),
        Inline::Code(text) => view! { <code>{text}</code> }.into_any(),
        Inline::Emphasis(content) => view! { <em>{inlines_view(content)}</em> }.into_any(),
        Inline::Strong(content) => view! { <strong>{inlines_view(content)}</strong> }.into_any(),
        Inline::Link { href, content } => view! {
            <a href=href target="_blank" rel="noopener noreferrer">
                {inlines_view(content)}
            </a>
        }
        .into_any(),
        Inline::LineBreak => view! { <br /> }.into_any(),
    }
}
