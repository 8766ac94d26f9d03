//! JSON values as XML and back, so every resource can be served and accepted in
//! either format with the same field names.
//!
//! XML has no arrays, numbers or booleans of its own, so reading is guided by a
//! [`Shape`]; without one, `<tags><tag>a</tag></tags>` could not be told apart
//! from an object and `"5"` from `5`.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::{Map, Number, Value};

/// A schema the XML parser follows: enough to know arrays and scalar types.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Known fields in order; unknown child elements are kept so that a strict parser can refuse them.
    Object(Vec<(String, Shape)>),
    /// A free-form object whose leaves become numbers when they are written like JSON numbers.
    Map,
    /// Every child element is one item, whatever its name, because item names vary by resource.
    Array(Box<Shape>),
    /// Text kept exactly, whitespace included.
    String,
    /// Text that must parse as an `i64`.
    Integer,
    /// Text that must parse as an `i64` or a finite `f64`.
    Number,
    /// `true`/`false`, or `1`/`0` as some XML writers emit.
    Boolean,
    /// Free-form content where text stays text, since no type can be inferred safely.
    Any,
}

/// Bounds that keep a hostile body from exhausting memory or stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Deepest element nesting accepted, the root counting as 1.
    pub max_depth: usize,
    /// Largest document accepted, checked before any parsing.
    pub max_bytes: usize,
    /// Most elements and attributes together (each becomes a value).
    pub max_values: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            max_depth: 64,
            max_bytes: 64 * 1024 * 1024,
            max_values: 100_000,
        }
    }
}

/// Why an XML body was refused, worded for the client that sent it.
#[derive(thiserror::Error, Debug)]
pub enum XmlError {
    /// The document is not well-formed XML.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the problem.
        line: u64,
        /// 1-based column, in bytes, of the problem.
        column: u64,
        /// What is wrong there.
        message: String,
    },
    /// The document is well-formed but does not fit the expected shape.
    #[error("{path}: {message}")]
    Shape {
        /// JSON-pointer-like location, e.g. `/data/2/features`.
        path: String,
        /// What was expected and what was found.
        message: String,
    },
    /// Refused outright, since entity expansion is how "billion laughs" bodies blow up.
    #[error("document type declarations and entities are not accepted")]
    Dtd,
    /// Nesting beyond the limit.
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    /// Input beyond the size limit.
    #[error("document larger than {0} bytes")]
    TooLarge(usize),
    /// More elements and attributes than the limit.
    #[error("more than {0} elements and attributes")]
    TooManyValues(usize),
}

/// Most attributes one element may have: no request body needs more, and each is compared with
/// the others for duplicates.
const MAX_ATTRIBUTES: usize = 256;

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Serializes `value` as an XML document whose root element is `root`.
pub fn to_xml(root: &str, value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    write_element(&mut out, root, value);
    out
}

/// The element name of each item of an array stored under `key`.
pub fn item_name(key: &str) -> String {
    let fixed = match key {
        "links" => Some("link"),
        "errors" => Some("error"),
        "jobs" => Some("job"),
        "messages" => Some("message"),
        "files" => Some("file"),
        "features" => Some("feature"),
        "data" => Some("tool"),
        "items" => Some("item"),
        "operations" => Some("operation"),
        "tools" => Some("tool"),
        "stages" => Some("stage"),
        _ => None,
    };
    if let Some(name) = fixed {
        return name.to_owned();
    }
    let derived = if let Some(stem) = key.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = key.strip_suffix('s') {
        stem.to_owned()
    } else {
        String::new()
    };
    if is_xml_name(&derived) {
        derived
    } else {
        "item".to_owned()
    }
}

/// Appends `value` as the element `name` (objects as children, arrays as repeated items).
pub fn write_element(out: &mut String, name: &str, value: &Value) {
    // A key that is not an XML name (e.g. "2x" or "a b") would make the
    // document ill-formed, so it travels in an attribute instead.
    let tag = if is_xml_name(name) { name } else { "entry" };
    out.push('<');
    out.push_str(tag);
    if tag != name {
        out.push_str(" key=\"");
        escape_into(out, name, true);
        out.push('"');
    }
    match value {
        Value::Null => out.push_str("/>"),
        Value::Bool(b) => write_text(out, tag, if *b { "true" } else { "false" }),
        Value::Number(n) => write_text(out, tag, &n.to_string()),
        Value::String(s) => write_text(out, tag, s),
        Value::Object(fields) => {
            let mut open = false;
            for (key, field) in fields.iter().filter(|(_, v)| !v.is_null()) {
                if !open {
                    out.push('>');
                    open = true;
                }
                write_element(out, key, field);
            }
            close(out, tag, open);
        }
        Value::Array(items) => {
            let item = item_name(name);
            let mut open = false;
            for entry in items.iter().filter(|v| !v.is_null()) {
                if !open {
                    out.push('>');
                    open = true;
                }
                match link_attributes(name, entry) {
                    Some(attrs) => write_link(out, &item, attrs),
                    None => write_element(out, &item, entry),
                }
            }
            close(out, tag, open);
        }
    }
}

