//! The report from a journal written by hand: a run that rolled two hosts
//! back, with approvals, a data-loss figure, a decision before it.

use std::path::Path;

use serde_json::{Value, json};

use super::*;

const T0: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z
const MIN: i64 = 60_000;

const PLAN: &str = r#"[plan]
name = "Report test"
[[host]]
id = "app-1"
[[host]]
id = "app-2"
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
[approvals]
run = ["technical-lead"]
[[phase]]
id = "application"
name = "Application Rollback"
[[phase.step]]
id = "deploy"
plugin = "app"
action = "rollback"
on = "app-1"
[[phase.step]]
id = "deploy2"
plugin = "app"
action = "rollback"
on = "app-2"
[[phase]]
id = "communication"
name = "Communication"
after = ["application"]
[[phase.step]]
id = "tell"
plugin = "notify"
action = "slack"
on = "app-1"
[[escalation]]
who = "CTO"
when = "data_loss_usd > 10000 or outage > 4h"
[[escalation]]
who = "Legal"
when = "data_breach"
[success]
rto = "60m"
notify_within = "15m"
no_new_errors = true
data_integrity = true
timeline_complete = true
[report]
root_cause_due = "24h"
prevention_due = "48h"
lessons_due = "72h"
"#;

fn plan() -> Plan {
    Plan::parse(Path::new("plan.toml"), PLAN).unwrap()
}

/// An entry as the journal reads it back: `kind` and `body` as stored.
fn entry(seq: i64, at: i64, run: &str, kind: &str, body: Value) -> Entry {
    Entry {
        seq,
        at_ms: at,
        run_id: run.into(),
        record: crate::journal::Record::decode(kind, &body.to_string())
            .unwrap_or_else(|e| panic!("{kind} {body}: {e}")),
    }
}

/// A run that succeeded in 20 minutes: `loss_usd` is what app-2's step
/// reports as data loss.
fn journal(loss_usd: f64) -> Vec<Entry> {
    let plan = backout_plan::run::RunPlan::new(&plan(), &[]).unwrap();
    let mut seq = 0;
    let mut e = |at: i64, kind: &str, body: Value| {
        seq += 1;
        entry(seq, T0 + at, "run-1", kind, body)
    };
    let version = |c: &str, s: &str| json!({ "commit": c, "subject": s });
    vec![
        e(
            0,
            "run.created",
            json!({ "reason": "5xx at 12%", "to_version": "", "phases": [], "dry_run": false, "drill": false, "by": "dave", "plan": plan }),
        ),
        e(0, "run.started", json!({ "by": "dave" })),
        e(
            2 * MIN,
            "run.approved",
            json!({ "scope": "run", "role": "technical-lead", "by": "bob" }),
        ),
        e(
            2 * MIN,
            "run.dispatched",
            json!({ "phase": "application", "step": "deploy", "host": "app-1", "attempt": 1, "what": "app.rollback" }),
        ),
        e(
            2 * MIN,
            "run.dispatched",
            json!({ "phase": "application", "step": "deploy2", "host": "app-2", "attempt": 1, "what": "app.rollback" }),
        ),
        e(
            9 * MIN,
            "run.finished",
            json!({ "phase": "application", "step": "deploy", "host": "app-1", "attempt": 1, "outcome": "succeeded", "output": "rolled back",
            "data": { "from": version("c3c3c3c3c3c3", "release 1.2"), "to": version("c2c2c2c2c2c2", "release 1.1 STABLE"), "checks": { "log_errors": 0 } } }),
        ),
        e(
            11 * MIN,
            "run.finished",
            json!({ "phase": "application", "step": "deploy2", "host": "app-2", "attempt": 1, "outcome": "succeeded", "output": "rolled back",
            "data": { "from": version("c3c3c3c3c3c3", "release 1.2"), "to": version("c2c2c2c2c2c2", "release 1.1 STABLE"), "checks": { "log_errors": 0 }, "data_loss_usd": loss_usd, "consistent": true } }),
        ),
        e(
            11 * MIN,
            "run.dispatched",
            json!({ "phase": "communication", "step": "tell", "host": "app-1", "attempt": 1, "what": "notify.slack" }),
        ),
        e(
            12 * MIN,
            "run.finished",
            json!({ "phase": "communication", "step": "tell", "host": "app-1", "attempt": 1, "outcome": "succeeded", "output": "posted", "data": {} }),
        ),
        e(
            20 * MIN,
            "run.ended",
            json!({ "status": "succeeded", "elapsed_ms": 20 * MIN }),
        ),
    ]
}

fn report_of(entries: &[Entry]) -> Report {
    report_with(entries, Vec::new())
}

