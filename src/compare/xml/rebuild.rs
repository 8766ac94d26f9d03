//! Reconstruction of input A or B (canonical form) from a delta document.

use std::io::Write;

use super::super::{DiffError, Limits, NoControl};
use super::{write, Kind, Side, XmlDoc, XmlOptions, DELTA_NS};

fn bad(message: impl Into<String>) -> DiffError {
    DiffError::Parse {
        position: None,
        message: format!("not a valid delta document: {}", message.into()),
    }
}

struct Delta {
    doc: XmlDoc,
    side: Side,
    op: Option<u32>,
    attr: Option<u32>,
    text: Option<u32>,
    comment: Option<u32>,
    pi: Option<u32>,
    old: Option<u32>,
    new: Option<u32>,
}

enum Task {
    Node(u32),
    End(u32),
}

/// Reconstructs the canonical form (see [`super::canonical`]) of input A or
/// B from a delta produced by [`super::diff_xml`].
pub fn rebuild(delta: &[u8], side: Side) -> Result<String, DiffError> {
    let opts = XmlOptions {
        limits: Limits {
            max_depth: usize::MAX,
            max_nodes: usize::MAX,
        },
        ..XmlOptions::default()
    };
    let doc = XmlDoc::parse(delta, &opts, &mut NoControl)?;
    let root = doc
        .kids_of(&doc.nodes[0])
        .iter()
        .copied()
        .find(|&k| doc.nodes[k as usize].kind == Kind::Element)
        .ok_or_else(|| bad("no root element"))?;
    let root_node = doc.nodes[root as usize];
    let prefix = doc
        .attrs_of(&root_node)
        .iter()
        .find_map(|at| {
            let name = doc.name(at.name);
            name.strip_prefix("xmlns:")
                .filter(|_| doc.value(at) == DELTA_NS)
        })
        .ok_or_else(|| bad(format!("the root element does not declare {DELTA_NS}")))?
        .to_string();
    if doc.name(root_node.name) != format!("{prefix}:delta") {
        return Err(bad(format!("the root element is not <{prefix}:delta>")));
    }
    let sym = |local: &str| doc.lookup(&format!("{prefix}:{local}"));
    let (op, attr, text, comment, pi, old, new) = (
        sym("op"),
        sym("attr"),
        sym("text"),
        sym("comment"),
        sym("pi"),
        sym("old"),
        sym("new"),
    );
    let d = Delta {
        doc,
        side,
        op,
        attr,
        text,
        comment,
        pi,
        old,
        new,
    };
    let mut out = Vec::with_capacity(delta.len());
    d.walk(root, &mut out)?;
    String::from_utf8(out).map_err(|_| bad("invalid UTF-8"))
}

impl Delta {
    /// Value of the attribute `name` (a symbol) of element `n`.
    fn attr_sym(&self, n: u32, name: Option<u32>) -> Option<&str> {
        let name = name?;
        let node = &self.doc.nodes[n as usize];
        self.doc
            .attrs_of(node)
            .iter()
            .find(|at| at.name == name)
            .map(|at| self.doc.value(at))
    }

    /// Value of the unprefixed attribute `name` of element `n`.
    fn attr_str(&self, n: u32, name: &str) -> Option<&str> {
        let node = &self.doc.nodes[n as usize];
        self.doc
            .attrs_of(node)
            .iter()
            .find(|at| self.doc.name(at.name) == name)
            .map(|at| self.doc.value(at))
    }

    fn is(&self, n: u32, sym: Option<u32>) -> bool {
        let node = &self.doc.nodes[n as usize];
        node.kind == Kind::Element && Some(node.name) == sym
    }

    /// Whether a node with operation `op` belongs to the side rebuilt.
    fn included(&self, op: &str) -> Result<bool, DiffError> {
        Ok(match op {
            "unchanged" | "changed" => true,
            "added" => self.side == Side::B,
            "deleted" => self.side == Side::A,
            other => return Err(bad(format!("unknown operation '{other}'"))),
        })
    }

    /// Concatenated text children of element `n`.
    fn content(&self, n: u32) -> String {
        let node = &self.doc.nodes[n as usize];
        let mut s = String::new();
        for &k in self.doc.kids_of(node) {
            let kn = &self.doc.nodes[k as usize];
            if kn.kind == Kind::Text {
                s.push_str(self.doc.text(kn));
            }
        }
        s
    }

