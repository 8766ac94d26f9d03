//! Unit tests: limits, refusals, error positions, cancellation, detection.

use std::time::Instant;

use serde_json::json;

use super::super::json::{diff_json, parse_json, JsonOptions};
use super::super::xml::{canonical, diff_xml, XmlDoc, XmlOptions};
use super::super::{detect, DiffError, DocFormat, Limits, NoControl, Position, Summary};
use super::CancelAfter;

fn parse_xml(s: &str) -> Result<XmlDoc, DiffError> {
    XmlDoc::parse(s.as_bytes(), &XmlOptions::default(), &mut NoControl)
}

fn xml_err_pos(s: &str) -> (u64, u64, String) {
    match parse_xml(s) {
        Err(DiffError::Parse {
            position: Some(p),
            message,
        }) => (p.line, p.column, message),
        other => panic!("expected a parse error with position, got {other:?}"),
    }
}

#[test]
fn detect_formats() {
    assert_eq!(detect(b"  <a/>"), Some(DocFormat::Xml));
    assert_eq!(
        detect(b"\xEF\xBB\xBF\n<?xml version='1.0'?><a/>"),
        Some(DocFormat::Xml)
    );
    for j in [
        &b"{}"[..],
        b" [1]",
        b"\"s\"",
        b"12",
        b"-1",
        b"true",
        b"false",
        b"null",
        b"\xEF\xBB\xBF {",
    ] {
        assert_eq!(
            detect(j),
            Some(DocFormat::Json),
            "{:?}",
            String::from_utf8_lossy(j)
        );
    }
    assert_eq!(detect(b""), None);
    assert_eq!(detect(b"   \n"), None);
    assert_eq!(detect(b"hello"), None);
    assert_eq!(detect(b"\xEF\xBB\xBF"), None);
}

#[test]
fn entity_bomb_is_refused_fast() {
    let mut bomb =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        bomb.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    bomb.push_str("]>\n<lolz>&lol9;</lolz>");
    let t = Instant::now();
    let r = parse_xml(&bomb);
    assert!(matches!(r, Err(DiffError::Refused { .. })), "{r:?}");
    assert!(t.elapsed().as_millis() < 100, "took {:?}", t.elapsed());
    // A DOCTYPE without an internal subset is refused as well.
    assert!(matches!(
        parse_xml("<!DOCTYPE html><html/>"),
        Err(DiffError::Refused { .. })
    ));
}

#[test]
fn unknown_entity_is_a_parse_error() {
    let (line, col, msg) = xml_err_pos("<a>\n x &nbsp; y</a>");
    assert_eq!((line, col), (2, 4));
    assert!(msg.contains("&nbsp;"), "{msg}");
    assert!(matches!(
        parse_xml("<a b=\"&foo;\"/>"),
        Err(DiffError::Parse { .. })
    ));
    // Predefined entities and character references are fine.
    let c = canonical(
        b"<a t=\"&#65;&lt;\">&amp;&#x42;&quot;&apos;</a>",
        &XmlOptions::default(),
    )
    .unwrap();
    assert_eq!(c, "<a t=\"A&lt;\">&amp;B\"'</a>");
}

#[test]
fn xml_parse_error_positions() {
    let (line, col, msg) = xml_err_pos("<a>\n  <b>\n  </c>\n</a>");
    assert_eq!((line, col), (3, 3), "{msg}");
    assert!(msg.contains("</b>") && msg.contains("</c>"), "{msg}");
    let (line, col, msg) = xml_err_pos("<a>\n</a>\n<b/>");
    assert_eq!((line, col), (3, 1), "{msg}");
    let (line, col, msg) = xml_err_pos("<a></a>\n  trailing");
    assert_eq!((line, col), (1, 8), "{msg}");
    let (_, _, msg) = xml_err_pos("  \n ");
    assert!(msg.contains("no root"), "{msg}");
    let (line, _, msg) = xml_err_pos("<a>\n<b>\n");
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("<b>"), "{msg}");
    // Columns count characters, not bytes.
    let (line, col, _) = xml_err_pos("<a>éé</b>");
    assert_eq!((line, col), (1, 6));
    let e = parse_xml("<a>\n  <b>\n  </c>\n</a>").unwrap_err();
    assert!(e.to_string().starts_with("line 3, column 3: "), "{e}");
}

#[test]
fn xml_too_deep_is_refused() {
    let deep = "<a>".repeat(100_000);
    let t = Instant::now();
    let r = parse_xml(&deep);
    assert!(matches!(r, Err(DiffError::Refused { .. })), "{r:?}");
    assert!(t.elapsed().as_millis() < 500);
    let opts = XmlOptions {
        limits: Limits {
            max_depth: 3,
            ..Limits::default()
        },
        ..XmlOptions::default()
    };
    assert!(XmlDoc::parse(b"<a><b><c/></b></a>", &opts, &mut NoControl).is_ok());
    assert!(matches!(
        XmlDoc::parse(b"<a><b><c><d/></c></b></a>", &opts, &mut NoControl),
        Err(DiffError::Refused { .. })
    ));
}

