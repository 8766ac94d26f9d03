//! The `longrun` command-line client: `submit`, `jobs` and `download`.
//!
//! It speaks only HTTP and builds no job URL itself: it starts at the service root (`--server`),
//! takes the collection links from it, follows `Location` after a submission and then the links
//! of the job documents (`monitor`, `events`, `cancel`, `delete`, `operator:restart`, `file`).
//! Exit codes: 0 success, 1 the job FAILED, 2 the job was CANCELLED, 3 a usage or connection
//! error, or a problem answered by the service, 130 interrupted (Ctrl-C) while following a job,
//! which goes on.

mod http;
mod show;
mod verbs;
mod watch;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

pub use http::Client;
pub use show::note;

/// The job ended SUCCESS, or the verb did what it was asked.
pub const EXIT_SUCCESS: i32 = 0;
/// The job ended FAILED.
pub const EXIT_FAILED: i32 = 1;
/// The job ended CANCELLED.
pub const EXIT_CANCELLED: i32 = 2;
/// A usage or connection error, or a problem document from the service.
pub const EXIT_ERROR: i32 = 3;
/// Interrupted (SIGINT, Ctrl-C) while following a job; the job itself goes on (128 + SIGINT, as
/// shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Why a verb stopped early: the exit code and what to say on stderr.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    /// A usage, connection or HTTP error (exit code 3).
    pub fn error(message: impl Into<String>) -> Exit {
        Exit {
            code: EXIT_ERROR,
            message: message.into(),
        }
    }
}

/// How documents are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A compact table for people.
    Table,
    /// The service's own JSON document.
    Json,
    /// The service's own XML document.
    Xml,
}

/// Settings shared by the client verbs.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// The service's root URL.
    #[arg(
        long,
        global = true,
        env = "LONGRUN_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, global = true, env = "LONGRUN_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// How to print answers: the service's own document (`json`, `xml`) or a `table`.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `longrun submit …`
#[derive(Debug, Args)]
pub struct SubmitCmd {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub what: Submit,
}

/// What can be submitted.
#[derive(Debug, Subcommand)]
pub enum Submit {
    /// Import tool records: JSON `{"data": [...]}`, NDJSON (one record a line) or XML; `-` reads
    /// standard input.
    Import {
        /// The file of records, or `-` for standard input.
        file: String,
        /// Wait for the end; the exit code tells how it ended.
        #[arg(long)]
        wait: bool,
        /// The body's format (guessed from the file name and its first bytes when absent).
        #[arg(long, value_enum)]
        format: Option<BodyFormat>,
    },
    /// Compare two XML or two JSON documents: files, or http(s) URLs the service fetches.
    Compare {
        /// The first (old) document.
        a: String,
        /// The second (new) document.
        b: String,
        /// Wait for the end; the exit code tells how it ended.
        #[arg(long)]
        wait: bool,
        /// Download the result (delta or JSON Patch) to this file (waits for the end); with `-`,
        /// the result alone goes to standard output and the job to standard error.
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        /// XML: attributes that identify an element among its siblings (comma-separated).
        #[arg(long, value_delimiter = ',')]
        key_attributes: Vec<String>,
        /// JSON: fields that identify an object in an array (comma-separated).
        #[arg(long, value_delimiter = ',')]
        key_fields: Vec<String>,
        /// XML: ignore whitespace-only text.
        #[arg(long)]
        ignore_whitespace: bool,
    },
}

/// The format of an import body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BodyFormat {
    Json,
    Ndjson,
    Xml,
}

/// `longrun jobs …`
#[derive(Debug, Args)]
pub struct JobsCmd {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub verb: Jobs,
}

/// What can be done with jobs.
#[derive(Debug, Subcommand)]
pub enum Jobs {
    /// List jobs by the audit filters.
    List(ListArgs),
    /// Follow a job until it ends (a progress bar, or plain lines when not on a terminal).
    Watch {
        /// The job's URL, or its id.
        job: String,
    },
    /// Ask a job to stop (through its `cancel` link).
    Cancel {
        /// The job's URL, or its id.
        job: String,
    },
    /// Delete a job and its outputs (through its `delete` link).
    Delete {
        /// The job's URL, or its id.
        job: String,
    },
    /// Run a FAILED or CANCELLED job again (through its `operator:restart` link).
    Restart {
        /// The job's URL, or its id.
        job: String,
    },
}

