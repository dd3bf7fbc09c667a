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
use crate::signals::board::Board;

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
    board.keep_episodes(&episodes);
    *runs.episodes.lock().unwrap_or_else(|p| p.into_inner()) = episodes;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(board.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            record_now(&runs, &board);
        }
    });
    Ok(())
}

/// Shows the board's evaluation now to the episodes, journals each change
/// before applying it, and tells whom a fired or overdue episode concerns.
/// Called every tick, and by [`Runs::start`] before a run starts: a trigger
/// that `assess` shows fired can be decided (or its remedy run) before the
/// next tick, and a coordinator killed in between must still know, once
/// restarted, that the run came after the firing (issue 20: the remedy's
/// attempt was lost when its episode had not been journaled yet).
pub(super) fn record_now(runs: &Arc<Runs>, board: &Board) {
    let view = board.matrix(now_ms());
    let Some(at_ms) = view.evaluated_at_ms else {
        return;
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
    // Held while observing, journaling and applying: the tick and a
    // starting run never record the same change twice.
    let mut episodes = runs.episodes.lock().unwrap_or_else(|p| p.into_inner());
    let changes = episodes.observe(&view.rows, at_ms, &board.plan().escalations, &decision);
    let mut tell = Vec::new();
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
        board.keep_episodes(&episodes);
        tell.push(change);
    }
    drop(episodes);
    for change in tell {
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
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    notify::tell_trigger(&runs, moment, &escalate_to, &facts).await;
                });
            }
            Err(_) => {
                tracing::warn!(trigger = %trigger, "no runtime to send the trigger's messages")
            }
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;
    use std::time::Duration;

    use backout_plan::expr::Value;
    use backout_plan::model::Plan;
    use backout_plan::remedy::{self, RunBrief};
    use backout_proto::command::CommandSigner;

    use super::*;
    use crate::fleet::dispatch::Dispatcher;
    use crate::fleet::registry::Registry;
    use crate::journal::Journal;
    use crate::runs::StartRun;
    use crate::signals::board::Board;

    const PLAN: &str = r#"
[plan]
name = "test"
[[host]]
id = "app-1"
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
[approvals]
run = ["technical-lead"]
[signals.error_rate]
prometheus = { url = "http://127.0.0.1:9", query = "x" }
interval = "500ms"
[[trigger]]
name = "High Error Rate"
class = "considered"
when = "error_rate > 5%"
for = "2s"
deciders = ["technical-lead"]
remedy = "flags-off"
remedy_hold = "3s"
remedy_approvals = ["release-manager"]
[[phase]]
id = "flags-off"
name = "Feature flags off"
optional = true
[[phase.step]]
id = "off"
plugin = "flags"
action = "off"
on = "app-1"
params = { api_base = "http://127.0.0.1:9", project = "default", environment = "production", flags = ["new-checkout"] }
"#;

    /// Issue 20's restart defect, without I/O beyond a journal file: the
    /// trigger fires and its remedy's run starts before the episodes' next
    /// tick. The run's start journals the episode first, so a coordinator
    /// killed right after (its tracker begun again, firing later) rebuilds
    /// an episode the run came after: the remedy's attempt is not lost.
    #[tokio::test]
    async fn a_run_started_before_the_next_tick_journals_the_firing_first() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(&dir.path().join("j.db")).unwrap());
        let registry = Arc::new(Registry::default());
        let dispatcher = Arc::new(Dispatcher::new(
            CommandSigner::generate(),
            Duration::from_secs(60),
            registry.clone(),
            BTreeMap::new(),
            journal.clone(),
        ));
        let plan = Plan::parse(std::path::Path::new("t.toml"), PLAN).unwrap();
        let board = Arc::new(Board::new(plan.clone(), Duration::from_millis(500)));
        let now = now_ms();
        for back in [3_000, 2_000, 1_000, 0] {
            board.record("error_rate", now - back, Some(Value::Number(0.12)), None);
            board.evaluate(now - back);
        }
        let runs = Arc::new(Runs::new(
            journal.clone(),
            dispatcher,
            registry,
            Some(board),
        ));
        // No tick has run (deadline::start is not called): only the start.
        let started = runs
            .start(
                "dave",
                &StartRun {
                    reason: "remedy for High Error Rate".into(),
                    to_version: String::new(),
                    phases: vec!["flags-off".into()],
                    dry_run: false,
                    drill: false,
                    undo: None,
                },
            )
            .unwrap();
        let entries = journal.entries(None).unwrap();
        let fired = entries
            .iter()
            .position(|e| matches!(e.record.change(), Some(Change::Fired { .. })))
            .expect("the firing is journaled");
        let created = entries
            .iter()
            .position(|e| matches!(e.record, Record::RunCreated(_)))
            .expect("the run is journaled");
        assert!(fired < created, "{entries:?}");
        // A restarted coordinator rebuilds the episode from the journal; its
        // new tracker fires later, but the journaled episode is the one.
        let mut rebuilt = Episodes::default();
        for entry in &journal.entries(Some("")).unwrap() {
            if let Some(change) = entry.record.change() {
                rebuilt.apply(&change);
            }
        }
        let fired_at = rebuilt.latest_fired_at("High Error Rate").unwrap();
        assert!(fired_at <= started.meta.started_at_ms);
        let remedy = plan.triggers[0].remedy.clone().unwrap();
        let brief = RunBrief {
            id: started.meta.id.clone(),
            phases: vec!["flags-off".into()],
            dry_run: false,
            started_at_ms: started.meta.started_at_ms,
            ended: Some((started.meta.started_at_ms + 300, true)),
        };
        let attempt = remedy::attempt(&remedy, fired_at, &[brief]).unwrap();
        assert_eq!(attempt.run_id, started.meta.id);
        let verdict = remedy::verdict(
            &remedy,
            true,
            Some(&attempt),
            started.meta.started_at_ms + 10_000,
        );
        assert!(
            matches!(verdict, remedy::Verdict::RollBack { .. }),
            "{verdict:?}"
        );
    }
}
