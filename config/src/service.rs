//! Telling systemd how a service is doing (`sd_notify(3)`), for units with
//! `Type=notify`: `READY=1` once the service can serve, `WATCHDOG=1` pings
//! while it runs (when the unit sets `WatchdogSec=`), `STOPPING=1` when it
//! starts shutting down.
//!
//! Every notice is a no-op when `NOTIFY_SOCKET` is unset (the binary was not
//! started by systemd, or by a unit without `Type=notify`), and a notice that
//! cannot be sent is logged, never fatal: supervision is a convenience, the
//! service is the point.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends `READY=1`: start-up is over.
pub fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// Sends `STOPPING=1`: the service is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

/// The interval between watchdog pings: half of `WATCHDOG_USEC` (set by
/// systemd from `WatchdogSec=`), or `None` when no watchdog is asked for.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

/// Sends `WATCHDOG=1` every [`watchdog_interval`], from a task on the
/// current tokio runtime, when a watchdog is asked for. The pings come from
/// the runtime that serves: a runtime that stops scheduling tasks stops
/// pinging, and systemd restarts the service.
pub fn spawn_watchdog() {
    let Some(every) = watchdog_interval() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog], "WATCHDOG=1");
        }
    });
}

fn send(state: &[NotifyState<'_>], what: &str) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot tell systemd {what}");
    }
}
