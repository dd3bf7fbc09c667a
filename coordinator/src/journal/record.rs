//! The journal's records: every entry the coordinator writes or reads is a
//! [`Record`], and nothing else reads or writes an entry's JSON.
//!
//! An entry is stored as its kind (`run.created`, `command.sent`, ...) and a
//! body: the record's other fields as a JSON object, keys in sorted order.
//! Format 2 is the body format 1 wrote, now checked: a record that lacks a
//! field it needs, or names a kind that does not exist, is an error when it
//! is read, never a default. Fields that may be absent are `Option`s, and
//! say why. The JSON of each record is kept in snapshots
//! (`snapshots/backout__journal__record__tests__*.snap`): a change to the
//! format shows in review.

use std::collections::BTreeMap;

use backout_plan::episode::Change;
use backout_plan::run::{Event, Outcome, RunPlan, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The journal format this code writes and reads. Format 1 had the same
/// bodies, written and read without types; see `sqlite.rs` for how a
/// format-1 journal is taken on.
pub const FORMAT: i64 = 2;

/// One journal entry's content. Serialised with its kind inside
/// (`{"kind": "run.started", "by": "dave"}`); stored as the kind and the
/// rest ([`Record::encode`], [`Record::decode`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Record {
    /// A run and the plan it runs (resolved: a restart with an edited plan
    /// file finishes the run it started).
    #[serde(rename = "run.created")]
    RunCreated(RunCreated),
    #[serde(rename = "run.started")]
    RunStarted { by: String },
    #[serde(rename = "run.approved")]
    RunApproved {
        #[serde(with = "scope_name")]
        scope: Scope,
        role: String,
        by: String,
    },
    #[serde(rename = "run.refused")]
    RunRefused {
        #[serde(with = "scope_name")]
        scope: Scope,
        role: String,
        by: String,
        why: String,
    },
    /// An operator's signed approval statement exactly as it came (`backout
    /// approve`), journaled with the `run.approved` or `run.refused` it
    /// makes, in the same transaction. The statements that approve a scope
    /// travel with its commands (`CommandBody.approvals`).
    #[serde(rename = "approval.signed")]
    ApprovalSigned(SignedStatement),
    #[serde(rename = "run.dispatched")]
    RunDispatched(Dispatched),
    #[serde(rename = "run.finished")]
    RunFinished(Finished),
    #[serde(rename = "run.aborted")]
    RunAborted { by: String },
    #[serde(rename = "run.phase_timed_out")]
    PhaseTimedOut { phase: String },
    /// The run's end: its status in words (`RunStatus::word`).
    #[serde(rename = "run.ended")]
    RunEnded { status: String, elapsed_ms: i64 },
    #[serde(rename = "notification.sent")]
    NotificationSent(Notification),
    #[serde(rename = "notification.skipped")]
    NotificationSkipped(Notification),
    /// An escalation rule fired, with the run's figures then.
    #[serde(rename = "escalation.fired")]
    EscalationFired {
        who: String,
        when: String,
        figures: BTreeMap<String, Value>,
    },
    /// A command, journaled before it is sent.
    #[serde(rename = "command.sent")]
    CommandSent(CommandSent),
    /// The outcome of a command outside runs (health probes).
    #[serde(rename = "step.finished")]
    StepFinished {
        command_id: String,
        agent: String,
        /// `StepOutcome::state`.
        state: String,
        detail: String,
    },
    /// A plugin's live event for a run's step.
    #[serde(rename = "step.event")]
    StepEvent(StepEventRecord),
    #[serde(rename = "signal.set")]
    SignalSet {
        signal: String,
        value: String,
        by: String,
        note: String,
    },
    #[serde(rename = "signal.events")]
    SignalEvents {
        signal: String,
        count: u32,
        by: String,
        note: String,
    },
    /// A decision recorded by an operator or `backout guard`.
    #[serde(rename = "decision")]
    Decision {
        trigger: String,
        decision: String,
        detail: String,
        by: String,
    },
    /// A trigger fired: an episode its deciders must decide
    /// (`backout_plan::episode`, as are the three below).
    #[serde(rename = "trigger.fired")]
    TriggerFired {
        trigger: String,
        /// When its breach began; absent when the evaluation did not say.
        #[serde(skip_serializing_if = "Option::is_none")]
        since_ms: Option<i64>,
        fired_at_ms: i64,
        /// Absent when the plan gives its class no `[decide_within]`.
        #[serde(skip_serializing_if = "Option::is_none")]
        decide_by_ms: Option<i64>,
    },
    /// A rollback run started since the trigger fired.
    #[serde(rename = "trigger.decided")]
    TriggerDecided {
        trigger: String,
        fired_at_ms: i64,
        run_id: String,
    },
    /// Its deadline passed with no decision: its deciders are told again
    /// and `escalate_to` paged (journaled before any message goes out).
    #[serde(rename = "trigger.overdue")]
    TriggerOverdue {
        trigger: String,
        fired_at_ms: i64,
        decide_by_ms: i64,
        deciders: Vec<String>,
        escalate_to: Vec<String>,
    },
    /// Data said the trigger no longer holds: its episode ended.
    #[serde(rename = "trigger.cleared")]
    TriggerCleared { trigger: String, fired_at_ms: i64 },
    /// A trigger's state changed (ok, breaching, FIRED, unknown), with what
    /// the matrix saw when it did. Sampled values are not journaled one by
    /// one; these changes and the periodic [`Record::MatrixSummary`] are
    /// what the journal keeps of them.
    #[serde(rename = "trigger.changed")]
    TriggerChanged(TriggerChange),
    /// A signal's data came back or went missing.
    #[serde(rename = "signal.changed")]
    SignalChanged(SignalChange),
    /// Every signal's value and every trigger's state, written every
    /// `journal_summary_every` (the values between two changes).
    #[serde(rename = "matrix.summary")]
    MatrixSummary(MatrixSummary),
    /// A coordinator took the leader lease of a PostgreSQL journal (run id
    /// empty): the new leader's first entry under its epoch, written before
    /// it resumes any run. Reports show the takeovers during a run from it.
    #[serde(rename = "lease.taken")]
    LeaseTaken(LeaseTaken),
    /// The coordinator's signature over the chain's head (`checkpoint.rs`):
    /// at every run's end (in that run) and every `checkpoint_every`
    /// entries (outside runs).
    #[serde(rename = "journal.checkpoint")]
    Checkpoint(super::checkpoint::Checkpoint),
}

