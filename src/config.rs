//! Settings from flags, `LONGRUN_*` environment variables and an optional TOML file.
//! Flags win over the environment, which wins over the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// What `longrun serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// HTTP API and workers.
    All,
    /// HTTP API only.
    Api,
    /// Workers only.
    Worker,
}

impl Role {
    /// Its name, as `LONGRUN_ROLE` takes it and `GET /api/v1/stats` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

/// The flags of `longrun serve` (each also read from its environment variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Optional TOML file with the same keys (bind, database_url, ...).
    #[arg(long, env = "LONGRUN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LONGRUN_BIND")]
    pub bind: Option<String>,
    /// sqlite://FILE or postgres://… [default: SQLite file ./longrun-data/longrun.db].
    #[arg(long, env = "LONGRUN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// file://DIR, memory:// or s3://BUCKET/PREFIX [default: ./longrun-data/objects].
    #[arg(long, env = "LONGRUN_STORE_URL")]
    pub store_url: Option<String>,
    /// Jobs run at once [default: number of cores].
    #[arg(long, env = "LONGRUN_WORKERS")]
    pub workers: Option<usize>,
    /// How long finished jobs are kept, e.g. 7d, 12h [default: 7d].
    #[arg(long, env = "LONGRUN_RETENTION")]
    pub retention: Option<String>,
    /// How long a synchronous submission may wait for its result [default: 30s].
    #[arg(long, env = "LONGRUN_SYNC_LIMIT")]
    pub sync_limit: Option<String>,
    /// all, api or worker [default: all].
    #[arg(long, env = "LONGRUN_ROLE", value_enum)]
    pub role: Option<Role>,
    /// Secret for signing deliveries (whsec_…) [default: made on first start, kept in the database].
    #[arg(long, env = "LONGRUN_WEBHOOK_SECRET")]
    pub webhook_secret: Option<String>,
    /// Allow callbacks to loopback and private addresses.
    #[arg(long, env = "LONGRUN_CALLBACK_ALLOW_PRIVATE")]
    pub callback_allow_private: Option<bool>,
    /// Base URL of links [default: derived from Host and X-Forwarded-*].
    #[arg(long, env = "LONGRUN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Addresses (IPs or CIDR ranges, comma-separated) of the proxies whose X-Forwarded-Proto
    /// and X-Forwarded-Host are believed [default: none].
    #[arg(long, env = "LONGRUN_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// The tenant whose admin keys see every tenant on `/metrics` [default: none].
    #[arg(long, env = "LONGRUN_OPERATOR_TENANT")]
    pub operator_tenant: Option<String>,
    /// How long a worker's claim holds without a heartbeat [default: 30s].
    #[arg(long, env = "LONGRUN_LEASE")]
    pub lease: Option<String>,
    /// Runs before a job whose worker keeps dying is FAILED [default: 3].
    #[arg(long, env = "LONGRUN_MAX_ATTEMPTS")]
    pub max_attempts: Option<i32>,
    /// The longest one run of an operation may take, e.g. `compare=10m,import=4h,*=1h`; a
    /// submission's `timeout` may ask for less [default: none].
    #[arg(long, env = "LONGRUN_MAX_RUNTIME")]
    pub max_runtime: Option<String>,
    /// Jobs one tenant may run at once across every instance [default: no limit].
    #[arg(long, env = "LONGRUN_TENANT_CONCURRENCY")]
    pub tenant_concurrency: Option<String>,
    /// Jobs of an operation that may run at once across every instance, e.g.
    /// `compare=2,import=4` [default: no limit].
    #[arg(long, env = "LONGRUN_OPERATION_CONCURRENCY")]
    pub operation_concurrency: Option<String>,
    /// Time running jobs get to reach a checkpoint at shutdown [default: 20s].
    #[arg(long, env = "LONGRUN_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,
    /// Waits before each retry of a failed delivery [default: 5s,5m,30m,2h,5h,10h].
    #[arg(long, env = "LONGRUN_DELIVERY_RETRIES")]
    pub delivery_retries: Option<String>,
    /// Time limit of one delivery try [default: 10s].
    #[arg(long, env = "LONGRUN_DELIVERY_TIMEOUT")]
    pub delivery_timeout: Option<String>,
    /// How long an endpoint's deliveries may fail without a success before it is switched off
    /// [default: 5d].
    #[arg(long, env = "LONGRUN_DELIVERY_DISABLE_AFTER")]
    pub delivery_disable_after: Option<String>,
    /// Largest document a comparison takes per input, e.g. 64MiB [default: 64MiB].
    #[arg(long, env = "LONGRUN_MAX_INPUT_SIZE")]
    pub max_input_size: Option<String>,
    /// Deepest nesting of elements, arrays or objects a document may have [default: 256].
    #[arg(long, env = "LONGRUN_MAX_DEPTH")]
    pub max_depth: Option<usize>,
    /// Largest request body, e.g. 1GiB [default: 1GiB].
    #[arg(long, env = "LONGRUN_MAX_BODY_SIZE")]
    pub max_body_size: Option<String>,
    /// Most records one import may hold [default: 10000000].
    #[arg(long, env = "LONGRUN_MAX_IMPORT_RECORDS")]
    pub max_import_records: Option<u64>,
    /// Most parts a multipart form may have [default: 32].
    #[arg(long, env = "LONGRUN_MAX_PARTS")]
    pub max_parts: Option<usize>,
    /// Most values (JSON values, XML elements) a request body read whole may hold
    /// [default: 100000].
    #[arg(long, env = "LONGRUN_MAX_BODY_VALUES")]
    pub max_body_values: Option<usize>,
    /// Time limit of fetching one input by URI [default: 60s].
    #[arg(long, env = "LONGRUN_FETCH_TIMEOUT")]
    pub fetch_timeout: Option<String>,
    /// Submissions per API key, e.g. 100/s, 600/m, or off [default: 100/s].
    #[arg(long, env = "LONGRUN_RATE_LIMIT")]
    pub rate_limit: Option<String>,
    /// Serve without API keys on a non-loopback address (anyone who can connect may do anything).
    #[arg(long, env = "LONGRUN_INSECURE_OPEN")]
    pub insecure_open: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    store_url: Option<String>,
    workers: Option<usize>,
    retention: Option<String>,
    sync_limit: Option<String>,
    role: Option<Role>,
    webhook_secret: Option<String>,
    callback_allow_private: Option<bool>,
    public_url: Option<String>,
    trusted_proxies: Option<String>,
    operator_tenant: Option<String>,
    lease: Option<String>,
    max_attempts: Option<i32>,
    max_runtime: Option<String>,
    tenant_concurrency: Option<u32>,
    operation_concurrency: Option<String>,
    shutdown_grace: Option<String>,
    delivery_retries: Option<String>,
    delivery_timeout: Option<String>,
    delivery_disable_after: Option<String>,
    max_input_size: Option<String>,
    max_depth: Option<usize>,
    max_body_size: Option<String>,
    max_import_records: Option<u64>,
    max_parts: Option<usize>,
    max_body_values: Option<usize>,
    fetch_timeout: Option<String>,
    rate_limit: Option<String>,
    insecure_open: Option<bool>,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub store_url: String,
    pub workers: usize,
    pub retention: Duration,
    pub sync_limit: Duration,
    pub role: Role,
    pub webhook_secret: Option<String>,
    pub callback_allow_private: bool,
    pub public_url: Option<String>,
    /// The proxies whose forwarded headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The tenant whose admin keys see every tenant's jobs on `/metrics`.
    pub operator_tenant: Option<String>,
    pub lease: Duration,
    pub max_attempts: i32,
    pub max_runtime: crate::domain::deadline::MaxRuntime,
    pub concurrency: crate::domain::concurrency::Concurrency,
    pub shutdown_grace: Duration,
    pub delivery_retries: Vec<Duration>,
    pub delivery_timeout: Duration,
    pub delivery_disable_after: Duration,
    pub max_input_size: u64,
    pub max_depth: usize,
    pub max_body_size: u64,
    pub max_import_records: u64,
    pub max_parts: usize,
    pub max_body_values: usize,
    pub fetch_timeout: Duration,
    pub rate_limit: Option<crate::domain::access::Rate>,
    pub insecure_open: bool,
}

