//! The signal board: the latest value and bounded history of every signal of
//! the plan, every trigger's evaluations folded into a [`Tracker`] (so a
//! breach's onset is kept however long it lasts), and the last evaluation's
//! snapshot. No I/O: samplers and the Control service write to it, the
//! evaluator ticks it, and `matrix` reads the snapshot, so a row's value,
//! state, held time and the verdict always come from the same evaluation.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use backout_plan::episode::{Episode, Episodes};
use backout_plan::expr::Value;
use backout_plan::history::{Events, Point, Ring, capacity_for};
use backout_plan::judge::Judgement;
use backout_plan::matrix::{self, Heard, Row, Verdict};
use backout_plan::model::{Plan, Signal, Source};
use backout_plan::window::{Sample, Tracker};

use crate::journal::{JudgeFigures, MatrixSummary, Record, SignalChange, TriggerChange};

/// What is known of one signal.
#[derive(Debug, Clone)]
pub struct SignalView {
    pub name: String,
    pub source: &'static str,
    /// The current value; None when unknown or stale.
    pub value: Option<Value>,
    pub at_ms: Option<i64>,
    pub error: Option<String>,
    pub set_by: Option<String>,
    pub note: Option<String>,
    /// For a probe: how many of the hosts expected to answer did.
    pub heard: Option<Heard>,
    /// For a canary judge: its last judgement.
    pub judgement: Option<Judgement>,
}

struct SignalState {
    spec: Signal,
    history: Ring<Point>,
    events: Events,
    error: Option<String>,
    set_by: Option<String>,
    note: Option<String>,
    heard: Option<Heard>,
    judgement: Option<Judgement>,
}

/// The matrix as one evaluation saw it.
#[derive(Debug, Clone)]
pub struct MatrixView {
    pub rows: Vec<Row>,
    /// Each row's compared signal's recent values, oldest first (empty
    /// when the condition compares no one signal).
    pub recent: Vec<Vec<f64>>,
    pub verdict: Verdict,
    pub signals: Vec<SignalView>,
    /// When the evaluation ran (None: the evaluator has not run lately, and
    /// every trigger is unknown).
    pub evaluated_at_ms: Option<i64>,
}

/// Errors for people setting signals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    #[error("the plan has no signal `{0}`")]
    Unknown(String),
    #[error("signal `{name}` comes from {origin}; only manual signals can be set by hand")]
    NotManual { name: String, origin: &'static str },
    #[error("signal `{0}` is not a counted-events signal (events = true)")]
    NotEvents(String),
    #[error("`{0}` is not a value: use true, false or a number")]
    BadValue(String),
}

pub struct Board {
    plan: Plan,
    /// How often triggers are evaluated.
    pub tick: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    signals: BTreeMap<String, SignalState>,
    /// Every trigger's evaluations, folded, in plan order.
    triggers: Vec<Tracker>,
    /// The last evaluation.
    snapshot: Option<MatrixView>,
    /// Each trigger's state at the last evaluation (None before the first).
    states: Vec<Option<&'static str>>,
    /// Whether each signal had data at the last evaluation.
    known: BTreeMap<String, bool>,
    /// The open episodes as journaled (`runs/deadline.rs` keeps them here):
    /// their rows show the episode's onset and firing time.
    episodes: BTreeMap<String, Episode>,
}

fn source_name(source: &Source) -> &'static str {
    match source {
        Source::Prometheus { .. } => "prometheus",
        Source::Probe { .. } => "probe",
        Source::Canary { .. } => "canary",
        Source::Manual => "manual",
        Source::Events { .. } => "events",
    }
}

/// How many recent values a row carries for its chart.
pub const RECENT: usize = 30;

/// The signal a trigger's threshold compares, or the only one it reads.
fn compared(trigger: &backout_plan::model::Trigger) -> Option<String> {
    trigger
        .when
        .threshold()
        .map(|(signal, _, _)| signal)
        .or_else(|| {
            let signals = trigger.when.signals();
            (signals.len() == 1)
                .then(|| signals.into_iter().next())
                .flatten()
        })
}

/// The last [`RECENT`] known values of a history, oldest first (true is 1).
fn recent(history: &Ring<Point>) -> Vec<f64> {
    let mut values: Vec<f64> = history
        .iter()
        .rev()
        .filter_map(|p| match p.value? {
            Value::Number(n) => Some(n),
            Value::Bool(b) => Some(f64::from(u8::from(b))),
        })
        .take(RECENT)
        .collect();
    values.reverse();
    values
}

