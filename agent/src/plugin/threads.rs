//! The threads that run steps.
//!
//! A step's instance never runs on the async runtime: sync WASI and the host
//! calls (which `block_on` the agent's runtime for HTTP and processes) must
//! not run on a Tokio worker, and a step stuck in a WASI call must not hold
//! up the task that waits for it (that task gives up at the deadline, see
//! `PluginHost::run`, and the thread is left to finish on its own).
//!
//! So each step runs on one of these threads, which are kept between steps.
//! The thread that last went idle takes the next step (its stack and caches
//! are still warm), handed over in its own slot: starting a step wakes
//! exactly one parked thread, and nothing else contends for a lock. A
//! thread is created only when every thread is busy, so there are only as
//! many as steps have ever run at once: at most the permits, plus steps
//! abandoned while stuck in a WASI call (each of those holds one of the
//! engine's few pooled instances until it returns).
//!
//! Why not `tokio::task::spawn_blocking`: its one queue, whose lock the
//! caller starting a step and the thread finishing the previous one contend
//! for, and its hand-off to whichever idle thread its condition variable
//! wakes (each in turn, so a cold one) were most of what the agent added to
//! a trivial step (BENCHMARKS.md, "Per-step sandbox overhead").

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;

use tokio::sync::oneshot;

use super::StepOutcome;

/// The work of one step, run on a step thread.
pub(crate) type Job = Box<dyn FnOnce() -> StepOutcome + Send>;

/// One job and where its outcome goes.
struct Task {
    job: Job,
    done: oneshot::Sender<StepOutcome>,
}

/// The agent's step threads. Dropping it lets idle threads end; a busy
/// thread ends when its step returns.
#[derive(Debug)]
pub(crate) struct StepThreads {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Threads waiting for a step, the one that went idle last at the end.
    idle: Mutex<Vec<Arc<Worker>>>,
    closed: AtomicBool,
}

/// A step thread's hand-off slot.
struct Worker {
    task: Mutex<Option<Task>>,
    thread: Thread,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("thread", &self.thread.name())
            .finish_non_exhaustive()
    }
}

impl StepThreads {
    pub(crate) fn new() -> Self {
        StepThreads {
            shared: Arc::new(Shared::default()),
        }
    }

    /// Runs `job` on a step thread. The receiver gets its outcome once the
    /// job has returned (and dropped what it held); it gets an error if the
    /// job panicked or no thread could be started.
    pub(crate) fn run(&self, job: Job) -> oneshot::Receiver<StepOutcome> {
        let (done, outcome) = oneshot::channel();
        let task = Task { job, done };
        let idle = lock(&self.shared.idle).pop();
        match idle {
            Some(worker) => {
                *lock(&worker.task) = Some(task);
                worker.thread.unpark();
            }
            None => {
                let shared = self.shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("backout-step".into())
                    .spawn(move || work(&shared, task));
                if let Err(e) = spawned {
                    // The task (and its sender) is dropped: the caller
                    // reports a host failure.
                    tracing::error!("cannot start a thread for a plugin step: {e}");
                }
            }
        }
        outcome
    }
}

impl Drop for StepThreads {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        for worker in lock(&self.shared.idle).drain(..) {
            worker.thread.unpark();
        }
    }
}

/// A step thread: runs its first task, then each task handed to it, until
/// the host is dropped.
fn work(shared: &Shared, first: Task) {
    let me = Arc::new(Worker {
        task: Mutex::new(None),
        thread: std::thread::current(),
    });
    let mut task = first;
    loop {
        let Task { job, done } = task;
        // A panic is the host's bug, not the plugin's: the sender is dropped
        // (the caller reports a host failure) and the thread carries on.
        let outcome = catch_unwind(AssertUnwindSafe(job));
        let closed = shared.closed.load(Ordering::Acquire);
        if !closed {
            // Idle again before the caller hears of the outcome, so that a
            // step it starts next finds this thread, not a new one.
            lock(&shared.idle).push(me.clone());
        }
        match outcome {
            Ok(outcome) => {
                let _ = done.send(outcome);
            }
            Err(_) => drop(done),
        }
        if closed {
            return;
        }
        task = loop {
            if let Some(next) = lock(&me.task).take() {
                break next;
            }
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            // Woken by `run` after it filled the slot, or by the host's drop
            // (or spuriously: the loop checks again).
            std::thread::park();
        };
    }
}

/// Locks a mutex, ignoring poisoning: the data behind these locks is whole
/// values swapped in and out.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn outcome(summary: &str) -> StepOutcome {
        StepOutcome::Succeeded {
            summary: summary.to_string(),
            data_json: "null".to_string(),
            outputs: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_job_runs_and_its_outcome_comes_back() {
        let threads = StepThreads::new();
        for i in 0..3 {
            let summary = format!("job {i}");
            let got = threads
                .run(Box::new(move || outcome(&summary)))
                .await
                .expect("an outcome");
            assert_eq!(got, outcome(&format!("job {i}")));
        }
    }

    #[tokio::test]
    async fn sequential_jobs_reuse_one_thread() {
        let threads = StepThreads::new();
        let first = threads
            .run(Box::new(|| {
                outcome(&format!("{:?}", std::thread::current().id()))
            }))
            .await
            .expect("an outcome");
        let second = threads
            .run(Box::new(|| {
                outcome(&format!("{:?}", std::thread::current().id()))
            }))
            .await
            .expect("an outcome");
        assert_eq!(first, second);
        assert_eq!(lock(&threads.shared.idle).len(), 1);
    }

    #[tokio::test]
    async fn a_busy_thread_is_not_handed_a_job() {
        let threads = StepThreads::new();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocked = threads.run(Box::new(move || {
            let _ = wait.recv();
            outcome("blocked")
        }));
        let other = threads
            .run(Box::new(|| outcome("other")))
            .await
            .expect("a second thread runs it");
        assert_eq!(other, outcome("other"));
        release.send(()).expect("the first job waits");
        assert_eq!(blocked.await.expect("an outcome"), outcome("blocked"));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_carries_on() {
        let threads = StepThreads::new();
        let panicked = threads.run(Box::new(|| panic!("on purpose"))).await;
        assert!(panicked.is_err());
        let after = threads
            .run(Box::new(|| outcome("after")))
            .await
            .expect("an outcome");
        assert_eq!(after, outcome("after"));
    }
}