/// Who took the leader lease, under which epoch, and how the epoch before
/// it ended. Times are the database's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseTaken {
    pub epoch: u64,
    /// The new leader's advertised address.
    pub holder: String,
    /// How the epoch before ended: `released` (its leader stopped and gave
    /// the lease up), `expired` (not renewed within the TTL: the leader
    /// died, paused or was cut off), or `none` (the journal's first leader).
    pub previous: String,
    /// From the previous epoch's end to this takeover, in milliseconds: from
    /// its release, or from its leader's last renewal (its last sign of
    /// life, so at most this long without a leader); 0 for the first.
    pub vacant_ms: i64,
}

/// [`LeaseTaken::previous`]'s words.
pub mod lease_end {
    pub const RELEASED: &str = "released";
    pub const EXPIRED: &str = "expired";
    pub const NONE: &str = "none";
}

/// A trigger's change of state, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerChange {
    pub trigger: String,
    /// immediate or considered.
    pub class: String,
    pub from: String,
    pub to: String,
    /// The condition as the plan writes it.
    pub condition: String,
    /// The value of the signal the condition compares; absent when unknown
    /// or when the condition reads several signals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// For a probe signal: the hosts heard ("2 of 3 hosts").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard: Option<String>,
    /// When the current breach (or the current lack of data) began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// For a trigger reading the canary judge: what it judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeFigures>,
}

/// The canary judge's call and figures, with both samples thinned to at
/// most [`JudgeFigures::KEPT`] values each (sorted, every quantile kept),
/// for the report's chart of the two distributions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeFigures {
    pub call: String,
    /// Mann-Whitney U of the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<f64>,
    /// The one-sided p-value in the "worse" direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    /// Rank-biserial effect size, positive when the canary is worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<f64>,
    pub canary: Vec<f64>,
    pub baseline: Vec<f64>,
}

impl JudgeFigures {
    /// How many values of each sample are kept.
    pub const KEPT: usize = 100;

