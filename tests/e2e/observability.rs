//! Metrics and traces. A real Prometheus scrapes the coordinator's and each
//! agent's `/metrics` during a run, and its HTTP API is asked for the
//! values; a metrics listener off loopback is bad input. A real OTLP
//! receiver (the official protobufs' `TraceService`) gets one trace per run
//! whose spans come from the coordinator and the agents.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use backout_e2e::fleet::Fleet;
use backout_e2e::fleet::run_id;
use backout_e2e::otlp::{OtlpReceiver, ReceivedSpan};
use backout_e2e::plans::{APP_HOSTS, app_then_database, marked, marked_counts, marked_fleet};
use backout_e2e::services::{Prometheus, ScrapePki, free_port, http_get};
use backout_e2e::{bin, run, target_dir, wait_for};

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

    // A client that is not TLS at all: its refused handshake is counted.
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&fleet.addr).unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let _ = stream.read_to_end(&mut Vec::new());
    }

    let mut targets = vec![format!("127.0.0.1:{coordinator_port}")];
    targets.extend(agent_ports.values().map(|p| format!("127.0.0.1:{p}")));
    let prometheus = Prometheus::start(fleet.path(), &targets).await;
    prometheus.wait_value("count(up == 1)", 3.0).await;
    prometheus.wait_value("backout_agents_connected", 2.0).await;
    prometheus
        .wait_value("sum(backout_agent_sessions_connected)", 2.0)
        .await;
    prometheus
        .wait_value("sum(backout_handshake_refusals_total)", 1.0)
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

    // What the README's "Metrics and traces" shows comes from here.
    let out = target_dir().join("observability");
    std::fs::create_dir_all(&out).unwrap();
    let (_, coordinator) = http_get(&format!("127.0.0.1:{coordinator_port}"), "/metrics").unwrap();
    std::fs::write(out.join("coordinator.metrics"), &coordinator).unwrap();
    let (_, agent) = http_get(&format!("127.0.0.1:{}", agent_ports["app-1"]), "/metrics").unwrap();
    std::fs::write(out.join("agent.metrics"), agent).unwrap();
}

/// The `backout_…` metric names a PromQL expression uses.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("backout_"))
        .map(str::to_string)
        .collect()
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

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_over_mutual_tls_off_loopback_and_strangers_are_refused() {
    let certs = tempfile::tempdir().unwrap();
    let pki = ScrapePki::write(certs.path());
    let coordinator_port = free_port();
    let agent_port = free_port();
    // Every address, not loopback only: allowed with [metrics.tls].
    let tls = pki.metrics_tls();
    let agent_tls = tls.clone();
    let fleet = Fleet::builder("mtls.test")
        .hosts(["app-1"])
        .config(&format!(
            "[metrics]\nlisten = \"0.0.0.0:{coordinator_port}\"\n{tls}"
        ))
        .agent_config(move |_, config| {
            format!("{config}\n[metrics]\nlisten = \"0.0.0.0:{agent_port}\"\n{agent_tls}")
        })
        .start()
        .await;
    // The real Prometheus, `scheme: https` with its client certificate.
    let targets = [
        format!("127.0.0.1:{coordinator_port}"),
        format!("127.0.0.1:{agent_port}"),
    ];
    let prometheus = Prometheus::start_mtls(fleet.path(), &targets, &pki).await;
    prometheus
        .wait_value("count(up{job=\"backout\"} == 1)", 2.0)
        .await;
    prometheus.wait_value("backout_agents_connected", 1.0).await;
    prometheus
        .wait_value("backout_agent_sessions_connected", 1.0)
        .await;

    for addr in &targets {
        // The scraper's certificate is let in (the check below can fail).
        let (head, body) = pki
            .get_metrics(addr, Some((&pki.client_cert, &pki.client_key)))
            .await
            .unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.contains("_build_info{version=\""), "{body}");
        // No certificate, or one from another CA: refused in the handshake.
        let none = pki.get_metrics(addr, None).await;
        assert!(
            none.is_err(),
            "{addr}: a client without a certificate got {none:?}"
        );
        let stranger = pki
            .get_metrics(addr, Some((&pki.stranger_cert, &pki.stranger_key)))
            .await;
        assert!(
            stranger.is_err(),
            "{addr}: another CA's client got {stranger:?}"
        );
        // Plain HTTP gets no answer.
        assert!(http_get(addr, "/metrics").is_none_or(|(head, _)| !head.contains(" 200 ")));
    }
}

