//! The `longrun` command line.

use clap::{Parser, Subcommand};
use longrun::config::{Config, ServeArgs};

/// Many small allocations per request (headers, documents, links): mimalloc serves them with far
/// less contention and fragmentation than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "longrun", version, about = "Long-running work over HTTP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the worker pool.
    Serve(ServeArgs),
    /// Apply the database schema and exit.
    Migrate(ServeArgs),
    /// Print the OpenAPI document (YAML).
    Openapi,
    /// Print the secret deliveries are signed with (made and kept in the database if not set).
    WebhookSecret(ServeArgs),
    /// Manage API keys (kept in the database as digests only).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Submit work (an import or a comparison) to a running service.
    Submit(longrun::client::SubmitCmd),
    /// List, watch, cancel, delete or restart jobs of a running service.
    Jobs(longrun::client::JobsCmd),
    /// Download a file a job produced.
    Download(longrun::client::DownloadCmd),
}

#[derive(Subcommand)]
enum KeysAction {
    /// Make a key and print it (it is shown this once).
    Create {
        /// The tenant the key acts for (letters, digits, `.`, `_`, `-`).
        #[arg(long)]
        tenant: String,
        /// read (GET), submit (+ submissions, cancel) or admin (+ delete, restart, prune, keys).
        #[arg(long, default_value = "submit")]
        scope: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// List the keys (id, prefix, tenant, scope, created, revoked).
    List {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Revoke a key by id or prefix; it is refused from the next request on.
    Revoke {
        /// The key's id or prefix (as `keys list` shows).
        key: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

async fn keys(action: KeysAction) -> anyhow::Result<()> {
    use longrun::domain::access::{check_tenant, new_key, Scope};
    let serve = match &action {
        KeysAction::Create { serve, .. }
        | KeysAction::List { serve }
        | KeysAction::Revoke { serve, .. } => serve,
    };
    let config = Config::resolve(serve)?;
    let store = longrun::store::Store::connect(&config.database_url).await?;
    store.migrate().await?;
    match action {
        KeysAction::Create { tenant, scope, .. } => {
            check_tenant(&tenant).map_err(anyhow::Error::msg)?;
            let scope = Scope::parse(&scope).map_err(anyhow::Error::msg)?;
            let (secret, digest, prefix) = new_key();
            let k = store
                .insert_key(&tenant, scope.as_str(), &digest, &prefix)
                .await?;
            longrun::client::note(&format!(
                "key {} for tenant `{}` with scope `{}`; it is shown only now:",
                k.id, k.tenant, k.scope
            ));
            longrun::client::print_stdout(&format!("{secret}\n"))?;
        }
        KeysAction::List { .. } => {
            let mut text = format!(
                "{:<36}  {:<10}  {:<20}  {:<6}  {:<20}  REVOKED\n",
                "ID", "PREFIX", "TENANT", "SCOPE", "CREATED"
            );
            for k in store.keys().await? {
                let t =
                    |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%dT%H:%M:%SZ").to_string();
                text.push_str(&format!(
                    "{:<36}  {:<10}  {:<20}  {:<6}  {:<20}  {}\n",
                    k.id,
                    k.prefix,
                    k.tenant,
                    k.scope,
                    t(k.created),
                    k.revoked.map(t).unwrap_or_else(|| "-".into())
                ));
            }
            longrun::client::print_stdout(&text)?;
        }
        KeysAction::Revoke { key, .. } => {
            if !store.revoke_key(&key).await? {
                anyhow::bail!("no live key with id or prefix `{key}`");
            }
            longrun::client::print_stdout(&format!("revoked {key}\n"))?;
        }
    }
    Ok(())
}

async fn terminate() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = longrun::client::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .json()
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::resolve(&args)?;
            let listener = tokio::net::TcpListener::bind(config.bind).await?;
            let app = longrun::App::build(config, Vec::new()).await?;
            app.run(listener, terminate()).await
        }
        Command::Migrate(args) => {
            let config = Config::resolve(&args)?;
            let store = longrun::store::Store::connect(&config.database_url).await?;
            store.migrate().await?;
            longrun::client::print_stdout("schema is up to date\n")
        }
        Command::WebhookSecret(args) => {
            let config = Config::resolve(&args)?;
            let app = longrun::App::build(config, Vec::new()).await?;
            longrun::client::print_stdout(&format!("{}\n", app.webhook_secret))
        }
        Command::Keys { action } => keys(action).await,
        Command::Submit(c) => std::process::exit(longrun::client::submit(c).await),
        Command::Jobs(c) => std::process::exit(longrun::client::jobs(c).await),
        Command::Download(c) => std::process::exit(longrun::client::download(c).await),
        Command::Openapi => {
            let args = ServeArgs {
                database_url: Some("sqlite::memory:".into()),
                store_url: Some("memory://".into()),
                ..Default::default()
            };
            let app = longrun::App::build(Config::resolve(&args)?, Vec::new()).await?;
            let api = longrun::api::openapi(app.state.clone());
            longrun::client::print_stdout(&longrun::api::spec_documents(&api).1)
        }
    }
}
