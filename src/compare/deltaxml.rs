//! The service's delta (`urn:longrun:delta:1`, FORMAT.md) written as a DeltaXML well-formed
//! delta (`deltaxml:deltaV2`, DELTAXML.md): the form seed 002's dialect serves.
//!
//! A streaming rewrite of the delta's events: `d:op` becomes `deltaxml:deltaV2`, `d:attr`,
//! `d:text`, `d:comment` and `d:pi` items become their `deltaxml:` forms, and everything else
//! (the inputs' own text, comments, PIs, attributes) is copied byte for byte.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::xml::DELTA_NS;
use super::DiffError;

/// The namespace of DeltaXML's well-formed delta.
pub const DELTAXML_NS: &str = "http://deltaxml.com/ns/well-formed-delta-v1";

fn bad(message: impl Into<String>) -> DiffError {
    DiffError::Parse {
        position: None,
        message: format!("not a valid delta document: {}", message.into()),
    }
}

/// `d:op` value to `deltaxml:deltaV2` value.
fn v2(op: &str) -> Result<&'static str, DiffError> {
    Ok(match op {
        "unchanged" => "A=B",
        "changed" => "A!=B",
        "deleted" => "A",
        "added" => "B",
        other => return Err(bad(format!("unknown op `{other}`"))),
    })
}

fn attr(e: &BytesStart, name: &str) -> Result<Option<String>, DiffError> {
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|e| bad(e.to_string()))?;
        if a.key.as_ref() == name.as_bytes() {
            // The raw (still escaped) value: copied into an attribute or text as it is.
            return Ok(Some(String::from_utf8_lossy(&a.value).into_owned()));
        }
    }
    Ok(None)
}

/// An attribute value as element text: `"` needs no escape there, and the value's escapes
/// (`&amp;`, `&lt;`, `&#10;` …) mean the same in text.
fn value_as_text(raw: &str) -> &str {
    raw
}

/// What a `d:attr` item says.
struct AttrItem {
    name: String,
    op: String,
    old: Option<String>,
    new: Option<String>,
}

fn write_attrs(out: &mut String, items: &mut Vec<AttrItem>) -> Result<(), DiffError> {
    if items.is_empty() {
        return Ok(());
    }
    out.push_str("<deltaxml:attributes deltaxml:deltaV2=\"A!=B\">");
    for it in items.drain(..) {
        let v = v2(&it.op)?;
        out.push_str("<deltaxml:attribute name=\"");
        out.push_str(&it.name);
        out.push_str("\" deltaxml:deltaV2=\"");
        out.push_str(v);
        out.push_str("\">");
        for (side, val) in [("A", &it.old), ("B", &it.new)] {
            let wanted = match v {
                "A" => side == "A",
                "B" => side == "B",
                _ => true,
            };
            if let (true, Some(val)) = (wanted, val) {
                out.push_str("<deltaxml:attributeValue deltaxml:deltaV2=\"");
                out.push_str(side);
                out.push_str("\">");
                out.push_str(value_as_text(val));
                out.push_str("</deltaxml:attributeValue>");
            }
        }
        out.push_str("</deltaxml:attribute>");
    }
    out.push_str("</deltaxml:attributes>");
    Ok(())
}

/// The tag of an element with the delta attribute renamed: `<x a="1" d:op="changed">` becomes
/// `<x a="1" deltaxml:deltaV2="A!=B">` (plus the namespace declaration on the root).
fn write_start(
    out: &mut String,
    e: &BytesStart,
    op_name: &str,
    declare: bool,
    empty: bool,
) -> Result<(), DiffError> {
    out.push('<');
    out.push_str(&String::from_utf8_lossy(e.name().as_ref()));
    if declare {
        out.push_str(" xmlns:deltaxml=\"");
        out.push_str(DELTAXML_NS);
        out.push('"');
    }
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|e| bad(e.to_string()))?;
        let value = String::from_utf8_lossy(&a.value);
        if a.key.as_ref() == op_name.as_bytes() {
            out.push_str(" deltaxml:deltaV2=\"");
            out.push_str(v2(&value)?);
            out.push('"');
        } else {
            out.push(' ');
            out.push_str(&String::from_utf8_lossy(a.key.as_ref()));
            out.push_str("=\"");
            out.push_str(&value);
            out.push('"');
        }
    }
    out.push_str(if empty { "/>" } else { ">" });
    Ok(())
}

