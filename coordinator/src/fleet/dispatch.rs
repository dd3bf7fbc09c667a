//! Sending signed commands to agents and matching their answers.
//!
//! `send` signs a command, remembers it as pending and writes it to the
//! agent's stream; the session reader calls `complete` when the agent's
//! result arrives. An answer is accepted only from the agent the command was
//! addressed to.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backout_proto::command::{CommandSigner, new_nonce};
use backout_proto::{now_ms, wire};
use tokio::sync::{mpsc, oneshot};

use super::registry::Registry;
use crate::fleet::{StepEvent, StepOutcome};
use crate::journal::{CommandSent, Journal, NewEntry, Record, StepEventRecord};

/// One step to run on one agent.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub run_id: String,
    pub step_id: String,
    pub agent_id: String,
    pub plugin: String,
    pub action: String,
    pub params_json: String,
    pub dry_run: bool,
    pub deadline: Option<Duration>,
    /// When the coordinator stops waiting for this step's answer, in Unix
    /// milliseconds (0: never said). It goes out in the command
    /// (`give_up_at_ms`): an agent refuses the command after it.
    pub give_up_at_ms: i64,
    /// What the journal keeps of this step.
    pub audit: Audit,
    /// The W3C trace context of the step's span, sent inside the signed
    /// command (empty: traces are off, or the step is not traced).
    pub traceparent: String,
    /// The signed approvals that travel with the command, and what they
    /// must name (empty outside runs).
    pub approvals: Approvals,
}

/// What a command of a run carries for an agent's approval policy
/// (`CommandBody.approvals`, `plan_digest`, `started_by`).
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    pub signed: Vec<wire::SignedApproval>,
    pub plan_digest: String,
    pub started_by: String,
}

/// The give-up time `after` from now, in Unix milliseconds, for
/// [`StepSpec::give_up_at_ms`].
pub fn give_up_in(after: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}

/// What the journal keeps of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// A step of a run (a rollback's step, a message): the command before it
    /// is sent, and its plugin's live events; the run journals the outcome.
    Run,
    /// A one-off read an operator asked for (`backout assess`): the command
    /// before it is sent, and its outcome (`step.finished`).
    Command,
    /// A health probe the sampler repeats every few seconds: nothing. The
    /// board journals what the probes change (`trigger.changed`,
    /// `signal.changed`) and a `matrix.summary` now and then, so an idle
    /// coordinator's journal does not grow with time.
    Sampled,
}

struct Pending {
    agent_id: String,
    audit: Audit,
    /// The session the command went out on: when it ends, so does the wait.
    session: u64,
    run_id: String,
    /// The step the command runs: live events are filed under it, whatever
    /// the agent's message says.
    step_id: String,
    done: oneshot::Sender<Answer>,
}

/// An agent's answer: the outcome, and how long the step ran there (by the
/// agent's own clock; `None` when it did not say).
#[derive(Debug, Clone)]
pub struct Answer {
    pub outcome: StepOutcome,
    pub ran_ms: Option<i64>,
}

/// A live event of a run's step, for the journal (`step.event`).
pub struct LiveEvent {
    pub run_id: String,
    pub step_id: String,
    pub record: Record,
}

/// A command ready to be journaled, signed and sent.
struct Prepared {
    body: wire::CommandBody,
    audit: Audit,
}

impl Prepared {
    /// What the journal keeps of the command.
    fn record(&self) -> Record {
        let b = &self.body;
        Record::CommandSent(CommandSent {
            command_id: b.command_id.clone(),
            step_id: b.step_id.clone(),
            agent: b.target_agent.clone(),
            plugin: b.plugin.clone(),
            plugin_sha256: b.plugin_sha256.clone(),
            action: b.action.clone(),
            params: serde_json::from_str(&b.params_json).unwrap_or_default(),
            dry_run: b.dry_run,
            expires_at_ms: b.expires_at_ms,
        })
    }
}

pub struct Dispatcher {
    signer: CommandSigner,
    ttl: Duration,
    registry: Arc<Registry>,
    /// Plugin name -> sha256 pinned in the configuration.
    pins: BTreeMap<String, String>,
    pending: Mutex<HashMap<String, Pending>>,
    journal: Arc<Journal>,
}

/// A step that has been sent; await its outcome with [`PendingStep::wait`].
pub struct PendingStep {
    pub command_id: String,
    rx: oneshot::Receiver<Answer>,
}

