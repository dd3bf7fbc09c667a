//! Who is connected: one entry per agent session, plus what we last knew of
//! agents that have gone away (for `backout agents`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use backout_proto::wire;
use tokio::sync::mpsc;

use crate::fleet::PluginInfo;

/// What `backout agents` shows for one agent.
#[derive(Debug, Clone)]
pub struct AgentView {
    pub id: String,
    pub version: String,
    pub hostname: String,
    pub plugins: Vec<PluginInfo>,
    pub connected: bool,
    pub connected_since_ms: i64,
    pub last_seen_ms: i64,
    pub peer_addr: Option<SocketAddr>,
}

struct Entry {
    view: AgentView,
    /// Distinguishes this session from a later one of the same agent.
    session: u64,
    /// Sends to the agent's stream; `None` once the session has ended.
    tx: Option<mpsc::Sender<wire::CoordinatorMessage>>,
}

/// The registry of agent sessions. A plain mutex is enough: every critical
/// section is a few map operations, never an await.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<BTreeMap<String, Entry>>,
    next_session: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// Records a new session for `view.id`, replacing an older one (the older
    /// stream ends when its sender is dropped). Returns the session number,
    /// and the number of the session it replaced, if that one was still open.
    pub fn connect(
        &self,
        view: AgentView,
        tx: mpsc::Sender<wire::CoordinatorMessage>,
    ) -> (u64, Option<u64>) {
        let session = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = self.lock();
        let replaced = map.insert(
            view.id.clone(),
            Entry {
                view,
                session,
                tx: Some(tx),
            },
        );
        (
            session,
            replaced.filter(|e| e.tx.is_some()).map(|e| e.session),
        )
    }

    /// Marks the session ended, unless a newer session has replaced it.
    /// Returns whether it was the current session.
    pub fn disconnect(&self, id: &str, session: u64) -> bool {
        match self.lock().get_mut(id).filter(|e| e.session == session) {
            Some(entry) => {
                entry.view.connected = false;
                entry.tx = None;
                true
            }
            None => false,
        }
    }

    pub fn touch(&self, id: &str, session: u64, now_ms: i64) {
        if let Some(entry) = self.lock().get_mut(id).filter(|e| e.session == session) {
            entry.view.last_seen_ms = now_ms;
        }
    }

    /// The sender of a connected agent's stream, with its session number.
    pub fn sender(&self, id: &str) -> Option<(mpsc::Sender<wire::CoordinatorMessage>, u64)> {
        self.lock()
            .get(id)
            .and_then(|e| e.tx.clone().map(|tx| (tx, e.session)))
    }

    pub fn plugin(&self, id: &str, plugin: &str) -> Option<PluginInfo> {
        self.lock()
            .get(id)
            .and_then(|e| e.view.plugins.iter().find(|p| p.name == plugin).cloned())
    }

    pub fn list(&self) -> Vec<AgentView> {
        self.lock().values().map(|e| e.view.clone()).collect()
    }

    pub fn connected_ids(&self) -> Vec<String> {
        self.lock()
            .values()
            .filter(|e| e.tx.is_some())
            .map(|e| e.view.id.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (each operation is one insert or field write), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
