//! The `Session` service: one bidirectional stream per connected agent.
//!
//! The agent speaks first (Hello), the coordinator answers Welcome, and from
//! then on the stream carries heartbeats, commands, live step events and step
//! results. A message the coordinator cannot use is answered with `Rejected`
//! and the session goes on; a stream that breaks ends only that session.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use backout_proto::{now_ms, wire};
use backout_tls::{Identity, PeerInfo};

use super::access;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use wire::agent_message::Kind as AgentKind;
use wire::coordinator_message::Kind as CoordKind;

use crate::config::CoordinatorConfig;
use crate::fleet::dispatch::Dispatcher;
use crate::fleet::registry::{AgentView, Registry};
use crate::fleet::{NeedInfo, PluginInfo, StepEvent, StepOutcome};
use crate::journal::Journal;
use crate::runs::Runs;

/// How long an agent has to say Hello after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The handles the agents' sessions use, from the composition root.
#[derive(Clone)]
pub struct SessionService {
    pub config: Arc<CoordinatorConfig>,
    pub registry: Arc<Registry>,
    pub dispatcher: Arc<Dispatcher>,
    pub journal: Arc<Journal>,
    pub runs: Arc<Runs>,
    /// Set: each session's stream ends once this turns true (a leader that
    /// released its lease; see `server::serve`).
    pub stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

type OutStream = Pin<Box<dyn Stream<Item = Result<wire::CoordinatorMessage, Status>> + Send>>;

fn coord(kind: CoordKind) -> wire::CoordinatorMessage {
    wire::CoordinatorMessage { kind: Some(kind) }
}

fn rejected(reason: impl Into<String>) -> wire::CoordinatorMessage {
    coord(CoordKind::Rejected(wire::Rejected {
        reason: reason.into(),
    }))
}

#[tonic::async_trait]
impl wire::session_server::Session for SessionService {
    type AttachStream = OutStream;

