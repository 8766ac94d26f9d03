//! An operation that does nothing: a job that only measures the service itself (benchmarks,
//! smoke tests of a deployment).

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Context, OpError, Operation};

/// The `noop` operation.
pub struct NoopOperation;

#[async_trait]
impl Operation for NoopOperation {
    fn name(&self) -> &str {
        "noop"
    }
    fn description(&self) -> &str {
        "Does nothing and succeeds: a job that measures the service itself (smoke tests, benchmarks)."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }
    async fn run(&self, _ctx: &mut Context) -> Result<Value, OpError> {
        Ok(json!({}))
    }
}
