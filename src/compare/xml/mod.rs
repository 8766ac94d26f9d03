//! XML: parsing into a compact arena tree, the delta format (see FORMAT.md),
//! canonical form and reconstruction of either input from a delta.

mod diff;
mod rebuild;
mod write;

use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use super::hash::{hash_bytes, mix, FastBuild};
use super::ticker::Ticker;
use super::{Control, DiffError, Limits, NoControl, Position, Summary};

pub use diff::diff_xml;
pub use rebuild::rebuild;

/// The namespace of delta documents.
pub const DELTA_NS: &str = "urn:longrun:delta:1";

/// Options of XML parsing and comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlOptions {
    /// Attribute names (as written, e.g. `id` or `xml:id`) that identify an
    /// element among its siblings of the same name.
    pub key_attributes: Vec<String>,
    /// Drop text nodes that consist of whitespace only.
    pub ignore_whitespace: bool,
    /// Drop comments.
    pub ignore_comments: bool,
    pub limits: Limits,
}

/// Which input to reconstruct from a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Document,
    Element,
    Text,
    Comment,
    Pi,
}

/// One node of the arena. Nodes are stored in document order (pre-order),
/// so the subtree of node `i` is `i..end`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    /// Structural hash of the whole subtree.
    pub(super) hash: u64,
    /// Element: first attribute index. Text/comment/PI: pool start.
    pub(super) a: u32,
    /// Element: attribute count. Text/comment/PI: byte length in the pool.
    pub(super) b: u32,
    pub(super) kids_start: u32,
    pub(super) kids_len: u32,
    /// Exclusive end of the subtree in `nodes`.
    pub(super) end: u32,
    /// Element name symbol.
    pub(super) name: u32,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Attr {
    pub(super) name: u32,
    pub(super) start: u32,
    pub(super) len: u32,
}

/// A parsed XML document: an arena of nodes, child lists, attributes, a pool
/// holding all (unescaped) text and attribute values, and interned names.
#[derive(Debug, Clone)]
pub struct XmlDoc {
    pub(super) nodes: Vec<Node>,
    pub(super) attrs: Vec<Attr>,
    pub(super) kids: Vec<u32>,
    pub(super) pool: String,
    pub(super) names: Vec<Box<str>>,
    pub(super) name_hashes: Vec<u64>,
}

const TAG_ELEM: u64 = 0x11;
const TAG_TEXT: u64 = 0x22;
const TAG_COMMENT: u64 = 0x33;
const TAG_PI: u64 = 0x44;
const TAG_DOC: u64 = 0x55;

impl XmlDoc {
    /// Parses `bytes` (UTF-8). A DOCTYPE is refused, as are documents nested
    /// deeper than `opts.limits.max_depth` or with more than `max_nodes`
    /// nodes. Polls `ctl` every ~10 000 events; progress is in bytes.
    pub fn parse(
        bytes: &[u8],
        opts: &XmlOptions,
        ctl: &mut dyn Control,
    ) -> Result<XmlDoc, DiffError> {
        Parser::run(bytes, opts, ctl)
    }

    /// Number of nodes, including the document node.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Approximate heap memory in use by the tree, in bytes (spare capacity
    /// that was reserved but never touched is not counted).
    pub fn heap_size(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<Node>()
            + self.attrs.len() * std::mem::size_of::<Attr>()
            + self.kids.len() * 4
            + self.pool.len()
            + self.names.iter().map(|n| n.len() + 24).sum::<usize>()
    }

    /// The canonical form of this document (see [`canonical`]).
    pub fn canonical(&self) -> String {
        let mut out = Vec::with_capacity(self.pool.len() * 2);
        write::write_canonical(self, &mut out).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("canonical output is UTF-8")
    }

    #[inline]
    pub(super) fn name(&self, sym: u32) -> &str {
        &self.names[sym as usize]
    }

    /// Text of a text/comment/PI node.
    #[inline]
    pub(super) fn text(&self, n: &Node) -> &str {
        &self.pool[n.a as usize..(n.a + n.b) as usize]
    }