impl PendingStep {
    fn ready(outcome: StepOutcome) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Answer {
            outcome,
            ran_ms: None,
        });
        PendingStep {
            command_id: String::new(),
            rx,
        }
    }

    /// Waits for the agent's answer, at most `timeout`.
    pub async fn wait(self, timeout: Duration) -> StepOutcome {
        self.answer(timeout).await.outcome
    }

    /// Waits for the agent's answer with its time, at most `timeout`.
    pub async fn answer(self, timeout: Duration) -> Answer {
        let outcome = match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(answer)) => return answer,
            Ok(Err(_)) => StepOutcome::Unreachable {
                detail: "the coordinator dropped the step".into(),
            },
            Err(_) => StepOutcome::TimedOut,
        };
        Answer {
            outcome,
            ran_ms: None,
        }
    }
}

impl Dispatcher {
    pub fn new(
        signer: CommandSigner,
        ttl: Duration,
        registry: Arc<Registry>,
        pins: BTreeMap<String, String>,
        journal: Arc<Journal>,
    ) -> Self {
        Dispatcher {
            signer,
            ttl,
            registry,
            pins,
            pending: Mutex::new(HashMap::new()),
            journal,
        }
    }

    /// Signs and sends one step. Never fails: an agent that cannot be reached
    /// gives a step that is already `Unreachable`.
    pub async fn send(&self, spec: StepSpec) -> PendingStep {
        let mut sent = self.send_all(vec![spec]).await;
        sent.pop().unwrap_or_else(|| {
            PendingStep::ready(StepOutcome::Unreachable {
                detail: "the command was not sent".into(),
            })
        })
    }

    /// Signs and sends steps, in order, one pending step for each: every
    /// command but a sampled probe is journaled (`command.sent`, one
    /// transaction for all of them) before any is sent, so a command that
    /// changes anything and is not in the journal never left.
    pub async fn send_all(&self, specs: Vec<StepSpec>) -> Vec<PendingStep> {
        let prepared: Vec<Result<Prepared, StepOutcome>> =
            specs.into_iter().map(|spec| self.prepare(spec)).collect();
        let records: Vec<(String, Record)> = prepared
            .iter()
            .flatten()
            .filter(|p| p.audit != Audit::Sampled)
            .map(|p| (p.body.run_id.clone(), p.record()))
            .collect();
        let now = now_ms();
        let new: Vec<NewEntry<'_>> = records
            .iter()
            .map(|(run_id, record)| NewEntry {
                at_ms: now,
                run_id,
                record,
            })
            .collect();
        let journaled = self.journal.append_all(&new);
        let mut out = Vec::with_capacity(prepared.len());
        for p in prepared {
            let step = match (p, &journaled) {
                (Err(outcome), _) => PendingStep::ready(outcome),
                (Ok(_), Err(e)) => {
                    tracing::error!(error = %e, "cannot journal a command; not sending it");
                    PendingStep::ready(StepOutcome::Failed {
                        code: backout_proto::codes::JOURNAL.into(),
                        message: e.to_string(),
                    })
                }
                (Ok(p), Ok(_)) => self.deliver(p),
            };
            out.push(step);
        }
        out
    }

    /// The command for one step, signed later: its body, or why it cannot go.
    fn prepare(&self, spec: StepSpec) -> Result<Prepared, StepOutcome> {
        if self.registry.sender(&spec.agent_id).is_none() {
            return Err(StepOutcome::Unreachable {
                detail: format!("agent `{}` is not connected", spec.agent_id),
            });
        }
        // The pinned hash wins; without a pin we expect what the agent reported.
        let sha256 = match self.pins.get(&spec.plugin) {
            Some(pin) => pin.clone(),
            None => match self.registry.plugin(&spec.agent_id, &spec.plugin) {
                Some(p) => p.sha256,
                None => {
                    return Err(StepOutcome::Failed {
                        code: backout_proto::codes::NO_PLUGIN.into(),
                        message: format!(
                            "agent `{}` does not offer plugin `{}`",
                            spec.agent_id, spec.plugin
                        ),
                    });
                }
            },
        };
        let command_id = format!("{}/{}", spec.step_id, hex::encode(&new_nonce()[..4]));
        let now = now_ms();
        let body = wire::CommandBody {
            command_id,
            run_id: spec.run_id,
            step_id: spec.step_id,
            target_agent: spec.agent_id,
            plugin: spec.plugin,
            plugin_sha256: sha256,
            action: spec.action,
            params_json: spec.params_json,
            dry_run: spec.dry_run,
            issued_at_ms: now,
            expires_at_ms: now + i64::try_from(self.ttl.as_millis()).unwrap_or(60_000),
            nonce: new_nonce().to_vec(),
            deadline_ms: spec
                .deadline
                .map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            epoch: self.journal.epoch(),
            traceparent: spec.traceparent,
            give_up_at_ms: spec.give_up_at_ms,
            approvals: spec.approvals.signed,
            plan_digest: spec.approvals.plan_digest,
            started_by: spec.approvals.started_by,
        };
        Ok(Prepared {
            body,
            audit: spec.audit,
        })
    }

