//! Held-for windows: "error rate > 5% for > 15 minutes".
//!
//! A trigger's condition is evaluated at every sample. With `for = "15m"` it
//! must have held at every sample for at least 15 minutes; one sample that
//! breaks it resets the clock. With `for = "5 samples"` it must have held at
//! the last five samples. Without `for` it fires as soon as it holds.
//! Count-in-window conditions ("> 20 critical tickets in 1 hour") are signals
//! whose value is a count over their window, so they need no `for`.

use std::time::Duration;

use crate::expr::Truth;

/// How long a condition must hold before its trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Fires on the first sample that holds.
    Immediately,
    /// Must hold continuously for this long.
    For(Duration),
    /// Must hold at this many consecutive samples.
    Samples(u32),
}

impl Hold {
    /// Parses "15m", "90s", "5 samples"; empty means immediately.
    pub fn parse(text: &str) -> Result<Hold, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Hold::Immediately);
        }
        if let Some(n) = text
            .strip_suffix("samples")
            .or_else(|| text.strip_suffix("sample"))
        {
            let n: u32 = n.trim().parse().map_err(|_| {
                format!("`{text}`: expected a whole number of samples, like \"5 samples\"")
            })?;
            if n == 0 {
                return Err(format!("`{text}`: at least 1 sample"));
            }
            return Ok(Hold::Samples(n));
        }
        backout_config::parse_duration(text).map(Hold::For)
    }
}

/// One evaluation of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at_ms: i64,
    pub truth: Truth,
}

/// Where a trigger stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The condition does not hold.
    Ok,
    /// It holds, not yet long enough.
    Breaching,
    /// It has held long enough: the trigger fired.
    Fired,
    /// No fresh data: never taken as healthy.
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Breaching => "breaching",
            State::Fired => "FIRED",
            State::Unknown => "unknown",
        }
    }
}

/// The verdict on a sample history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub state: State,
    /// When the current unbroken run of holding samples began: the breach's
    /// onset, however long ago (a [`Tracker`] keeps it without the samples).
    pub since_ms: Option<i64>,
    /// How long it has held (now - since).
    pub held: Duration,
    /// How many consecutive samples have held.
    pub consecutive: u32,
    /// When the current breach met its hold (the trigger fired), if it has.
    pub fired_at_ms: Option<i64>,
    /// When the data went missing (the first unknown sample of the current
    /// run of them, or the last sample heard when the samples stopped).
    pub unknown_since_ms: Option<i64>,
}

/// A trigger's evaluations folded as they arrive: the newest sample, and
/// when the current breach (or the current lack of data) began, however
/// long ago. Constant memory: the onset does not depend on how many samples
/// a history could hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tracker {
    last: Option<Sample>,
    breach_since_ms: Option<i64>,
    consecutive: u32,
    /// When the current breach met a `Samples` hold (the other holds are
    /// computed from the onset).
    count_met_ms: Option<i64>,
    unknown_since_ms: Option<i64>,
}

impl Tracker {
    /// Folds in the next sample (samples arrive oldest first).
    pub fn push(&mut self, sample: Sample, hold: Hold) {
        match sample.truth {
            Truth::True => {
                if self.breach_since_ms.is_none() {
                    self.breach_since_ms = Some(sample.at_ms);
                    self.consecutive = 0;
                    self.count_met_ms = None;
                }
                self.consecutive = self.consecutive.saturating_add(1);
                if let Hold::Samples(n) = hold
                    && self.consecutive >= n
                    && self.count_met_ms.is_none()
                {
                    self.count_met_ms = Some(sample.at_ms);
                }
                self.unknown_since_ms = None;
            }
            Truth::False => {
                self.breach_since_ms = None;
                self.consecutive = 0;
                self.count_met_ms = None;
                self.unknown_since_ms = None;
            }
            Truth::Unknown => {
                self.breach_since_ms = None;
                self.consecutive = 0;
                self.count_met_ms = None;
                if self.unknown_since_ms.is_none() {
                    self.unknown_since_ms = Some(sample.at_ms);
                }
            }
        }
        self.last = Some(sample);
    }

    /// The newest sample folded in.
    pub fn last(&self) -> Option<Sample> {
        self.last
    }