#[test]
fn a_metrics_tls_file_that_does_not_load_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ScrapePki::write(dir.path());
    std::fs::write(&pki.server_key, "not a key\n").unwrap();
    let path = dir.path().join("coordinator.toml");
    // A fleet's PKI, so that serve gets as far as the metrics listener.
    let fleet_pki = backout_e2e::Pki::new("bad.test");
    let p = fleet_pki.path().display();
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ncommand_key = \"{p}/command-signing.key\"\nstate_dir = \"{}\"\n\
             [tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/coordinator.pem\"\nkey = \"{p}/coordinator.key\"\n\
             [metrics]\nlisten = \"0.0.0.0:0\"\n{}",
            dir.path().join("state").display(),
            pki.metrics_tls()
        ),
    )
    .unwrap();
    let out = run(
        &bin("backout"),
        &["serve", "--config", path.to_str().unwrap()],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("metrics.tls"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: not a PEM private key",
            pki.server_key.display()
        )),
        "{stderr}"
    );
}

/// The spans of the trace `trace_id`, by span id.
fn trace_of(spans: &[ReceivedSpan], trace_id: &str) -> BTreeMap<String, ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| (s.span_id.clone(), s.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_run_is_one_trace_across_the_coordinator_and_its_agents() {
    let receiver = OtlpReceiver::start().await;
    let otlp = format!("\n[otlp]\nendpoint = \"{}\"\n", receiver.endpoint);
    let agent_otlp = otlp.clone();
    let (builder, marks_dir) = marked_fleet("traces.test", |dir| marked(&dir.join("marks")));
    let marks = marks_dir.join("marks");
    let fleet = builder
        .config(&otlp)
        .agent_config(move |_, config| format!("{config}{agent_otlp}"))
        .start()
        .await;

    let id = fleet.start_approved(&["--reason", "traces"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        marked_counts(&marks),
        vec![("stop".into(), 2), ("start".into(), 2), ("check".into(), 1)]
    );

    // The run's span ends with the run; every span of its trace is in by
    // the time the agents' write-file calls (the last spans of each step)
    // have come for all five steps.
    let (trace_id, trace) = wait_for("the run's whole trace", Duration::from_secs(60), || {
        let spans = receiver.spans();
        let run_span = spans
            .iter()
            .find(|s| s.name == "run" && s.attribute("run") == Some(id.as_str()))?;
        let trace = trace_of(&spans, &run_span.trace_id);
        let writes = trace
            .values()
            .filter(|s| s.name == "host.write-file")
            .count();
        (writes == 5).then(|| (run_span.trace_id.clone(), trace))
    })
    .await;
    let services: BTreeSet<&str> = trace.values().map(|s| s.service.as_str()).collect();
    assert_eq!(services, BTreeSet::from(["backout", "backout-agent"]));
    // No span of the run's steps went to another trace.
    let elsewhere = receiver
        .spans()
        .into_iter()
        .filter(|s| s.name == "step" && s.attribute("run") == Some(id.as_str()))
        .filter(|s| s.trace_id != trace_id)
        .count();
    assert_eq!(elsewhere, 0);

    // Each host call's ancestry: plugin call → agent step → coordinator
    // step → phase → run.
    let parent = |span: &ReceivedSpan| -> ReceivedSpan {
        trace
            .get(&span.parent_id)
            .unwrap_or_else(|| panic!("{} has no parent in the trace: {span:?}", span.name))
            .clone()
    };
    for write in trace.values().filter(|s| s.name == "host.write-file") {
        assert_eq!(write.service, "backout-agent");
        let plugin = parent(write);
        assert_eq!(plugin.name, "plugin");
        assert_eq!(plugin.attribute("plugin"), Some("testbed"));
        assert_eq!(plugin.attribute("action"), Some("write"));
        let agent_step = parent(&plugin);
        assert_eq!(agent_step.name, "agent.step");
        assert_eq!(agent_step.service, "backout-agent");
        let step = parent(&agent_step);
        assert_eq!(step.name, "step");
        assert_eq!(step.service, "backout");
        assert_eq!(
            agent_step.attribute("agent"),
            step.attribute("host"),
            "the step ran on the host it was sent to"
        );
        // One span on the agent carries both the trace parent and the
        // step's ids (its log lines' fields).
        for field in ["run", "phase", "step", "host"] {
            assert!(step.attribute(field).is_some(), "{field}: {step:?}");
            assert_eq!(
                agent_step.attribute(field),
                step.attribute(field),
                "{field}: {agent_step:?}"
            );
        }
        let phase = parent(&step);
        assert_eq!(phase.name, "phase");
        assert_eq!(phase.attribute("phase"), step.attribute("phase"));
        let run_span = parent(&phase);
        assert_eq!(run_span.name, "run");
        assert_eq!(run_span.parent_id, "", "the run is the trace's root");
    }
    // What the README's "Metrics and traces" shows comes from here.
    let out = target_dir().join("observability");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("trace.txt"), tree(&trace)).unwrap();

    // The agent's checks are in the trace too, under its step.
    let admits: Vec<&ReceivedSpan> = trace.values().filter(|s| s.name == "admit").collect();
    assert_eq!(admits.len(), 5);
    for admit in admits {
        assert_eq!(parent(admit).name, "agent.step");
    }
}

/// The trace as an indented tree: service, span name and its fields.
fn tree(trace: &BTreeMap<String, ReceivedSpan>) -> String {
    fn walk(trace: &BTreeMap<String, ReceivedSpan>, parent: &str, depth: usize, out: &mut String) {
        let mut children: Vec<&ReceivedSpan> =
            trace.values().filter(|s| s.parent_id == parent).collect();
        children.sort_by_key(|s| {
            (
                s.attribute("phase"),
                s.attribute("step"),
                s.attribute("host"),
                &s.name,
            )
        });
        for span in children {
            let fields: Vec<String> = span
                .attributes
                .iter()
                .filter(|(k, _)| {
                    !k.starts_with("code.")
                        && !k.starts_with("thread.")
                        && k != "target"
                        && k != "busy_ns"
                        && k != "idle_ns"
                })
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!(
                "{:indent$}{} [{}] {}\n",
                "",
                span.name,
                span.service,
                fields.join(" "),
                indent = depth * 2
            ));
            walk(trace, &span.span_id, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(trace, "", 0, &mut out);
    out
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    // The metrics that exist: the names each binary's one metrics module
    // registers (counters and histograms gain suffixes when served).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut registered = BTreeSet::new();
    for module in ["coordinator/src/metrics.rs", "agent/src/metrics.rs"] {
        let source = std::fs::read_to_string(root.join(module)).unwrap();
        for quoted in source.split('"').skip(1).step_by(2) {
            if quoted.starts_with("backout_") && !quoted.contains(' ') {
                registered.insert(quoted.to_string());
            }
        }
    }
    assert!(registered.contains("backout_steps"), "{registered:?}");

    let dashboard = std::fs::read_to_string(root.join("examples/grafana/backout.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr} names no backout metric");
            for name in names {
                let family = ["_total", "_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name);
                assert!(
                    registered.contains(family),
                    "the dashboard's `{expr}` names `{name}`, which no metrics module registers"
                );
            }
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries}");
}

#[test]
fn the_readme_configuration_example_loads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("## Metrics and traces").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    std::fs::write(
        &path,
        format!("listen = \"127.0.0.1:0\"\ncommand_key = \"k\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n{example}"),
    )
    .unwrap();
    let config = backout::config::CoordinatorConfig::load(&path).unwrap();
    assert_eq!(config.metrics.unwrap().listen, "127.0.0.1:9464");
    assert_eq!(config.otlp.unwrap().endpoint, "http://127.0.0.1:4317");

    // Its commented lines are the mutual TLS form: uncommented (instead
    // of the loopback `listen`), they load too, off loopback.
    let mtls: Vec<&str> = example
        .lines()
        .filter(|line| !line.starts_with("listen = "))
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .collect();
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ncommand_key = \"k\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n{}\n",
            mtls.join("\n")
        ),
    )
    .unwrap();
    let config = backout::config::CoordinatorConfig::load(&path).unwrap();
    let metrics = config.metrics.unwrap();
    assert_eq!(metrics.listen, "0.0.0.0:9464");
    assert_eq!(
        metrics.tls.unwrap().client_ca,
        dir.path().join("scrapers-ca.pem")
    );
}
