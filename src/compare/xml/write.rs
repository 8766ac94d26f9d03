//! Escaping and serialization shared by the canonical form, the delta writer
//! and the reconstruction.

use std::io::{self, Write};

use super::{Kind, XmlDoc};

/// Writes `s` escaped for element content.
pub(super) fn text<W: Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    escape(out, s, false)
}

/// Writes `s` escaped for a double-quoted attribute value.
pub(super) fn attr_value<W: Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    escape(out, s, true)
}

fn escape<W: Write + ?Sized>(out: &mut W, s: &str, attr: bool) -> io::Result<()> {
    let bytes = s.as_bytes();
    let mut last = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let rep: &[u8] = match c {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#13;",
            b'"' if attr => b"&quot;",
            b'\n' if attr => b"&#10;",
            b'\t' if attr => b"&#9;",
            _ => continue,
        };
        out.write_all(&bytes[last..i])?;
        out.write_all(rep)?;
        last = i + 1;
    }
    out.write_all(&bytes[last..])
}

/// ` name="value"`
pub(super) fn attribute<W: Write + ?Sized>(out: &mut W, name: &str, value: &str) -> io::Result<()> {
    out.write_all(b" ")?;
    out.write_all(name.as_bytes())?;
    out.write_all(b"=\"")?;
    attr_value(out, value)?;
    out.write_all(b"\"")
}

pub(super) fn comment<W: Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    out.write_all(b"<!--")?;
    out.write_all(s.as_bytes())?;
    out.write_all(b"-->")
}

pub(super) fn pi<W: Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    out.write_all(b"<?")?;
    out.write_all(s.as_bytes())?;
    out.write_all(b"?>")
}

pub(super) fn end_tag<W: Write + ?Sized>(out: &mut W, name: &str) -> io::Result<()> {
    out.write_all(b"</")?;
    out.write_all(name.as_bytes())?;
    out.write_all(b">")
}

/// Writes the canonical form of the whole document.
pub(super) fn write_canonical<W: Write + ?Sized>(doc: &XmlDoc, out: &mut W) -> io::Result<()> {
    // Open elements, innermost last: (subtree end, name symbol).
    let mut open: Vec<(u32, u32)> = Vec::new();
    for i in 1..doc.nodes.len() as u32 {
        while let Some(&(end, name)) = open.last() {
            if end > i {
                break;
            }
            end_tag(out, doc.name(name))?;
            open.pop();
        }
        let n = &doc.nodes[i as usize];
        match n.kind {
            Kind::Element => {
                out.write_all(b"<")?;
                out.write_all(doc.name(n.name).as_bytes())?;
                for a in doc.attrs_of(n) {
                    attribute(out, doc.name(a.name), doc.value(a))?;
                }
                out.write_all(b">")?;
                open.push((n.end, n.name));
            }
            Kind::Text => text(out, doc.text(n))?,
            Kind::Comment => comment(out, doc.text(n))?,
            Kind::Pi => pi(out, doc.text(n))?,
            Kind::Document => {}
        }
    }
    while let Some((_, name)) = open.pop() {
        end_tag(out, doc.name(name))?;
    }
    Ok(())
}
