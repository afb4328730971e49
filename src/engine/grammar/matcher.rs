//! The incremental byte-level matcher: feeds a JSON text one byte at a time and says, at
//! every byte, whether the text so far can still become a value of the [`Grammar`].
//!
//! The state is a small fixed-size pushdown stack ([`MatchState`], `Copy`, hashable), so
//! the token mask can clone it for every branch of the vocabulary trie and cache masks by
//! state. Strings are checked as UTF-8 byte by byte (a token may end inside a character)
//! and their lengths counted in characters, as JSON Schema does. The only whitespace
//! accepted is one optional space before the value, after `:` and after `,`.

use super::schema::{
    Grammar, Node, NodeId, Piece, MAX_DEPTH, MAX_EXP_DIGITS, MAX_FRAC_DIGITS, MAX_INT_DIGITS,
    NO_BRANCH,
};

/// The byte does not continue any text the grammar accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected;

/// Where a number is in `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NumPhase {
    Start,
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

/// Where an array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ArrayStep {
    /// `[` read: `]` or the first item.
    First,
    /// An item is being read.
    InItem,
    /// After an item: `,` or `]`.
    AfterItem,
    /// After `,`: an optional space, then an item.
    Comma,
    /// After `, `: an item.
    CommaSpace,
}

/// One level of the pushdown stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Frame {
    /// An unused slot.
    Empty,
    /// A value of `node`, not begun.
    Value { node: NodeId },
    /// An object at separator `prop`, byte `pos`; `pos` at the end means its value is open.
    Object { node: NodeId, prop: u16, pos: u16 },
    /// An array; `room` more items allowed, `need` more required.
    Array {
        node: NodeId,
        room: u16,
        need: u16,
        step: ArrayStep,
    },
    /// Inside a string: `room` more characters allowed, `need` more required; `cont`
    /// continuation bytes of a UTF-8 character are due, the next in `lo..=hi`.
    Str {
        room: u32,
        need: u32,
        cont: u8,
        lo: u8,
        hi: u8,
        escape: bool,
    },
    /// Within literal texts: `pos` bytes read, `live` the alternatives still matching.
    Literal { node: NodeId, pos: u16, live: u64 },
    /// Within a number.
    Number {
        integer: bool,
        phase: NumPhase,
        digits: u8,
    },
}

/// What one frame did with a byte.
enum Step {
    /// Consumed; the frame goes on.
    Consumed,
    /// Consumed; the frame's value is complete and nothing can extend it.
    Done,
    /// Not consumed: the frame's value ended before this byte, which belongs to the parent.
    Ended,
    /// Not consumed: the frame becomes this one, which reads the byte.
    Replace(Frame),
    /// Consumed: the frame becomes this one.
    Become(Frame),
    /// Not consumed: this child frame goes on top and reads the byte.
    Push(Frame),
}

/// The matcher's whole state: a stack of frames and whether anything was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatchState {
    frames: [Frame; MAX_DEPTH],
    len: u8,
    started: bool,
}

impl MatchState {
    /// The state before any byte: a value of the grammar's root is expected.
    pub fn new(grammar: &Grammar) -> Self {
        let mut frames = [Frame::Empty; MAX_DEPTH];
        frames[0] = Frame::Value { node: grammar.root };
        Self {
            frames,
            len: 1,
            started: false,
        }
    }

    /// Whether the text so far is a complete value (the reply may end here).
    pub fn is_complete(&self) -> bool {
        match self.len {
            0 => true,
            1 => may_end(&self.frames[0]),
            _ => false,
        }
    }

    /// Whether the value is complete and no byte may follow.
    pub fn is_finished(&self) -> bool {
        self.len == 0
    }

    /// This state with string bounds beyond `horizon` characters clamped: any `horizon`
    /// more bytes are accepted or rejected alike by both, so they share a token mask.
    pub(crate) fn mask_key(&self, horizon: u32) -> Self {
        let mut key = *self;
        for frame in &mut key.frames[..key.len as usize] {
            if let Frame::Str { room, need, .. } = frame {
                *room = (*room).min(horizon);
                *need = (*need).min(horizon + 1);
            }
        }
        key
    }

