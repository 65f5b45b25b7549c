//! `sightline serve`: opens storage, binds the HTTP and gRPC listeners,
//! runs maintenance, and on SIGTERM/SIGINT stops accepting, flushes the
//! head to blocks and returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use sightline_ingest::IngestState;
use sightline_ingest::logstore::LogIngest;
use sightline_query::ApiState;
use sightline_query::loki::LokiState;
use sightline_storage::Db;
use sightline_storage::logs::LogDb;
use tokio::sync::watch;

use crate::config::{Config, Overrides};
use crate::rules::Rules;

#[derive(Clone)]
struct NodeState {
    ingest: IngestState,
    logs: LogIngest,
    ready: Arc<AtomicBool>,
    rules: Arc<Rules>,
}

/// `POST /-/reload`: re-reads the configuration and rule files; on error
/// the previous rules keep running and the answer is 500 with the reason.
async fn reload(State(st): State<NodeState>) -> impl IntoResponse {
    let rules = st.rules.clone();
    match tokio::task::spawn_blocking(move || rules.reload()).await {
        Ok(Ok(msg)) => (StatusCode::OK, msg),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("reload task failed: {e}\n")),
    }
}

/// Reloads on every SIGHUP.
async fn reload_on_sighup(rules: Arc<Rules>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; use POST /-/reload");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading rules");
        let r = rules.clone();
        let _ = tokio::task::spawn_blocking(move || r.reload()).await;
    }
}

async fn ready(State(st): State<NodeState>) -> impl IntoResponse {
    if st.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "Sightline is Ready.\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Sightline is not ready: starting or shutting down.\n",
        )
    }
}

async fn healthy() -> impl IntoResponse {
    (StatusCode::OK, "Sightline is Healthy.\n")
}

async fn metrics(State(st): State<NodeState>) -> impl IntoResponse {
    st.ingest.db.refresh_gauges();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::render(st.ingest.db.stats(), &st.ingest.stats, &st.rules, &st.logs),
    )
}

/// Probes the peer sites every `every` until shutdown and records what it
/// finds as `sightline_peer_up{site="<this site>", peer="<site>"}` (1
/// ready, 0 not) in this site's storage, for rules (a site no other site
/// reaches pages) and dashboards.
async fn probe_peers(
    site: String,
    peers: Arc<sightline_query::fanout::PeerSet>,
    db: Db,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = sightline_storage::now_ms();
        let found = peers.probe().await;
        let labels: Vec<Vec<sightline_storage::Label>> = found
            .iter()
            .map(|(name, _)| {
                sightline_storage::Labels::from_pairs([
                    ("__name__", "sightline_peer_up"),
                    ("peer", name.as_str()),
                    ("site", site.as_str()),
                ])
                .to_vec()
            })
            .collect();
        let mut batch = sightline_storage::WriteBatch::new();
        for (l, (_, ready)) in labels.iter().zip(&found) {
            batch.add_series(
                l,
                &[sightline_storage::Sample::new(now, if *ready { 1.0 } else { 0.0 })],
            );
        }
        if let Err(e) = db.append(&batch).await {
            tracing::warn!(error = %e, "cannot record the peer sites' health");
        }
    }
}

/// Cuts the logs head into blocks when due (at once when a push finds it
/// full), applies retention and merges small blocks, every 10 seconds
/// until shutdown.
async fn log_maintenance(logs: Arc<LogDb>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
            _ = logs.cut_requested() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let l = logs.clone();
        match tokio::task::spawn_blocking(move || l.maintain()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "log maintenance failed; will retry"),
            Err(e) => tracing::error!(error = %e, "log maintenance task failed"),
        }
    }
}