    pub fn of(judgement: &backout_plan::judge::Judgement) -> JudgeFigures {
        JudgeFigures {
            call: judgement.call.as_str().into(),
            u: judgement.test.map(|t| t.u),
            p: judgement.test.map(|t| t.p),
            effect: judgement.effect,
            canary: crate::text::thin(&judgement.canary, Self::KEPT),
            baseline: crate::text::thin(&judgement.baseline, Self::KEPT),
        }
    }

    /// "fail: U 25, p 6.1e-3, effect 1.00" (the figures it has).
    pub fn caption(&self) -> String {
        let mut text = self.call.clone();
        let figures: Vec<String> = [
            self.u.map(|u| format!("U {u}")),
            self.p.map(|p| format!("p {p:.2e}")),
            self.effect.map(|e| format!("effect {e:.2}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !figures.is_empty() {
            text.push_str(": ");
            text.push_str(&figures.join(", "));
        }
        text
    }

    /// The SVG chart of both samples with the caption.
    pub fn svg(&self) -> String {
        crate::text::judge_svg(&self.canary, &self.baseline, &self.caption())
    }
}

/// A signal whose data came back (`known`) or went missing (with why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalChange {
    pub signal: String,
    pub known: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The matrix at one evaluation, compactly: `name=value` per signal
/// (`?` unknown) and `name=state` per trigger, in plan order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixSummary {
    pub verdict: String,
    pub signals: Vec<String>,
    pub triggers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCreated {
    pub reason: String,
    pub to_version: String,
    /// The phases asked for (none: every phase that is not optional).
    pub phases: Vec<String>,
    /// A dry run: its plan has no approvals and its steps change nothing.
    pub dry_run: bool,
    pub drill: bool,
    pub by: String,
    pub plan: RunPlan,
}

/// The body of `approval.signed`: a [`backout_tls::approval::SignedApproval`]
/// as the operator sent it, with this record's own format version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    /// This record's format ([`SIGNED_STATEMENT_VERSION`]); the statement
    /// inside has its own version.
    pub version: u32,
    /// The statement's canonical JSON, byte for byte as signed.
    pub statement: String,
    /// Hex of the ECDSA P-256 signature over `statement`.
    pub signature: String,
    /// Hex DER of the operator's certificate.
    pub certificate: String,
}

/// The `approval.signed` format this code writes and reads.
pub const SIGNED_STATEMENT_VERSION: u32 = 1;

impl SignedStatement {
    pub fn of(signed: &backout_tls::approval::SignedApproval) -> SignedStatement {
        SignedStatement {
            version: SIGNED_STATEMENT_VERSION,
            statement: signed.statement.clone(),
            signature: signed.signature.clone(),
            certificate: signed.certificate.clone(),
        }
    }

    pub fn signed(&self) -> backout_tls::approval::SignedApproval {
        backout_tls::approval::SignedApproval {
            statement: self.statement.clone(),
            signature: self.signature.clone(),
            certificate: self.certificate.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatched {
    pub phase: String,
    pub step: String,
    pub host: String,
    pub attempt: u32,
    /// `plugin.action`; absent when the plan did not name the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub phase: String,
    pub step: String,
    pub host: String,
    pub attempt: u32,
    /// `"succeeded"`, or `{"<state>": reason}`.
    #[serde(with = "outcome_json")]
    pub outcome: Outcome,
    /// How long the step ran on its agent; absent when it did not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ran_ms: Option<i64>,
    /// A succeeded step's summary; absent for other outcomes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// A succeeded step's data as its plugin returned it; absent for other
    /// outcomes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A message of the plan's templates, sent or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub template: String,
    pub channel: String,
    /// start, approval-waiting, end, escalation.
    pub moment: String,
    /// The scope waiting, for `approval-waiting` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub sent: bool,
    /// The agent that posted it, when one was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Why it was not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// An e-mail's recipients, each with the relay's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<Recipient>>,
    /// Whom the message pages: the plan's contacts for the roles an approval
    /// waits for, or for an escalation's `who`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paged: Option<Vec<String>>,
    /// The status page's incident this message opened or went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
}

/// A status page's incident: its id, its public link, and the affected
/// components' status before it was opened (put back when it is resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub previous: BTreeMap<String, String>,
}

/// One recipient of an e-mail: delivered to the relay or refused, and the
/// SMTP reply that says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub delivered: bool,
    pub reply: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandSent {
    pub command_id: String,
    pub step_id: String,
    pub agent: String,
    pub plugin: String,
    pub plugin_sha256: String,
    pub action: String,
    /// The step's params (`null` when they were not JSON).
    pub params: Value,
    pub dry_run: bool,
    pub expires_at_ms: i64,
}

/// A plugin's log line, progress or output, filed under its command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepEventRecord {
    Log {
        command_id: String,
        /// The level.
        log: String,
        message: String,
    },
    Output {
        command_id: String,
        /// The output's name.
        output: String,
        /// Its value, JSON text.
        value: String,
    },
    Progress {
        command_id: String,
        done: u32,
        total: u32,
        message: String,
    },
}

impl StepEventRecord {
    pub fn command_id(&self) -> &str {
        match self {
            StepEventRecord::Log { command_id, .. }
            | StepEventRecord::Output { command_id, .. }
            | StepEventRecord::Progress { command_id, .. } => command_id,
        }
    }
}

/// Why an entry could not be stored or read as a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("its body is not a JSON object")]
    NotAnObject,
}

impl Record {
    /// The entry as stored: its kind, and its other fields as JSON text.
    pub fn encode(&self) -> Result<(String, String), RecordError> {
        let mut value = serde_json::to_value(self)?;
        let map = value.as_object_mut().ok_or(RecordError::NotAnObject)?;
        match map.remove("kind") {
            Some(Value::String(kind)) => Ok((kind, value.to_string())),
            _ => Err(RecordError::NotAnObject),
        }
    }

