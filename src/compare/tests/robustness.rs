//! Arbitrary bytes at the document parsers: never a panic, always a document or an error.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use crate::compare::{detect, parse_json, JsonOptions, NoControl, XmlDoc, XmlOptions};

/// Bytes: noise, or text made of the characters documents are made of.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "[<>/a-z =\"'!&;#x0-9\\[\\]{}:,.\\-?\n]{0,200}".prop_map(String::into_bytes),
        (
            "[<>/a-z =\"!&;\\[\\]{}:,0-9]{0,60}",
            prop::sample::select(vec![
                "<!DOCTYPE a [<!ENTITY e \"e\">]>",
                "<![CDATA[",
                "]]>",
                "<?xml version=\"1.0\"?>",
                "&#x0;",
                "&e;",
                "\u{feff}",
                "\\ud800",
                "1e999999",
            ]),
            "[<>/a-z =\"!&;\\[\\]{}:,0-9]{0,60}",
        )
            .prop_map(|(a, b, c)| format!("{a}{b}{c}").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Failing seeds are kept beside this file, in `robustness.regressions`.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::with_cases(super::cases(2000))
    })]

    #[test]
    fn json_parser_takes_any_bytes(bytes in input()) {
        let parsed = parse_json(&bytes, &JsonOptions::default(), &mut NoControl);
        // What parses is JSON as serde reads it.
        if let Ok(v) = parsed {
            let bom = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
            if let Ok(again) = serde_json::from_slice::<serde_json::Value>(&bytes[bom..]) {
                prop_assert_eq!(v, again);
            }
        }
    }

    #[test]
    fn xml_parser_takes_any_bytes(bytes in input()) {
        if let Ok(doc) = XmlDoc::parse(&bytes, &XmlOptions::default(), &mut NoControl) {
            prop_assert!(doc.node_count() >= 1);
            let _ = doc.canonical();
        }
    }

    #[test]
    fn detection_takes_any_bytes(bytes in input()) {
        let _ = detect(&bytes);
    }
}
