//! Decision deadlines, kept by the coordinator itself (issue 18): every
//! evaluation of the matrix is shown to the fired triggers' episodes
//! (`backout_plan::episode`, pure). Each change (fired, decided by a
//! rollback run started since, overdue, cleared) is journaled outside runs
//! before it is applied; an overdue one then tells the trigger's deciders
//! and whom the plan's escalation rules name through the plan's channels
//! (`notify::tell_overdue`). At start the episodes are rebuilt from the
//! journal, so a restarted coordinator neither forgets an episode nor tells
//! anyone twice.

use std::sync::Arc;

use backout_plan::episode::{Change, Episodes};
use backout_plan::matrix::Row;
use backout_proto::now_ms;
use serde_json::{Value, json};

use super::Runs;
use super::notify;
use crate::journal::{JournalError, Record};

/// Rebuilds the episodes from the journal and starts watching the board's
/// evaluations (nothing to do without a plan).
pub fn start(runs: Arc<Runs>) -> Result<(), JournalError> {
    let Some(board) = runs.board.clone() else {
        return Ok(());
    };
    let mut episodes = Episodes::default();
    for entry in runs.journal.entries(Some(""))? {
        if let Some(change) = entry.record.change() {
            episodes.apply(&change);
        }
    }
    tracing::info!(open = ?episodes.open().keys().collect::<Vec<_>>(), "trigger episodes rebuilt from the journal");
    *runs.episodes.lock().unwrap_or_else(|p| p.into_inner()) = episodes.clone();
    board.keep_episodes(&episodes);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(board.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let view = board.matrix(now_ms());
            let Some(at_ms) = view.evaluated_at_ms else {
                continue;
            };
            // The runs are listed only when an open episode asks.
            let started = std::cell::OnceCell::new();
            let decision = |fired_at_ms: i64| {
                started
                    .get_or_init(|| {
                        runs.list()
                            .into_iter()
                            .filter(|s| !s.meta.dry_run)
                            .map(|s| (s.meta.started_at_ms, s.meta.id))
                            .collect::<Vec<(i64, String)>>()
                    })
                    .iter()
                    .filter(|(at, _)| *at >= fired_at_ms)
                    .min()
                    .map(|(_, id)| id.clone())
            };
            let changes = episodes.observe(&view.rows, at_ms, &board.plan().escalations, &decision);
            for change in changes {
                tracing::info!(
                    change = ?change,
                    rows = ?view.rows.iter().map(|r| (&r.trigger, r.standing.state.as_str(), r.value)).collect::<Vec<_>>(),
                    "trigger episode changed"
                );
                if let Err(e) = runs
                    .journal
                    .append(now_ms(), "", &Record::of_change(&change))
                {
                    // Not applied: the next evaluation tries again.
                    tracing::error!(error = %e, "cannot journal a trigger's episode");
                    break;
                }
                episodes.apply(&change);
                *runs.episodes.lock().unwrap_or_else(|p| p.into_inner()) = episodes.clone();
                board.keep_episodes(&episodes);
                let (moment, trigger, escalate_to) = match &change {
                    Change::Fired { trigger, .. } => (
                        notify::Moment::TriggerFired {
                            trigger: trigger.clone(),
                        },
                        trigger,
                        Vec::new(),
                    ),
                    Change::Overdue {
                        trigger,
                        escalate_to,
                        ..
                    } => {
                        tracing::warn!(trigger = %trigger, escalate_to = ?escalate_to, "decision overdue: telling the deciders");
                        (
                            notify::Moment::DecisionOverdue {
                                trigger: trigger.clone(),
                            },
                            trigger,
                            escalate_to.clone(),
                        )
                    }
                    _ => continue,
                };
                let at = view.rows.iter().position(|r| &r.trigger == trigger);
                let row = at.and_then(|i| view.rows.get(i));
                let recent = at
                    .and_then(|i| view.recent.get(i))
                    .cloned()
                    .unwrap_or_default();
                let facts = facts(&change, row, &recent, &board.plan().meta.name, at_ms);
                let runs = runs.clone();
                tokio::spawn(async move {
                    notify::tell_trigger(&runs, moment, &escalate_to, &facts).await;
                });
            }
        }
    });
    Ok(())
}

/// What a `trigger-fired` or `decision-overdue` template is filled from:
/// the trigger, what fired it (condition, value, since when, a text chart
/// of its recent values and their range), its deciders, and once overdue
/// the deadline, how late it is and whom it escalates to.
fn facts(change: &Change, row: Option<&Row>, recent: &[f64], plan: &str, now_ms: i64) -> Value {
    let value = row.and_then(|r| r.value).map(|v| match v {
        backout_plan::expr::Value::Bool(b) => b.to_string(),
        backout_plan::expr::Value::Number(n) => format!("{n}"),
    });
    let mut facts = json!({
        "plan": plan,
        "class": row.map(|r| format!("{:?}", r.class).to_lowercase()),
        "condition": row.map(|r| r.condition.clone()),
        "value": value,
        "since": row.and_then(|r| r.standing.since_ms).map(crate::text::rfc3339),
        "deciders": row.map(|r| r.deciders.join(" + ")),
        "chart": crate::text::sparkline(recent),
        "recent_low": recent.iter().copied().reduce(f64::min),
        "recent_high": recent.iter().copied().reduce(f64::max),
    });
    let more = match change {
        Change::Fired {
            trigger,
            fired_at_ms,
            decide_by_ms,
            ..
        } => json!({
            "moment": "trigger-fired",
            "trigger": trigger,
            "fired_at": crate::text::rfc3339(*fired_at_ms),
            "decide_by": decide_by_ms.map(crate::text::rfc3339),
        }),
        Change::Overdue {
            trigger,
            fired_at_ms,
            decide_by_ms,
            deciders,
            escalate_to,
        } => json!({
            "moment": "decision-overdue",
            "trigger": trigger,
            "deciders": deciders.join(" + "),
            "fired_at": crate::text::rfc3339(*fired_at_ms),
            "decide_by": crate::text::rfc3339(*decide_by_ms),
            "late": crate::text::human_ms(now_ms.saturating_sub(*decide_by_ms)),
            "escalate_to": escalate_to.join(" + "),
        }),
        _ => json!({}),
    };
    if let (Some(map), Value::Object(more)) = (facts.as_object_mut(), more) {
        map.extend(more);
    }
    facts
}
