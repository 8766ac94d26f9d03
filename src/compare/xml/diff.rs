//! The XML delta writer (format: FORMAT.md).
//!
//! Children of matched elements are aligned with a sequence diff over child
//! identities (subtree hash, or name + key attribute values). Inside replaced
//! regions a second sequence diff over child classes (element name + keys,
//! "text") pairs elements and texts in order. The walk is iterative, so deep
//! documents cannot overflow the stack.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use similar::{capture_diff_slices_deadline, Algorithm, DiffOp};

use super::super::hash::{finish, hash_bytes, mix};
use super::super::ticker::Ticker;
use super::super::{Control, DiffError, Summary};
use super::{write, Kind, XmlDoc, XmlOptions, DELTA_NS};

/// Time budget of one sequence diff; past it `similar` falls back to a
/// coarser (still correct) alignment. Keeps cancellation prompt.
const DIFF_TIME: Duration = Duration::from_millis(300);

const CLASS_ELEM: u64 = 0x0e1e;
const CLASS_TEXT: u64 = 0x7e47;
const KEY_TAG: u64 = 0x6b65;
const KEY_MISSING: u64 = 0x6d69;

#[derive(Debug, Clone, Copy)]
enum Item {
    /// Equal subtrees.
    Same(u32, u32),
    /// Paired elements (same name and keys) or texts that differ.
    Pair(u32, u32),
    Del(u32),
    Add(u32),
}

struct Frame {
    a: u32,
    items: Vec<Item>,
    pos: usize,
}

struct Ctx<'d, 'c> {
    a: &'d XmlDoc,
    b: &'d XmlDoc,
    /// Symbol of A's names in B.
    name_map: Vec<Option<u32>>,
    keys_a: Vec<Option<u32>>,
    keys_b: Vec<Option<u32>>,
    prefix: String,
    /// ` d:op="unchanged"` etc.
    op_unchanged: String,
    op_added: String,
    op_deleted: String,
    ticker: Ticker<'c>,
    summary: Summary,
}

/// Writes the delta between two parsed documents to `out` (buffered
/// internally) and returns its summary.
pub fn diff_xml(
    a: &XmlDoc,
    b: &XmlDoc,
    opts: &XmlOptions,
    ctl: &mut dyn Control,
    out: &mut dyn Write,
) -> Result<Summary, DiffError> {
    let total = (a.nodes.len() + b.nodes.len() - 2) as u64;
    let mut ticker = Ticker::new(ctl, total);
    ticker.check()?;
    let b_names: HashMap<&str, u32> = b
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (&**n, i as u32))
        .collect();
    let name_map = a.names.iter().map(|n| b_names.get(&**n).copied()).collect();
    let prefix = choose_prefix(a, b);
    let mut cx = Ctx {
        op_unchanged: format!(" {prefix}:op=\"unchanged\""),
        op_added: format!(" {prefix}:op=\"added\""),
        op_deleted: format!(" {prefix}:op=\"deleted\""),
        a,
        b,
        name_map,
        keys_a: opts.key_attributes.iter().map(|k| a.lookup(k)).collect(),
        keys_b: opts.key_attributes.iter().map(|k| b.lookup(k)).collect(),
        prefix,
        ticker,
        summary: Summary::default(),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let identical = cx.deep_eq(0, 0)?;
    cx.summary.identical = identical;
    let p = cx.prefix.clone();
    write!(
        out,
        "<{p}:delta xmlns:{p}=\"{DELTA_NS}\" identical=\"{identical}\">"
    )?;
    let items = cx.child_items(0, 0)?;
    let mut stack = vec![Frame {
        a: 0,
        items,
        pos: 0,
    }];
    while let Some(top) = stack.last_mut() {
        if top.pos == top.items.len() {
            let a_node = top.a;
            stack.pop();
            if a_node != 0 {
                write::end_tag(&mut out, a.name(a.nodes[a_node as usize].name))?;
            }
            continue;
        }
        let item = top.items[top.pos];
        top.pos += 1;
        match item {
            Item::Same(x, y) => {
                cx.write_subtree(&mut out, a, x, "unchanged")?;
                let size = (a.nodes[x as usize].end - x) + (b.nodes[y as usize].end - y);
                cx.ticker.done(size.into())?;
            }
            Item::Del(x) => {
                cx.write_one_sided(&mut out, a, x, "deleted")?;
                cx.ticker.done((a.nodes[x as usize].end - x).into())?;
            }
            Item::Add(y) => {
                cx.write_one_sided(&mut out, b, y, "added")?;
                cx.ticker.done((b.nodes[y as usize].end - y).into())?;
            }
            Item::Pair(x, y) => {
                cx.ticker.done(2)?;
                if a.nodes[x as usize].kind == Kind::Text {
                    cx.summary.changed += 1;
                    write!(out, "<{p}:text op=\"changed\"><{p}:old>")?;
                    write::text(&mut out, a.text(&a.nodes[x as usize]))?;
                    write!(out, "</{p}:old><{p}:new>")?;
                    write::text(&mut out, b.text(&b.nodes[y as usize]))?;
                    write!(out, "</{p}:new></{p}:text>")?;
                } else {
                    cx.write_changed_start(&mut out, x, y)?;
                    let items = cx.child_items(x, y)?;
                    stack.push(Frame {
                        a: x,
                        items,
                        pos: 0,
                    });
                }
            }
        }
    }
    write!(out, "</{p}:delta>")?;
    out.flush()?;
    cx.ticker.finish();
    Ok(cx.summary)
}

