//! A library user's own operation, registered beside the built-in ones.
//!
//! Run it with `cargo run --example custom_operation` (it takes the flags and `LONGRUN_*`
//! variables of `longrun serve`), then:
//!
//! ```sh
//! curl -si -X POST localhost:8080/api/v1/jobs -H 'content-type: application/json' \
//!      -d '{"operation": "wordcount", "input": {"text": "to be or not to be"}}'
//! ```
//!
//! and follow the `Location` header.

use std::sync::Arc;

use async_trait::async_trait;
use longrun::config::{Config, ServeArgs};
use longrun::operations::{Context, OpError, Operation};
use serde_json::{json, Value};

/// The settings of `longrun serve`.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

/// Counts words in a text, one stage per pass, and writes the counts as a JSON file.
struct WordCount;

#[async_trait]
impl Operation for WordCount {
    fn name(&self) -> &str {
        "wordcount"
    }

    fn description(&self) -> &str {
        "Counts the words of a text."
    }

    fn stages(&self) -> i32 {
        2
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}})
    }

    fn validate(&self, input: &Value) -> Result<(), String> {
        match input.get("text") {
            Some(Value::String(_)) => Ok(()),
            _ => Err("`input.text` must be a string".into()),
        }
    }

    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        let text = ctx.input()["text"].as_str().unwrap_or_default().to_string();
        ctx.stage(1, 2, "Counting words").await?;
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            // A checkpoint between batches: a cancel stops the work here.
            if i % 1000 == 0 {
                ctx.checkpoint()?;
                ctx.progress(i as i64, Some(words.len() as i64), "words")
                    .await?;
            }
            *counts.entry(w.to_lowercase()).or_default() += 1;
        }
        ctx.stage(2, 2, "Writing the counts").await?;
        ctx.saving("Writing the counts").await?;
        let mut file = ctx.create_file("counts.json", "application/json").await?;
        file.write(serde_json::to_string(&counts).unwrap().as_bytes())
            .await?;
        let done = file.finish().await?;
        ctx.add_file(done).await?;
        Ok(json!({"words": words.len(), "distinct": counts.len()}))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let args = <Args as clap::Parser>::parse();
    let config = Config::resolve(&args.serve)?;
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let app = longrun::App::build(config, vec![Arc::new(WordCount)]).await?;
    app.run(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