    /// The record stored as `kind` and `body`. A missing field, a field of
    /// the wrong type or an unknown kind is an error.
    pub fn decode(kind: &str, body: &str) -> Result<Record, RecordError> {
        let mut value: Value = serde_json::from_str(body)?;
        value
            .as_object_mut()
            .ok_or(RecordError::NotAnObject)?
            .insert("kind".into(), Value::String(kind.into()));
        Ok(serde_json::from_value(value)?)
    }

    /// A run event's record, with nothing beside it (a dispatch's `what`, a
    /// finished step's time, summary and data are set by the caller).
    pub fn of_event(event: &Event) -> Record {
        match event {
            Event::Started { by, .. } => Record::RunStarted { by: by.clone() },
            Event::Approved {
                scope, role, by, ..
            } => Record::RunApproved {
                scope: scope.clone(),
                role: role.clone(),
                by: by.clone(),
            },
            Event::Refused {
                scope,
                role,
                by,
                why,
                ..
            } => Record::RunRefused {
                scope: scope.clone(),
                role: role.clone(),
                by: by.clone(),
                why: why.clone(),
            },
            Event::Dispatched {
                phase,
                step,
                host,
                attempt,
                ..
            } => Record::RunDispatched(Dispatched {
                phase: phase.clone(),
                step: step.clone(),
                host: host.clone(),
                attempt: *attempt,
                what: None,
            }),
            Event::Finished {
                phase,
                step,
                host,
                attempt,
                outcome,
                ..
            } => Record::RunFinished(Finished {
                phase: phase.clone(),
                step: step.clone(),
                host: host.clone(),
                attempt: *attempt,
                outcome: outcome.clone(),
                ran_ms: None,
                output: None,
                data: None,
            }),
            Event::Aborted { by, .. } => Record::RunAborted { by: by.clone() },
            Event::PhaseTimedOut { phase, .. } => Record::PhaseTimedOut {
                phase: phase.clone(),
            },
        }
    }

    /// The run event this record is, at the entry's time (`None`: it is not
    /// a run event).
    pub fn event(&self, at_ms: i64) -> Option<Event> {
        Some(match self {
            Record::RunStarted { by } => Event::Started {
                by: by.clone(),
                at_ms,
            },
            Record::RunApproved { scope, role, by } => Event::Approved {
                scope: scope.clone(),
                role: role.clone(),
                by: by.clone(),
                at_ms,
            },
            Record::RunRefused {
                scope,
                role,
                by,
                why,
            } => Event::Refused {
                scope: scope.clone(),
                role: role.clone(),
                by: by.clone(),
                why: why.clone(),
                at_ms,
            },
            Record::RunDispatched(d) => Event::Dispatched {
                phase: d.phase.clone(),
                step: d.step.clone(),
                host: d.host.clone(),
                attempt: d.attempt,
                at_ms,
            },
            Record::RunFinished(f) => Event::Finished {
                phase: f.phase.clone(),
                step: f.step.clone(),
                host: f.host.clone(),
                attempt: f.attempt,
                outcome: f.outcome.clone(),
                at_ms,
            },
            Record::RunAborted { by } => Event::Aborted {
                by: by.clone(),
                at_ms,
            },
            Record::PhaseTimedOut { phase } => Event::PhaseTimedOut {
                phase: phase.clone(),
                at_ms,
            },
            _ => return None,
        })
    }