    async fn attach(
        &self,
        request: Request<Streaming<wire::AgentMessage>>,
    ) -> Result<Response<OutStream>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let config = &self.config;
        let identity = access::authorize(
            "/backout.v1.Session/Attach",
            peer.as_ref(),
            |id| config.is_known_agent(id),
            |name| config.operators.contains_key(name),
        )?;
        let (Identity::Agent(agent_id), Some(peer)) = (identity, peer) else {
            // The table gives Attach to agents only.
            return Err(Status::permission_denied("only agents open sessions"));
        };

        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(wire::AgentMessage {
                kind: Some(AgentKind::Hello(hello)),
            }))) => hello,
            Ok(Ok(_)) => return Err(Status::invalid_argument("the first message must be Hello")),
            Ok(Err(status)) => return Err(status),
            Err(_) => return Err(Status::deadline_exceeded("no Hello within 10 s")),
        };
        if hello.agent_id != agent_id {
            tracing::warn!(agent = %agent_id, claimed = %hello.agent_id, "hello disagrees with certificate");
            return Err(Status::permission_denied(format!(
                "Hello names agent `{}` but the certificate says `{agent_id}`",
                hello.agent_id
            )));
        }

        let (tx, rx) = mpsc::channel(256);
        let welcome = coord(CoordKind::Welcome(wire::Welcome {
            coordinator_version: env!("CARGO_PKG_VERSION").to_string(),
            heartbeat_interval_ms: u32::try_from(self.config.heartbeat_interval.as_millis())
                .unwrap_or(5_000),
            plugin_pins: self
                .config
                .plugins
                .iter()
                .map(|(name, pin)| (name.clone(), pin.sha256.to_ascii_lowercase()))
                .collect(),
        }));
        let pins = |name: &str| self.config.plugins.get(name).map(|p| p.sha256.as_str());
        for m in backout_proto::pin_mismatches(pins, &hello.plugins) {
            tracing::warn!(
                agent = %agent_id,
                plugin = %m.plugin,
                pinned = %m.pinned,
                file = %m.actual,
                "the agent's plugin file does not match the pin: its steps will be refused"
            );
        }
        // The channel is new and empty, so this cannot wait.
        let _ = tx.send(welcome).await;
        // Then the fleet's revocation list, for the agent's own checks of
        // signed approvals (again whenever it changes: `fleet::crl`).
        if let Some(crl) = self
            .config
            .crl
            .as_deref()
            .and_then(crate::fleet::crl::message)
        {
            let _ = tx.send(crl).await;
        }

        let now = now_ms();
        let view = AgentView {
            id: agent_id.clone(),
            version: hello.version.clone(),
            hostname: hello.hostname.clone(),
            plugins: hello
                .plugins
                .iter()
                .map(|p| PluginInfo {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    sha256: p.sha256.clone(),
                    actions: p.actions.clone(),
                    load_error: p.load_error.clone(),
                    schema_json: p.schema_json.clone(),
                    needs: p
                        .needs
                        .iter()
                        .map(|n| NeedInfo {
                            kind: n.kind.clone(),
                            value: n.value.clone(),
                            why: n.why.clone(),
                            optional: n.is_optional,
                            granted: n.granted,
                        })
                        .collect(),
                })
                .collect(),
            connected: true,
            connected_since_ms: now,
            last_seen_ms: now,
            peer_addr: Some(peer.addr),
        };
        let (session, replaced) = self.registry.connect(view, tx.clone());
        tracing::info!(agent = %agent_id, peer = %peer.addr, version = %hello.version, "agent connected");
        if let Some(old) = replaced {
            // The agent dialled again before we noticed its old connection
            // die: whatever was sent on that one will not be answered there.
            tracing::warn!(agent = %agent_id, "a new session replaces one still open");
            self.dispatcher.session_ended(&agent_id, old);
        }

        let service = self.clone();
        // An agent heartbeats every `heartbeat_interval`: one silent for
        // three of them is unreachable (paused, or cut off with the
        // connection still looking open). Its session ends here, so its
        // steps are answered `unreachable` and asked again when it is back.
        let silence = self.config.heartbeat_interval * 3;
        tokio::spawn(async move {
            loop {
                let Ok(next) = tokio::time::timeout(silence, inbound.message()).await else {
                    tracing::warn!(
                        agent = %agent_id,
                        silent_for = %humantime::format_duration(silence),
                        "agent unreachable: no heartbeat for three intervals; ending its session"
                    );
                    break;
                };
                match next {
                    Ok(Some(message)) => {
                        service.registry.touch(&agent_id, session, now_ms());
                        if let Some(reply) = handle(&service, &agent_id, message)
                            && tx.send(reply).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        // A malformed frame or a broken connection: this
                        // session ends, the coordinator carries on.
                        tracing::warn!(agent = %agent_id, error = %status.message(), "session stream error");
                        break;
                    }
                }
            }
            service.registry.disconnect(&agent_id, session);
            service.dispatcher.session_ended(&agent_id, session);
            tracing::info!(agent = %agent_id, "agent disconnected");
        });

        let out = ReceiverStream::new(rx).map(Ok::<_, Status>);
        match self.stopping.clone() {
            // The stream ends when the coordinator hands over.
            Some(mut stopping) => {
                let handed_over = async move {
                    let _ = stopping.wait_for(|stopping| *stopping).await;
                };
                Ok(Response::new(Box::pin(futures::StreamExt::take_until(
                    out,
                    handed_over,
                ))))
            }
            None => Ok(Response::new(Box::pin(out))),
        }
    }
}

