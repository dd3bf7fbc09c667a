//! The coordinator's Prometheus metrics: every definition lives here.
//!
//! Two sources feed them, and nothing else in the coordinator names a
//! metric:
//! * the journal's writes ([`Metrics::journaled`], the journal's observer):
//!   every run event, command and outcome is journaled before it is acted
//!   on, so counting what is written counts what happened (commands sent,
//!   steps by outcome and their durations, runs ended, journal appends and
//!   their latency);
//! * the parts' own state, read at each scrape ([`Metrics::render`]): runs by
//!   status, agents connected and their heartbeat age, triggers by state and
//!   class, approvals pending and their age, refused TLS handshakes.
//!
//! Names follow Prometheus' conventions: base units (`_seconds`), counters
//! end in `_total` (added by the encoder), build information in `_info`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backout_tls::quiet::LogLimiter;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry as PromRegistry;

use crate::fleet::registry::Registry;
use crate::journal::{NewEntry, Record};
use crate::runs::Runs;
use crate::signals::board::Board;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    plugin: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    state: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApprovalLabels {
    run: String,
    scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type Seconds = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Step and phase durations: 10 ms to about 45 minutes.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 3.0, 15))
}

/// Journal write latency: 100 µs to about 1.6 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

/// What a run's journal has said so far that later entries need: which
/// plugin and action each dispatched step is, when each phase began and
/// last heard of a step. Forgotten when the run ends.
#[derive(Default)]
struct RunMemory {
    /// (phase, step, host) → (plugin, action)
    steps: HashMap<(String, String, String), StepLabels>,
    /// phase → (first dispatch, last step finished), ms
    phases: BTreeMap<String, (i64, i64)>,
}

pub struct Metrics {
    prom: PromRegistry,
    registry: Arc<Registry>,
    runs: Arc<Runs>,
    board: Option<Arc<Board>>,
    refusals: Arc<LogLimiter>,
    memory: Mutex<HashMap<String, RunMemory>>,

    journal_writes: Counter,
    journal_entries: Counter,
    journal_write_seconds: Histogram,
    commands_sent: Family<StepLabels, Counter>,
    steps: Family<OutcomeLabels, Counter>,
    step_seconds: Histograms<StepLabels>,
    phase_seconds: Histograms<PhaseLabel>,
    runs_ended: Family<StatusLabel, Counter>,
    run_seconds: Histograms<StatusLabel>,

    runs_now: Family<StatusLabel, Gauge>,
    agents_connected: Gauge,
    heartbeat_age: Family<AgentLabel, Seconds>,
    triggers: Family<TriggerLabels, Gauge>,
    approvals_pending: Gauge,
    approval_wait: Family<ApprovalLabels, Seconds>,
    handshake_refusals: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// The coordinator's metrics over the parts they read at each scrape;
    /// `refusals` is the TLS listener's log limiter (its totals count every
    /// refused handshake).
    pub fn new(
        registry: Arc<Registry>,
        runs: Arc<Runs>,
        board: Option<Arc<Board>>,
        refusals: Arc<LogLimiter>,
    ) -> Metrics {
        let mut m = Metrics {
            prom: PromRegistry::default(),
            registry,
            runs,
            board,
            refusals,
            memory: Mutex::new(HashMap::new()),
            journal_writes: Counter::default(),
            journal_entries: Counter::default(),
            journal_write_seconds: latency_histogram(),
            commands_sent: Family::default(),
            steps: Family::default(),
            step_seconds: Family::new_with_constructor(duration_histogram),
            phase_seconds: Family::new_with_constructor(duration_histogram),
            runs_ended: Family::default(),
            run_seconds: Family::new_with_constructor(duration_histogram),
            runs_now: Family::default(),
            agents_connected: Gauge::default(),
            heartbeat_age: Family::default(),
            triggers: Family::default(),
            approvals_pending: Gauge::default(),
            approval_wait: Family::default(),
            handshake_refusals: Family::default(),
        };
        let p = &mut m.prom;
        p.register(
            "backout_build",
            "The coordinator's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        p.register(
            "backout_journal_writes",
            "Durable journal writes (one transaction each)",
            m.journal_writes.clone(),
        );
        p.register(
            "backout_journal_entries",
            "Journal entries appended",
            m.journal_entries.clone(),
        );
        p.register(
            "backout_journal_write_duration_seconds",
            "How long each durable journal write took",
            m.journal_write_seconds.clone(),
        );
        p.register(
            "backout_commands_sent",
            "Signed commands journaled and sent to agents, by plugin and action",
            m.commands_sent.clone(),
        );
        p.register(
            "backout_steps",
            "Run steps finished, by plugin, action and outcome (succeeded, failed, timed-out, unreachable, unknown)",
            m.steps.clone(),
        );
        p.register(
            "backout_step_duration_seconds",
            "How long each run step ran on its agent, by plugin and action",
            m.step_seconds.clone(),
        );
        p.register(
            "backout_phase_duration_seconds",
            "From a phase's first dispatch to its last step's answer, observed when its run ends",
            m.phase_seconds.clone(),
        );
        p.register(
            "backout_runs_ended",
            "Runs ended, by final status",
            m.runs_ended.clone(),
        );
        p.register(
            "backout_run_duration_seconds",
            "How long each run took from start to end, by final status",
            m.run_seconds.clone(),
        );
        p.register(
            "backout_runs",
            "Runs this coordinator knows, by current status",
            m.runs_now.clone(),
        );
        p.register(
            "backout_agents_connected",
            "Agents with an open session",
            m.agents_connected.clone(),
        );
        p.register(
            "backout_agent_heartbeat_age_seconds",
            "Time since each connected agent was last heard from",
            m.heartbeat_age.clone(),
        );
        p.register(
            "backout_triggers",
            "The plan's triggers, by state (ok, breaching, fired, unknown) and class",
            m.triggers.clone(),
        );
        p.register(
            "backout_approvals_pending",
            "Approvals runs are waiting for",
            m.approvals_pending.clone(),
        );
        p.register(
            "backout_approval_wait_seconds",
            "How long each pending approval has waited, by run and scope",
            m.approval_wait.clone(),
        );
        p.register(
            "backout_handshake_refusals",
            "TLS handshakes refused or timed out, by reason (their log lines are rate-limited)",
            m.handshake_refusals.clone(),
        );
        m
    }