    /// Feeds one byte; on rejection the state is left unspecified (work on a copy).
    pub fn feed(&mut self, grammar: &Grammar, byte: u8) -> Result<(), Rejected> {
        if !self.started {
            self.started = true;
            if byte == b' ' {
                return Ok(());
            }
        }
        loop {
            let Some(top) = self.len.checked_sub(1) else {
                return Err(Rejected);
            };
            let frame = &mut self.frames[top as usize];
            match step(grammar, frame, byte)? {
                Step::Consumed => return Ok(()),
                Step::Done => {
                    self.pop();
                    return Ok(());
                }
                Step::Ended => self.pop(),
                Step::Replace(next) => *frame = next,
                Step::Become(next) => {
                    *frame = next;
                    return Ok(());
                }
                Step::Push(child) => {
                    if self.len as usize == MAX_DEPTH {
                        return Err(Rejected);
                    }
                    self.frames[self.len as usize] = child;
                    self.len += 1;
                }
            }
        }
    }

    /// Feeds every byte of `bytes`.
    pub fn feed_all(&mut self, grammar: &Grammar, bytes: &[u8]) -> Result<(), Rejected> {
        bytes.iter().try_for_each(|&b| self.feed(grammar, b))
    }

    /// Removes the finished top frame and tells its parent that its child is done.
    fn pop(&mut self) {
        self.len -= 1;
        self.frames[self.len as usize] = Frame::Empty;
        let Some(parent) = self.len.checked_sub(1) else {
            return;
        };
        match &mut self.frames[parent as usize] {
            Frame::Object { prop, pos, .. } => {
                *prop += 1;
                *pos = 0;
            }
            Frame::Array {
                room, need, step, ..
            } => {
                *room = room.saturating_sub(1);
                *need = need.saturating_sub(1);
                *step = ArrayStep::AfterItem;
            }
            _ => unreachable!("only containers have children"),
        }
    }
}

/// Whether a top-level frame's value may end here (numbers and ambiguous literals).
fn may_end(frame: &Frame) -> bool {
    match *frame {
        Frame::Number { phase, .. } => matches!(
            phase,
            NumPhase::Zero | NumPhase::Int | NumPhase::Frac | NumPhase::ExpDigits
        ),
        Frame::Literal { .. } => literal_complete(frame),
        _ => false,
    }
}

/// Whether a literal frame has fully read one of its alternatives.
fn literal_complete(frame: &Frame) -> bool {
    matches!(frame, Frame::Literal { live, .. } if *live & COMPLETE_BIT != 0)
}

/// Bit 63 of a literal frame's `live` marks "an alternative ends exactly here"; the other
/// bits are the alternatives still matching (so at most 63, see
/// [`super::schema::MAX_LITERALS`]).
const COMPLETE_BIT: u64 = 1 << 63;

