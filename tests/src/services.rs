//! Real parts for end-to-end tests: the sample app (Python, from
//! `examples/sample-app`) and a real Prometheus (Debian's `prometheus`)
//! scraping it, each on free loopback ports in a temp dir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Proc, wait_for};

/// A free loopback port (bound, read back, released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The sample app, with its port and error log.
pub struct SampleApp {
    pub proc: Proc,
    pub port: u16,
    pub error_log: PathBuf,
}

impl SampleApp {
    pub async fn start(dir: &Path) -> SampleApp {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-app/sample_app.py");
        let port_file = dir.join("app.port");
        let error_log = dir.join("app-error.log");
        let proc = Proc::spawn(
            Path::new("python3"),
            &[
                script.to_str().unwrap(),
                "--port-file",
                port_file.to_str().unwrap(),
                "--error-log",
                error_log.to_str().unwrap(),
            ],
            &dir.join("app.log"),
        );
        let port = wait_for("the sample app to start", Duration::from_secs(20), || {
            std::fs::read_to_string(&port_file)
                .ok()?
                .trim()
                .parse::<u16>()
                .ok()
        })
        .await;
        SampleApp {
            proc,
            port,
            error_log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Switches a fault on or off, e.g. `{"error_rate": 0.12}`.
    pub async fn fault(&self, fault: serde_json::Value) {
        let body = fault.to_string();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let request = format!(
            "POST /admin/fault HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "{response}"
        );
    }
}

/// A plain-HTTP/1.0 GET of `path` from `addr` (`host:port`): the
/// response's head (status line and headers) and its body, or `None` when
/// the server cannot be reached or answers nothing.
pub fn http_get(addr: &str, path: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.to_string(), body.to_string()))
}

/// `text` percent-encoded for a URL's query.
fn query_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Prometheus scraping `targets` every second.
pub struct Prometheus {
    pub proc: Proc,
    pub url: String,
    /// Its `host:port`.
    pub addr: String,
}

impl Prometheus {
    pub async fn start(dir: &Path, targets: &[String]) -> Prometheus {
        let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("prometheus is not installed: scripts/test.sh installs Debian's package");
        let data = dir.join("prometheus-data");
        std::fs::create_dir_all(&data).unwrap();
        let config = dir.join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let proc = Proc::spawn(
            &binary,
            &[
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", data.display()),
                &format!("--web.listen-address={listen}"),
                "--log.level=warn",
            ],
            &dir.join("prometheus.log"),
        );
        let url = format!("http://{listen}");
        wait_for("Prometheus to be ready", Duration::from_secs(60), || {
            let (head, _) = http_get(&listen, "/-/ready")?;
            head.contains(" 200 ").then_some(())
        })
        .await;
        Prometheus {
            proc,
            url,
            addr: listen,
        }
    }

    /// An instant query through Prometheus' HTTP API: each series' labels
    /// and value (empty when nothing matches yet, or Prometheus does not
    /// answer).
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let path = format!("/api/v1/query?query={}", query_encoded(promql));
        let Some((_, body)) = http_get(&self.addr, &path) else {
            return Vec::new();
        };
        let Ok(answer) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Vec::new();
        };
        answer["data"]["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .filter_map(|s| {
                        let value = s["value"][1].as_str()?.parse().ok()?;
                        Some((s["metric"].clone(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `promql`'s single value is `want`, and returns it.
    pub async fn wait_value(&self, promql: &str, want: f64) -> f64 {
        wait_for(
            &format!("Prometheus to say {promql} = {want}"),
            Duration::from_secs(60),
            || match self.query(promql).as_slice() {
                [(_, value)] if *value == want => Some(*value),
                _ => None,
            },
        )
        .await
    }
}
