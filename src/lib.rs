//! longrun: a service for long-running work over HTTP.
//!
//! `App` is the one place that wires the rooms together and owns shutdown order.

pub mod api;
pub mod blobs;
pub mod client;
pub mod compare;
pub mod config;
pub mod domain;
pub mod engine;
pub mod formats;
pub mod metrics;
pub mod net;
pub mod operations;
pub mod store;
pub mod ui;

use std::sync::Arc;

use async_trait::async_trait;

use crate::blobs::Blobs;
use crate::config::{Config, Role};
use crate::domain::{RunLease, ToolWrite};
use crate::engine::{Engine, EngineConfig};
use crate::operations::compare::CompareOperation;
use crate::operations::export::{Dataset, ExportOperation, ExportSource};
use crate::operations::import::{ImportOperation, ToolCatalog};
use crate::operations::request::RequestOperation;
use crate::operations::{Operation, Registry};
use crate::store::Store;

#[async_trait]
impl ToolCatalog for Store {
    async fn write_batch(&self, lease: &RunLease, batch: &[ToolWrite]) -> Result<bool, String> {
        self.write_import_batch(lease, batch)
            .await
            .map_err(|e| e.to_string())
    }
    async fn failed_after(
        &self,
        job_id: uuid::Uuid,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, serde_json::Value, String)>, String> {
        self.failed_records(job_id, after, limit)
            .await
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl ExportSource for Store {
    async fn count(
        &self,
        dataset: Dataset,
        filter: &crate::domain::JobFilter,
    ) -> Result<u64, String> {
        match dataset {
            Dataset::Tools => self.count_tools(tenant(filter)).await,
            Dataset::Jobs => self.count_jobs(filter).await,
        }
        .map_err(|e| e.to_string())
    }
    async fn page(
        &self,
        dataset: Dataset,
        filter: &crate::domain::JobFilter,
        after: Option<String>,
        limit: u64,
    ) -> Result<Vec<(String, serde_json::Value)>, String> {
        match dataset {
            Dataset::Tools => Ok(self
                .list_tools(tenant(filter), after.as_deref(), limit)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(|t| (t.tool_id.clone(), crate::domain::tool_json(t)))
                .collect()),
            Dataset::Jobs => {
                let cursor = after
                    .map(|a| a.parse().map_err(|_| format!("bad export cursor {a}")))
                    .transpose()?
                    .map(|after| crate::domain::Cursor {
                        after,
                        backwards: false,
                    });
                Ok(self
                    .list_jobs(filter, false, cursor, limit)
                    .await
                    .map_err(|e| e.to_string())?
                    .items
                    .iter()
                    .map(|j| (j.id.to_string(), crate::operations::export::job_row(j)))
                    .collect())
            }
        }
    }
}

/// The tenant an export reads (set by the export from its job's owner).
fn tenant(filter: &crate::domain::JobFilter) -> &str {
    filter
        .owner
        .as_deref()
        .unwrap_or(crate::domain::access::OPEN_TENANT)
}

/// A running service: its engine and the HTTP endpoint.
pub struct App {
    pub config: Config,
    pub engine: Arc<Engine>,
    pub state: Arc<api::AppState>,
    /// The `whsec_…` secret deliveries are signed with.
    pub webhook_secret: String,
    endpoint: Arc<poem::endpoint::BoxEndpoint<'static, poem::Response>>,
}

impl App {
    /// Connect the store and object store, migrate, and register the built-in operations plus
    /// `extra` (a library user's own).
    pub async fn build(config: Config, extra: Vec<Arc<dyn Operation>>) -> anyhow::Result<App> {
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        let blobs = Blobs::open(&config.store_url)?;
        let secret = match &config.webhook_secret {
            Some(s) => s.clone(),
            None => {
                store
                    .setting_or_insert("webhook_secret", &crate::domain::signals::new_secret())
                    .await?
            }
        };
        let keys = crate::domain::signals::secret_keys(&secret).map_err(anyhow::Error::msg)?;
        let mut registry = Registry::new();
        registry.register(Arc::new(ImportOperation::new(Arc::new(store.clone()))));
        registry.register(Arc::new(ExportOperation::new(Arc::new(store.clone()))));
        registry.register(Arc::new(crate::operations::noop::NoopOperation));
        let self_client = Arc::new(api::compat::bgrs::SelfClient::default());
        registry.register(Arc::new(RequestOperation::new(self_client.clone())));
        registry.register(Arc::new(
            CompareOperation::new(
                crate::net::Outbound::new(config.callback_allow_private, config.fetch_timeout),
                config.max_input_size,
                config.max_depth,
            )
            .with_blobs(blobs.clone()),
        ));
        for op in extra {
            // The control lane's names are the service's own: a job of that name is claimed by
            // the control loops and run by their operation only.
            if crate::domain::Lane::of(op.name()) == crate::domain::Lane::Control {
                anyhow::bail!("the operation name `{}` is reserved", op.name());
            }
            registry.register(op);
        }
        let store_for_settings = store.clone();
        let engine = Engine::new(
            store,
            blobs,
            Arc::new(registry),
            EngineConfig {
                workers: config.workers,
                lease: config.lease,
                max_attempts: config.max_attempts,
                grace: config.shutdown_grace,
                retention: config.retention,
                max_runtime: config.max_runtime.clone(),
                concurrency: config.concurrency.clone(),
                deliveries: crate::engine::DeliveryConfig {
                    keys,
                    allow_private: config.callback_allow_private,
                    schedule: config.delivery_retries.clone(),
                    timeout: config.delivery_timeout,
                    disable_after: config.delivery_disable_after,
                    ..Default::default()
                },
                ..EngineConfig::default()
            },
        );
        let state = Arc::new(api::AppState {
            engine: engine.clone(),
            public_url: config.public_url.clone(),
            sync_limit: config.sync_limit,
            max_input_size: config.max_input_size,
            max_depth: config.max_depth,
            share_key: crate::domain::signals::secret_key(
                &store_for_settings
                    .setting_or_insert("share_secret", &crate::domain::signals::new_secret())
                    .await?,
            )
            .map_err(anyhow::Error::msg)?,
            gate: Arc::new(api::access::Gate::new(config.rate_limit)),
            limits: api::Limits {
                max_body_size: config.max_body_size,
                max_import_records: config.max_import_records,
                max_parts: config.max_parts,
                max_input_size: config.max_input_size,
                max_body_values: config.max_body_values,
            },
            renders: Default::default(),
            trusted_proxies: config.trusted_proxies.clone(),
            operator_tenant: config.operator_tenant.clone(),
        });
        let endpoint = Arc::new(poem::EndpointExt::boxed(api::app(state.clone())));
        self_client.set(&endpoint);
        Ok(App {
            config,
            engine,
            state,
            webhook_secret: secret,
            endpoint,
        })
    }

    /// The HTTP endpoint.
    pub fn endpoint(&self) -> Arc<poem::endpoint::BoxEndpoint<'static, poem::Response>> {
        self.endpoint.clone()
    }

    /// Serve on `listener` until `shutdown` resolves; then stop the workers gracefully.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        if self.config.role != Role::Worker
            && !addr.ip().is_loopback()
            && !self.config.insecure_open
            && !self.engine.store().any_keys().await?
        {
            anyhow::bail!(
                "refusing to serve on {addr} without API keys: anyone who can reach it could \
                 do anything. Create a key (`longrun keys create --tenant NAME --scope admin`), \
                 bind to a loopback address, or pass --insecure-open (LONGRUN_INSECURE_OPEN=true)"
            );
        }
        let runs_workers = self.config.role != Role::Api;
        let workers = if runs_workers {
            Some(self.engine.start_workers())
        } else {
            None
        };
        let maintenance = if runs_workers {
            self.engine.start_maintenance()
        } else {
            Vec::new()
        };
        let deliveries = runs_workers.then(|| self.engine.start_deliveries());
        let poller = self.engine.start_change_poller();
        let hearing = self.engine.start_listener();
        tracing::info!(%addr, role = ?self.config.role, "longrun listening");
        let stop = tokio_util::sync::CancellationToken::new();
        let presence = self
            .engine
            .start_presence(self.config.role.as_str(), stop.clone());
        let stop2 = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop2.cancel();
        });
        // When the stop comes, claiming stops and running jobs are asked to reach a checkpoint
        // at once, while HTTP drains: both within the one grace period.
        let engine = self.engine.clone();
        let stopping = stop.clone();
        let work = async move {
            stopping.cancelled().await;
            if let Some(w) = workers {
                engine.shutdown(w).await;
            }
        };
        if self.config.role != Role::Worker {
            let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
            let stop3 = stop.clone();
            let http = poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                self.endpoint(),
                async move { stop3.cancelled().await },
                Some(self.config.shutdown_grace),
            );
            let (served, ()) = tokio::join!(http, work);
            served?;
        } else {
            work.await;
        }
        for task in maintenance.into_iter().chain(deliveries) {
            task.abort();
        }
        poller.abort();
        let _ = presence.await;
        if let Some(l) = hearing {
            l.abort();
        }
        tracing::info!("longrun stopped");
        Ok(())
    }
}
