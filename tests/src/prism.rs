//! Prism (`@stoplight/prism-cli`) serving a provider's own OpenAPI document
//! as a mock: it checks every request against the document and answers 401
//! without the credentials the document asks for, 422 (or 404 for a path it
//! does not have, 415 for a wrong content type) for a request it rejects,
//! and a schema-shaped 2xx otherwise. `scripts/install-parts.sh` installs it
//! into `target/node`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::target_dir;

/// The Prism launcher installed by `scripts/install-parts.sh`.
pub fn prism_bin() -> PathBuf {
    let path = target_dir().join("node/node_modules/.bin/prism");
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-parts.sh first",
        path.display()
    );
    path
}

/// A provider's API document, copied into the repository from the providers'
/// published documents (see `tests/provider-apis/README.md`).
pub fn provider_api(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("provider-apis")
        .join(file)
}

/// A running `prism mock`, killed on drop.
pub struct Prism {
    child: Child,
    pub port: u16,
    /// Prism's own log: one `[HTTP SERVER] <method> <path>` line per request
    /// and the validator's verdicts.
    pub log: PathBuf,
}

impl Prism {
    /// Starts `prism mock` for `document` on a free loopback port, logging to
    /// `log`, and waits until it says it is listening (at most 90 s: Node
    /// reads and resolves the whole document first).
    pub fn start(document: &Path, log: &Path) -> Prism {
        Prism::spawn(&["mock"], document, None, log)
    }

    /// Starts `prism proxy` for `document` in front of `upstream`: every
    /// request and answer is checked against the document (violations are
    /// logged as `Violation: request…` / `Violation: response…`).
    pub fn proxy(document: &Path, upstream: &str, log: &Path) -> Prism {
        Prism::spawn(&["proxy"], document, Some(upstream), log)
    }

    fn spawn(mode: &[&str], document: &Path, upstream: Option<&str>, log: &Path) -> Prism {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(prism_bin())
            .args(mode)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(document)
            .args(upstream)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let mut prism = Prism {
            child,
            port,
            log: log.to_path_buf(),
        };
        let started = Instant::now();
        loop {
            let text = prism.log_text();
            if text.contains("Prism is listening on") {
                return prism;
            }
            if let Ok(Some(status)) = prism.child.try_wait() {
                panic!("prism exited with {status}: {text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "prism did not start in 90 s: {text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every request Prism received, as `(METHOD, path)`, in order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.log_text()
            .lines()
            .filter(|l| l.contains("Request received"))
            .filter_map(|l| {
                let rest = l.split("[HTTP SERVER] ").nth(1)?;
                let mut words = rest.split_whitespace();
                let method = words.next()?.to_ascii_uppercase();
                let path = words.next()?.to_string();
                Some((method, path))
            })
            .collect()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