fn write_text(out: &mut String, tag: &str, text: &str) {
    if text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    escape_into(out, text, false);
    close(out, tag, true);
}

fn close(out: &mut String, tag: &str, open: bool) {
    if open {
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    } else {
        out.push_str("/>");
    }
}

/// Links are written as attributes because that is the form clients of the XML API expect.
fn link_attributes<'a>(key: &str, item: &'a Value) -> Option<&'a Map<String, Value>> {
    let fields = item.as_object().filter(|_| key == "links")?;
    let flat = fields
        .iter()
        .all(|(k, v)| is_xml_name(k) && !v.is_array() && !v.is_object());
    flat.then_some(fields)
}

fn write_link(out: &mut String, tag: &str, attrs: &Map<String, Value>) {
    out.push('<');
    out.push_str(tag);
    for (key, value) in attrs {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push(' ');
        out.push_str(key);
        out.push_str("=\"");
        escape_into(out, &text, true);
        out.push('"');
    }
    out.push_str("/>");
}

/// Appends `text` escaped for element content or (with `attribute`) an attribute value.
pub fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A raw CR would be normalized away by any conforming reader.
            '\r' => out.push_str("&#13;"),
            '"' if attribute => out.push_str("&quot;"),
            // Attribute-value normalization would turn these into spaces.
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            // XML 1.0 cannot carry these at all, not even as character references.
            c if !is_xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// Colons are excluded so that no key is mistaken for a namespace prefix.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start)
        && chars.all(|c| {
            is_name_start(c)
                || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
        })
}

// ---------------------------------------------------------------------------
// Reading: events and trees (shared with the streaming import reader)
// ---------------------------------------------------------------------------

/// A reader that remembers where recent lines start, so that errors can name
/// a line and column even though the body is streamed and never kept whole.
pub(crate) struct Tracked<R> {
    inner: R,
    consumed: u64,
    newlines: VecDeque<u64>,
    pruned_lines: u64,
    last_pruned_newline: Option<u64>,
}

impl<R: BufRead> Tracked<R> {
    fn new(inner: R) -> Self {
        Tracked {
            inner,
            consumed: 0,
            newlines: VecDeque::new(),
            pruned_lines: 0,
            last_pruned_newline: None,
        }
    }

    /// Forgets newlines before `offset`: no error can be reported there any more.
    fn prune(&mut self, offset: u64) {
        while let Some(&front) = self.newlines.front() {
            if front >= offset {
                break;
            }
            self.newlines.pop_front();
            self.pruned_lines += 1;
            self.last_pruned_newline = Some(front);
        }
    }

    fn locate(&self, offset: u64) -> (u64, u64) {
        let before = self.newlines.iter().take_while(|&&nl| nl < offset).count();
        let line = 1 + self.pruned_lines + before as u64;
        let last_newline = match before {
            0 => self.last_pruned_newline,
            n => Some(self.newlines[n - 1]),
        };
        let column = match last_newline {
            Some(nl) => offset - nl,
            None => offset + 1,
        };
        (line, column)
    }
}

impl<R: BufRead> Read for Tracked<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tracked<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The bytes being consumed are still in the inner buffer, so this does no I/O.
        if let Ok(buf) = self.inner.fill_buf() {
            let seen = amt.min(buf.len());
            let base = self.consumed;
            self.newlines.extend(
                buf[..seen]
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'\n')
                    .map(|(i, _)| base + i as u64),
            );
        }
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

/// An element read into memory; only ever one request body or one record at a time.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Node>,
    pub(crate) text: String,
}

impl Node {
    /// Whitespace between child elements is layout, not content.
    pub(crate) fn has_text(&self) -> bool {
        !is_xml_whitespace(&self.text)
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.children.is_empty() && self.attrs.is_empty()
    }
}

/// The parts of the XML event stream that matter here, owned and already unescaped.
pub(crate) enum Ev {
    Start(Node),
    Empty(Node),
    End,
    Text(String),
    Eof,
}

