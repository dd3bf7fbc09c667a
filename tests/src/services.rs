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

/// A real Prometheus scraping `targets` every second.
pub struct Prometheus {
    pub proc: Proc,
    pub url: String,
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
        let ready = listen.clone();
        wait_for("Prometheus to be ready", Duration::from_secs(60), || {
            let mut stream = std::net::TcpStream::connect(&ready).ok()?;
            use std::io::{Read, Write};
            stream
                .write_all(b"GET /-/ready HTTP/1.0\r\nHost: x\r\n\r\n")
                .ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            response.contains(" 200 ").then_some(())
        })
        .await;
        Prometheus { proc, url }
    }
}