    #[inline]
    pub(super) fn value(&self, a: &Attr) -> &str {
        &self.pool[a.start as usize..(a.start + a.len) as usize]
    }

    #[inline]
    pub(super) fn attrs_of(&self, n: &Node) -> &[Attr] {
        if n.kind == Kind::Element {
            &self.attrs[n.a as usize..(n.a + n.b) as usize]
        } else {
            &[]
        }
    }

    #[inline]
    pub(super) fn kids_of(&self, n: &Node) -> &[u32] {
        &self.kids[n.kids_start as usize..(n.kids_start + n.kids_len) as usize]
    }

    /// Symbol of `name` if it occurs in this document.
    pub(super) fn lookup(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .position(|n| &**n == name)
            .map(|i| i as u32)
    }
}

/// The canonical form of an XML input: no XML declaration or DOCTYPE,
/// elements as `<x a="v"></x>` with attributes in document order, text
/// escaped (`&amp; &lt; &gt;`, `&#13;`), attribute values escaped
/// (`&amp; &lt; &gt; &quot; &#9; &#10; &#13;`), comments and processing
/// instructions as written, no whitespace outside the root element.
pub fn canonical(xml: &[u8], opts: &XmlOptions) -> Result<String, DiffError> {
    Ok(XmlDoc::parse(xml, opts, &mut NoControl)?.canonical())
}

/// Parses both inputs and writes their delta to `out`.
pub fn compare_xml(
    a: &[u8],
    b: &[u8],
    opts: &XmlOptions,
    ctl: &mut dyn Control,
    out: &mut dyn std::io::Write,
) -> Result<Summary, DiffError> {
    let da = XmlDoc::parse(a, opts, ctl)?;
    let db = XmlDoc::parse(b, opts, ctl)?;
    diff_xml(&da, &db, opts, ctl, out)
}

struct Parser<'i, 'o> {
    input: &'i [u8],
    opts: &'o XmlOptions,
    doc: XmlDoc,
    interner: HashMap<Box<str>, u32, FastBuild>,
    /// Direct-mapped cache in front of `interner`: slot -> symbol + 1.
    name_cache: [u32; 256],
    /// Open elements: (node index, start of its children in `pending`).
    stack: Vec<(u32, usize)>,
    /// Children of the open elements, innermost last.
    pending: Vec<u32>,
    /// Pool start of the text node being accumulated.
    text_start: Option<usize>,
    seen_root: bool,
}

/// `bytes` as a sub-slice of `text` when it points into it (no UTF-8
/// re-validation), else validated on its own.
fn as_str<'t>(text: &'t str, bytes: &'t [u8]) -> Option<&'t str> {
    let base = text.as_ptr() as usize;
    let at = (bytes.as_ptr() as usize).wrapping_sub(base);
    if at <= text.len() && bytes.len() <= text.len() - at {
        if let Some(s) = text.get(at..at + bytes.len()) {
            return Some(s);
        }
    }
    std::str::from_utf8(bytes).ok()
}

fn is_xml_space(s: &str) -> bool {
    s.bytes().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
}

