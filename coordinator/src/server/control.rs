//! The `Control` service: what operators' CLIs call.
//!
//! Every call first establishes who is calling from the client certificate:
//! only operator identities listed in the configuration get in.

use std::sync::Arc;
use std::time::Duration;

use backout_proto::{now_ms, wire};
use backout_tls::{Identity, PeerInfo};
use tonic::{Request, Response, Status};

use super::access;

use super::run_wire::{WatchStream, summary_to_wire, watch_stream};
use crate::assess;
use crate::config::CoordinatorConfig;
use crate::fleet::dispatch::{Audit, Dispatcher};
use crate::fleet::registry::Registry;
use crate::journal::Journal;
use crate::journal::Record;
use crate::runs::{RunError, Runs, StartRun};
use crate::signals::board::{Board, SignalView};
use backout_plan::expr::Value;
use backout_plan::window::Hold;

/// The handles the operators' calls use, from the composition root.
#[derive(Clone)]
pub struct ControlService {
    pub config: Arc<CoordinatorConfig>,
    pub registry: Arc<Registry>,
    pub dispatcher: Arc<Dispatcher>,
    /// The plan's signals and triggers, when the configuration names a plan.
    pub board: Option<Arc<Board>>,
    pub journal: Arc<Journal>,
    pub runs: Arc<Runs>,
    /// The lease, on a PostgreSQL journal.
    pub lease: Option<Arc<crate::journal::PostgresStore>>,
}

/// An authenticated operator and the roles the configuration gives them.
struct Operator {
    name: String,
    roles: Vec<String>,
}

impl ControlService {
    /// An operator's signed statement, verified as an agent would verify it
    /// (chain to the fleet CA, not revoked per the configured CRL, an
    /// operator's certificate attesting the role, the signature over the
    /// exact bytes) and signed by the operator making this call.
    fn verify_statement(
        &self,
        operator: &Operator,
        signed: &wire::SignedApproval,
    ) -> Result<
        (
            backout_tls::approval::SignedApproval,
            backout_tls::approval::Statement,
        ),
        Status,
    > {
        let approval =
            crate::runs::approvals::from_wire(signed).map_err(Status::invalid_argument)?;
        let mut material = self
            .config
            .tls_files()
            .load()
            .map_err(|e| Status::unavailable(format!("cannot read the fleet CA: {e}")))?;
        if let Some(crl) = &self.config.crl {
            material = material
                .with_crl(crl)
                .map_err(|e| Status::unavailable(format!("cannot read the CRL: {e}")))?;
        }
        let statement = backout_tls::approval::verify_one(&approval, &material)
            .map_err(|e| Status::permission_denied(format!("signed approval refused: {e}")))?;
        if statement.operator != operator.name {
            return Err(Status::permission_denied(format!(
                "signed approval refused: the statement is {}'s, but {} sent it",
                statement.operator, operator.name
            )));
        }
        Ok((approval, statement))
    }

    /// Checks the caller of `Control/<method>` against the access table
    /// ([`super::access`]) and returns the operator with their roles.
    fn operator<T>(&self, request: &Request<T>, method: &str) -> Result<Operator, Status> {
        let config = &self.config;
        let identity = access::authorize(
            &format!("/backout.v1.Control/{method}"),
            request.extensions().get::<PeerInfo>(),
            |id| config.is_known_agent(id),
            |name| config.operators.contains_key(name),
        )?;
        match identity {
            Identity::Operator(name) => Ok(Operator {
                roles: config.operators.get(&name).cloned().unwrap_or_default(),
                name,
            }),
            // The table gives every Control method to operators only.
            other => Err(Status::permission_denied(format!(
                "{other} may not use the Control service"
            ))),
        }
    }
}

