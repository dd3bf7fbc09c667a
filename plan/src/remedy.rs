//! A lighter remedy for a considered trigger (seed, "Rollback Prevention &
//! Improvement": "Feature Flags: instant feature disable without
//! rollback"): an optional phase of the plan, e.g. a `flags` step turning
//! the new feature off, that is offered before the full rollback and run as
//! a run of its own (`backout rollback start --phases ID`: its own
//! approvals, journal, report, and undo with the plugin's `restore`). If the
//! trigger still fires `hold` after the remedy succeeded, the verdict moves
//! on to the rollback. Pure: callers pass what the runs say and `now`.

use std::time::Duration;

/// `remedy = "PHASE"` and `remedy_hold = "5m"` on a considered trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    /// The optional phase that applies it.
    pub phase: String,
    /// How long the trigger has to clear once the remedy succeeded.
    pub hold: Duration,
}

/// The newest run of the remedy's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// `None` while it runs.
    pub succeeded: Option<bool>,
    pub ended_at_ms: Option<i64>,
}

/// What the remedy means for a trigger now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The trigger fires and the remedy was not tried: offer it first.
    Offered { phase: String },
    /// The remedy is running, or succeeded and the trigger has until
    /// `until_ms` to clear.
    Holding { until_ms: Option<i64> },
    /// The trigger does not fire (after the remedy, or without it).
    Cleared,
    /// The remedy failed, or the trigger still fires after its hold: roll back.
    RollBack { why: String },
}

/// The verdict for a trigger with `remedy`, firing or not, given the
/// remedy's newest `attempt`.
pub fn verdict(remedy: &Remedy, firing: bool, attempt: Option<Attempt>, now_ms: i64) -> Verdict {
    if !firing {
        return Verdict::Cleared;
    }
    let Some(attempt) = attempt else {
        return Verdict::Offered {
            phase: remedy.phase.clone(),
        };
    };
    match (attempt.succeeded, attempt.ended_at_ms) {
        (Some(false), _) => Verdict::RollBack {
            why: format!("the remedy `{}` failed", remedy.phase),
        },
        (Some(true), Some(ended)) => {
            let until =
                ended.saturating_add(i64::try_from(remedy.hold.as_millis()).unwrap_or(i64::MAX));
            if now_ms < until {
                Verdict::Holding {
                    until_ms: Some(until),
                }
            } else {
                Verdict::RollBack {
                    why: format!(
                        "still firing {}s after the remedy `{}`",
                        remedy.hold.as_secs(),
                        remedy.phase
                    ),
                }
            }
        }
        _ => Verdict::Holding { until_ms: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remedy() -> Remedy {
        Remedy {
            phase: "flags-off".into(),
            hold: Duration::from_secs(300),
        }
    }

    #[test]
    fn a_firing_trigger_is_offered_its_remedy_first() {
        assert_eq!(
            verdict(&remedy(), true, None, 0),
            Verdict::Offered {
                phase: "flags-off".into()
            }
        );
    }

    #[test]
    fn a_remedy_that_clears_the_trigger_means_no_rollback() {
        let done = Attempt {
            succeeded: Some(true),
            ended_at_ms: Some(1_000),
        };
        assert_eq!(
            verdict(&remedy(), false, Some(done), 2_000),
            Verdict::Cleared
        );
    }

    #[test]
    fn still_firing_after_the_hold_moves_on_to_rollback() {
        let done = Attempt {
            succeeded: Some(true),
            ended_at_ms: Some(1_000),
        };
        assert_eq!(
            verdict(&remedy(), true, Some(done), 1_000 + 299_999),
            Verdict::Holding {
                until_ms: Some(301_000)
            }
        );
        assert_eq!(
            verdict(&remedy(), true, Some(done), 301_000),
            Verdict::RollBack {
                why: "still firing 300s after the remedy `flags-off`".into()
            }
        );
        let failed = Attempt {
            succeeded: Some(false),
            ended_at_ms: Some(1_000),
        };
        assert!(matches!(
            verdict(&remedy(), true, Some(failed), 1_001),
            Verdict::RollBack { .. }
        ));
        let running = Attempt {
            succeeded: None,
            ended_at_ms: None,
        };
        assert_eq!(
            verdict(&remedy(), true, Some(running), 5),
            Verdict::Holding { until_ms: None }
        );
    }
}