/// Handles one message from an agent; returns the reply to send, if any.
fn handle(
    service: &SessionService,
    agent_id: &str,
    message: wire::AgentMessage,
) -> Option<wire::CoordinatorMessage> {
    match message.kind {
        None => Some(rejected("empty message")),
        Some(AgentKind::Hello(_)) => Some(rejected("Hello may only be sent once per session")),
        Some(AgentKind::Heartbeat(hb)) => Some(coord(CoordKind::HeartbeatAck(wire::Heartbeat {
            seq: hb.seq,
            sent_at_ms: now_ms(),
        }))),
        Some(AgentKind::Event(event)) => {
            log_event(agent_id, &event);
            let Some(step_event) = step_event_from_wire(&event) else {
                return Some(rejected("step event carries nothing"));
            };
            match service
                .dispatcher
                .event(agent_id, &event.command_id, &step_event)
            {
                Ok(Some(live)) => {
                    // Journaled with the next write (a turn of the run, at
                    // the latest a few milliseconds on); watchers hear of it then.
                    let (runs, at_ms) = (service.runs.clone(), event.at_ms);
                    let (run_id, step_id) = (live.run_id.clone(), live.step_id);
                    service.journal.append_soon(
                        now_ms(),
                        &live.run_id,
                        live.record,
                        Box::new(move |entry| {
                            runs.step_event(&run_id, &step_id, entry.seq, at_ms, step_event);
                        }),
                    );
                    None
                }
                Ok(None) => None,
                Err(reason) => {
                    tracing::warn!(agent = %agent_id, %reason, "step event rejected");
                    Some(rejected(reason))
                }
            }
        }
        Some(AgentKind::Result(result)) => {
            let command_id = result.command_id.clone();
            // How long it ran, by the agent's clock (both times or nothing).
            let ran_ms = (result.started_at_ms > 0
                && result.finished_at_ms >= result.started_at_ms)
                .then(|| result.finished_at_ms - result.started_at_ms);
            let outcome = match outcome_from_wire(result) {
                Ok(outcome) => outcome,
                Err(reason) => return Some(rejected(reason)),
            };
            match service
                .dispatcher
                .complete(agent_id, &command_id, outcome, ran_ms)
            {
                Ok(()) => None,
                Err(reason) => {
                    tracing::warn!(agent = %agent_id, %reason, "result rejected");
                    Some(rejected(reason))
                }
            }
        }
    }
}

fn log_event(agent_id: &str, event: &wire::StepEvent) {
    use wire::step_event::Kind;
    match &event.kind {
        Some(Kind::Log(log)) => {
            tracing::info!(agent = %agent_id, step = %event.step_id, level = %log.level, "{}", log.message);
        }
        Some(Kind::Progress(p)) => {
            tracing::debug!(agent = %agent_id, step = %event.step_id, done = p.done, total = p.total, "{}", p.message);
        }
        Some(Kind::Output(o)) => {
            tracing::debug!(agent = %agent_id, step = %event.step_id, output = %o.name, "step output");
        }
        None => {}
    }
}

/// Converts a live step event into the domain's (the transport edge).
fn step_event_from_wire(event: &wire::StepEvent) -> Option<StepEvent> {
    use wire::step_event::Kind;
    Some(match event.kind.as_ref()? {
        Kind::Log(log) => StepEvent::Log {
            level: log.level.clone(),
            message: log.message.clone(),
        },
        Kind::Progress(p) => StepEvent::Progress {
            done: p.done,
            total: p.total,
            message: p.message.clone(),
        },
        Kind::Output(o) => StepEvent::Output {
            name: o.name.clone(),
            value_json: o.value_json.clone(),
        },
    })
}

/// Converts a wire result into the domain outcome (the transport edge).
fn outcome_from_wire(result: wire::StepResult) -> Result<StepOutcome, String> {
    use wire::step_result::Result as R;
    match result.result {
        Some(R::Refused(r)) => Ok(StepOutcome::Refused {
            check: r.check,
            detail: r.detail,
        }),
        Some(R::Succeeded(s)) => Ok(StepOutcome::Succeeded {
            summary: s.summary,
            data_json: s.data_json,
            outputs: s
                .outputs
                .into_iter()
                .map(|o| (o.name, o.value_json))
                .collect(),
        }),
        Some(R::Failed(f)) => Ok(StepOutcome::Failed {
            code: f.code,
            message: f.message,
        }),
        None => Err(format!(
            "result for `{}` carries no outcome",
            result.command_id
        )),
    }
}
