//! The three limits of a step: memory, wall-clock deadline and output.
//!
//! * Memory: every store gets a `MemoryLimiter`, consulted by Wasmtime
//!   before a linear memory or table grows. A refused growth does not trap
//!   by itself (the guest sees `memory.grow` return -1), but a Rust guest
//!   then aborts; the limiter remembers that it refused, so the host can
//!   report `memory` rather than a bare trap.
//! * Deadline: guest code is interrupted by epochs (a background thread
//!   ticks every `EPOCH_TICK`, and each store gets a deadline in ticks);
//!   host calls check `Deadline` themselves and never wait past it.
//! * Output: `OutputBudget` counts the bytes a step logs, reports, emits and
//!   returns, so a plugin cannot flood the coordinator or the journal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Engine, EngineWeak, ResourceLimiter};

use super::config::duration_text;

/// How often the epoch advances; the granularity of guest interruption.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Most instances (core and component) one store may create.
const MAX_INSTANCES: usize = 32;
/// Most tables one store may create.
const MAX_TABLES: usize = 32;
/// Most linear memories one store may create.
const MAX_MEMORIES: usize = 8;
/// Most elements of one table (function references in a Rust guest).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// What each event costs on top of its bytes, so that a flood of empty log
/// lines is not free.
pub(crate) const EVENT_OVERHEAD: u64 = 32;

/// Caps each linear memory of one store and remembers refusals.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    cap: usize,
    /// The size a refused growth asked for, if any growth was refused.
    refused: Option<usize>,
}

impl MemoryLimiter {
    pub(crate) fn new(cap: u64) -> Self {
        MemoryLimiter {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            refused: None,
        }
    }

    /// Whether a memory growth was refused during this store's life.
    pub(crate) fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pooling allocator's own cap refused it; count it as ours.
        if self.refused.is_none() {
            self.refused = Some(self.cap);
        }
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// The wall-clock deadline of one step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// The time the step was given.
    pub(crate) budget: Duration,
    /// When it runs out.
    pub(crate) at: Instant,
}

impl Deadline {
    pub(crate) fn starting_now(budget: Duration) -> Self {
        Deadline {
            budget,
            at: Instant::now() + budget,
        }
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub(crate) fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The epoch deadline for the store: the budget in ticks, rounded up.
    pub(crate) fn ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos().max(1);
        let ticks = self.budget.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }

    /// The failure message of a step stopped at this deadline.
    pub(crate) fn message(&self) -> String {
        format!("stopped at its deadline of {}", duration_text(self.budget))
    }
}

/// Bytes a step may still log, emit and return.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputBudget {
    pub(crate) cap: u64,
    used: u64,
}

impl OutputBudget {
    pub(crate) fn new(cap: u64) -> Self {
        OutputBudget { cap, used: 0 }
    }

    /// Charges one event of `bytes`; false once the cap is passed.
    pub(crate) fn charge(&mut self, bytes: usize) -> bool {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.used = self
            .used
            .saturating_add(bytes)
            .saturating_add(EVENT_OVERHEAD);
        self.used <= self.cap
    }
}

/// The background thread that advances the engine's epoch.
///
/// Every running instance checks the epoch at function entries and loop
/// back-edges, and traps with `Trap::Interrupt` once it passes the store's
/// deadline. The thread holds only a weak reference to the engine and stops
/// when the ticker is dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak: EngineWeak = engine.weak();
        let thread = std::thread::Builder::new()
            .name("backout-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match weak.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => return,
                        }
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread wakes within one tick; a panic in it is not ours to
            // propagate from a destructor.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn deadline_ticks_round_up() {
        let d = Deadline::starting_now(Duration::from_millis(25));
        assert_eq!(d.ticks(), 3);
        let d = Deadline::starting_now(Duration::from_secs(2));
        assert_eq!(d.ticks(), 200);
        assert_eq!(d.message(), "stopped at its deadline of 2s");
    }

    #[test]
    fn output_budget_counts_overhead() {
        let mut b = OutputBudget::new(100);
        assert!(b.charge(10));
        assert!(b.charge(0));
        assert!(!b.charge(0));
    }

    #[test]
    fn limiter_refuses_past_the_cap() {
        let mut l = MemoryLimiter::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 20, None).expect("no error"));
        assert!(!l.memory_growing(1 << 20, 2 << 20, None).expect("no error"));
        assert_eq!(l.refused(), Some(2 << 20));
    }
}
