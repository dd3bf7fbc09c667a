//! A small stateful Unleash for the remedy tests: it keeps each flag's
//! state in every environment and answers the admin API's feature
//! environment endpoints the `flags` plugin calls (read a flag's state,
//! turn it on or off), telling the test of each change so the change can
//! drive what the flag stands for (e.g. the sample app's error rate). Prism
//! runs in front of it as a proxy, checking every request and answer
//! against Unleash's own OpenAPI document.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub struct FakeUnleash {
    pub addr: SocketAddr,
    /// Each flag's state (the same in every environment).
    pub flags: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl FakeUnleash {
    /// Serves `flags` (name, enabled); each change is sent on the returned
    /// channel as (flag, enabled).
    pub async fn start(
        flags: &[(&str, bool)],
    ) -> (FakeUnleash, mpsc::UnboundedReceiver<(String, bool)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<BTreeMap<String, bool>>> = Arc::new(Mutex::new(
            flags.iter().map(|(f, on)| (f.to_string(), *on)).collect(),
        ));
        let (changes, received) = mpsc::unbounded_channel();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let state = shared.clone();
                let changes = changes.clone();
                tokio::spawn(async move {
                    // The plugin's requests have no body: the head is enough.
                    let mut buf = vec![0u8; 16384];
                    let mut len = 0;
                    while !String::from_utf8_lossy(&buf[..len]).contains("\r\n\r\n") {
                        match stream.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => len += n,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..len]).to_string();
                    let mut words = head.split_whitespace();
                    let method = words.next().unwrap_or_default().to_string();
                    let path = words.next().unwrap_or_default().to_string();
                    let (status, body) = answer(&method, &path, &state, &changes);
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (FakeUnleash { addr, flags: state }, received)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn enabled(&self, flag: &str) -> Option<bool> {
        self.flags.lock().unwrap().get(flag).copied()
    }
}

/// `GET …/features/{flag}/environments/{env}` and `POST …/{on|off}`.
fn answer(
    method: &str,
    path: &str,
    state: &Mutex<BTreeMap<String, bool>>,
    changes: &mpsc::UnboundedSender<(String, bool)>,
) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let not_found = (
        "404 Not Found",
        json!({ "name": "NotFoundError", "message": format!("no {path}") }).to_string(),
    );
    // api/admin/projects/{p}/features/{flag}/environments/{env}[/on|/off]
    let (flag, turn) = match parts.as_slice() {
        [
            "api",
            "admin",
            "projects",
            _,
            "features",
            flag,
            "environments",
            rest @ ..,
        ] => match rest {
            [_env] => (*flag, None),
            [_env, turn] => (*flag, Some(*turn)),
            _ => return not_found,
        },
        _ => return not_found,
    };
    let mut flags = state.lock().unwrap();
    let Some(enabled) = flags.get_mut(flag) else {
        return not_found;
    };
    match (method, turn) {
        ("GET", None) => (
            "200 OK",
            json!({ "name": parts[7], "enabled": *enabled }).to_string(),
        ),
        ("POST", Some(turn @ ("on" | "off"))) => {
            *enabled = turn == "on";
            let _ = changes.send((flag.to_string(), *enabled));
            ("200 OK", json!({ "name": flag }).to_string())
        }
        _ => not_found,
    }
}
