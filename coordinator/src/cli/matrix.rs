//! The decision matrix as `backout assess` shows it, the checklist of the
//! plan's section 1.1 answered from data, and `backout signal`.

use backout_proto::wire;
use serde_json::{Value, json};

use super::{human_ms, table};

/// The seed's assessment checklist, answered where data can answer it.
pub fn checklist(
    hosts: &[Value],
    matrix: Option<&wire::MatrixReply>,
    deploy_ms: Option<i64>,
) -> Value {
    // A host that did not answer is unknown: neither failing nor healthy.
    let heard: Vec<&Value> = hosts.iter().filter(|h| h["state"] == "ok").collect();
    let unheard: Vec<String> = hosts
        .iter()
        .filter(|h| h["state"] != "ok")
        .map(|h| {
            format!(
                "{}: {}",
                h["agent"].as_str().unwrap_or("?"),
                h["state"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let failing = heard.iter().filter(|h| h["healthy"] != json!(true)).count();
    let widespread = if heard.is_empty() {
        json!({ "answer": "unknown", "detail": "no host answered", "hosts_not_heard": unheard.len() })
    } else {
        let total = hosts.len();
        let share = failing as f64 / total as f64;
        // Kleene again: "yes" and "no" only when the hosts not heard could
        // not change the answer.
        let answer = if failing * 2 >= total {
            "yes"
        } else if (failing + unheard.len()) * 2 >= total {
            "unknown"
        } else if failing == 0 && unheard.is_empty() {
            "no"
        } else if failing == 0 {
            "unknown"
        } else {
            "partly"
        };
        let mut detail = format!("{failing} of {total} hosts failing ({:.0}%)", share * 100.0);
        if !unheard.is_empty() {
            detail.push_str(&format!(
                ", {} not heard ({})",
                unheard.len(),
                unheard.join(", ")
            ));
        }
        json!({
            "answer": answer,
            "detail": detail,
            "share_failing": share,
            "hosts_not_heard": unheard.len(),
        })
    };
    // Onset: the earliest start of a trigger that is breaching or fired.
    let onset = matrix.and_then(|m| {
        m.rows
            .iter()
            .filter(|r| r.state == "breaching" || r.state == "FIRED")
            .map(|r| r.since_ms)
            .filter(|&s| s > 0)
            .min()
    });
    let after_deploy = match (onset, deploy_ms) {
        (Some(onset), Some(deploy)) => json!({
            "answer": if onset >= deploy { "yes" } else { "no" },
            "detail": if onset >= deploy {
                format!("first breach {} after the deploy", human_ms(onset - deploy))
            } else {
                format!("first breach {} before the deploy", human_ms(deploy - onset))
            },
            "onset_ms": onset,
            "deploy_ms": deploy,
        }),
        (None, _) => json!({ "answer": "unknown", "detail": "no trigger is breaching" }),
        (Some(onset), None) => json!({
            "answer": "unknown",
            "detail": "give --deploy-time to compare with the first breach",
            "onset_ms": onset,
        }),
    };
    json!({
        "widespread": widespread,
        "started_after_deploy": after_deploy,
        "quick_fix_under_10_minutes": { "answer": "for people", "detail": "can the issue be fixed in under 10 minutes?" },
        "business_impact": { "answer": "for people", "detail": "assess business impact and user experience" },
    })
}

pub fn matrix_json(m: &wire::MatrixReply) -> Value {
    json!({
        "plan": m.plan_name,
        "verdict": m.verdict,
        "fired": m.fired,
        "deciders": m.deciders,
        "unknown": m.unknown,
        "triggers": m.rows.iter().map(|r| json!({
            "trigger": r.trigger,
            "class": r.class,
            "condition": r.condition,
            "value": if r.value.is_empty() { Value::Null } else { json!(r.value) },
            "held_ms": r.held_ms,
            "needed": r.needed,
            "state": r.state,
            "since_ms": r.since_ms,
            "fired_at_ms": (r.fired_at_ms > 0).then_some(r.fired_at_ms),
            "unknown_since_ms": (r.unknown_since_ms > 0).then_some(r.unknown_since_ms),
            "hosts": (r.hosts_expected > 0).then(|| json!({ "heard": r.hosts_heard, "expected": r.hosts_expected })),
            "decide_by_ms": (r.decide_by_ms > 0).then_some(r.decide_by_ms),
            "consecutive": r.consecutive,
            "deciders": r.deciders,
            "remedy": r.remedy.as_ref().map(remedy_json),
        })).collect::<Vec<_>>(),
        "remedies": m.rows.iter().filter_map(|r| {
            let remedy = r.remedy.as_ref()?;
            let mut doc = remedy_json(remedy);
            doc["trigger"] = json!(r.trigger);
            doc["line"] = json!(remedy_line(&r.trigger, remedy, m.now_ms));
            Some(doc)
        }).collect::<Vec<_>>(),
        "fired_triggers": m.fired_triggers.iter().map(|f| json!({
            "trigger": f.trigger,
            "evidence": m.rows.iter().find(|r| r.trigger == f.trigger).map(|r| evidence(r, m.now_ms)),
            "class": f.class,
            "deciders": f.deciders,
            "since_ms": f.since_ms,
            "fired_at_ms": f.fired_at_ms,
            "decide_by_ms": (f.decide_by_ms > 0).then_some(f.decide_by_ms),
            "time_left_ms": (f.decide_by_ms > 0).then_some(f.decide_by_ms - m.now_ms),
        })).collect::<Vec<_>>(),
        "evaluated_at_ms": (m.evaluated_at_ms > 0).then_some(m.evaluated_at_ms),
        "signals": m.signals.iter().map(signal_json).collect::<Vec<_>>(),
    })
}

pub fn remedy_json(r: &wire::RemedyStatus) -> Value {
    json!({
        "phase": r.phase,
        "state": r.state,
        "what": r.what,
        "hold": r.hold,
        "command": r.command,
        "run_id": (!r.run_id.is_empty()).then_some(&r.run_id),
        "until_ms": (r.until_ms > 0).then_some(r.until_ms),
        "why": (!r.why.is_empty()).then_some(&r.why),
    })
}

/// A trigger's remedy for people: offered with its command, holding, worked,
/// or did not clear the trigger (roll back).
pub fn remedy_line(trigger: &str, r: &wire::RemedyStatus, now_ms: i64) -> String {
    match r.state.as_str() {
        "offered" => format!(
            "remedy available for {trigger}: {} (then {} to clear) — `{}`",
            r.what, r.hold, r.command
        ),
        "holding" if r.until_ms > 0 => format!(
            "remedy `{}` applied (run {}): {trigger} has {} left to clear before the rollback",
            r.phase,
            r.run_id,
            human_ms((r.until_ms - now_ms).max(0))
        ),
        "holding" => format!("remedy `{}` is being applied (run {})", r.phase, r.run_id),
        "cleared" => format!(
            "remedy `{}` worked (run {}): {trigger} cleared, no rollback",
            r.phase, r.run_id
        ),
        _ => format!(
            "remedy did not clear {trigger}: {} — ROLL BACK (`backout rollback start`)",
            r.why
        ),
    }
}

pub fn signal_json(s: &wire::SignalStatus) -> Value {
    json!({
        "name": s.name,
        "source": s.source,
        "value": if s.known { json!(s.value) } else { Value::Null },
        "at_ms": s.at_ms,
        "error": (!s.error.is_empty()).then_some(&s.error),
        "set_by": (!s.set_by.is_empty()).then_some(&s.set_by),
        "note": (!s.note.is_empty()).then_some(&s.note),
        "hosts": (s.hosts_expected > 0).then(|| json!({ "heard": s.hosts_heard, "expected": s.hosts_expected })),
        "judgement": (!s.judgement.is_empty()).then_some(&s.judgement),
        "judge": (!s.judge_caption.is_empty()).then(|| json!({
            "caption": s.judge_caption,
            "canary": s.judge_canary,
            "baseline": s.judge_baseline,
        })),
    })
}

/// What fired a trigger, for people and for the journal: its condition,
/// the value it was evaluated on (and hosts heard), and when its breach
/// began: "error_rate > 5% at 0.12, breaching since 2026-01-15T02:03:04Z
/// (16 m 0 s)".
pub fn evidence(row: &wire::TriggerRow, now_ms: i64) -> String {
    let mut text = row.condition.clone();
    if !row.value.is_empty() {
        text.push_str(&format!(" at {}", row.value));
    }
    if row.hosts_expected > 0 {
        text.push_str(&format!(
            " ({} of {} hosts heard)",
            row.hosts_heard, row.hosts_expected
        ));
    }
    if row.since_ms > 0 {
        let since = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(row.since_ms.unsigned_abs()),
        );
        text.push_str(&format!(
            ", breaching since {since} ({})",
            human_ms(now_ms - row.since_ms)
        ));
    }
    if row.recent.len() > 1 {
        text.push_str(&format!(
            "; last {} values {} ({} to {})",
            row.recent.len(),
            crate::text::sparkline(&row.recent),
            row.recent.iter().copied().fold(f64::INFINITY, f64::min),
            row.recent.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        ));
    }
    text
}

/// The time the deciders have left, for people: ", decide within 12 m 3 s"
/// or ", DECISION OVERDUE by 40 s" (empty without a deadline).
pub fn time_left(decide_by_ms: i64, now_ms: i64) -> String {
    if decide_by_ms <= 0 {
        String::new()
    } else if decide_by_ms >= now_ms {
        format!(", decide within {}", human_ms(decide_by_ms - now_ms))
    } else {
        format!(", DECISION OVERDUE by {}", human_ms(now_ms - decide_by_ms))
    }
}

/// One line per fired trigger: what fired it and the time its deciders have
/// left, or how late they are ("decide within 12 m 3 s"); then its remedy.
pub fn deadline_lines(m: &wire::MatrixReply) -> Vec<String> {
    let mut lines = Vec::new();
    for r in m.rows.iter().filter(|r| r.state == "FIRED") {
        lines.push(format!(
            "{} fired ({}): {}; deciders {}{}",
            r.trigger,
            r.class,
            evidence(r, m.now_ms),
            r.deciders.join(" + "),
            time_left(r.decide_by_ms, m.now_ms)
        ));
    }
    lines.extend(remedy_lines(m));
    lines
}

/// Each trigger's remedy line.
pub fn remedy_lines(m: &wire::MatrixReply) -> Vec<String> {
    m.rows
        .iter()
        .filter_map(|r| Some(remedy_line(&r.trigger, r.remedy.as_ref()?, m.now_ms)))
        .collect()
}

/// The matrix, verdict and checklist for people.
pub fn print_text(m: &wire::MatrixReply, checklist: &Value) {
    outln!("\nDECISION MATRIX — {}", m.plan_name);
    let rows: Vec<Vec<String>> = m
        .rows
        .iter()
        .map(|r| {
            vec![
                r.trigger.clone(),
                r.class.clone(),
                {
                    let value = if r.value.is_empty() {
                        "?".to_string()
                    } else {
                        r.value.clone()
                    };
                    if r.hosts_expected > 0 {
                        format!(
                            "{value} ({}/{} hosts heard)",
                            r.hosts_heard, r.hosts_expected
                        )
                    } else {
                        value
                    }
                },
                r.condition.clone(),
                format!(
                    "{} / {}",
                    if r.state == "breaching" || r.state == "FIRED" {
                        human_ms(r.held_ms)
                    } else {
                        "-".into()
                    },
                    r.needed
                ),
                if r.state == "unknown" && r.unknown_since_ms > 0 {
                    // When its data went missing, not just that it did.
                    format!(
                        "unknown (no data for {})",
                        human_ms(m.now_ms - r.unknown_since_ms)
                    )
                } else {
                    r.state.clone()
                },
                r.deciders.join(" + "),
            ]
        })
        .collect();
    out!(
        "{}",
        table::render(
            &[
                "TRIGGER",
                "CLASS",
                "VALUE",
                "CONDITION",
                "HELD / NEEDED",
                "STATE",
                "DECIDERS"
            ],
            &rows
        )
    );
    let failing: Vec<&wire::SignalStatus> =
        m.signals.iter().filter(|s| !s.error.is_empty()).collect();
    for s in failing {
        outln!("  signal {} is unknown: {}", s.name, s.error);
    }
    for s in m.signals.iter().filter(|s| !s.judgement.is_empty()) {
        outln!("  canary {}: {}", s.name, s.judgement);
    }
    outln!();
    if m.verdict == "NO ACTION" {
        // A remedy that worked is why there is no action.
        for line in remedy_lines(m) {
            outln!("{line}");
        }
    }
    match m.verdict.as_str() {
        "NO ACTION" if m.unknown.is_empty() => outln!("VERDICT: NO ACTION"),
        "NO ACTION" => outln!(
            "VERDICT: NO ACTION, but {} trigger(s) have no data: {}",
            m.unknown.len(),
            m.unknown.join(", ")
        ),
        verdict => {
            outln!("VERDICT: {verdict} — decided by {}", m.deciders.join(" + "));
            for f in &m.fired_triggers {
                let why = m
                    .rows
                    .iter()
                    .find(|r| r.trigger == f.trigger)
                    .map(|r| format!(": {}", evidence(r, m.now_ms)))
                    .unwrap_or_default();
                outln!(
                    "  FIRED {} ({}){why}{} — deciders {}",
                    f.trigger,
                    f.class,
                    time_left(f.decide_by_ms, m.now_ms),
                    f.deciders.join(" + ")
                );
            }
            for line in remedy_lines(m).iter().filter(|_| verdict != "NO ACTION") {
                outln!("  {line}");
            }
            if !m.unknown.is_empty() {
                outln!(
                    "  and {} trigger(s) have no data: {}",
                    m.unknown.len(),
                    m.unknown.join(", ")
                );
            }
        }
    }
    outln!("\nCHECKLIST (plan 1.1)");
    for (key, label) in [
        ("widespread", "Issue is widespread"),
        ("started_after_deploy", "Issue started after the deployment"),
        (
            "quick_fix_under_10_minutes",
            "Quick fix possible (< 10 min)",
        ),
        ("business_impact", "Business impact assessed"),
    ] {
        outln!(
            "  [{}] {label}: {}",
            checklist[key]["answer"].as_str().unwrap_or("?"),
            checklist[key]["detail"].as_str().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fired_trigger_says_what_fired_it_and_the_time_left_or_how_late() {
        let row = |state: &str, decide_by_ms: i64| wire::TriggerRow {
            trigger: "High Error Rate".into(),
            class: "considered".into(),
            condition: "error_rate > 5%".into(),
            value: "0.12".into(),
            state: state.into(),
            deciders: vec!["technical-lead".into()],
            decide_by_ms,
            recent: vec![0.01, 0.02, 0.12, 0.12],
            ..Default::default()
        };
        let m = |rows| wire::MatrixReply {
            rows,
            now_ms: 100_000,
            ..Default::default()
        };
        let lines = deadline_lines(&m(vec![row("FIRED", 280_000), row("ok", 0)]));
        assert_eq!(
            lines,
            [
                "High Error Rate fired (considered): error_rate > 5% at 0.12; last 4 values ▁▂██ (0.01 to 0.12); deciders technical-lead, decide within 3 m 0 s"
            ]
        );
        let lines = deadline_lines(&m(vec![row("FIRED", 60_000)]));
        assert!(
            lines[0].ends_with(", DECISION OVERDUE by 40.0 s"),
            "{lines:?}"
        );
    }

    fn fired_since(since_ms: i64) -> wire::MatrixReply {
        wire::MatrixReply {
            has_plan: true,
            rows: vec![wire::TriggerRow {
                trigger: "Critical Security Breach".into(),
                state: "FIRED".into(),
                since_ms,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_breach_that_began_before_the_deploy_did_not_start_after_it() {
        let deploy = 1_000_000;
        let doc = checklist(&[], Some(&fired_since(deploy - 60_000)), Some(deploy));
        let answer = &doc["started_after_deploy"];
        assert_eq!(answer["answer"], "no", "{answer}");
        assert_eq!(answer["detail"], "first breach 1 m 0 s before the deploy");
        let doc = checklist(&[], Some(&fired_since(deploy + 1_300)), Some(deploy));
        assert_eq!(doc["started_after_deploy"]["answer"], "yes");
    }

    #[test]
    fn evidence_names_the_condition_value_hosts_and_onset() {
        let row = wire::TriggerRow {
            condition: "service_up == 0".into(),
            value: "0".into(),
            hosts_heard: 3,
            hosts_expected: 3,
            since_ms: 1_768_442_400_000,
            ..Default::default()
        };
        assert_eq!(
            evidence(&row, 1_768_442_400_000 + 31 * 60_000),
            "service_up == 0 at 0 (3 of 3 hosts heard), breaching since 2026-01-15T02:00:00Z (31 m 0 s)"
        );
        assert_eq!(time_left(1_000, 400), ", decide within 600 ms");
        assert_eq!(time_left(1_000, 61_000), ", DECISION OVERDUE by 1 m 0 s");
        assert_eq!(time_left(0, 61_000), "");
    }

    #[test]
    fn a_host_not_heard_is_neither_failing_nor_healthy() {
        let host = |agent: &str, state: &str, healthy: bool| json!({ "agent": agent, "state": state, "healthy": healthy });
        let hosts = [
            host("app-1", "ok", false),
            host("app-2", "ok", false),
            host("app-3", "unreachable", false),
        ];
        let doc = checklist(&hosts, None, None);
        assert_eq!(
            doc["widespread"]["detail"],
            "2 of 3 hosts failing (67%), 1 not heard (app-3: unreachable)"
        );
        assert_eq!(doc["widespread"]["answer"], "yes");
        // One failing, one not heard, of three: it could be either.
        let hosts = [
            host("app-1", "ok", false),
            host("app-2", "ok", true),
            host("app-3", "timeout", false),
        ];
        assert_eq!(
            checklist(&hosts, None, None)["widespread"]["answer"],
            "unknown"
        );
        let hosts = [host("app-1", "ok", true), host("app-2", "ok", true)];
        assert_eq!(checklist(&hosts, None, None)["widespread"]["answer"], "no");
    }
}
