//! Capabilities, dry-run and secrets, against the `testbed` plugin.

use std::time::Duration;

use serde_json::json;

use super::{Opts, TestServer, config, data, failure, host, host_with, step};
use crate::plugin::{Grants, LogLevel, SecretStore, StepEvent};

const SECRET: &str = "sk_live_do_not_leak_42";

fn echo_route(seen: &super::Seen) -> (u16, String, Duration) {
    let auth = seen
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&seen.body).into_owned();
    (200, format!("auth={auth} body={body}"), Duration::ZERO)
}

fn warned(events: &[StepEvent], needle: &str) -> bool {
    events.iter().any(|e| {
        matches!(e, StepEvent::Log { level: LogLevel::Warn, message } if message.contains(needle))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ungranted_calls_are_refused_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let granted = dir.path().join("granted");
    std::fs::create_dir_all(&granted).expect("mkdir");
    let server = TestServer::start(echo_route);
    let host = host(
        "testbed",
        Grants {
            read: vec![granted.clone()],
            write: vec![granted.clone()],
            ..Default::default()
        },
    );
    let g = granted.display().to_string();

    let (outcome, events) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "/bin/sh", "args": ["-c", "id"] }),
        Opts::default(),
    )
    .await;
    assert_eq!(
        failure(&outcome),
        (
            "host-denied".to_string(),
            "exec of /bin/sh is not granted to plugin testbed".to_string()
        )
    );
    assert!(
        warned(&events, "exec of /bin/sh is not granted to plugin testbed"),
        "{events:?}"
    );

    let (outcome, events) = step(
        &host,
        "testbed",
        "http",
        json!({ "url": server.url("/") }),
        Opts::default(),
    )
    .await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "host-denied");
    assert_eq!(
        message,
        format!(
            "HTTP to {} is not granted to plugin testbed",
            server.url("/")
        )
    );
    assert!(warned(&events, "HTTP to"));
    assert!(server.seen().is_empty());

    let (outcome, _) = step(
        &host,
        "testbed",
        "read",
        json!({ "path": "/etc/passwd" }),
        Opts::default(),
    )
    .await;
    assert_eq!(
        failure(&outcome).1,
        "read of /etc/passwd is not granted to plugin testbed"
    );

    let traversal = format!("{g}/../../../../etc/passwd");
    let (outcome, _) = step(
        &host,
        "testbed",
        "read",
        json!({ "path": traversal }),
        Opts::default(),
    )
    .await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "host-denied");
    assert!(message.contains("`..`"), "{message}");

    let (outcome, _) = step(
        &host,
        "testbed",
        "write",
        json!({ "path": "/tmp/backout-testbed-escape", "contents": "x" }),
        Opts::default(),
    )
    .await;
    assert_eq!(
        failure(&outcome).1,
        "write to /tmp/backout-testbed-escape is not granted to plugin testbed"
    );
    assert!(!std::path::Path::new("/tmp/backout-testbed-escape").exists());

    // A symlink inside the granted directory does not lead out of it.
    std::os::unix::fs::symlink("/etc", granted.join("etc")).expect("symlink");
    let (outcome, _) = step(
        &host,
        "testbed",
        "read",
        json!({ "path": format!("{g}/etc/passwd") }),
        Opts::default(),
    )
    .await;
    assert!(failure(&outcome).1.contains("outside the paths granted"));

    // What is granted works.
    let file = format!("{g}/note.txt");
    let (outcome, _) = step(
        &host,
        "testbed",
        "write",
        json!({ "path": file, "contents": "hello" }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome), json!({ "written": 5 }));
    let (outcome, _) = step(
        &host,
        "testbed",
        "read",
        json!({ "path": file }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome), json!({ "contents": "hello" }));
    let (outcome, _) = step(
        &host,
        "testbed",
        "read",
        json!({ "path": file, "max_bytes": 3, "from_end": true }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome), json!({ "contents": "llo" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_refuses_what_changes_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(echo_route);
    let host = host(
        "testbed",
        Grants {
            write: vec![dir.path().to_path_buf()],
            urls: vec![server.url("/")],
            programs: vec!["echo".into(), "true".into()],
            dry_run_programs: vec!["echo dry".into()],
            ..Default::default()
        },
    );
    let dry = Opts {
        dry_run: true,
        ..Default::default()
    };
    let file = dir.path().join("x").display().to_string();
    let (outcome, events) = step(
        &host,
        "testbed",
        "write",
        json!({ "path": file, "contents": "x" }),
        dry.clone(),
    )
    .await;
    assert_eq!(
        failure(&outcome),
        (
            "host-denied".to_string(),
            format!("dry-run: write to {file} refused")
        )
    );
    assert!(warned(&events, "dry-run: write"));
    assert!(!dir.path().join("x").exists());

    let (outcome, _) = step(
        &host,
        "testbed",
        "http",
        json!({ "url": server.url("/"), "method": "POST", "body": "x" }),
        dry.clone(),
    )
    .await;
    assert!(failure(&outcome).1.starts_with("dry-run: HTTP POST"));
    let (outcome, _) = step(
        &host,
        "testbed",
        "http",
        json!({ "url": server.url("/") }),
        dry.clone(),
    )
    .await;
    assert_eq!(data(&outcome)["status"], 200);
    assert_eq!(server.seen().len(), 1);

    let (outcome, _) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "true" }),
        dry.clone(),
    )
    .await;
    assert!(
        failure(&outcome)
            .1
            .starts_with("dry-run: exec of true refused")
    );
    let (outcome, _) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "echo", "args": ["dry", "run"] }),
        dry.clone(),
    )
    .await;
    assert_eq!(data(&outcome)["stdout"], "dry run\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_server_but_never_the_coordinator() {
    let server = TestServer::start(echo_route);
    let secrets =
        SecretStore::from_values([("API_TOKEN", SECRET), ("OTHER", "other-secret-value")])
            .expect("valid");
    let host = host_with(
        vec![config(
            "testbed",
            Grants {
                urls: vec![server.url("/")],
                programs: vec!["env".into(), "echo".into()],
                secrets: vec!["API_TOKEN".into()],
                ..Default::default()
            },
            None,
        )],
        secrets,
    );
    let params = json!({
        "url": server.url("/charge"),
        "method": "POST",
        "headers": [["authorization", "Bearer ${secret:API_TOKEN}"]],
        "body": "key=${secret:API_TOKEN}",
    });
    let (outcome, events) = step(&host, "testbed", "http", params, Opts::default()).await;
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .headers
            .contains(&("authorization".into(), format!("Bearer {SECRET}")))
    );
    assert_eq!(seen[0].body, format!("key={SECRET}").into_bytes());
    // The server echoed it; the plugin got it redacted.
    let d = data(&outcome);
    assert_eq!(
        d["body"],
        "auth=Bearer [redacted:API_TOKEN] body=key=[redacted:API_TOKEN]"
    );
    let everything = format!("{outcome:?}{events:?}");
    assert!(!everything.contains(SECRET), "{everything}");

    // exec: in the environment and the arguments, redacted from the output.
    let params = json!({ "program": "env", "env": [["TOKEN", "${secret:API_TOKEN}"]] });
    let (outcome, _) = step(&host, "testbed", "exec", params, Opts::default()).await;
    let stdout = data(&outcome)["stdout"]
        .as_str()
        .expect("stdout")
        .to_string();
    assert!(stdout.contains("TOKEN=[redacted:API_TOKEN]"), "{stdout}");
    let mut names: Vec<&str> = stdout.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["PATH", "TOKEN"],
        "the environment is exactly env plus PATH"
    );
    let (outcome, _) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "echo", "args": ["${secret:API_TOKEN}"] }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome)["stdout"], "[redacted:API_TOKEN]\n");

    // A secret that is not granted is refused, and PATH cannot be set.
    let params = json!({ "url": server.url("/"), "headers": [["x", "${secret:OTHER}"]] });
    let (outcome, _) = step(&host, "testbed", "http", params, Opts::default()).await;
    assert_eq!(
        failure(&outcome).1,
        "secret OTHER is not granted to plugin testbed"
    );
    assert_eq!(server.seen().len(), 1);
    let params = json!({ "program": "env", "env": [["PATH", "/tmp"]] });
    let (outcome, _) = step(&host, "testbed", "exec", params, Opts::default()).await;
    assert_eq!(failure(&outcome).0, "host-denied");

    // A plugin echoing a secret value it somehow knows is redacted too.
    let (outcome, _) = step(
        &host,
        "testbed",
        "echo",
        json!({ "leak": SECRET }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome), json!({ "leak": "[redacted:API_TOKEN]" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_url_is_filled_in_checked_after_and_never_shown() {
    let server = TestServer::start(echo_route);
    let closed = super::closed_port();
    // A Slack incoming webhook: the URL itself is the credential.
    let hook = server.url("/services/T000/B000/hook_do_not_leak_7");
    let elsewhere = format!("http://127.0.0.1:{closed}/services/T000/B000/elsewhere_do_not_leak");
    let secrets = SecretStore::from_values([
        ("HOOK_URL", hook.as_str()),
        ("ELSEWHERE_URL", elsewhere.as_str()),
        ("NOT_GRANTED_URL", "http://127.0.0.1:1/never"),
    ])
    .expect("valid");
    let host = host_with(
        vec![config(
            "testbed",
            Grants {
                urls: vec![server.url("/services")],
                secrets: vec!["HOOK_URL".into(), "ELSEWHERE_URL".into()],
                ..Default::default()
            },
            None,
        )],
        secrets,
    );

    // Filled in, checked against the grant, sent.
    let params = json!({ "url": "${secret:HOOK_URL}", "method": "POST", "body": "{}" });
    let (outcome, events) = step(&host, "testbed", "http", params, Opts::default()).await;
    assert_eq!(data(&outcome)["status"], 200);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/services/T000/B000/hook_do_not_leak_7");
    let everything = format!("{outcome:?}{events:?}");
    assert!(!everything.contains("hook_do_not_leak_7"), "{everything}");

    // The grant is checked on the filled URL: a secret pointing outside the
    // granted prefix is refused, and the refusal names only the marker.
    let params = json!({ "url": "${secret:ELSEWHERE_URL}", "method": "POST" });
    let (outcome, events) = step(&host, "testbed", "http", params, Opts::default()).await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "host-denied");
    assert!(message.contains("${secret:ELSEWHERE_URL}"), "{message}");
    let everything = format!("{outcome:?}{events:?}");
    assert!(
        !everything.contains("elsewhere_do_not_leak"),
        "{everything}"
    );
    assert!(!everything.contains(&closed.to_string()), "{everything}");

    // A secret the plugin is not granted is refused before anything else.
    let params = json!({ "url": "${secret:NOT_GRANTED_URL}" });
    let (outcome, _) = step(&host, "testbed", "http", params, Opts::default()).await;
    assert_eq!(
        failure(&outcome).1,
        "secret NOT_GRANTED_URL is not granted to plugin testbed"
    );

    // Dry-run refuses the POST and names the marker, not the URL.
    let params = json!({ "url": "${secret:HOOK_URL}", "method": "POST" });
    let dry = Opts {
        dry_run: true,
        ..Default::default()
    };
    let (outcome, _) = step(&host, "testbed", "http", params, dry).await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "host-denied");
    assert!(message.contains("${secret:HOOK_URL}"), "{message}");
    assert_eq!(server.seen().len(), 1, "nothing more reached the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_granted_programs_in_granted_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let granted = std::fs::canonicalize(dir.path()).expect("canonical");
    let host = host(
        "testbed",
        Grants {
            read: vec![granted.clone()],
            programs: vec!["pwd".into(), "cat".into(), "backout-no-such-program".into()],
            ..Default::default()
        },
    );
    let g = granted.display().to_string();
    let (outcome, _) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "pwd", "cwd": g }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome)["stdout"], format!("{g}\n"));
    assert_eq!(data(&outcome)["exit_code"], 0);

    let (outcome, _) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "pwd", "cwd": "/etc" }),
        Opts::default(),
    )
    .await;
    assert_eq!(
        failure(&outcome),
        (
            "host-denied".to_string(),
            "working directory /etc is not granted to plugin testbed".to_string()
        )
    );

    let (outcome, _) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "cat", "stdin": "piped in" }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome)["stdout"], "piped in");

    let (outcome, _) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "backout-no-such-program" }),
        Opts::default(),
    )
    .await;
    assert_eq!(
        failure(&outcome),
        (
            "host-failed".to_string(),
            "cannot run backout-no-such-program: no such program".to_string()
        )
    );
}

