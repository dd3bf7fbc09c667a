//! `backout dashboard` as an operator runs it, on a free loopback port, and
//! plain HTTP requests to it (the browser tests drive it through Chromium).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::fleet::Fleet;
use crate::{Proc, bin};

/// How long the dashboard may take to say where it listens.
const PATIENCE: Duration = Duration::from_secs(60);

/// `backout dashboard` as `operator`, on a free loopback port.
pub async fn dashboard(fleet: &Fleet, operator: &str) -> Dashboard {
    let mut proc = Proc::spawn_with(
        &bin("backout"),
        &["dashboard", "--listen", "127.0.0.1:0"],
        &fleet.path().join(format!("dashboard-{operator}.log")),
        &[
            ("BACKOUT_COORDINATOR", fleet.addr.as_str()),
            ("BACKOUT_PKI", fleet.path().to_str().unwrap()),
            ("BACKOUT_OPERATOR", operator),
        ],
    );
    let url = first_line_after(&mut proc, "backout: dashboard on ").await;
    Dashboard { _proc: proc, url }
}

pub struct Dashboard {
    pub _proc: Proc,
    /// `http://127.0.0.1:PORT/`
    pub url: String,
}

impl Dashboard {
    pub fn page(&self, path: &str) -> String {
        format!("{}{}", self.url, path.trim_start_matches('/'))
    }

    pub fn host(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }
}

/// Reads `proc`'s stdout until a line starting with `prefix`; the rest of
/// that line. Stdout keeps being drained afterwards.
pub async fn first_line_after(proc: &mut Proc, prefix: &str) -> String {
    let stdout = proc.child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
        panic!("exited before printing `{prefix}`: {}", proc.log_text());
    })
    .await
    .unwrap_or_else(|_| panic!("no `{prefix}` line in time"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    found
}

/// One HTTP/1.1 request to the dashboard; the status code and body.
pub async fn http(dashboard: &Dashboard, request: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(dashboard.host())
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `GET path` on the dashboard: the status code and the page.
pub async fn get(dashboard: &Dashboard, path: &str) -> (u16, String) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        dashboard.host()
    );
    http(dashboard, &request).await
}
