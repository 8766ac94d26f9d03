//! The example in FORMAT.md is exactly what the code produces.

use super::super::xml::{canonical, compare_xml, rebuild, Side, XmlOptions};
use super::super::NoControl;

const FORMAT: &str = include_str!("../FORMAT.md");

/// The contents of the fenced block that follows the line `marker`.
fn block_after(marker: &str) -> String {
    let start = FORMAT
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in FORMAT.md"));
    let rest = &FORMAT[start..];
    let open = rest.find("```").expect("opening fence");
    let body = &rest[open..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    let close = body.find("\n```").expect("closing fence");
    body[..close].to_string()
}

#[test]
fn format_md_example_matches_the_code() {
    let a = block_after("Input A:");
    let b = block_after("Input B:");
    let expected = block_after("Delta (");
    let opts = XmlOptions {
        key_attributes: vec!["id".into()],
        ..XmlOptions::default()
    };
    let mut out = Vec::new();
    let s = compare_xml(a.as_bytes(), b.as_bytes(), &opts, &mut NoControl, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, expected);
    let summary = block_after("Summary:");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&summary).unwrap(),
        s.to_json()
    );
    assert_eq!(
        rebuild(out.as_bytes(), Side::A).unwrap(),
        canonical(a.as_bytes(), &opts).unwrap()
    );
    assert_eq!(
        rebuild(out.as_bytes(), Side::B).unwrap(),
        canonical(b.as_bytes(), &opts).unwrap()
    );
}