#[tonic::async_trait]
impl wire::control_server::Control for ControlService {
    async fn list_agents(
        &self,
        request: Request<wire::ListAgentsRequest>,
    ) -> Result<Response<wire::ListAgentsReply>, Status> {
        self.operator(&request, "ListAgents")?;
        let with_schemas = request.get_ref().with_schemas;
        let agents = self
            .registry
            .list()
            .into_iter()
            .map(|a| wire::AgentStatus {
                agent_id: a.id,
                version: a.version,
                connected: a.connected,
                connected_since_ms: a.connected_since_ms,
                last_seen_ms: a.last_seen_ms,
                plugins: a
                    .plugins
                    .into_iter()
                    .map(|p| wire::PluginDescriptor {
                        pinned_sha256: (self.config.plugins.get(&p.name))
                            .map(|pin| pin.sha256.to_ascii_lowercase())
                            .unwrap_or_default(),
                        name: p.name,
                        version: p.version,
                        sha256: p.sha256,
                        actions: p.actions,
                        load_error: p.load_error,
                        schema_json: if with_schemas {
                            p.schema_json
                        } else {
                            String::new()
                        },
                        needs: p
                            .needs
                            .into_iter()
                            .map(|n| wire::NeedDescriptor {
                                kind: n.kind,
                                value: n.value,
                                why: n.why,
                                is_optional: n.optional,
                                granted: n.granted,
                            })
                            .collect(),
                    })
                    .collect(),
                hostname: a.hostname,
                peer_addr: a.peer_addr.map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(wire::ListAgentsReply {
            agents,
            now_ms: now_ms(),
        }))
    }

    async fn assess(
        &self,
        request: Request<wire::AssessRequest>,
    ) -> Result<Response<wire::AssessReply>, Status> {
        let operator = self.operator(&request, "Assess")?;
        let timeout = match request.get_ref().timeout_ms {
            0 => self.config.assess.timeout,
            ms => Duration::from_millis(ms.into()),
        };
        tracing::info!(operator = %operator.name, "assess requested");
        let started = now_ms();
        let hosts = assess::run(&self.dispatcher, &self.config, timeout, Audit::Command).await;
        Ok(Response::new(wire::AssessReply {
            hosts: hosts
                .into_iter()
                .map(|h| wire::HostAssessment {
                    agent_id: h.agent_id,
                    state: h.outcome.state().to_string(),
                    detail: h.outcome.detail(),
                    data_json: match h.outcome {
                        crate::fleet::StepOutcome::Succeeded { data_json, .. } => data_json,
                        _ => String::new(),
                    },
                    duration_ms: h.duration_ms,
                })
                .collect(),
            started_at_ms: started,
            finished_at_ms: now_ms(),
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<wire::WhoAmIRequest>,
    ) -> Result<Response<wire::WhoAmIReply>, Status> {
        let operator = self.operator(&request, "WhoAmI")?;
        Ok(Response::new(wire::WhoAmIReply {
            identity: format!("operator/{}", operator.name),
            roles: operator.roles,
        }))
    }

    async fn status(
        &self,
        request: Request<wire::StatusRequest>,
    ) -> Result<Response<wire::StatusReply>, Status> {
        self.operator(&request, "Status")?;
        let ttl = self.config.lease_ttl;
        let Some(store) = self.lease.clone() else {
            return Ok(Response::new(wire::StatusReply {
                journal: self.config.journal_path().display().to_string(),
                ..Default::default()
            }));
        };
        let read = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::journal::JournalError>((
                store.lease()?,
                store.standbys(ttl * 3)?,
                crate::journal::JournalStore::name(&*store),
            ))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let (lease, standbys, journal) =
            read.map_err(|e| Status::unavailable(format!("cannot read the lease: {e}")))?;
        Ok(Response::new(wire::StatusReply {
            journal,
            leader: lease.holder,
            epoch: lease.epoch,
            standbys,
            lease_age_ms: lease.age_ms,
            lease_ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        }))
    }

    async fn matrix(
        &self,
        request: Request<wire::MatrixRequest>,
    ) -> Result<Response<wire::MatrixReply>, Status> {
        self.operator(&request, "Matrix")?;
        let now = now_ms();
        let Some(board) = &self.board else {
            return Ok(Response::new(wire::MatrixReply {
                has_plan: false,
                now_ms: now,
                ..Default::default()
            }));
        };
        Ok(Response::new(matrix_reply(board, Some(&self.runs), now)))
    }

    async fn set_signal(
        &self,
        request: Request<wire::SetSignalRequest>,
    ) -> Result<Response<wire::SetSignalReply>, Status> {
        let operator = self.operator(&request, "SetSignal")?;
        let board = self.board()?;
        let req = request.into_inner();
        board
            .validate_manual(&req.name, &req.value)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.journal(Record::SignalSet {
            signal: req.name.clone(),
            value: req.value.clone(),
            by: operator.name.clone(),
            note: req.note.clone(),
        })?;
        let view = board
            .set_manual(&req.name, &req.value, &operator.name, &req.note, now_ms())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        tracing::info!(operator = %operator.name, signal = %req.name, value = %req.value, note = %req.note, "manual signal set");
        Ok(Response::new(wire::SetSignalReply {
            signal: Some(signal_status(&view)),
        }))
    }

    async fn start_run(
        &self,
        request: Request<wire::StartRunRequest>,
    ) -> Result<Response<wire::RunSummary>, Status> {
        let operator = self.operator(&request, "StartRun")?;
        let req = request.into_inner();
        if req.reason.trim().is_empty() {
            return Err(Status::invalid_argument("a run needs a reason (--reason)"));
        }
        let undo = (!req.undo.is_empty()).then_some(req.undo);
        if undo.is_some() && (!req.phases.is_empty() || req.dry_run || req.drill) {
            return Err(Status::invalid_argument(
                "an undo runs the remedy run's own steps back: it takes no phases, dry run or drill",
            ));
        }
        let phases = if req.remedy_for.is_empty() {
            req.phases
        } else {
            if !req.phases.is_empty() || undo.is_some() {
                return Err(Status::invalid_argument(
                    "a remedy runs its own phase: it takes no phases or undo",
                ));
            }
            vec![remedy_phase(self.board()?, &req.remedy_for)?]
        };
        let start = StartRun {
            reason: req.reason.clone(),
            to_version: req.to_version,
            phases,
            dry_run: req.dry_run,
            drill: req.drill,
            undo,
        };
        let summary = self
            .runs
            .start(&operator.name, &start)
            .map_err(run_status)?;
        tracing::warn!(run = %summary.meta.id, operator = %operator.name, reason = %req.reason, "rollback run started");
        Ok(Response::new(summary_to_wire(&summary)))
    }

    async fn approve(
        &self,
        request: Request<wire::ApproveRequest>,
    ) -> Result<Response<wire::RunSummary>, Status> {
        let operator = self.operator(&request, "Approve")?;
        let req = request.into_inner();
        let phase = (!req.phase.is_empty()).then(|| req.phase.clone());
        let role = (!req.role.is_empty()).then_some(req.role.as_str());
        let refusal = req.refuse.then(|| req.why.clone());
        let signed = match &req.signed {
            Some(signed) => Some(self.verify_statement(&operator, signed)?),
            None => None,
        };
        let summary = self
            .runs
            .decide(
                &req.run_id,
                phase,
                &operator.name,
                &operator.roles,
                role,
                refusal,
                signed,
            )
            .map_err(run_status)?;
        Ok(Response::new(summary_to_wire(&summary)))
    }

    async fn approval_nonce(
        &self,
        request: Request<wire::ApprovalNonceRequest>,
    ) -> Result<Response<wire::ApprovalNonceReply>, Status> {
        let operator = self.operator(&request, "ApprovalNonce")?;
        let req = request.into_inner();
        let phase = (!req.phase.is_empty()).then(|| req.phase.clone());
        let role = (!req.role.is_empty()).then_some(req.role.as_str());
        let given = self
            .runs
            .approval_nonce(&req.run_id, phase, &operator.name, &operator.roles, role)
            .map_err(run_status)?;
        Ok(Response::new(wire::ApprovalNonceReply {
            nonce: given.nonce,
            plan_digest: given.plan_digest,
            scope: given.scope,
            role: given.role,
            now_ms: now_ms(),
        }))
    }

    async fn list_runs(
        &self,
        request: Request<wire::ListRunsRequest>,
    ) -> Result<Response<wire::ListRunsReply>, Status> {
        self.operator(&request, "ListRuns")?;
        let run_id = request.into_inner().run_id;
        let runs = if run_id.is_empty() {
            self.runs.list().iter().map(summary_to_wire).collect()
        } else {
            vec![summary_to_wire(
                &self.runs.one(&run_id).map_err(run_status)?,
            )]
        };
        Ok(Response::new(wire::ListRunsReply { runs }))
    }

    async fn report(
        &self,
        request: Request<wire::ReportRequest>,
    ) -> Result<Response<wire::ReportReply>, Status> {
        self.operator(&request, "Report")?;
        let req = request.into_inner();
        let text = super::run_wire::report(self, &req.run_id, &req.format).await?;
        Ok(Response::new(wire::ReportReply { text }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<wire::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        self.operator(&request, "Watch")?;
        let run_id = request.into_inner().run_id;
        let (summary, history, rx) = self.runs.watch(&run_id).map_err(run_status)?;
        Ok(Response::new(watch_stream(
            self.runs.clone(),
            run_id,
            summary,
            history,
            rx,
        )))
    }

    async fn abort_run(
        &self,
        request: Request<wire::AbortRunRequest>,
    ) -> Result<Response<wire::RunSummary>, Status> {
        let operator = self.operator(&request, "AbortRun")?;
        let req = request.into_inner();
        let summary = self
            .runs
            .abort(&req.run_id, &operator.name)
            .map_err(run_status)?;
        tracing::warn!(run = %req.run_id, operator = %operator.name, "run aborted");
        Ok(Response::new(summary_to_wire(&summary)))
    }

    async fn record_decision(
        &self,
        request: Request<wire::RecordDecisionRequest>,
    ) -> Result<Response<wire::RecordDecisionReply>, Status> {
        self.record_decision_impl(request).await
    }

    async fn record_event(
        &self,
        request: Request<wire::RecordEventRequest>,
    ) -> Result<Response<wire::SetSignalReply>, Status> {
        let operator = self.operator(&request, "RecordEvent")?;
        let board = self.board()?;
        let req = request.into_inner();
        board
            .validate_events(&req.name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.journal(Record::SignalEvents {
            signal: req.name.clone(),
            count: req.count.max(1),
            by: operator.name.clone(),
            note: req.note.clone(),
        })?;
        let view = board
            .record_events(
                &req.name,
                req.count.max(1),
                &operator.name,
                &req.note,
                now_ms(),
            )
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        tracing::info!(operator = %operator.name, signal = %req.name, count = req.count.max(1), "events recorded");
        Ok(Response::new(wire::SetSignalReply {
            signal: Some(signal_status(&view)),
        }))
    }
}

impl ControlService {
    async fn record_decision_impl(
        &self,
        request: Request<wire::RecordDecisionRequest>,
    ) -> Result<Response<wire::RecordDecisionReply>, Status> {
        let operator = self.operator(&request, "RecordDecision")?;
        let req = request.into_inner();
        self.journal(Record::Decision {
            trigger: req.trigger.clone(),
            decision: req.decision.clone(),
            detail: req.detail.clone(),
            by: operator.name.clone(),
        })?;
        tracing::warn!(
            operator = %operator.name,
            trigger = %req.trigger,
            decision = %req.decision,
            detail = %req.detail,
            "decision recorded"
        );
        Ok(Response::new(wire::RecordDecisionReply {
            recorded_at_ms: now_ms(),
        }))
    }

    /// Writes to the journal (outside runs) before anything is acted on; a
    /// journal that cannot be written refuses the change.
    fn journal(&self, record: Record) -> Result<(), Status> {
        self.journal
            .append(now_ms(), "", &record)
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "journal write failed");
                Status::unavailable(format!("the journal cannot be written: {e}"))
            })
    }

    fn board(&self) -> Result<&Board, Status> {
        self.board.as_deref().ok_or_else(|| {
            Status::failed_precondition(
                "the coordinator runs without a plan (set `plan` in its configuration)",
            )
        })
    }
}

/// The remedy phase of the plan's trigger named `trigger`.
fn remedy_phase(board: &Board, trigger: &str) -> Result<String, Status> {
    let plan = board.plan();
    let Some(found) = plan.triggers.iter().find(|t| t.name == trigger) else {
        let names: Vec<&str> = plan.triggers.iter().map(|t| t.name.as_str()).collect();
        return Err(Status::invalid_argument(format!(
            "no trigger `{trigger}` in the plan (its triggers: {})",
            names.join(", ")
        )));
    };
    found
        .remedy
        .as_ref()
        .map(|r| r.phase.clone())
        .ok_or_else(|| {
            Status::invalid_argument(format!("trigger `{trigger}` names no `remedy` in the plan"))
        })
}

pub(super) fn run_status(e: RunError) -> Status {
    match e {
        RunError::UnknownRun(_) => Status::not_found(e.to_string()),
        RunError::NoPlan => Status::failed_precondition(e.to_string()),
        RunError::Journal(_) => Status::unavailable(e.to_string()),
        RunError::NoRole { .. }
        | RunError::NotYourRole { .. }
        | RunError::Rejected(_)
        | RunError::Ended { .. }
        | RunError::NothingToApprove(_) => Status::permission_denied(e.to_string()),
        RunError::Plan(_) | RunError::BadVersion(_) => Status::invalid_argument(e.to_string()),
        RunError::Undo { .. } => Status::failed_precondition(e.to_string()),
        RunError::Statement(_) | RunError::NoBackup(_) => Status::permission_denied(e.to_string()),
    }
}

fn value_text(value: Option<Value>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The value of a trigger that reads several signals, each named:
/// `breach_confirmed=true, error_rate=?` (a row has one value only when its
/// condition reads one signal). Empty when it reads one, or none is known.
fn each_value(board: &Board, signals: &[SignalView], trigger: &str) -> String {
    let Some(t) = board.plan().triggers.iter().find(|t| t.name == trigger) else {
        return String::new();
    };
    let names = t.when.signals();
    if names.len() < 2 {
        return String::new();
    }
    let values: Vec<(String, String)> = names
        .into_iter()
        .map(|name| {
            let value = signals
                .iter()
                .find(|s| s.name == name)
                .map(|s| value_text(s.value))
                .unwrap_or_default();
            (name, value)
        })
        .collect();
    if values.iter().all(|(_, v)| v.is_empty()) {
        return String::new();
    }
    values
        .iter()
        .map(|(name, v)| format!("{name}={}", if v.is_empty() { "?" } else { v }))
        .collect::<Vec<_>>()
        .join(", ")
}

fn signal_status(view: &SignalView) -> wire::SignalStatus {
    let figures = view
        .judgement
        .as_ref()
        .map(crate::journal::JudgeFigures::of);
    wire::SignalStatus {
        name: view.name.clone(),
        source: view.source.to_string(),
        value: value_text(view.value),
        number: match view.value {
            Some(Value::Number(n)) => n,
            Some(Value::Bool(b)) => f64::from(u8::from(b)),
            None => 0.0,
        },
        known: view.value.is_some(),
        at_ms: view.at_ms.unwrap_or(0),
        error: view.error.clone().unwrap_or_default(),
        set_by: view.set_by.clone().unwrap_or_default(),
        note: view.note.clone().unwrap_or_default(),
        hosts_heard: view.heard.map_or(0, |h| h.heard),
        hosts_expected: view.heard.map_or(0, |h| h.expected),
        judgement: view
            .judgement
            .as_ref()
            .map(|j| j.explain())
            .unwrap_or_default(),
        judge_canary: figures
            .as_ref()
            .map(|f| f.canary.clone())
            .unwrap_or_default(),
        judge_baseline: figures
            .as_ref()
            .map(|f| f.baseline.clone())
            .unwrap_or_default(),
        judge_caption: figures.as_ref().map(|f| f.caption()).unwrap_or_default(),
    }
}

/// The matrix as sent to operators (the transport edge of `signals::board`):
/// rows and verdict from one evaluation, with each fired trigger's remedy
/// (what `runs` say of it).
fn matrix_reply(board: &Board, runs: Option<&Runs>, now: i64) -> wire::MatrixReply {
    let view = board.matrix(now);
    let mut remedies = runs
        .map(|r| r.remedies(&view.rows, now))
        .unwrap_or_default();
    let rows: Vec<wire::TriggerRow> = view
        .rows
        .iter()
        .zip(view.recent.iter())
        .map(|(row, recent)| wire::TriggerRow {
            trigger: row.trigger.clone(),
            class: row.class.as_str().into(),
            condition: row.condition.clone(),
            value: match row.value {
                Some(_) => value_text(row.value),
                None => each_value(board, &view.signals, &row.trigger),
            },
            threshold: row.condition.clone(),
            held_ms: i64::try_from(row.standing.held.as_millis()).unwrap_or(i64::MAX),
            needed: match row.hold {
                Hold::Immediately => "-".into(),
                Hold::For(d) => humantime::format_duration(d).to_string(),
                Hold::Samples(n) => format!("{n} samples"),
            },
            state: row.standing.state.as_str().into(),
            deciders: row.deciders.clone(),
            since_ms: row.standing.since_ms.unwrap_or(0),
            consecutive: row.standing.consecutive,
            auto_rollback: row.auto_rollback,
            fired_at_ms: row.standing.fired_at_ms.unwrap_or(0),
            unknown_since_ms: row.standing.unknown_since_ms.unwrap_or(0),
            hosts_heard: row.heard.map_or(0, |h| h.heard),
            hosts_expected: row.heard.map_or(0, |h| h.expected),
            decide_by_ms: row.decide_by_ms.unwrap_or(0),
            escalate_to: row.escalate_to.clone(),
            recent: recent.clone(),
            remedy: remedies.remove(&row.trigger).map(remedy_status),
        })
        .collect();
    let verdict = &view.verdict;
    let moved_on = rows.iter().any(|r: &wire::TriggerRow| {
        r.state == "FIRED" && r.remedy.as_ref().is_some_and(|m| m.state == "rollback")
    });
    wire::MatrixReply {
        has_plan: true,
        plan_name: board.plan().meta.name.clone(),
        rows,
        verdict: backout_plan::remedy::headline(verdict, moved_on).into(),
        fired: verdict.fired.iter().map(|f| f.trigger.clone()).collect(),
        deciders: verdict.deciders.clone(),
        unknown: verdict.unknown.clone(),
        signals: view.signals.iter().map(signal_status).collect(),
        now_ms: now,
        fired_triggers: verdict
            .fired
            .iter()
            .map(|f| wire::FiredTrigger {
                trigger: f.trigger.clone(),
                class: f.class.as_str().into(),
                deciders: f.deciders.clone(),
                since_ms: f.since_ms.unwrap_or(0),
                fired_at_ms: f.fired_at_ms.unwrap_or(0),
                decide_by_ms: f.decide_by_ms.unwrap_or(0),
            })
            .collect(),
        evaluated_at_ms: view.evaluated_at_ms.unwrap_or(0),
    }
}

fn remedy_status(view: crate::runs::RemedyView) -> wire::RemedyStatus {
    wire::RemedyStatus {
        phase: view.phase,
        state: view.state.into(),
        what: view.what,
        command: view.command,
        run_id: view.run_id.unwrap_or_default(),
        until_ms: view.until_ms.unwrap_or(0),
        why: view.why.unwrap_or_default(),
        hold: view.hold,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A trigger that reads several signals shows each one's value (a set
    /// manual signal among them), not `?`.
    #[test]
    fn a_row_over_several_signals_names_each_value() {
        let plan = backout_plan::model::Plan::parse(
            std::path::Path::new("t.toml"),
            r#"
[plan]
name = "t"
[roles]
rm = "Release Manager"
[signals.breach]
manual = true
[signals.corruption]
manual = true
[[trigger]]
name = "Either"
class = "immediate"
when = "breach or corruption"
deciders = ["rm"]
"#,
        )
        .unwrap();
        let board = Board::new(plan, std::time::Duration::from_secs(1));
        board.set_manual("breach", "true", "alice", "", 0).unwrap();
        board.evaluate(10);
        let reply = matrix_reply(&board, None, 10);
        assert_eq!(reply.rows[0].value, "breach=true, corruption=?");
    }
}
