//! Each record's JSON, kept in snapshots; format-1 bodies (as the untyped
//! code wrote them) read as the same records and are written back byte for
//! byte; a record missing a field it needs is an error.

use std::time::Duration;

use backout_plan::run::{PhasePlan, StepPlan};
use serde_json::json;

use super::*;

fn plan() -> RunPlan {
    RunPlan {
        approvals: vec!["technical-lead".into()],
        self_approval: false,
        phases: vec![PhasePlan {
            id: "application".into(),
            after: vec![],
            approvals: vec![],
            time_limit: Some(Duration::from_secs(600)),
            rolling: 1,
            steps: vec![StepPlan {
                id: "deploy".into(),
                plugin: "app".into(),
                action: "rollback".into(),
                params_json: r#"{"version":"${run:to_version}"}"#.into(),
                timeout: None,
                hosts: vec!["app-1".into(), "app-2".into()],
                on_failure: Default::default(),
                retries: 0,
                backoff: Duration::from_secs(5),
            }],
        }],
    }
}

/// One record of every kind, each with the body format 1 wrote for it
/// (what `json!(...)` made of it in the untyped code).
fn every_record() -> Vec<(Record, serde_json::Value)> {
    let data = json!({ "from": { "commit": "c3c3" }, "data_loss_usd": 12.5 });
    vec![
        (
            Record::RunCreated(RunCreated {
                reason: "5xx at 12%".into(),
                to_version: "v1.2".into(),
                phases: vec![],
                dry_run: false,
                drill: false,
                by: "dave".into(),
                plan: plan(),
            }),
            json!({ "reason": "5xx at 12%", "to_version": "v1.2", "phases": [], "dry_run": false, "drill": false, "by": "dave", "plan": plan() }),
        ),
        (
            Record::RunStarted { by: "dave".into() },
            json!({ "by": "dave" }),
        ),
        (
            Record::RunApproved {
                scope: Scope::Run,
                role: "technical-lead".into(),
                by: "bob".into(),
            },
            json!({ "scope": "run", "role": "technical-lead", "by": "bob" }),
        ),
        (
            Record::RunRefused {
                scope: Scope::Phase("database".into()),
                role: "dba".into(),
                by: "carol".into(),
                why: "no backup".into(),
            },
            json!({ "scope": "database", "role": "dba", "by": "carol", "why": "no backup" }),
        ),
        (
            Record::ApprovalSigned(SignedStatement {
                version: 1,
                statement: r#"{"version":1,"operator":"dave"}"#.into(),
                signature: "3045".into(),
                certificate: "3082".into(),
            }),
            json!({ "version": 1, "statement": "{\"version\":1,\"operator\":\"dave\"}", "signature": "3045", "certificate": "3082" }),
        ),
        (
            Record::RunDispatched(Dispatched {
                phase: "application".into(),
                step: "deploy".into(),
                host: "app-1".into(),
                attempt: 1,
                what: Some("app.rollback".into()),
            }),
            json!({ "phase": "application", "step": "deploy", "host": "app-1", "attempt": 1, "what": "app.rollback" }),
        ),
        (
            Record::RunFinished(Finished {
                phase: "application".into(),
                step: "deploy".into(),
                host: "app-1".into(),
                attempt: 1,
                outcome: Outcome::Succeeded,
                ran_ms: Some(1200),
                output: Some("rolled back".into()),
                data: Some(data.clone()),
            }),
            json!({ "phase": "application", "step": "deploy", "host": "app-1", "attempt": 1, "outcome": "succeeded", "ran_ms": 1200, "output": "rolled back", "data": data }),
        ),
        (
            Record::RunFinished(Finished {
                phase: "application".into(),
                step: "deploy".into(),
                host: "app-2".into(),
                attempt: 2,
                outcome: Outcome::TimedOut {
                    reason: "no answer within the step's time".into(),
                },
                ran_ms: None,
                output: None,
                data: None,
            }),
            json!({ "phase": "application", "step": "deploy", "host": "app-2", "attempt": 2, "outcome": { "timed-out": "no answer within the step's time" } }),
        ),
        (
            Record::RunAborted { by: "alice".into() },
            json!({ "by": "alice" }),
        ),
        (
            Record::PhaseTimedOut {
                phase: "application".into(),
            },
            json!({ "phase": "application" }),
        ),
        (
            Record::RunEnded {
                status: "succeeded".into(),
                elapsed_ms: 61_000,
            },
            json!({ "status": "succeeded", "elapsed_ms": 61_000 }),
        ),
        (
            Record::NotificationSent(Notification {
                template: "approval".into(),
                channel: "ops".into(),
                moment: "approval-waiting".into(),
                scope: Some("run".into()),
                sent: true,
                via: Some("app-1".into()),
                why: None,
                recipients: None,
                paged: Some(vec!["dba: Dana Lee +1 555 0102, backup: Sam Roe +1 555 0103".into()]),
                incident: Some(Incident {
                    id: "p31zjtct2jer".into(),
                    link: Some("http://stspg.io/803310a12".into()),
                    previous: [("8kbf7d35c070".to_string(), "operational".to_string())].into(),
                }),
            }),
            json!({ "template": "approval", "channel": "ops", "moment": "approval-waiting", "scope": "run", "sent": true, "via": "app-1", "paged": ["dba: Dana Lee +1 555 0102, backup: Sam Roe +1 555 0103"], "incident": { "id": "p31zjtct2jer", "link": "http://stspg.io/803310a12", "previous": { "8kbf7d35c070": "operational" } } }),
        ),
        (
            Record::NotificationSkipped(Notification {
                template: "start".into(),
                channel: "email".into(),
                moment: "start".into(),
                scope: None,
                sent: false,
                via: None,
                why: Some("not delivered to emergency@example.com: permanent error (535): 5.7.8 Authentication credentials invalid".into()),
                recipients: Some(vec![Recipient {
                    address: "emergency@example.com".into(),
                    delivered: false,
                    reply: "permanent error (535): 5.7.8 Authentication credentials invalid".into(),
                }]),
                paged: None,
                incident: None,
            }),
            json!({ "template": "start", "channel": "email", "moment": "start", "sent": false, "why": "not delivered to emergency@example.com: permanent error (535): 5.7.8 Authentication credentials invalid", "recipients": [{ "address": "emergency@example.com", "delivered": false, "reply": "permanent error (535): 5.7.8 Authentication credentials invalid" }] }),
        ),
        (
            Record::EscalationFired {
                who: "CTO".into(),
                when: "data_loss_usd > 10000".into(),
                figures: [
                    ("data_loss_usd".to_string(), json!(12500.0)),
                    ("outage".to_string(), json!(61.0)),
                ]
                .into(),
            },
            json!({ "who": "CTO", "when": "data_loss_usd > 10000", "figures": { "data_loss_usd": 12500.0, "outage": 61.0 } }),
        ),
        (
            Record::CommandSent(CommandSent {
                command_id: "run-1/application/deploy/app-1#1/0a1b2c3d".into(),
                step_id: "run-1/application/deploy/app-1#1".into(),
                agent: "app-1".into(),
                plugin: "app".into(),
                plugin_sha256: "ab".repeat(32),
                action: "rollback".into(),
                params: json!({ "version": "v1.2" }),
                dry_run: false,
                expires_at_ms: 1_764_000_060_000,
            }),
            json!({ "command_id": "run-1/application/deploy/app-1#1/0a1b2c3d", "step_id": "run-1/application/deploy/app-1#1", "agent": "app-1", "plugin": "app", "plugin_sha256": "ab".repeat(32), "action": "rollback", "params": { "version": "v1.2" }, "dry_run": false, "expires_at_ms": 1_764_000_060_000_i64 }),
        ),
        (
            Record::StepFinished {
                command_id: "assess/app-1/health/0a1b2c3d".into(),
                agent: "app-1".into(),
                state: "ok".into(),
                detail: "3 checks passed".into(),
            },
            json!({ "command_id": "assess/app-1/health/0a1b2c3d", "agent": "app-1", "state": "ok", "detail": "3 checks passed" }),
        ),
        (
            Record::StepEvent(StepEventRecord::Log {
                command_id: "c1".into(),
                log: "info".into(),
                message: "stopping".into(),
            }),
            json!({ "command_id": "c1", "log": "info", "message": "stopping" }),
        ),
        (
            Record::StepEvent(StepEventRecord::Progress {
                command_id: "c1".into(),
                done: 2,
                total: 5,
                message: "copying".into(),
            }),
            json!({ "command_id": "c1", "done": 2, "total": 5, "message": "copying" }),
        ),
        (
            Record::StepEvent(StepEventRecord::Output {
                command_id: "c1".into(),
                output: "previous".into(),
                value: "\"v1.1\"".into(),
            }),
            json!({ "command_id": "c1", "output": "previous", "value": "\"v1.1\"" }),
        ),
        (
            Record::SignalSet {
                signal: "payments_ok".into(),
                value: "false".into(),
                by: "alice".into(),
                note: "card declines".into(),
            },
            json!({ "signal": "payments_ok", "value": "false", "by": "alice", "note": "card declines" }),
        ),
        (
            Record::SignalEvents {
                signal: "complaints".into(),
                count: 3,
                by: "alice".into(),
                note: "support".into(),
            },
            json!({ "signal": "complaints", "count": 3, "by": "alice", "note": "support" }),
        ),
        (
            Record::Decision {
                trigger: "High Error Rate".into(),
                decision: "assess-for-rollback".into(),
                detail: "error_rate 12% held 15m".into(),
                by: "guard".into(),
            },
            json!({ "trigger": "High Error Rate", "decision": "assess-for-rollback", "detail": "error_rate 12% held 15m", "by": "guard" }),
        ),
        (
            Record::TriggerChanged(TriggerChange {
                trigger: "Complete Service Down".into(),
                class: "immediate".into(),
                from: "breaching".into(),
                to: "FIRED".into(),
                condition: "app_up == false".into(),
                value: Some("false".into()),
                heard: Some("3 of 3 hosts".into()),
                since_ms: Some(1_000),
                judge: Some(JudgeFigures {
                    call: "fail".into(),
                    u: Some(25.0),
                    p: Some(0.006),
                    effect: Some(1.0),
                    canary: vec![0.9, 0.95],
                    baseline: vec![0.03, 0.04],
                }),
            }),
            json!({ "trigger": "Complete Service Down", "class": "immediate", "from": "breaching", "to": "FIRED", "condition": "app_up == false", "value": "false", "heard": "3 of 3 hosts", "since_ms": 1000, "judge": { "call": "fail", "u": 25.0, "p": 0.006, "effect": 1.0, "canary": [0.9, 0.95], "baseline": [0.03, 0.04] } }),
        ),
        (
            Record::SignalChanged(SignalChange {
                signal: "error_rate".into(),
                known: false,
                value: None,
                error: Some("http://127.0.0.1:9090/api/v1/query: connection refused".into()),
            }),
            json!({ "signal": "error_rate", "known": false, "error": "http://127.0.0.1:9090/api/v1/query: connection refused" }),
        ),
        (
            Record::MatrixSummary(MatrixSummary {
                verdict: "NO ACTION".into(),
                signals: vec!["app_up=true".into(), "error_rate=?".into()],
                triggers: vec!["Complete Service Down=ok".into()],
            }),
            json!({ "verdict": "NO ACTION", "signals": ["app_up=true", "error_rate=?"], "triggers": ["Complete Service Down=ok"] }),
        ),
        (
            Record::TriggerFired {
                trigger: "High Error Rate".into(),
                since_ms: Some(1_000),
                fired_at_ms: 901_000,
                decide_by_ms: Some(2_701_000),
            },
            json!({ "trigger": "High Error Rate", "since_ms": 1_000, "fired_at_ms": 901_000, "decide_by_ms": 2_701_000 }),
        ),
        (
            Record::TriggerDecided {
                trigger: "High Error Rate".into(),
                fired_at_ms: 901_000,
                run_id: "r-1".into(),
            },
            json!({ "trigger": "High Error Rate", "fired_at_ms": 901_000, "run_id": "r-1" }),
        ),
        (
            Record::TriggerOverdue {
                trigger: "High Error Rate".into(),
                fired_at_ms: 901_000,
                decide_by_ms: 2_701_000,
                deciders: vec!["technical-lead".into()],
                escalate_to: vec!["CTO".into()],
            },
            json!({ "trigger": "High Error Rate", "fired_at_ms": 901_000, "decide_by_ms": 2_701_000, "deciders": ["technical-lead"], "escalate_to": ["CTO"] }),
        ),
        (
            Record::TriggerCleared {
                trigger: "High Error Rate".into(),
                fired_at_ms: 901_000,
            },
            json!({ "trigger": "High Error Rate", "fired_at_ms": 901_000 }),
        ),
        (
            Record::LeaseTaken(LeaseTaken {
                epoch: 2,
                holder: "10.0.0.6:7443".into(),
                previous: lease_end::EXPIRED.into(),
                vacant_ms: 2_340,
            }),
            json!({ "epoch": 2, "holder": "10.0.0.6:7443", "previous": "expired", "vacant_ms": 2_340 }),
        ),
        (
            Record::Checkpoint(crate::journal::Checkpoint {
                seq: 41,
                hash: "ab".repeat(32),
                at_ms: 902_000,
                key_id: "0123456789abcdef".into(),
                signature: "cd".repeat(64),
            }),
            json!({ "seq": 41, "hash": "ab".repeat(32), "at_ms": 902_000, "key_id": "0123456789abcdef", "signature": "cd".repeat(64) }),
        ),
    ]
}

