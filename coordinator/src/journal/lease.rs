//! The leader lease, kept: a standby waits for it ([`wait_for_lease`]),
//! the leader renews it every third of its TTL ([`keep`]) and steps down
//! when it cannot.
//!
//! **Stops at once.** A failed renewal makes the store refuse every append
//! from that moment (`PostgresStore::set_leading(false)`), and since every
//! command is journaled before it is sent, nothing more is dispatched. A
//! good renewal before the TTL has passed resumes writing; a renewal that
//! finds the lease taken over, or none good for a whole TTL, is the end:
//! `on_lost` is called (the coordinator steps down), as it is by an append
//! that meets another epoch in the database (`Journal::on_fenced`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::postgres::{PostgresStore, Taken};

/// Takes the lease for `holder` as soon as it is free or expired; returns
/// the new epoch and how the one before ended. Says once per change who leads meanwhile, and keeps
/// `leader` set to the holder's address.
///
/// **At once on a release.** The standby `LISTEN`s on the lease's channel
/// and tries the lease as soon as a leader that stops (SIGTERM) says it
/// released it; the poll every `min(ttl / 3, 1 s)` stays, for a leader that
/// died (its lease expires) and for a lost notification or connection.
pub async fn wait_for_lease(
    store: Arc<PostgresStore>,
    holder: String,
    ttl: Duration,
    leader: tokio::sync::watch::Sender<String>,
) -> Taken {
    let every = (ttl / 3).min(Duration::from_secs(1));
    let mut said = None;
    // Listening before the first try: a release after it is not missed.
    let mut released = listen(&store).await;
    loop {
        let (s, h) = (store.clone(), holder.clone());
        let attempt = tokio::task::spawn_blocking(move || {
            s.seen(&h)?;
            let taken = s.take_lease(&h, ttl)?;
            Ok::<_, super::JournalError>((taken, s.lease()?))
        })
        .await;
        match attempt {
            Ok(Ok((Some(taken), _))) => {
                tracing::warn!(
                    epoch = taken.epoch,
                    holder = %holder,
                    previous = taken.previous,
                    vacant_ms = taken.vacant_ms,
                    "took the leader lease: this coordinator leads"
                );
                return taken;
            }
            Ok(Ok((None, row))) => {
                leader.send_replace(row.holder.clone());
                let now = (row.holder.clone(), row.epoch);
                if said.as_ref() != Some(&now) {
                    tracing::info!(leader = %row.holder, epoch = row.epoch, "standby: another coordinator leads");
                    said = Some(now);
                }
                if released.is_none() {
                    released = listen(&store).await;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "standby: cannot read the leader lease; trying again")
            }
            Err(e) => tracing::warn!(error = %e, "standby: the lease check did not finish"),
        }
        let ended = match released.as_mut() {
            Some(channel) => tokio::select! {
                got = channel.recv() => match got {
                    Some(()) => {
                        tracing::info!("standby: the leader released the lease; trying it now");
                        false
                    }
                    None => true,
                },
                () = tokio::time::sleep(every) => false,
            },
            None => {
                tokio::time::sleep(every).await;
                false
            }
        };
        // The listening connection ended: polled until it is back (listened
        // again after the next good check).
        if ended {
            released = None;
        }
    }
}

/// The lease's channel, or `None` (said) if it cannot be listened on.
async fn listen(store: &PostgresStore) -> Option<tokio::sync::mpsc::UnboundedReceiver<()>> {
    match store.listen().await {
        Ok(channel) => Some(channel),
        Err(e) => {
            tracing::warn!(error = %e, "standby: cannot listen for the lease's release; polling it");
            None
        }
    }
}

/// Renews the lease every `ttl / 3` for as long as it holds; calls
/// `on_lost` with the reason once it is lost.
pub fn keep(store: Arc<PostgresStore>, ttl: Duration, on_lost: Box<dyn Fn(String) + Send + Sync>) {
    tokio::spawn(async move {
        let every = ttl / 3;
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            // Released (the coordinator is stopping): nothing to keep.
            if store.released() {
                return;
            }
            // Not renewed for a whole TTL (a paused process wakes up here
            // long after): the lease may be another's by now.
            if renewed.elapsed() >= ttl {
                store.set_leading(false);
                on_lost(holder_now(&store, ttl).await);
                return;
            }
            let started = Instant::now();
            let s = store.clone();
            let attempt =
                tokio::time::timeout(every, tokio::task::spawn_blocking(move || s.renew(ttl)))
                    .await;
            match attempt {
                Ok(Ok(Ok(true))) => {
                    renewed = started;
                    store.set_leading(true);
                }
                Ok(Ok(Ok(false))) if store.released() => return,
                Ok(Ok(Ok(false))) => {
                    store.set_leading(false);
                    on_lost(holder_now(&store, ttl).await);
                    return;
                }
                _ if store.released() => return,
                failed => {
                    store.set_leading(false);
                    let error = match failed {
                        Ok(Ok(Err(e))) => e.to_string(),
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {}", humantime::format_duration(every)),
                    };
                    tracing::error!(%error, "cannot renew the leader lease: writing and dispatching stopped until it is renewed");
                }
            }
        }
    });
}

/// Why the lease is lost, naming who holds it now if the database says
/// (asked twice: the first call may meet a connection the server ended).
async fn holder_now(store: &Arc<PostgresStore>, ttl: Duration) -> String {
    let mine = super::JournalStore::epoch(&**store);
    let mut last = String::new();
    for _ in 0..2 {
        let s = store.clone();
        match tokio::time::timeout(ttl, tokio::task::spawn_blocking(move || s.lease())).await {
            Ok(Ok(Ok(row))) if row.epoch != mine => {
                let holder = if row.holder.is_empty() {
                    "nobody"
                } else {
                    &row.holder
                };
                return format!(
                    "the leader lease was taken over: epoch {} held by {holder} (this coordinator's: {mine})",
                    row.epoch
                );
            }
            Ok(Ok(Ok(_))) => {
                return format!(
                    "the leader lease (epoch {mine}) was not renewed within {}",
                    humantime::format_duration(ttl)
                );
            }
            Ok(Ok(Err(e))) => last = e.to_string(),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no answer".into(),
        }
    }
    format!(
        "the leader lease (epoch {mine}) was not renewed within {}, and it cannot be read: {last}",
        humantime::format_duration(ttl)
    )
}
