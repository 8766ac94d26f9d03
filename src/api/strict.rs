//! JSON request bodies held to the served OpenAPI document before a handler sees them: the
//! framework's own parsing is lenient (it reads `false` as the string "false" and `null` as an
//! absent field), the document is not. A body that breaks its schema is a 400 naming where. The
//! records of an import are the exception: each is judged on its own by the import, which reports
//! one that does not fit `ToolRecord` and goes on, so here a record need only be an object.

use serde_json::Value;

use super::imports::RECORD_SCHEMA;

/// The schemas of JSON request bodies, by (method, path), taken from the served document.
pub struct BodySchemas {
    doc: Value,
}

impl BodySchemas {
    pub fn new(spec_json: &str) -> BodySchemas {
        BodySchemas {
            doc: serde_json::from_str(spec_json).unwrap_or(Value::Null),
        }
    }

    /// The JSON body schema of an operation with a fixed path, if it has one.
    pub fn schema(&self, method: &str, path: &str) -> Option<&Value> {
        let content = self
            .doc
            .get("paths")?
            .get(path)?
            .get(method.to_ascii_lowercase())?
            .get("requestBody")?
            .get("content")?
            .as_object()?;
        content
            .iter()
            .find(|(k, _)| k.starts_with("application/json"))
            .and_then(|(_, v)| v.get("schema"))
    }

    /// Check `value` against `schema`; the first breach, with its JSON path.
    pub fn check(&self, schema: &Value, value: &Value) -> Result<(), String> {
        self.walk(schema, value, "$", 0)
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .strip_prefix('#')
                .and_then(|p| self.doc.pointer(p))
                .unwrap_or(&Value::Null),
            None => schema,
        }
    }

    fn walk(&self, schema: &Value, value: &Value, at: &str, depth: usize) -> Result<(), String> {
        if depth > 64 {
            return Ok(());
        }
        // A record of an import is judged on its own by the import, which reports one that does
        // not fit with its reason and goes on; here it need only be an object.
        if schema.get("$ref").and_then(Value::as_str) == Some(RECORD_SCHEMA) {
            if !value.is_object() {
                return Err(format!("{at} must be an object; {value} is not an object"));
            }
            return Ok(());
        }
        let schema = self.resolve(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.walk(s, value, at, depth + 1)?;
            }
        }
        // One of several forms (`anyOf`, `oneOf`): it must fit one; else what the first said.
        if let Some(forms) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
            .filter(|f| !f.is_empty())
        {
            let mut first = None;
            for f in forms {
                match self.walk(f, value, at, depth + 1) {
                    Ok(()) => {
                        first = None;
                        break;
                    }
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first {
                return Err(e);
            }
        }
        if value.is_null() {
            if schema.get("nullable") == Some(&Value::Bool(true)) || schema_is_free(schema) {
                return Ok(());
            }
            return Err(format!("{at} is null; leave an optional field out instead"));
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !options.contains(value) {
                return Err(format!(
                    "{at} is {value}; it must be one of {}",
                    Value::from(options.clone())
                ));
            }
        }
        let ok = match schema.get("type").and_then(Value::as_str) {
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            _ => true,
        };
        if !ok {
            let kind = match schema["type"].as_str().unwrap_or("") {
                "string" => "a string",
                "integer" => "an integer",
                "number" => "a number",
                "boolean" => "a boolean",
                "array" => "an array",
                _ => "an object",
            };
            return Err(format!("{at} must be {kind}; {value} is not {kind}"));
        }
        if let (Some("date-time"), Some(text)) =
            (schema.get("format").and_then(Value::as_str), value.as_str())
        {
            if chrono::DateTime::parse_from_rfc3339(text).is_err() {
                return Err(format!(
                    "{at} is {value}; it must be an RFC 3339 time such as 2026-12-04T15:00:00Z"
                ));
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
            for (i, v) in arr.iter().enumerate() {
                self.walk(items, v, &format!("{at}[{i}]"), depth + 1)?;
            }
        }
        if let (Some(props), Some(obj)) = (
            schema.get("properties").and_then(Value::as_object),
            value.as_object(),
        ) {
            for (k, v) in obj {
                if let Some(s) = props.get(k) {
                    self.walk(s, v, &format!("{at}.{k}"), depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

/// A schema that says nothing (free-form values such as an operation's `input`).
fn schema_is_free(schema: &Value) -> bool {
    schema.as_object().is_some_and(|o| {
        o.keys()
            .all(|k| matches!(k.as_str(), "description" | "title" | "example"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_held_to_their_schemas() {
        let doc = json!({
            "paths": {"/x": {"post": {"requestBody": {"content": {
                "application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/X"}}}}}}},
            "components": {"schemas": {
                "X": {"type": "object", "required": ["a"], "properties": {
                    "a": {"type": "string"},
                    "n": {"type": "integer"},
                    "e": {"allOf": [{"$ref": "#/components/schemas/E"}]},
                    "l": {"type": "array", "items": {"type": "string"}},
                    "free": {"description": "anything"},
                    "recs": {"type": "array", "items": {"$ref": RECORD_SCHEMA}}}},
                "ToolRecord": {"type": "object", "required": ["tool_id"], "properties": {
                    "tool_id": {"type": "string"}}},
                "E": {"type": "string", "enum": ["csv", "xml"]}}}
        });
        let b = BodySchemas::new(&doc.to_string());
        let s = b.schema("POST", "/x").unwrap().clone();
        assert!(b.schema("GET", "/x").is_none());
        let ok = |v: Value| b.check(&s, &v);
        assert!(ok(json!({"a": "x", "n": 3, "e": "csv", "l": ["p"], "free": null})).is_ok());
        assert!(ok(json!({"a": false}))
            .unwrap_err()
            .contains("$.a must be a string"));
        assert!(ok(json!({"a": "x", "n": null}))
            .unwrap_err()
            .contains("null"));
        assert!(ok(json!({"a": "x", "n": 1.5})).is_err());
        assert!(ok(json!({"a": "x", "e": "pdf"}))
            .unwrap_err()
            .contains("$.e"));
        assert!(ok(json!({"a": "x", "l": ["p", 1]}))
            .unwrap_err()
            .contains("$.l[1]"));
        assert!(ok(json!({"a": "x", "free": {"deep": [null]}})).is_ok());
        // Records are judged one by one by the import; the body only needs objects there.
        assert!(ok(json!({"a": "x", "recs": [{"tool_id": 5}, {"tool_id": null}]})).is_ok());
        assert!(ok(json!({"a": "x", "recs": [{}, 5]}))
            .unwrap_err()
            .contains("$.recs[1] must be an object"));
    }
}