/// `d`, unless an input uses that prefix (in a name or an `xmlns:`
/// declaration); then `d1`, `d2`, ...
fn choose_prefix(a: &XmlDoc, b: &XmlDoc) -> String {
    let mut used: HashSet<&str> = HashSet::new();
    for name in a.names.iter().chain(b.names.iter()) {
        if let Some((p, rest)) = name.split_once(':') {
            used.insert(if p == "xmlns" { rest } else { p });
        }
    }
    if !used.contains("d") {
        return "d".to_string();
    }
    (1..)
        .map(|i| format!("d{i}"))
        .find(|p| !used.contains(p.as_str()))
        .expect("some prefix is free")
}

impl Ctx<'_, '_> {
    fn same_name(&self, x: u32, y: u32) -> bool {
        self.name_map[x as usize] == Some(y)
    }

    /// True if the subtrees are equal (hash check, then node by node).
    fn deep_eq(&mut self, x: u32, y: u32) -> Result<bool, DiffError> {
        let (a, b) = (self.a, self.b);
        let (nx, ny) = (&a.nodes[x as usize], &b.nodes[y as usize]);
        if nx.hash != ny.hash || nx.end - x != ny.end - y {
            return Ok(false);
        }
        let len = nx.end - x;
        for k in 0..len {
            let (p, q) = (&a.nodes[(x + k) as usize], &b.nodes[(y + k) as usize]);
            if p.kind != q.kind || p.kids_len != q.kids_len {
                return Ok(false);
            }
            match p.kind {
                Kind::Document => {}
                Kind::Element => {
                    if !self.same_name(p.name, q.name) {
                        return Ok(false);
                    }
                    let (pa, qa) = (a.attrs_of(p), b.attrs_of(q));
                    if pa.len() != qa.len() {
                        return Ok(false);
                    }
                    for (s, t) in pa.iter().zip(qa) {
                        if !self.same_name(s.name, t.name) || a.value(s) != b.value(t) {
                            return Ok(false);
                        }
                    }
                }
                Kind::Text | Kind::Comment | Kind::Pi => {
                    if a.text(p) != b.text(q) {
                        return Ok(false);
                    }
                }
            }
            if k & 0xfff == 0xfff {
                self.ticker.work(0x1000)?;
            }
        }
        Ok(true)
    }

    /// Key hash of an element that carries at least one key attribute.
    fn key_hash(doc: &XmlDoc, keys: &[Option<u32>], n: u32) -> Option<u64> {
        if keys.is_empty() {
            return None;
        }
        let node = &doc.nodes[n as usize];
        let attrs = doc.attrs_of(node);
        let mut h = mix(KEY_TAG, doc.name_hashes[node.name as usize]);
        let mut found = false;
        for (i, key) in keys.iter().enumerate() {
            let v = key.and_then(|k| attrs.iter().find(|at| at.name == k));
            h = mix(h, i as u64);
            match v {
                Some(at) => {
                    found = true;
                    h = mix(h, hash_bytes(doc.value(at).as_bytes()));
                }
                None => h = mix(h, KEY_MISSING),
            }
        }
        found.then(|| finish(h))
    }

