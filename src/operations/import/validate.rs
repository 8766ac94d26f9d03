//! Validation of one tool record (seed 000's shape).

use std::collections::HashMap;

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{ToolRow, ToolWrite};

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

fn text(
    rec: &serde_json::Map<String, Value>,
    key: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>, String> {
    match rec.get(key) {
        None | Some(Value::Null) if required => Err(format!("`{key}` is required")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let t = s.trim();
            if required && t.is_empty() {
                Err(format!("`{key}` must not be blank"))
            } else if s.chars().count() > max {
                Err(format!("`{key}` is longer than {max} characters"))
            } else if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                Err(format!("`{key}` contains control characters"))
            } else {
                Ok(Some(s.clone()))
            }
        }
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

/// Check one record; `Err` is the reason it fails.
pub fn validate_record(rec: &Value, job_id: Uuid) -> Result<ToolRow, String> {
    let Value::Object(m) = rec else {
        return Err(format!("a record must be an object, not {}", kind(rec)));
    };
    if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field `{k}`"));
    }
    let tool_id = text(m, "tool_id", 64, true)?.unwrap_or_default();
    let tool_name = text(m, "tool_name", 200, true)?.unwrap_or_default();
    let category = text(m, "category", 100, true)?.unwrap_or_default();
    let description = text(m, "description", 4000, false)?;
    let url = text(m, "url", 2000, false)?;
    if let Some(u) = &url {
        match url::Url::parse(u) {
            Ok(p) if (p.scheme() == "http" || p.scheme() == "https") && p.host().is_some() => {}
            _ => return Err(format!("`url` must be an absolute http(s) URL, not `{u}`")),
        }
    }
    let features = match m.get("features") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > 100 {
                return Err("`features` has more than 100 entries".into());
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, f) in items.iter().enumerate() {
                match f {
                    Value::String(s) if s.chars().count() <= 200 => out.push(s.clone()),
                    Value::String(_) => {
                        return Err(format!("`features[{i}]` is longer than 200 characters"))
                    }
                    other => {
                        return Err(format!(
                            "`features[{i}]` must be a string, not {}",
                            kind(other)
                        ))
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(format!(
                "`features` must be a list of strings, not {}",
                kind(other)
            ))
        }
    };
    Ok(ToolRow {
        tool_id,
        tool_name,
        category,
        description,
        features,
        url,
        job_id,
        updated: Utc::now(),
    })
}

/// Validates the records of one import in order, refusing repeated `tool_id`s.
pub struct Validator {
    job_id: Uuid,
    seen: HashMap<String, u64>,
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
    pub fn check(&mut self, idx: u64, rec: Value) -> ToolWrite {
        match validate_record(&rec, self.job_id) {
            Ok(tool) => {
                if let Some(first) = self.seen.get(&tool.tool_id) {
                    return ToolWrite::Failed {
                        idx,
                        reason: format!(
                            "duplicate tool_id `{}` (first given in record {})",
                            tool.tool_id,
                            first + 1
                        ),
                        record: rec,
                    };
                }
                self.seen.insert(tool.tool_id.clone(), idx);
                ToolWrite::Imported { idx, tool }
            }
            Err(reason) => ToolWrite::Failed {
                idx,
                record: rec,
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
    fn duplicates_fail() {
        let mut v = Validator::new(Uuid::nil());
        assert!(matches!(v.check(0, ok()), ToolWrite::Imported { .. }));
        match v.check(1, ok()) {
            ToolWrite::Failed { reason, .. } => assert!(reason.contains("duplicate")),
            _ => panic!("duplicate accepted"),
        }
    }
}