/// The report with `extra` entries outside the run besides the usual ones.
fn report_with(entries: &[Entry], extra: Vec<Entry>) -> Report {
    let mut context = vec![
        entry(
            96,
            T0 - 40 * MIN,
            "",
            "trigger.fired",
            json!({ "trigger": "High Error Rate", "since_ms": T0 - 55 * MIN, "fired_at_ms": T0 - 40 * MIN, "decide_by_ms": T0 - 10 * MIN }),
        ),
        entry(
            97,
            T0 - 5 * MIN,
            "",
            "trigger.fired",
            json!({ "trigger": "Payments", "fired_at_ms": T0 - 5 * MIN, "decide_by_ms": T0 + 10 * MIN }),
        ),
        entry(
            99,
            T0 - 10 * MIN,
            "",
            "decision",
            json!({ "trigger": "High Error Rate", "decision": "assess-for-rollback", "detail": "error_rate 12% held 15m", "by": "guard" }),
        ),
        entry(
            100,
            T0 - 10 * MIN,
            "",
            "trigger.overdue",
            json!({ "trigger": "High Error Rate", "fired_at_ms": T0 - 40 * MIN, "decide_by_ms": T0 - 10 * MIN, "deciders": ["technical-lead"], "escalate_to": ["CTO"] }),
        ),
    ];
    context.extend(extra);
    build(&Inputs {
        run_id: "run-1",
        entries,
        context: &context,
        plan: &plan(),
        journal_check: "intact, 10 entries".into(),
        charts: vec![Chart {
            trigger: "High Error Rate".into(),
            signal: "error_rate".into(),
            condition: "error_rate > 0.05".into(),
            threshold: Some(0.05),
            points: (0..60)
                .map(|i| {
                    (
                        T0 - 30 * MIN + i * MIN,
                        if (25..40).contains(&i) { 0.12 } else { 0.01 },
                    )
                })
                .collect(),
            error: None,
        }],
        drill: Some(backout_plan::sections::DrillResult {
            run: "run-0".into(),
            result: "succeeded".into(),
            phases: [("application".to_string(), 420.0)].into(),
        }),
        now_ms: T0 + 30 * MIN,
    })
    .unwrap()
}

#[test]
fn time_to_decision_is_measured_against_each_fired_triggers_deadline() {
    let r = report_of(&journal(100.0));
    let words: Vec<String> = r.time_to_decision.iter().map(decision_words).collect();
    assert_eq!(words.len(), 2, "{words:?}");
    assert!(
        words[0].starts_with("High Error Rate fired ")
            && words[0].ends_with(
                "decided in 40 m 0 s (this run started): DEADLINE MISSED by 10 m 0 s; deciders told again and escalated"
            ),
        "{words:?}"
    );
    assert!(
        words[1].ends_with(
            "decided in 5 m 0 s (this run started): within its deadline (10 m 0 s to spare)"
        ),
        "{words:?}"
    );
    assert_eq!(r.time_to_decision[1].met, Some(true));
    let md = markdown(&r);
    assert!(
        md.contains("## Time to decision\n\n- High Error Rate fired"),
        "{md}"
    );
    assert!(html(&r).contains("<h2>Time to decision</h2><ul><li>High Error Rate fired"));
}

#[test]
fn the_timeline_has_every_phase_host_and_step_with_real_times() {
    let r = report_of(&journal(500.0));
    assert_eq!(r.run.status, "succeeded");
    assert_eq!(r.run.duration_ms, 20 * MIN);
    assert_eq!(r.timeline.len(), 3);
    assert!(r.timeline.iter().all(|s| s.ended_at_ms.is_some()));
    let app = &r.phases[0];
    assert_eq!(
        (app.started_at_ms, app.ended_at_ms),
        (Some(T0 + 2 * MIN), Some(T0 + 11 * MIN))
    );
    assert_eq!(app.hosts[1].ended_at_ms, Some(T0 + 11 * MIN));
    assert_eq!(app.last_drill_s, Some(420.0), "against the last drill");
    assert_eq!(r.versions.len(), 2);
    assert_eq!(r.versions[0].to, "c2c2c2c2c2 (release 1.1 STABLE)");
    assert_eq!(r.approvals[0].by, "bob");
    assert_eq!(r.evidence.len(), 1, "the decision 10 minutes before counts");
    assert_eq!(
        r.follow_ups[0].due_at_ms,
        Some(T0 + 20 * MIN + 24 * 60 * MIN)
    );
}

