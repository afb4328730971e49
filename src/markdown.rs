//! Safe markdown for the model's replies: text is parsed (CommonMark, by `pulldown-cmark`)
//! into our own small tree of [`Block`]s and [`Inline`]s, which the UI draws as DOM nodes with
//! text content only. Nothing is ever inserted as HTML: raw HTML in the input becomes literal
//! text, images become their alt text, and links survive only with an absolute `http(s)` URL.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag};

/// Deepest nesting of containers kept; deeper markers are flattened into their parent, so
/// hostile input (`> > > > …`) cannot build a tree deep enough to exhaust the stack when it
/// is drawn or dropped.
pub const MAX_DEPTH: usize = 24;

/// A block of a parsed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A paragraph (raw HTML blocks become paragraphs of literal text).
    Paragraph(Vec<Inline>),
    /// A heading, `level` 1 to 6.
    Heading {
        /// 1 for `#`, 6 for `######`.
        level: u8,
        /// The heading text.
        content: Vec<Inline>,
    },
    /// A bulleted (`start` is `None`) or numbered list.
    List {
        /// Number of the first item of an ordered list.
        start: Option<u64>,
        /// Each item's blocks.
        items: Vec<Vec<Block>>,
    },
    /// A fenced or indented code block, shown verbatim.
    Code {
        /// The fence's info string (`rust`), when given.
        language: Option<String>,
        /// The code, with its line breaks.
        text: String,
    },
    /// A block quote.
    Quote(Vec<Block>),
    /// A thematic break (`---`).
    Rule,
}

/// Inline content of a block.
#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    /// Literal text (including any HTML tags the input contained).
    Text(String),
    /// `inline code`.
    Code(String),
    /// *emphasis*.
    Emphasis(Vec<Inline>),
    /// **strong**.
    Strong(Vec<Inline>),
    /// A link whose `href` is an absolute http(s) URL.
    Link {
        /// The checked URL.
        href: String,
        /// The link text.
        content: Vec<Inline>,
    },
    /// A line break (hard or soft: replies are chat text, so single newlines are kept).
    LineBreak,
}

impl Inline {
    /// The text a reader sees, without any formatting.
    pub fn plain_text(inlines: &[Inline]) -> String {
        let mut out = String::new();
        collect_text(inlines, &mut out);
        out
    }
}

fn collect_text(inlines: &[Inline], out: &mut String) {
    for inline in inlines {
        match inline {
            Inline::Text(t) | Inline::Code(t) => out.push_str(t),
            Inline::Emphasis(c) | Inline::Strong(c) | Inline::Link { content: c, .. } => {
                collect_text(c, out)
            }
            Inline::LineBreak => out.push('\n'),
        }
    }
}

/// Returns `url` when it is an absolute `http://` or `https://` URL with a host, else `None`
/// (`javascript:`, `data:`, relative paths and anything with spaces or control characters).
pub fn safe_href(url: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return None;
    };
    let clean = !rest.is_empty()
        && !rest.starts_with('/')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    clean.then(|| url.to_string())
}

/// Parses `text` into blocks. Never fails: anything not understood is kept as text.
pub fn parse(text: &str) -> Vec<Block> {
    let mut builder = Builder::default();
    for event in Parser::new_ext(text, Options::empty()) {
        builder.event(event);
    }
    builder.finish()
}

/// What a frame on the builder's stack is collecting.
#[derive(Debug)]
enum Kind {
    Root,
    Paragraph,
    Heading(u8),
    Quote,
    List(Option<u64>),
    Item,
    Code(Option<String>),
    Html,
    Emphasis,
    Strong,
    Link(Option<String>),
    Image,
}

#[derive(Debug)]
struct Frame {
    kind: Kind,
    blocks: Vec<Block>,
    inlines: Vec<Inline>,
    items: Vec<Vec<Block>>,
}

impl Frame {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            blocks: Vec::new(),
            inlines: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Turns loose inline content into a paragraph (tight list items have no `<p>`).
    fn flush_inlines(&mut self) {
        if !self.inlines.is_empty() {
            let inlines = std::mem::take(&mut self.inlines);
            self.blocks.push(Block::Paragraph(inlines));
        }
    }

