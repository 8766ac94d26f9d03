//! Validation of one tool record (seed 000's shape).

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{ToolRow, ToolWrite};
use crate::formats::records::Record;

/// The fields of a record, in the seed's order (also the CSV columns of the catalog).
pub const FIELDS: [&str; 6] = [
    "tool_id",
    "tool_name",
    "category",
    "description",
    "features",
    "url",
];

/// JSON Schema of one record.
pub fn record_schema() -> Value {
    json!({
        "type": "object",
        "required": ["tool_id", "tool_name", "category"],
        "additionalProperties": false,
        "properties": {
            "tool_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "tool_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "category": {"type": "string", "minLength": 1, "maxLength": 100},
            "description": {"type": "string", "maxLength": 4000},
            "features": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 200}},
            "url": {"type": "string", "format": "uri", "description": "absolute http(s) URL"}
        }
    })
}

/// A record read straight from its text, for the usual case of a record of the right shape;
/// anything else (an unknown field, a wrong type, a repeated key) is judged from its value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Typed<'a> {
    #[serde(borrow, default)]
    tool_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    features: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
}

/// The rules of one text field; `None` when it is absent (or null).
fn check_text(
    key: &str,
    v: Option<&str>,
    max: usize,
    required: bool,
) -> Result<Option<String>, String> {
    match v {
        None if required => Err(format!("`{key}` is required")),
        None => Ok(None),
        Some(s) => {
            if required && s.trim().is_empty() {
                Err(format!("`{key}` must not be blank"))
            } else if s.len() > max && s.chars().count() > max {
                Err(format!("`{key}` is longer than {max} characters"))
            } else if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                Err(format!("`{key}` contains control characters"))
            } else {
                Ok(Some(s.to_string()))
            }
        }
    }
}

