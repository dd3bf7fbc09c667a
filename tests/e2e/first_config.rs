//! Issue 17, the newcomer's walk over the configuration files: a starter set
//! from `backout init`, then the mistakes a person new to Backout makes in
//! coordinator.toml and agent.toml. Each is exit 2, before anything listens
//! or dials, with an error naming the file, the line and the field.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use backout_e2e::{Coordinator, bin, json_of, plugin, run, wait_for};

/// `backout init DIR --host web-1 --host db-1 --listen LISTEN` with the
/// built plugins.
fn starter(dir: &Path, listen: &str) {
    let health = plugin("health");
    let out = run(
        &bin("backout"),
        &[
            "init",
            dir.to_str().unwrap(),
            "--host",
            "web-1",
            "--host",
            "db-1",
            "--listen",
            listen,
            "--plugins",
            health.parent().unwrap().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `program ARGS` to its end; one still running after a minute (an
/// agent dialling on a configuration that should have been refused) is
/// killed and the test fails.
fn run_to_end(program: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{} {args:?} kept running on a bad configuration: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// One mistake: `edit` turns the starter's `file` text into the mistaken
/// one; `line_of` is what the line the error must name starts with; `says`
/// what the error must say besides.
struct Mistake {
    what: &'static str,
    file: &'static str,
    edit: fn(&str, &Path) -> String,
    line_of: &'static str,
    field: &'static str,
    says: &'static [&'static str],
}

fn replace_line(text: &str, starts: &str, with: &str) -> String {
    text.lines()
        .map(|l| if l.starts_with(starts) { with } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

const MISTAKES: &[Mistake] = &[
    Mistake {
        what: "a misspelt key",
        file: "coordinator.toml",
        edit: |t, _| t.replace("\nstate_dir =", "\nstat_dir ="),
        line_of: "stat_dir",
        field: "stat_dir",
        says: &["unknown field `stat_dir`", "(did you mean `state_dir`?)"],
    },
    Mistake {
        what: "a wrong type",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "state_dir", "checkpoint_every = \"1000\""),
        line_of: "checkpoint_every",
        field: "checkpoint_every",
        says: &["expected u64 (a whole number, not quoted)"],
    },
    Mistake {
        what: "a missing required field",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "command_key", ""),
        line_of: "",
        field: "command_key",
        says: &["missing: `command_key` is required"],
    },
    Mistake {
        what: "a relative path that does not exist",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "command_key", "command_key = \"keys/command.key\""),
        line_of: "command_key",
        field: "command_key",
        says: &["keys/command.key: cannot read it"],
    },
    Mistake {
        what: "a duplicate table",
        file: "coordinator.toml",
        edit: |t, _| format!("{t}[tls]\nca = \"pki/ca.pem\"\n"),
        line_of: "[tls]\nca = \"pki/ca.pem\"\n",
        field: "tls",
        says: &["duplicate key"],
    },
    Mistake {
        what: "a duration without a unit",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "state_dir", "heartbeat_interval = 10"),
        line_of: "heartbeat_interval",
        field: "heartbeat_interval",
        says: &["`10` has no unit", "\"10s\""],
    },
    Mistake {
        what: "a bad duration",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "state_dir", "command_ttl = \"10 secs later\""),
        line_of: "command_ttl",
        field: "command_ttl",
        says: &["is not a duration like \"30s\""],
    },
    Mistake {
        what: "an address without a port",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "listen", "listen = \"127.0.0.1\""),
        line_of: "listen",
        field: "listen",
        says: &["expected host:port"],
    },
    Mistake {
        what: "a key that is not the certificate's",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "key = ", "key = \"pki/agents/web-1.key\""),
        line_of: "key = ",
        field: "tls.key",
        says: &["is not the private key of", "coordinator.pem"],
    },
    Mistake {
        what: "a plan that is not there",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "plan", "plan = \"plans/plan.toml\""),
        line_of: "plan",
        field: "plan",
        says: &["plans/plan.toml: cannot read it"],
    },
    Mistake {
        what: "an empty file",
        file: "coordinator.toml",
        edit: |_, _| String::new(),
        line_of: "",
        field: "listen",
        says: &["the file is empty"],
    },
    Mistake {
        what: "a file that is not TOML",
        file: "coordinator.toml",
        edit: |_, _| "{\"listen\": \"127.0.0.1:7443\"}\n".into(),
        line_of: "",
        field: "",
        says: &["expected key"],
    },
    Mistake {
        what: "a revocation list that is not there",
        file: "coordinator.toml",
        edit: |t, _| t.replace("\nstate_dir =", "\ncrl = \"pki/crl.pem\"\nstate_dir ="),
        line_of: "crl",
        field: "crl",
        says: &["pki/crl.pem"],
    },
    Mistake {
        what: "a state directory that cannot be made (coordinator)",
        file: "coordinator.toml",
        edit: |t, _| replace_line(t, "state_dir", "state_dir = \"/proc/nowhere/state\""),
        line_of: "state_dir",
        field: "state_dir",
        says: &["/proc/nowhere/state: cannot create it"],
    },
    Mistake {
        what: "one table where a list of tables is meant",
        file: "agents/web-1.toml",
        edit: |t, _| t.replace("[[plugin]]", "[plugin]"),
        line_of: "[plugin]",
        field: "plugin",
        says: &["write `[[name]]` before each entry"],
    },
    Mistake {
        what: "a size without a unit",
        file: "agents/web-1.toml",
        edit: |t, _| format!("{t}[limits]\nmemory = 128\n"),
        line_of: "[limits]",
        field: "limits",
        says: &["`memory` must be at least 1MiB"],
    },
    Mistake {
        what: "an address with a scheme",
        file: "agents/web-1.toml",
        edit: |t, _| replace_line(t, "coordinator", "coordinator = \"https://127.0.0.1:7443\""),
        line_of: "coordinator",
        field: "coordinator",
        says: &["without `https://`"],
    },
    Mistake {
        what: "an address of the wrong type",
        file: "agents/web-1.toml",
        edit: |t, _| replace_line(t, "coordinator", "coordinator = 7443"),
        line_of: "coordinator",
        field: "coordinator",
        says: &["expected \"host:port\" in quotes, or a list of them"],
    },
    Mistake {
        what: "a server name that is a URL",
        file: "agents/web-1.toml",
        edit: |t, _| {
            t.replace(
                "\ncommand_key =",
                "\nserver_name = \"https://coordinator.internal\"\ncommand_key =",
            )
        },
        line_of: "server_name",
        field: "server_name",
        says: &["is not a DNS name or an IP address"],
    },
    Mistake {
        what: "another agent's key",
        file: "agents/web-1.toml",
        edit: |t, _| replace_line(t, "key = ", "key = \"../pki/agents/db-1.key\""),
        line_of: "key = ",
        field: "tls.key",
        says: &["is not the private key of", "web-1.pem"],
    },
    Mistake {
        what: "a command key path relative to the wrong directory",
        file: "agents/web-1.toml",
        edit: |t, _| {
            replace_line(
                t,
                "command_key",
                "command_key = \"pki/command-signing.pub\"",
            )
        },
        line_of: "command_key",
        field: "command_key",
        says: &["agents/pki/command-signing.pub"],
    },
    Mistake {
        what: "a plugin file that is not there",
        file: "agents/web-1.toml",
        edit: |t, _| replace_line(t, "path = ", "path = \"plugins/health.wasm\""),
        line_of: "path = ",
        field: "plugin[0].path",
        says: &["cannot read", "agents/plugins/health.wasm"],
    },
    Mistake {
        what: "a secret file every user can read",
        file: "agents/web-1.toml",
        edit: |t, dir| {
            let secret = dir.join("agents/token");
            std::fs::write(&secret, "s3cret\n").unwrap();
            std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .unwrap();
            format!("{t}[secrets]\nTOKEN = {{ file = \"token\" }}\n")
        },
        line_of: "TOKEN",
        field: "secrets.TOKEN",
        says: &["can be read by every user", "chmod 600"],
    },
    Mistake {
        what: "an approval policy naming an action no plugin serves (it would gate nothing)",
        file: "agents/web-1.toml",
        edit: |t, _| {
            format!("{t}\n[[approval_policy]]\naction = \"health.chek\"\nroles = [\"dba\"]\n")
        },
        line_of: "action = \"health.chek\"",
        field: "approval_policy[0].action",
        says: &["plugin `health` has no action `chek`", "would gate nothing"],
    },
    Mistake {
        what: "a state directory that cannot be made",
        file: "agents/web-1.toml",
        edit: |t, _| replace_line(t, "state_dir", "state_dir = \"/proc/nowhere/state\""),
        line_of: "state_dir",
        field: "state_dir",
        says: &["/proc/nowhere/state: cannot create it"],
    },
];