    /// Where the trigger stands at `now_ms`. The newest sample older than
    /// `stale_after` makes the state unknown.
    pub fn standing(&self, hold: Hold, now_ms: i64, stale_after: Duration) -> Standing {
        let unknown = |since: Option<i64>| Standing {
            state: State::Unknown,
            since_ms: None,
            held: Duration::ZERO,
            consecutive: 0,
            fired_at_ms: None,
            unknown_since_ms: since,
        };
        let Some(last) = self.last else {
            return unknown(None);
        };
        let stale_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(last.at_ms) > stale_ms {
            return unknown(Some(self.unknown_since_ms.unwrap_or(last.at_ms)));
        }
        let since_ms = match last.truth {
            Truth::Unknown => return unknown(self.unknown_since_ms),
            Truth::False => {
                return Standing {
                    state: State::Ok,
                    ..unknown(None)
                };
            }
            Truth::True => self.breach_since_ms.unwrap_or(last.at_ms),
        };
        let held =
            Duration::from_millis(u64::try_from(now_ms.saturating_sub(since_ms)).unwrap_or(0));
        let fired_at_ms = match hold {
            Hold::Immediately => Some(since_ms),
            Hold::For(needed) => (held >= needed).then(|| {
                since_ms.saturating_add(i64::try_from(needed.as_millis()).unwrap_or(i64::MAX))
            }),
            Hold::Samples(_) => self.count_met_ms,
        };
        Standing {
            state: if fired_at_ms.is_some() {
                State::Fired
            } else {
                State::Breaching
            },
            since_ms: Some(since_ms),
            held,
            consecutive: self.consecutive,
            fired_at_ms,
            unknown_since_ms: None,
        }
    }
}