#[test]
fn xml_too_many_nodes_is_refused() {
    let opts = XmlOptions {
        limits: Limits {
            max_nodes: 10,
            ..Limits::default()
        },
        ..XmlOptions::default()
    };
    let many = format!("<a>{}</a>", "<b/>".repeat(20));
    assert!(matches!(
        XmlDoc::parse(many.as_bytes(), &opts, &mut NoControl),
        Err(DiffError::Refused { .. })
    ));
}

#[test]
fn json_too_deep_is_refused_without_overflow() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let r = parse_json(deep.as_bytes(), &JsonOptions::default(), &mut NoControl);
    assert!(matches!(r, Err(DiffError::Refused { .. })), "{r:?}");
    let deep_obj = "{\"a\":".repeat(100_000);
    let r = parse_json(deep_obj.as_bytes(), &JsonOptions::default(), &mut NoControl);
    assert!(matches!(r, Err(DiffError::Refused { .. })), "{r:?}");
    // Depth 200 (> serde_json's own limit of 128) parses with the default 256.
    let ok = "[".repeat(200) + &"]".repeat(200);
    assert!(parse_json(ok.as_bytes(), &JsonOptions::default(), &mut NoControl).is_ok());
    // Brackets inside strings do not count.
    let s = format!("[\"{}\"]", "[".repeat(1000));
    assert!(parse_json(s.as_bytes(), &JsonOptions::default(), &mut NoControl).is_ok());
    // diff_json re-checks the depth of values built elsewhere.
    let mut v = json!(1);
    for _ in 0..300 {
        v = json!([v]);
    }
    let r = diff_json(&v, &json!(1), &JsonOptions::default(), &mut NoControl);
    assert!(matches!(r, Err(DiffError::Refused { .. })), "{r:?}");
}