/// The audit filters of `jobs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Statuses to include (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Operation name.
    #[arg(long)]
    pub operation: Option<String>,
    /// Correlation id.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Created after: an RFC 3339 time, or a span back from now (`90m`, `2d`).
    #[arg(long)]
    pub since: Option<String>,
    /// Created before: an RFC 3339 time, or a span back from now.
    #[arg(long)]
    pub until: Option<String>,
    /// Finished after: an RFC 3339 time, or a span back from now.
    #[arg(long)]
    pub finished_after: Option<String>,
    /// Finished before: an RFC 3339 time, or a span back from now.
    #[arg(long)]
    pub finished_before: Option<String>,
    /// Newest first.
    #[arg(long)]
    pub newest: bool,
    /// Page size, 1 to 1000.
    #[arg(long)]
    pub limit: Option<u32>,
}

/// `longrun download FILE_URL -o OUT`
#[derive(Debug, Args)]
pub struct DownloadCmd {
    #[command(flatten)]
    pub conn: Conn,
    /// The file's URL (a `file` link of a job).
    pub url: String,
    /// Where to write it (`-` for standard output).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

/// Parse the command line; a usage error exits 3 (help and version exit 0).
pub fn parse<P: clap::Parser>() -> P {
    P::try_parse().unwrap_or_else(|e| {
        let code = if e.use_stderr() {
            EXIT_ERROR
        } else {
            EXIT_SUCCESS
        };
        let _ = e.print();
        std::process::exit(code)
    })
}

fn finish(r: Result<i32, Exit>) -> i32 {
    match r {
        Ok(code) => code,
        Err(e) => {
            show::note(&format!("longrun: {}", e.message));
            e.code
        }
    }
}

/// Print `text` on standard output for the commands that are not client verbs (`openapi`,
/// `keys`, …): a reader that stopped reading (`longrun openapi | head`) ends the output quietly,
/// another write error is returned.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    show::stdout(text.as_bytes()).map_err(|e| anyhow::anyhow!(e.message))
}

/// Run `longrun submit …`; returns the exit code.
pub async fn submit(cmd: SubmitCmd) -> i32 {
    finish(
        async {
            let c = Client::new(&cmd.conn)?;
            match cmd.what {
                Submit::Import { file, wait, format } => {
                    verbs::submit_import(&c, &file, wait, format).await
                }
                Submit::Compare {
                    a,
                    b,
                    wait,
                    out,
                    key_attributes,
                    key_fields,
                    ignore_whitespace,
                } => {
                    let options = verbs::CompareOptions {
                        key_attributes,
                        key_fields,
                        ignore_whitespace,
                    };
                    verbs::submit_compare(&c, &a, &b, wait, out.as_deref(), &options).await
                }
            }
        }
        .await,
    )
}

/// Run `longrun jobs …`; returns the exit code.
pub async fn jobs(cmd: JobsCmd) -> i32 {
    finish(
        async {
            let c = Client::new(&cmd.conn)?;
            match cmd.verb {
                Jobs::List(args) => verbs::list(&c, &args).await,
                Jobs::Watch { job } => verbs::watch(&c, &job).await,
                Jobs::Cancel { job } => verbs::act(&c, &job, "cancel", "cancelled").await,
                Jobs::Delete { job } => verbs::act(&c, &job, "delete", "deleted").await,
                Jobs::Restart { job } => {
                    verbs::act(&c, &job, "operator:restart", "restarted").await
                }
            }
        }
        .await,
    )
}

/// Run `longrun download …`; returns the exit code.
pub async fn download(cmd: DownloadCmd) -> i32 {
    finish(
        async {
            let c = Client::new(&cmd.conn)?;
            let n = c.download(&cmd.url, &cmd.out).await?;
            show::note(&format!("{n} bytes written to {}", cmd.out.display()));
            Ok(EXIT_SUCCESS)
        }
        .await,
    )
}
