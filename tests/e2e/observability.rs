//! Metrics: a real Prometheus scrapes the coordinator's and each agent's
//! `/metrics` during a run, and its HTTP API is asked for the values; a
//! metrics listener off loopback is bad input.

use std::collections::BTreeMap;

use backout_e2e::fleet::run_id;
use backout_e2e::plans::{APP_HOSTS, app_then_database};
use backout_e2e::services::{Prometheus, free_port, http_get};
use backout_e2e::{bin, run};

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_coordinator_and_the_agents_during_a_run() {
    let coordinator_port = free_port();
    let agent_ports: BTreeMap<String, u16> = APP_HOSTS
        .iter()
        .map(|host| (host.to_string(), free_port()))
        .collect();
    let ports = agent_ports.clone();
    let fleet = app_then_database("metrics.test")
        .config(&format!(
            "[metrics]\nlisten = \"127.0.0.1:{coordinator_port}\"\n"
        ))
        .agent_config(move |id, config| {
            format!(
                "{config}\n[metrics]\nlisten = \"127.0.0.1:{}\"\n",
                ports[id]
            )
        })
        .start()
        .await;

    // Served as OpenMetrics text, on the listener the configuration names.
    let (head, body) = http_get(&format!("127.0.0.1:{coordinator_port}"), "/metrics").unwrap();
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.contains("backout_build_info{version=\""), "{body}");
    let (_, body) = http_get(&format!("127.0.0.1:{}", agent_ports["app-1"]), "/metrics").unwrap();
    assert!(
        body.contains("backout_agent_sessions_connected 1"),
        "{body}"
    );

    let mut targets = vec![format!("127.0.0.1:{coordinator_port}")];
    targets.extend(agent_ports.values().map(|p| format!("127.0.0.1:{p}")));
    let prometheus = Prometheus::start(fleet.path(), &targets).await;
    prometheus.wait_value("count(up == 1)", 3.0).await;
    prometheus.wait_value("backout_agents_connected", 2.0).await;
    prometheus
        .wait_value("sum(backout_agent_sessions_connected)", 2.0)
        .await;

    // During the run: it waits for its two approvals.
    let started = fleet.start_run("dave", &["--reason", "metrics", "--phases", "application"]);
    let id = run_id(&started);
    prometheus
        .wait_value("backout_approvals_pending", 1.0)
        .await;
    prometheus
        .wait_value("backout_runs{status=\"awaiting-approval\"}", 1.0)
        .await;
    let waited = prometheus.query(&format!("backout_approval_wait_seconds{{run=\"{id}\"}}"));
    assert_eq!(waited.len(), 1, "{waited:?}");
    assert_eq!(waited[0].0["scope"], "run");

    fleet.approve(&id, &["alice", "bob"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // After it: stop and start on both hosts, seen from both sides.
    prometheus
        .wait_value("backout_approvals_pending", 0.0)
        .await;
    prometheus
        .wait_value("backout_runs{status=\"succeeded\"}", 1.0)
        .await;
    prometheus
        .wait_value("backout_runs_ended_total{status=\"succeeded\"}", 1.0)
        .await;
    prometheus
        .wait_value(
            "backout_steps_total{plugin=\"testbed\",action=\"echo\",outcome=\"succeeded\"}",
            4.0,
        )
        .await;
    prometheus
        .wait_value(
            "backout_step_duration_seconds_count{plugin=\"testbed\",action=\"echo\"}",
            4.0,
        )
        .await;
    prometheus
        .wait_value(
            "sum(backout_agent_plugin_steps_total{plugin=\"testbed\",action=\"echo\",outcome=\"succeeded\"})",
            4.0,
        )
        .await;
    // One step per host per step id: each agent ran two.
    for port in agent_ports.values() {
        prometheus
            .wait_value(
                &format!(
                    "backout_agent_plugin_steps_total{{instance=\"127.0.0.1:{port}\",outcome=\"succeeded\"}}"
                ),
                2.0,
            )
            .await;
    }
    prometheus
        .wait_value(
            "backout_phase_duration_seconds_count{phase=\"application\"}",
            1.0,
        )
        .await;
    let sent = prometheus.query("backout_commands_sent_total{plugin=\"testbed\",action=\"echo\"}");
    assert!(sent.first().is_some_and(|(_, n)| *n >= 4.0), "{sent:?}");
    let appends = prometheus.query("backout_journal_write_duration_seconds_count");
    assert!(
        appends.first().is_some_and(|(_, n)| *n > 0.0),
        "{appends:?}"
    );
    assert_eq!(
        prometheus.query("sum(backout_agent_commands_refused_total)"),
        Vec::new(),
        "no command was refused"
    );
}

#[test]
fn a_metrics_listener_off_loopback_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\ncommand_key = \"k\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[metrics]\nlisten = \"0.0.0.0:9464\"\n",
    )
    .unwrap();
    let out = run(
        &bin("backout"),
        &["serve", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:8:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("metrics.listen"), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