    /// What the first sequence diff compares.
    fn identity(doc: &XmlDoc, keys: &[Option<u32>], n: u32) -> u64 {
        let node = &doc.nodes[n as usize];
        if node.kind == Kind::Element {
            if let Some(k) = Self::key_hash(doc, keys, n) {
                return k;
            }
        }
        node.hash
    }

    /// What the second sequence diff (inside replaced regions) compares.
    fn class(doc: &XmlDoc, keys: &[Option<u32>], n: u32) -> u64 {
        let node = &doc.nodes[n as usize];
        match node.kind {
            Kind::Element => Self::key_hash(doc, keys, n)
                .unwrap_or_else(|| finish(mix(CLASS_ELEM, doc.name_hashes[node.name as usize]))),
            Kind::Text => CLASS_TEXT,
            _ => node.hash,
        }
    }

    /// Emits Same, Pair, or Del+Add for two aligned children.
    fn align(&mut self, x: u32, y: u32, items: &mut Vec<Item>) -> Result<(), DiffError> {
        if self.deep_eq(x, y)? {
            items.push(Item::Same(x, y));
            return Ok(());
        }
        let (p, q) = (&self.a.nodes[x as usize], &self.b.nodes[y as usize]);
        let pairable = p.kind == q.kind
            && match p.kind {
                Kind::Element => {
                    self.same_name(p.name, q.name)
                        && Self::key_hash(self.a, &self.keys_a, x)
                            == Self::key_hash(self.b, &self.keys_b, y)
                }
                Kind::Text => true,
                _ => false,
            };
        if pairable {
            items.push(Item::Pair(x, y));
        } else {
            items.push(Item::Del(x));
            items.push(Item::Add(y));
        }
        Ok(())
    }

