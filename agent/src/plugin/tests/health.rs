//! The `health` plugin against a local HTTP server and a real log file.

use std::time::Duration;

use serde_json::json;

use super::{Opts, TestServer, closed_port, config, data, failure, host, step};
use crate::plugin::{Grants, PluginHost, SecretStore, StepEvent, StepLimits, StepOutcome};

fn route(seen: &super::Seen) -> (u16, String, Duration) {
    match seen.path.as_str() {
        "/health" => (200, "ok".into(), Duration::ZERO),
        "/down" => (503, "unavailable".into(), Duration::ZERO),
        "/slow" => (200, "ok".into(), Duration::from_millis(300)),
        "/hang" => (200, "late".into(), Duration::from_secs(3)),
        "/created" => (201, "".into(), Duration::ZERO),
        _ => (404, "no".into(), Duration::ZERO),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_are_up_slow_or_down() {
    let server = TestServer::start(route);
    let refused = closed_port();
    let host = host(
        "health",
        Grants {
            urls: vec![server.url("/"), format!("http://127.0.0.1:{refused}/")],
            ..Default::default()
        },
    );
    let params = json!({
        "checks": [
            { "name": "app", "url": server.url("/health"), "slow_ms": 1000 },
            { "name": "api", "url": server.url("/down") },
            { "name": "slow", "url": server.url("/slow"), "slow_ms": 100 },
            { "name": "gone", "url": format!("http://127.0.0.1:{refused}/health") },
            { "name": "hang", "url": server.url("/hang"), "timeout_ms": 300 },
            { "name": "created", "url": server.url("/created"), "expect_status": [200] },
        ]
    });
    let (outcome, events) = step(&host, "health", "check", params, Opts::default()).await;
    let d = data(&outcome);
    let checks = d["checks"].as_array().expect("checks");
    let by_name = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name} in {d}"))
            .clone()
    };
    assert_eq!(by_name("app")["status"], "up", "{d}");
    assert_eq!(by_name("app")["http_status"], 200);
    assert_eq!(by_name("api")["status"], "down");
    assert_eq!(by_name("api")["detail"], "HTTP 503");
    assert_eq!(by_name("api")["http_status"], 503);
    assert_eq!(by_name("slow")["status"], "slow");
    assert!(by_name("slow")["latency_ms"].as_u64().expect("latency") >= 300);
    assert_eq!(by_name("gone")["status"], "down");
    assert!(by_name("gone")["http_status"].is_null());
    assert!(
        by_name("gone")["detail"]
            .as_str()
            .expect("detail")
            .contains("connection refused"),
        "{d}"
    );
    assert_eq!(by_name("hang")["status"], "down");
    assert_eq!(by_name("hang")["detail"], "timed out after 300 ms");
    assert_eq!(by_name("created")["status"], "down");
    assert_eq!(by_name("created")["detail"], "HTTP 201");
    assert_eq!(d["healthy"], false);
    assert!(d["log"].is_null());

    let StepOutcome::Succeeded {
        summary, outputs, ..
    } = &outcome
    else {
        unreachable!("data() checked success")
    };
    assert_eq!(summary, "1 up, 1 slow, 4 down");
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].0, "checks");

    let progress = events
        .iter()
        .filter(|e| matches!(e, StepEvent::Progress { .. }))
        .count();
    assert_eq!(progress, 6, "one progress event per check: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_up_is_healthy() {
    let server = TestServer::start(route);
    let host = host(
        "health",
        Grants {
            urls: vec![server.url("/health")],
            ..Default::default()
        },
    );
    let params =
        json!({ "checks": [{ "name": "app", "url": server.url("/health"), "method": "HEAD" }] });
    let (outcome, _) = step(&host, "health", "check", params, Opts::default()).await;
    let d = data(&outcome);
    assert_eq!(d["healthy"], true);
    assert_eq!(server.seen()[0].method, "HEAD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_errors_in_the_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join("samia-app");
    std::fs::create_dir_all(&log_dir).expect("mkdir");
    // 150 lines: ERROR on every 10th line, so the last 100 lines (51..=150)
    // hold 10 of them (60, 70, ..., 150).
    let text: String = (1..=150)
        .map(|i| {
            if i % 10 == 0 {
                format!("2024-01-01 ERROR line {i}\n")
            } else {
                format!("2024-01-01 INFO line {i}\n")
            }
        })
        .collect();
    std::fs::write(log_dir.join("error.log"), text).expect("write");
    let host = host(
        "health",
        Grants {
            read: vec![log_dir.clone()],
            ..Default::default()
        },
    );
    let path = log_dir.join("error.log").display().to_string();
    let params = json!({ "log": { "path": path, "tail_lines": 100, "pattern": "ERROR" } });
    let (outcome, _) = step(&host, "health", "check", params, Opts::default()).await;
    let d = data(&outcome);
    assert_eq!(d["log"]["lines"], 100, "{d}");
    assert_eq!(d["log"]["matches"], 10, "{d}");
    assert_eq!(d["healthy"], true);
    let StepOutcome::Succeeded { summary, .. } = &outcome else {
        unreachable!()
    };
    assert_eq!(summary, "0 up; 10 ERROR lines in last 100");

    // A log outside the grants is reported, not a failure of the step.
    let params = json!({ "log": { "path": "/etc/passwd", "pattern": "root" } });
    let (outcome, events) = step(&host, "health", "check", params, Opts::default()).await;
    let d = data(&outcome);
    assert!(d["log"]["matches"].is_null());
    assert!(
        d["log"]["error"]
            .as_str()
            .expect("error")
            .contains("read of /etc/passwd is not granted to plugin health")
    );
    assert!(events.iter().any(|e| matches!(e,
        StepEvent::Log { level: crate::plugin::LogLevel::Warn, message } if message.contains("not granted"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_params_fail_the_step() {
    let host = host("health", Grants::default());
    let (outcome, _) = step(
        &host,
        "health",
        "check",
        json!({ "checks": [{ "nope": 1 }] }),
        Opts::default(),
    )
    .await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "bad-params");
    assert!(message.contains("unknown field"), "{message}");

    let (outcome, _) = step(
        &host,
        "health",
        "check",
        json!({ "checks": [{ "url": "ftp://x" }] }),
        Opts::default(),
    )
    .await;
    assert_eq!(failure(&outcome).0, "bad-params");

    let (outcome, _) = step(&host, "health", "restart", json!({}), Opts::default()).await;
    assert_eq!(failure(&outcome).0, "unknown-action");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ungranted_urls_are_unknown_not_down_and_warned() {
    let server = TestServer::start(route);
    let host = host("health", Grants::default());
    let params = json!({ "checks": [{ "name": "app", "url": server.url("/health") }] });
    let (outcome, events) = step(&host, "health", "check", params, Opts::default()).await;
    let d = data(&outcome);
    // Nothing is known of a service the agent may not ask: not down.
    assert_eq!(d["checks"][0]["status"], "unknown");
    assert_eq!(d["healthy"], false, "a check not made is not a healthy one");
    let detail = d["checks"][0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("is not granted to plugin health"),
        "{detail}"
    );
    assert!(server.seen().is_empty(), "the request never left the host");
    assert!(events.iter().any(|e| matches!(e,
        StepEvent::Log { level: crate::plugin::LogLevel::Warn, message } if message.contains("host refused"))));
}

#[test]
fn a_plugin_whose_needs_are_not_granted_is_not_loaded_and_the_refusal_says_why() {
    let host = PluginHost::new(
        &[config(
            "app",
            Grants {
                urls: vec!["http://127.0.0.1:8080/".into()],
                ..Grants::default()
            },
            None,
        )],
        SecretStore::empty(),
        StepLimits::default(),
    )
    .expect("a plugin whose needs are not granted is disabled, not a failed start");
    assert!(
        host.inventory().iter().all(|p| p.name != "app"),
        "the app plugin is not served"
    );
    let disabled = host.disabled();
    let Some((_, _, text)) = disabled.iter().find(|(name, _, _)| name == "app") else {
        panic!("the app plugin needs a program grant: {disabled:?}");
    };
    assert!(
        text.contains("plugin `app` needs") && text.contains("some program grant (git"),
        "{text}"
    );
    assert!(!text.contains("url"), "the URL need is granted: {text}");
    // The health plugin declares nothing: it loads without grants.
    let host = PluginHost::new(
        &[config("health", Grants::default(), None)],
        SecretStore::empty(),
        StepLimits::default(),
    )
    .expect("a plugin that declares no needs loads");
    assert!(host.disabled().is_empty());
}

fn register(seen: &super::Seen) -> (u16, String, Duration) {
    let json = seen
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "application/json");
    if seen.method == "POST" && json && seen.body.starts_with(b"{\"email\"") {
        (201, "created".into(), Duration::ZERO)
    } else {
        route(seen)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_probe_with_test_data_must_answer_as_expected() {
    let server = TestServer::start(register);
    let host = host(
        "health",
        Grants {
            urls: vec![server.url("/")],
            ..Default::default()
        },
    );
    let params = json!({ "checks": [{
        "name": "registration", "url": server.url("/api/auth/register"), "method": "POST",
        "expect_status": [200, 201], "body": "{\"email\":\"rollback_test@example.com\"}",
    }], "require_healthy": true });
    let (outcome, _) = step(&host, "health", "check", params, Opts::default()).await;
    assert_eq!(data(&outcome)["checks"][0]["status"], "up", "{outcome:?}");
    // Without the body the endpoint does not create anything: down, and the step fails.
    let params = json!({ "checks": [{
        "name": "registration", "url": server.url("/api/auth/register"), "method": "POST",
        "expect_status": [200, 201],
    }], "require_healthy": true });
    let (outcome, _) = step(&host, "health", "check", params, Opts::default()).await;
    assert_eq!(failure(&outcome).0, "unhealthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_samples_response_and_errors_and_warns_over_thresholds() {
    let server = TestServer::start(route);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("error.log");
    std::fs::write(&log, "ERROR a\nERROR b\nok\nERROR c\n").unwrap();
    let host = host(
        "health",
        Grants {
            urls: vec![server.url("/")],
            read: vec![logs.path().to_path_buf()],
            ..Default::default()
        },
    );
    let params = json!({
        "url": server.url("/slow"), "samples": 3, "every": "100ms", "warn_response_s": 0.2,
        "log": { "path": log, "tail_lines": 50, "pattern": "ERROR" }, "warn_errors": 2,
    });
    let (outcome, events) = step(&host, "health", "baseline", params, Opts::default()).await;
    let d = data(&outcome);
    let samples = d["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 3);
    assert!(d["max_response_s"].as_f64().unwrap() >= 0.3, "{d}");
    assert_eq!(samples[0]["errors"], 3);
    assert_eq!(
        d["samples_with_warnings"], 3,
        "every sample is slow and has 3 > 2 errors"
    );
    assert_eq!(d["log"]["matches"], 3);
    let progress = events
        .iter()
        .filter(|e| matches!(e, StepEvent::Progress { .. }))
        .count();
    assert_eq!(progress, 3, "one live progress event per sample");
}