#[test]
fn every_record_has_its_json_in_a_snapshot() {
    for (record, _) in every_record() {
        let value = serde_json::to_value(&record).unwrap();
        let name = match &record {
            Record::StepEvent(StepEventRecord::Log { .. }) => "step_event_log".to_string(),
            Record::StepEvent(StepEventRecord::Progress { .. }) => "step_event_progress".into(),
            Record::StepEvent(StepEventRecord::Output { .. }) => "step_event_output".into(),
            Record::RunFinished(f) if f.outcome != Outcome::Succeeded => {
                "run_finished_timed_out".into()
            }
            _ => value["kind"].as_str().unwrap().replace('.', "_"),
        };
        insta::assert_json_snapshot!(name, value);
    }
}

#[test]
fn format_one_bodies_read_as_records_and_are_written_back_unchanged() {
    for (record, body) in every_record() {
        let (kind, text) = record.encode().unwrap();
        assert_eq!(text, body.to_string(), "{kind}");
        assert_eq!(Record::decode(&kind, &body.to_string()).unwrap(), record);
    }
}

#[test]
fn a_record_missing_a_field_it_needs_is_an_error() {
    let mut created = json!({ "reason": "r", "to_version": "", "phases": [], "drill": false, "by": "dave", "plan": plan() });
    let err = Record::decode("run.created", &created.to_string()).unwrap_err();
    assert!(err.to_string().contains("dry_run"), "{err}");
    created["dry_run"] = json!("yes");
    assert!(
        Record::decode("run.created", &created.to_string()).is_err(),
        "a flag that is not a boolean"
    );
    let mut plan = serde_json::to_value(plan()).unwrap();
    plan["phases"][0]["steps"][0]
        .as_object_mut()
        .unwrap()
        .remove("params_json");
    let created = json!({ "reason": "r", "to_version": "", "phases": [], "dry_run": false, "drill": false, "by": "dave", "plan": plan });
    let err = Record::decode("run.created", &created.to_string()).unwrap_err();
    assert!(err.to_string().contains("params_json"), "{err}");
    for (kind, body) in [
        (
            "run.refused",
            json!({ "scope": "run", "role": "dba", "by": "carol" }),
        ),
        (
            "run.finished",
            json!({ "phase": "p", "step": "s", "host": "h", "attempt": 1 }),
        ),
        (
            "run.finished",
            json!({ "phase": "p", "step": "s", "host": "h", "attempt": 1, "outcome": { "exploded": "?" } }),
        ),
        ("run.ended", json!({ "elapsed_ms": 5 })),
        ("step.event", json!({ "command_id": "c1", "message": "m" })),
        ("run.someday", json!({})),
    ] {
        assert!(
            Record::decode(kind, &body.to_string()).is_err(),
            "{kind} {body}"
        );
    }
    assert!(matches!(
        Record::decode("run.started", "[\"dave\"]"),
        Err(RecordError::NotAnObject)
    ));
}

