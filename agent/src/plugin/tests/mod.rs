//! Tests that load the real plugin components from `target/plugins/`.
//!
//! They never compile a plugin: build them first with
//! `scripts/build-plugins.sh`. Each test starts its own host with the grants
//! it needs, and local servers on `127.0.0.1:0`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod grants;
mod health;
mod host;
mod sandbox;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    Grants, PluginConfig, PluginHost, SecretStore, StepEvent, StepLimits, StepLimitsConfig,
    StepOutcome, StepRequest,
};

/// The built component `target/plugins/<name>.wasm`.
pub(super) fn wasm(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("plugins").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh first",
        path.display()
    );
    path
}

pub(super) fn config(name: &str, grants: Grants, limits: Option<StepLimitsConfig>) -> PluginConfig {
    PluginConfig {
        name: name.to_string(),
        path: wasm(name),
        grants,
        limits,
    }
}

/// A host with one plugin.
pub(super) fn host(name: &str, grants: Grants) -> PluginHost {
    host_with(vec![config(name, grants, None)], SecretStore::empty())
}

pub(super) fn host_with(plugins: Vec<PluginConfig>, secrets: SecretStore) -> PluginHost {
    PluginHost::new(&plugins, secrets, StepLimits::default()).expect("the host starts")
}

/// Options of one test step.
#[derive(Default, Clone)]
pub(super) struct Opts {
    pub dry_run: bool,
    pub deadline: Option<Duration>,
}

/// Runs `action` of plugin `name` and collects its events.
pub(super) async fn step(
    host: &PluginHost,
    name: &str,
    action: &str,
    params: serde_json::Value,
    opts: Opts,
) -> (StepOutcome, Vec<StepEvent>) {
    let plugin = host
        .resolve(name, &lock_sha(host, name))
        .expect("the plugin resolves");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let request = StepRequest {
        step_id: format!("{name}-{action}"),
        action: action.to_string(),
        params_json: params.to_string(),
        dry_run: opts.dry_run,
        deadline: opts.deadline,
    };
    let outcome = host.run(plugin, request, tx).await;
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    (outcome, events)
}

/// The sha256 the host reports for `name`.
pub(super) fn lock_sha(host: &PluginHost, name: &str) -> String {
    host.inventory()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.sha256)
        .expect("the plugin is in the inventory")
}

/// The data of a successful outcome, parsed.
pub(super) fn data(outcome: &StepOutcome) -> serde_json::Value {
    match outcome {
        StepOutcome::Succeeded { data_json, .. } => {
            serde_json::from_str(data_json).expect("data is JSON")
        }
        StepOutcome::Failed { code, message } => panic!("the step failed: {code}: {message}"),
    }
}

/// The code and message of a failed outcome.
pub(super) fn failure(outcome: &StepOutcome) -> (String, String) {
    match outcome {
        StepOutcome::Failed { code, message } => (code.clone(), message.clone()),
        StepOutcome::Succeeded { summary, .. } => panic!("the step succeeded: {summary}"),
    }
}

/// One HTTP request as the test server saw it.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the test server answers: status, body, and a delay before answering.
pub(super) type Route = fn(&Seen) -> (u16, String, Duration);

/// A tiny HTTP/1.1 server on 127.0.0.1, one thread per connection.
pub(super) struct TestServer {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    pub(super) fn start(route: Route) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve(stream, route, &log));
            }
        });
        TestServer { port, seen }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn serve(stream: TcpStream, route: Route, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let seen = Seen {
        method,
        path,
        headers,
        body,
    };
    let (status, text, delay) = route(&seen);
    log.lock().expect("lock").push(seen);
    std::thread::sleep(delay);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// A port on which nothing listens.
pub(super) fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