/// Parses a value typed by a person: true, false, yes, no, or a number.
pub fn parse_value(text: &str) -> Result<Value, BoardError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(Value::Bool(true)),
        "false" | "no" | "off" => Ok(Value::Bool(false)),
        other => other
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Value::Number)
            .ok_or_else(|| BoardError::BadValue(text.to_string())),
    }
}

impl Board {
    pub fn new(plan: Plan, tick: Duration) -> Board {
        let signals = plan
            .signals
            .values()
            .map(|s| {
                let capacity = capacity_for(Duration::from_secs(3600), s.interval);
                (
                    s.name.clone(),
                    SignalState {
                        spec: s.clone(),
                        history: Ring::new(capacity),
                        events: Events::default(),
                        error: None,
                        set_by: None,
                        note: None,
                        heard: None,
                        judgement: None,
                    },
                )
            })
            .collect();
        let triggers = vec![Tracker::default(); plan.triggers.len()];
        let states = vec![None; plan.triggers.len()];
        Board {
            plan,
            tick,
            inner: Mutex::new(Inner {
                signals,
                triggers,
                snapshot: None,
                states,
                known: BTreeMap::new(),
                episodes: BTreeMap::new(),
            }),
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a sampled value (None: the source could not say, with why).
    pub fn record(&self, name: &str, at_ms: i64, value: Option<Value>, error: Option<String>) {
        self.record_probe(name, at_ms, value, error, None);
    }

    /// Records a probe's value with how many hosts were heard.
    pub fn record_probe(
        &self,
        name: &str,
        at_ms: i64,
        value: Option<Value>,
        error: Option<String>,
        heard: Option<Heard>,
    ) {
        if let Some(state) = self.lock().signals.get_mut(name) {
            state.history.push(Point { at_ms, value });
            state.error = error;
            state.heard = heard;
        }
    }

    /// Records a canary judge's judgement: the signal's value is its call.
    pub fn record_judged(&self, name: &str, at_ms: i64, judgement: Judgement) {
        if let Some(state) = self.lock().signals.get_mut(name) {
            state.history.push(Point {
                at_ms,
                value: Some(Value::Number(judgement.call.code())),
            });
            state.error = None;
            state.judgement = Some(judgement);
        }
    }

    /// Checks that `name` is a manual signal and `text` a value, changing nothing
    /// (so the change can be journaled before it is applied).
    pub fn validate_manual(&self, name: &str, text: &str) -> Result<Value, BoardError> {
        let value = parse_value(text)?;
        let inner = self.lock();
        let state = inner
            .signals
            .get(name)
            .ok_or_else(|| BoardError::Unknown(name.into()))?;
        if state.spec.source != Source::Manual {
            return Err(BoardError::NotManual {
                name: name.into(),
                origin: source_name(&state.spec.source),
            });
        }
        Ok(value)
    }

    /// Checks that `name` is a counted-events signal, changing nothing.
    pub fn validate_events(&self, name: &str) -> Result<(), BoardError> {
        let inner = self.lock();
        let state = inner
            .signals
            .get(name)
            .ok_or_else(|| BoardError::Unknown(name.into()))?;
        if matches!(state.spec.source, Source::Events { .. }) {
            Ok(())
        } else {
            Err(BoardError::NotEvents(name.into()))
        }
    }

    /// Sets a manual signal, recording who did it and why.
    pub fn set_manual(
        &self,
        name: &str,
        text: &str,
        who: &str,
        note: &str,
        at_ms: i64,
    ) -> Result<SignalView, BoardError> {
        let value = parse_value(text)?;
        {
            let mut inner = self.lock();
            let state = inner
                .signals
                .get_mut(name)
                .ok_or_else(|| BoardError::Unknown(name.into()))?;
            if state.spec.source != Source::Manual {
                return Err(BoardError::NotManual {
                    name: name.into(),
                    origin: source_name(&state.spec.source),
                });
            }
            state.history.push(Point {
                at_ms,
                value: Some(value),
            });
            state.set_by = Some(who.to_string());
            state.note = (!note.is_empty()).then(|| note.to_string());
        }
        self.view(name, at_ms)
            .ok_or_else(|| BoardError::Unknown(name.into()))
    }

    /// Records `count` events of a counted-events signal.
    pub fn record_events(
        &self,
        name: &str,
        count: u32,
        who: &str,
        note: &str,
        at_ms: i64,
    ) -> Result<SignalView, BoardError> {
        {
            let mut inner = self.lock();
            let state = inner
                .signals
                .get_mut(name)
                .ok_or_else(|| BoardError::Unknown(name.into()))?;
            if !matches!(state.spec.source, Source::Events { .. }) {
                return Err(BoardError::NotEvents(name.into()));
            }
            state.events.record(at_ms, count);
            state.set_by = Some(who.to_string());
            state.note = (!note.is_empty()).then(|| note.to_string());
        }
        self.view(name, at_ms)
            .ok_or_else(|| BoardError::Unknown(name.into()))
    }

    fn current(state: &mut SignalState, now_ms: i64) -> (Option<Value>, Option<i64>) {
        match state.spec.source {
            // A count is always known: no events is zero.
            Source::Events { window } => (
                Some(Value::Number(state.events.count(now_ms, window) as f64)),
                Some(now_ms),
            ),
            _ => match state.history.last() {
                Some(point) => {
                    let age = now_ms.saturating_sub(point.at_ms);
                    let stale = u128::try_from(age.max(0)).unwrap_or(0)
                        > state.spec.stale_after.as_millis();
                    (if stale { None } else { point.value }, Some(point.at_ms))
                }
                None => (None, None),
            },
        }
    }

    fn view_of(state: &mut SignalState, now_ms: i64) -> SignalView {
        let (value, at_ms) = Self::current(state, now_ms);
        SignalView {
            name: state.spec.name.clone(),
            source: source_name(&state.spec.source),
            value,
            at_ms,
            error: state.error.clone(),
            set_by: state.set_by.clone(),
            note: state.note.clone(),
            heard: state.heard,
            judgement: state.judgement.clone(),
        }
    }

    pub fn view(&self, name: &str, now_ms: i64) -> Option<SignalView> {
        let mut inner = self.lock();
        inner
            .signals
            .get_mut(name)
            .map(|s| Self::view_of(s, now_ms))
    }

    /// Evaluates every trigger on the current values, folds the sample into
    /// its tracker and keeps the result as the snapshot `matrix` returns.
    /// Returns what changed since the evaluation before, for the journal:
    /// each trigger whose state moved and each signal whose data came back
    /// or went missing (the first evaluation reports every state it finds).
    pub fn evaluate(&self, now_ms: i64) -> Vec<Record> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let values: BTreeMap<String, Option<Value>> = inner
            .signals
            .iter_mut()
            .map(|(name, state)| (name.clone(), Self::current(state, now_ms).0))
            .collect();
        for (trigger, tracker) in self.plan.triggers.iter().zip(inner.triggers.iter_mut()) {
            let truth = trigger
                .when
                .eval(&|name| values.get(name).copied().flatten());
            tracker.push(
                Sample {
                    at_ms: now_ms,
                    truth: matrix::interpret(trigger, truth),
                },
                trigger.hold,
            );
        }
        let snapshot = self.snapshot(inner, now_ms, &values);
        let changes = self.changes(inner, &snapshot);
        inner.snapshot = Some(snapshot);
        changes
    }

    fn changes(&self, inner: &mut Inner, snapshot: &MatrixView) -> Vec<Record> {
        let mut out = Vec::new();
        for signal in &snapshot.signals {
            let known = signal.value.is_some();
            if inner.known.insert(signal.name.clone(), known) != Some(known) {
                out.push(Record::SignalChanged(SignalChange {
                    signal: signal.name.clone(),
                    known,
                    value: signal.value.map(|v| v.to_string()),
                    error: signal.error.clone().filter(|_| !known),
                }));
            }
        }
        for ((row, last), trigger) in snapshot
            .rows
            .iter()
            .zip(inner.states.iter_mut())
            .zip(&self.plan.triggers)
        {
            let to = row.standing.state.as_str();
            if *last == Some(to) {
                continue;
            }
            // A trigger reading the canary judge keeps what it judged.
            let judge = compared(trigger)
                .and_then(|name| snapshot.signals.iter().find(|s| s.name == name))
                .and_then(|s| s.judgement.as_ref())
                .map(JudgeFigures::of);
            out.push(Record::TriggerChanged(TriggerChange {
                trigger: row.trigger.clone(),
                class: row.class.as_str().into(),
                from: last.unwrap_or("none").into(),
                to: to.into(),
                condition: row.condition.clone(),
                value: row.value.map(|v| v.to_string()),
                heard: row
                    .heard
                    .map(|h| format!("{} of {} hosts", h.heard, h.expected)),
                since_ms: row.standing.since_ms.or(row.standing.unknown_since_ms),
                judge,
            }));
            *last = Some(to);
        }
        out
    }

    /// The last evaluation, compactly, for the journal's periodic
    /// `matrix.summary` (None before the first evaluation).
    pub fn summary(&self) -> Option<Record> {
        let inner = self.lock();
        let snapshot = inner.snapshot.as_ref()?;
        Some(Record::MatrixSummary(MatrixSummary {
            verdict: snapshot.verdict.headline().to_string(),
            signals: snapshot
                .signals
                .iter()
                .map(|s| {
                    let value = s.value.map_or_else(|| "?".to_string(), |v| v.to_string());
                    format!("{}={value}", s.name)
                })
                .collect(),
            triggers: snapshot
                .rows
                .iter()
                .map(|r| format!("{}={}", r.trigger, r.standing.state.as_str()))
                .collect(),
        }))
    }

    /// Trigger evaluations older than this are stale (the evaluator stopped).
    fn stale_after(&self) -> Duration {
        self.tick.saturating_mul(3)
    }

    fn snapshot(
        &self,
        inner: &mut Inner,
        at_ms: i64,
        values: &BTreeMap<String, Option<Value>>,
    ) -> MatrixView {
        let stale_after = self.stale_after();
        let rows: Vec<Row> = self
            .plan
            .triggers
            .iter()
            .zip(inner.triggers.iter())
            .map(|(trigger, tracker)| {
                let signal = compared(trigger);
                let value = signal
                    .as_ref()
                    .and_then(|s| values.get(s).copied().flatten());
                let heard = signal
                    .as_ref()
                    .and_then(|s| inner.signals.get(s))
                    .and_then(|s| s.heard);
                let mut standing = tracker.standing(trigger.hold, at_ms, stale_after);
                if let Some(episode) = inner.episodes.get(&trigger.name) {
                    episode.keep_onset(&mut standing, at_ms);
                }
                let mut row = matrix::row(trigger, standing, value, heard);
                row.escalate_to = matrix::escalate_for(&self.plan.escalations, &row, at_ms);
                row
            })
            .collect();
        let recent = self
            .plan
            .triggers
            .iter()
            .map(|trigger| {
                compared(trigger)
                    .and_then(|s| inner.signals.get(&s))
                    .map(|s| recent(&s.history))
                    .unwrap_or_default()
            })
            .collect();
        let verdict = matrix::verdict(&rows);
        let signals = inner
            .signals
            .values_mut()
            .map(|s| Self::view_of(s, at_ms))
            .collect();
        MatrixView {
            rows,
            recent,
            verdict,
            signals,
            evaluated_at_ms: Some(at_ms),
        }
    }

    /// Keeps the open episodes (rebuilt from the journal at start, then as
    /// they change): from the next evaluation, a trigger whose episode is
    /// open shows its journaled onset and firing time, not ones a restart
    /// began again.
    pub fn keep_episodes(&self, episodes: &Episodes) {
        self.lock().episodes = episodes.open().clone();
    }

    /// The matrix: the last evaluation's snapshot (every row's value, state
    /// and held time, and the verdict, as that evaluation saw them). When
    /// the evaluator has not run for three ticks, every trigger is unknown.
    pub fn matrix(&self, now_ms: i64) -> MatrixView {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let fresh = inner.snapshot.as_ref().filter(|s| {
            s.evaluated_at_ms.is_some_and(|at| {
                u128::try_from(now_ms.saturating_sub(at).max(0)).unwrap_or(0)
                    <= self.stale_after().as_millis()
            })
        });
        if let Some(snapshot) = fresh {
            return snapshot.clone();
        }
        // No fresh evaluation: the trackers say unknown (since when), with
        // no values to show.
        let mut view = self.snapshot(inner, now_ms, &BTreeMap::new());
        view.evaluated_at_ms = None;
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backout_plan::window::State;

    const PLAN: &str = r#"
[plan]
name = "test"
[roles]
rm = "Release Manager"
[signals.error_rate]
prometheus = { url = "http://127.0.0.1:9", query = "x" }
interval = "1s"
[signals.breach]
manual = true
[signals.tickets]
events = true
window = "1h"
[[trigger]]
name = "High Error Rate"
class = "considered"
when = "error_rate > 5%"
for = "3s"
deciders = ["rm"]
[[trigger]]
name = "Breach"
class = "immediate"
when = "breach"
deciders = ["rm"]
[[trigger]]
name = "Tickets"
class = "considered"
when = "tickets > 2"
deciders = ["rm"]
"#;

    fn board() -> Board {
        let plan = Plan::parse(std::path::Path::new("t.toml"), PLAN).unwrap();
        Board::new(plan, Duration::from_secs(1))
    }

    fn state(board: &Board, now: i64, name: &str) -> State {
        let m = board.matrix(now);
        m.rows
            .iter()
            .find(|r| r.trigger == name)
            .unwrap()
            .standing
            .state
    }

    #[test]
    fn error_rate_breaches_then_fires_after_its_window_then_recovers() {
        let b = board();
        for s in 0..=3 {
            let t = s * 1000;
            b.record("error_rate", t, Some(Value::Number(0.12)), None);
            b.evaluate(t);
            if s == 2 {
                assert_eq!(state(&b, t, "High Error Rate"), State::Breaching);
            }
        }
        assert_eq!(state(&b, 3000, "High Error Rate"), State::Fired);
        assert_eq!(b.matrix(3000).verdict.headline(), "ASSESS FOR ROLLBACK");
        b.record("error_rate", 4000, Some(Value::Number(0.01)), None);
        b.evaluate(4000);
        assert_eq!(state(&b, 4000, "High Error Rate"), State::Ok);
    }

    /// The trigger changes an evaluation journals, as `trigger: from -> to`.
    fn trigger_changes(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::TriggerChanged(c) => Some(format!("{}: {} -> {}", c.trigger, c.from, c.to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_evaluation_journals_only_what_changed() {
        let b = board();
        // The first evaluation reports every state it finds.
        b.record("error_rate", 0, Some(Value::Number(0.12)), None);
        let first = b.evaluate(0);
        assert_eq!(
            trigger_changes(&first),
            [
                "High Error Rate: none -> breaching",
                "Breach: none -> unknown",
                "Tickets: none -> ok"
            ]
        );
        assert!(first.iter().any(|r| matches!(
            r,
            Record::SignalChanged(SignalChange { signal, known: true, value: Some(v), .. })
                if signal == "error_rate" && v == "0.12"
        )));
        // Samples that change no state journal nothing.
        for s in 1..=2 {
            b.record("error_rate", s * 1000, Some(Value::Number(0.13)), None);
            assert_eq!(b.evaluate(s * 1000), []);
        }
        b.record("error_rate", 3000, Some(Value::Number(0.12)), None);
        let fired = b.evaluate(3000);
        assert_eq!(
            trigger_changes(&fired),
            ["High Error Rate: breaching -> FIRED"]
        );
        match &fired[0] {
            Record::TriggerChanged(c) => {
                assert_eq!(c.value.as_deref(), Some("0.12"));
                assert_eq!(c.since_ms, Some(0), "the onset, not the latest sample");
                assert_eq!(c.class, "considered");
            }
            other => panic!("{other:?}"),
        }
        // Prometheus goes away: the signal's data goes missing, with why.
        b.record("error_rate", 4000, None, Some("connection refused".into()));
        let lost = b.evaluate(4000);
        assert_eq!(
            trigger_changes(&lost),
            ["High Error Rate: FIRED -> unknown"]
        );
        assert!(lost.iter().any(|r| matches!(
            r,
            Record::SignalChanged(SignalChange { known: false, error: Some(e), .. })
                if e == "connection refused"
        )));
        // The summary is the last evaluation, compactly.
        match b.summary() {
            Some(Record::MatrixSummary(m)) => {
                assert!(m.signals.contains(&"error_rate=?".to_string()), "{m:?}");
                assert!(m.triggers.contains(&"Tickets=ok".to_string()), "{m:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_query_is_unknown_not_ok() {
        let b = board();
        b.record("error_rate", 0, None, Some("connection refused".into()));
        b.evaluate(0);
        assert_eq!(state(&b, 0, "High Error Rate"), State::Unknown);
        let view = b.view("error_rate", 0).unwrap();
        assert_eq!(view.error.as_deref(), Some("connection refused"));
        // Values older than three intervals are stale, hence unknown.
        b.record("error_rate", 1000, Some(Value::Number(0.0)), None);
        b.evaluate(10_000);
        assert_eq!(state(&b, 10_000, "High Error Rate"), State::Unknown);
    }

    #[test]
    fn manual_signals_and_events_record_who() {
        let b = board();
        let view = b
            .set_manual("breach", "true", "alice", "S3 bucket public", 0)
            .unwrap();
        assert_eq!(view.set_by.as_deref(), Some("alice"));
        b.evaluate(0);
        assert_eq!(b.matrix(0).verdict.headline(), "IMMEDIATE ROLLBACK");
        assert!(matches!(
            b.set_manual("error_rate", "1", "a", "", 0),
            Err(BoardError::NotManual { .. })
        ));
        assert!(matches!(
            b.set_manual("breach", "maybe", "a", "", 0),
            Err(BoardError::BadValue(_))
        ));
        assert!(matches!(
            b.set_manual("nope", "1", "a", "", 0),
            Err(BoardError::Unknown(_))
        ));
        b.record_events("tickets", 3, "support", "", 0).unwrap();
        b.evaluate(0);
        assert_eq!(state(&b, 0, "Tickets"), State::Fired);
        b.set_manual("breach", "false", "alice", "false alarm", 1000)
            .unwrap();
        b.evaluate(3_600_001);
        assert_eq!(state(&b, 3_600_001, "Tickets"), State::Ok);
    }

    /// The issue's onset case, in scaled time (1 s ticks): a breach
    /// confirmed a minute before the deploy still began before it three
    /// and thirty minutes later, whatever a history could have held.
    #[test]
    fn a_breach_confirmed_before_the_deploy_keeps_its_onset() {
        let b = board();
        b.set_manual("breach", "true", "alice", "PII in a bucket", 0)
            .unwrap();
        let deploy_ms = 60_000;
        let mut now = 0;
        for minutes in [3, 30] {
            while now < minutes * 60_000 {
                now += 1000;
                b.evaluate(now);
            }
            let m = b.matrix(now);
            let row = m.rows.iter().find(|r| r.trigger == "Breach").unwrap();
            assert_eq!(row.standing.state, State::Fired);
            assert_eq!(row.standing.since_ms, Some(1000), "the first evaluation");
            assert!(row.standing.since_ms.unwrap() < deploy_ms);
            assert_eq!(
                row.standing.held,
                Duration::from_millis(u64::try_from(now - 1000).unwrap())
            );
            assert_eq!(m.verdict.fired[0].since_ms, Some(1000));
        }
    }

    #[test]
    fn a_row_value_state_and_verdict_come_from_one_evaluation() {
        let b = board();
        b.record("error_rate", 0, Some(Value::Number(0.01)), None);
        b.evaluate(0);
        // A new value arrives between evaluations: the matrix still shows
        // the value its state was computed from.
        b.record("error_rate", 500, Some(Value::Number(0.21)), None);
        let m = b.matrix(500);
        let row = m
            .rows
            .iter()
            .find(|r| r.trigger == "High Error Rate")
            .unwrap();
        assert_eq!(
            (row.value, row.standing.state),
            (Some(Value::Number(0.01)), State::Ok)
        );
        assert_eq!(m.evaluated_at_ms, Some(0));
        b.evaluate(1000);
        let m = b.matrix(1000);
        let row = m
            .rows
            .iter()
            .find(|r| r.trigger == "High Error Rate")
            .unwrap();
        assert_eq!(
            (row.value, row.standing.state),
            (Some(Value::Number(0.21)), State::Breaching)
        );
        // The evaluator stopped: every trigger is unknown, since when it was last heard.
        let m = b.matrix(10_000);
        assert_eq!(m.evaluated_at_ms, None);
        let row = m
            .rows
            .iter()
            .find(|r| r.trigger == "High Error Rate")
            .unwrap();
        assert_eq!(row.standing.state, State::Unknown);
        assert_eq!(row.standing.unknown_since_ms, Some(1000));
    }

    /// Two hosts down and one unreachable: Complete Service Down is unknown,
    /// never fired. All three down and heard: it fires after its hold.
    #[test]
    fn complete_service_down_needs_every_host_heard() {
        use crate::fleet::StepOutcome;
        use crate::signals::sampler::{HostProbe, aggregate_probe};
        let text = r#"
[plan]
name = "test"
[roles]
rm = "Release Manager"
[signals.service_up]
probe = { check = "application", aggregate = "any-up" }
interval = "1s"
[[trigger]]
name = "Complete Service Down"
class = "immediate"
when = "service_up == 0"
for = "3s"
deciders = ["rm"]
"#;
        let plan = Plan::parse(std::path::Path::new("t.toml"), text).unwrap();
        let b = Board::new(plan, Duration::from_secs(1));
        let down = StepOutcome::Succeeded {
            summary: String::new(),
            data_json: r#"{"checks":[{"name":"application","status":"down"}]}"#.into(),
            outputs: vec![],
        };
        let unreachable = StepOutcome::Unreachable {
            detail: "not connected".into(),
        };
        let probe = |b: &Board, now: i64, third: &StepOutcome| {
            let hosts = [
                HostProbe {
                    agent: "app-1",
                    outcome: &down,
                    expected: true,
                },
                HostProbe {
                    agent: "app-2",
                    outcome: &down,
                    expected: true,
                },
                HostProbe {
                    agent: "app-3",
                    outcome: third,
                    expected: true,
                },
            ];
            let r = aggregate_probe(&hosts, "application", "any-up");
            b.record_probe("service_up", now, r.value, r.error, Some(r.heard));
            b.evaluate(now);
            b.matrix(now)
        };
        for second in 0..10 {
            let m = probe(&b, second * 1000, &unreachable);
            let row = &m.rows[0];
            assert_eq!(row.standing.state, State::Unknown, "after {second} s");
            assert_eq!(
                row.heard,
                Some(Heard {
                    heard: 2,
                    expected: 3
                })
            );
            assert!(m.verdict.fired.is_empty());
        }
        for second in 10..=13 {
            let m = probe(&b, second * 1000, &down);
            let expected = if second < 13 {
                State::Breaching
            } else {
                State::Fired
            };
            assert_eq!(m.rows[0].standing.state, expected, "after {second} s");
            assert_eq!(
                m.rows[0].heard,
                Some(Heard {
                    heard: 3,
                    expected: 3
                })
            );
        }
        assert_eq!(b.matrix(13_000).verdict.headline(), "IMMEDIATE ROLLBACK");
    }

    /// A canary judge's call drives triggers: fail the immediate one,
    /// inconclusive (too few samples) only the considered one, for people.
    #[test]
    fn a_canary_judgement_fires_fail_or_pauses_for_people() {
        use backout_plan::judge::Judge;
        let text = r#"
[plan]
name = "test"
[roles]
rm = "Release Manager"
[signals.canary_latency]
canary = { url = "http://127.0.0.1:9", query = "c", baseline = "b" }
[[trigger]]
name = "Canary Fails"
class = "immediate"
when = "canary_latency == fail"
auto_rollback = true
deciders = ["rm"]
[[trigger]]
name = "Canary Unclear"
class = "considered"
when = "canary_latency == marginal or canary_latency == inconclusive"
deciders = ["rm"]
"#;
        let plan = Plan::parse(std::path::Path::new("t.toml"), text).unwrap();
        let b = Board::new(plan, Duration::from_secs(1));
        let baseline: Vec<f64> = (0..20).map(f64::from).collect();
        let shifted: Vec<f64> = (0..20).map(|i| f64::from(i) + 100.0).collect();
        b.record_judged(
            "canary_latency",
            0,
            Judge::default().judge(&shifted[..4], &baseline),
        );
        b.evaluate(0);
        let m = b.matrix(0);
        assert_eq!(m.verdict.headline(), "ASSESS FOR ROLLBACK");
        assert_eq!(m.verdict.fired[0].trigger, "Canary Unclear");
        // A condition that reads one signal shows its value.
        assert_eq!(m.rows[1].value, Some(Value::Number(3.0)));
        let view = b.view("canary_latency", 0).unwrap();
        assert!(
            view.judgement
                .unwrap()
                .explain()
                .starts_with("inconclusive: too few samples"),
        );
        b.record_judged(
            "canary_latency",
            1000,
            Judge::default().judge(&shifted, &baseline),
        );
        b.evaluate(1000);
        let m = b.matrix(1000);
        assert_eq!(m.verdict.headline(), "IMMEDIATE ROLLBACK");
        assert_eq!(m.verdict.fired.len(), 1);
        assert!(m.rows[0].auto_rollback);
    }

    /// Every trigger of the seed plan, driven to FIRED and back to ok, with the
    /// plan's windows shortened (same code path as production).
    #[test]
    fn all_eight_seed_triggers_fire_and_recover() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/samia-tarot/plan.toml");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("for = \"30m\"", "for = \"3s\"")
            .replace("for = \"10m\"", "for = \"2s\"")
            .replace("for = \"15m\"", "for = \"3s\"")
            .replace("for = \"20m\"", "for = \"4s\"")
            .replace("window = \"1h\"", "window = \"10s\"");
        let plan = Plan::parse(&path, &text).unwrap();
        assert_eq!(plan.triggers.len(), 8);
        let sampled = [
            ("service_up", 1.0),
            ("error_rate", 0.01),
            ("p95_latency", 0.3),
            ("payment_failure_rate", 0.01),
            ("registration_failure_rate", 0.05),
        ];
        // trigger, signal, bad value (None: manual or events), needed seconds
        let cases: [(&str, &str, Option<f64>, i64); 8] = [
            ("Complete Service Down", "service_up", Some(0.0), 3),
            ("Critical Security Breach", "breach_confirmed", None, 0),
            ("Data Corruption", "data_corruption", None, 0),
            (
                "Payment Processing Failure",
                "payment_failure_rate",
                Some(0.11),
                2,
            ),
            ("High Error Rate", "error_rate", Some(0.06), 3),
            ("Performance Degradation", "p95_latency", Some(2.5), 3),
            ("High Support Volume", "critical_tickets", None, 0),
            (
                "User Registration Failure",
                "registration_failure_rate",
                Some(0.21),
                4,
            ),
        ];
        for (trigger, signal, bad, needed) in cases {
            let board = Board::new(plan.clone(), Duration::from_secs(1));
            let mut now = 0;
            let tick = |board: &Board, now: i64, bad_now: bool| {
                for (name, good) in sampled {
                    let value = if name == signal && bad_now {
                        bad.unwrap_or(good)
                    } else {
                        good
                    };
                    board.record(name, now, Some(Value::Number(value)), None);
                }
                for manual in ["breach_confirmed", "data_corruption"] {
                    if manual != signal {
                        board.set_manual(manual, "false", "test", "", now).unwrap();
                    }
                }
                board.evaluate(now);
            };
            tick(&board, now, false);
            assert_eq!(
                state(&board, now, trigger),
                State::Ok,
                "{trigger} starts ok"
            );
            match signal {
                "breach_confirmed" | "data_corruption" => {
                    board.set_manual(signal, "true", "test", "", now).unwrap();
                }
                "critical_tickets" => {
                    board.record_events(signal, 21, "support", "", now).unwrap();
                }
                _ => {}
            }
            // Hold the bad value for the window, checking it is not early.
            for second in 0..=needed {
                now = second * 1000 + 1000;
                tick(&board, now, true);
                let expected = if second < needed {
                    State::Breaching
                } else {
                    State::Fired
                };
                assert_eq!(
                    state(&board, now, trigger),
                    expected,
                    "{trigger} after {second} s"
                );
            }
            let class = plan
                .triggers
                .iter()
                .find(|t| t.name == trigger)
                .unwrap()
                .class;
            let headline = board.matrix(now).verdict.headline();
            match class {
                backout_plan::model::Class::Immediate => {
                    assert_eq!(headline, "IMMEDIATE ROLLBACK", "{trigger}")
                }
                backout_plan::model::Class::Considered => {
                    assert_eq!(headline, "ASSESS FOR ROLLBACK", "{trigger}")
                }
            }
            // Back to good.
            match signal {
                "breach_confirmed" | "data_corruption" => {
                    board.set_manual(signal, "false", "test", "", now).unwrap();
                }
                "critical_tickets" => now += 10_000, // the tickets leave the 10 s window
                _ => {}
            }
            now += 1000;
            tick(&board, now, false);
            assert_eq!(state(&board, now, trigger), State::Ok, "{trigger} recovers");
        }
    }
}