    /// A message's record: `notification.sent` or `notification.skipped`.
    /// The record of an episode's change.
    pub fn of_change(change: &Change) -> Record {
        match change.clone() {
            Change::Fired {
                trigger,
                since_ms,
                fired_at_ms,
                decide_by_ms,
            } => Record::TriggerFired {
                trigger,
                since_ms,
                fired_at_ms,
                decide_by_ms,
            },
            Change::Decided {
                trigger,
                fired_at_ms,
                run_id,
            } => Record::TriggerDecided {
                trigger,
                fired_at_ms,
                run_id,
            },
            Change::Overdue {
                trigger,
                fired_at_ms,
                decide_by_ms,
                deciders,
                escalate_to,
            } => Record::TriggerOverdue {
                trigger,
                fired_at_ms,
                decide_by_ms,
                deciders,
                escalate_to,
            },
            Change::Cleared {
                trigger,
                fired_at_ms,
            } => Record::TriggerCleared {
                trigger,
                fired_at_ms,
            },
        }
    }

    /// The episode change this record is, if it is one.
    pub fn change(&self) -> Option<Change> {
        Some(match self.clone() {
            Record::TriggerFired {
                trigger,
                since_ms,
                fired_at_ms,
                decide_by_ms,
            } => Change::Fired {
                trigger,
                since_ms,
                fired_at_ms,
                decide_by_ms,
            },
            Record::TriggerDecided {
                trigger,
                fired_at_ms,
                run_id,
            } => Change::Decided {
                trigger,
                fired_at_ms,
                run_id,
            },
            Record::TriggerOverdue {
                trigger,
                fired_at_ms,
                decide_by_ms,
                deciders,
                escalate_to,
            } => Change::Overdue {
                trigger,
                fired_at_ms,
                decide_by_ms,
                deciders,
                escalate_to,
            },
            Record::TriggerCleared {
                trigger,
                fired_at_ms,
            } => Change::Cleared {
                trigger,
                fired_at_ms,
            },
            _ => return None,
        })
    }

    pub fn notification(n: Notification) -> Record {
        if n.sent {
            Record::NotificationSent(n)
        } else {
            Record::NotificationSkipped(n)
        }
    }
}

/// A scope as the journal names it: `run`, or the phase's id.
mod scope_name {
    use backout_plan::run::Scope;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(scope.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Scope, D::Error> {
        String::deserialize(d).map(|name| Scope::named(&name))
    }
}

/// An outcome as the journal writes it: `"succeeded"`, or `{"<state>":
/// reason}` with the host state's word (`failed`, `timed-out`,
/// `unreachable`, `unknown`).
mod outcome_json {
    use backout_plan::run::Outcome;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Stored {
        Succeeded,
        Failed(String),
        TimedOut(String),
        Unreachable(String),
        Unknown(String),
    }

    pub fn serialize<S: Serializer>(outcome: &Outcome, s: S) -> Result<S::Ok, S::Error> {
        let reason = outcome.reason().to_string();
        match outcome {
            Outcome::Succeeded => Stored::Succeeded,
            Outcome::Failed { .. } => Stored::Failed(reason),
            Outcome::TimedOut { .. } => Stored::TimedOut(reason),
            Outcome::Unreachable { .. } => Stored::Unreachable(reason),
            Outcome::Unknown { .. } => Stored::Unknown(reason),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        Ok(match Stored::deserialize(d)? {
            Stored::Succeeded => Outcome::Succeeded,
            Stored::Failed(reason) => Outcome::Failed { reason },
            Stored::TimedOut(reason) => Outcome::TimedOut { reason },
            Stored::Unreachable(reason) => Outcome::Unreachable { reason },
            Stored::Unknown(reason) => Outcome::Unknown { reason },
        })
    }
}

#[cfg(test)]
mod tests;