fn step(grammar: &Grammar, frame: &mut Frame, b: u8) -> Result<Step, Rejected> {
    match frame {
        Frame::Empty => Err(Rejected),
        Frame::Value { node } => value_start(grammar, *node, b),
        Frame::Object { node, prop, pos } => {
            let Node::Object { separators, values } = &grammar.nodes[*node as usize] else {
                unreachable!("object frames point at object nodes");
            };
            let sep = &separators[*prop as usize];
            loop {
                if *pos as usize == sep.len() {
                    return Ok(Step::Push(Frame::Value {
                        node: values[*prop as usize],
                    }));
                }
                match sep[*pos as usize] {
                    Piece::Byte(x) if x == b => {
                        *pos += 1;
                        let closing = *prop as usize == values.len();
                        return Ok(if closing && *pos as usize == sep.len() {
                            Step::Done
                        } else {
                            Step::Consumed
                        });
                    }
                    Piece::Byte(_) => return Err(Rejected),
                    Piece::Space => {
                        *pos += 1;
                        if b == b' ' {
                            return Ok(Step::Consumed);
                        }
                    }
                }
            }
        }
        Frame::Array {
            node,
            room,
            need,
            step,
        } => {
            let Node::Array { item, .. } = grammar.nodes[*node as usize] else {
                unreachable!("array frames point at array nodes");
            };
            let item = Frame::Value { node: item };
            match step {
                ArrayStep::First if b == b']' && *need == 0 => Ok(Step::Done),
                ArrayStep::First | ArrayStep::CommaSpace if *room > 0 => {
                    *step = ArrayStep::InItem;
                    Ok(Step::Push(item))
                }
                ArrayStep::AfterItem if b == b',' && *room > 0 => {
                    *step = ArrayStep::Comma;
                    Ok(Step::Consumed)
                }
                ArrayStep::AfterItem if b == b']' && *need == 0 => Ok(Step::Done),
                ArrayStep::Comma if b == b' ' => {
                    *step = ArrayStep::CommaSpace;
                    Ok(Step::Consumed)
                }
                ArrayStep::Comma => {
                    *step = ArrayStep::InItem;
                    Ok(Step::Push(item))
                }
                _ => Err(Rejected),
            }
        }
        Frame::Str {
            room,
            need,
            cont,
            lo,
            hi,
            escape,
        } => {
            if *cont > 0 {
                if !(*lo..=*hi).contains(&b) {
                    return Err(Rejected);
                }
                *cont -= 1;
                (*lo, *hi) = (0x80, 0xBF);
                return Ok(Step::Consumed);
            }
            if *escape {
                // `\u` escapes are left out: a lone surrogate would not parse.
                if !matches!(b, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                    return Err(Rejected);
                }
                *escape = false;
                return Ok(Step::Consumed);
            }
            if b == b'"' {
                return if *need == 0 {
                    Ok(Step::Done)
                } else {
                    Err(Rejected)
                };
            }
            if b < 0x20 || *room == 0 {
                return Err(Rejected);
            }
            // (continuation bytes due, range of the first one) for a UTF-8 lead byte.
            let (due, first_lo, first_hi) = match b {
                0x00..=0x7F => (0, 0, 0),
                0xC2..=0xDF => (1, 0x80, 0xBF),
                0xE0 => (2, 0xA0, 0xBF),
                0xED => (2, 0x80, 0x9F),
                0xE1..=0xEF => (2, 0x80, 0xBF),
                0xF0 => (3, 0x90, 0xBF),
                0xF1..=0xF3 => (3, 0x80, 0xBF),
                0xF4 => (3, 0x80, 0x8F),
                _ => return Err(Rejected),
            };
            *room -= 1;
            *need = need.saturating_sub(1);
            *escape = b == b'\\';
            (*cont, *lo, *hi) = (due, first_lo, first_hi);
            Ok(Step::Consumed)
        }
        Frame::Literal { node, pos, live } => {
            let Node::Literals(texts) = &grammar.nodes[*node as usize] else {
                unreachable!("literal frames point at literal nodes");
            };
            let mut next = 0u64;
            let mut complete = false;
            let mut longer = false;
            for (i, text) in texts.iter().enumerate() {
                if *live & (1 << i) != 0 && text.get(*pos as usize) == Some(&b) {
                    next |= 1 << i;
                    complete |= text.len() == *pos as usize + 1;
                    longer |= text.len() > *pos as usize + 1;
                }
            }
            if next == 0 {
                return if *live & COMPLETE_BIT != 0 {
                    Ok(Step::Ended)
                } else {
                    Err(Rejected)
                };
            }
            *pos += 1;
            *live = next | if complete { COMPLETE_BIT } else { 0 };
            Ok(if longer { Step::Consumed } else { Step::Done })
        }
        Frame::Number {
            integer,
            phase,
            digits,
        } => {
            let digit = b.is_ascii_digit();
            let fraction_ok = !*integer;
            let can_end = matches!(
                *phase,
                NumPhase::Zero | NumPhase::Int | NumPhase::Frac | NumPhase::ExpDigits
            );
            let (next, count) = match (*phase, b) {
                (NumPhase::Start, b'-') => (NumPhase::Minus, 0),
                (NumPhase::Start, b'0') => (NumPhase::Zero, 0),
                // `-0` is an integer to JSON Schema but parses as a float (-0.0).
                (NumPhase::Minus, b'0') if fraction_ok => (NumPhase::Zero, 0),
                (NumPhase::Start | NumPhase::Minus, b'1'..=b'9') => (NumPhase::Int, 1),
                (NumPhase::Int, _) if digit && *digits < MAX_INT_DIGITS => {
                    (NumPhase::Int, *digits + 1)
                }
                (NumPhase::Zero | NumPhase::Int, b'.') if fraction_ok => (NumPhase::Dot, 0),
                (NumPhase::Dot, _) if digit => (NumPhase::Frac, 1),
                (NumPhase::Frac, _) if digit && *digits < MAX_FRAC_DIGITS => {
                    (NumPhase::Frac, *digits + 1)
                }
                (NumPhase::Zero | NumPhase::Int | NumPhase::Frac, b'e' | b'E') if fraction_ok => {
                    (NumPhase::Exp, 0)
                }
                (NumPhase::Exp, b'+' | b'-') => (NumPhase::ExpSign, 0),
                (NumPhase::Exp | NumPhase::ExpSign, _) if digit => (NumPhase::ExpDigits, 1),
                (NumPhase::ExpDigits, _) if digit && *digits < MAX_EXP_DIGITS => {
                    (NumPhase::ExpDigits, *digits + 1)
                }
                _ if can_end => return Ok(Step::Ended),
                _ => return Err(Rejected),
            };
            *phase = next;
            *digits = count;
            Ok(Step::Consumed)
        }
    }
}

