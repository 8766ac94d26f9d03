//! Tools of the catalog (seed 000) and import outcomes.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// One tool in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRow {
    pub tool_id: String,
    pub tool_name: String,
    pub category: String,
    pub description: Option<String>,
    pub features: Vec<String>,
    pub url: Option<String>,
    /// The import job that wrote it last.
    pub job_id: Uuid,
    pub updated: DateTime<Utc>,
}

/// The outcome of one record of an import.
#[derive(Debug, Clone)]
pub enum ToolWrite {
    /// Valid: upsert the tool.
    Imported { idx: u64, tool: ToolRow },
    /// Invalid: kept with its reason.
    Failed {
        idx: u64,
        record: Value,
        reason: String,
    },
}

/// The seed's record shape of a tool.
pub fn tool_json(t: &ToolRow) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("tool_name".into(), t.tool_name.clone().into());
    m.insert("tool_id".into(), t.tool_id.clone().into());
    m.insert("category".into(), t.category.clone().into());
    if let Some(d) = &t.description {
        m.insert("description".into(), d.clone().into());
    }
    m.insert("features".into(), t.features.clone().into());
    if let Some(u) = &t.url {
        m.insert("url".into(), u.clone().into());
    }
    Value::Object(m)
}
