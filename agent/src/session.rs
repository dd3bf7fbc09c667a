//! The agent's one connection to the coordinator.
//!
//! The agent dials out (so it works behind NAT and firewalls), opens the
//! `Session.Attach` stream, says Hello, and then, for as long as the stream
//! lives, sends heartbeats and answers commands. When the stream breaks it
//! waits a jittered, growing delay and dials again, forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backout_config::logging::TRACES_ONLY;
use backout_proto::command::Refused;
use backout_proto::{codes, now_ms, wire};
use backout_tls::tls::{TlsMaterial, connect_coordinator, error_chain};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;
use wire::agent_message::Kind as AgentKind;
use wire::coordinator_message::Kind as CoordKind;

use crate::admit::{Admission, untrusted_body};
use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::ledger::{Ledger, Prior};
use crate::metrics::AgentMetrics;
use crate::plugin::{PluginHost, StepEvent, StepOutcome, StepRequest};

/// A session that lasted this long resets the backoff to its shortest delay:
/// it was accepted and served, so the coordinator was up. (At 30 s an agent
/// that had retried for a while, then served 12 s before a coordinator
/// restart, waited 23 s to come back; a refused or failing dial still backs
/// off.)
const STABLE_SESSION: Duration = Duration::from_secs(5);

/// Everything a session needs; shared by every command task.
///
/// One process normally runs one session. With `--sessions-from` (load
/// testing) it runs one per identity: each has its own TLS material and
/// admission, and all share the compiled plugins and one agent database
/// (each session's step keys under its own prefix).
pub struct Agent {
    pub id: String,
    pub config: AgentConfig,
    pub tls: TlsMaterial,
    pub admission: Admission,
    pub host: Arc<PluginHost>,
    pub ledger: Ledger,
    /// Shared by every session of the process.
    pub metrics: Arc<AgentMetrics>,
}

fn msg(kind: AgentKind) -> wire::AgentMessage {
    wire::AgentMessage { kind: Some(kind) }
}

/// Keeps a session open until the process is stopped.
pub async fn run(agent: Arc<Agent>) {
    let reconnect = &agent.config.reconnect;
    let mut backoff = Backoff::new(reconnect.initial, reconnect.max);
    let addresses = agent.config.coordinator.list().to_vec();
    let mut next = 0;
    // Where a standby said the leader is: dialled next, once.
    let mut follow: Option<String> = None;
    loop {
        let started = Instant::now();
        let addr = follow
            .take()
            .unwrap_or_else(|| addresses[next % addresses.len()].clone());
        match session(&agent, &addr).await {
            Ok(()) => tracing::warn!(coordinator = %addr, "the coordinator closed the session"),
            Err(e) => match e.downcast_ref::<NotLeader>() {
                Some(standby) if standby.leader != addr => {
                    tracing::info!(coordinator = %addr, leader = %standby.leader, "a standby: dialling the leader it names");
                    follow = Some(standby.leader.clone());
                    continue;
                }
                _ => tracing::warn!(coordinator = %addr, error = %e, "session failed"),
            },
        }
        if started.elapsed() >= STABLE_SESSION {
            backoff.reset();
        }
        // With several coordinators, the next one is dialled at once (the
        // leader may have moved); the backoff applies once all were tried.
        next = (next + 1) % addresses.len();
        if next != 0 {
            continue;
        }
        let delay = backoff.next_delay(rand::random::<f64>());
        tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
        tokio::time::sleep(delay).await;
    }
}

