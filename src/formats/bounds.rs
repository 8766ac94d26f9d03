//! Upper bounds on how many values a request body can turn into, counted over its bytes before
//! it is parsed: a parsed tree costs tens of bytes per value, so a body of small values
//! (`[0,0,0,…]`) grows many times its size in memory. Counting first keeps that growth bounded.
//!
//! Written by hand because the parsers at hand (serde_json, quick-xml) offer no counting pass
//! that allocates nothing per value; these are single loops over the bytes.

/// The bytes of a JSON text that lie outside its strings (its structure: brackets, commas,
/// colons, scalars), in order.
pub fn json_structure(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let (mut in_string, mut escaped) = (false, false);
    bytes.iter().copied().filter(move |&b| {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            false
        } else {
            in_string = b == b'"';
            !in_string
        }
    })
}

/// At least as many as the values a JSON text holds: every value but the first follows a `,` or
/// opens a container (`[`, `{`), outside strings. Invalid JSON is counted the same way; its
/// parser then says what is wrong.
pub fn json_values(bytes: &[u8]) -> usize {
    1 + json_structure(bytes)
        .filter(|b| matches!(b, b',' | b'[' | b'{'))
        .count()
}

/// At least as many as the elements (and so the values) an XML text holds: each starts with `<`.
pub fn xml_nodes(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'<').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_counts_bound_the_values() {
        assert_eq!(json_values(b"0"), 1);
        assert_eq!(json_values(b"[0,0,0]"), 4);
        assert_eq!(json_values(b"{\"a\":[1,2],\"b\":{}}"), 6);
        assert_eq!(json_values(b"[\"a,b[{\",\"\\\",[\"]"), 3);
        let v: serde_json::Value =
            serde_json::from_str("{\"a\":[1,{\"b\":[true,null]}],\"c\":\"x\"}").unwrap();
        fn count(v: &serde_json::Value) -> usize {
            1 + match v {
                serde_json::Value::Array(a) => a.iter().map(count).sum(),
                serde_json::Value::Object(o) => o.values().map(count).sum(),
                _ => 0,
            }
        }
        assert!(json_values(v.to_string().as_bytes()) >= count(&v));
    }

    #[test]
    fn xml_counts_bound_the_elements() {
        assert_eq!(xml_nodes(b"<a><b/><c>x</c></a>"), 5);
        assert_eq!(xml_nodes(b"no markup"), 0);
    }
}
