//! `backout assess` across a real fleet: coordinator and two agents as
//! processes, health checks against a local HTTP server.

use std::time::Duration;

use backout_e2e::http::TestHttp;
use backout_e2e::{
    Coordinator, Pki, agent_config, cli, connected_agents, plugin, sha256_file, start_agent,
    wait_for,
};
use serde_json::Value;

/// Starts a coordinator that knows app-1 and app-2, and both agents.
async fn fleet(pki: &Pki, http: &TestHttp) -> (Coordinator, Vec<backout_e2e::Proc>) {
    for agent in ["app-1", "app-2"] {
        pki.issue("agent", agent);
    }
    pki.issue("operator", "alice");
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
        r#"command_key = "{p}/command-signing.key"
heartbeat_interval = "1s"
[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
[[agent]]
id = "app-1"
groups = ["app"]
[[agent]]
id = "app-2"
groups = ["app"]
[operators]
alice = ["release-manager"]
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
        p = pki.path().display(),
        up = http.url("/up"),
        down = http.url("/down"),
        slow = http.url("/slow"),
        log = log_file.display(),
    );
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let mut agents = Vec::new();
    for id in ["app-1", "app-2"] {
        let state = pki.path().join(format!("state-{id}"));
        let mut text = agent_config(pki, id, &coordinator.addr, &state, "");
        text = text.replace(
            &format!("read = [\"{}\"]", state.display()),
            &format!("read = [\"{}\"]", log_dir.display()),
        );
        // Grant the health plugin the test server's origin (default: port 80 only).
        text = text.replace(
            "urls = [\"http://127.0.0.1/\"]",
            &format!("urls = [\"{}\"]", http.url("/")),
        );
        let path = pki.path().join(format!("{id}.toml"));
        std::fs::write(&path, text).unwrap();
        agents.push(start_agent(&path, &pki.path().join(format!("{id}.log"))));
    }
    let addr = coordinator.addr.clone();
    wait_for("both agents to connect", Duration::from_secs(30), || {
        let ids = connected_agents(pki, &addr, "alice");
        (ids.len() == 2).then_some(())
    })
    .await;
    (coordinator, agents)
}

#[tokio::test(flavor = "multi_thread")]
async fn assess_reports_up_down_and_slow_checks_per_host_as_json() {
    let pki = Pki::new("assess.test");
    let http = TestHttp::start().await;
    let (coordinator, _agents) = fleet(&pki, &http).await;

    let out = cli(
        &pki,
        &coordinator.addr,
        "alice",
        &["assess", "--output", "json"],
    );
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
    let audit = backout_e2e::audit_verify(&pki);
    assert_eq!(audit["intact"], true);
    assert!(audit["entries"].as_i64().unwrap() >= 4, "{audit}");

    // The table for people says the same.
    let out = cli(&pki, &coordinator.addr, "alice", &["assess"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SLOW") && text.contains("DOWN") && text.contains("UNHEALTHY"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_lists_version_last_seen_and_plugin_hashes() {
    let pki = Pki::new("agents.test");
    let http = TestHttp::start().await;
    let (coordinator, mut agents) = fleet(&pki, &http).await;

    let out = cli(
        &pki,
        &coordinator.addr,
        "alice",
        &["agents", "--output", "json"],
    );
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
    agents[1].kill().await;
    let addr = coordinator.addr.clone();
    wait_for("app-2 to be gone", Duration::from_secs(20), || {
        let ids = connected_agents(&pki, &addr, "alice");
        (ids == vec!["app-1".to_string()]).then_some(())
    })
    .await;
    let out = cli(&pki, &coordinator.addr, "alice", &["agents"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("app-2") && text.contains("gone"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_reconnect_after_the_coordinator_restarts() {
    let pki = Pki::new("reconnect.test");
    let http = TestHttp::start().await;
    let (mut coordinator, _agents) = fleet(&pki, &http).await;
    // Kill the coordinator and start it again on the same port: the agents
    // must notice and come back by themselves.
    let addr = coordinator.addr.clone();
    coordinator.proc.kill().await;
    let config = std::fs::read_to_string(pki.path().join("coordinator.toml")).unwrap();
    let config = config.replace("listen = \"127.0.0.1:0\"\n", "");
    let restarted = Coordinator::start_on(pki.path(), &config, &addr).await;
    assert_eq!(restarted.addr, addr);
    wait_for("both agents to reconnect", Duration::from_secs(30), || {
        let ids = connected_agents(&pki, &addr, "alice");
        (ids.len() == 2).then_some(())
    })
    .await;
    let log = std::fs::read_to_string(pki.path().join("app-1.log")).unwrap();
    assert!(log.contains("reconnecting"), "{log}");
}