/// One session: dial, Hello, Welcome, then serve until the stream ends.
async fn session(agent: &Arc<Agent>, addr: &str) -> anyhow::Result<()> {
    let server_name = agent
        .config
        .server_name
        .clone()
        .unwrap_or_else(|| backout_tls::tls::host_part(addr));
    // Read the certificate files again at every (re)connection, so a renewed
    // certificate is used without a restart; if they do not load (a renewal
    // half written), dial with what was loaded at start.
    let tls = agent.tls.reloaded().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "TLS files do not load; using the ones loaded at start");
        agent.tls.clone()
    });
    let channel = connect_coordinator(addr, &server_name, &tls, Duration::from_secs(5)).await?;
    let mut client = wire::session_client::SessionClient::new(channel);

    // A reload of the plugins after this Hello ends the session: the next
    // one's Hello tells the coordinator what the plugins are now.
    let mut plugins_changed = agent.host.subscribe();
    plugins_changed.mark_unchanged();
    let (tx, rx) = mpsc::channel::<wire::AgentMessage>(256);
    tx.send(msg(AgentKind::Hello(hello(agent)))).await?;
    let mut inbound = client
        .attach(ReceiverStream::new(rx))
        .await
        .map_err(refused)?
        .into_inner();

    let welcome = match inbound.message().await {
        Ok(Some(wire::CoordinatorMessage {
            kind: Some(CoordKind::Welcome(w)),
        })) => w,
        Ok(_) => anyhow::bail!("the coordinator did not answer Hello with Welcome"),
        Err(s) => anyhow::bail!("the coordinator refused the session: {}", s.message()),
    };
    tracing::info!(
        coordinator = %addr,
        version = %welcome.coordinator_version,
        "connected"
    );
    // A plugin file that differs from the coordinator's pin is said now,
    // not when its first step is refused.
    let pins = |name: &str| welcome.plugin_pins.get(name).map(String::as_str);
    for m in backout_proto::pin_mismatches(pins, &hello(agent).plugins) {
        tracing::warn!(
            plugin = %m.plugin,
            pinned = %m.pinned,
            file = %m.actual,
            "this plugin's file does not match the coordinator's pin: its steps will be refused"
        );
    }

    let interval = Duration::from_millis(welcome.heartbeat_interval_ms.clamp(100, 300_000).into());
    let heartbeat = tokio::spawn(heartbeats(tx.clone(), interval));
    agent.metrics.session_opened();

    // The coordinator answers every heartbeat: a coordinator silent for
    // three intervals is gone (paused, or cut off with the connection still
    // looking open), and the session is dropped to dial again (the next
    // coordinator of the list, if there is one).
    let silence = interval * 3;
    let result = loop {
        let message = tokio::select! {
            next = tokio::time::timeout(silence, inbound.message()) => match next {
                Ok(message) => message,
                Err(_) => {
                    break Err(anyhow::anyhow!(
                        "no word from the coordinator for {} (three heartbeats): dropping the session",
                        humantime::format_duration(silence)
                    ));
                }
            },
            Ok(()) = plugins_changed.changed() => {
                tracing::info!("the plugins changed; reconnecting to tell the coordinator");
                break Ok(());
            }
        };
        match message {
            Ok(Some(message)) => match message.kind {
                Some(CoordKind::Command(signed)) => {
                    tokio::spawn(handle_command(agent.clone(), signed, tx.clone()));
                }
                Some(CoordKind::HeartbeatAck(_)) => {}
                Some(CoordKind::Crl(list)) => {
                    match agent.admission.approvals.offer_crl(&list.pem) {
                        Ok(Some(dates)) => tracing::info!(
                            revoked = dates.revoked,
                            this_update = dates.this_update,
                            next_update = dates.next_update.unwrap_or_default(),
                            "revocation list received"
                        ),
                        Ok(None) => tracing::warn!(
                            "the coordinator sent a revocation list older than the one held: kept the newer"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "the coordinator sent a revocation list that does not read: kept the one held")
                        }
                    }
                }
                Some(CoordKind::Rejected(r)) => {
                    tracing::warn!(reason = %r.reason, "the coordinator rejected a message");
                }
                Some(CoordKind::Welcome(_)) | None => {
                    tracing::warn!("unexpected message from the coordinator, ignored");
                }
            },
            Ok(None) => break Ok(()),
            Err(status) => break Err(anyhow::anyhow!("stream error: {}", status.message())),
        };
    };
    heartbeat.abort();
    agent.metrics.session_closed();
    result
}

/// A standby's answer: "not the leader; the leader is ADDR".
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct NotLeader {
    leader: String,
    message: String,
}

