//! The coordinator server: `Session` for agents and `Control` for operators,
//! both on one mutual-TLS listener.
//!
//! Like mini-redis, the entry point is [`run`]`(config, listener, shutdown)`:
//! tests and `backout serve` bind the listener themselves (port 0 in tests)
//! and decide when to stop. The parts are built by the composition root
//! (`crate::root`); the services hold handles to the ones they use.
//! `backout serve` builds and starts them before it says it is listening,
//! then calls [`serve`].

pub mod access;
pub mod control;
mod run_wire;
pub mod session;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use backout_proto::wire;
use tokio::net::TcpListener;

use crate::config::CoordinatorConfig;
use crate::root::Coordinator;

/// Builds the coordinator ([`Coordinator::build`]), starts it and serves
/// until `shutdown` completes.
pub async fn run(
    config: CoordinatorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let coordinator = Coordinator::build(config)?;
    coordinator.start()?;
    serve(coordinator, listener, shutdown).await
}

/// Serves a built and started coordinator until `shutdown` completes.
pub async fn serve(
    coordinator: Coordinator,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let incoming = tls_incoming(&coordinator.config, listener, coordinator.refusals.clone())?;
    // tonic's graceful shutdown waits for every connection to end, and an
    // agent's session stream never does: once asked to stop, the server has
    // SHUTDOWN_GRACE to finish what is in flight, then its connections are
    // dropped (agents dial again, to whichever coordinator answers).
    let (stopping, mut stop) = tokio::sync::watch::channel(false);
    // A leader on the PostgreSQL journal has released its lease once
    // `shutdown` completes (`cli/serve.rs`) and writes nothing more: its
    // agents' sessions are ended then, so that they dial again at once and
    // find the new leader. (On SQLite they stay for the grace period: an
    // ended session answers its in-flight steps `unreachable`, which that
    // journal would still record.)
    let sessions_end = coordinator.lease.as_ref().map(|_| stop.clone());
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(wire::session_server::SessionServer::new(
            session::SessionService {
                config: coordinator.config.clone(),
                registry: coordinator.registry.clone(),
                dispatcher: coordinator.dispatcher.clone(),
                journal: coordinator.journal.clone(),
                runs: coordinator.runs.clone(),
                stopping: sessions_end,
            },
        ))
        .add_service(wire::control_server::ControlServer::new(
            control::ControlService {
                config: coordinator.config.clone(),
                registry: coordinator.registry.clone(),
                dispatcher: coordinator.dispatcher.clone(),
                board: coordinator.board.clone(),
                journal: coordinator.journal.clone(),
                runs: coordinator.runs.clone(),
                lease: coordinator.lease.clone(),
            },
        ))
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::select! {
        served = server => served.context("the gRPC server failed")?,
        () = async {
            let _ = stop.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::info!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "connections still open after the grace period (agent sessions): closed"
            );
        }
    }
    // Log lines still queued for the journal are written before exiting.
    if let Err(e) = coordinator.journal.flush() {
        tracing::warn!(error = %e, "queued journal entries could not be written at shutdown");
    }
    Ok(())
}

/// The listener's connections, each after a mutual-TLS handshake. The TLS
/// files are read again whenever one changes (checked before each new
/// handshake): renewed certificates, CA bundle and CRL take effect without a
/// restart, and open sessions keep going.
fn tls_incoming(
    config: &CoordinatorConfig,
    listener: TcpListener,
    refusals: Arc<backout_tls::quiet::LogLimiter>,
) -> anyhow::Result<
    tokio_stream::wrappers::ReceiverStream<Result<backout_tls::tls::TlsConn, std::io::Error>>,
> {
    let (tls, material) =
        backout_tls::reload::ReloadingServerConfig::load(config.tls_files(), config.crl.clone())
            .with_context(|| format!("{}: TLS", config.tls.cert.display()))?;
    if let Some(crl) = &config.crl {
        tracing::info!(crl = %crl.display(), "client certificates are checked against the CRL");
    }
    Ok(backout_tls::tls::incoming_reloading(
        listener,
        Arc::new(tls),
        material.domain.clone(),
        refusals,
    ))
}

/// The gRPC metadata key a standby names the leader's address under.
pub const LEADER_KEY: &str = "backout-leader";

/// What a standby answers to every call, agents' and operators' alike
/// (after the TLS handshake, so only holders of the fleet's certificates
/// learn it): `UNAVAILABLE`, "not the leader; the leader is ADDR", and the
/// address under [`LEADER_KEY`] for agents and the CLI to follow. Serves
/// until `stop` completes.
pub async fn serve_standby(
    config: &CoordinatorConfig,
    listener: TcpListener,
    leader: tokio::sync::watch::Receiver<String>,
    stop: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let refusals = Arc::new(backout_tls::quiet::LogLimiter::new(
        backout_tls::quiet::EVERY,
    ));
    let incoming = tls_incoming(config, listener, refusals)?;
    let answer = move || {
        let leader = leader.borrow().clone();
        async move {
            let mut status = if leader.is_empty() {
                tonic::Status::unavailable("not the leader; no coordinator leads yet")
            } else {
                tonic::Status::unavailable(format!("not the leader; the leader is {leader}"))
            };
            if let Ok(value) = leader.parse() {
                status.metadata_mut().insert(LEADER_KEY, value);
            }
            status.into_http::<axum::body::Body>()
        }
    };
    let routes = tonic::service::Routes::from(axum::Router::new().fallback(answer));
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .context("the standby's gRPC server failed")
}

/// How long a coordinator asked to stop lets in-flight calls finish before
/// it drops its connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
