//! XML form of the service's JSON documents (same field names, links as attributes).

use serde_json::Value;

/// The element name of one item of an array stored under `key`.
pub fn item_name(key: &str) -> String {
    match key {
        "links" => "link".into(),
        "data" | "tools" => "tool".into(),
        "items" => "item".into(),
        k if k.ends_with("ies") => format!("{}y", &k[..k.len() - 3]),
        k if k.ends_with('s') && k.len() > 1 => k[..k.len() - 1].to_string(),
        _ => "item".into(),
    }
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
}

fn valid_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        && !k.to_ascii_lowercase().starts_with("xml")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn open(name: &str, out: &mut String) -> String {
    if valid_name(name) {
        out.push('<');
        out.push_str(name);
        name.to_string()
    } else {
        out.push_str("<entry key=\"");
        escape(name, out);
        out.push('"');
        "entry".to_string()
    }
}

fn element(name: &str, v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::Object(m) => {
            let tag = open(name, out);
            out.push('>');
            for (k, v) in m {
                element(k, v, out);
            }
            out.push_str(&format!("</{tag}>"));
        }
        Value::Array(items) => {
            let tag = open(name, out);
            if items.is_empty() {
                out.push_str("/>");
                return;
            }
            out.push('>');
            let item = item_name(name);
            for it in items {
                match it {
                    Value::Object(m)
                        if name == "links"
                            && m.values().all(|v| !v.is_object() && !v.is_array()) =>
                    {
                        out.push('<');
                        out.push_str(&item);
                        for (k, v) in m {
                            if let Some(s) = scalar(v) {
                                out.push(' ');
                                out.push_str(k);
                                out.push_str("=\"");
                                escape(&s, out);
                                out.push('"');
                            }
                        }
                        out.push_str("/>");
                    }
                    other => element(&item, other, out),
                }
            }
            out.push_str(&format!("</{tag}>"));
        }
        other => {
            let tag = open(name, out);
            out.push('>');
            escape(&scalar(other).unwrap_or_default(), out);
            out.push_str(&format!("</{tag}>"));
        }
    }
}

/// Write `value` as an XML document whose root element is `root`.
pub fn to_xml(root: &str, value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    match value {
        Value::Object(_) | Value::Array(_) => element(root, value, &mut out),
        Value::Null => out.push_str(&format!("<{root}/>")),
        other => element(root, other, &mut out),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_shape() {
        let v = json!({"jobId":"x","progress":{"amount":1},"none":null,
            "links":[{"rel":"self","href":"/a?b&c","method":"GET"}],"features":["a"]});
        assert_eq!(
            to_xml("job", &v),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><job><jobId>x</jobId><progress><amount>1</amount></progress>\
             <links><link rel=\"self\" href=\"/a?b&amp;c\" method=\"GET\"/></links><features><feature>a</feature></features></job>"
        );
    }
}