/// The error of a refused attach: a standby's names the leader (metadata
/// `backout-leader`).
fn refused(status: tonic::Status) -> anyhow::Error {
    let leader = status
        .metadata()
        .get("backout-leader")
        .and_then(|v| v.to_str().ok())
        .filter(|l| !l.is_empty());
    match leader {
        Some(leader) => NotLeader {
            leader: leader.to_string(),
            message: status.message().to_string(),
        }
        .into(),
        None => anyhow::anyhow!("the coordinator refused the session: {}", status.message()),
    }
}

fn hello(agent: &Agent) -> wire::Hello {
    wire::Hello {
        agent_id: agent.id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        plugins: agent
            .host
            .inventory()
            .into_iter()
            .map(|p| wire::PluginDescriptor {
                name: p.name,
                version: p.version,
                sha256: p.sha256,
                actions: p.actions,
                pinned_sha256: String::new(),
                load_error: String::new(),
                schema_json: p.schema_json,
                needs: p
                    .needs
                    .into_iter()
                    .map(|n| wire::NeedDescriptor {
                        kind: n.kind,
                        value: n.value,
                        why: n.why,
                        is_optional: n.optional,
                        granted: n.granted.unwrap_or(false),
                    })
                    .collect(),
            })
            .chain(
                agent
                    .host
                    .disabled()
                    .into_iter()
                    .map(|(name, sha256, error)| wire::PluginDescriptor {
                        name,
                        sha256,
                        load_error: error,
                        ..wire::PluginDescriptor::default()
                    }),
            )
            .collect(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
    }
}

async fn heartbeats(tx: mpsc::Sender<wire::AgentMessage>, interval: Duration) {
    let mut seq = 0u64;
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        seq += 1;
        let beat = msg(AgentKind::Heartbeat(wire::Heartbeat {
            seq,
            sent_at_ms: now_ms(),
        }));
        if tx.send(beat).await.is_err() {
            return;
        }
    }
}

/// Admits one command and, if it passes every check, runs it, streaming its
/// events and then its result.
///
/// All of it happens in one span, `agent.step`: it continues the
/// coordinator's trace (the coordinator's step span's context travels
/// inside the signed command), and once the command is admitted it carries
/// the step's run, phase, step and host, so every line logged for the step
/// (the plugin's host calls' too, on the thread the plugin runs on) has
/// them as fields (`--log-format json`). Before admission only the command
/// id the command claims is known.
async fn handle_command(
    agent: Arc<Agent>,
    signed: wire::SignedCommand,
    tx: mpsc::Sender<wire::AgentMessage>,
) {
    let claimed = untrusted_body(&signed);
    let span = tracing::info_span!(
        "agent.step",
        agent = %agent.id,
        command = %claimed.command_id,
        run = tracing::field::Empty,
        phase = tracing::field::Empty,
        step = tracing::field::Empty,
        host = tracing::field::Empty,
    );
    backout_config::otel::set_parent(&span, &claimed.traceparent);
    handle_command_in_span(agent, signed, tx, span.clone())
        .instrument(span)
        .await;
}

async fn handle_command_in_span(
    agent: Arc<Agent>,
    signed: wire::SignedCommand,
    tx: mpsc::Sender<wire::AgentMessage>,
    span: tracing::Span,
) {
    let started_at_ms = now_ms();
    // The checks run here, unless the plugin's file changed and must be
    // read and maybe compiled again: blocking work, done off the async
    // workers.
    let admit = tracing::info_span!(target: TRACES_ONLY, "admit");
    let checked = match admit.in_scope(|| {
        agent
            .admission
            .admit_without_blocking(&signed, &agent.host, started_at_ms)
    }) {
        Ok(Some(admitted)) => Ok(admitted),
        Err(refused) => Err(refused),
        Ok(None) => {
            let agent = agent.clone();
            let signed = signed.clone();
            tokio::task::spawn_blocking(move || {
                let _entered = admit.enter();
                agent.admission.admit(&signed, &agent.host, started_at_ms)
            })
            .await
            .unwrap_or_else(|e| {
                Err(Refused::new(
                    backout_proto::command::Check::Malformed,
                    format!("admission failed: {e}"),
                ))
            })
        }
    };
    // Then the epoch, the nonce and the step, in one transaction.
    let admitted = match checked {
        Ok((command, plugin)) => {
            let key = agent.ledger.key(&command.step_id, command.dry_run);
            match agent
                .admission
                .record(&agent.ledger, &command, &key, started_at_ms)
                .await
            {
                Ok(prior) => Ok((command, plugin, key, prior)),
                Err(refused) => Err(refused),
            }
        }
        Err(refused) => Err(refused),
    };
    let (command, plugin, key, prior) = match admitted {
        Ok(admitted) => admitted,
        Err(refused) => {
            agent.metrics.refused(refused.check.as_str());
            let wire::CommandBody {
                command_id,
                step_id,
                ..
            } = untrusted_body(&signed);
            tracing::warn!(
                check = %refused.check,
                detail = %refused.detail,
                command = %command_id,
                "command refused"
            );
            let _ = tx
                .send(result_message(
                    command_id,
                    step_id,
                    started_at_ms,
                    refusal(refused),
                ))
                .await;
            return;
        }
    };
    agent.metrics.admitted();
    record_step_fields(&span, &command);
    run_admitted(agent, command, plugin, (key, prior), tx, started_at_ms).await;
}