#[test]
fn json_parse_error_positions() {
    let e = parse_json(
        b"{\"a\": 1,\n  \"b\": }",
        &JsonOptions::default(),
        &mut NoControl,
    )
    .unwrap_err();
    match &e {
        DiffError::Parse {
            position: Some(p), ..
        } => assert_eq!((p.line, p.column), (2, 8), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("line 2, column 8: "), "{e}");
    let e = parse_json(b"[1]\n x", &JsonOptions::default(), &mut NoControl).unwrap_err();
    assert!(
        e.to_string().starts_with("line 2, column 2: trailing"),
        "{e}"
    );
    assert!(parse_json(b"  ", &JsonOptions::default(), &mut NoControl).is_err());
    let v = parse_json(
        b"\xEF\xBB\xBF {\"a\": [1]} \n",
        &JsonOptions::default(),
        &mut NoControl,
    )
    .unwrap();
    assert_eq!(v, json!({"a": [1]}));
}

fn big_xml(n: usize, variant: u64) -> String {
    let mut s = String::from("<catalog>");
    for i in 0..n {
        let price = if i as u64 % 97 == variant { 1 } else { 2 };
        s.push_str(&format!(
            "<item id=\"{i}\" price=\"{price}\"><name>n{i}</name><d>text {i}</d></item>"
        ));
    }
    s.push_str("</catalog>");
    s
}

#[test]
fn xml_diff_can_be_cancelled_midway() {
    let opts = XmlOptions::default();
    let a = XmlDoc::parse(big_xml(30_000, 0).as_bytes(), &opts, &mut NoControl).unwrap();
    let b = XmlDoc::parse(big_xml(30_000, 1).as_bytes(), &opts, &mut NoControl).unwrap();
    // Uncancelled, progress is reported several times and reaches the total.
    let mut ctl = CancelAfter::new(u64::MAX);
    let s = diff_xml(&a, &b, &opts, &mut ctl, &mut std::io::sink()).unwrap();
    assert!(!s.identical);
    assert!(ctl.progress_calls > 5, "{}", ctl.progress_calls);
    let polls = ctl.polls.get();
    assert!(polls > 5);
    // Cancel after half of the polls: the diff stops with Cancelled.
    let mut ctl = CancelAfter::new(polls / 2);
    let mut out = Vec::new();
    let r = diff_xml(&a, &b, &opts, &mut ctl, &mut out);
    assert!(matches!(r, Err(DiffError::Cancelled)), "{r:?}");
    assert!(ctl.polls.get() <= polls / 2 + 1);
    // Parsing is cancellable too.
    let mut ctl = CancelAfter::new(2);
    let r = XmlDoc::parse(big_xml(30_000, 0).as_bytes(), &opts, &mut ctl);
    assert!(matches!(r, Err(DiffError::Cancelled)), "{r:?}");
}

#[test]
fn json_diff_can_be_cancelled_midway() {
    let mk = |v: u64| {
        json!((0..30_000u64)
            .map(|i| json!({"id": i, "p": if i % 97 == v { 1 } else { 2 }, "n": format!("n{i}")}))
            .collect::<Vec<_>>())
    };
    let (a, b) = (mk(0), mk(1));
    let opts = JsonOptions::default();
    let mut ctl = CancelAfter::new(u64::MAX);
    let (ops, _) = diff_json(&a, &b, &opts, &mut ctl).unwrap();
    assert!(!ops.is_empty());
    let polls = ctl.polls.get();
    assert!(polls > 5, "{polls}");
    let mut ctl = CancelAfter::new(polls / 2);
    let r = diff_json(&a, &b, &opts, &mut ctl);
    assert!(matches!(r, Err(DiffError::Cancelled)), "{r:?}");
    let text = serde_json::to_vec(&a).unwrap();
    let mut ctl = CancelAfter::new(1);
    let r = parse_json(&text, &opts, &mut ctl);
    assert!(matches!(r, Err(DiffError::Cancelled)), "{r:?}");
}

#[test]
fn xml_whitespace_and_comment_options() {
    let a = b"<a>\n  <b>x</b>\n  <!-- c -->\n</a>";
    let plain = canonical(a, &XmlOptions::default()).unwrap();
    assert_eq!(plain, "<a>\n  <b>x</b>\n  <!-- c -->\n</a>");
    let opts = XmlOptions {
        ignore_whitespace: true,
        ignore_comments: true,
        ..XmlOptions::default()
    };
    assert_eq!(canonical(a, &opts).unwrap(), "<a><b>x</b></a>");
}

#[test]
fn root_rename_is_delete_plus_add() {
    let opts = XmlOptions::default();
    let a = XmlDoc::parse(b"<a><x/></a>", &opts, &mut NoControl).unwrap();
    let b = XmlDoc::parse(b"<b><x/></b>", &opts, &mut NoControl).unwrap();
    let mut out = Vec::new();
    let s = diff_xml(&a, &b, &opts, &mut NoControl, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<d:delta xmlns:d=\"urn:longrun:delta:1\" identical=\"false\"><a d:op=\"deleted\"><x d:op=\"deleted\"/></a><b d:op=\"added\"><x d:op=\"added\"/></b></d:delta>"
    );
    assert_eq!((s.added, s.removed, s.changed), (2, 2, 0));
}

#[test]
fn prefix_avoids_names_used_by_the_inputs() {
    let opts = XmlOptions::default();
    let a = XmlDoc::parse(b"<d:a xmlns:d=\"x\" d1:y=\"1\"/>", &opts, &mut NoControl).unwrap();
    let b = XmlDoc::parse(b"<d:a xmlns:d=\"x\" d1:y=\"2\"/>", &opts, &mut NoControl).unwrap();
    let mut out = Vec::new();
    diff_xml(&a, &b, &opts, &mut NoControl, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("<d2:delta xmlns:d2=\"urn:longrun:delta:1\""),
        "{out}"
    );
}

#[test]
fn error_messages_and_summary_json() {
    let e = DiffError::Refused {
        message: "too deep".into(),
    };
    assert_eq!(e.to_string(), "input refused: too deep");
    assert_eq!(DiffError::Cancelled.to_string(), "comparison cancelled");
    let p = Position::at(b"ab\ncd", 4);
    assert_eq!((p.line, p.column, p.offset), (2, 2, 4));
    let s = Summary {
        identical: false,
        added: 1,
        removed: 2,
        changed: 3,
    };
    assert_eq!(
        s.to_json(),
        json!({"identical": false, "added": 1, "removed": 2, "changed": 3})
    );
}

#[test]
fn doctype_inside_the_document_is_refused() {
    let r = parse_xml("<a><!DOCTYPE x></a>");
    assert!(
        matches!(
            r,
            Err(DiffError::Refused { .. }) | Err(DiffError::Parse { .. })
        ),
        "{r:?}"
    );
    let r = parse_xml("<a/><!DOCTYPE x>");
    assert!(
        matches!(
            r,
            Err(DiffError::Refused { .. }) | Err(DiffError::Parse { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn xml_progress_is_monotone_and_complete() {
    let opts = XmlOptions::default();
    let a = XmlDoc::parse(big_xml(20_000, 0).as_bytes(), &opts, &mut NoControl).unwrap();
    let b = XmlDoc::parse(big_xml(20_000, 5).as_bytes(), &opts, &mut NoControl).unwrap();
    let mut ctl = CancelAfter::new(u64::MAX);
    diff_xml(&a, &b, &opts, &mut ctl, &mut std::io::sink()).unwrap();
    let total = (a.node_count() + b.node_count() - 2) as u64;
    assert_eq!(ctl.last_done, total);
}