    /// Signs a journaled command, remembers it as pending on the agent's
    /// current session, and writes it to that session's stream.
    fn deliver(&self, p: Prepared) -> PendingStep {
        let Prepared { body, audit } = p;
        let agent = body.target_agent.clone();
        let unreachable = |why: &str| {
            PendingStep::ready(StepOutcome::Unreachable {
                detail: format!("agent `{agent}` {why}"),
            })
        };
        // The session is looked up after the journal write: an agent that
        // dialled again meanwhile gets the command on its new session.
        let Some((tx, session)) = self.registry.sender(&agent) else {
            return unreachable("is not connected");
        };
        let command_id = body.command_id.clone();
        let (done, rx) = oneshot::channel();
        self.lock().insert(
            command_id.clone(),
            Pending {
                agent_id: agent.clone(),
                audit,
                session,
                run_id: body.run_id.clone(),
                step_id: body.step_id.clone(),
                done,
            },
        );
        // A session replaced between the lookup and the insert has already
        // failed its pending commands: this one would wait for nothing.
        if self.registry.sender(&agent).map(|(_, s)| s) != Some(session) {
            self.lock().remove(&command_id);
            return unreachable("dialled again while the command was being sent");
        }
        let message = wire::CoordinatorMessage {
            kind: Some(wire::coordinator_message::Kind::Command(
                self.signer.sign(&body),
            )),
        };
        // Never waits on one agent's full queue (the driver sends a turn's
        // commands one after the other): a full queue is "unreachable now",
        // which the run asks again.
        if let Err(e) = tx.try_send(message) {
            self.lock().remove(&command_id);
            return unreachable(match e {
                mpsc::error::TrySendError::Full(_) => "is not taking commands (its queue is full)",
                mpsc::error::TrySendError::Closed(_) => "disconnected",
            });
        }
        tracing::debug!(command = %command_id, agent = %agent, "command sent");
        PendingStep { command_id, rx }
    }

    /// Delivers an agent's answer. Returns an error (for a `Rejected` reply)
    /// when the command is unknown or was addressed to another agent.
    pub fn complete(
        &self,
        from_agent: &str,
        command_id: &str,
        outcome: StepOutcome,
        ran_ms: Option<i64>,
    ) -> Result<(), String> {
        let mut pending = self.lock();
        match pending.get(command_id) {
            None => Err(format!("no command `{command_id}` is waiting for a result")),
            Some(p) if p.agent_id != from_agent => Err(format!(
                "command `{command_id}` was not sent to agent `{from_agent}`"
            )),
            Some(p) if p.audit != Audit::Command => {
                // The run journals what it makes of the outcome before it
                // tells anyone; the board, what a probe's outcome changes.
                if let Some(p) = pending.remove(command_id) {
                    let _ = p.done.send(Answer { outcome, ran_ms });
                }
                Ok(())
            }
            Some(p) => {
                // Journaled before anyone is told.
                let record = Record::StepFinished {
                    command_id: command_id.to_string(),
                    agent: from_agent.to_string(),
                    state: outcome.state().to_string(),
                    detail: outcome.detail(),
                };
                if let Err(e) = self.journal.append(now_ms(), &p.run_id, &record) {
                    tracing::error!(error = %e, "cannot journal a result; the step stays pending");
                    return Err(format!(
                        "the coordinator cannot record this result now: {e}"
                    ));
                }
                if let Some(p) = pending.remove(command_id) {
                    let _ = p.done.send(Answer { outcome, ran_ms });
                }
                Ok(())
            }
        }
    }