#[test]
fn every_run_event_reads_back_as_written() {
    let outcomes = [
        Outcome::Succeeded,
        Outcome::Failed {
            reason: "exit 1".into(),
        },
        Outcome::TimedOut {
            reason: "30 s".into(),
        },
        Outcome::Unreachable {
            reason: "gone".into(),
        },
        Outcome::Unknown {
            reason: "agent stopped".into(),
        },
    ];
    let mut events: Vec<Event> = outcomes
        .into_iter()
        .map(|outcome| Event::Finished {
            phase: "p".into(),
            step: "s".into(),
            host: "h".into(),
            attempt: 2,
            outcome,
            at_ms: 5,
        })
        .collect();
    events.extend([
        Event::Started {
            by: "dave".into(),
            at_ms: 5,
        },
        Event::Approved {
            scope: Scope::Run,
            role: "technical-lead".into(),
            by: "bob".into(),
            at_ms: 5,
        },
        Event::Refused {
            scope: Scope::Phase("db".into()),
            role: "dba".into(),
            by: "carol".into(),
            why: "no backup".into(),
            at_ms: 5,
        },
        Event::Dispatched {
            phase: "p".into(),
            step: "s".into(),
            host: "h".into(),
            attempt: 1,
            at_ms: 5,
        },
        Event::Aborted {
            by: "alice".into(),
            at_ms: 5,
        },
        Event::PhaseTimedOut {
            phase: "p".into(),
            at_ms: 5,
        },
    ]);
    for event in events {
        let (kind, body) = Record::of_event(&event).encode().unwrap();
        let back = Record::decode(&kind, &body).unwrap();
        assert_eq!(back.event(5), Some(event));
    }
    assert_eq!(
        Record::RunEnded {
            status: "failed".into(),
            elapsed_ms: 1
        }
        .event(5),
        None,
        "not a run event"
    );
}
