//! The composition root: the one place the coordinator's parts are built and
//! wired (like linkerd2-proxy's `Config::build`). Each part gets only the
//! handles it uses: the dispatcher the registry and the journal; the runs
//! the journal, the dispatcher, the registry (whom a message can go through)
//! and the board (the plan); the sampler the board, the dispatcher and the
//! configuration. The gRPC services (`server/`) hold handles from here and
//! nothing below them names the server.

use std::sync::Arc;

use anyhow::Context;
use backout_plan::model::Plan;
use backout_proto::command::CommandSigner;

use crate::config::CoordinatorConfig;
use crate::fleet::dispatch::Dispatcher;
use crate::fleet::registry::Registry;
use crate::journal::{CheckpointSigner, Journal, PostgresStore, Record};
use crate::metrics::Metrics;
use crate::runs::Runs;
use crate::signals::board::Board;

/// The coordinator's parts, built and wired, not yet started.
pub struct Coordinator {
    pub config: Arc<CoordinatorConfig>,
    pub journal: Arc<Journal>,
    pub registry: Arc<Registry>,
    pub dispatcher: Arc<Dispatcher>,
    /// The plan's signals and triggers, when the configuration names a plan.
    pub board: Option<Arc<Board>>,
    pub runs: Arc<Runs>,
    /// The PostgreSQL journal's lease (`backout status`), if it is one.
    pub lease: Option<Arc<PostgresStore>>,
    /// The Prometheus metrics, fed by the journal's writes.
    pub metrics: Arc<Metrics>,
    /// The TLS listener's log limiter: its totals are the refused handshakes.
    pub refusals: Arc<backout_tls::quiet::LogLimiter>,
}

impl Coordinator {
    /// Loads the key material and the plan the configuration points at and
    /// opens the journal, holding its lock: a second coordinator on the same
    /// journal is refused here, before it resumes or drives anything.
    pub fn build(config: CoordinatorConfig) -> anyhow::Result<Self> {
        Self::build_on(config, None)
    }

    /// As [`Coordinator::build`], on the PostgreSQL journal `postgres` when
    /// given (its lease already taken: see `cli/serve.rs`), else on SQLite.
    pub fn build_on(
        config: CoordinatorConfig,
        postgres: Option<Arc<PostgresStore>>,
    ) -> anyhow::Result<Self> {
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
        let journal = Arc::new(match postgres.clone() {
            Some(store) => Journal::shared(store),
            None => Journal::open_exclusive(&config.journal_path())?,
        });
        if let Some(path) = &config.checkpoint_key {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the checkpoint key", path.display()))?;
            let signer = CheckpointSigner::from_pkcs8_pem(&pem)
                .with_context(|| format!("{}", path.display()))?;
            tracing::info!(key = %signer.public().key_id(), every = config.checkpoint_every, "journal checkpoints signed");
            journal.sign_checkpoints(signer, config.checkpoint_every)?;
        } else {
            tracing::warn!(
                "no checkpoint_key: the journal's chain is not signed, and a rewrite of it with every hash recomputed would go unnoticed"
            );
        }
        let dispatcher = Arc::new(Dispatcher::new(
            signer,
            config.command_ttl,
            registry.clone(),
            pins,
            journal.clone(),
        ));
        let board = match &config.plan {
            Some(path) => {
                let plan = Plan::load(path)?;
                tracing::info!(plan = %plan.meta.name, triggers = plan.triggers.len(), "plan loaded");
                let board = Board::new(plan, config.evaluate_every);
                restore_signals(&board, &journal)?;
                Some(Arc::new(board))
            }
            None => None,
        };
        let runs = Arc::new(
            Runs::new(
                journal.clone(),
                dispatcher.clone(),
                registry.clone(),
                board.clone(),
            )
            .with_smtp(config.smtp.clone()),
        );
        let refusals = Arc::new(backout_tls::quiet::LogLimiter::new(
            backout_tls::quiet::EVERY,
        ));
        let metrics = Arc::new(Metrics::new(
            registry.clone(),
            runs.clone(),
            board.clone(),
            refusals.clone(),
        ));
        // Weak: the metrics hold the runs, which hold the journal.
        let observed = Arc::downgrade(&metrics);
        journal.observe(Box::new(move |entries, took| {
            if let Some(metrics) = observed.upgrade() {
                metrics.journaled(entries, took);
            }
        }));
        Ok(Coordinator {
            config: Arc::new(config),
            journal,
            registry,
            dispatcher,
            board,
            runs,
            lease: postgres,
            metrics,
            refusals,
        })
    }

    /// Starts the background work: the sampler (with a plan), the journal's
    /// flusher, and the unfinished runs resumed from the journal. Returns how
    /// many runs were resumed; a journal entry that does not read is an error.
    pub fn start(&self) -> anyhow::Result<usize> {
        // The episodes first: the board's first evaluation already shows
        // their journaled onsets.
        crate::runs::deadline::start(self.runs.clone())?;
        if let Some(board) = &self.board {
            crate::signals::sampler::spawn(
                board.clone(),
                self.dispatcher.clone(),
                self.journal.clone(),
                self.config.clone(),
            );
        }
        crate::journal::flush_every(self.journal.clone(), crate::journal::FLUSH_EVERY);
        if let Some(crl) = &self.config.crl {
            crate::fleet::crl::spawn_watch(crl.clone(), self.registry.clone());
        }
        let resumed = self.runs.resume()?;
        if resumed > 0 {
            tracing::warn!(runs = resumed, "unfinished runs resumed from the journal");
        }
        Ok(resumed)
    }
}

/// Sets the manual signals and counted events again as the journal recorded
/// them, at their times: a restarted coordinator still knows what its
/// operators said (a confirmed breach stays confirmed). One the plan no
/// longer has is passed over with a warning.
fn restore_signals(board: &Board, journal: &Journal) -> anyhow::Result<()> {
    for entry in journal.entries(Some(""))? {
        let restored = match &entry.record {
            Record::SignalSet {
                signal,
                value,
                by,
                note,
            } => board.set_manual(signal, value, by, note, entry.at_ms),
            Record::SignalEvents {
                signal,
                count,
                by,
                note,
            } => board.record_events(signal, *count, by, note, entry.at_ms),
            _ => continue,
        };
        if let Err(e) = restored {
            tracing::warn!(seq = entry.seq, error = %e, "a journaled signal is not restored");
        }
    }
    Ok(())
}
