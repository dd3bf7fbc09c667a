//! Bounded histories of signal values and of trigger evaluations.
//!
//! The sampler pushes a value per signal per interval; the matrix evaluates
//! every trigger at each push and keeps its samples here. Both are bounded,
//! so a coordinator that runs for months holds a fixed amount of memory.

use std::collections::VecDeque;
use std::time::Duration;

use crate::expr::Value;

/// A signal value at a time; `None` when the source could not say (query
/// failed, probe unreachable): recorded as unknown, never dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at_ms: i64,
    pub value: Option<Value>,
}

/// A ring of the most recent points.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Ring<T> {
    pub fn new(capacity: usize) -> Self {
        Ring {
            items: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }

    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items as a contiguous slice (oldest first).
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.items.iter().cloned().collect()
    }
}

/// How many samples to keep so that a window of `span` at `interval` fits,
/// with room to spare for the report's "before and after" chart.
pub fn capacity_for(span: Duration, interval: Duration) -> usize {
    let interval_ms = interval.as_millis().max(1);
    let needed = span.as_millis() / interval_ms + 1;
    usize::try_from(needed.saturating_mul(2))
        .unwrap_or(usize::MAX)
        .clamp(16, 100_000)
}

/// Counted events (e.g. critical tickets): their times, and how many fall in
/// the last `window`.
#[derive(Debug, Clone, Default)]
pub struct Events {
    times_ms: VecDeque<i64>,
}

impl Events {
    pub fn record(&mut self, at_ms: i64, count: u32) {
        for _ in 0..count {
            self.times_ms.push_back(at_ms);
        }
    }

    /// Events in `(now - window, now]`; older ones are forgotten.
    pub fn count(&mut self, now_ms: i64, window: Duration) -> u64 {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let from = now_ms.saturating_sub(window_ms);
        while self.times_ms.front().is_some_and(|&t| t <= from) {
            self.times_ms.pop_front();
        }
        self.times_ms.iter().filter(|&&t| t <= now_ms).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_newest() {
        let mut ring = Ring::new(3);
        for i in 0..5 {
            ring.push(i);
        }
        assert_eq!(ring.to_vec(), vec![2, 3, 4]);
        assert_eq!(ring.last(), Some(&4));
    }

    #[test]
    fn twenty_one_tickets_in_the_last_hour_count_and_older_ones_do_not() {
        let hour = Duration::from_secs(3600);
        let mut events = Events::default();
        events.record(0, 5);
        events.record(1_800_000, 21);
        assert_eq!(events.count(3_500_000, hour), 26);
        // An hour after the first five, they have left the window.
        assert_eq!(events.count(3_600_000, hour), 21);
        assert_eq!(events.count(5_400_001, hour), 0);
    }

    #[test]
    fn capacity_covers_the_window() {
        assert_eq!(
            capacity_for(Duration::from_secs(900), Duration::from_secs(15)),
            122
        );
        assert_eq!(
            capacity_for(Duration::from_secs(1), Duration::from_secs(15)),
            16
        );
    }
}