/// Pull parser over any buffered reader, refusing DTDs and unknown entities.
pub(crate) struct XmlStream<R: BufRead> {
    reader: Reader<Tracked<R>>,
    buf: Vec<u8>,
    /// Elements and attributes still allowed.
    values_left: usize,
    max_values: usize,
}

fn syntax_at<R: BufRead>(
    reader: &Reader<Tracked<R>>,
    offset: u64,
    message: impl Into<String>,
) -> XmlError {
    let (line, column) = reader.get_ref().locate(offset);
    XmlError::Syntax {
        line,
        column,
        message: message.into(),
    }
}

impl<R: BufRead> XmlStream<R> {
    pub(crate) fn new(inner: R) -> Self {
        let mut reader = Reader::from_reader(Tracked::new(inner));
        let config = reader.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        XmlStream {
            reader,
            buf: Vec::new(),
            values_left: usize::MAX,
            max_values: usize::MAX,
        }
    }

    /// Allow at most `n` elements and attributes in what is read from now on.
    pub(crate) fn with_max_values(mut self, n: usize) -> Self {
        self.values_left = n;
        self.max_values = n;
        self
    }

    /// A syntax error at the current position.
    pub(crate) fn error(&self, message: impl Into<String>) -> XmlError {
        syntax_at(&self.reader, self.reader.buffer_position(), message)
    }

    pub(crate) fn next(&mut self) -> Result<Ev, XmlError> {
        let XmlStream {
            reader,
            buf,
            values_left,
            max_values,
        } = self;
        let budget = (values_left, *max_values);
        loop {
            buf.clear();
            let done = reader.buffer_position();
            reader.get_mut().prune(done);
            let event = match reader.read_event_into(buf) {
                Ok(event) => event,
                Err(e) => return Err(syntax_at(reader, reader.error_position(), e.to_string())),
            };
            let here = |message: String| syntax_at(reader, reader.buffer_position(), message);
            return match event {
                Event::Start(e) => Ok(Ev::Start(node_from(reader, &e, budget)?)),
                Event::Empty(e) => Ok(Ev::Empty(node_from(reader, &e, budget)?)),
                Event::End(_) => Ok(Ev::End),
                Event::Text(t) => match t.xml10_content() {
                    Ok(text) => Ok(Ev::Text(text.into_owned())),
                    Err(e) => Err(here(e.to_string())),
                },
                Event::CData(c) => match c.xml10_content() {
                    Ok(text) => Ok(Ev::Text(text.into_owned())),
                    Err(e) => Err(here(e.to_string())),
                },
                Event::GeneralRef(r) => {
                    let name = r.decode().map_err(|e| here(e.to_string()))?.into_owned();
                    if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => Ok(Ev::Text(c.to_string())),
                            _ => Err(here(format!("invalid character reference `&{name};`"))),
                        }
                    } else {
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(text) => Ok(Ev::Text(text.to_owned())),
                            None => Err(here(format!(
                                "unknown entity `&{name};`; only the predefined XML entities and character references are accepted"
                            ))),
                        }
                    }
                }
                Event::DocType(_) => Err(XmlError::Dtd),
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) => continue,
                Event::Eof => Ok(Ev::Eof),
            };
        }
    }

    /// Reads the rest of the element `head` (already at `depth`, 1-based) into a tree.
    pub(crate) fn read_element(
        &mut self,
        head: Node,
        depth: usize,
        max_depth: usize,
    ) -> Result<Node, XmlError> {
        // A stack rather than recursion keeps hostile nesting off the call stack.
        let mut stack = vec![head];
        loop {
            let child_depth = depth + stack.len();
            match self.next()? {
                Ev::Start(node) => {
                    if child_depth > max_depth {
                        return Err(XmlError::TooDeep(max_depth));
                    }
                    stack.push(node);
                }
                Ev::Empty(node) => {
                    if child_depth > max_depth {
                        return Err(XmlError::TooDeep(max_depth));
                    }
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(node);
                    }
                }
                Ev::Text(text) => {
                    if let Some(parent) = stack.last_mut() {
                        parent.text.push_str(&text);
                    }
                }
                Ev::End => {
                    let Some(done) = stack.pop() else {
                        return Err(self.error("unexpected closing tag"));
                    };
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                Ev::Eof => {
                    let open = stack.last().map(|n| n.name.as_str()).unwrap_or_default();
                    return Err(self.error(format!(
                        "unexpected end of document: `<{open}>` is not closed"
                    )));
                }
            }
        }
    }

    /// Reads a whole document and returns its root element.
    fn read_document(&mut self, max_depth: usize) -> Result<Node, XmlError> {
        let root = loop {
            match self.next()? {
                Ev::Text(text) if is_xml_whitespace(&text) => continue,
                Ev::Text(_) => return Err(self.error("text outside the root element")),
                Ev::Start(_) | Ev::Empty(_) if max_depth == 0 => {
                    return Err(XmlError::TooDeep(max_depth));
                }
                Ev::Start(node) => break self.read_element(node, 1, max_depth)?,
                Ev::Empty(node) => break node,
                Ev::End => return Err(self.error("unexpected closing tag")),
                Ev::Eof => return Err(self.error("the document has no root element")),
            }
        };
        loop {
            match self.next()? {
                Ev::Text(text) if is_xml_whitespace(&text) => continue,
                Ev::Text(_) => return Err(self.error("text after the root element")),
                Ev::Start(_) | Ev::Empty(_) => {
                    return Err(self.error("only one root element is allowed"))
                }
                Ev::End => return Err(self.error("unexpected closing tag")),
                Ev::Eof => return Ok(root),
            }
        }
    }
}

