//! `backout assess` across a real fleet: coordinator and two agents as
//! processes, health checks against a local HTTP server.

use std::time::Duration;

use backout_e2e::fleet::Fleet;
use backout_e2e::http::TestHttp;
use backout_e2e::{Pki, plugin, sha256_file, wait_for};
use serde_json::Value;

/// A coordinator without a plan that knows app-1 and app-2 (group `app`),
/// with health checks against `http` and a log check, and both agents.
async fn fleet(domain: &str, http: &TestHttp) -> Fleet {
    let pki = Pki::new(domain);
    let health_sha = sha256_file(&plugin("health"));
    let log_dir = pki.path().join("logs");
    std::fs::create_dir_all(&log_dir).unwrap();
    let log_file = log_dir.join("error.log");
    let mut lines: Vec<String> = (0..150).map(|i| format!("INFO request {i}")).collect();
    for i in [140, 145, 149] {
        lines[i] = format!("ERROR payment provider timeout {i}");
    }
    lines[10] = "ERROR old error outside the tail".into();
    std::fs::write(&log_file, lines.join("\n") + "\n").unwrap();

    let config = format!(
        r#"heartbeat_interval = "1s"
[plugins.health]
sha256 = "{health_sha}"
[assess]
timeout = "10s"
[[assess.check]]
name = "health"
url = "{up}"
[[assess.check]]
name = "payments"
url = "{down}"
agents = ["app-2"]
[[assess.check]]
name = "orders"
url = "{slow}"
agents = ["app-1"]
slow = "300ms"
timeout = "5s"
[assess.log]
path = "{log}"
tail_lines = 100
pattern = "ERROR"
agents = ["app-1"]
"#,
        up = http.url("/up"),
        down = http.url("/down"),
        slow = http.url("/slow"),
        log = log_file.display(),
    );
    let state_dir = pki.path().to_path_buf();
    let origin = http.url("/");
    Fleet::builder(domain)
        .pki(pki)
        .hosts(["app-1", "app-2"])
        .group("app", ["app-1", "app-2"])
        .operators(&[("alice", &["release-manager"])])
        .config(&config)
        .agent_config(move |id, text| {
            // Grant the health plugin the log directory instead of the
            // agent's state, and the test server's origin (default: port 80).
            let state = state_dir.join(format!("state-{id}"));
            text.replace(
                &format!("read = [\"{}\"]", state.display()),
                &format!("read = [\"{}\"]", log_dir.display()),
            )
            .replace(
                "urls = [\"http://127.0.0.1/\"]",
                &format!("urls = [\"{origin}\"]"),
            )
        })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn assess_reports_up_down_and_slow_checks_per_host_as_json() {
    let http = TestHttp::start().await;
    let fleet = fleet("assess.test", &http).await;

    let out = fleet.cli("alice", &["assess", "--output", "json"]);
    // One check is down, so the fleet is not healthy: exit 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["healthy"], false);
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let host = |id: &str| hosts.iter().find(|h| h["agent"] == id).unwrap().clone();
    let check = |h: &Value, name: &str| {
        h["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };

    let app1 = host("app-1");
    assert_eq!(app1["state"], "ok");
    assert_eq!(app1["healthy"], true, "{app1}");
    assert_eq!(check(&app1, "health")["status"], "up");
    assert_eq!(check(&app1, "health")["http_status"], 200);
    let orders = check(&app1, "orders");
    assert_eq!(orders["status"], "slow", "{orders}");
    assert!(orders["latency_ms"].as_u64().unwrap() >= 800, "{orders}");
    // The seed's `tail -n 100 error.log | grep ERROR | wc -l`: 3, not 4.
    assert_eq!(app1["log"]["matches"], 3, "{app1}");
    assert_eq!(app1["log"]["lines"], 100);

    let app2 = host("app-2");
    assert_eq!(app2["healthy"], false);
    let payments = check(&app2, "payments");
    assert_eq!(payments["status"], "down");
    assert_eq!(payments["http_status"], 503);
    assert!(
        payments["detail"].as_str().unwrap().contains("503"),
        "{payments}"
    );
    assert_eq!(app2["log"], Value::Null);

    // Every command and result went to the journal first, and the chain verifies.
    let audit = fleet.audit_verify();
    assert_eq!(audit["intact"], true);
    assert!(audit["entries"].as_i64().unwrap() >= 4, "{audit}");

    // The table for people says the same.
    let out = fleet.cli("alice", &["assess"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SLOW") && text.contains("DOWN") && text.contains("UNHEALTHY"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_lists_version_last_seen_and_plugin_hashes() {
    let http = TestHttp::start().await;
    let mut fleet = fleet("agents.test", &http).await;

    let out = fleet.cli("alice", &["agents", "--output", "json"]);
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let app1 = doc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "app-1")
        .unwrap()
        .clone();
    assert_eq!(app1["version"], env!("CARGO_PKG_VERSION"));
    assert!(app1["last_seen_ago_ms"].as_i64().unwrap() < 5_000, "{app1}");
    let health = app1["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "health")
        .unwrap()
        .clone();
    assert_eq!(health["sha256"], sha256_file(&plugin("health")));

    // An agent that stops is shown as gone, not forgotten.
    fleet.kill_agent("app-2").await;
    wait_for("app-2 to be gone", Duration::from_secs(20), || {
        (fleet.connected() == ["app-1"]).then_some(())
    })
    .await;
    let out = fleet.cli("alice", &["agents"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("app-2") && text.contains("gone"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_reconnect_after_the_coordinator_restarts() {
    let http = TestHttp::start().await;
    let mut fleet = fleet("reconnect.test", &http).await;
    // Kill the coordinator and start it again on the same port: the agents
    // must notice and come back by themselves.
    let addr = fleet.addr.clone();
    fleet.restart_coordinator().await;
    assert_eq!(fleet.coordinator.addr, addr);
    fleet.wait_connected(2).await;
    let log = std::fs::read_to_string(fleet.agent_log("app-1", "")).unwrap();
    assert!(log.contains("reconnecting"), "{log}");
}