    /// The journal's observer: counts what one durable write says.
    pub fn journaled(&self, entries: &[NewEntry<'_>], took: Duration) {
        self.journal_writes.inc();
        self.journal_entries.inc_by(entries.len() as u64);
        self.journal_write_seconds.observe(took.as_secs_f64());
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        for entry in entries {
            self.count(&mut memory, entry);
        }
    }

    fn count(&self, memory: &mut HashMap<String, RunMemory>, entry: &NewEntry<'_>) {
        match entry.record {
            Record::CommandSent(c) => {
                self.commands_sent
                    .get_or_create(&StepLabels {
                        plugin: c.plugin.clone(),
                        action: c.action.clone(),
                    })
                    .inc();
            }
            Record::RunDispatched(d) => {
                let run = memory.entry(entry.run_id.to_string()).or_default();
                let (plugin, action) = match d.what.as_deref().and_then(|w| w.split_once('.')) {
                    Some((plugin, action)) => (plugin.to_string(), action.to_string()),
                    None => (String::new(), String::new()),
                };
                run.steps.insert(
                    (d.phase.clone(), d.step.clone(), d.host.clone()),
                    StepLabels { plugin, action },
                );
                run.phases
                    .entry(d.phase.clone())
                    .or_insert((entry.at_ms, entry.at_ms));
            }
            Record::RunFinished(f) => {
                let run = memory.entry(entry.run_id.to_string()).or_default();
                let labels = run
                    .steps
                    .get(&(f.phase.clone(), f.step.clone(), f.host.clone()))
                    .cloned()
                    .unwrap_or(StepLabels {
                        plugin: String::new(),
                        action: String::new(),
                    });
                if let Some((_, last)) = run.phases.get_mut(&f.phase) {
                    *last = (*last).max(entry.at_ms);
                }
                self.steps
                    .get_or_create(&OutcomeLabels {
                        plugin: labels.plugin.clone(),
                        action: labels.action.clone(),
                        outcome: f.outcome.state().as_str().to_string(),
                    })
                    .inc();
                if let Some(ms) = f.ran_ms {
                    self.step_seconds
                        .get_or_create(&labels)
                        .observe(ms.max(0) as f64 / 1000.0);
                }
            }
            Record::RunEnded { status, elapsed_ms } => {
                let status = StatusLabel {
                    status: status.clone(),
                };
                self.runs_ended.get_or_create(&status).inc();
                self.run_seconds
                    .get_or_create(&status)
                    .observe(*elapsed_ms.max(&0) as f64 / 1000.0);
                if let Some(run) = memory.remove(entry.run_id) {
                    for (phase, (first, last)) in run.phases {
                        self.phase_seconds
                            .get_or_create(&PhaseLabel { phase })
                            .observe(last.saturating_sub(first).max(0) as f64 / 1000.0);
                    }
                }
            }
            _ => {}
        }
    }

    /// The text Prometheus scrapes: the parts' state read now, then every
    /// metric encoded.
    pub fn render(&self) -> String {
        self.refresh(now_ms());
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.prom) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        text
    }

    fn refresh(&self, now_ms: i64) {
        let seconds = |ms: i64| ms.max(0) as f64 / 1000.0;

        let agents = self.registry.list();
        self.heartbeat_age.clear();
        let mut connected = 0;
        for agent in agents.iter().filter(|a| a.connected) {
            connected += 1;
            self.heartbeat_age
                .get_or_create(&AgentLabel {
                    agent: agent.id.clone(),
                })
                .set(seconds(now_ms - agent.last_seen_ms));
        }
        self.agents_connected.set(connected);

        let runs = self.runs.list();
        self.runs_now.clear();
        self.approval_wait.clear();
        let mut pending = 0;
        for run in &runs {
            self.runs_now
                .get_or_create(&StatusLabel {
                    status: run.status.word(),
                })
                .inc();
            for (scope, _roles, waiting_ms) in &run.pending {
                pending += 1;
                self.approval_wait
                    .get_or_create(&ApprovalLabels {
                        run: run.meta.id.clone(),
                        scope: scope.clone(),
                    })
                    .set(seconds(*waiting_ms));
            }
        }
        self.approvals_pending.set(pending);

        self.triggers.clear();
        if let Some(board) = &self.board {
            for row in board.matrix(now_ms).rows {
                let class = match row.class {
                    backout_plan::model::Class::Immediate => "immediate",
                    backout_plan::model::Class::Considered => "considered",
                };
                self.triggers
                    .get_or_create(&TriggerLabels {
                        state: row.standing.state.as_str().to_string(),
                        class: class.to_string(),
                    })
                    .inc();
            }
        }

        for (reason, total) in self.refusals.totals() {
            self.handshake_refusals
                .get_or_create(&ReasonLabel { reason })
                .inner()
                .store(total, Ordering::Relaxed);
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