/// Merges small log blocks every 30 seconds until shutdown (on its own
/// task, so head cuts never wait for a merge).
async fn log_compaction(logs: Arc<LogDb>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let l = logs.clone();
        match tokio::task::spawn_blocking(move || l.compact()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "log compaction failed; will retry"),
            Err(e) => tracing::error!(error = %e, "log compaction task failed"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT (logging which), the signals that stop
/// the server and the agent.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
}

/// Runs the node until a termination signal, then shuts down cleanly.
pub async fn serve(cfg: Config, config_path: Option<PathBuf>, flags: Overrides) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let db = Db::open(cfg.storage.clone())
        .await
        .with_context(|| format!("cannot open storage in {}", cfg.data_dir.display()))?;
    let ingest = IngestState::new(db.clone(), cfg.ingest.clone());
    let logs_opts = cfg.logs.db.clone();
    let logs = Arc::new(
        tokio::task::spawn_blocking(move || LogDb::open(logs_opts))
            .await
            .context("log storage open task failed")?
            .with_context(|| format!("cannot open log storage in {}", cfg.logs.db.dir.display()))?,
    );
    let log_ingest = LogIngest::new(logs.clone(), cfg.logs.ingest.clone());
    // Queries and rules span the peer sites; the internal APIs (what the
    // peers read) serve this site's storage only.
    let peers = sightline_query::fanout::PeerSet::new(cfg.site.peers.clone(), cfg.site.peer_timeout);
    let loki_state = LokiState {
        reader: Arc::new(sightline_query::fanout::logs::FanoutLogReader::new(
            logs.clone(),
            peers.clone(),
            tokio::runtime::Handle::current(),
        )),
        limits: Arc::new(cfg.logs.query.clone()),
    };
    let fleet = Arc::new(sightline_query::fanout::FanoutReader::new(
        Arc::new(db.clone()),
        peers.clone(),
    ));
    let query_state = ApiState::with_engine(fleet.clone(), cfg.query.clone()).with_metadata(db.metadata());
    let rules = Arc::new(Rules::start(
        &cfg,
        query_state.engine.clone(),
        fleet,
        db.clone(),
        Some((loki_state.reader.clone(), Arc::new(cfg.logs.query.clone()))),
        config_path,
        flags,
    )?);
    let node = NodeState {
        ingest: ingest.clone(),
        logs: log_ingest.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        rules: rules.clone(),
    };
    let app = Router::new()
        .route("/-/ready", get(ready))
        .route("/-/healthy", get(healthy))
        .route("/-/reload", post(reload).put(reload))
        .route("/metrics", get(metrics))
        .with_state(node.clone())
        .merge(sightline_ingest::router(ingest.clone()))
        .merge(sightline_ingest::logs_router(log_ingest.clone()))
        .merge(sightline_query::loki::router(loki_state))
        .merge(sightline_query::router(query_state))
        .merge(sightline_query::fanout::internal_router(Arc::new(db.clone())))
        .merge(sightline_query::fanout::logs::internal_router(logs.clone()))
        .merge(sightline_alerting::api::router(rules.manager.clone()))
        .merge(sightline_alerting::api::inventory_router(rules.inventory.clone()))
        .merge(sightline_dashboards::router());
    let app = match &rules.alertmanager {
        Some(am) => app.merge(sightline_alerting::am::api::router(am.clone())),
        None => app,
    };

    let http = tokio::net::TcpListener::bind(cfg.http_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--http-listen)", cfg.http_listen))?;
    let grpc = tokio::net::TcpListener::bind(cfg.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--grpc-listen)", cfg.grpc_listen))?;
    let http_addr = http.local_addr()?;
    let grpc_addr = grpc.local_addr()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let maintenance = tokio::spawn(db.clone().run_maintenance(stop_rx.clone()));
    let log_maintenance = tokio::spawn(log_maintenance(logs.clone(), stop_rx.clone()));
    let log_compaction = tokio::spawn(log_compaction(logs.clone(), stop_rx.clone()));
    let syslog = match cfg.logs.syslog.clone() {
        Some(opts) => Some(
            sightline_ingest::syslog::start(log_ingest.clone(), opts.clone(), stop_rx.clone())
                .await
                .with_context(|| {
                    format!(
                        "cannot listen for syslog on {:?} / {:?} (logs.syslog)",
                        opts.tcp, opts.udp
                    )
                })?,
        ),
        None => None,
    };
    let notifier = tokio::spawn(rules.notifier.clone().run(stop_rx.clone()));
    let dispatcher = rules
        .alertmanager
        .clone()
        .map(|am| tokio::spawn(am.run(stop_rx.clone())));
    let sighup = tokio::spawn(reload_on_sighup(rules.clone()));
    let inventory = tokio::spawn(rules.clone().run_inventory(stop_rx.clone()));
    let prober = (!cfg.site.peers.is_empty()).then(|| {
        tokio::spawn(probe_peers(
            cfg.site.name.clone(),
            peers.clone(),
            db.clone(),
            cfg.site.probe_interval,
            stop_rx.clone(),
        ))
    });
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let mut grpc_stop = stop_rx.clone();
    let grpc_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(sightline_ingest::otlp::grpc_service(ingest.clone()))
            .add_service(sightline_ingest::otlp::logs::grpc_service(log_ingest.clone()))
            .add_service(sightline_ingest::ship::server::service(
                ingest.clone(),
                log_ingest.clone(),
                stop_rx.clone(),
            ))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(grpc), async move {
                let _ = grpc_stop.wait_for(|s| *s).await;
            }),
    );
    node.ready.store(true, Ordering::Release);
    let peers: Vec<&str> = cfg.site.peers.iter().map(|p| p.name.as_str()).collect();
    tracing::info!(
        http = %http_addr,
        grpc = %grpc_addr,
        data_dir = %cfg.data_dir.display(),
        site = %cfg.site.name,
        peers = ?peers,
        "sightline ready"
    );

    shutdown_signal().await;
    node.ready.store(false, Ordering::Release);
    let _ = stop_tx.send(true);
    match http_task.await {
        Ok(Err(e)) => tracing::error!(error = %e, "http server failed"),
        Err(e) => tracing::error!(error = %e, "http server task failed"),
        Ok(Ok(())) => {}
    }
    match grpc_task.await {
        Ok(Err(e)) => tracing::error!(error = %e, "grpc server failed"),
        Err(e) => tracing::error!(error = %e, "grpc server task failed"),
        Ok(Ok(())) => {}
    }
    sighup.abort();
    let _ = inventory.await;
    if let Some(p) = prober {
        // Before the storage flush: its last append must be in the head.
        let _ = p.await;
    }
    rules.manager.stop().await;
    let _ = notifier.await;
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
    let _ = maintenance.await;
    let _ = log_maintenance.await;
    let _ = log_compaction.await;
    if let Some(s) = syslog {
        let _ = s.await;
    }
    db.close().await.context("flushing the head to blocks at shutdown")?;
    let l = logs.clone();
    tokio::task::spawn_blocking(move || l.close())
        .await
        .context("log flush task failed")?
        .context("flushing the logs head to blocks at shutdown")?;
    tracing::info!("shutdown complete: all data flushed to blocks");
    Ok(())
}
