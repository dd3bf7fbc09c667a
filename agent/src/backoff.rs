//! Jittered exponential backoff for reconnecting to the coordinator.
//!
//! "Full jitter": the n-th delay is uniform in `[0, min(max, initial * 2^n)]`,
//! so a fleet that lost the coordinator at the same instant does not come back
//! at the same instant (no thundering herd).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The next delay, given a uniform random number in `[0, 1)`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        let cap = self.initial.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        cap.mul_f64(random.clamp(0.0, 1.0))
    }

    /// Back to short delays after a session that lasted.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_it() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let caps: Vec<Duration> = (0..8).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(caps[0], Duration::from_millis(100));
        assert_eq!(caps[1], Duration::from_millis(200));
        assert_eq!(caps[4], Duration::from_millis(1600));
        assert_eq!(caps[7], Duration::from_secs(2));
        assert!(b.next_delay(0.5) <= Duration::from_secs(1));
        b.reset();
        assert_eq!(b.next_delay(1.0), Duration::from_millis(100));
    }
}