    fn push_block(&mut self, block: Block) {
        self.flush_inlines();
        self.blocks.push(block);
    }

    fn push_inline(&mut self, inline: Inline) {
        if let (Inline::Text(new), Some(Inline::Text(last))) = (&inline, self.inlines.last_mut()) {
            last.push_str(new);
            return;
        }
        self.inlines.push(inline);
    }

    fn push_text(&mut self, text: &str) {
        if !text.is_empty() {
            self.push_inline(Inline::Text(text.to_string()));
        }
    }
}

struct Builder {
    stack: Vec<Frame>,
    /// Starts ignored because the stack was at [`MAX_DEPTH`]; their ends are ignored too.
    skipped: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            stack: vec![Frame::new(Kind::Root)],
            skipped: 0,
        }
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

impl Builder {
    fn top(&mut self) -> &mut Frame {
        self.stack
            .last_mut()
            .expect("the root frame is never popped")
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(_) => self.end(),
            Event::Text(t) => self.top().push_text(&t),
            Event::Code(t) => self.top().push_inline(Inline::Code(t.to_string())),
            // Raw HTML is shown exactly as written.
            Event::Html(t) | Event::InlineHtml(t) => self.top().push_text(&t),
            Event::SoftBreak | Event::HardBreak => self.top().push_inline(Inline::LineBreak),
            Event::Rule => self.top().push_block(Block::Rule),
            // Extensions that are not enabled (math, footnotes, task lists): keep their text.
            Event::InlineMath(t) | Event::DisplayMath(t) | Event::FootnoteReference(t) => {
                self.top().push_text(&t)
            }
            Event::TaskListMarker(done) => self.top().push_text(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        let kind = match tag {
            Tag::Paragraph => Kind::Paragraph,
            Tag::Heading { level, .. } => Kind::Heading(heading_level(level)),
            Tag::BlockQuote(_) => Kind::Quote,
            Tag::List(start) => Kind::List(start),
            Tag::Item => Kind::Item,
            Tag::CodeBlock(CodeBlockKind::Fenced(info)) => {
                let language = info.split_whitespace().next().map(str::to_string);
                Kind::Code(language)
            }
            Tag::CodeBlock(CodeBlockKind::Indented) => Kind::Code(None),
            Tag::HtmlBlock => Kind::Html,
            Tag::Emphasis => Kind::Emphasis,
            Tag::Strong => Kind::Strong,
            Tag::Link { dest_url, .. } => Kind::Link(safe_href(&dest_url)),
            Tag::Image { .. } => Kind::Image,
            // Not enabled in the parser options; their content is kept in the parent.
            _ => {
                self.skipped += 1;
                return;
            }
        };
        if self.skipped > 0 || self.stack.len() >= MAX_DEPTH {
            self.skipped += 1;
            return;
        }
        self.stack.push(Frame::new(kind));
    }

    fn end(&mut self) {
        if self.skipped > 0 {
            self.skipped -= 1;
            return;
        }
        if self.stack.len() == 1 {
            return;
        }
        let mut frame = self.stack.pop().expect("checked above");
        let parent = self.top();
        match frame.kind {
            Kind::Root => unreachable!("the root frame is never pushed"),
            Kind::Paragraph => parent.push_block(Block::Paragraph(frame.inlines)),
            Kind::Html => parent.push_block(Block::Paragraph(trim_breaks(frame.inlines))),
            Kind::Heading(level) => parent.push_block(Block::Heading {
                level,
                content: frame.inlines,
            }),
            Kind::Quote => {
                frame.flush_inlines();
                parent.push_block(Block::Quote(frame.blocks));
            }
            Kind::Item => {
                frame.flush_inlines();
                parent.items.push(frame.blocks);
            }
            Kind::List(start) => {
                frame.flush_inlines();
                if !frame.blocks.is_empty() {
                    frame.items.push(frame.blocks);
                }
                parent.push_block(Block::List {
                    start,
                    items: frame.items,
                });
            }
            Kind::Code(language) => {
                let text = Inline::plain_text(&frame.inlines);
                parent.push_block(Block::Code { language, text });
            }
            Kind::Emphasis => parent.push_inline(Inline::Emphasis(frame.inlines)),
            Kind::Strong => parent.push_inline(Inline::Strong(frame.inlines)),
            Kind::Link(Some(href)) => parent.push_inline(Inline::Link {
                href,
                content: frame.inlines,
            }),
            // An unsafe link or an image: only its text is kept.
            Kind::Link(None) | Kind::Image => {
                for inline in frame.inlines {
                    parent.push_inline(inline);
                }
            }
        }
    }

    fn finish(mut self) -> Vec<Block> {
        while self.stack.len() > 1 {
            self.end();
        }
        let mut root = self.stack.pop().expect("the root frame");
        root.flush_inlines();
        root.blocks
    }
}

/// Drops the line breaks at the ends of a raw HTML block's text.
fn trim_breaks(mut inlines: Vec<Inline>) -> Vec<Inline> {
    for inline in &mut inlines {
        if let Inline::Text(t) = inline {
            *t = t.trim_end_matches('\n').to_string();
        }
    }
    inlines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Inline {
        Inline::Text(s.to_string())
    }

    /// Every link target in the tree.
    fn hrefs(blocks: &[Block]) -> Vec<String> {
        fn inl(inlines: &[Inline], out: &mut Vec<String>) {
            for i in inlines {
                match i {
                    Inline::Link { href, content } => {
                        out.push(href.clone());
                        inl(content, out);
                    }
                    Inline::Emphasis(c) | Inline::Strong(c) => inl(c, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        for b in blocks {
            match b {
                Block::Paragraph(c) | Block::Heading { content: c, .. } => inl(c, &mut out),
                Block::List { items, .. } => items.iter().for_each(|i| out.extend(hrefs(i))),
                Block::Quote(inner) => out.extend(hrefs(inner)),
                Block::Code { .. } | Block::Rule => {}
            }
        }
        out
    }

    /// All visible text, blocks separated by newlines.
    fn visible(blocks: &[Block]) -> String {
        blocks
            .iter()
            .map(|b| match b {
                Block::Paragraph(c) | Block::Heading { content: c, .. } => Inline::plain_text(c),
                Block::List { items, .. } => items
                    .iter()
                    .map(|i| visible(i))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Block::Quote(inner) => visible(inner),
                Block::Code { text, .. } => text.clone(),
                Block::Rule => "---".into(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn paragraphs_headings_and_emphasis() {
        let blocks = parse("# Title\n\nSome *soft* and **strong** `code`.\nNext line.");
        assert_eq!(
            blocks,
            vec![
                Block::Heading {
                    level: 1,
                    content: vec![text("Title")]
                },
                Block::Paragraph(vec![
                    text("Some "),
                    Inline::Emphasis(vec![text("soft")]),
                    text(" and "),
                    Inline::Strong(vec![text("strong")]),
                    text(" "),
                    Inline::Code("code".into()),
                    text("."),
                    Inline::LineBreak,
                    text("Next line."),
                ]),
            ]
        );
    }

    #[test]
    fn nested_emphasis() {
        let blocks = parse("***both*** and *a **b** c*");
        let Block::Paragraph(inlines) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        assert_eq!(
            inlines[0],
            Inline::Emphasis(vec![Inline::Strong(vec![text("both")])])
        );
        assert_eq!(
            inlines[2],
            Inline::Emphasis(vec![
                text("a "),
                Inline::Strong(vec![text("b")]),
                text(" c")
            ])
        );
    }

    #[test]
    fn lists_tight_loose_ordered_and_nested() {
        let blocks = parse("- one\n- two\n  1. inner\n\n3. three\n4. four\n");
        assert_eq!(
            blocks[0],
            Block::List {
                start: None,
                items: vec![
                    vec![Block::Paragraph(vec![text("one")])],
                    vec![
                        Block::Paragraph(vec![text("two")]),
                        Block::List {
                            start: Some(1),
                            items: vec![vec![Block::Paragraph(vec![text("inner")])]]
                        }
                    ],
                ]
            }
        );
        assert_eq!(
            blocks[1],
            Block::List {
                start: Some(3),
                items: vec![
                    vec![Block::Paragraph(vec![text("three")])],
                    vec![Block::Paragraph(vec![text("four")])],
                ]
            }
        );
    }

    #[test]
    fn fenced_indented_and_unterminated_code() {
        let blocks = parse("```rust\nfn main() {}\n<b>x</b>\n```\n\n    indented\n");
        assert_eq!(
            blocks,
            vec![
                Block::Code {
                    language: Some("rust".into()),
                    text: "fn main() {}\n<b>x</b>\n".into()
                },
                Block::Code {
                    language: None,
                    text: "indented\n".into()
                },
            ]
        );
        // A reply still streaming: the fence is not closed yet.
        let blocks = parse("Look:\n```python\nprint(1)");
        assert_eq!(
            blocks[1],
            Block::Code {
                language: Some("python".into()),
                text: "print(1)".into()
            }
        );
    }

    #[test]
    fn raw_html_is_literal_text() {
        for hostile in [
            "<img src=x onerror=alert(1)>",
            "<script>alert(1)</script>",
            "Inline <img src=x onerror=alert(1)> here",
            "<iframe src=\"javascript:alert(1)\"></iframe>",
        ] {
            let blocks = parse(hostile);
            assert_eq!(visible(&blocks), hostile, "{blocks:?}");
            assert!(hrefs(&blocks).is_empty());
        }
    }

    #[test]
    fn only_http_links_survive() {
        let blocks = parse(
            "[ok](https://example.org/a?b=1) [x](javascript:alert(1)) \
             [d](data:text/html,<script>alert(1)</script>) [e](JaVaScRiPt:alert(1)) \
             [f](jav&#x61;script:alert(1)) [g](/relative) [h](http:/oops) \
             <javascript:alert(1)> <http://example.com/auto> ![img](https://e.com/i.png)",
        );
        assert_eq!(
            hrefs(&blocks),
            ["https://example.org/a?b=1", "http://example.com/auto"]
        );
        let shown = visible(&blocks);
        for kept in ["ok", " x ", " d ", " e ", " f ", " g ", " h ", "img"] {
            assert!(shown.contains(kept), "{kept:?} missing from {shown:?}");
        }
        assert!(shown.contains("javascript:alert(1)"), "{shown}");
    }

    #[test]
    fn safe_href_rules() {
        assert_eq!(safe_href("HTTPS://x.org").as_deref(), Some("HTTPS://x.org"));
        for bad in [
            "",
            "http://",
            "https:///path",
            "https://a b",
            "https://a\u{0}b",
            "ftp://x",
            "data:text/html,x",
            " https://x.org",
            "é",
        ] {
            assert_eq!(safe_href(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_flattened() {
        let quotes = format!("{} deep", "> ".repeat(5000));
        let blocks = parse(&quotes);
        assert!(visible(&blocks).contains("deep"));
        fn depth(blocks: &[Block]) -> usize {
            blocks
                .iter()
                .map(|b| match b {
                    Block::Quote(inner) => 1 + depth(inner),
                    Block::List { items, .. } => {
                        1 + items.iter().map(|i| depth(i)).max().unwrap_or(0)
                    }
                    _ => 1,
                })
                .max()
                .unwrap_or(0)
        }
        assert!(depth(&blocks) <= MAX_DEPTH, "{}", depth(&blocks));
        let lists = format!("{}x", "- ".repeat(5000));
        assert!(visible(&parse(&lists)).contains('x'));
        let emphasis = format!("{}x{}", "*_".repeat(3000), "_*".repeat(3000));
        assert!(visible(&parse(&emphasis)).contains('x'));
    }

    #[test]
    fn very_long_input_is_kept_whole() {
        let long = "word ".repeat(40_000) + "\n\n" + &"[[[[(((( ".repeat(5_000);
        let blocks = parse(&long);
        let shown = visible(&blocks);
        assert_eq!(shown.matches("word").count(), 40_000);
        assert!(
            shown.ends_with("[[[[(((("),
            "{}",
            &shown[shown.len() - 20..]
        );
    }
}
