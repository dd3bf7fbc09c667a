//! Rough edges found by using Backout from outside (issue 16): a reader that
//! goes away early, bad key files and addresses, file modes, keys other
//! tools must read, and a plugin file that does not match its pin.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use backout_e2e::{Coordinator, Pki, agent_config, bin, cli, run, start_agent, wait_for};

/// The exit code of a command whose standard output's reader is gone
/// (`backout::cli::EXIT_BROKEN_PIPE`): 128 + SIGPIPE, as a shell reports
/// for coreutils.
const BROKEN_PIPE: i32 = 141;

/// Runs `program` with its standard output a real pipe whose reading end is
/// already closed, as after `| head -1` has read its line and exited.
fn run_into_closed_pipe(
    program: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Exits quietly with [`BROKEN_PIPE`]: no panic (exit 101, "failed printing
/// to stdout: Broken pipe"), nothing on standard error.
fn assert_quiet_broken_pipe(what: &str, out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(BROKEN_PIPE), "{what}: {stderr}");
    assert!(stderr.is_empty(), "{what}: said something: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn printing_commands_exit_quietly_when_their_reader_goes_away() {
    let plan = repo_root().join("examples/samia-tarot/plan.toml");
    let plan = plan.to_str().unwrap();
    for output in ["text", "json"] {
        let out = run_into_closed_pipe(
            &bin("backout"),
            &["plan", "check", plan, "--output", output],
            &[],
        );
        assert_quiet_broken_pipe(&format!("plan check --output {output}"), &out);
    }
    // Tables and JSON from a coordinator.
    let pki = Pki::new("pipes.test");
    pki.issue("agent", "app-1");
    pki.issue("operator", "alice");
    let coordinator = Coordinator::minimal(&pki).await;
    let envs = [
        ("BACKOUT_COORDINATOR", coordinator.addr.as_str()),
        ("BACKOUT_PKI", pki.path().to_str().unwrap()),
        ("BACKOUT_OPERATOR", "alice"),
    ];
    for args in [
        &["agents"][..],
        &["agents", "--output", "json"],
        &["runs"],
        &["whoami"],
    ] {
        let out = run_into_closed_pipe(&bin("backout"), args, &envs);
        assert_quiet_broken_pipe(&args.join(" "), &out);
    }
    // Help and version come from clap, which ignores the write error: never
    // a panic either.
    for (program, args) in [
        ("backout", &["--help"][..]),
        ("backout", &["plan", "check", "--help"]),
        ("backout", &["--version"]),
        ("backout-agent", &["--help"]),
    ] {
        let out = run_into_closed_pipe(&bin(program), args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0 | BROKEN_PIPE)) && !stderr.contains("panicked"),
            "{program} {args:?}: {:?} {stderr}",
            out.status
        );
    }
}