fn node_from<R: BufRead>(
    reader: &Reader<Tracked<R>>,
    start: &BytesStart,
    (left, max): (&mut usize, usize),
) -> Result<Node, XmlError> {
    let here = |message: String| syntax_at(reader, reader.buffer_position(), message);
    let mut take = || match left.checked_sub(1) {
        Some(l) => {
            *left = l;
            Ok(())
        }
        None => Err(XmlError::TooManyValues(max)),
    };
    take()?;
    let decoder = reader.decoder();
    let mut node = Node {
        name: decoder
            .decode(start.name().as_ref())
            .map_err(|e| here(e.to_string()))?
            .into_owned(),
        ..Node::default()
    };
    // quick-xml's own duplicate check compares each attribute with all before it, without
    // bound; ours runs over at most MAX_ATTRIBUTES.
    for (i, attr) in start.attributes().with_checks(false).enumerate() {
        if i >= MAX_ATTRIBUTES {
            return Err(here(format!(
                "more than {MAX_ATTRIBUTES} attributes on one element"
            )));
        }
        take()?;
        let attr = attr.map_err(|e| here(e.to_string()))?;
        let key = decoder
            .decode(attr.key.as_ref())
            .map_err(|e| here(e.to_string()))?
            .into_owned();
        if node.attrs.iter().any(|(k, _)| *k == key) {
            return Err(here(format!("attribute `{key}` appears twice")));
        }
        // Namespace declarations are markup, not data.
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = attr
            .decode_and_unescape_value(decoder)
            .map_err(|e| here(e.to_string()))?
            .into_owned();
        node.attrs.push((key, value));
    }
    // Undo the `<entry key="…">` form that `to_xml` uses for keys that are not XML names.
    if node.name == "entry" {
        if let Some(i) = node.attrs.iter().position(|(k, _)| k == "key") {
            node.name = node.attrs.remove(i).1;
        }
    }
    Ok(node)
}

pub(crate) fn is_xml_whitespace(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn xml_trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\r', '\n'])
}

// ---------------------------------------------------------------------------
// Reading: trees to values by shape
// ---------------------------------------------------------------------------

/// Parses an XML body into the JSON value it stands for, typed by `root_shape`.
pub fn from_xml(
    xml: &[u8],
    root_shape: &Shape,
    limits: &XmlLimits,
) -> Result<(String, Value), XmlError> {
    if xml.len() > limits.max_bytes {
        return Err(XmlError::TooLarge(limits.max_bytes));
    }
    let root = XmlStream::new(xml)
        .with_max_values(limits.max_values)
        .read_document(limits.max_depth)?;
    let value = convert(&root, root_shape, "")?;
    Ok((root.name, value))
}

fn shape_error(path: &str, message: impl Into<String>) -> XmlError {
    XmlError::Shape {
        path: if path.is_empty() { "/" } else { path }.to_owned(),
        message: message.into(),
    }
}

fn child_path(path: &str, name: &str) -> String {
    format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// Quotes found text for a message, shortened so a huge body does not become a huge error.
fn quoted(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("'{}…'", &text[..cut]),
        None => format!("'{text}'"),
    }
}

fn describe(shape: &Shape) -> &'static str {
    match shape {
        Shape::Object(_) | Shape::Map => "an object",
        Shape::Array(_) => "a list",
        Shape::String | Shape::Any => "a string",
        Shape::Integer => "an integer",
        Shape::Number => "a number",
        Shape::Boolean => "true or false",
    }
}