/// Gives the step's span its run, phase, step and host, from the admitted
/// command. The phase and step are read from the step id
/// (`<run>/<phase>/<step>/<host>#<attempt>`); a command outside a run's
/// phases (an assessment) has none.
fn record_step_fields(span: &tracing::Span, command: &backout_proto::command::Command) {
    let in_run = command
        .step_id
        .strip_prefix(command.run_id.as_str())
        .and_then(|rest| rest.strip_prefix('/'));
    let mut parts = in_run.unwrap_or_default().split('/');
    let (phase, step) = match (parts.next(), parts.next(), parts.next()) {
        (Some(phase), Some(step), Some(_host)) => (phase, step),
        _ => ("", ""),
    };
    span.record("run", command.run_id.as_str());
    span.record("phase", phase);
    span.record("step", step);
    span.record("host", command.target_agent.as_str());
}

/// Runs an admitted command at most once (its step id is in the ledger
/// under `key`; `prior` is what the ledger knew of it) and sends its events
/// and result.
async fn run_admitted(
    agent: Arc<Agent>,
    command: backout_proto::command::Command,
    plugin: Arc<crate::plugin::LoadedPlugin>,
    (key, prior): (String, Prior),
    tx: mpsc::Sender<wire::AgentMessage>,
    started_at_ms: i64,
) {
    // A step id runs at most once on this agent.
    let recorded = match prior {
        Prior::New => None,
        Prior::Done(outcome) => {
            tracing::info!(step_id = %command.step_id, "step already ran here; answering with its recorded outcome");
            Some(outcome)
        }
        Prior::Running => Some(StepOutcome::Failed {
            code: codes::IN_PROGRESS.into(),
            message: format!(
                "step `{}` is running on this agent; its result comes with its first command",
                command.step_id
            ),
        }),
        Prior::Interrupted => Some(StepOutcome::Failed {
            code: codes::INTERRUPTED.into(),
            message: format!(
                "step `{}` was running when this agent stopped; its outcome is unknown and it is not run again",
                command.step_id
            ),
        }),
    };
    if let Some(outcome) = recorded {
        let _ = tx
            .send(result_message(
                command.command_id,
                command.step_id,
                started_at_ms,
                outcome_to_wire(outcome),
            ))
            .await;
        return;
    }
    tracing::info!(
        command = %command.command_id,
        step_id = %command.step_id,
        plugin = %command.plugin,
        action = %command.action,
        dry_run = command.dry_run,
        "running step"
    );

    // Forward live events as they come; the channel closes when the step ends.
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<StepEvent>();
    let forward = {
        let tx = tx.clone();
        let command_id = command.command_id.clone();
        let step_id = command.step_id.clone();
        tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                let event = event_message(&command_id, &step_id, event);
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        })
    };
    let request = StepRequest {
        step_id: command.step_id.clone(),
        action: command.action.clone(),
        params_json: command.params_json.clone(),
        dry_run: command.dry_run,
        deadline: within_give_up(command.deadline, command.give_up_at_ms, now_ms()),
    };
    let began = Instant::now();
    let outcome = agent.host.run(plugin, request, events_tx).await;
    let failure = match &outcome {
        StepOutcome::Failed { code, .. } => Some(code.as_str()),
        StepOutcome::Succeeded { .. } => None,
    };
    agent
        .metrics
        .step_ran(&command.plugin, &command.action, failure, began.elapsed());
    // Every event goes out before the result.
    let _ = forward.await;
    if let StepOutcome::Failed { code, message } = &outcome {
        tracing::warn!(step_id = %command.step_id, %code, %message, "step failed");
    }
    if let Err(e) = agent.ledger.finish(&key, &outcome, now_ms()).await {
        tracing::error!(step_id = %command.step_id, error = %e, "cannot record the step's outcome in the ledger");
    }
    let result = outcome_to_wire(outcome);
    let _ = tx
        .send(result_message(
            command.command_id,
            command.step_id,
            started_at_ms,
            result,
        ))
        .await;
}

