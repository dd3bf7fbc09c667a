//! A real SMTP server on loopback (`tests/smtp/recorder.py`, Python's
//! `aiosmtpd` from the venv `scripts/install-parts.sh` makes in
//! `target/py/smtp`): STARTTLS or TLS from the first byte with a self-signed
//! certificate made here, AUTH against one user and password (or refusing
//! every login), and every accepted message written to a folder as JSON.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::target_dir;

pub const USER: &str = "backout@samia-tarot.test";
/// The relay's password: tests look for it in every log, journal and report.
pub const PASSWORD: &str = "pw-7c1e-smtp-s3cret";

/// How the server behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmtpOptions {
    /// TLS from the first byte (port 465 style) instead of STARTTLS.
    pub implicit_tls: bool,
    /// Answer every AUTH with 535.
    pub refuse_login: bool,
}

/// A running recorder, killed on drop.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    options: SmtpOptions,
}

impl SmtpServer {
    /// Makes a self-signed certificate for `localhost`, starts the server on
    /// a free port and waits until it says it listens.
    pub fn start(options: SmtpOptions) -> SmtpServer {
        let python = target_dir().join("py/smtp/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/install-parts.sh first",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        crate::write_secret(&dir.path().join("password"), format!("{PASSWORD}\n"));
        std::fs::create_dir(dir.path().join("received")).unwrap();
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/recorder.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .arg("--cert")
            .arg(dir.path().join("cert.pem"))
            .arg("--key")
            .arg(dir.path().join("key.pem"))
            .arg("--out")
            .arg(dir.path().join("received"))
            .arg("--user")
            .arg(USER)
            .arg("--password-file")
            .arg(dir.path().join("password"));
        if options.implicit_tls {
            command.arg("--implicit-tls");
        }
        if options.refuse_login {
            command.arg("--refuse-login");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut server = SmtpServer {
            child,
            port: 0,
            dir,
            options,
        };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(port) = text
                .lines()
                .find_map(|l| l.strip_prefix("listening "))
                .and_then(|p| p.trim().parse().ok())
            {
                server.port = port;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the SMTP server exited with {status}: {text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the SMTP server did not start in 30 s: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The certificate clients must trust.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The coordinator's `[smtp]` section for this server (the password in
    /// a file of its own, as an operator would keep it).
    pub fn coordinator_config(&self) -> String {
        format!(
            "[smtp]\nserver = \"localhost\"\nport = {}\ntls = \"{}\"\nusername = \"{USER}\"\npassword_file = \"{}\"\nfrom = \"Backout <backout@samia-tarot.test>\"\nca = \"{}\"\ntimeout = \"10s\"\n",
            self.port,
            if self.options.implicit_tls {
                "tls"
            } else {
                "starttls"
            },
            self.dir.path().join("password").display(),
            self.cert().display()
        )
    }

    /// Every message received so far: `mail_from`, `rcpt_tos`, `login`,
    /// `encrypted`, `data` (the raw message), `headers` (decoded, by name)
    /// and `body` (decoded text).
    pub fn messages(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("received")) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some("json")
                && let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(value) = serde_json::from_str(&text)
            {
                out.push(value);
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