impl<'i, 'o> Parser<'i, 'o> {
    fn run(
        input: &'i [u8],
        opts: &'o XmlOptions,
        ctl: &mut dyn Control,
    ) -> Result<XmlDoc, DiffError> {
        if input.len() >= u32::MAX as usize / 2 {
            return Err(DiffError::refused("the document is larger than 2 GiB"));
        }
        let text = match std::str::from_utf8(input) {
            Ok(t) => t,
            Err(e) => {
                return Err(DiffError::parse_at(
                    input,
                    e.valid_up_to(),
                    "the document is not valid UTF-8",
                ));
            }
        };
        let mut p = Parser {
            input,
            opts,
            doc: XmlDoc {
                // Generous estimates: capacity that is never touched costs
                // address space only, while regrowing copies.
                nodes: Vec::with_capacity(input.len() / 10 + 16),
                attrs: Vec::with_capacity(input.len() / 16 + 16),
                kids: Vec::with_capacity(input.len() / 10 + 16),
                pool: String::with_capacity(input.len() + 16),
                names: Vec::new(),
                name_hashes: Vec::new(),
            },
            interner: HashMap::default(),
            name_cache: [0; 256],
            stack: Vec::new(),
            pending: Vec::new(),
            text_start: None,
            seen_root: false,
        };
        p.doc.nodes.push(Node {
            hash: 0,
            a: 0,
            b: 0,
            kids_start: 0,
            kids_len: 0,
            end: 0,
            name: 0,
            kind: Kind::Document,
        });
        p.stack.push((0, 0));
        let mut ticker = Ticker::new(ctl, input.len() as u64);
        ticker.check()?;
        let mut reader = Reader::from_str(text);
        let mut events: u64 = 0;
        loop {
            let before = reader.buffer_position() as usize;
            let ev = match reader.read_event() {
                Ok(ev) => ev,
                Err(e) => {
                    let at = (reader.error_position() as usize).max(before);
                    return Err(DiffError::parse_at(input, at, xml_error_text(&e)));
                }
            };
            events += 1;
            if events & 0x1fff == 0 {
                ticker.done_at(reader.buffer_position());
                ticker.work(0x2000)?;
            }
            match ev {
                Event::Start(e) => {
                    let id = p.open(&e, before, &reader)?;
                    p.stack.push((id, p.pending.len()));
                }
                Event::Empty(e) => {
                    let id = p.open(&e, before, &reader)?;
                    p.stack.push((id, p.pending.len()));
                    p.close();
                }
                Event::End(_) => {
                    p.flush_text();
                    if p.stack.len() <= 1 {
                        return Err(DiffError::parse_at(input, before, "unexpected end tag"));
                    }
                    p.close();
                }
                Event::Text(t) => {
                    let s = as_str(text, &t).ok_or_else(|| {
                        DiffError::parse_at(input, before, "the document is not valid UTF-8")
                    })?;
                    p.text(s, before, true)?;
                }
                Event::CData(t) => {
                    let s = as_str(text, &t).ok_or_else(|| {
                        DiffError::parse_at(input, before, "the document is not valid UTF-8")
                    })?;
                    p.text(s, before, false)?;
                }
                Event::GeneralRef(r) => {
                    let ch = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => c,
                            _ => {
                                return Err(DiffError::parse_at(
                                    input,
                                    before,
                                    format!(
                                        "invalid character reference '&{};'",
                                        String::from_utf8_lossy(&r)
                                    ),
                                ));
                            }
                        }
                    } else {
                        match &*r {
                            b"lt" => '<',
                            b"gt" => '>',
                            b"amp" => '&',
                            b"apos" => '\'',
                            b"quot" => '"',
                            other => {
                                return Err(DiffError::parse_at(
                                    input,
                                    before,
                                    format!(
                                        "unknown entity reference '&{};' (only the five predefined entities and character references are supported)",
                                        String::from_utf8_lossy(other)
                                    ),
                                ));
                            }
                        }
                    };
                    let mut buf = [0u8; 4];
                    p.text(ch.encode_utf8(&mut buf), before, false)?;
                }
                Event::Comment(c) => {
                    if !p.opts.ignore_comments {
                        p.flush_text();
                        let s = as_str(text, &c).ok_or_else(|| {
                            DiffError::parse_at(input, before, "the document is not valid UTF-8")
                        })?;
                        p.leaf(Kind::Comment, s)?;
                    }
                }
                Event::PI(pi) => {
                    p.flush_text();
                    let s = as_str(text, &pi).ok_or_else(|| {
                        DiffError::parse_at(input, before, "the document is not valid UTF-8")
                    })?;
                    p.leaf(Kind::Pi, s)?;
                }
                Event::Decl(_) => {}
                Event::DocType(_) => {
                    return Err(DiffError::refused(format!(
                        "{}: document type declarations (DOCTYPE, DTD, entities) are not accepted",
                        Position::at(input, before)
                    )));
                }
                Event::Eof => {
                    p.flush_text();
                    if p.stack.len() > 1 {
                        let (open, _) = p.stack[p.stack.len() - 1];
                        let name = p.doc.name(p.doc.nodes[open as usize].name).to_string();
                        return Err(DiffError::parse_at(
                            input,
                            input.len(),
                            format!("unexpected end of document: element <{name}> is not closed"),
                        ));
                    }
                    if !p.seen_root {
                        return Err(DiffError::parse_at(
                            input,
                            input.len(),
                            "the document has no root element",
                        ));
                    }
                    p.close();
                    break;
                }
            }
        }
        ticker.done_at(input.len() as u64);
        ticker.finish();
        Ok(p.doc)
    }

    fn intern(&mut self, name: &str) -> u32 {
        let bytes = name.as_bytes();
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        let key = mix(u64::from_le_bytes(w), bytes.len() as u64);
        let slot = (key >> 56) as usize;
        let cached = self.name_cache[slot];
        if cached != 0 && &*self.doc.names[cached as usize - 1] == name {
            return cached - 1;
        }
        if let Some(&s) = self.interner.get(name) {
            self.name_cache[slot] = s + 1;
            return s;
        }
        let s = self.doc.names.len() as u32;
        self.doc.names.push(name.into());
        self.doc.name_hashes.push(hash_bytes(name.as_bytes()));
        self.interner.insert(name.into(), s);
        s
    }

    fn check_nodes(&self) -> Result<(), DiffError> {
        if self.doc.nodes.len() >= self.opts.limits.max_nodes {
            return Err(DiffError::refused(format!(
                "the document has more than {} nodes",
                self.opts.limits.max_nodes
            )));
        }
        Ok(())
    }

    fn open(
        &mut self,
        e: &quick_xml::events::BytesStart<'_>,
        at: usize,
        reader: &Reader<&[u8]>,
    ) -> Result<u32, DiffError> {
        self.flush_text();
        let input = self.input;
        if self.stack.len() == 1 {
            if self.seen_root {
                return Err(DiffError::parse_at(
                    input,
                    at,
                    "content after the root element: a document has exactly one root element",
                ));
            }
            self.seen_root = true;
        }
        if self.stack.len() > self.opts.limits.max_depth {
            return Err(DiffError::refused(format!(
                "{}: elements are nested deeper than {} levels",
                Position::at(input, at),
                self.opts.limits.max_depth
            )));
        }
        self.check_nodes()?;
        let name = std::str::from_utf8(e.name().into_inner())
            .map_err(|_| DiffError::parse_at(input, at, "the document is not valid UTF-8"))?;
        let name = self.intern(name);
        let attr_start = self.doc.attrs.len();
        let mut h = mix(TAG_ELEM, self.doc.name_hashes[name as usize]);
        for attr in e.attributes() {
            let attr = attr.map_err(|err| {
                DiffError::parse_at(input, at, format!("invalid attribute: {err}"))
            })?;
            let key = std::str::from_utf8(attr.key.into_inner())
                .map_err(|_| DiffError::parse_at(input, at, "the document is not valid UTF-8"))?;
            let value = attr
                .decode_and_unescape_value(reader.decoder())
                .map_err(|err| {
                    DiffError::parse_at(
                        input,
                        at,
                        format!(
                            "in the value of attribute '{key}': {}",
                            xml_error_text(&err)
                        ),
                    )
                })?;
            let key = self.intern(key);
            let start = self.doc.pool.len();
            self.doc.pool.push_str(&value);
            h = mix(
                h,
                mix(
                    self.doc.name_hashes[key as usize],
                    hash_bytes(value.as_bytes()),
                ),
            );
            self.doc.attrs.push(Attr {
                name: key,
                start: start as u32,
                len: value.len() as u32,
            });
        }
        let id = self.doc.nodes.len() as u32;
        self.doc.nodes.push(Node {
            hash: h,
            a: attr_start as u32,
            b: (self.doc.attrs.len() - attr_start) as u32,
            kids_start: 0,
            kids_len: 0,
            end: 0,
            name,
            kind: Kind::Element,
        });
        self.pending.push(id);
        Ok(id)
    }

    /// Closes the innermost open element (or the document node).
    fn close(&mut self) {
        let (id, from) = self.stack.pop().expect("an element is open");
        let kids_start = self.doc.kids.len();
        let mut h = self.doc.nodes[id as usize].hash;
        if id == 0 {
            h = TAG_DOC;
        }
        for &k in &self.pending[from..] {
            h = mix(h, self.doc.nodes[k as usize].hash);
        }
        self.doc.kids.extend_from_slice(&self.pending[from..]);
        let kids_len = self.pending.len() - from;
        self.pending.truncate(from);
        let end = self.doc.nodes.len() as u32;
        let n = &mut self.doc.nodes[id as usize];
        n.hash = super::hash::finish(mix(h, kids_len as u64));
        n.kids_start = kids_start as u32;
        n.kids_len = kids_len as u32;
        n.end = end;
    }

    fn text(&mut self, s: &str, at: usize, normalize: bool) -> Result<(), DiffError> {
        if self.stack.len() == 1 {
            if is_xml_space(s) && normalize {
                return Ok(());
            }
            return Err(DiffError::parse_at(
                self.input,
                at,
                if self.seen_root {
                    "text after the root element"
                } else {
                    "text before the root element"
                },
            ));
        }
        if self.text_start.is_none() {
            self.text_start = Some(self.doc.pool.len());
        }
        if normalize && s.as_bytes().contains(&b'\r') {
            // XML end-of-line handling: CR LF and lone CR become LF.
            let mut it = s.chars().peekable();
            while let Some(c) = it.next() {
                if c == '\r' {
                    if it.peek() == Some(&'\n') {
                        it.next();
                    }
                    self.doc.pool.push('\n');
                } else {
                    self.doc.pool.push(c);
                }
            }
        } else {
            self.doc.pool.push_str(s);
        }
        Ok(())
    }

    fn flush_text(&mut self) {
        let Some(start) = self.text_start.take() else {
            return;
        };
        let s = &self.doc.pool[start..];
        if s.is_empty() || (self.opts.ignore_whitespace && is_xml_space(s)) {
            self.doc.pool.truncate(start);
            return;
        }
        let h = super::hash::finish(mix(TAG_TEXT, hash_bytes(s.as_bytes())));
        let len = s.len();
        self.push_leaf(Kind::Text, start, len, h);
    }

    fn leaf(&mut self, kind: Kind, s: &str) -> Result<(), DiffError> {
        self.check_nodes()?;
        let start = self.doc.pool.len();
        self.doc.pool.push_str(s);
        let tag = if kind == Kind::Comment {
            TAG_COMMENT
        } else {
            TAG_PI
        };
        let h = super::hash::finish(mix(tag, hash_bytes(s.as_bytes())));
        self.push_leaf(kind, start, s.len(), h);
        Ok(())
    }

    fn push_leaf(&mut self, kind: Kind, start: usize, len: usize, hash: u64) {
        let id = self.doc.nodes.len() as u32;
        self.doc.nodes.push(Node {
            hash,
            a: start as u32,
            b: len as u32,
            kids_start: 0,
            kids_len: 0,
            end: id + 1,
            name: 0,
            kind,
        });
        self.pending.push(id);
    }
}

fn xml_error_text(e: &quick_xml::Error) -> String {
    use quick_xml::errors::IllFormedError;
    match e {
        quick_xml::Error::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
            format!("expected '</{expected}>', found '</{found}>'")
        }
        quick_xml::Error::IllFormed(IllFormedError::UnmatchedEndTag(name)) => {
            format!("end tag '</{name}>' does not match any open element")
        }
        other => other.to_string(),
    }
}
