//! A fired trigger's episode: from the evaluation that fired it until data
//! says it no longer holds. Its deciders have until the deadline
//! (`[decide_within]`) to decide (a rollback run started since it fired); if
//! they have not, they are told again and the plan's escalation rules apply,
//! once per episode.
//!
//! Pure: [`Episodes::observe`] says what changed at one evaluation and
//! [`Episodes::apply`] folds a change in, so the coordinator journals each
//! change before applying it and rebuilds the same episodes from its journal
//! after a restart. An episode outlives missing data, a trigger that is only
//! breaching again (its hold not yet met after a restart), and the
//! coordinator itself: only a row that is `ok` ends it.

use std::collections::BTreeMap;

use crate::matrix::{Row, escalate_for};
use crate::sections::Escalation;
use crate::window::{Standing, State};

/// One open episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub trigger: String,
    /// When its breach began.
    pub since_ms: Option<i64>,
    /// When it met its hold.
    pub fired_at_ms: i64,
    /// When its deciders must have decided (None: the plan sets no deadline).
    pub decide_by_ms: Option<i64>,
    /// The run that decided it, once one started.
    pub decided_by_run: Option<String>,
    /// Its missed deadline has been told and escalated.
    pub overdue: bool,
}

/// What one evaluation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The trigger fired: a new episode.
    Fired {
        trigger: String,
        since_ms: Option<i64>,
        fired_at_ms: i64,
        decide_by_ms: Option<i64>,
    },
    /// A rollback run started since it fired: the deciders decided.
    Decided {
        trigger: String,
        fired_at_ms: i64,
        run_id: String,
    },
    /// Its deadline passed with no decision: tell its deciders again and
    /// page whom the escalation rules name.
    Overdue {
        trigger: String,
        fired_at_ms: i64,
        decide_by_ms: i64,
        deciders: Vec<String>,
        escalate_to: Vec<String>,
    },
    /// Data says it no longer holds: the episode ends.
    Cleared { trigger: String, fired_at_ms: i64 },
}

impl Episode {
    /// What its trigger's row shows while the episode is open and the
    /// condition holds (breaching or fired) at `at_ms`: the episode's onset
    /// and firing time when they are older than the tracker's, which a
    /// restarted coordinator began again. So `assess` says the onset the
    /// messages and the report keep, and the deadline it was given.
    pub fn keep_onset(&self, standing: &mut Standing, at_ms: i64) {
        if !matches!(standing.state, State::Breaching | State::Fired) {
            return;
        }
        if let Some(since) = self.since_ms
            && standing.since_ms.is_none_or(|s| since < s)
        {
            standing.since_ms = Some(since);
            standing.held =
                std::time::Duration::from_millis(u64::try_from(at_ms - since).unwrap_or(0));
        }
        if standing.state == State::Fired
            && standing.fired_at_ms.is_none_or(|f| self.fired_at_ms < f)
        {
            standing.fired_at_ms = Some(self.fired_at_ms);
        }
    }
}

/// Every trigger's open episode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Episodes {
    open: BTreeMap<String, Episode>,
    /// Each trigger's newest ended episode: when it fired.
    ended: BTreeMap<String, i64>,
}

impl Episodes {
    /// The open episode of `trigger`.
    pub fn get(&self, trigger: &str) -> Option<&Episode> {
        self.open.get(trigger)
    }

    /// When `trigger`'s open episode fired, else its newest ended one
    /// (a remedy's attempt belongs to the episode it was tried in).
    pub fn latest_fired_at(&self, trigger: &str) -> Option<i64> {
        self.open
            .get(trigger)
            .map(|e| e.fired_at_ms)
            .or_else(|| self.ended.get(trigger).copied())
    }

    /// What changed at the evaluation at `at_ms` that gave `rows`.
    /// `decision(fired_at_ms)` names the first rollback run started at or
    /// after that time, if any. Changes nothing: apply each change once it
    /// is recorded. A new episode is judged for its deadline from the next
    /// evaluation on.
    pub fn observe(
        &self,
        rows: &[Row],
        at_ms: i64,
        escalations: &[Escalation],
        decision: &dyn Fn(i64) -> Option<String>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for row in rows {
            let open = self.open.get(&row.trigger);
            match (row.standing.state, open) {
                (State::Fired, None) => {
                    if let Some(fired_at_ms) = row.standing.fired_at_ms {
                        changes.push(Change::Fired {
                            trigger: row.trigger.clone(),
                            since_ms: row.standing.since_ms,
                            fired_at_ms,
                            decide_by_ms: row.decide_by_ms,
                        });
                    }
                }
                (State::Ok, Some(episode)) => changes.push(Change::Cleared {
                    trigger: row.trigger.clone(),
                    fired_at_ms: episode.fired_at_ms,
                }),
                (_, Some(episode)) if episode.decided_by_run.is_none() => {
                    if let Some(run_id) = decision(episode.fired_at_ms) {
                        changes.push(Change::Decided {
                            trigger: row.trigger.clone(),
                            fired_at_ms: episode.fired_at_ms,
                            run_id,
                        });
                        continue;
                    }
                    let Some(by) = episode.decide_by_ms else {
                        continue;
                    };
                    if episode.overdue || at_ms < by {
                        continue;
                    }
                    // The rules judged on the episode's own onset and
                    // deadline (a restarted coordinator's row has newer ones).
                    let mut judged = row.clone();
                    judged.standing.since_ms = episode.since_ms;
                    judged.decide_by_ms = Some(by);
                    changes.push(Change::Overdue {
                        trigger: row.trigger.clone(),
                        fired_at_ms: episode.fired_at_ms,
                        decide_by_ms: by,
                        deciders: row.deciders.clone(),
                        escalate_to: escalate_for(escalations, &judged, at_ms),
                    });
                }
                _ => {}
            }
        }
        changes
    }