/// `reader | head -1`: the reader takes one line, then goes away while the
/// command still has lines to print.
#[test]
fn a_reader_that_stops_after_one_line_ends_the_command_quietly() {
    let plan = repo_root().join("examples/samia-tarot/plan.toml");
    let mut child = Command::new(bin("backout"))
        .args(["plan", "check", plan.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("valid"), "{first}");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The whole summary may have fitted in the pipe before the reader left
    // (exit 0); what must never happen is a panic.
    assert!(
        matches!(out.status.code(), Some(0 | BROKEN_PIPE)) && !stderr.contains("panicked"),
        "{:?}: {stderr}",
        out.status
    );
}

/// A coordinator configuration with the PKI's TLS files and `command_key`.
fn serve_config(pki: &Pki, listen: &str, command_key: &Path) -> PathBuf {
    let p = pki.path().display();
    let path = pki.path().join("coordinator.toml");
    std::fs::write(
        &path,
        format!(
            r#"listen = "{listen}"
command_key = "{key}"
state_dir = "{p}/state"
[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
"#,
            key = command_key.display()
        ),
    )
    .unwrap();
    path
}

/// Exit 2, the message names `needle`s, and nothing said it was listening.
fn assert_refused_before_listening(out: &std::process::Output, needles: &[&str]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    }
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(!stderr.contains("coordinator listening"), "{stderr}");
}

#[test]
fn a_bad_command_key_or_listen_address_exits_2_saying_what_is_wrong() {
    const P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBkZOcG8SX1ZR5FXv
gRjofWiYkUtOO/jT4B5N+y8vsdGhRANCAAQbmXe9uDqlD5cTL8MnkAIAOwbf4pjH
YCKxUTHFQLE0S7mRSPuVLRiVpwMCqQgI07Sdy073TqwmLGOTZTdFMOfm
-----END PRIVATE KEY-----
";
    let pki = Pki::new("bad-key.test");
    let serve = |config: &Path| {
        run(
            &bin("backout"),
            &[
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--log",
                "info",
            ],
            &[],
        )
    };
    let p256 = pki.path().join("p256.key");
    std::fs::write(&p256, P256).unwrap();
    let out = serve(&serve_config(&pki, "127.0.0.1:0", &p256));
    assert_refused_before_listening(
        &out,
        &["p256.key", "command_key", "elliptic-curve", "not ed25519"],
    );

    let junk = pki.path().join("junk.key");
    std::fs::write(&junk, b"\x7fELF\0\0\x01 not a key at all").unwrap();
    let out = serve(&serve_config(&pki, "127.0.0.1:0", &junk));
    assert_refused_before_listening(&out, &["junk.key", "command_key", "not a PEM file"]);

    let public = pki.path().join("command-signing.pub");
    let out = serve(&serve_config(&pki, "127.0.0.1:0", &public));
    assert_refused_before_listening(&out, &["command-signing.pub", "a public key"]);

    let missing = pki.path().join("nowhere.key");
    let out = serve(&serve_config(&pki, "127.0.0.1:0", &missing));
    assert_refused_before_listening(&out, &["nowhere.key", "command_key", "cannot read"]);

    let key = pki.path().join("command-signing.key");
    let config = serve_config(&pki, "999.0.0.1:99999", &key);
    let out = serve(&config);
    assert_refused_before_listening(
        &out,
        &[
            config.to_str().unwrap(),
            "field `listen`",
            "`99999` is not a port",
        ],
    );
    let config = serve_config(&pki, "999.0.0.1:7443", &key);
    let out = serve(&config);
    assert_refused_before_listening(
        &out,
        &["field `listen`", "`999.0.0.1` is not an IP address"],
    );

    // The TLS files are checked before listening too.
    std::fs::remove_file(pki.path().join("coordinator.key")).unwrap();
    let out = serve(&serve_config(&pki, "127.0.0.1:0", &key));
    assert_refused_before_listening(&out, &["coordinator.key"]);
}

#[test]
fn the_command_signing_key_is_standard_pkcs8_that_openssl_reads() {
    let pki = Pki::new("openssl.test");
    let key = pki.path().join("command-signing.key");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl is not installed here: only the PEM form is checked");
        return;
    }
    let out = run(
        Path::new("openssl"),
        &["pkey", "-in", key.to_str().unwrap(), "-noout"],
        &[],
    );
    assert!(
        out.status.success(),
        "openssl pkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // OpenSSL derives the same public key as the one agents pin.
    let out = run(
        Path::new("openssl"),
        &["pkey", "-in", key.to_str().unwrap(), "-pubout"],
        &[],
    );
    assert!(out.status.success());
    let pinned = std::fs::read_to_string(pki.path().join("command-signing.pub")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pinned.trim());
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// An agent with a state directory, not yet started.
fn agent_files(pki: &Pki, coordinator: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, agent_config(pki, "app-1", coordinator, &state, "")).unwrap();
    (dir, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_database_is_mode_0600() {
    let pki = Pki::new("modes.test");
    pki.issue("agent", "app-1");
    // No coordinator: the agent opens its database, then keeps dialling.
    let (dir, config) = agent_files(&pki, "127.0.0.1:1");
    let _agent = start_agent(&config, &dir.path().join("agent.log"));
    let state = dir.path().join("state");
    let files = ["agent.db", "agent.db-wal", "agent.db-shm"];
    wait_for("the agent's database", Duration::from_secs(60), || {
        files.iter().all(|f| state.join(f).exists()).then_some(())
    })
    .await;
    for file in files {
        assert_eq!(mode_of(&state.join(file)), 0o600, "{file}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_file_that_does_not_match_its_pin_is_said_at_connection() {
    let pki = Pki::new("pins.test");
    pki.issue("agent", "app-1");
    pki.issue("operator", "alice");
    let wrong = "0".repeat(64);
    let p = pki.path().display();
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
[plugins.health]
sha256 = "{wrong}"
"#
    );
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let (dir, agent) = agent_files(&pki, &coordinator.addr);
    let agent = start_agent(&agent, &dir.path().join("agent.log"));
    let doc = wait_for("app-1 connected", Duration::from_secs(60), || {
        let out = cli(
            &pki,
            &coordinator.addr,
            "alice",
            &["agents", "--output", "json"],
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (doc["agents"][0]["connected"] == true).then_some(doc)
    })
    .await;
    let plugins = doc["agents"][0]["plugins"].as_array().unwrap();
    let health = plugins.iter().find(|p| p["name"] == "health").unwrap();
    assert_eq!(health["pin"], "mismatch", "{health}");
    assert_eq!(health["pinned_sha256"], wrong.as_str());
    let testbed = plugins.iter().find(|p| p["name"] == "testbed").unwrap();
    assert_eq!(testbed["pin"], "unpinned", "{testbed}");

    let out = cli(&pki, &coordinator.addr, "alice", &["agents"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("PIN MISMATCH: the coordinator pins 000000000000"),
        "{table}"
    );
    // Both logs say it, before any step runs.
    wait_for("the agent's warning", Duration::from_secs(30), || {
        agent
            .log_text()
            .contains("does not match the coordinator's pin")
            .then_some(())
    })
    .await;
    assert!(
        coordinator
            .proc
            .log_text()
            .contains("the agent's plugin file does not match the pin"),
        "{}",
        coordinator.proc.log_text()
    );
}

/// The coordinator's journal is 0600 like the agent's database (both open
/// through `backout_config::sqlite::open_durable`).
#[tokio::test(flavor = "multi_thread")]
async fn the_journal_is_mode_0600() {
    let pki = Pki::new("journal-mode.test");
    pki.issue("agent", "app-1");
    pki.issue("operator", "alice");
    let coordinator = Coordinator::minimal(&pki).await;
    // A call the coordinator answers: by then the journal is open.
    let out = cli(
        &pki,
        &coordinator.addr,
        "alice",
        &["runs", "--output", "json"],
    );
    assert!(out.status.success());
    // `state_dir` defaults to `state` beside the configuration file.
    let state = pki.path().join("state");
    assert_eq!(mode_of(&state.join("journal.db")), 0o600);
    for companion in ["journal.db-wal", "journal.db-shm"] {
        let path = state.join(companion);
        if path.exists() {
            assert_eq!(mode_of(&path), 0o600, "{companion}");
        }
    }
}

/// SIGTERM stops a coordinator whose agents are attached (their session
/// streams never end by themselves, and tonic's graceful shutdown waited
/// for them for ever): it exits 0 after its grace period, and the same
/// coordinator started again has every agent back.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_coordinator_with_agents_attached() {
    let mut fleet = backout_e2e::fleet::Fleet::builder("sigterm.test")
        .hosts(["app-1", "app-2"])
        .start()
        .await;
    let pid = fleet
        .coordinator
        .proc
        .child
        .id()
        .expect("the coordinator runs");
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // Patience for a loaded machine, not a timing claim: without the fix it
    // never exits at all.
    let status = tokio::time::timeout(Duration::from_secs(30), fleet.coordinator.proc.child.wait())
        .await
        .expect("the coordinator exits on SIGTERM with agents attached")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let log = fleet.coordinator.proc.log_text();
    assert!(log.contains("shutting down"), "{log}");
    fleet.start_coordinator(&[]).await;
    fleet.wait_connected(2).await;
}