/// The step's time, cut to end by the coordinator's give-up time: a step
/// still running then is stopped, as the coordinator has recorded it as
/// timed out. `None` (the plugin's own limit) when neither is said.
fn within_give_up(
    asked: Option<Duration>,
    give_up_at_ms: Option<i64>,
    now_ms: i64,
) -> Option<Duration> {
    let Some(give_up) = give_up_at_ms else {
        return asked;
    };
    let left = Duration::from_millis(u64::try_from(give_up.saturating_sub(now_ms)).unwrap_or(0));
    Some(asked.map_or(left, |asked| asked.min(left)))
}

fn outcome_to_wire(outcome: StepOutcome) -> wire::step_result::Result {
    match outcome {
        StepOutcome::Succeeded {
            summary,
            data_json,
            outputs,
        } => wire::step_result::Result::Succeeded(wire::StepSucceeded {
            summary,
            data_json,
            outputs: outputs
                .into_iter()
                .map(|(name, value_json)| wire::StepOutput { name, value_json })
                .collect(),
        }),
        StepOutcome::Failed { code, message } => {
            wire::step_result::Result::Failed(wire::StepFailed { code, message })
        }
    }
}

fn refusal(refused: Refused) -> wire::step_result::Result {
    wire::step_result::Result::Refused(wire::Refusal {
        check: refused.check.as_str().to_string(),
        detail: refused.detail,
    })
}

fn result_message(
    command_id: String,
    step_id: String,
    started_at_ms: i64,
    result: wire::step_result::Result,
) -> wire::AgentMessage {
    msg(AgentKind::Result(wire::StepResult {
        command_id,
        step_id,
        started_at_ms,
        finished_at_ms: now_ms(),
        result: Some(result),
    }))
}

fn event_message(command_id: &str, step_id: &str, event: StepEvent) -> wire::AgentMessage {
    use wire::step_event::Kind;
    let kind = match event {
        StepEvent::Log { level, message } => Kind::Log(wire::StepLog {
            level: level.to_string(),
            message,
        }),
        StepEvent::Progress {
            done,
            total,
            message,
        } => Kind::Progress(wire::StepProgress {
            done,
            total,
            message,
        }),
        StepEvent::Emit { name, value_json } => Kind::Output(wire::StepOutput { name, value_json }),
    };
    msg(AgentKind::Event(wire::StepEvent {
        command_id: command_id.to_string(),
        step_id: step_id.to_string(),
        at_ms: now_ms(),
        kind: Some(kind),
    }))
}

/// Formats an error chain (re-exported for main).
pub fn describe(error: &anyhow::Error) -> String {
    error_chain(error.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_cut_to_end_by_the_give_up_time() {
        let s = Duration::from_secs;
        // No give-up time: what the command asked, or the plugin's limit.
        assert_eq!(within_give_up(Some(s(30)), None, 1_000), Some(s(30)));
        assert_eq!(within_give_up(None, None, 1_000), None);
        // 5 s left before the give-up: never more than that.
        assert_eq!(within_give_up(Some(s(30)), Some(6_000), 1_000), Some(s(5)));
        assert_eq!(within_give_up(Some(s(2)), Some(6_000), 1_000), Some(s(2)));
        assert_eq!(within_give_up(None, Some(6_000), 1_000), Some(s(5)));
        assert_eq!(within_give_up(None, Some(500), 1_000), Some(Duration::ZERO));
    }
}