    /// Folds one change in (as observed, or as read back from a journal).
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Fired {
                trigger,
                since_ms,
                fired_at_ms,
                decide_by_ms,
            } => {
                self.open.insert(
                    trigger.clone(),
                    Episode {
                        trigger: trigger.clone(),
                        since_ms: *since_ms,
                        fired_at_ms: *fired_at_ms,
                        decide_by_ms: *decide_by_ms,
                        decided_by_run: None,
                        overdue: false,
                    },
                );
            }
            Change::Decided {
                trigger,
                fired_at_ms,
                run_id,
            } => {
                if let Some(e) = self.episode_mut(trigger, *fired_at_ms) {
                    e.decided_by_run = Some(run_id.clone());
                }
            }
            Change::Overdue {
                trigger,
                fired_at_ms,
                ..
            } => {
                if let Some(e) = self.episode_mut(trigger, *fired_at_ms) {
                    e.overdue = true;
                }
            }
            Change::Cleared {
                trigger,
                fired_at_ms,
            } => {
                if self.episode_mut(trigger, *fired_at_ms).is_some() {
                    self.open.remove(trigger);
                    self.ended.insert(trigger.clone(), *fired_at_ms);
                }
            }
        }
    }

    /// Every open episode, by trigger.
    pub fn open(&self) -> &BTreeMap<String, Episode> {
        &self.open
    }

    fn episode_mut(&mut self, trigger: &str, fired_at_ms: i64) -> Option<&mut Episode> {
        self.open
            .get_mut(trigger)
            .filter(|e| e.fired_at_ms == fired_at_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::expr::{Expr, Truth};
    use crate::matrix;
    use crate::model::{Class, Trigger, UnknownMeans};
    use crate::window::{Hold, Sample, Tracker};

    /// After a restart the tracker's onset is new; the open episode's
    /// (journaled) onset and firing time are the ones a row shows, while
    /// the condition holds, and only then.
    #[test]
    fn an_open_episode_keeps_its_onset_over_a_restarted_tracker() {
        let episode = Episode {
            trigger: "High Error Rate".into(),
            since_ms: Some(1_000),
            fired_at_ms: 4_000,
            decide_by_ms: Some(34_000),
            decided_by_run: None,
            overdue: false,
        };
        let standing = |state: State, since_ms: Option<i64>, fired_at_ms: Option<i64>| Standing {
            state,
            since_ms,
            held: Duration::from_millis(500),
            consecutive: 3,
            fired_at_ms,
            unknown_since_ms: None,
        };
        let mut fired = standing(State::Fired, Some(90_000), Some(90_000));
        episode.keep_onset(&mut fired, 100_000);
        assert_eq!(fired.since_ms, Some(1_000));
        assert_eq!(fired.held, Duration::from_millis(99_000));
        assert_eq!(fired.fired_at_ms, Some(4_000));
        let mut breaching = standing(State::Breaching, Some(90_000), None);
        episode.keep_onset(&mut breaching, 100_000);
        assert_eq!(
            (breaching.since_ms, breaching.fired_at_ms),
            (Some(1_000), None)
        );
        for state in [State::Ok, State::Unknown] {
            let mut other = standing(state, None, None);
            episode.keep_onset(&mut other, 100_000);
            assert_eq!(other, standing(state, None, None));
        }
        // A tracker that knows an older onset keeps it.
        let mut older = standing(State::Fired, Some(500), Some(600));
        episode.keep_onset(&mut older, 100_000);
        assert_eq!((older.since_ms, older.fired_at_ms), (Some(500), Some(600)));
    }

    fn trigger() -> Trigger {
        Trigger {
            name: "High Error Rate".into(),
            class: Class::Considered,
            when_text: "errors".into(),
            when: Expr::parse("errors").unwrap(),
            hold: Hold::Immediately,
            deciders: vec!["technical-lead".into()],
            unknown: UnknownMeans::Unknown,
            auto_rollback: false,
            decide_within: Some(Duration::from_secs(30)),
            remedy: None,
        }
    }

    fn escalations() -> Vec<Escalation> {
        vec![Escalation {
            who: "CTO".into(),
            when_text: "decision_overdue".into(),
            when: Expr::parse("decision_overdue").unwrap(),
            channels: vec![],
        }]
    }

    /// Evaluates the trigger over `samples` and lets the episodes see every
    /// evaluation, applying what they say; returns every change.
    fn run(
        episodes: &mut Episodes,
        samples: &[(i64, Truth)],
        decision: &dyn Fn(i64) -> Option<String>,
    ) -> Vec<Change> {
        let t = trigger();
        let mut tracker = Tracker::default();
        let mut all = Vec::new();
        for &(at_ms, truth) in samples {
            tracker.push(Sample { at_ms, truth }, t.hold);
            let row = matrix::row(
                &t,
                tracker.standing(t.hold, at_ms, Duration::from_secs(60)),
                None,
                None,
            );
            for change in episodes.observe(&[row], at_ms, &escalations(), decision) {
                episodes.apply(&change);
                all.push(change);
            }
        }
        all
    }

    fn no_run(_: i64) -> Option<String> {
        None
    }

    #[test]
    fn a_missed_deadline_is_escalated_once_per_episode() {
        let mut episodes = Episodes::default();
        let samples: Vec<(i64, Truth)> = (0..100).map(|i| (i * 1_000, Truth::True)).collect();
        let changes = run(&mut episodes, &samples, &no_run);
        assert_eq!(
            changes,
            [
                Change::Fired {
                    trigger: "High Error Rate".into(),
                    since_ms: Some(0),
                    fired_at_ms: 0,
                    decide_by_ms: Some(30_000),
                },
                Change::Overdue {
                    trigger: "High Error Rate".into(),
                    fired_at_ms: 0,
                    decide_by_ms: 30_000,
                    deciders: vec!["technical-lead".into()],
                    escalate_to: vec!["CTO".into()],
                },
            ]
        );
        // It recovers, then fires again: a new episode, a new deadline.
        let again = run(
            &mut episodes,
            &[
                (200_000, Truth::False),
                (201_000, Truth::True),
                (231_000, Truth::True),
            ],
            &no_run,
        );
        assert!(matches!(again[0], Change::Cleared { fired_at_ms: 0, .. }));
        assert_eq!(
            episodes.latest_fired_at("High Error Rate"),
            Some(201_000),
            "the open episode, once the ended one (at 0) was followed by a new one"
        );
        episodes.apply(&Change::Cleared {
            trigger: "High Error Rate".into(),
            fired_at_ms: 201_000,
        });
        assert!(episodes.get("High Error Rate").is_none());
        assert_eq!(
            episodes.latest_fired_at("High Error Rate"),
            Some(201_000),
            "an ended episode is still the latest one"
        );
        assert!(matches!(
            again[1],
            Change::Fired {
                fired_at_ms: 201_000,
                ..
            }
        ));
        assert!(matches!(
            again[2],
            Change::Overdue {
                decide_by_ms: 231_000,
                ..
            }
        ));
    }

    #[test]
    fn an_episode_survives_missing_data_and_a_restart() {
        let mut episodes = Episodes::default();
        let changes = run(
            &mut episodes,
            &[(0, Truth::True), (10_000, Truth::Unknown)],
            &no_run,
        );
        assert_eq!(changes.len(), 1, "missing data ends nothing: {changes:?}");
        // A restarted coordinator rebuilds the episodes from what it recorded.
        let mut rebuilt = Episodes::default();
        for change in &changes {
            rebuilt.apply(change);
        }
        assert_eq!(rebuilt, episodes);
        // Its new tracker fires again at 40 s: the same episode, whose
        // deadline (30 s) has passed. Told once, with the first onset.
        let later = run(
            &mut rebuilt,
            &[(40_000, Truth::True), (41_000, Truth::True)],
            &no_run,
        );
        assert_eq!(later.len(), 1, "{later:?}");
        assert!(matches!(
            later[0],
            Change::Overdue {
                fired_at_ms: 0,
                decide_by_ms: 30_000,
                ..
            }
        ));
        assert!(rebuilt.get("High Error Rate").unwrap().overdue);
    }

    #[test]
    fn a_rollback_started_since_it_fired_is_a_decision() {
        let mut episodes = Episodes::default();
        let decision = |fired_at: i64| (fired_at <= 5_000).then(|| "r-1".to_string());
        let samples: Vec<(i64, Truth)> = (0..60).map(|i| (i * 1_000, Truth::True)).collect();
        let changes = run(&mut episodes, &samples, &decision);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(
            changes[1],
            Change::Decided {
                trigger: "High Error Rate".into(),
                fired_at_ms: 0,
                run_id: "r-1".into(),
            }
        );
        // Without a deadline in the plan: fired, never overdue.
        let mut episodes = Episodes::default();
        let mut t = trigger();
        t.decide_within = None;
        let mut tracker = Tracker::default();
        tracker.push(
            Sample {
                at_ms: 0,
                truth: Truth::True,
            },
            t.hold,
        );
        let row = matrix::row(&t, tracker.standing(t.hold, 0, Duration::MAX), None, None);
        for change in episodes.observe(std::slice::from_ref(&row), 0, &escalations(), &no_run) {
            episodes.apply(&change);
        }
        assert!(
            episodes
                .observe(&[row], i64::MAX, &escalations(), &no_run)
                .is_empty()
        );
    }
}
