//! The fleet CA's certificate revocation list, handed to agents so they can
//! check operators' signed approvals themselves: sent right after Welcome,
//! and again to every connected agent whenever the coordinator's `crl` file
//! changes (`backout pki revoke` rewrites it). The agent checks the list's
//! CA signature and freshness itself; the coordinator only carries it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backout_proto::wire;
use wire::coordinator_message::Kind as CoordKind;

use super::registry::Registry;

/// How often the file is looked at.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The message carrying the list in `path`; `None` when it cannot be read
/// (said in the log: agents keep the list they have).
pub fn message(path: &Path) -> Option<wire::CoordinatorMessage> {
    match std::fs::read(path) {
        Ok(pem) => Some(wire::CoordinatorMessage {
            kind: Some(CoordKind::Crl(wire::RevocationList { pem })),
        }),
        Err(e) => {
            tracing::warn!(crl = %path.display(), error = %e, "cannot read the CRL to hand to agents");
            None
        }
    }
}

/// Watches `path` and sends the list to every connected agent when its
/// content changes.
pub fn spawn_watch(path: PathBuf, registry: Arc<Registry>) {
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        let mut ticker = tokio::time::interval(WATCH_EVERY);
        loop {
            ticker.tick().await;
            let Ok(now) = std::fs::read(&path) else {
                continue;
            };
            if last.as_deref() == Some(now.as_slice()) {
                continue;
            }
            last = Some(now.clone());
            let message = wire::CoordinatorMessage {
                kind: Some(CoordKind::Crl(wire::RevocationList { pem: now })),
            };
            let agents = registry.connected_ids();
            for id in &agents {
                if let Some((tx, _)) = registry.sender(id) {
                    let _ = tx.try_send(message.clone());
                }
            }
            tracing::info!(crl = %path.display(), agents = agents.len(), "the CRL changed: sent to the connected agents");
        }
    });
}