    fn child_items(&mut self, x: u32, y: u32) -> Result<Vec<Item>, DiffError> {
        let (a, b) = (self.a, self.b);
        let ka = a.kids_of(&a.nodes[x as usize]);
        let kb = b.kids_of(&b.nodes[y as usize]);
        self.ticker.work((ka.len() + kb.len()) as u64)?;
        let ida: Vec<u64> = ka
            .iter()
            .map(|&n| Self::identity(a, &self.keys_a, n))
            .collect();
        let idb: Vec<u64> = kb
            .iter()
            .map(|&n| Self::identity(b, &self.keys_b, n))
            .collect();
        let ops = capture_diff_slices_deadline(
            Algorithm::Myers,
            &ida,
            &idb,
            Some(Instant::now() + DIFF_TIME),
        );
        self.ticker.work((ka.len() + kb.len()) as u64)?;
        let mut items = Vec::with_capacity(ka.len().max(kb.len()));
        for op in ops {
            match op {
                DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } => {
                    for k in 0..len {
                        self.align(ka[old_index + k], kb[new_index + k], &mut items)?;
                    }
                }
                DiffOp::Delete {
                    old_index, old_len, ..
                } => items.extend(
                    ka[old_index..old_index + old_len]
                        .iter()
                        .map(|&n| Item::Del(n)),
                ),
                DiffOp::Insert {
                    new_index, new_len, ..
                } => items.extend(
                    kb[new_index..new_index + new_len]
                        .iter()
                        .map(|&n| Item::Add(n)),
                ),
                DiffOp::Replace {
                    old_index,
                    old_len,
                    new_index,
                    new_len,
                } => self.region(
                    &ka[old_index..old_index + old_len],
                    &kb[new_index..new_index + new_len],
                    &mut items,
                )?,
            }
        }
        Ok(items)
    }

    /// Pairs children of a replaced region by class, in order.
    fn region(&mut self, ra: &[u32], rb: &[u32], items: &mut Vec<Item>) -> Result<(), DiffError> {
        let (a, b) = (self.a, self.b);
        let ca: Vec<u64> = ra
            .iter()
            .map(|&n| Self::class(a, &self.keys_a, n))
            .collect();
        let cb: Vec<u64> = rb
            .iter()
            .map(|&n| Self::class(b, &self.keys_b, n))
            .collect();
        let ops = capture_diff_slices_deadline(
            Algorithm::Myers,
            &ca,
            &cb,
            Some(Instant::now() + DIFF_TIME),
        );
        for op in ops {
            let (oi, ol, ni, nl) = match op {
                DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } => {
                    for k in 0..len {
                        self.align(ra[old_index + k], rb[new_index + k], items)?;
                    }
                    continue;
                }
                DiffOp::Delete {
                    old_index, old_len, ..
                } => (old_index, old_len, 0, 0),
                DiffOp::Insert {
                    new_index, new_len, ..
                } => (0, 0, new_index, new_len),
                DiffOp::Replace {
                    old_index,
                    old_len,
                    new_index,
                    new_len,
                } => (old_index, old_len, new_index, new_len),
            };
            items.extend(ra[oi..oi + ol].iter().map(|&n| Item::Del(n)));
            items.extend(rb[ni..ni + nl].iter().map(|&n| Item::Add(n)));
        }
        Ok(())
    }

    /// Writes a subtree of `doc`, every element marked with `op`. Returns the
    /// number of elements written.
    fn write_subtree<W: Write>(
        &mut self,
        out: &mut W,
        doc: &XmlDoc,
        root: u32,
        op: &str,
    ) -> Result<u64, DiffError> {
        let mut open: Vec<(u32, u32)> = Vec::new();
        let mut elements = 0u64;
        let end = doc.nodes[root as usize].end;
        for i in root..end {
            while let Some(&(e, name)) = open.last() {
                if e > i {
                    break;
                }
                write::end_tag(out, doc.name(name))?;
                open.pop();
            }
            let n = &doc.nodes[i as usize];
            match n.kind {
                Kind::Element => {
                    elements += 1;
                    out.write_all(b"<")?;
                    out.write_all(doc.name(n.name).as_bytes())?;
                    for at in doc.attrs_of(n) {
                        write::attribute(out, doc.name(at.name), doc.value(at))?;
                    }
                    let op_attr = match op {
                        "added" => &self.op_added,
                        "deleted" => &self.op_deleted,
                        _ => &self.op_unchanged,
                    };
                    out.write_all(op_attr.as_bytes())?;
                    if n.kids_len == 0 {
                        out.write_all(b"/>")?;
                    } else {
                        out.write_all(b">")?;
                        open.push((n.end, n.name));
                    }
                }
                Kind::Text => write::text(out, doc.text(n))?,
                Kind::Comment => write::comment(out, doc.text(n))?,
                Kind::Pi => write::pi(out, doc.text(n))?,
                Kind::Document => {}
            }
            if (i - root) & 0xfff == 0xfff {
                self.ticker.work(0x1000)?;
            }
        }
        while let Some((_, name)) = open.pop() {
            write::end_tag(out, doc.name(name))?;
        }
        Ok(elements)
    }

    /// Writes a node that exists on one side only.
    fn write_one_sided<W: Write>(
        &mut self,
        out: &mut W,
        doc: &XmlDoc,
        n: u32,
        op: &str,
    ) -> Result<(), DiffError> {
        let node = &doc.nodes[n as usize];
        let tag = match node.kind {
            Kind::Element => {
                let count = self.write_subtree(out, doc, n, op)?;
                if op == "added" {
                    self.summary.added += count;
                } else {
                    self.summary.removed += count;
                }
                return Ok(());
            }
            Kind::Text => "text",
            Kind::Comment => "comment",
            Kind::Pi => "pi",
            Kind::Document => return Ok(()),
        };
        self.summary.changed += 1;
        let p = &self.prefix;
        write!(out, "<{p}:{tag} op=\"{op}\">")?;
        write::text(out, doc.text(node))?;
        write!(out, "</{p}:{tag}>")?;
        Ok(())
    }

    /// Writes the start tag of a changed element and its `d:attr` items.
    fn write_changed_start<W: Write>(
        &mut self,
        out: &mut W,
        x: u32,
        y: u32,
    ) -> Result<(), DiffError> {
        let (a, b) = (self.a, self.b);
        let (nx, ny) = (&a.nodes[x as usize], &b.nodes[y as usize]);
        let (aa, ab) = (a.attrs_of(nx), b.attrs_of(ny));
        let attr_hash = |doc: &XmlDoc, at: &super::Attr| {
            mix(
                doc.name_hashes[at.name as usize],
                hash_bytes(doc.value(at).as_bytes()),
            )
        };
        let ha: Vec<u64> = aa.iter().map(|at| attr_hash(a, at)).collect();
        let hb: Vec<u64> = ab.iter().map(|at| attr_hash(b, at)).collect();
        let mut kept_a = vec![false; aa.len()];
        let mut kept_b = vec![false; ab.len()];
        if ha != hb {
            for op in capture_diff_slices_deadline(Algorithm::Myers, &ha, &hb, None) {
                if let DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } = op
                {
                    for k in 0..len {
                        let (i, j) = (old_index + k, new_index + k);
                        if self.same_name(aa[i].name, ab[j].name)
                            && a.value(&aa[i]) == b.value(&ab[j])
                        {
                            kept_a[i] = true;
                            kept_b[j] = true;
                        }
                    }
                }
            }
        } else {
            for (i, (s, t)) in aa.iter().zip(ab).enumerate() {
                if self.same_name(s.name, t.name) && a.value(s) == b.value(t) {
                    kept_a[i] = true;
                    kept_b[i] = true;
                }
            }
        }
        out.write_all(b"<")?;
        out.write_all(a.name(nx.name).as_bytes())?;
        for (i, at) in aa.iter().enumerate() {
            if kept_a[i] {
                write::attribute(out, a.name(at.name), a.value(at))?;
            }
        }
        let p = &self.prefix;
        write!(out, " {p}:op=\"changed\">")?;

        // (index in A, index in B) of each d:attr item, in delta order.
        let mut changes: Vec<(Option<usize>, Option<usize>)> = Vec::new();
        let mut used_b = kept_b.clone();
        for (i, at) in aa.iter().enumerate() {
            if kept_a[i] {
                continue;
            }
            let j = (0..ab.len()).find(|&j| !used_b[j] && self.same_name(at.name, ab[j].name));
            if let Some(j) = j {
                used_b[j] = true;
            }
            changes.push((Some(i), j));
        }
        for (j, used) in used_b.iter().enumerate() {
            if !used {
                changes.push((None, Some(j)));
            }
        }
        let pos_a = insert_positions(&kept_a, changes.iter().map(|c| c.0));
        let pos_b = insert_positions(&kept_b, changes.iter().map(|c| c.1));
        for (k, &(i, j)) in changes.iter().enumerate() {
            self.summary.changed += 1;
            let (name, op) = match (i, j) {
                (Some(i), Some(_)) => (a.name(aa[i].name), "changed"),
                (Some(i), None) => (a.name(aa[i].name), "deleted"),
                (None, Some(j)) => (b.name(ab[j].name), "added"),
                (None, None) => unreachable!("an attribute item has a side"),
            };
            write!(out, "<{p}:attr")?;
            write::attribute(out, "name", name)?;
            write::attribute(out, "op", op)?;
            if let Some(i) = i {
                write::attribute(out, "old", a.value(&aa[i]))?;
            }
            if let Some(j) = j {
                write::attribute(out, "new", b.value(&ab[j]))?;
            }
            if let Some(pa) = pos_a[k] {
                write!(out, " old-pos=\"{pa}\"")?;
            }
            if let Some(pb) = pos_b[k] {
                write!(out, " new-pos=\"{pb}\"")?;
            }
            out.write_all(b"/>")?;
        }
        Ok(())
    }
}

/// For one side: given which attributes stay on the element (`kept`, in
/// final order) and the final index of each item (in delta order, `None` if
/// the item is not on this side), returns for each item the index at which
/// the reconstruction must insert it, or `None` when appending is right.
fn insert_positions(
    kept: &[bool],
    items: impl Iterator<Item = Option<usize>>,
) -> Vec<Option<usize>> {
    let mut present = kept.to_vec();
    let mut count = present.iter().filter(|&&p| p).count();
    items
        .map(|t| {
            let t = t?;
            let at = present[..t].iter().filter(|&&p| p).count();
            present[t] = true;
            count += 1;
            (at + 1 != count).then_some(at)
        })
        .collect()
}
