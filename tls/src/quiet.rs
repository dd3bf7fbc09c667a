//! Rate-limited log lines for what an unauthenticated peer can cause.
//!
//! Anyone who can reach the coordinator's port can open connections and
//! fail their handshakes. One log line each would let them fill the disk, so
//! such lines go through a [`LogLimiter`]: at most one line per reason every
//! [`LogLimiter::every`], and that line says how many like it were left out
//! since the last one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one reason may be logged by the TLS accept loop.
pub const EVERY: Duration = Duration::from_secs(10);

/// Distinct reasons remembered; beyond this (a peer making up error texts)
/// new reasons share one slot, so memory stays bounded.
const MAX_REASONS: usize = 64;

/// The reason new reasons share once [`MAX_REASONS`] are remembered.
const OTHER: &str = "(other reasons)";

#[derive(Debug)]
struct Slot {
    logged_at: Instant,
    suppressed: u64,
    /// Every line of this reason, written or left out (for metrics).
    seen: u64,
}

/// Decides which repeated lines are written. Safe to share between tasks.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The minimum time between two lines of one reason.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Whether a line for `reason` may be written at `now`: `Some(n)` with
    /// the number of lines of this reason left out since the last one
    /// written, or `None` to leave this one out (it is counted).
    pub fn admit(&self, reason: &str, now: Instant) -> Option<u64> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let key = if slots.contains_key(reason) || slots.len() < MAX_REASONS - 1 {
            reason
        } else {
            OTHER
        };
        match slots.get_mut(key) {
            None => {
                slots.insert(
                    key.to_string(),
                    Slot {
                        logged_at: now,
                        suppressed: 0,
                        seen: 1,
                    },
                );
                Some(0)
            }
            Some(slot) if now.saturating_duration_since(slot.logged_at) >= self.every => {
                slot.seen += 1;
                slot.logged_at = now;
                Some(std::mem::take(&mut slot.suppressed))
            }
            Some(slot) => {
                slot.seen += 1;
                slot.suppressed += 1;
                None
            }
        }
    }

    /// How many lines of each reason were asked for since the start,
    /// written or left out (the coordinator's handshake-refusal metric).
    pub fn totals(&self) -> Vec<(String, u64)> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.iter().map(|(r, s)| (r.clone(), s.seen)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_interval_with_the_count_left_out() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.admit("refused: bad cert", t0), Some(0));
        for i in 1..=1000 {
            let at = t0 + Duration::from_millis(i * 5);
            assert_eq!(limiter.admit("refused: bad cert", at), None);
        }
        // Another reason is not held back by the first one's flood.
        assert_eq!(
            limiter.admit("timed out", t0 + Duration::from_secs(1)),
            Some(0)
        );
        // After the interval, one line again, saying what was left out.
        assert_eq!(
            limiter.admit("refused: bad cert", t0 + Duration::from_secs(10)),
            Some(1000)
        );
        assert_eq!(
            limiter.admit("refused: bad cert", t0 + Duration::from_secs(11)),
            None
        );
        assert_eq!(
            limiter.admit("refused: bad cert", t0 + Duration::from_secs(25)),
            Some(1)
        );
        // Every line is counted, written or not.
        let mut totals = limiter.totals();
        totals.sort();
        assert_eq!(
            totals,
            vec![
                ("refused: bad cert".to_string(), 1004),
                ("timed out".to_string(), 1)
            ]
        );
    }

    #[test]
    fn made_up_reasons_share_one_slot() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let admitted = (0..10_000)
            .filter(|i| limiter.admit(&format!("reason {i}"), t0).is_some())
            .count();
        assert_eq!(admitted, MAX_REASONS);
        assert!(
            limiter
                .slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
                <= MAX_REASONS
        );
    }
}
