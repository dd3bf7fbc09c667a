//! Support for Backout's end-to-end tests: real processes, real PKI, real
//! plugins, on free loopback ports.
//!
//! Tests never compile anything: `scripts/test.sh` builds the binaries and the
//! plugins first, and [`bin`] / [`plugin`] only find them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod dashboard;
pub mod fake;
pub mod fleet;
pub mod http;
pub mod otlp;
pub mod plans;
pub mod postgres;
pub mod prism;
pub mod providers;
pub mod proxy;
pub mod rig;
pub mod services;
pub mod smtp;
pub mod unleash;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// A built binary of the workspace (`backout`, `backout-agent`).
pub fn bin(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build` (scripts/test.sh does) before the tests",
        path.display()
    );
    path
}

/// A built plugin component (`health`, `testbed`).
pub fn plugin(name: &str) -> PathBuf {
    let path = target_dir().join("plugins").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh (scripts/test.sh does) before the tests",
        path.display()
    );
    path
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Runs a command to completion and returns its output.
/// Writes a secret file as an operator should: readable by its owner only
/// (an agent refuses a secret file every user can read).
pub fn write_secret(path: &Path, value: impl AsRef<[u8]>) {
    std::fs::write(path, value).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// The db plugin's `[[plugin]]` table and its secret, for an agent config:
/// backups written in `backups`, migrations read from `migrations`, the
/// database password in the file `secret`.
pub fn db_plugin_config(backups: &Path, migrations: &Path, secret: &Path) -> String {
    format!(
        r#"
[[plugin]]
name = "db"
path = "{plugin}"
[plugin.grants]
programs = ["pg_dump", "pg_restore", "psql", "sha256sum", "stat", "ls"]
dry_run_programs = ["psql", "ls"]
read = ["{backups}", "{migrations}"]
write = ["{backups}"]
secrets = ["DB_PASSWORD"]

[secrets]
DB_PASSWORD = {{ file = "{secret}" }}
"#,
        plugin = plugin("db").display(),
        backups = backups.display(),
        migrations = migrations.display(),
        secret = secret.display(),
    )
}

pub fn run(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(program);
    command.args(args).stdin(Stdio::null());
    command.env_remove("RUST_LOG");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// A fleet PKI in a temp dir, made by the real `backout pki` commands.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub domain: String,
}

impl Pki {
    pub fn new(domain: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let out = run(
            &bin("backout"),
            &[
                "pki",
                "init",
                "--dir",
                dir.path().to_str().unwrap(),
                "--trust-domain",
                domain,
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "pki init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pki {
            dir,
            domain: domain.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a certificate (`kind` is "agent" or "operator").
    pub fn issue(&self, kind: &str, name: &str) {
        self.pki(&["issue", kind, name]);
    }

    /// Runs `backout pki ARGS --dir <this PKI>`, which must succeed (e.g.
    /// `["issue", "operator", "alice", "--role", "dba"]`).
    pub fn pki(&self, args: &[&str]) {
        let mut all = vec!["pki"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--dir", self.path().to_str().unwrap()]);
        let out = run(&bin("backout"), &all, &[]);
        assert!(
            out.status.success(),
            "backout {}: {}",
            all.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn tls_files(&self, cert: &str) -> backout_tls::TlsFiles {
        backout_tls::TlsFiles {
            ca: self.path().join("ca.pem"),
            cert: self.path().join(format!("{cert}.pem")),
            key: self.path().join(format!("{cert}.key")),
        }
    }

    pub fn signer(&self) -> backout_proto::command::CommandSigner {
        let pem = std::fs::read_to_string(self.path().join("command-signing.key")).unwrap();
        backout_proto::command::CommandSigner::from_pkcs8_pem(&pem).unwrap()
    }
}

/// A child process that is killed when dropped, with its stderr in a file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `program`; stderr goes to `log`.
    pub fn spawn(program: &Path, args: &[&str], log: &Path) -> Proc {
        Self::spawn_with(program, args, log, &[])
    }

    /// Like [`Proc::spawn`], with more environment variables.
    pub fn spawn_with(program: &Path, args: &[&str], log: &Path, envs: &[(&str, &str)]) -> Proc {
        let stderr = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .envs(envs.iter().copied())
            .env_remove("RUST_LOG")
            .env("BACKOUT_LOG", "info,backout=debug,backout_agent=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Proc {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A coordinator started with `backout serve` on a free port.
pub struct Coordinator {
    pub proc: Proc,
    pub addr: String,
}

impl Coordinator {
    /// Writes `config` (TOML, without `listen`) to `dir/coordinator.toml` and
    /// starts the server on 127.0.0.1:0.
    pub async fn start(dir: &Path, config: &str) -> Coordinator {
        Self::start_on(dir, config, "127.0.0.1:0").await
    }

    /// A coordinator that knows agent `app-1` and operator `alice`
    /// (release-manager), with the PKI's keys.
    pub async fn minimal(pki: &Pki) -> Coordinator {
        let config = format!(
            r#"command_key = "{p}/command-signing.key"
[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
[[agent]]
id = "app-1"
[operators]
alice = ["release-manager"]
"#,
            p = pki.path().display()
        );
        Coordinator::start(pki.path(), &config).await
    }

    /// Like [`Coordinator::start`], on a given `host:port`.
    pub async fn start_on(dir: &Path, config: &str, listen: &str) -> Coordinator {
        Self::start_with(dir, config, listen, &[]).await
    }

    /// Like [`Coordinator::start_on`], with more environment variables.
    pub async fn start_with(
        dir: &Path,
        config: &str,
        listen: &str,
        envs: &[(&str, &str)],
    ) -> Coordinator {
        let mut serving = Serving::spawn(dir, "coordinator", config, listen, envs);
        let addr = serving
            .line("backout: listening on ", Duration::from_secs(20))
            .await;
        serving.into_coordinator(addr)
    }

    /// `backout serve --config PATH` with the file as it is; waits until it
    /// says where it listens.
    pub async fn serve(path: &Path, log: &Path, envs: &[(&str, &str)]) -> Coordinator {
        let mut serving = Serving::start(path, log, envs);
        let addr = serving
            .line("backout: listening on ", Duration::from_secs(20))
            .await;
        serving.into_coordinator(addr)
    }
}

/// A `backout serve` process whose standard output is read line by line:
/// a standby says it waits for the lease, and says it listens only once it
/// leads.
pub struct Serving {
    pub proc: Proc,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Serving {
    /// Writes `config` (TOML, without `listen`) to `dir/<name>.toml` and
    /// starts `backout serve` on `listen`, its log in `dir/<name>.log`.
    pub fn spawn(
        dir: &Path,
        name: &str,
        config: &str,
        listen: &str,
        envs: &[(&str, &str)],
    ) -> Serving {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, format!("listen = \"{listen}\"\n{config}")).unwrap();
        Self::start(&path, &dir.join(format!("{name}.log")), envs)
    }

    /// `backout serve --config PATH` with the file as it is, its log in `log`.
    pub fn start(path: &Path, log: &Path, envs: &[(&str, &str)]) -> Serving {
        let mut proc = Proc::spawn_with(
            &bin("backout"),
            &["serve", "--config", path.to_str().unwrap()],
            log,
            envs,
        );
        let stdout = proc.child.stdout.take().unwrap();
        Serving {
            proc,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// What follows `prefix` on the first line of standard output that
    /// starts with it; panics if the process exits first or `within` passes.
    pub async fn line(&mut self, prefix: &str, within: Duration) -> String {
        let (lines, proc) = (&mut self.lines, &self.proc);
        tokio::time::timeout(within, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.to_string();
                }
            }
            panic!("coordinator exited: {}", proc.log_text());
        })
        .await
        .unwrap_or_else(|_| panic!("no `{prefix}` line in {within:?}: {}", self.proc.log_text()))
    }

    /// The coordinator serving on `addr`; its output is drained from now on
    /// so that it never blocks on a full pipe.
    pub fn into_coordinator(self, addr: String) -> Coordinator {
        let mut lines = self.lines;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Coordinator {
            proc: self.proc,
            addr,
        }
    }
}

/// Starts `backout-agent` with the config at `config`.
pub fn start_agent(config: &Path, log: &Path) -> Proc {
    start_agent_with(config, &[], log)
}

/// Starts `backout-agent` with the config at `config` and more arguments
/// (e.g. `--sessions-from DIR`).
pub fn start_agent_with(config: &Path, args: &[&str], log: &Path) -> Proc {
    start_agent_envs(config, args, log, &[])
}

/// Like [`start_agent_with`], with more environment variables.
pub fn start_agent_envs(config: &Path, args: &[&str], log: &Path, envs: &[(&str, &str)]) -> Proc {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut proc = Proc::spawn_with(&bin("backout-agent"), &all, log, envs);
    let stdout = proc.child.stdout.take().unwrap();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    proc
}

/// An agent configuration with the health and testbed plugins.
/// `extra` is appended (more grants, secrets...).
pub fn agent_config(
    pki: &Pki,
    id: &str,
    coordinator: &str,
    state_dir: &Path,
    testbed_grants: &str,
) -> String {
    let p = pki.path().display();
    // Several coordinators (`a:1,b:2`) are written as a list.
    let coordinator = coordinator
        .split(',')
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"coordinator = [{coordinator}]
command_key = "{p}/command-signing.pub"
state_dir = "{state}"
clock_skew = "2s"

[tls]
ca = "{p}/ca.pem"
cert = "{p}/agents/{id}.pem"
key = "{p}/agents/{id}.key"

[reconnect]
initial = "100ms"
max = "1s"

[limits]
deadline = "20s"
memory = "64MiB"
output = "1MiB"

[[plugin]]
name = "health"
path = "{health}"
[plugin.grants]
urls = ["http://127.0.0.1/"]
read = ["{state}"]

[[plugin]]
name = "testbed"
path = "{testbed}"
[plugin.grants]
{testbed_grants}
"#,
        state = state_dir.display(),
        health = plugin("health").display(),
        testbed = plugin("testbed").display(),
    )
}

/// Runs the `backout` CLI as operator `operator` against `coordinator`.
pub fn cli(pki: &Pki, coordinator: &str, operator: &str, args: &[&str]) -> std::process::Output {
    run(
        &bin("backout"),
        args,
        &[
            ("BACKOUT_COORDINATOR", coordinator),
            ("BACKOUT_PKI", pki.path().to_str().unwrap()),
            ("BACKOUT_OPERATOR", operator),
        ],
    )
}

/// Runs `backout audit verify --output json` on the coordinator whose
/// configuration is `pki/coordinator.toml`; panics unless it exits 0.
pub fn audit_verify(pki: &Pki) -> serde_json::Value {
    let config = pki.path().join("coordinator.toml");
    let out = run(
        &bin("backout"),
        &[
            "audit",
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of agents the coordinator lists as connected.
pub fn connected_agents(pki: &Pki, coordinator: &str, operator: &str) -> Vec<String> {
    let out = cli(pki, coordinator, operator, &["agents", "--output", "json"]);
    if !out.status.success() {
        return Vec::new();
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["connected"] == true)
        .map(|a| a["agent"].as_str().unwrap().to_string())
        .collect()
}

/// The JSON a CLI call printed; panics unless it exited 0.
pub fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One phase of a run summary.
pub fn phase<'a>(run: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    run["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap()
}

/// The state (`fired`, `not fired`) of the escalation to `who` in a
/// report (`backout report --format json`).
pub fn escalation(report: &serde_json::Value, who: &str) -> serde_json::Value {
    report["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["who"] == who)
        .unwrap_or_else(|| panic!("no escalation to {who}: {report}"))["state"]
        .clone()
}

/// The coordinator's crash-test hook (see `coordinator/src/journal/mod.rs`; only in binaries built with `--features backout/test-hooks`):
/// freeze right after journal entry N, for the test to SIGKILL it there.
pub const FREEZE_ENV: &str = "BACKOUT_TEST_FREEZE_AFTER_ENTRY";

/// The agent's crash-test hook (see `agent/src/ledger.rs`; only in binaries
/// built with `--features backout/test-hooks`): inside admission's one
/// transaction, freeze after the nonce is written and before the step's
/// ledger row, for the test to SIGKILL it there.
pub const FREEZE_AGENT_ADMIT_ENV: &str = "BACKOUT_TEST_FREEZE_AGENT_ADMIT";

/// `backout serve` (built with `test-hooks`) skips checking the plan's steps
/// against the plugins, and a run's data-changing steps against their
/// backups at its start, when this is set (`coordinator/src/cli/serve.rs`).
pub const SKIP_PLAN_CHECK_ENV: &str = "BACKOUT_TEST_SKIP_PLAN_CHECK";

/// Starts the `backout` CLI in the background (for calls that may hang on a
/// frozen coordinator, and for watchers); its stdout is piped.
pub fn cli_child(
    pki: &Pki,
    coordinator: &str,
    operator: &str,
    args: &[&str],
) -> tokio::process::Child {
    Command::new(bin("backout"))
        .args(args)
        .env("BACKOUT_COORDINATOR", coordinator)
        .env("BACKOUT_PKI", pki.path())
        .env("BACKOUT_OPERATOR", operator)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Sends signal `name` (`STOP`, `CONT`, `TERM`...) to process `pid` with
/// `kill`.
pub fn send_signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}