    fn walk(&self, root: u32, out: &mut Vec<u8>) -> Result<(), DiffError> {
        let doc = &self.doc;
        let mut tasks: Vec<Task> = doc
            .kids_of(&doc.nodes[root as usize])
            .iter()
            .rev()
            .map(|&k| Task::Node(k))
            .collect();
        while let Some(task) = tasks.pop() {
            let n = match task {
                Task::End(name) => {
                    write::end_tag(out, doc.name(name))?;
                    continue;
                }
                Task::Node(n) => n,
            };
            let node = &doc.nodes[n as usize];
            match node.kind {
                Kind::Text => write::text(out, doc.text(node))?,
                Kind::Comment => write::comment(out, doc.text(node))?,
                Kind::Pi => write::pi(out, doc.text(node))?,
                Kind::Document => {}
                Kind::Element => {
                    if self.is(n, self.text) || self.is(n, self.comment) || self.is(n, self.pi) {
                        self.leaf_item(n, out)?;
                    } else {
                        self.element(n, out, &mut tasks)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `d:text`, `d:comment`, `d:pi`.
    fn leaf_item(&self, n: u32, out: &mut Vec<u8>) -> Result<(), DiffError> {
        let doc = &self.doc;
        let op = self
            .attr_str(n, "op")
            .ok_or_else(|| bad("an item has no op attribute"))?;
        if !self.included(op)? {
            return Ok(());
        }
        let content = if op == "changed" {
            let want = if self.side == Side::A {
                self.old
            } else {
                self.new
            };
            let part = doc
                .kids_of(&doc.nodes[n as usize])
                .iter()
                .copied()
                .find(|&k| self.is(k, want))
                .ok_or_else(|| bad("a changed item lacks its old or new part"))?;
            self.content(part)
        } else {
            self.content(n)
        };
        if self.is(n, self.text) {
            write::text(out, &content)?;
        } else if self.is(n, self.comment) {
            write::comment(out, &content)?;
        } else {
            write::pi(out, &content)?;
        }
        Ok(())
    }

    fn element(&self, n: u32, out: &mut Vec<u8>, tasks: &mut Vec<Task>) -> Result<(), DiffError> {
        let doc = &self.doc;
        let node = &doc.nodes[n as usize];
        let name = doc.name(node.name);
        let op = self
            .attr_sym(n, self.op)
            .ok_or_else(|| bad(format!("element <{name}> has no op attribute")))?;
        if !self.included(op)? {
            return Ok(());
        }
        let mut attrs: Vec<(&str, &str)> = doc
            .attrs_of(node)
            .iter()
            .filter(|at| Some(at.name) != self.op)
            .map(|at| (doc.name(at.name), doc.value(at)))
            .collect();
        let kids = doc.kids_of(node);
        if op == "changed" {
            for &k in kids.iter().filter(|&&k| self.is(k, self.attr)) {
                let item_op = self
                    .attr_str(k, "op")
                    .ok_or_else(|| bad("an attribute item has no op"))?;
                let (relevant, value, pos) = match self.side {
                    Side::A => (matches!(item_op, "changed" | "deleted"), "old", "old-pos"),
                    Side::B => (matches!(item_op, "changed" | "added"), "new", "new-pos"),
                };
                if !relevant {
                    continue;
                }
                let attr_name = self
                    .attr_str(k, "name")
                    .ok_or_else(|| bad("an attribute item has no name"))?;
                let value = self
                    .attr_str(k, value)
                    .ok_or_else(|| bad(format!("attribute item '{attr_name}' lacks '{value}'")))?;
                match self.attr_str(k, pos) {
                    Some(p) => {
                        let p: usize =
                            p.parse().map_err(|_| bad(format!("invalid {pos} '{p}'")))?;
                        attrs.insert(p.min(attrs.len()), (attr_name, value));
                    }
                    None => attrs.push((attr_name, value)),
                }
            }
        }
        out.write_all(b"<")?;
        out.write_all(name.as_bytes())?;
        for (k, v) in &attrs {
            write::attribute(out, k, v)?;
        }
        out.write_all(b">")?;
        tasks.push(Task::End(node.name));
        tasks.extend(
            kids.iter()
                .rev()
                .filter(|&&k| !(op == "changed" && self.is(k, self.attr)))
                .map(|&k| Task::Node(k)),
        );
        Ok(())
    }
}
