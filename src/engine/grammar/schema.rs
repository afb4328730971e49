//! A JSON-schema subset compiled into the nodes the matcher walks.
//!
//! Supported: `type` `object` (`properties`, `required`; every property is written, the
//! `required` ones first in their order, then the rest by name), `array` (`items`,
//! `minItems`, `maxItems`), `string` (`minLength`, `maxLength`), `number`, `integer`,
//! `boolean`, `null`, a list of types (`["string", "null"]`), `nullable: true`, `enum` and
//! `const` (any JSON values), and `anyOf`/`oneOf` whose branches begin with different
//! characters (a string or null, an object or an array). Annotations (`title`,
//! `description`, `default`, `examples`, `$schema`, `additionalProperties`) are ignored;
//! any other keyword is an error, so a schema is never silently loosened.

use serde_json::{Map, Value};

use super::GrammarError;

/// Index of a node in [`Grammar::nodes`].
pub(crate) type NodeId = u16;

/// Most frames the matcher's stack holds; deeper schemas are refused at compile time.
pub(crate) const MAX_DEPTH: usize = 16;
/// Most digits of a number's integer part (keeps integers within `i64`).
pub(crate) const MAX_INT_DIGITS: u8 = 15;
/// Most digits after the decimal point.
pub(crate) const MAX_FRAC_DIGITS: u8 = 15;
/// Most exponent digits (so `1e99` is the largest magnitude, never infinity).
pub(crate) const MAX_EXP_DIGITS: u8 = 2;
/// Most alternatives of an `enum`/`const` set (a bit each in the matcher state).
pub(crate) const MAX_LITERALS: usize = 63;
/// In an `AnyOf` dispatch table: no branch begins with this byte.
pub(crate) const NO_BRANCH: NodeId = NodeId::MAX;

/// One element of the fixed text around an object's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    /// This byte.
    Byte(u8),
    /// One optional space.
    Space,
}

/// A compiled schema node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `{"a": A, "b": B}`: `separators[i]` precedes `values[i]`; the last separator closes.
    Object {
        separators: Vec<Vec<Piece>>,
        values: Vec<NodeId>,
    },
    /// `[item, …]` with between `min` and `max` items.
    Array { item: NodeId, min: u16, max: u16 },
    /// A string of between `min` and `max` characters.
    String { min: u32, max: u32 },
    /// One of these exact JSON texts (`"explain"`, `true`, `null`, `3`).
    Literals(Vec<Vec<u8>>),
    /// A JSON number; an integer when `integer`.
    Number { integer: bool },
    /// One of these nodes, told apart by their first byte: `dispatch[byte]` is the branch
    /// a value beginning with `byte` takes, or [`NO_BRANCH`].
    AnyOf {
        branches: Vec<NodeId>,
        dispatch: Box<[NodeId; 256]>,
    },
}

/// A compiled schema: what JSON texts the constrained decoder may produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Grammar {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: NodeId,
}

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "additionalProperties",
];

impl Grammar {
    /// Compiles `schema`; errors name the JSON pointer of the offending part.
    pub fn from_schema(schema: &Value) -> Result<Self, GrammarError> {
        let mut grammar = Grammar {
            nodes: Vec::new(),
            root: 0,
        };
        grammar.root = grammar.compile(schema, "")?;
        let depth = grammar.depth(grammar.root);
        if depth > MAX_DEPTH {
            return Err(GrammarError::schema(
                "",
                format!("nests {depth} levels deep; at most {MAX_DEPTH} are supported"),
            ));
        }
        Ok(grammar)
    }

    /// The most bytes a matching text can have (with the optional spaces), or `None` when
    /// a string or array is unbounded.
    pub fn max_len_bytes(&self) -> Option<usize> {
        self.max_len(self.root).map(|n| n + 1)
    }