    /// Checks a live event of a pending command (a plugin's log line,
    /// progress or output) and says what the journal keeps of it: the run
    /// and step it belongs to and the entry's body (`None` for a command
    /// whose events are not journaled), or an error for a command that is
    /// not waiting or was addressed to another agent.
    pub fn event(
        &self,
        from_agent: &str,
        command_id: &str,
        event: &StepEvent,
    ) -> Result<Option<LiveEvent>, String> {
        let pending = self.lock();
        let (run_id, step_id) = match pending.get(command_id) {
            None => return Err(format!("no command `{command_id}` is running")),
            Some(p) if p.agent_id != from_agent => {
                return Err(format!(
                    "command `{command_id}` was not sent to agent `{from_agent}`"
                ));
            }
            Some(p) if p.audit != Audit::Run => return Ok(None),
            Some(p) => (p.run_id.clone(), p.step_id.clone()),
        };
        drop(pending);
        let command_id = command_id.to_string();
        let record = match event.clone() {
            StepEvent::Log { level, message } => StepEventRecord::Log {
                command_id,
                log: level,
                message,
            },
            StepEvent::Progress {
                done,
                total,
                message,
            } => StepEventRecord::Progress {
                command_id,
                done,
                total,
                message,
            },
            StepEvent::Output { name, value_json } => StepEventRecord::Output {
                command_id,
                output: name,
                value: value_json,
            },
        };
        Ok(Some(LiveEvent {
            run_id,
            step_id,
            record: Record::StepEvent(record),
        }))
    }

    /// Stops waiting for `command_id` (its waiter gave up).
    pub fn forget(&self, command_id: &str) {
        self.lock().remove(command_id);
    }

    /// Ends every step still waiting on session `session` of `agent_id`.
    pub fn session_ended(&self, agent_id: &str, session: u64) {
        let mut pending = self.lock();
        let ids: Vec<String> = pending
            .iter()
            .filter(|(_, p)| p.agent_id == agent_id && p.session == session)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(p) = pending.remove(&id) {
                let _ = p.done.send(Answer {
                    outcome: StepOutcome::Unreachable {
                        detail: format!("agent `{agent_id}` disconnected before answering"),
                    },
                    ran_ms: None,
                });
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::registry::AgentView;

    fn view(id: &str) -> AgentView {
        AgentView {
            id: id.into(),
            version: "test".into(),
            hostname: String::new(),
            plugins: vec![crate::fleet::PluginInfo {
                name: "testbed".into(),
                version: "0".into(),
                sha256: "00".into(),
                actions: vec![],
                load_error: String::new(),
                schema_json: String::new(),
                needs: Vec::new(),
            }],
            connected: true,
            connected_since_ms: 0,
            last_seen_ms: 0,
            peer_addr: None,
        }
    }

    fn spec(step: &str) -> StepSpec {
        StepSpec {
            run_id: "run-1".into(),
            step_id: step.into(),
            agent_id: "app-1".into(),
            plugin: "testbed".into(),
            action: "echo".into(),
            params_json: "{}".into(),
            dry_run: false,
            deadline: None,
            give_up_at_ms: 0,
            audit: Audit::Run,
            traceparent: String::new(),
            approvals: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_replaced_session_fails_its_commands_and_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(&dir.path().join("j.db")).unwrap());
        let registry = Arc::new(Registry::default());
        let dispatcher = Dispatcher::new(
            CommandSigner::generate(),
            Duration::from_secs(60),
            registry.clone(),
            BTreeMap::new(),
            journal.clone(),
        );
        // The old session takes a command and never answers.
        let (old_tx, mut old_rx) = tokio::sync::mpsc::channel(8);
        let (old, _) = registry.connect(view("app-1"), old_tx);
        let on_old = dispatcher.send(spec("s1")).await;
        assert!(old_rx.recv().await.is_some());
        // The agent dials again; the new session takes another command.
        let (new_tx, mut new_rx) = tokio::sync::mpsc::channel(8);
        let (_, replaced) = registry.connect(view("app-1"), new_tx);
        assert_eq!(replaced, Some(old));
        let on_new = dispatcher.send(spec("s2")).await;
        assert!(new_rx.recv().await.is_some());
        dispatcher.session_ended("app-1", old);

        assert!(matches!(
            on_old.wait(Duration::from_secs(5)).await,
            StepOutcome::Unreachable { .. }
        ));
        assert!(
            matches!(
                on_new.wait(Duration::from_millis(200)).await,
                StepOutcome::TimedOut
            ),
            "the new session's command still waits for its answer"
        );
        // Two commands were journaled before they were sent.
        let sent = journal.entries(Some("run-1")).unwrap();
        assert_eq!(
            sent.iter()
                .filter(|e| matches!(e.record, Record::CommandSent(_)))
                .count(),
            2
        );
    }
}
