//! An operation that does nothing: a job that only measures the service itself (benchmarks,
//! smoke tests of a deployment). Given `log`, it writes those lines to its messages first, one
//! every `pauseMs`, so a deployment's live log tail can be tried with it.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Context, OpError, Operation};
use crate::domain::Level;

/// Lines a `noop` job may write, and their length.
const MAX_LINES: usize = 100;
const MAX_LINE: usize = 1000;
/// The longest pause between two lines.
const MAX_PAUSE_MS: u64 = 60_000;

/// The `noop` operation.
pub struct NoopOperation;

/// The lines and the pause of an input, or why it is refused.
fn plan(input: &Value) -> Result<(Vec<String>, u64), String> {
    let lines = match input.get("log") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            if a.len() > MAX_LINES {
                return Err(format!(
                    "`log` may hold at most {MAX_LINES} lines, not {}",
                    a.len()
                ));
            }
            a.iter()
                .map(|l| match l.as_str() {
                    Some(s) if s.chars().count() <= MAX_LINE => Ok(s.to_string()),
                    Some(_) => Err(format!(
                        "a line of `log` may be at most {MAX_LINE} characters"
                    )),
                    None => Err("`log` must be an array of strings".to_string()),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err("`log` must be an array of strings".into()),
    };
    let pause = match input.get("pauseMs") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .filter(|ms| *ms <= MAX_PAUSE_MS)
            .ok_or_else(|| format!("`pauseMs` must be a whole number from 0 to {MAX_PAUSE_MS}"))?,
    };
    Ok((lines, pause))
}

#[async_trait]
impl Operation for NoopOperation {
    fn name(&self) -> &str {
        "noop"
    }
    fn description(&self) -> &str {
        "Does nothing and succeeds: a job that measures the service itself (smoke tests, \
         benchmarks). With `log`, it first writes those lines to its messages, one every \
         `pauseMs` milliseconds (a cancel stops it between two)."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "log": {"type": "array", "maxItems": MAX_LINES,
                        "items": {"type": "string", "maxLength": MAX_LINE},
                        "description": "Lines to write to the job's messages."},
                "pauseMs": {"type": "integer", "minimum": 0, "maximum": MAX_PAUSE_MS,
                            "description": "Milliseconds before each line."}
            }
        })
    }
    fn validate(&self, input: &Value) -> Result<(), String> {
        plan(input).map(|_| ())
    }
    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        let (lines, pause) = plan(ctx.input()).map_err(|e| OpError::failed("input", e))?;
        for line in &lines {
            if pause > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
                    _ = ctx.cancel_token().cancelled() => {}
                }
            }
            ctx.checkpoint()?;
            ctx.message(Level::Info, line).await?;
        }
        Ok(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked() {
        assert_eq!(plan(&json!({})).unwrap(), (vec![], 0));
        assert_eq!(
            plan(&json!({"log": ["a", "b"], "pauseMs": 5})).unwrap(),
            (vec!["a".to_string(), "b".to_string()], 5)
        );
        for bad in [
            json!({"log": "a"}),
            json!({"log": [1]}),
            json!({"log": vec!["x"; 101]}),
            json!({"log": ["x".repeat(1001)]}),
            json!({"pauseMs": -1}),
            json!({"pauseMs": 60001}),
            json!({"pauseMs": "5"}),
        ] {
            assert!(plan(&bad).is_err(), "{bad}");
        }
    }
}