enum Source<'a> {
    Attr(&'a str),
    Elem(&'a Node),
}

fn convert(node: &Node, shape: &Shape, path: &str) -> Result<Value, XmlError> {
    match shape {
        Shape::Object(fields) => read_object(node, fields, path),
        Shape::Array(item) => read_array(node, item, path),
        Shape::Map => read_free(node, path, true),
        Shape::Any => read_free(node, path, false),
        scalar => {
            if !node.children.is_empty() {
                return Err(shape_error(
                    path,
                    format!("expected {}, found child elements", describe(scalar)),
                ));
            }
            convert_text(&node.text, scalar, path)
        }
    }
}

fn read_source(source: &Source, shape: &Shape, path: &str) -> Result<Value, XmlError> {
    match source {
        Source::Attr(text) => convert_text(text, shape, path),
        Source::Elem(node) => convert(node, shape, path),
    }
}

fn convert_text(text: &str, shape: &Shape, path: &str) -> Result<Value, XmlError> {
    let trimmed = xml_trim(text);
    match shape {
        Shape::String | Shape::Any => Ok(Value::String(text.to_owned())),
        Shape::Map => Ok(typed_leaf(text)),
        Shape::Integer => trimmed.parse::<i64>().map(Value::from).map_err(|_| {
            shape_error(
                path,
                format!("expected an integer, found {}", quoted(trimmed)),
            )
        }),
        Shape::Number => parse_number(trimmed).map(Value::Number).ok_or_else(|| {
            shape_error(
                path,
                format!("expected a number, found {}", quoted(trimmed)),
            )
        }),
        Shape::Boolean => match trimmed {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(shape_error(
                path,
                format!("expected true or false, found {}", quoted(trimmed)),
            )),
        },
        Shape::Object(_) | Shape::Array(_) => Err(shape_error(
            path,
            format!(
                "expected {} written as an element, found an attribute",
                describe(shape)
            ),
        )),
    }
}

fn parse_number(text: &str) -> Option<Number> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(u.into());
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Only text that JSON itself would print the same way becomes a number, so
/// identifiers like "007" or "1e3" keep their exact spelling.
fn typed_leaf(text: &str) -> Value {
    match text.parse::<Number>() {
        Ok(n) if n.to_string() == text => Value::Number(n),
        _ => Value::String(text.to_owned()),
    }
}

fn read_object(node: &Node, fields: &[(String, Shape)], path: &str) -> Result<Value, XmlError> {
    if node.has_text() {
        return Err(shape_error(
            path,
            format!(
                "expected child elements, found text {}",
                quoted(xml_trim(&node.text))
            ),
        ));
    }
    let sources = node
        .attrs
        .iter()
        .map(|(k, v)| (k.as_str(), Source::Attr(v)))
        .chain(
            node.children
                .iter()
                .map(|c| (c.name.as_str(), Source::Elem(c))),
        );
    let mut out = Map::new();
    for (name, source) in sources {
        let field_path = child_path(path, name);
        let Some((_, shape)) = fields.iter().find(|(f, _)| f == name) else {
            // Kept, not dropped, so that the strict parser downstream can name it.
            let value = read_source(&source, &Shape::Any, &field_path)?;
            insert_repeated(&mut out, name, value);
            continue;
        };
        let value = read_source(&source, shape, &field_path)?;
        match (out.get_mut(name), value) {
            (None, value) => {
                out.insert(name.to_owned(), value);
            }
            (Some(Value::Array(items)), Value::Array(more)) if matches!(shape, Shape::Array(_)) => {
                items.extend(more);
            }
            _ => {
                return Err(shape_error(
                    &field_path,
                    format!("`{name}` occurs more than once but takes a single value"),
                ))
            }
        }
    }
    Ok(Value::Object(out))
}

fn read_array(node: &Node, item: &Shape, path: &str) -> Result<Value, XmlError> {
    if node.has_text() {
        return Err(shape_error(
            path,
            format!(
                "expected a list of elements, found text {}",
                quoted(xml_trim(&node.text))
            ),
        ));
    }
    node.children
        .iter()
        .enumerate()
        .map(|(i, child)| convert(child, item, &format!("{path}/{i}")))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The free-form rule shared by `Any` and `Map`; `typed` makes leaves numbers where they look like JSON numbers.
fn read_free(node: &Node, path: &str, typed: bool) -> Result<Value, XmlError> {
    if node.is_leaf() {
        if typed && is_xml_whitespace(&node.text) {
            return Ok(Value::Object(Map::new()));
        }
        return Ok(Value::String(node.text.clone()));
    }
    if node.has_text() {
        return Err(shape_error(
            path,
            format!(
                "found text {} mixed with child elements",
                quoted(xml_trim(&node.text))
            ),
        ));
    }
    let leaf = |text: &str| {
        if typed {
            typed_leaf(text)
        } else {
            Value::String(text.to_owned())
        }
    };
    let mut out = Map::new();
    for (key, value) in &node.attrs {
        insert_repeated(&mut out, key, leaf(value));
    }
    for child in &node.children {
        let value = if child.is_leaf() {
            leaf(&child.text)
        } else {
            read_free(child, &child_path(path, &child.name), typed)?
        };
        insert_repeated(&mut out, &child.name, value);
    }
    Ok(Value::Object(out))
}

/// A repeated name is how XML spells a list when nothing else says so.
pub(crate) fn insert_repeated(out: &mut Map<String, Value>, key: &str, value: Value) {
    match out.get_mut(key) {
        None => {
            out.insert(key.to_owned(), value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn job_shape() -> Shape {
        let link = Shape::Object(vec![
            ("rel".into(), Shape::String),
            ("href".into(), Shape::String),
            ("method".into(), Shape::String),
            ("type".into(), Shape::String),
        ]);
        Shape::Object(vec![
            ("id".into(), Shape::String),
            ("status".into(), Shape::String),
            (
                "progress".into(),
                Shape::Object(vec![
                    ("done".into(), Shape::Integer),
                    ("total".into(), Shape::Integer),
                    ("percent".into(), Shape::Number),
                ]),
            ),
            ("messages".into(), Shape::Array(Box::new(Shape::String))),
            ("result".into(), Shape::Any),
            ("cancellable".into(), Shape::Boolean),
            ("links".into(), Shape::Array(Box::new(link))),
        ])
    }

    fn read(xml: &str, shape: &Shape) -> Result<(String, Value), XmlError> {
        from_xml(xml.as_bytes(), shape, &XmlLimits::default())
    }

    #[test]
    fn job_round_trips_without_nulls() {
        let job = json!({
            "id": "j-1 <&> \"q\"",
            "status": "running",
            "progress": {"done": 3, "total": 10, "percent": 30.5},
            "messages": ["started", "", "  padded  "],
            "result": null,
            "cancellable": true,
            "links": [
                {"rel": "self", "href": "/jobs/j-1?a=1&b=2", "method": "GET", "type": null},
                {"rel": "cancel", "href": "/jobs/j-1", "method": "DELETE", "type": "application/json"}
            ]
        });
        let xml = to_xml("job", &job);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><job>"));
        assert!(!xml.contains("result"));
        let (root, back) = read(&xml, &job_shape()).unwrap();
        assert_eq!(root, "job");
        let mut expected = job.clone();
        let obj = expected.as_object_mut().unwrap();
        obj.remove("result");
        obj["links"][0].as_object_mut().unwrap().remove("type");
        assert_eq!(back, expected);
    }

    #[test]
    fn links_are_attributes() {
        let value = json!({"links": [
            {"rel": "self", "href": "/x", "method": "GET", "type": "application/json"}
        ]});
        assert_eq!(
            to_xml("r", &value),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><r><links>\
             <link rel=\"self\" href=\"/x\" method=\"GET\" type=\"application/json\"/>\
             </links></r>"
        );
    }

    #[test]
    fn item_names() {
        assert_eq!(item_name("data"), "tool");
        assert_eq!(item_name("categories"), "category");
        assert_eq!(item_name("tags"), "tag");
        assert_eq!(item_name("s"), "item");
        assert_eq!(item_name("stuff"), "item");
        assert_eq!(
            to_xml("r", &json!({"data": [], "tags": ["a"]})),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><r><data/><tags><tag>a</tag></tags></r>"
        );
    }

    #[test]
    fn keys_that_are_not_names_round_trip() {
        let value = json!({"2nd": "x", "a b": {"c:d": 1}, "ok": "y"});
        let xml = to_xml("r", &value);
        assert!(xml.contains("<entry key=\"2nd\">x</entry>"));
        let (_, back) = read(&xml, &Shape::Map).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn entity_bomb_is_refused() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"#;
        assert!(matches!(read(bomb, &Shape::Any), Err(XmlError::Dtd)));
    }

    #[test]
    fn entities_and_references() {
        let (_, v) = read("<a>x &amp; &lt;&#65;&#x42;&gt; &quot;</a>", &Shape::String).unwrap();
        assert_eq!(v, json!("x & <AB> \""));
        let err = read("<a>\n  &lol;</a>", &Shape::String).unwrap_err();
        match err {
            XmlError::Syntax { line, message, .. } => {
                assert_eq!(line, 2);
                assert!(message.contains("&lol;"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = read("<a>\n<b>\n</c></a>", &Shape::Any).unwrap_err();
        assert!(matches!(err, XmlError::Syntax { line: 3, .. }), "{err}");
        let err = read("<a>\n  <b x=1/></a>", &Shape::Any).unwrap_err();
        assert!(matches!(err, XmlError::Syntax { line: 2, .. }), "{err}");
        assert!(matches!(
            read("", &Shape::Any),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            read("<a/><b/>", &Shape::Any),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            read("<a><b></b>", &Shape::Any),
            Err(XmlError::Syntax { .. })
        ));
    }

    #[test]
    fn depth_and_size_limits() {
        let deep = format!("{}{}", "<a>".repeat(70), "</a>".repeat(70));
        assert!(matches!(
            read(&deep, &Shape::Any),
            Err(XmlError::TooDeep(64))
        ));
        let ok = format!("{}{}", "<a>".repeat(64), "</a>".repeat(64));
        assert!(read(&ok, &Shape::Any).is_ok());
        let limits = XmlLimits {
            max_depth: 64,
            max_bytes: 10,
            ..XmlLimits::default()
        };
        // Many attributes: refused per element and in total, quickly (no quadratic check).
        let many = format!(
            "<a {}/>",
            (0..100_000)
                .map(|i| format!("a{i}=\"\""))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let t = std::time::Instant::now();
        assert!(from_xml(many.as_bytes(), &Shape::Any, &XmlLimits::default()).is_err());
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        let tight = XmlLimits {
            max_values: 3,
            ..XmlLimits::default()
        };
        assert!(from_xml(b"<a x=\"1\"><b/></a>", &Shape::Any, &tight).is_ok());
        assert!(matches!(
            from_xml(b"<a x=\"1\" y=\"2\"><b/></a>", &Shape::Any, &tight),
            Err(XmlError::TooManyValues(3))
        ));
        assert!(from_xml(b"<a x=\"1\" x=\"2\"/>", &Shape::Any, &XmlLimits::default()).is_err());
        assert!(matches!(
            from_xml(b"<a>12345678</a>", &Shape::Any, &limits),
            Err(XmlError::TooLarge(10))
        ));
    }

    #[test]
    fn type_errors_name_the_path() {
        let shape = Shape::Object(vec![(
            "data".into(),
            Shape::Array(Box::new(Shape::Object(vec![(
                "features".into(),
                Shape::Array(Box::new(Shape::Integer)),
            )]))),
        )]);
        let xml = "<r><data><tool/><tool/><tool><features><f>1</f><f>abc</f></features></tool></data></r>";
        let err = read(xml, &shape).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/data/2/features/1: expected an integer, found 'abc'"
        );
        let err = read(
            "<r><b>maybe</b></r>",
            &Shape::Object(vec![("b".into(), Shape::Boolean)]),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "/b: expected true or false, found 'maybe'");
        let err = read(
            "<r><s><x/></s></r>",
            &Shape::Object(vec![("s".into(), Shape::String)]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/s: expected a string, found child elements"
        );
        let err = read(
            "<r><s>a</s><s>b</s></r>",
            &Shape::Object(vec![("s".into(), Shape::String)]),
        )
        .unwrap_err();
        assert!(
            matches!(err, XmlError::Shape { ref path, .. } if path == "/s"),
            "{err}"
        );
    }

    #[test]
    fn scalars_are_typed() {
        let shape = Shape::Object(vec![
            ("i".into(), Shape::Integer),
            ("n".into(), Shape::Number),
            ("f".into(), Shape::Number),
            ("b".into(), Shape::Boolean),
            ("z".into(), Shape::Boolean),
        ]);
        let (_, v) = read(
            "<r><i> 42 </i><n>-7</n><f>2.5</f><b>1</b><z>false</z></r>",
            &shape,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"i": 42, "n": -7, "f": 2.5, "b": true, "z": false})
        );
    }

    #[test]
    fn arrays_of_one_and_none() {
        let shape = Shape::Object(vec![("tags".into(), Shape::Array(Box::new(Shape::String)))]);
        let (_, v) = read("<r><tags><tag>only</tag></tags></r>", &shape).unwrap();
        assert_eq!(v, json!({"tags": ["only"]}));
        let (_, v) = read("<r><tags/></r>", &shape).unwrap();
        assert_eq!(v, json!({"tags": []}));
        let (_, v) = read("<r><tags>\n  </tags></r>", &shape).unwrap();
        assert_eq!(v, json!({"tags": []}));
        let (_, v) = read("<r/>", &shape).unwrap();
        assert_eq!(v, json!({}));
    }

    #[test]
    fn unknown_elements_are_kept() {
        let shape = Shape::Object(vec![("name".into(), Shape::String)]);
        let xml =
            "<r extra=\"1\"><!-- note --><name>n</name><?pi x?><bogus><x>1</x><x>2</x></bogus></r>";
        let (_, v) = read(xml, &shape).unwrap();
        assert_eq!(
            v,
            json!({"extra": "1", "name": "n", "bogus": {"x": ["1", "2"]}})
        );
    }

    #[test]
    fn map_leaves_take_number_form_only_when_exact() {
        let (_, v) = read(
            "<m><a>5</a><b>007</b><c>x</c><d><e>1.5</e></d></m>",
            &Shape::Map,
        )
        .unwrap();
        assert_eq!(v, json!({"a": 5, "b": "007", "c": "x", "d": {"e": 1.5}}));
        let (_, v) = read("<m/>", &Shape::Map).unwrap();
        assert_eq!(v, json!({}));
    }

    #[derive(Debug, Clone)]
    enum Kind {
        Text,
        Int,
        Bool,
        Texts,
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["\\PC{0,16}", "[ a-z<>&\"'\\t\\n\\r]{0,12}"]
    }

    fn field(kind: Kind) -> BoxedStrategy<(Shape, Value)> {
        match kind {
            Kind::Text => text().prop_map(|s| (Shape::String, json!(s))).boxed(),
            Kind::Int => any::<i64>()
                .prop_map(|i| (Shape::Integer, json!(i)))
                .boxed(),
            Kind::Bool => any::<bool>()
                .prop_map(|b| (Shape::Boolean, json!(b)))
                .boxed(),
            Kind::Texts => proptest::collection::vec(text(), 0..4)
                .prop_map(|v| (Shape::Array(Box::new(Shape::String)), json!(v)))
                .boxed(),
        }
    }

    fn shaped_object() -> impl Strategy<Value = (Shape, Value)> {
        let kind = prop_oneof![
            Just(Kind::Text),
            Just(Kind::Int),
            Just(Kind::Bool),
            Just(Kind::Texts)
        ];
        proptest::collection::vec(kind, 0..6)
            .prop_flat_map(|kinds| kinds.into_iter().map(field).collect::<Vec<_>>())
            .prop_map(|fields| {
                let names = ["name", "count", "enabled", "tags", "categories", "features"];
                let mut shape = Vec::new();
                let mut value = Map::new();
                for (i, (s, v)) in fields.into_iter().enumerate() {
                    shape.push((names[i].to_owned(), s));
                    value.insert(names[i].to_owned(), v);
                }
                (Shape::Object(shape), Value::Object(value))
            })
    }

    proptest! {
        #[test]
        fn round_trip((shape, value) in shaped_object()) {
            let xml = to_xml("record", &value);
            let (root, back) = from_xml(xml.as_bytes(), &shape, &XmlLimits::default()).unwrap();
            prop_assert_eq!(root, "record");
            prop_assert_eq!(back, value);
        }
    }

    /// Bytes that are nearly XML, and noise.
    fn nearly_xml() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            "[<>/a-z =\"'!&;#x0-9\\[\\]?\n-]{0,160}".prop_map(String::into_bytes),
            shaped_object().prop_map(|(_, v)| {
                let mut x = to_xml("record", &v).into_bytes();
                let cut = x.len() * 2 / 3;
                x.truncate(cut);
                x
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes read by any shape: a value or an error, never a panic.
        #[test]
        fn from_xml_takes_any_bytes(bytes in nearly_xml(), which in 0usize..4) {
            let shape = match which {
                0 => job_shape(),
                1 => Shape::Map,
                2 => Shape::Array(Box::new(Shape::Map)),
                _ => Shape::Object(vec![("n".into(), Shape::Integer), ("b".into(), Shape::Boolean)]),
            };
            let limits = XmlLimits { max_depth: 8, max_bytes: 150, max_values: 1000 };
            let _ = from_xml(&bytes, &shape, &limits);
        }
    }
}
