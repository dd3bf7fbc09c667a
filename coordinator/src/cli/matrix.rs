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
    let failing = hosts.iter().filter(|h| h["healthy"] != json!(true)).count();
    let widespread = if hosts.is_empty() {
        json!({ "answer": "unknown", "detail": "no host answered" })
    } else {
        let share = failing as f64 / hosts.len() as f64;
        json!({
            "answer": if share >= 0.5 { "yes" } else if failing == 0 { "no" } else { "partly" },
            "detail": format!("{failing} of {} hosts failing ({:.0}%)", hosts.len(), share * 100.0),
            "share_failing": share,
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
            "consecutive": r.consecutive,
            "deciders": r.deciders,
        })).collect::<Vec<_>>(),
        "signals": m.signals.iter().map(signal_json).collect::<Vec<_>>(),
    })
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
    })
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
                if r.value.is_empty() {
                    "?".into()
                } else {
                    r.value.clone()
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
                r.state.clone(),
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
    outln!();
    match m.verdict.as_str() {
        "NO ACTION" if m.unknown.is_empty() => outln!("VERDICT: NO ACTION"),
        "NO ACTION" => outln!(
            "VERDICT: NO ACTION, but {} trigger(s) have no data: {}",
            m.unknown.len(),
            m.unknown.join(", ")
        ),
        verdict => outln!(
            "VERDICT: {verdict} ({}) — decided by {}",
            m.fired.join(", "),
            m.deciders.join(" + ")
        ),
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
