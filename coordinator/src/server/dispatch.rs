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
use tokio::sync::oneshot;

use serde_json::json;

use super::registry::Registry;
use crate::fleet::{StepEvent, StepOutcome};
use crate::journal::Journal;

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
    /// Journal the plugin's live events (a rollback run's steps, not
    /// health probes that repeat every few seconds).
    pub journal_events: bool,
}

struct Pending {
    agent_id: String,
    journal_events: bool,
    /// The session the command went out on: when it ends, so does the wait.
    session: u64,
    run_id: String,
    done: oneshot::Sender<StepOutcome>,
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
    rx: oneshot::Receiver<StepOutcome>,
}

impl PendingStep {
    fn ready(outcome: StepOutcome) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(outcome);
        PendingStep {
            command_id: String::new(),
            rx,
        }
    }

    /// Waits for the agent's answer, at most `timeout`.
    pub async fn wait(self, timeout: Duration) -> StepOutcome {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => StepOutcome::Unreachable {
                detail: "the coordinator dropped the step".into(),
            },
            Err(_) => StepOutcome::TimedOut,
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
        let Some((tx, session)) = self.registry.sender(&spec.agent_id) else {
            return PendingStep::ready(StepOutcome::Unreachable {
                detail: format!("agent `{}` is not connected", spec.agent_id),
            });
        };
        // The pinned hash wins; without a pin we expect what the agent reported.
        let sha256 = match self.pins.get(&spec.plugin) {
            Some(pin) => pin.clone(),
            None => match self.registry.plugin(&spec.agent_id, &spec.plugin) {
                Some(p) => p.sha256,
                None => {
                    return PendingStep::ready(StepOutcome::Failed {
                        code: "no-plugin".into(),
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
            command_id: command_id.clone(),
            run_id: spec.run_id,
            step_id: spec.step_id,
            target_agent: spec.agent_id.clone(),
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
        };
        // Journaled before it is sent: a command that is not in the journal never left.
        let record = json!({
            "command_id": body.command_id,
            "step_id": body.step_id,
            "agent": body.target_agent,
            "plugin": body.plugin,
            "plugin_sha256": body.plugin_sha256,
            "action": body.action,
            "params": serde_json::from_str::<serde_json::Value>(&body.params_json).unwrap_or_default(),
            "dry_run": body.dry_run,
            "expires_at_ms": body.expires_at_ms,
        });
        if let Err(e) = self
            .journal
            .append(now, &body.run_id, "command.sent", &record)
        {
            tracing::error!(error = %e, "cannot journal a command; not sending it");
            return PendingStep::ready(StepOutcome::Failed {
                code: "journal".into(),
                message: e.to_string(),
            });
        }
        let signed = self.signer.sign(&body);
        let (done, rx) = oneshot::channel();
        self.lock().insert(
            command_id.clone(),
            Pending {
                agent_id: spec.agent_id.clone(),
                journal_events: spec.journal_events,
                session,
                run_id: body.run_id.clone(),
                done,
            },
        );
        let message = wire::CoordinatorMessage {
            kind: Some(wire::coordinator_message::Kind::Command(signed)),
        };
        if tx.send(message).await.is_err() {
            self.lock().remove(&command_id);
            return PendingStep::ready(StepOutcome::Unreachable {
                detail: format!("agent `{}` disconnected", spec.agent_id),
            });
        }
        tracing::debug!(command = %command_id, agent = %spec.agent_id, "command sent");
        PendingStep { command_id, rx }
    }

    /// Delivers an agent's answer. Returns an error (for a `Rejected` reply)
    /// when the command is unknown or was addressed to another agent.
    pub fn complete(
        &self,
        from_agent: &str,
        command_id: &str,
        outcome: StepOutcome,
    ) -> Result<(), String> {
        let mut pending = self.lock();
        match pending.get(command_id) {
            None => Err(format!("no command `{command_id}` is waiting for a result")),
            Some(p) if p.agent_id != from_agent => Err(format!(
                "command `{command_id}` was not sent to agent `{from_agent}`"
            )),
            Some(p) => {
                // Journaled before anyone is told.
                let record = json!({
                    "command_id": command_id,
                    "agent": from_agent,
                    "state": outcome.state(),
                    "detail": outcome.detail(),
                });
                if let Err(e) = self
                    .journal
                    .append(now_ms(), &p.run_id, "step.finished", &record)
                {
                    tracing::error!(error = %e, "cannot journal a result; the step stays pending");
                    return Err(format!(
                        "the coordinator cannot record this result now: {e}"
                    ));
                }
                if let Some(p) = pending.remove(command_id) {
                    let _ = p.done.send(outcome);
                }
                Ok(())
            }
        }
    }

    /// Journals a live event of a pending command (a plugin's log line,
    /// progress or output). Returns the run it belongs to and the journal
    /// entry's `seq` (`None` for a command whose events are not journaled),
    /// or an error for a command that is not waiting or was addressed to
    /// another agent.
    pub fn event(
        &self,
        from_agent: &str,
        command_id: &str,
        event: &StepEvent,
    ) -> Result<Option<(String, i64)>, String> {
        let pending = self.lock();
        let run_id = match pending.get(command_id) {
            None => return Err(format!("no command `{command_id}` is running")),
            Some(p) if p.agent_id != from_agent => {
                return Err(format!(
                    "command `{command_id}` was not sent to agent `{from_agent}`"
                ));
            }
            Some(p) if !p.journal_events => return Ok(None),
            Some(p) => p.run_id.clone(),
        };
        drop(pending);
        let body = match event {
            StepEvent::Log { level, message } => {
                json!({ "command_id": command_id, "log": level, "message": message })
            }
            StepEvent::Progress {
                done,
                total,
                message,
            } => {
                json!({ "command_id": command_id, "done": done, "total": total, "message": message })
            }
            StepEvent::Output { name, value_json } => {
                json!({ "command_id": command_id, "output": name, "value": value_json })
            }
        };
        match self.journal.append(now_ms(), &run_id, "step.event", &body) {
            Ok(written) => Ok(Some((run_id, written.seq))),
            Err(e) => {
                tracing::error!(error = %e, "cannot journal a step event");
                Err(format!("the coordinator cannot record this event now: {e}"))
            }
        }
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
                let _ = p.done.send(StepOutcome::Unreachable {
                    detail: format!("agent `{agent_id}` disconnected before answering"),
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
    use crate::server::registry::AgentView;

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
            journal_events: true,
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
        assert_eq!(sent.iter().filter(|e| e.kind == "command.sent").count(), 2);
    }
}