#[test]
fn a_newcomers_config_mistakes_each_exit_2_naming_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("starter");
    // Nothing listens there: every mistake is refused before any dial.
    starter(&clean, "127.0.0.1:7443");
    for (n, mistake) in MISTAKES.iter().enumerate() {
        let dir = tmp.path().join(format!("mistake-{n}"));
        let copied = run(
            Path::new("cp"),
            &["-r", clean.to_str().unwrap(), dir.to_str().unwrap()],
            &[],
        );
        assert!(copied.status.success());
        let file: PathBuf = dir.join(mistake.file);
        let text = std::fs::read_to_string(&file).unwrap();
        let wrong = (mistake.edit)(&text, &dir);
        std::fs::write(&file, &wrong).unwrap();
        let out = if mistake.file == "coordinator.toml" {
            run_to_end(
                &bin("backout"),
                &["serve", "--config", file.to_str().unwrap()],
            )
        } else {
            run_to_end(&bin("backout-agent"), &["--config", file.to_str().unwrap()])
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = mistake.what;
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening on")
                && !String::from_utf8_lossy(&out.stdout).contains("dialling"),
            "{what}: started anyway"
        );
        // The line: where `line_of` starts (the last such line for an
        // appended table), or the first line for the whole file.
        let line = if mistake.line_of.is_empty() {
            1
        } else if mistake.line_of.contains('\n') {
            wrong
                .rfind(mistake.line_of)
                .map_or(0, |at| wrong[..at].lines().count() + 1)
        } else {
            wrong
                .lines()
                .position(|l| l.starts_with(mistake.line_of))
                .map_or(0, |i| i + 1)
        };
        let at = format!("{}:{line}:", file.display());
        let at_no_column = format!("{}:{line}: ", file.display());
        assert!(
            stderr.contains(&at) || stderr.contains(&at_no_column),
            "{what}: expected {at}: {stderr}"
        );
        if !mistake.field.is_empty() {
            assert!(
                stderr.contains(&format!("field `{}`", mistake.field)),
                "{what}: expected field `{}`: {stderr}",
                mistake.field
            );
        }
        for said in mistake.says {
            assert!(stderr.contains(said), "{what}: expected {said:?}: {stderr}");
        }
        assert!(
            !stderr.contains("s3cret"),
            "{what}: a secret value in an error"
        );
    }
}

/// SIGHUP's default action ends a process silently. The agent reloads on
/// it; the coordinator logs that nothing is reloaded and keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn the_coordinator_keeps_serving_through_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("starter");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    starter(&dir, &format!("127.0.0.1:{port}"));
    let coordinator = Coordinator::serve(
        &dir.join("coordinator.toml"),
        &tmp.path().join("coordinator.log"),
        &[],
    )
    .await;
    let pid = coordinator.proc.child.id().unwrap().to_string();
    let hup = run(Path::new("kill"), &["-HUP", &pid], &[]);
    assert!(hup.status.success());
    wait_for("the SIGHUP line", Duration::from_secs(20), || {
        coordinator
            .proc
            .log_text()
            .contains("SIGHUP: nothing reloaded")
            .then_some(())
    })
    .await;
    let pki = dir.join("pki");
    let envs = [
        ("BACKOUT_COORDINATOR", coordinator.addr.as_str()),
        ("BACKOUT_PKI", pki.to_str().unwrap()),
        ("BACKOUT_OPERATOR", "alice"),
    ];
    let agents = json_of(&run(
        &bin("backout"),
        &["agents", "--output", "json"],
        &envs,
    ));
    assert!(agents["agents"].is_array(), "{agents}");
}