/// Evaluates `samples` (oldest first) at `now_ms`: the same answer as a
/// [`Tracker`] that was pushed each of them.
pub fn evaluate(samples: &[Sample], hold: Hold, now_ms: i64, stale_after: Duration) -> Standing {
    let mut tracker = Tracker::default();
    for sample in samples {
        tracker.push(*sample, hold);
    }
    tracker.standing(hold, now_ms, stale_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const STALE: Duration = Duration::from_secs(120);

    fn history(truths: &[Truth]) -> Vec<Sample> {
        truths
            .iter()
            .enumerate()
            .map(|(i, &truth)| Sample {
                at_ms: i as i64 * MIN,
                truth,
            })
            .collect()
    }

    use Truth::{False as F, True as T, Unknown as U};

    #[test]
    fn fifteen_minutes_must_hold_at_every_sample() {
        let hold = Hold::For(Duration::from_secs(15 * 60));
        // Held from minute 0 to minute 15: fired at 15.
        let h = history(&[T; 16]);
        let s = evaluate(&h, hold, 15 * MIN, STALE);
        assert_eq!(s.state, State::Fired);
        assert_eq!(s.held, Duration::from_secs(900));
        // One sample that breaks it (minute 5) resets the clock to minute 6.
        let mut truths = [T; 16];
        truths[5] = F;
        let s = evaluate(&history(&truths), hold, 15 * MIN, STALE);
        assert_eq!(s.state, State::Breaching);
        assert_eq!(s.since_ms, Some(6 * MIN));
        assert_eq!(s.held, Duration::from_secs(9 * 60));
    }

    #[test]
    fn consecutive_samples_and_immediate() {
        let s = evaluate(&history(&[F, T, T, T]), Hold::Samples(3), 3 * MIN, STALE);
        assert_eq!((s.state, s.consecutive), (State::Fired, 3));
        let s = evaluate(&history(&[T, F, T, T]), Hold::Samples(3), 3 * MIN, STALE);
        assert_eq!(s.state, State::Breaching);
        let s = evaluate(&history(&[F, T]), Hold::Immediately, MIN, STALE);
        assert_eq!(s.state, State::Fired);
        let s = evaluate(&history(&[T, F]), Hold::Immediately, MIN, STALE);
        assert_eq!(s.state, State::Ok);
    }

    #[test]
    fn missing_or_stale_data_is_unknown() {
        assert_eq!(
            evaluate(&[], Hold::Immediately, 0, STALE).state,
            State::Unknown
        );
        let s = evaluate(&history(&[T, T, U]), Hold::Immediately, 2 * MIN, STALE);
        assert_eq!(s.state, State::Unknown);
        // The newest sample is 10 minutes old.
        let s = evaluate(&history(&[F, F]), Hold::Immediately, 11 * MIN, STALE);
        assert_eq!(s.state, State::Unknown);
        // An unknown sample inside a run breaks it.
        let s = evaluate(&history(&[T, U, T]), Hold::Samples(2), 2 * MIN, STALE);
        assert_eq!(s.state, State::Breaching);
    }

    #[test]
    fn held_exactly_the_duration_fires_and_a_moment_less_does_not() {
        let hold = Hold::For(Duration::from_secs(600));
        let h = history(&[T; 11]);
        assert_eq!(evaluate(&h, hold, 10 * MIN, STALE).state, State::Fired);
        assert_eq!(
            evaluate(&h, hold, 10 * MIN - 1, STALE).state,
            State::Breaching
        );
    }

    #[test]
    fn a_single_good_sample_at_the_end_resets_to_ok() {
        let mut truths = [T; 20];
        truths[19] = F;
        let s = evaluate(
            &history(&truths),
            Hold::For(Duration::from_secs(60)),
            19 * MIN,
            STALE,
        );
        assert_eq!(s.state, State::Ok);
        assert_eq!(s.since_ms, None);
    }

    /// Property: for any history, the state is FIRED only if the last
    /// `needed` span is covered by holding samples, and never from unknowns.
    #[test]
    fn fired_implies_an_unbroken_run_covering_the_window() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            let len = 1 + (seed % 30) as usize;
            let truths: Vec<Truth> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    match seed % 5 {
                        0 => U,
                        1 => F,
                        _ => T,
                    }
                })
                .collect();
            let h = history(&truths);
            let now = (len as i64 - 1) * MIN;
            let needed = Duration::from_secs(60 * (seed % 10));
            let s = evaluate(&h, Hold::For(needed), now, STALE);
            let run = truths.iter().rev().take_while(|t| **t == T).count() as i64;
            let covered = Duration::from_millis(((run - 1).max(0) * MIN) as u64);
            match s.state {
                State::Fired => assert!(run > 0 && covered >= needed, "{truths:?} {needed:?}"),
                State::Breaching => assert!(run > 0 && covered < needed),
                State::Ok => assert_eq!(truths.last(), Some(&F)),
                State::Unknown => assert_eq!(truths.last(), Some(&U)),
            }
        }
    }

    #[test]
    fn a_tracker_keeps_the_onset_of_a_breach_however_long_it_held() {
        // The seed's 15-minute trigger, held for 34 minutes at 15 s samples:
        // the onset is minute 0, not the oldest sample a history could keep.
        let hold = Hold::For(Duration::from_secs(15 * 60));
        let mut tracker = Tracker::default();
        for i in 0..=(34 * 4) {
            tracker.push(
                Sample {
                    at_ms: i * 15_000,
                    truth: T,
                },
                hold,
            );
        }
        let s = tracker.standing(hold, 34 * MIN, STALE);
        assert_eq!(s.state, State::Fired);
        assert_eq!(s.since_ms, Some(0));
        assert_eq!(s.held, Duration::from_secs(34 * 60));
        assert_eq!(s.fired_at_ms, Some(15 * MIN));
        assert_eq!(s.consecutive, 137);
        // One good sample ends the breach; the next one starts a new onset.
        tracker.push(
            Sample {
                at_ms: 35 * MIN,
                truth: F,
            },
            hold,
        );
        tracker.push(
            Sample {
                at_ms: 36 * MIN,
                truth: T,
            },
            hold,
        );
        let s = tracker.standing(hold, 36 * MIN, STALE);
        assert_eq!(
            (s.state, s.since_ms, s.fired_at_ms),
            (State::Breaching, Some(36 * MIN), None)
        );
    }

    #[test]
    fn a_tracker_says_since_when_data_is_missing() {
        let hold = Hold::Samples(2);
        let mut tracker = Tracker::default();
        for (i, truth) in [T, T, U, U, U].into_iter().enumerate() {
            tracker.push(
                Sample {
                    at_ms: i as i64 * MIN,
                    truth,
                },
                hold,
            );
            if i == 1 {
                assert_eq!(tracker.standing(hold, MIN, STALE).fired_at_ms, Some(MIN));
            }
        }
        let s = tracker.standing(hold, 4 * MIN, STALE);
        assert_eq!(
            (s.state, s.unknown_since_ms),
            (State::Unknown, Some(2 * MIN))
        );
        // Samples that stop: unknown since the last one heard.
        let mut tracker = Tracker::default();
        tracker.push(Sample { at_ms: 0, truth: F }, hold);
        let s = tracker.standing(hold, 10 * MIN, STALE);
        assert_eq!((s.state, s.unknown_since_ms), (State::Unknown, Some(0)));
    }

    #[test]
    fn holds_parse() {
        assert_eq!(
            Hold::parse("15m").unwrap(),
            Hold::For(Duration::from_secs(900))
        );
        assert_eq!(Hold::parse("5 samples").unwrap(), Hold::Samples(5));
        assert_eq!(Hold::parse("").unwrap(), Hold::Immediately);
        assert!(Hold::parse("0 samples").is_err());
        assert!(Hold::parse("a while").is_err());
    }
}