/// The frame that reads a value of `node` starting with `b`.
fn value_start(grammar: &Grammar, node: NodeId, b: u8) -> Result<Step, Rejected> {
    let frame = match &grammar.nodes[node as usize] {
        Node::Object { .. } => Frame::Object {
            node,
            prop: 0,
            pos: 0,
        },
        Node::Array { min, max, .. } if b == b'[' => {
            return Ok(Step::Become(Frame::Array {
                node,
                room: *max,
                need: *min,
                step: ArrayStep::First,
            }));
        }
        Node::String { min, max } if b == b'"' => {
            return Ok(Step::Become(Frame::Str {
                room: *max,
                need: *min,
                cont: 0,
                lo: 0,
                hi: 0,
                escape: false,
            }));
        }
        Node::Array { .. } | Node::String { .. } => return Err(Rejected),
        Node::Literals(texts) => Frame::Literal {
            node,
            pos: 0,
            live: (1u64 << texts.len()) - 1,
        },
        Node::Number { integer } => Frame::Number {
            integer: *integer,
            phase: NumPhase::Start,
            digits: 0,
        },
        Node::AnyOf { dispatch, .. } => match dispatch[b as usize] {
            NO_BRANCH => return Err(Rejected),
            branch => Frame::Value { node: branch },
        },
    };
    Ok(Step::Replace(frame))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn accepts(schema: &serde_json::Value, text: &str) -> bool {
        let grammar = Grammar::from_schema(schema).unwrap();
        let mut state = MatchState::new(&grammar);
        state.feed_all(&grammar, text.as_bytes()).is_ok() && state.is_complete()
    }

    /// Whether `text` is a prefix of something the grammar accepts.
    fn continues(schema: &serde_json::Value, text: &str) -> bool {
        let grammar = Grammar::from_schema(schema).unwrap();
        let mut state = MatchState::new(&grammar);
        state.feed_all(&grammar, text.as_bytes()).is_ok()
    }

    fn action() -> serde_json::Value {
        json!({
            "type": "object",
            "properties": {
                "kind": {"enum": ["greeting", "explain", "solve"]},
                "subject": {"type": ["string", "null"], "maxLength": 8},
                "score": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
                "ok": {"type": "boolean"}
            },
            "required": ["kind", "subject", "score", "tags", "ok"]
        })
    }

    #[test]
    fn objects_in_required_order() {
        let s = action();
        for good in [
            r#"{"kind":"solve","subject":"math","score":1.5,"tags":[1,2],"ok":true}"#,
            r#"{"kind": "greeting", "subject": null, "score": -0.25e+3, "tags": [], "ok": false}"#,
            r#" {"kind":"explain","subject":"","score":0,"tags":[-7],"ok":true}"#,
            r#"{"kind":"solve","subject":"é日\n\"","score":10,"tags":[3, 4],"ok":true}"#,
        ] {
            assert!(accepts(&s, good), "{good}");
            serde_json::from_str::<serde_json::Value>(good).unwrap();
        }
        for bad in [
            // Wrong order, missing or extra properties.
            r#"{"subject":null,"kind":"solve","score":1,"tags":[],"ok":true}"#,
            r#"{"kind":"solve","score":1,"tags":[],"ok":true}"#,
            r#"{"kind":"solve","subject":null,"score":1,"tags":[],"ok":true,"x":1}"#,
            // Enum value outside the list, string too long, too many items.
            r#"{"kind":"solved","subject":null,"score":1,"tags":[],"ok":true}"#,
            r#"{"kind":"solve","subject":"123456789","score":1,"tags":[],"ok":true}"#,
            r#"{"kind":"solve","subject":null,"score":1,"tags":[1,2,3],"ok":true}"#,
            // Number syntax, integer items, whitespace beyond one space.
            r#"{"kind":"solve","subject":null,"score":01,"tags":[],"ok":true}"#,
            r#"{"kind":"solve","subject":null,"score":1.,"tags":[],"ok":true}"#,
            r#"{"kind":"solve","subject":null,"score":1,"tags":[1.5],"ok":true}"#,
            r#"{"kind":  "solve","subject":null,"score":1,"tags":[],"ok":true}"#,
            r#"{ "kind":"solve","subject":null,"score":1,"tags":[],"ok":true}"#,
            // Escapes: \u is not offered, raw control characters are not JSON.
            r#"{"kind":"solve","subject":"\u0041","score":1,"tags":[],"ok":true}"#,
            "{\"kind\":\"solve\",\"subject\":\"a\tb\",\"score\":1,\"tags\":[],\"ok\":true}",
            // Trailing text after the value.
            r#"{"kind":"solve","subject":null,"score":1,"tags":[],"ok":true} "#,
        ] {
            assert!(!accepts(&s, bad), "{bad}");
        }
        assert!(continues(&s, r#"{"kind":"sol"#));
        assert!(!accepts(&s, r#"{"kind":"sol"#), "a prefix is not complete");
    }

    #[test]
    fn strings_count_characters_and_check_utf8() {
        let s = json!({"type": "string", "minLength": 2, "maxLength": 3});
        assert!(accepts(&s, r#""日本""#));
        assert!(accepts(&s, r#""a\nb""#));
        assert!(!accepts(&s, r#""a""#));
        assert!(!accepts(&s, r#""abcd""#));
        let grammar = Grammar::from_schema(&s).unwrap();
        let mut state = MatchState::new(&grammar);
        // A character may arrive over several tokens; bad UTF-8 never.
        assert!(state.feed_all(&grammar, &[b'"', 0xE6, 0x97]).is_ok());
        for bad in [
            &[b'"', 0xC0, 0x80][..],
            &[b'"', 0xED, 0xA0, 0x80],
            &[b'"', 0xFF],
        ] {
            let mut state = MatchState::new(&grammar);
            assert!(state.feed_all(&grammar, bad).is_err(), "{bad:x?}");
        }
    }

    #[test]
    fn numbers_end_on_the_parents_byte() {
        let n = json!({"type": "number"});
        for good in ["0", "-0", "12", "3.25", "1e5", "-2.5E-10"] {
            assert!(accepts(&n, good), "{good}");
        }
        for bad in ["", "-", "00", "1.", ".5", "1e", "+1", "1234567890123456"] {
            assert!(!accepts(&n, bad), "{bad}");
        }
        let i = json!({"type": "integer"});
        assert!(accepts(&i, "-42"));
        assert!(!accepts(&i, "4.2"));
        assert!(!accepts(&i, "4e2"));
        assert!(!accepts(&i, "-0") && !accepts(&i, "-01") && !accepts(&i, "-0.5"));
        assert!(accepts(&i, "0") && accepts(&n, "-0.5") && !accepts(&n, "-01"));
        let list = json!({"type": "array", "items": {"type": "number"}, "minItems": 1});
        assert!(accepts(&list, "[1,2.5, 3]"));
        assert!(!accepts(&list, "[]"));
    }

    #[test]
    fn alternatives_and_literals() {
        let s = json!({"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "object", "properties": {}}]});
        for good in [r#""x""#, "null", "{}"] {
            assert!(accepts(&s, good), "{good}");
        }
        assert!(!accepts(&s, "nul"));
        let n = json!({"type": "integer", "nullable": true});
        assert!(accepts(&n, "null") && accepts(&n, "7"));
        let e = json!({"enum": [1, 12, "a", true]});
        for good in ["1", "12", r#""a""#, "true"] {
            assert!(accepts(&e, good), "{good}");
        }
        assert!(!accepts(&e, "2") && !accepts(&e, "123"));
        let pair = json!({"type": "array", "items": {"enum": [1, 12]}, "maxItems": 2});
        assert!(accepts(&pair, "[1,12]") && accepts(&pair, "[12, 1]"));
        let finished = Grammar::from_schema(&json!({"enum": ["a"]})).unwrap();
        let mut state = MatchState::new(&finished);
        state.feed_all(&finished, br#""a""#).unwrap();
        assert!(state.is_finished(), "nothing may follow a closed literal");
    }

    #[test]
    fn unsupported_schemas_are_named() {
        let cases = [
            (
                json!({"type": "string", "pattern": "a+"}),
                "/",
                "unsupported keyword \"pattern\"",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "date"}}}),
                "/properties/a",
                "unknown type \"date\"",
            ),
            (
                json!({"anyOf": [{"type": "string"}, {"enum": ["x"]}]}),
                "/anyOf",
                "both begin with '\"'",
            ),
            (
                json!({"type": "object", "required": ["b"]}),
                "/",
                "requires \"b\"",
            ),
            (
                json!({"type": "string", "minLength": 3, "maxLength": 2}),
                "/",
                "minLength 3 > maxLength 2",
            ),
            (json!(true), "/", "must be an object"),
        ];
        for (schema, path, problem) in cases {
            let err = Grammar::from_schema(&schema).unwrap_err();
            assert_eq!(err.path, path, "{err}");
            assert!(err.problem.contains(problem), "{err}");
        }
        let mut deep = json!({"type": "integer"});
        for _ in 0..MAX_DEPTH {
            deep = json!({"type": "array", "items": deep});
        }
        assert!(Grammar::from_schema(&deep)
            .unwrap_err()
            .problem
            .contains("levels deep"));
    }

    #[test]
    fn length_bounds() {
        let bounded = Grammar::from_schema(&action()).unwrap();
        assert!(bounded.max_len_bytes().is_some());
        let open = Grammar::from_schema(&json!({"type": "string"})).unwrap();
        assert_eq!(open.max_len_bytes(), None);
        let three = Grammar::from_schema(&json!({"type": "string", "maxLength": 3})).unwrap();
        assert_eq!(three.max_len_bytes(), Some(2 + 12 + 1));
    }
}
