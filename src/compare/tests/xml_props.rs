//! Round-trip properties of the XML delta.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use super::super::xml::{canonical, diff_xml, rebuild, Side, XmlDoc, XmlOptions};
use super::super::{NoControl, Summary};

#[derive(Clone, Debug)]
enum X {
    Elem {
        name: String,
        attrs: Vec<(String, String)>,
        kids: Vec<X>,
    },
    Text(String),
    Comment(String),
    Pi(String),
}

const NAMES: &[&str] = &["a", "b", "item", "d:x", "p:q"];
const ATTR_NAMES: &[&str] = &["id", "x", "y", "d:z", "xmlns:d", "xmlns", "k"];
const VALUES: &[&str] = &[
    "1",
    "2",
    "3",
    "a<b",
    "q\"t'",
    "&amp;",
    "line\nbreak",
    "tab\t",
    "",
    "  ",
    "é€",
];
const TEXTS: &[&str] = &[
    "hello", "a & b", "<tag>", "  ", "\n  ", "x\r\ny", "]]>", "é", "1", "2",
];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    (0..list.len()).prop_map(move |i| list[i].to_string())
}

fn attrs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((pick(ATTR_NAMES), pick(VALUES)), 0..4).prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|(n, _)| seen.insert(n.clone()))
            .collect()
    })
}

fn node() -> impl Strategy<Value = X> {
    let leaf = prop_oneof![
        pick(TEXTS).prop_map(X::Text),
        pick(&["c1", " c 2 ", ""]).prop_map(X::Comment),
        pick(&["pi1 data", "pi2", "t a=\"1\""]).prop_map(X::Pi),
        (pick(NAMES), attrs()).prop_map(|(name, attrs)| X::Elem {
            name,
            attrs,
            kids: vec![]
        }),
    ];
    leaf.prop_recursive(5, 60, 6, |inner| {
        (pick(NAMES), attrs(), prop::collection::vec(inner, 0..6))
            .prop_map(|(name, attrs, kids)| X::Elem { name, attrs, kids })
    })
}

/// A document: misc before, the root element, misc after.
fn doc() -> impl Strategy<Value = (Vec<X>, X, Vec<X>)> {
    let misc = prop_oneof![
        pick(&["top", "c"]).prop_map(X::Comment),
        pick(&["pi top"]).prop_map(X::Pi),
    ];
    (
        prop::collection::vec(misc.clone(), 0..2),
        (pick(NAMES), attrs(), prop::collection::vec(node(), 0..8))
            .prop_map(|(name, attrs, kids)| X::Elem { name, attrs, kids }),
        prop::collection::vec(misc, 0..2),
    )
}

fn esc(s: &str, attr: bool) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' if attr => o.push_str("&quot;"),
            '\n' if attr => o.push_str("&#xA;"),
            '\t' if attr => o.push_str("&#9;"),
            c => o.push(c),
        }
    }
    o
}

fn ser(x: &X, out: &mut String) {
    match x {
        X::Text(t) => {
            // Vary the spelling: CDATA for some texts.
            if t.contains('&') || t.contains(']') {
                out.push_str(&esc(t, false));
            } else if t.len() == 1 {
                out.push_str(&format!("<![CDATA[{t}]]>"));
            } else {
                out.push_str(&esc(t, false));
            }
        }
        X::Comment(c) => out.push_str(&format!("<!--{c}-->")),
        X::Pi(p) => out.push_str(&format!("<?{p}?>")),
        X::Elem { name, attrs, kids } => {
            out.push('<');
            out.push_str(name);
            for (k, v) in attrs {
                out.push_str(&format!(" {k}=\"{}\"", esc(v, true)));
            }
            if kids.is_empty() {
                out.push_str("/>");
            } else {
                out.push('>');
                for k in kids {
                    ser(k, out);
                }
                out.push_str(&format!("</{name}>"));
            }
        }
    }
}

fn ser_doc(d: &(Vec<X>, X, Vec<X>)) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    for m in &d.0 {
        ser(m, &mut s);
        s.push('\n');
    }
    ser(&d.1, &mut s);
    for m in &d.2 {
        s.push('\n');
        ser(m, &mut s);
    }
    s
}

/// Deterministic small PRNG for mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.next() as usize % n
        }
    }
}

fn count_elems(x: &X) -> usize {
    match x {
        X::Elem { kids, .. } => 1 + kids.iter().map(count_elems).sum::<usize>(),
        _ => 0,
    }
}

fn nth_elem<'a>(x: &'a mut X, n: &mut usize) -> Option<&'a mut X> {
    if !matches!(x, X::Elem { .. }) {
        return None;
    }
    if *n == 0 {
        return Some(x);
    }
    *n -= 1;
    if let X::Elem { kids, .. } = x {
        for k in kids {
            if let Some(found) = nth_elem(k, n) {
                return Some(found);
            }
        }
    }
    None
}

