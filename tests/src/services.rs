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
    /// Scrapes `targets` over plain HTTP (job `app`).
    pub async fn start(dir: &Path, targets: &[String]) -> Prometheus {
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let job = format!(
            "  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        Prometheus::start_jobs(dir, &job).await
    }

    /// Scrapes `targets` over mutual TLS with the job docs/config.md shows
    /// (`scheme: https`, `tls_config`), its files and targets replaced by
    /// `pki`'s and `targets`.
    pub async fn start_mtls(dir: &Path, targets: &[String], pki: &ScrapePki) -> Prometheus {
        let docs = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md"),
        )
        .unwrap();
        let after = "Prometheus scrapes the mutual TLS listener with:\n\n```yaml\n";
        let start = docs.find(after).expect("docs/config.md's Prometheus job") + after.len();
        let example = &docs[start..start + docs[start..].find("```").unwrap()];
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let job: String = example
            .lines()
            .filter(|line| *line != "scrape_configs:")
            .map(|line| {
                let indent = &line[..line.len() - line.trim_start().len()];
                let line = line.split(" #").next().unwrap_or(line).trim_end();
                let replaced = match line.trim_start().split_once(':') {
                    Some(("ca_file", _)) => format!("{indent}ca_file: {}", pki.ca.display()),
                    Some(("cert_file", _)) => {
                        format!("{indent}cert_file: {}", pki.client_cert.display())
                    }
                    Some(("key_file", _)) => {
                        format!("{indent}key_file: {}", pki.client_key.display())
                    }
                    Some(("- targets", _)) => {
                        format!("{indent}- targets: [{}]", targets.join(", "))
                    }
                    _ => line.to_string(),
                };
                format!("{replaced}\n")
            })
            .collect();
        assert!(job.contains("scheme: https"), "{job}");
        Prometheus::start_jobs(dir, &job).await
    }

    /// Starts Prometheus with `jobs`, the entries of `scrape_configs`.
    async fn start_jobs(dir: &Path, jobs: &str) -> Prometheus {
        let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("prometheus is not installed: scripts/test.sh installs Debian's package");
        let data = dir.join("prometheus-data");
        std::fs::create_dir_all(&data).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
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

/// The certificates of a monitoring system that scrapes `/metrics` over
/// mutual TLS, written as PEM files into a directory: its CA, the metrics
/// listeners' server certificate (for 127.0.0.1 and localhost), the
/// scraper's client certificate, and a stranger's client certificate from
/// another CA.
pub struct ScrapePki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

impl ScrapePki {
    pub fn write(dir: &Path) -> ScrapePki {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        };
        fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        }
        fn leaf(
            issuer: &Issuer<'static, KeyPair>,
            names: &[&str],
            usage: ExtendedKeyUsagePurpose,
        ) -> (String, String) {
            let key = KeyPair::generate().unwrap();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        }
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (ca_pem, issuer) = ca("monitoring CA");
        let (server, server_key) = leaf(
            &issuer,
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) = leaf(
            &issuer,
            &["prometheus"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (_, other) = ca("another CA");
        let (stranger, stranger_key) =
            leaf(&other, &["prometheus"], ExtendedKeyUsagePurpose::ClientAuth);
        ScrapePki {
            ca: write("scrape-ca.pem", &ca_pem),
            server_cert: write("metrics.pem", &server),
            server_key: write("metrics.key", &server_key),
            client_cert: write("prometheus.pem", &client),
            client_key: write("prometheus.key", &client_key),
            stranger_cert: write("stranger.pem", &stranger),
            stranger_key: write("stranger.key", &stranger_key),
        }
    }

    /// The `[metrics.tls]` table naming these files.
    pub fn metrics_tls(&self) -> String {
        format!(
            "[metrics.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            self.server_cert.display(),
            self.server_key.display(),
            self.ca.display()
        )
    }

    /// `GET /metrics` over TLS at `addr`, trusting this CA and presenting
    /// `client` (a certificate and key file), or no certificate: the
    /// response's head and body, or why there is none.
    pub async fn get_metrics(
        &self,
        addr: &str,
        client: Option<(&Path, &Path)>,
    ) -> Result<(String, String), String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect();
                let key = PrivateKeyDer::from_pem_file(key).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        // TLS 1.3: a refused client certificate shows at the first read.
        tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let answer = String::from_utf8_lossy(&answer).to_string();
        match answer.split_once("\r\n\r\n") {
            Some((head, body)) => Ok((head.to_string(), body.to_string())),
            None => Err(format!("no HTTP answer: {answer:?}")),
        }
    }
}