/// The delta's top level: its prefix, and whether it holds exactly one element and no
/// delta item (then that element is the root; otherwise a `deltaxml:delta` wraps them).
fn survey(delta: &[u8]) -> Result<(String, bool), DiffError> {
    let mut r = Reader::from_reader(delta);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut prefix = None::<String>;
    let (mut elements, mut items) = (0usize, 0usize);
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                if depth == 0 {
                    for a in e.attributes().with_checks(false) {
                        let a = a.map_err(|e| bad(e.to_string()))?;
                        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                        if let Some(p) = key.strip_prefix("xmlns:") {
                            if a.value.as_ref() == DELTA_NS.as_bytes() {
                                prefix = Some(p.to_string());
                            }
                        }
                    }
                    let p = prefix.clone().ok_or_else(|| {
                        bad(format!("the root element does not declare {DELTA_NS}"))
                    })?;
                    if e.name().as_ref() != format!("{p}:delta").as_bytes() {
                        return Err(bad(format!("the root element is not <{p}:delta>")));
                    }
                } else if depth == 1 {
                    let p = prefix.as_deref().unwrap_or("d");
                    if e.name().as_ref().starts_with(format!("{p}:").as_bytes()) {
                        items += 1;
                    } else {
                        elements += 1;
                    }
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let prefix = prefix.ok_or_else(|| bad("no root element"))?;
    Ok((prefix, elements == 1 && items == 0))
}

/// Writes `delta` (a document of `diff_xml`) as a DeltaXML well-formed delta.
pub fn to_deltaxml(delta: &[u8]) -> Result<Vec<u8>, DiffError> {
    let (p, single_root) = survey(delta)?;
    let (root_name, op_name) = (format!("{p}:delta"), format!("{p}:op"));
    let item = |local: &str| format!("{p}:{local}");
    let (attr_n, text_n, comment_n, pi_n, old_n, new_n) = (
        item("attr"),
        item("text"),
        item("comment"),
        item("pi"),
        item("old"),
        item("new"),
    );
    let mut out = String::with_capacity(delta.len() + delta.len() / 4);
    let mut r = Reader::from_reader(delta);
    let mut buf = Vec::new();
    // What each open element of the delta closes with in the output (None: nothing).
    let mut closes: Vec<Option<String>> = Vec::new();
    let mut attrs: Vec<AttrItem> = Vec::new();
    let mut declared = false;
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        if !matches!(ev, Event::Empty(ref e) if e.name().as_ref() == attr_n.as_bytes()) {
            write_attrs(&mut out, &mut attrs)?;
        }
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.name();
                let name = name.as_ref();
                let op = || -> Result<&'static str, DiffError> {
                    v2(&attr(e, "op")?.ok_or_else(|| bad("an item without `op`"))?)
                };
                let close = if name == root_name.as_bytes() {
                    if single_root {
                        None
                    } else {
                        let v = if attr(e, "identical")?.as_deref() == Some("true") {
                            "A=B"
                        } else {
                            "A!=B"
                        };
                        out.push_str(&format!(
                            "<deltaxml:delta xmlns:deltaxml=\"{DELTAXML_NS}\" deltaxml:deltaV2=\"{v}\">"
                        ));
                        declared = true;
                        Some("</deltaxml:delta>".to_string())
                    }
                } else if name == attr_n.as_bytes() {
                    attrs.push(AttrItem {
                        name: attr(e, "name")?.ok_or_else(|| bad("d:attr without `name`"))?,
                        op: attr(e, "op")?.ok_or_else(|| bad("d:attr without `op`"))?,
                        old: attr(e, "old")?,
                        new: attr(e, "new")?,
                    });
                    None
                } else if name == text_n.as_bytes() {
                    let v = op()?;
                    out.push_str(&format!("<deltaxml:textGroup deltaxml:deltaV2=\"{v}\">"));
                    if v == "A!=B" {
                        Some("</deltaxml:textGroup>".to_string())
                    } else {
                        out.push_str(&format!("<deltaxml:text deltaxml:deltaV2=\"{v}\">"));
                        Some("</deltaxml:text></deltaxml:textGroup>".to_string())
                    }
                } else if name == old_n.as_bytes() || name == new_n.as_bytes() {
                    let side = if name == old_n.as_bytes() { "A" } else { "B" };
                    out.push_str(&format!("<deltaxml:text deltaxml:deltaV2=\"{side}\">"));
                    Some("</deltaxml:text>".to_string())
                } else if name == comment_n.as_bytes() || name == pi_n.as_bytes() {
                    let tag = if name == comment_n.as_bytes() {
                        "comment"
                    } else {
                        "pi"
                    };
                    out.push_str(&format!("<deltaxml:{tag} deltaxml:deltaV2=\"{}\">", op()?));
                    Some(format!("</deltaxml:{tag}>"))
                } else {
                    write_start(&mut out, e, &op_name, !declared, empty)?;
                    declared = true;
                    (!empty).then(|| format!("</{}>", String::from_utf8_lossy(name)))
                };
                if empty {
                    if let Some(c) = close {
                        out.push_str(&c);
                    }
                } else {
                    closes.push(close);
                }
            }
            Event::End(_) => {
                if let Some(Some(c)) = closes.pop() {
                    out.push_str(&c);
                }
            }
            Event::Text(t) => out.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                out.push('&');
                out.push_str(&String::from_utf8_lossy(&r));
                out.push(';');
            }
            Event::CData(t) => {
                out.push_str("<![CDATA[");
                out.push_str(&String::from_utf8_lossy(&t));
                out.push_str("]]>");
            }
            Event::Comment(t) => {
                out.push_str("<!--");
                out.push_str(&String::from_utf8_lossy(&t));
                out.push_str("-->");
            }
            Event::PI(t) => {
                out.push_str("<?");
                out.push_str(&String::from_utf8_lossy(&t));
                out.push_str("?>");
            }
            Event::Decl(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
        buf.clear();
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{diff_xml, NoControl, XmlOptions};

    fn convert(a: &str, b: &str, opts: XmlOptions) -> String {
        let (da, db) = (
            crate::compare::XmlDoc::parse(a.as_bytes(), &opts, &mut NoControl).unwrap(),
            crate::compare::XmlDoc::parse(b.as_bytes(), &opts, &mut NoControl).unwrap(),
        );
        let mut out = Vec::new();
        diff_xml(&da, &db, &opts, &mut NoControl, &mut out).unwrap();
        String::from_utf8(to_deltaxml(&out).unwrap()).unwrap()
    }

    #[test]
    fn seed_example_shape() {
        let got = convert(
            "<root><child>same</child><child>old</child></root>",
            "<root><child>same</child><child>new</child></root>",
            XmlOptions::default(),
        );
        assert_eq!(
            got,
            "<root xmlns:deltaxml=\"http://deltaxml.com/ns/well-formed-delta-v1\" deltaxml:deltaV2=\"A!=B\">\
             <child deltaxml:deltaV2=\"A=B\">same</child>\
             <child deltaxml:deltaV2=\"A!=B\"><deltaxml:textGroup deltaxml:deltaV2=\"A!=B\">\
             <deltaxml:text deltaxml:deltaV2=\"A\">old</deltaxml:text>\
             <deltaxml:text deltaxml:deltaV2=\"B\">new</deltaxml:text></deltaxml:textGroup></child></root>"
        );
    }

    #[test]
    fn attributes_added_deleted_and_identical() {
        let opts = XmlOptions {
            key_attributes: vec!["id".into()],
            ..XmlOptions::default()
        };
        let got = convert(
            "<c><i id=\"1\" p=\"5\" q=\"x&amp;y\">t</i><i id=\"2\"/></c>",
            "<c><i id=\"1\" p=\"6\" s=\"y\">t</i><i id=\"3\"/></c>",
            opts,
        );
        assert_eq!(
            got,
            "<c xmlns:deltaxml=\"http://deltaxml.com/ns/well-formed-delta-v1\" deltaxml:deltaV2=\"A!=B\">\
             <i id=\"1\" deltaxml:deltaV2=\"A!=B\"><deltaxml:attributes deltaxml:deltaV2=\"A!=B\">\
             <deltaxml:attribute name=\"p\" deltaxml:deltaV2=\"A!=B\"><deltaxml:attributeValue deltaxml:deltaV2=\"A\">5</deltaxml:attributeValue><deltaxml:attributeValue deltaxml:deltaV2=\"B\">6</deltaxml:attributeValue></deltaxml:attribute>\
             <deltaxml:attribute name=\"q\" deltaxml:deltaV2=\"A\"><deltaxml:attributeValue deltaxml:deltaV2=\"A\">x&amp;y</deltaxml:attributeValue></deltaxml:attribute>\
             <deltaxml:attribute name=\"s\" deltaxml:deltaV2=\"B\"><deltaxml:attributeValue deltaxml:deltaV2=\"B\">y</deltaxml:attributeValue></deltaxml:attribute>\
             </deltaxml:attributes>t</i>\
             <i id=\"2\" deltaxml:deltaV2=\"A\"/><i id=\"3\" deltaxml:deltaV2=\"B\"/></c>"
        );
        let same = convert("<r><a/></r>", "<r><a/></r>", XmlOptions::default());
        assert_eq!(
            same,
            "<r xmlns:deltaxml=\"http://deltaxml.com/ns/well-formed-delta-v1\" deltaxml:deltaV2=\"A=B\"><a deltaxml:deltaV2=\"A=B\"/></r>"
        );
        // FORMAT.md's example (comments, a moved attribute, keys): one well-formed document
        // in which every element of the inputs says how it changed.
        let keyed = XmlOptions {
            key_attributes: vec!["id".into()],
            ..XmlOptions::default()
        };
        let got = convert(
            "<?xml version=\"1.0\"?><catalog><item id=\"1\" price=\"3\">Pen</item>\
             <item id=\"2\" price=\"5\" currency=\"EUR\">Ink<!-- old --></item><item id=\"4\">Old</item></catalog>",
            "<catalog><item id=\"1\" price=\"3\">Pen</item>\
             <item id=\"2\" price=\"6\" currency=\"EUR\" stock=\"yes\">Blue ink</item><item id=\"3\">New</item></catalog>",
            keyed,
        );
        crate::compare::XmlDoc::parse(got.as_bytes(), &XmlOptions::default(), &mut NoControl)
            .unwrap();
        for part in [
            "<catalog xmlns:deltaxml=\"http://deltaxml.com/ns/well-formed-delta-v1\" deltaxml:deltaV2=\"A!=B\">",
            "<item id=\"1\" price=\"3\" deltaxml:deltaV2=\"A=B\">Pen</item>",
            "<deltaxml:comment deltaxml:deltaV2=\"A\"> old </deltaxml:comment>",
            "<item id=\"4\" deltaxml:deltaV2=\"A\">Old</item><item id=\"3\" deltaxml:deltaV2=\"B\">New</item>",
        ] {
            assert!(got.contains(part), "{part} in {got}");
        }
        // Different roots: both under a wrapper, so the answer stays well-formed.
        let two = convert("<a/>", "<b/>", XmlOptions::default());
        assert!(two.starts_with("<deltaxml:delta xmlns:deltaxml="), "{two}");
        assert!(two.contains("<a deltaxml:deltaV2=\"A\"/><b deltaxml:deltaV2=\"B\"/>"));
    }
}
