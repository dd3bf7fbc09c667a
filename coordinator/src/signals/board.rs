//! The signal board: the latest value and bounded history of every signal of
//! the plan, and of every trigger's evaluations. No I/O: samplers and the
//! Control service write to it, the evaluator ticks it, and `matrix` reads it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use backout_plan::expr::Value;
use backout_plan::history::{Events, Point, Ring, capacity_for};
use backout_plan::matrix::{self, Row, Verdict};
use backout_plan::model::{Plan, Signal, Source};
use backout_plan::window::{Hold, Sample};

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
}

struct SignalState {
    spec: Signal,
    history: Ring<Point>,
    events: Events,
    error: Option<String>,
    set_by: Option<String>,
    note: Option<String>,
}

/// The matrix at one moment.
#[derive(Debug, Clone)]
pub struct MatrixView {
    pub rows: Vec<(Row, Option<Value>)>,
    pub verdict: Verdict,
    pub signals: Vec<SignalView>,
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
    /// One evaluation history per trigger, in plan order.
    triggers: Vec<Ring<Sample>>,
}

fn source_name(source: &Source) -> &'static str {
    match source {
        Source::Prometheus { .. } => "prometheus",
        Source::Probe { .. } => "probe",
        Source::Manual => "manual",
        Source::Events { .. } => "events",
    }
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
                    },
                )
            })
            .collect();
        let triggers = plan
            .triggers
            .iter()
            .map(|t| {
                let span = match t.hold {
                    Hold::For(d) => d,
                    Hold::Samples(n) => tick.saturating_mul(n),
                    Hold::Immediately => tick,
                };
                Ring::new(capacity_for(span, tick))
            })
            .collect();
        Board {
            plan,
            tick,
            inner: Mutex::new(Inner { signals, triggers }),
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
        if let Some(state) = self.lock().signals.get_mut(name) {
            state.history.push(Point { at_ms, value });
            state.error = error;
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
        }
    }

    pub fn view(&self, name: &str, now_ms: i64) -> Option<SignalView> {
        let mut inner = self.lock();
        inner
            .signals
            .get_mut(name)
            .map(|s| Self::view_of(s, now_ms))
    }

    /// Evaluates every trigger on the current values and records the sample.
    pub fn evaluate(&self, now_ms: i64) {
        let mut inner = self.lock();
        let values: BTreeMap<String, Option<Value>> = inner
            .signals
            .iter_mut()
            .map(|(name, state)| (name.clone(), Self::current(state, now_ms).0))
            .collect();
        for (trigger, ring) in self.plan.triggers.iter().zip(inner.triggers.iter_mut()) {
            let truth = trigger
                .when
                .eval(&|name| values.get(name).copied().flatten());
            ring.push(Sample {
                at_ms: now_ms,
                truth: matrix::interpret(trigger, truth),
            });
        }
    }

    /// The matrix now: every trigger's standing, the verdict, every signal.
    pub fn matrix(&self, now_ms: i64) -> MatrixView {
        let mut inner = self.lock();
        // Trigger samples are stale when the evaluator has stopped ticking.
        let stale_after = self.tick.saturating_mul(3);
        let mut rows = Vec::new();
        for (trigger, ring) in self.plan.triggers.iter().zip(inner.triggers.iter()) {
            let row = matrix::row(trigger, &ring.to_vec(), now_ms, stale_after);
            rows.push((row, trigger));
        }
        let rows: Vec<(Row, Option<Value>)> = rows
            .into_iter()
            .map(|(row, trigger)| {
                let value = trigger
                    .when
                    .threshold()
                    .and_then(|(signal, _, _)| inner.signals.get_mut(&signal))
                    .and_then(|s| Self::current(s, now_ms).0);
                (row, value)
            })
            .collect();
        let verdict = matrix::verdict(&rows.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>());
        let signals = inner
            .signals
            .values_mut()
            .map(|s| Self::view_of(s, now_ms))
            .collect();
        MatrixView {
            rows,
            verdict,
            signals,
        }
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
            .find(|(r, _)| r.trigger == name)
            .unwrap()
            .0
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
        }
        assert_eq!(state(&b, 2000, "High Error Rate"), State::Breaching);
        assert_eq!(state(&b, 3000, "High Error Rate"), State::Fired);
        assert_eq!(b.matrix(3000).verdict.headline(), "ASSESS FOR ROLLBACK");
        b.record("error_rate", 4000, Some(Value::Number(0.01)), None);
        b.evaluate(4000);
        assert_eq!(state(&b, 4000, "High Error Rate"), State::Ok);
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