/// A text field of a record value: its text, `None` when absent or null, or why it is no text.
fn as_text<'a>(
    rec: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match rec.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("`{key}` must be a string, not {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The entries of `features`, each checked by `text_of` (which says why one is no text).
fn check_features<T>(
    items: &[T],
    text_of: impl Fn(usize, &T) -> Result<&str, String>,
) -> Result<Vec<String>, String> {
    if items.len() > 100 {
        return Err("`features` has more than 100 entries".into());
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, f) in items.iter().enumerate() {
        let s = text_of(i, f)?;
        if s.len() > 200 && s.chars().count() > 200 {
            return Err(format!("`features[{i}]` is longer than 200 characters"));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// The rules every record is held to, in the order their reasons are given. `text` fetches a
/// text field (or says why it is none), `features` checks the list.
fn check_record<'a>(
    job_id: Uuid,
    text: impl Fn(&str) -> Result<Option<&'a str>, String>,
    features: impl FnOnce() -> Result<Vec<String>, String>,
) -> Result<ToolRow, String> {
    let tool_id = check_text("tool_id", text("tool_id")?, 64, true)?.unwrap_or_default();
    let tool_name = check_text("tool_name", text("tool_name")?, 200, true)?.unwrap_or_default();
    let category = check_text("category", text("category")?, 100, true)?.unwrap_or_default();
    let description = check_text("description", text("description")?, 4000, false)?;
    let url = check_text("url", text("url")?, 2000, false)?;
    if let Some(u) = &url {
        match url::Url::parse(u) {
            Ok(p) if (p.scheme() == "http" || p.scheme() == "https") && p.host().is_some() => {}
            _ => return Err(format!("`url` must be an absolute http(s) URL, not `{u}`")),
        }
    }
    Ok(ToolRow {
        tool_id,
        tool_name,
        category,
        description,
        features: features()?,
        url,
        job_id,
        updated: Utc::now(),
    })
}

/// Check one record; `Err` is the reason it fails.
pub fn validate_record(rec: &Value, job_id: Uuid) -> Result<ToolRow, String> {
    let Value::Object(m) = rec else {
        return Err(format!("a record must be an object, not {}", kind(rec)));
    };
    if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field `{k}`"));
    }
    check_record(
        job_id,
        |key| as_text(m, key),
        || match m.get("features") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => check_features(items, |i, f| match f {
                Value::String(s) => Ok(s.as_str()),
                other => Err(format!(
                    "`features[{i}]` must be a string, not {}",
                    kind(other)
                )),
            }),
            Some(other) => Err(format!(
                "`features` must be a list of strings, not {}",
                kind(other)
            )),
        },
    )
}

/// Check one record from its JSON text: read into typed fields when its shape allows, else
/// judged as a value by `validate_record` (so both ways give the same outcome and reason).
fn validate_text(text: &str, job_id: Uuid) -> Option<Result<ToolRow, String>> {
    let t: Typed = serde_json::from_str(text).ok()?;
    Some(check_record(
        job_id,
        |key| {
            Ok(match key {
                "tool_id" => t.tool_id.as_deref(),
                "tool_name" => t.tool_name.as_deref(),
                "category" => t.category.as_deref(),
                "description" => t.description.as_deref(),
                _ => t.url.as_deref(),
            })
        },
        || {
            check_features(t.features.as_deref().unwrap_or_default(), |_, s| {
                Ok(s.as_ref())
            })
        },
    ))
}

/// Validates the records of one import in order, refusing repeated `tool_id`s.
pub struct Validator {
    job_id: Uuid,
    seen: HashMap<Box<str>, u64>,
}

impl Validator {
    /// A validator for one run of an import.
    pub fn new(job_id: Uuid) -> Validator {
        Validator {
            job_id,
            seen: HashMap::new(),
        }
    }

    /// The outcome of record `idx` (0-based).
    pub fn check(&mut self, idx: u64, rec: Record) -> ToolWrite {
        let checked = match validate_text(rec.text(), self.job_id) {
            Some(Ok(tool)) => Ok(tool),
            // The reason of a failed record, and the record kept with it, come from its value.
            _ => {
                let value = rec.value();
                validate_record(&value, self.job_id).map_err(|reason| (value, reason))
            }
        };
        match checked {
            Ok(tool) => {
                if let Some(first) = self.seen.get(tool.tool_id.as_str()) {
                    return ToolWrite::Failed {
                        idx,
                        reason: format!(
                            "duplicate tool_id `{}` (first given in record {})",
                            tool.tool_id,
                            first + 1
                        ),
                        record: rec.value(),
                    };
                }
                self.seen.insert(tool.tool_id.as_str().into(), idx);
                ToolWrite::Imported { idx, tool }
            }
            Err((record, reason)) => ToolWrite::Failed {
                idx,
                record,
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Value {
        json!({"tool_id":"V1","tool_name":"N","category":"C","features":["a"],"url":"https://example.com/x"})
    }

    #[test]
    fn accepts_seed_shape() {
        assert!(validate_record(&ok(), Uuid::nil()).is_ok());
    }

    #[test]
    fn reasons() {
        let cases = [
            (
                json!({"tool_name":"N","category":"C"}),
                "`tool_id` is required",
            ),
            (
                json!({"tool_id":"V","tool_name":" ","category":"C"}),
                "`tool_name` must not be blank",
            ),
            (
                json!({"tool_id":"V","tool_name":"N","category":"C","url":"ftp://x"}),
                "absolute http(s)",
            ),
            (
                json!({"tool_id":"V","tool_name":"N","category":"C","features":"x"}),
                "list of strings",
            ),
            (
                json!({"tool_id":"V","tool_name":"N","category":"C","extra":1}),
                "unknown field `extra`",
            ),
            (
                json!({"tool_id":5,"tool_name":"N","category":"C"}),
                "must be a string",
            ),
        ];
        for (rec, want) in cases {
            let err = validate_record(&rec, Uuid::nil()).unwrap_err();
            assert!(err.contains(want), "{err} !~ {want}");
        }
    }

    #[test]
    fn typed_and_value_readings_agree() {
        let long = "x".repeat(201);
        let wide = "é".repeat(200);
        let cases = [
            r#"{"tool_id":"V1","tool_name":"N","category":"C"}"#.to_string(),
            r#"{"tool_id":"V\u0031","tool_name":"N \"q\"","category":"C","description":null}"#
                .into(),
            r#"{"tool_id":"V1","tool_name":"N\u0001","category":"C"}"#.into(),
            r#"{"tool_id":" ","tool_name":"N","category":"C"}"#.into(),
            r#"{"tool_id":"V1","tool_name":"N","category":"C","url":"mailto:a@b"}"#.into(),
            r#"{"tool_id":"V1","tool_name":"N","category":"C","url":"https://x.test/a"}"#.into(),
            format!(r#"{{"tool_id":"V1","tool_name":"N","category":"C","features":["{long}"]}}"#),
            format!(r#"{{"tool_id":"V1","tool_name":"N","category":"C","features":["{wide}"]}}"#),
            format!(r#"{{"tool_id":"V1","tool_name":"{wide}","category":"C"}}"#),
            r#"{"tool_id":"V1","tool_name":"N","category":"C","features":null}"#.into(),
            r#"{"tool_id":"V1","tool_name":"N","category":"C","features":[1]}"#.into(),
            r#"{"tool_id":"V1","tool_id":"V2","tool_name":"N","category":"C"}"#.into(),
            r#"{"tool_id":"V1","tool_name":"N","category":"C","extra":true}"#.into(),
            r#"{"tool_name":"N","category":"C"}"#.into(),
        ];
        let many = format!(
            r#"{{"tool_id":"V1","tool_name":"N","category":"C","features":[{}]}}"#,
            vec![r#""f""#; 101].join(",")
        );
        for text in cases.iter().chain([&many]) {
            let value: Value = serde_json::from_str(text).unwrap();
            let by_value = validate_record(&value, Uuid::nil()).map(|mut t| {
                t.updated = Default::default();
                t
            });
            if let Some(by_text) = validate_text(text, Uuid::nil()) {
                let by_text = by_text.map(|mut t| {
                    t.updated = Default::default();
                    t
                });
                assert_eq!(by_text, by_value, "{text}");
            }
            let mut v = Validator::new(Uuid::nil());
            match (v.check(0, Record::from_value(&value)), by_value) {
                (ToolWrite::Imported { tool, .. }, Ok(want)) => {
                    assert_eq!(tool.tool_id, want.tool_id, "{text}")
                }
                (ToolWrite::Failed { reason, record, .. }, Err(want)) => {
                    assert_eq!(reason, want, "{text}");
                    assert_eq!(record, value, "{text}");
                }
                (got, want) => panic!("{text}: {got:?} against {want:?}"),
            }
        }
    }

    #[test]
    fn duplicates_fail() {
        let mut v = Validator::new(Uuid::nil());
        let ok = || Record::from_value(&ok());
        assert!(matches!(v.check(0, ok()), ToolWrite::Imported { .. }));
        match v.check(1, ok()) {
            ToolWrite::Failed { reason, .. } => assert!(reason.contains("duplicate")),
            _ => panic!("duplicate accepted"),
        }
    }
}