    fn max_len(&self, id: NodeId) -> Option<usize> {
        match &self.nodes[id as usize] {
            Node::Object { separators, values } => {
                let mut total: usize = separators.iter().map(Vec::len).sum();
                for &v in values {
                    total += self.max_len(v)?;
                }
                Some(total)
            }
            Node::Array { item, max, .. } => {
                if *max == u16::MAX {
                    return None;
                }
                Some(2 + *max as usize * (self.max_len(*item)? + 2))
            }
            Node::String { max, .. } => {
                // A character is at most 4 bytes of UTF-8 or a 2-byte escape.
                (*max != u32::MAX).then(|| 2 + 4 * *max as usize)
            }
            Node::Literals(texts) => texts.iter().map(Vec::len).max(),
            Node::Number { .. } => Some(
                1 + MAX_INT_DIGITS as usize
                    + 1
                    + MAX_FRAC_DIGITS as usize
                    + 2
                    + MAX_EXP_DIGITS as usize,
            ),
            Node::AnyOf { branches, .. } => {
                let mut most = 0;
                for &b in branches {
                    most = most.max(self.max_len(b)?);
                }
                Some(most)
            }
        }
    }

    /// Stack frames a value of `id` needs at most.
    fn depth(&self, id: NodeId) -> usize {
        match &self.nodes[id as usize] {
            Node::Object { values, .. } => {
                1 + values.iter().map(|&v| self.depth(v)).max().unwrap_or(0)
            }
            Node::Array { item, .. } => 1 + self.depth(*item),
            Node::AnyOf { branches, .. } => {
                branches.iter().map(|&b| self.depth(b)).max().unwrap_or(1)
            }
            _ => 1,
        }
    }

    /// The bytes a value of `id` can begin with.
    pub(crate) fn first_bytes(&self, id: NodeId) -> [bool; 256] {
        let mut set = [false; 256];
        match &self.nodes[id as usize] {
            Node::Object { .. } => set[b'{' as usize] = true,
            Node::Array { .. } => set[b'[' as usize] = true,
            Node::String { .. } => set[b'"' as usize] = true,
            Node::Literals(texts) => {
                for t in texts {
                    set[t[0] as usize] = true;
                }
            }
            Node::Number { .. } => {
                for b in b"-0123456789" {
                    set[*b as usize] = true;
                }
            }
            Node::AnyOf { dispatch, .. } => {
                for (byte, branch) in dispatch.iter().enumerate() {
                    set[byte] = *branch != NO_BRANCH;
                }
            }
        }
        set
    }

    fn push(&mut self, node: Node, path: &str) -> Result<NodeId, GrammarError> {
        let id = NodeId::try_from(self.nodes.len())
            .ok()
            .filter(|&id| id != NO_BRANCH)
            .ok_or_else(|| GrammarError::schema(path, "has too many parts".into()))?;
        self.nodes.push(node);
        Ok(id)
    }

