//! The coordinator server: `Session` for agents and `Control` for operators,
//! both on one mutual-TLS listener.
//!
//! Like mini-redis, the entry point is [`run`]`(listener, shutdown)`: tests and
//! `backout serve` bind the listener themselves (port 0 in tests) and decide
//! when to stop.

pub mod access;
pub mod control;
pub mod dispatch;
pub mod registry;
mod run_wire;
pub mod session;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use backout_proto::command::CommandSigner;
use backout_proto::wire;
use tokio::net::TcpListener;

use crate::config::CoordinatorConfig;
use crate::journal::Journal;
use crate::runs::Runs;
use crate::signals::board::Board;
use backout_plan::model::Plan;
use dispatch::Dispatcher;
use registry::Registry;

/// Everything the services share.
pub struct State {
    pub config: CoordinatorConfig,
    pub registry: Arc<Registry>,
    pub dispatcher: Dispatcher,
    /// The plan's signals and triggers, when the configuration names a plan.
    pub board: Option<Arc<Board>>,
    pub journal: Arc<Journal>,
    pub runs: Runs,
}

impl State {
    /// Loads the key material the configuration points at.
    pub fn new(config: CoordinatorConfig) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(&config.command_key).with_context(|| {
            format!(
                "{}: cannot read the command key",
                config.command_key.display()
            )
        })?;
        let signer = CommandSigner::from_pkcs8_pem(&pem)
            .with_context(|| format!("{}", config.command_key.display()))?;
        let registry = Arc::new(Registry::default());
        let pins = config
            .plugins
            .iter()
            .map(|(name, pin)| (name.clone(), pin.sha256.to_ascii_lowercase()))
            .collect();
        std::fs::create_dir_all(&config.state_dir).with_context(|| {
            format!(
                "{}: cannot create the state directory",
                config.state_dir.display()
            )
        })?;
        // One coordinator per journal: a second is refused here, before it
        // resumes or drives anything.
        let journal = Arc::new(Journal::open_exclusive(&config.journal_path())?);
        let dispatcher = Dispatcher::new(
            signer,
            config.command_ttl,
            registry.clone(),
            pins,
            journal.clone(),
        );
        let board = match &config.plan {
            Some(path) => {
                let plan = Plan::load(path)?;
                tracing::info!(plan = %plan.meta.name, triggers = plan.triggers.len(), "plan loaded");
                Some(Arc::new(Board::new(plan, config.evaluate_every)))
            }
            None => None,
        };
        Ok(State {
            config,
            registry,
            dispatcher,
            board,
            journal,
            runs: Runs::default(),
        })
    }
}

/// Serves until `shutdown` completes.
pub async fn run(
    config: CoordinatorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // The TLS files are read again whenever one changes (checked before each
    // new handshake): renewed certificates, CA bundle and CRL take effect
    // without a restart, and open sessions keep going.
    let (tls, material) =
        backout_tls::reload::ReloadingServerConfig::load(config.tls_files(), config.crl.clone())
            .with_context(|| format!("{}: TLS", config.tls.cert.display()))?;
    if let Some(crl) = &config.crl {
        tracing::info!(crl = %crl.display(), "client certificates are checked against the CRL");
    }
    let state = Arc::new(State::new(config)?);
    if let Some(board) = &state.board {
        crate::signals::sampler::spawn(state.clone(), board.clone());
    }
    crate::journal::flush_every(state.journal.clone(), crate::journal::FLUSH_EVERY);
    let resumed = Runs::resume(&state)?;
    if resumed > 0 {
        tracing::warn!(runs = resumed, "unfinished runs resumed from the journal");
    }
    let incoming =
        backout_tls::tls::incoming_reloading(listener, Arc::new(tls), material.domain.clone());
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(wire::session_server::SessionServer::new(
            session::SessionService {
                state: state.clone(),
            },
        ))
        .add_service(wire::control_server::ControlServer::new(
            control::ControlService { state },
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("the gRPC server failed")?;
    Ok(())
}