#[test]
fn success_criteria_are_measured_from_the_journals_times() {
    let r = report_of(&journal(500.0));
    let find = |name: &str| r.success.iter().find(|c| c.name.starts_with(name)).unwrap();
    assert_eq!(find("Recovery").met, Some(true));
    assert_eq!(find("Recovery").measured, "20 m 0 s");
    assert_eq!(
        find("Stakeholders").met,
        Some(true),
        "notified 12 minutes in"
    );
    assert_eq!(find("No new errors").met, Some(true));
    assert_eq!(find("Data integrity").met, Some(true));
    assert_eq!(find("Timeline").met, Some(true));

    // An unfinished run: not recovered, timeline incomplete.
    let mut open = journal(0.0);
    open.truncate(7);
    let r = report_of(&open);
    let find = |name: &str| r.success.iter().find(|c| c.name.starts_with(name)).unwrap();
    assert_eq!(find("Recovery").met, Some(false));
    assert_eq!(find("Timeline").met, Some(false));
    assert_eq!(find("Stakeholders").met, None, "no notify step ran yet");
}

#[test]
fn escalation_fires_exactly_when_the_threshold_is_crossed() {
    let state = |loss: f64| {
        report_of(&journal(loss))
            .escalations
            .iter()
            .map(|e| (e.who.clone(), e.state.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(state(10_000.0)[0], ("CTO".into(), "not fired".into()));
    assert_eq!(state(10_000.01)[0], ("CTO".into(), "fired".into()));
    assert_eq!(
        state(0.0)[1],
        ("Legal".into(), "unknown".into()),
        "no step measured data_breach"
    );
}

#[test]
fn markdown_and_json_reports_are_stable() {
    let r = report_of(&journal(12_500.0));
    insta::assert_snapshot!("markdown", markdown(&r));
    insta::assert_json_snapshot!("json", r);
}

#[test]
fn the_html_report_has_one_timeline_bar_per_phase_and_host() {
    let r = report_of(&journal(0.0));
    let page = html(&r);
    assert_eq!(
        page.matches("<rect class=\"bar\"").count(),
        3,
        "application × 2, communication × 1"
    );
    assert!(page.contains("application / app-2"));
    assert!(page.starts_with("<!doctype html>"));
    assert!(!page.contains("<script"), "a report runs nothing");
    assert_eq!(page.matches("<polyline").count(), 1, "one chart");
    assert!(
        page.contains("class=\"threshold\""),
        "the trigger's line is drawn"
    );
}

#[test]
fn a_baseline_step_is_summarised_for_the_report() {
    let mut entries = journal(0.0);
    let end = entries.pop().unwrap();
    entries.push(entry(50, T0 + 13 * MIN, "run-1", "run.dispatched", json!({ "phase": "communication", "step": "baseline", "host": "app-1", "attempt": 1, "what": "health.baseline" })));
    entries.push(entry(51, T0 + 16 * MIN, "run-1", "run.finished", json!({ "phase": "communication", "step": "baseline", "host": "app-1", "attempt": 1, "outcome": "succeeded", "output": "3 samples",
        "data": { "samples": [{}, {}, {}], "avg_response_s": 0.25, "max_response_s": 2.5, "samples_with_warnings": 1, "log": { "matches": 0 } } })));
    entries.push(end);
    let md = markdown(&report_of(&entries));
    assert!(md.contains("## Stabilisation baseline"), "{md}");
    assert!(
        md.contains("| app-1 | 3 | 0.25 s | 2.50 s | 0 | 1 |"),
        "{md}"
    );
}

#[test]
fn html_and_markdown_carry_the_same_target_version_and_criteria() {
    let mut r = report_of(&journal(0.0));
    r.run.to_version = "v2.3.1".into();
    assert!(!r.success.is_empty());
    let (md, page) = (markdown(&r), html(&r));
    for text in [&md, &page] {
        assert!(text.contains("v2.3.1"), "{text}");
        for c in &r.success {
            assert!(text.contains(&c.name), "{} missing: {text}", c.name);
        }
    }
    // Without criteria, both say so instead of an empty table.
    r.success.clear();
    let page = html(&r);
    assert!(page.contains("The plan sets none"), "{page}");
    assert!(!page.contains("<th>Criterion</th>"), "{page}");
    assert!(markdown(&r).contains("The plan sets none"));
}

/// A trigger the canary judge fired before the run: the HTML report draws
/// both distributions (an SVG, no script) with U, p-value and effect size;
/// the Markdown says the figures.
#[test]
fn a_fired_canary_judge_is_charted_in_the_report() {
    let fired = entry(
        98,
        T0 - 20 * MIN,
        "",
        "trigger.changed",
        json!({ "trigger": "Canary Fails", "class": "immediate", "from": "ok", "to": "FIRED", "condition": "canary == fail", "value": "2",
            "judge": { "call": "fail", "u": 25.0, "p": 0.0061, "effect": 1.0, "canary": [0.8, 0.81, 0.82, 0.9, 0.95], "baseline": [0.001, 0.002, 0.002, 0.003, 0.004] } }),
    );
    let r = report_with(&journal(100.0), vec![fired]);
    assert_eq!(r.judged.len(), 1);
    let page = html(&r);
    let section = page
        .split("<h2>Canary judge</h2>")
        .nth(1)
        .unwrap_or_default();
    assert!(
        section.starts_with("<figure><figcaption>Canary Fails fired ")
            && section.contains("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"judge\"")
            && section.contains(">canary (5)<")
            && section.contains(">baseline (5)<")
            && section.contains("fail: U 25, p 6.10e-3, effect 1.00"),
        "{page}"
    );
    assert_eq!(section.matches("<circle").count(), 10);
    assert!(!page.contains("<script"), "no script in the report");
    let md = markdown(&r);
    assert!(
        md.contains("## Canary judge\n\n- Canary Fails fired ")
            && md.contains("on the canary judge: fail: U 25, p 6.10e-3, effect 1.00 (canary 5 values, baseline 5"),
        "{md}"
    );
    // Without one, no section.
    assert!(!html(&report_of(&journal(100.0))).contains("Canary judge"));
}

/// A backup step's hash and size, as its data reported them, are the
/// coordinator's copy of the backup: every format of the report shows them.
#[test]
fn a_backups_hash_and_size_are_shown_in_every_format() {
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let mut entries = journal(100.0);
    let end = entries.pop().unwrap();
    entries.push(entry(
        20,
        T0 + 12 * MIN,
        "run-1",
        "run.dispatched",
        json!({ "phase": "communication", "step": "save", "host": "app-1", "attempt": 1, "what": "db.backup" }),
    ));
    entries.push(entry(
        21,
        T0 + 13 * MIN,
        "run-1",
        "run.finished",
        json!({ "phase": "communication", "step": "save", "host": "app-1", "attempt": 1, "outcome": "succeeded", "output": "dumped",
            "data": { "file": "/backups/run-1.dump", "size": 4096, "sha256": sha } }),
    ));
    entries.push(end);
    let r = report_of(&entries);
    assert_eq!(r.backups.len(), 1, "{:?}", r.backups);
    let md = markdown(&r);
    assert!(
        md.contains(&format!(
            "| app-1 | communication/save | /backups/run-1.dump | 4096 bytes | `{sha}` |"
        )),
        "{md}"
    );
    let page = html(&r);
    assert!(
        page.contains("<h2>Backups</h2>") && page.contains(&format!("<code>{sha}</code>")),
        "{page}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["backups"][0]["sha256"], sha);
    assert_eq!(json["backups"][0]["size"], 4096);
    // A run without a backup has no such section.
    assert!(!markdown(&report_of(&journal(100.0))).contains("## Backups"));
}

/// `backout report` lists who was paged and when (issue 20, item 4): each
/// message at its time, the plan's contacts it paged under it, and "NOT
/// paged" when the message could not go out.
#[test]
fn the_report_lists_who_was_paged_and_when() {
    let mut entries = journal(0.0);
    let ended = entries.pop().unwrap();
    entries.push(entry(
        100,
        T0 + MIN,
        "run-1",
        "notification.sent",
        json!({ "template": "approval", "channel": "ops", "moment": "approval-waiting", "scope": "run", "sent": true, "via": "app-1",
                "paged": ["technical-lead: Terry Kim +1 555 0101, backup: Ann Bell +1 555 0109"] }),
    ));
    entries.push(entry(
        101,
        T0 + 15 * MIN,
        "run-1",
        "notification.skipped",
        json!({ "template": "escalation", "channel": "cto-phone", "moment": "escalation", "sent": false, "why": "no agent connected for app-1",
                "paged": ["CTO: Chris Tan +1 555 0199"] }),
    ));
    entries.push(ended);
    let md = markdown(&report_of(&entries));
    assert!(
        md.contains("— `approval` to ops (approval-waiting): sent\n  - paged: technical-lead: Terry Kim +1 555 0101, backup: Ann Bell +1 555 0109\n"),
        "{md}"
    );
    assert!(
        md.contains("— `escalation` to cto-phone (escalation): NOT sent: no agent connected for app-1\n  - NOT paged: CTO: Chris Tan +1 555 0199\n"),
        "{md}"
    );
    let at = |minutes: i64| format!("- {} — `", crate::text::rfc3339(T0 + minutes * MIN));
    assert!(md.contains(&format!("{}approval", at(1))), "{md}");
    assert!(md.contains(&format!("{}escalation", at(15))), "{md}");
    let page = html(&report_of(&entries));
    assert!(
        page.contains("<li class=\"paged\">paged: technical-lead: Terry Kim"),
        "{page}"
    );
    assert!(
        page.contains("<li class=\"paged\"><b>not paged</b>: CTO: Chris Tan"),
        "{page}"
    );
}