/// An optional need the grants do not cover leaves the plugin loaded, and
/// the plugin can ask at run time what it is granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungranted_optional_need_loads_and_the_plugin_can_ask_what_is_granted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let granted = dir.path().display().to_string();
    let host = host(
        "testbed",
        Grants {
            read: vec![dir.path().to_path_buf()],
            ..Grants::default()
        },
    );
    let info = host
        .inventory()
        .into_iter()
        .find(|p| p.name == "testbed")
        .expect("the testbed serves");
    let proxy = info
        .needs
        .iter()
        .find(|n| n.value == "http://optional.invalid/")
        .expect("the testbed declares its optional proxy");
    assert!(proxy.optional);
    assert_eq!(proxy.granted, Some(false));
    let ask = |kind: &str, value: &str| json!({ "kind": kind, "value": value });
    for (params, expected) in [
        (ask("url", "http://optional.invalid/"), false),
        (ask("read", &granted), true),
        (ask("read", ""), true),
        (ask("write", &granted), false),
        (ask("secret", "NOPE"), false),
    ] {
        let (outcome, _) = step(&host, "testbed", "granted", params.clone(), Opts::default()).await;
        assert_eq!(data(&outcome)["granted"], expected, "{params}");
    }
}

/// A required need the grants do not cover disables that plugin, naming
/// the need; the other plugins serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungranted_required_need_disables_only_that_plugin() {
    let host = host_with(
        vec![
            config("testbed", Grants::default(), None),
            config("notify", Grants::default(), None),
        ],
        SecretStore::empty(),
    );
    let serving: Vec<String> = host.inventory().into_iter().map(|p| p.name).collect();
    assert_eq!(serving, ["testbed"]);
    let disabled = host.disabled();
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    let (name, sha256, error) = &disabled[0];
    assert_eq!(name, "notify");
    assert_eq!(sha256.len(), 64, "the disabled file's sha256");
    assert!(
        error.contains("plugin `notify` needs what its [plugin.grants] do not give")
            && error.contains("some url grant (the Slack incoming webhook)")
            && !error.contains("some secret grant"),
        "only the required need is named: {error}"
    );
    assert!(matches!(
        host.resolve("notify", sha256),
        Err(crate::plugin::ResolveError::Disabled { .. })
    ));
    let (outcome, _) = step(&host, "testbed", "echo", json!({"ok": 1}), Opts::default()).await;
    assert_eq!(data(&outcome)["ok"], 1);
}