fn mutate(root: &mut X, rng: &mut Rng) {
    let total = count_elems(root);
    let mut n = rng.below(total);
    let Some(X::Elem { name, attrs, kids }) = nth_elem(root, &mut n) else {
        return;
    };
    match rng.below(10) {
        0 => {
            if !attrs.is_empty() {
                let i = rng.below(attrs.len());
                attrs[i].1 = VALUES[rng.below(VALUES.len())].to_string();
            }
        }
        1 => {
            let k = ATTR_NAMES[rng.below(ATTR_NAMES.len())];
            if !attrs.iter().any(|(n, _)| n == k) {
                let at = rng.below(attrs.len() + 1);
                attrs.insert(
                    at,
                    (k.to_string(), VALUES[rng.below(VALUES.len())].to_string()),
                );
            }
        }
        2 => {
            if !attrs.is_empty() {
                let i = rng.below(attrs.len());
                attrs.remove(i);
            }
        }
        3 => {
            if attrs.len() > 1 {
                attrs.swap(0, 1);
            }
        }
        4 => {
            if !kids.is_empty() {
                let i = rng.below(kids.len());
                kids.remove(i);
            }
        }
        5 => {
            let at = rng.below(kids.len() + 1);
            let new = match rng.below(3) {
                0 => X::Text(TEXTS[rng.below(TEXTS.len())].to_string()),
                1 => X::Comment("new".into()),
                _ => X::Elem {
                    name: NAMES[rng.below(NAMES.len())].to_string(),
                    attrs: vec![("id".into(), rng.below(4).to_string())],
                    kids: vec![X::Text("t".into())],
                },
            };
            kids.insert(at, new);
        }
        6 => {
            if kids.len() > 1 {
                let i = rng.below(kids.len() - 1);
                kids.swap(i, i + 1);
            }
        }
        7 => *name = NAMES[rng.below(NAMES.len())].to_string(),
        8 => {
            for k in kids.iter_mut() {
                if let X::Text(t) = k {
                    *t = TEXTS[rng.below(TEXTS.len())].to_string();
                    break;
                }
            }
        }
        _ => {
            if !kids.is_empty() {
                let i = rng.below(kids.len());
                let c = kids[i].clone();
                kids.insert(rng.below(kids.len() + 1), c);
            }
        }
    }
}

fn options() -> impl Strategy<Value = XmlOptions> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(ws, cm, keyed)| XmlOptions {
        key_attributes: if keyed { vec!["id".into()] } else { vec![] },
        ignore_whitespace: ws,
        ignore_comments: cm,
        ..XmlOptions::default()
    })
}

fn delta(a: &str, b: &str, opts: &XmlOptions) -> (String, Summary) {
    let da = XmlDoc::parse(a.as_bytes(), opts, &mut NoControl).expect("A parses");
    let db = XmlDoc::parse(b.as_bytes(), opts, &mut NoControl).expect("B parses");
    let mut out = Vec::new();
    let s = diff_xml(&da, &db, opts, &mut NoControl, &mut out).expect("diff");
    (String::from_utf8(out).expect("utf8"), s)
}

fn check_round_trip(a: &str, b: &str, opts: &XmlOptions) -> Result<(), TestCaseError> {
    let (d, s) = delta(a, b, opts);
    let ca = canonical(a.as_bytes(), opts).expect("canonical A");
    let cb = canonical(b.as_bytes(), opts).expect("canonical B");
    let ra = rebuild(d.as_bytes(), Side::A).expect("rebuild A");
    let rb = rebuild(d.as_bytes(), Side::B).expect("rebuild B");
    prop_assert_eq!(&ra, &ca, "side A; delta: {}", d);
    prop_assert_eq!(&rb, &cb, "side B; delta: {}", d);
    prop_assert_eq!(s.identical, ca == cb, "identical flag; delta: {}", d);
    prop_assert_eq!(d.contains("identical=\"true\""), ca == cb);
    // The canonical form is a fixed point.
    prop_assert_eq!(
        canonical(ca.as_bytes(), opts).expect("canonical of canonical"),
        ca
    );
    Ok(())
}

fn check_identical(a: &str, opts: &XmlOptions) -> Result<(), TestCaseError> {
    let (d, s) = delta(a, a, opts);
    prop_assert!(s.identical);
    prop_assert_eq!(s.added + s.removed + s.changed, 0);
    prop_assert!(d.contains("identical=\"true\""));
    for bad in [
        "op=\"changed\"",
        "op=\"added\"",
        "op=\"deleted\"",
        ":attr ",
        ":text ",
    ] {
        prop_assert!(!d.contains(bad), "{} in {}", bad, d);
    }
    prop_assert_eq!(
        rebuild(d.as_bytes(), Side::B).expect("rebuild"),
        canonical(a.as_bytes(), opts).expect("canonical")
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Failing seeds are kept beside this file, in `xml_props.regressions`.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::with_cases(super::cases(400))
    })]

    #[test]
    fn independent_pairs_round_trip(a in doc(), b in doc(), opts in options()) {
        check_round_trip(&ser_doc(&a), &ser_doc(&b), &opts)?;
    }

    #[test]
    fn mutated_pairs_round_trip(a in doc(), seeds in prop::collection::vec(any::<u64>(), 1..6), opts in options()) {
        let mut b = a.clone();
        for s in seeds {
            mutate(&mut b.1, &mut Rng(s));
        }
        check_round_trip(&ser_doc(&a), &ser_doc(&b), &opts)?;
    }

    #[test]
    fn identical_inputs_are_unchanged(a in doc(), opts in options()) {
        check_identical(&ser_doc(&a), &opts)?;
    }
}
