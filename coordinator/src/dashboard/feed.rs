//! One run followed for every browser that shows it: a task holds the
//! coordinator's `Watch` stream open, keeps the run's events in order with
//! their number, and tells the browsers' event streams when something new
//! arrived.
//!
//! The numbers are what browsers resume from (`Last-Event-ID`). They are
//! positions in the run's history, which the coordinator replays from its
//! journal at the start of every `Watch`. When the stream breaks (the
//! coordinator restarted, or this watcher fell behind), the task watches
//! again: the replayed history is matched against the events already held,
//! so the ones it already has are not numbered twice, and the ones it missed
//! while it was away are added. Matching is by content (every field of the
//! event, its time in milliseconds included), counted, so two identical
//! lines are kept as two.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backout_proto::wire;
use serde_json::Value;
use tokio::sync::watch;

use super::Upstream;
use crate::cli::{runs::summary_json, watch::event_json};

/// Where the feed stands with the coordinator, as the page's banner says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// First connection under way.
    Connecting,
    /// The stream is open.
    Live,
    /// The stream broke; asking again.
    Reconnecting,
    /// The run has ended and every event is here.
    Ended,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Live => "live",
            Link::Reconnecting => "reconnecting",
            Link::Ended => "ended",
        }
    }
}

/// What a feed holds. Events are numbered from 1: event `n` is `events[n-1]`.
#[derive(Debug)]
pub struct FeedState {
    pub summary: Option<Value>,
    /// Bumped each time the summary changes.
    pub summary_version: u64,
    pub events: Vec<Value>,
    /// How many times each event (by its JSON text) is held.
    held: HashMap<String, usize>,
    pub link: Link,
    /// Why the last connection failed (for the banner).
    pub error: Option<String>,
}

/// A followed run: its state and a counter that moves on every change.
#[derive(Debug)]
pub struct Feed {
    state: Mutex<FeedState>,
    changed: watch::Sender<u64>,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            state: Mutex::new(FeedState {
                summary: None,
                summary_version: 0,
                events: Vec::new(),
                held: HashMap::new(),
                link: Link::Connecting,
                error: None,
            }),
            changed: watch::channel(0).0,
        }
    }

    /// The state, to read. A panic while it was held cannot leave it half
    /// written (every change is a push or an assignment), so a poisoned lock
    /// is taken as it is.
    pub fn lock(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn update(&self, change: impl FnOnce(&mut FeedState)) {
        change(&mut self.lock());
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Every feed of this dashboard, by run id.
#[derive(Debug, Default)]
pub struct Feeds {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
}

impl Feeds {
    /// The feed of `run_id`, started on first use.
    pub fn get(&self, upstream: &Arc<Upstream>, run_id: &str) -> Arc<Feed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = feeds.get(run_id) {
            return feed.clone();
        }
        let feed = Arc::new(Feed::new());
        feeds.insert(run_id.to_string(), feed.clone());
        tokio::spawn(follow(upstream.clone(), run_id.to_string(), feed.clone()));
        feed
    }
}

/// Adds the events of one `Watch` stream that the feed does not hold yet.
/// `seen` counts this stream's events by content: an event is new when this
/// stream has now shown it more times than the feed holds it.
fn absorb(state: &mut FeedState, seen: &mut HashMap<String, usize>, event: Value) {
    let key = event.to_string();
    let count = seen.entry(key.clone()).or_insert(0);
    *count += 1;
    let held = state.held.entry(key).or_insert(0);
    if *count > *held {
        *held += 1;
        state.events.push(event);
    }
}

/// Follows `run_id` until it has ended, watching again a second after the
/// stream breaks.
async fn follow(upstream: Arc<Upstream>, run_id: String, feed: Arc<Feed>) {
    loop {
        match watch_once(&upstream, &run_id, &feed).await {
            Ok(true) => {
                feed.update(|s| s.link = Link::Ended);
                return;
            }
            Ok(false) => {
                tracing::info!(run = %run_id, "watch stream ended early; watching again");
                feed.update(|s| s.link = Link::Reconnecting);
            }
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "watch failed; retrying");
                let text = format!("{e:#}");
                let gone = e.downcast_ref::<NotFound>().is_some();
                feed.update(|s| {
                    s.link = Link::Reconnecting;
                    s.error = Some(text);
                });
                // A run the coordinator does not know will not appear later.
                if gone {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no such run")]
struct NotFound;

/// One `Watch` stream, read to its end. `Ok(true)`: the run has ended.
async fn watch_once(upstream: &Upstream, run_id: &str, feed: &Feed) -> anyhow::Result<bool> {
    let mut control = upstream.client().await?;
    let reply = control
        .watch(wire::WatchRequest {
            run_id: run_id.to_string(),
        })
        .await;
    let mut stream = match reply {
        Ok(reply) => reply.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => return Err(NotFound.into()),
        Err(status) => {
            upstream.forget(&status).await;
            return Err(crate::cli::client::status_error(status));
        }
    };
    let mut seen = HashMap::new();
    let mut ended = false;
    loop {
        let update = match stream.message().await {
            Ok(Some(update)) => update,
            Ok(None) => return Ok(ended),
            Err(status) => {
                // A broken stream: dial again next time, whatever it says.
                upstream.reset().await;
                return Err(crate::cli::client::status_error(status));
            }
        };
        if update.missed > 0 {
            // This watcher fell behind: watch again, and the replayed
            // history brings what was missed.
            return Ok(false);
        }
        feed.update(|s| {
            s.link = Link::Live;
            s.error = None;
            if let Some(summary) = &update.summary {
                s.summary = Some(summary_json(summary));
                s.summary_version += 1;
            }
            if let Some(event) = &update.event {
                ended |= event.kind == "ended";
                absorb(s, &mut seen, event_json(event));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> FeedState {
        Feed::new().state.into_inner().unwrap()
    }

    #[test]
    fn a_replayed_history_adds_only_what_was_missed_and_keeps_repeated_lines() {
        let mut s = state();
        let line = |t: i64, text: &str| json!({ "kind": "log", "at_ms": t, "text": text });
        let mut first = HashMap::new();
        for e in [line(1, "a"), line(2, "b"), line(2, "b")] {
            absorb(&mut s, &mut first, e);
        }
        assert_eq!(s.events.len(), 3);
        // The coordinator restarts: its history replays everything, then more.
        let mut second = HashMap::new();
        for e in [line(1, "a"), line(2, "b"), line(2, "b"), line(3, "c")] {
            absorb(&mut s, &mut second, e);
        }
        let texts: Vec<_> = s.events.iter().map(|e| e["text"].clone()).collect();
        assert_eq!(texts, [json!("a"), json!("b"), json!("b"), json!("c")]);
    }
}