    fn compile(&mut self, schema: &Value, path: &str) -> Result<NodeId, GrammarError> {
        let Value::Object(map) = schema else {
            return Err(GrammarError::schema(
                path,
                format!("must be an object, found {schema}"),
            ));
        };
        for key in map.keys() {
            const KNOWN: &[&str] = &[
                "type",
                "properties",
                "required",
                "items",
                "minItems",
                "maxItems",
                "minLength",
                "maxLength",
                "enum",
                "const",
                "anyOf",
                "oneOf",
                "nullable",
            ];
            if !KNOWN.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
                return Err(GrammarError::schema(
                    path,
                    format!("uses the unsupported keyword \"{key}\""),
                ));
            }
        }
        if map.get("nullable") == Some(&Value::Bool(true)) {
            let mut inner = map.clone();
            inner.remove("nullable");
            let branches = [Value::Object(inner), serde_json::json!({"type": "null"})];
            return self.any_of(&branches, path);
        }
        if let Some(values) = map.get("enum") {
            let Value::Array(values) = values else {
                return Err(GrammarError::schema(
                    path,
                    "has an enum that is not a list".into(),
                ));
            };
            return self.literals(values, &format!("{path}/enum"));
        }
        if let Some(value) = map.get("const") {
            return self.literals(std::slice::from_ref(value), &format!("{path}/const"));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = map.get(key) {
                let Value::Array(branches) = branches else {
                    return Err(GrammarError::schema(
                        path,
                        format!("has a {key} that is not a list"),
                    ));
                };
                return self.any_of(branches, &format!("{path}/{key}"));
            }
        }
        match map.get("type") {
            Some(Value::String(ty)) => self.typed(ty, map, path),
            Some(Value::Array(types)) => {
                let branches: Vec<Value> = types
                    .iter()
                    .map(|ty| {
                        let mut one = map.clone();
                        one.insert("type".into(), ty.clone());
                        Value::Object(one)
                    })
                    .collect();
                self.any_of(&branches, &format!("{path}/type"))
            }
            Some(other) => Err(GrammarError::schema(
                path,
                format!("has a type that is neither a name nor a list: {other}"),
            )),
            None => Err(GrammarError::schema(
                path,
                "has no type, enum, const or anyOf".into(),
            )),
        }
    }

    fn typed(
        &mut self,
        ty: &str,
        map: &Map<String, Value>,
        path: &str,
    ) -> Result<NodeId, GrammarError> {
        let node = match ty {
            "object" => return self.object(map, path),
            "array" => {
                let items = map.get("items").ok_or_else(|| {
                    GrammarError::schema(path, "is an array without items".into())
                })?;
                let item = self.compile(items, &format!("{path}/items"))?;
                let min = bound(map, "minItems", path)?.unwrap_or(0);
                let max = bound(map, "maxItems", path)?;
                if let Some(max) = max.filter(|&max| min > max) {
                    return Err(GrammarError::schema(
                        path,
                        format!("has minItems {min} > maxItems {max}"),
                    ));
                }
                // u16::MAX stands for "no maximum".
                let fit = |n: u64| {
                    u16::try_from(n)
                        .ok()
                        .filter(|&n| n < u16::MAX)
                        .ok_or_else(|| {
                            GrammarError::schema(
                                path,
                                format!("has an item bound {n} beyond 65534"),
                            )
                        })
                };
                Node::Array {
                    item,
                    min: fit(min)?,
                    max: max.map_or(Ok(u16::MAX), fit)?,
                }
            }
            "string" => {
                let min = bound(map, "minLength", path)?.unwrap_or(0);
                let max = bound(map, "maxLength", path)?;
                if max.is_some_and(|max| min > max) {
                    return Err(GrammarError::schema(
                        path,
                        format!("has minLength {min} > maxLength {}", max.unwrap_or(0)),
                    ));
                }
                let fit = |n: u64| u32::try_from(n).ok().filter(|&n| n < u32::MAX);
                let too_long =
                    || GrammarError::schema(path, "has a length bound beyond 4294967294".into());
                Node::String {
                    min: fit(min).ok_or_else(too_long)?,
                    max: match max {
                        Some(max) => fit(max).ok_or_else(too_long)?,
                        None => u32::MAX,
                    },
                }
            }
            "number" => Node::Number { integer: false },
            "integer" => Node::Number { integer: true },
            "boolean" => Node::Literals(vec![b"true".to_vec(), b"false".to_vec()]),
            "null" => Node::Literals(vec![b"null".to_vec()]),
            other => {
                return Err(GrammarError::schema(
                    path,
                    format!("has the unknown type \"{other}\""),
                ));
            }
        };
        self.push(node, path)
    }

    fn object(&mut self, map: &Map<String, Value>, path: &str) -> Result<NodeId, GrammarError> {
        let empty = Map::new();
        let properties = match map.get("properties") {
            Some(Value::Object(p)) => p,
            None => &empty,
            Some(other) => {
                return Err(GrammarError::schema(
                    path,
                    format!("has properties that are not an object: {other}"),
                ));
            }
        };
        let mut order: Vec<&str> = Vec::new();
        if let Some(required) = map.get("required") {
            let Value::Array(required) = required else {
                return Err(GrammarError::schema(
                    path,
                    "has a required that is not a list".into(),
                ));
            };
            for name in required {
                let Some(name) = name.as_str().filter(|n| properties.contains_key(*n)) else {
                    return Err(GrammarError::schema(
                        path,
                        format!("requires {name}, which is not among its properties"),
                    ));
                };
                if !order.contains(&name) {
                    order.push(name);
                }
            }
        }
        for name in properties.keys() {
            if !order.contains(&name.as_str()) {
                order.push(name);
            }
        }
        let mut separators = Vec::with_capacity(order.len() + 1);
        let mut values = Vec::with_capacity(order.len());
        for (i, name) in order.iter().enumerate() {
            let mut sep = if i == 0 {
                vec![Piece::Byte(b'{')]
            } else {
                vec![Piece::Byte(b','), Piece::Space]
            };
            let key = serde_json::to_string(name).expect("strings serialise");
            sep.extend(key.bytes().map(Piece::Byte));
            sep.extend([Piece::Byte(b':'), Piece::Space]);
            separators.push(sep);
            values.push(self.compile(&properties[*name], &format!("{path}/properties/{name}"))?);
        }
        separators.push(if order.is_empty() {
            vec![Piece::Byte(b'{'), Piece::Byte(b'}')]
        } else {
            vec![Piece::Byte(b'}')]
        });
        self.push(Node::Object { separators, values }, path)
    }

    fn literals(&mut self, values: &[Value], path: &str) -> Result<NodeId, GrammarError> {
        if values.is_empty() || values.len() > MAX_LITERALS {
            return Err(GrammarError::schema(
                path,
                format!(
                    "has {} values; 1 to {MAX_LITERALS} are supported",
                    values.len()
                ),
            ));
        }
        let mut texts: Vec<Vec<u8>> = values
            .iter()
            .map(|v| serde_json::to_vec(v).expect("JSON values serialise"))
            .collect();
        texts.sort();
        texts.dedup();
        self.push(Node::Literals(texts), path)
    }

    fn any_of(&mut self, branches: &[Value], path: &str) -> Result<NodeId, GrammarError> {
        if branches.is_empty() {
            return Err(GrammarError::schema(path, "has no branches".into()));
        }
        let mut ids = Vec::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        for (i, branch) in branches.iter().enumerate() {
            let id = self.compile(branch, &format!("{path}/{i}"))?;
            // Flatten nested alternatives; merge literal sets into one node.
            match &self.nodes[id as usize] {
                Node::AnyOf { branches, .. } => ids.extend(branches.iter().copied()),
                Node::Literals(texts) => literals.extend(texts.iter().cloned()),
                _ => ids.push(id),
            }
        }
        if !literals.is_empty() {
            literals.sort();
            literals.dedup();
            if literals.len() > MAX_LITERALS {
                return Err(GrammarError::schema(
                    path,
                    format!("has more than {MAX_LITERALS} literal values"),
                ));
            }
            ids.push(self.push(Node::Literals(literals), path)?);
        }
        if ids.len() == 1 {
            return Ok(ids[0]);
        }
        let mut dispatch = Box::new([NO_BRANCH; 256]);
        for &id in &ids {
            for (byte, starts) in self.first_bytes(id).iter().enumerate() {
                if !*starts {
                    continue;
                }
                if dispatch[byte] != NO_BRANCH {
                    return Err(GrammarError::schema(
                        path,
                        format!(
                            "has branches that can both begin with {:?}; they must begin differently",
                            byte as u8 as char
                        ),
                    ));
                }
                dispatch[byte] = id;
            }
        }
        self.push(
            Node::AnyOf {
                branches: ids,
                dispatch,
            },
            path,
        )
    }
}

/// A non-negative integer keyword such as `maxLength`.
fn bound(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, GrammarError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            GrammarError::schema(path, format!("has {key} {v}, not a non-negative integer"))
        }),
    }
}