/// A setting that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn duration(name: &str, v: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(v.trim())
        .map_err(|e| ConfigError(format!("{name} = `{v}`: {e} (use e.g. 30s, 5m, 7d)")))
}

/// A size like `64MiB`, `10MB`, `512KiB` or a number of bytes.
fn size(name: &str, v: &str) -> Result<u64, ConfigError> {
    let t = v.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| ConfigError(format!("{name} = `{v}`: use e.g. 64MiB, 10MB or 1048576")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "kib" => 1024.0,
        "mb" | "m" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "gb" | "g" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(ConfigError(format!(
                "{name} = `{v}`: unknown unit `{other}` (use B, KB, KiB, MB, MiB, GB, GiB)"
            )))
        }
    };
    Ok((n * mult) as u64)
}

/// `LONGRUN_TRUSTED_PROXIES`: IPs or CIDR ranges, comma-separated (a bare IP is that one address).
fn proxies(v: Option<&str>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    v.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError(format!(
                        "trusted_proxies: `{p}` is not an IP address or a CIDR range (e.g. 10.0.0.0/8)"
                    ))
                })
        })
        .collect()
}

impl Config {
    /// Resolve flags/env over the optional file over the defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file: FileConfig = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("reading {}: {e}", p.display())))?;
                toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", p.display())))?
            }
            None => FileConfig::default(),
        };
        let bind = args
            .bind
            .clone()
            .or(file.bind)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind = bind
            .parse()
            .map_err(|e| ConfigError(format!("bind = `{bind}`: {e}")))?;
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| "sqlite://./longrun-data/longrun.db".into());
        if let Some(path) = database_url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| ConfigError(format!("creating {}: {e}", dir.display())))?;
                }
            }
        }
        let database_url = if database_url.starts_with("sqlite:") && !database_url.contains('?') {
            format!("{database_url}?mode=rwc")
        } else {
            database_url
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let d = |name: &str, a: &Option<String>, f: Option<String>, def: &str| {
            duration(name, a.as_deref().or(f.as_deref()).unwrap_or(def))
        };
        Ok(Config {
            bind,
            database_url,
            store_url: args
                .store_url
                .clone()
                .or(file.store_url)
                .unwrap_or_else(|| "./longrun-data/objects".into()),
            workers: args.workers.or(file.workers).unwrap_or(cores).max(1),
            retention: d("retention", &args.retention, file.retention, "7d")?,
            sync_limit: d("sync_limit", &args.sync_limit, file.sync_limit, "30s")?,
            role: args.role.or(file.role).unwrap_or(Role::All),
            webhook_secret: args.webhook_secret.clone().or(file.webhook_secret),
            callback_allow_private: args
                .callback_allow_private
                .or(file.callback_allow_private)
                .unwrap_or(false),
            public_url: args
                .public_url
                .clone()
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            trusted_proxies: proxies(
                args.trusted_proxies
                    .as_deref()
                    .or(file.trusted_proxies.as_deref()),
            )?,
            operator_tenant: args
                .operator_tenant
                .clone()
                .or(file.operator_tenant)
                .filter(|t| !t.trim().is_empty()),
            lease: d("lease", &args.lease, file.lease, "30s")?,
            max_attempts: args.max_attempts.or(file.max_attempts).unwrap_or(3).max(1),
            max_runtime: crate::domain::deadline::MaxRuntime::parse(
                args.max_runtime
                    .as_deref()
                    .or(file.max_runtime.as_deref())
                    .unwrap_or(""),
            )
            .map_err(|e| ConfigError(format!("max_runtime: {e}")))?,
            concurrency: crate::domain::concurrency::Concurrency::parse(
                &args
                    .tenant_concurrency
                    .clone()
                    .or(file.tenant_concurrency.map(|n| n.to_string()))
                    .unwrap_or_default(),
                args.operation_concurrency
                    .as_deref()
                    .or(file.operation_concurrency.as_deref())
                    .unwrap_or(""),
            )
            .map_err(ConfigError)?,
            shutdown_grace: d(
                "shutdown_grace",
                &args.shutdown_grace,
                file.shutdown_grace,
                "20s",
            )?,
            delivery_retries: crate::domain::signals::parse_schedule(
                args.delivery_retries
                    .as_deref()
                    .or(file.delivery_retries.as_deref())
                    .unwrap_or("5s,5m,30m,2h,5h,10h"),
            )
            .map_err(ConfigError)?,
            delivery_timeout: d(
                "delivery_timeout",
                &args.delivery_timeout,
                file.delivery_timeout,
                "10s",
            )?,
            delivery_disable_after: d(
                "delivery_disable_after",
                &args.delivery_disable_after,
                file.delivery_disable_after,
                "5d",
            )?,
            max_input_size: size(
                "max_input_size",
                args.max_input_size
                    .as_deref()
                    .or(file.max_input_size.as_deref())
                    .unwrap_or("64MiB"),
            )?,
            max_depth: args
                .max_depth
                .or(file.max_depth)
                .unwrap_or(256)
                .clamp(1, 4096),
            max_body_size: size(
                "max_body_size",
                args.max_body_size
                    .as_deref()
                    .or(file.max_body_size.as_deref())
                    .unwrap_or("1GiB"),
            )?,
            max_import_records: args
                .max_import_records
                .or(file.max_import_records)
                .unwrap_or(10_000_000)
                .max(1),
            max_parts: args.max_parts.or(file.max_parts).unwrap_or(32).max(2),
            max_body_values: args
                .max_body_values
                .or(file.max_body_values)
                .unwrap_or(100_000)
                .max(64),
            fetch_timeout: d(
                "fetch_timeout",
                &args.fetch_timeout,
                file.fetch_timeout,
                "60s",
            )?,
            rate_limit: crate::domain::access::Rate::parse(
                args.rate_limit
                    .as_deref()
                    .or(file.rate_limit.as_deref())
                    .unwrap_or("100/s"),
            )
            .map_err(|e| ConfigError(format!("rate_limit: {e}")))?,
            insecure_open: args.insecure_open.or(file.insecure_open).unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9\"\nworkers = 5\nretention = \"1h\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            workers: Some(7),
            database_url: Some("memory".into()),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9");
        assert_eq!(c.workers, 7);
        assert_eq!(c.retention, Duration::from_secs(3600));
        assert_eq!(c.sync_limit, Duration::from_secs(30));
        assert_eq!(c.max_input_size, 64 * 1024 * 1024);
        assert_eq!(size("x", "10MB").unwrap(), 10_000_000);
        assert_eq!(size("x", "512KiB").unwrap(), 524_288);
        assert!(size("x", "12 parsecs").is_err());
        let bad = ServeArgs {
            lease: Some("soon".into()),
            database_url: Some("memory".into()),
            ..Default::default()
        };
        assert!(Config::resolve(&bad).is_err());
    }
}
