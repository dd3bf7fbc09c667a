//! The decision matrix end to end: a real Prometheus scraping the sample app,
//! a coordinator with a plan, a fault injected the way a bad deploy would.

use std::time::Duration;

use backout_e2e::fleet::{Fleet, FleetBuilder};
use backout_e2e::services::{Prometheus, SampleApp};
use backout_e2e::{Pki, cli, wait_for};
use serde_json::{Value, json};

/// The seed's considered "High Error Rate" trigger with its window shortened
/// from 15 minutes to 4 seconds (same code path), plus the manual triggers.
fn plan(prometheus: &str) -> String {
    format!(
        r#"[signals.error_rate]
prometheus = {{ url = "{prometheus}", query = 'sum(rate(http_requests_total{{code=~"5.."}}[5s])) / sum(rate(http_requests_total[5s]))' }}
interval = "500ms"
stale_after = "3s"
[signals.breach_confirmed]
manual = true
[[trigger]]
name = "High Error Rate"
class = "considered"
when = "error_rate > 5%"
for = "4s"
deciders = ["technical-lead", "release-manager"]
[[trigger]]
name = "Critical Security Breach"
class = "immediate"
when = "breach_confirmed"
deciders = ["security-lead", "release-manager"]
"#
    )
}

/// A coordinator (no agents) with `plan` and operator alice (release-manager).
fn fleet(pki: Pki, plan: &str) -> FleetBuilder {
    Fleet::builder("matrix.test")
        .pki(pki)
        .operators(&[("alice", &["release-manager"])])
        .roles(["technical-lead", "security-lead"])
        .plan(plan)
}

fn assess(pki: &Pki, addr: &str) -> Value {
    let out = cli(
        pki,
        addr,
        "alice",
        &["assess", "--output", "json", "--deploy-time", "1m"],
    );
    assert!(
        out.status.code().is_some_and(|c| c <= 1 || c == 3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn trigger(doc: &Value, name: &str) -> Value {
    doc["matrix"]["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trigger"] == name)
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn error_rate_breaches_then_fires_after_its_window_with_a_real_prometheus() {
    let pki = Pki::new("matrix.test");
    let app = SampleApp::start(pki.path()).await;
    let mut prometheus = Prometheus::start(pki.path(), &[format!("127.0.0.1:{}", app.port)]).await;
    let fleet = fleet(pki, &plan(&prometheus.url))
        .config("evaluate_every = \"500ms\"\n")
        .start()
        .await;
    let (pki, addr) = (&fleet.pki, fleet.addr.clone());

    // Guard watches from the start, as after a deploy.
    let mut guard = backout_e2e::Proc::spawn(
        &backout_e2e::bin("backout"),
        &[
            "guard",
            "--interval",
            "300ms",
            "--deploy-time",
            "1m",
            "--exit-on-immediate",
            "--coordinator",
            &addr,
            "--pki",
            pki.path().to_str().unwrap(),
            "--operator",
            "alice",
        ],
        &pki.path().join("guard.log"),
    );
    let mut guard_stdout = guard.child.stdout.take().unwrap();
    let guard_output = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut guard_stdout, &mut text)
            .await
            .unwrap();
        text
    });

    // Healthy traffic first: the trigger is ok once Prometheus has rates.
    wait_for(
        "the error-rate trigger to be ok",
        Duration::from_secs(60),
        || (trigger(&assess(pki, &addr), "High Error Rate")["state"] == "ok").then_some(()),
    )
    .await;
    let doc = assess(pki, &addr);
    assert_eq!(doc["verdict"], "NO ACTION");

    // The bad deploy: 12% of requests fail.
    app.fault(json!({ "error_rate": 0.12 })).await;
    let breaching = wait_for("the trigger to breach", Duration::from_secs(30), || {
        let doc = assess(pki, &addr);
        (trigger(&doc, "High Error Rate")["state"] == "breaching").then_some(doc)
    })
    .await;
    let row = trigger(&breaching, "High Error Rate");
    assert!(row["held_ms"].as_i64().unwrap() < 4_000, "{row}");
    let value: f64 = row["value"].as_str().unwrap().parse().unwrap();
    assert!(value > 0.05 && value < 0.2, "live value {value}");
    assert_eq!(
        breaching["verdict"], "NO ACTION",
        "breaching is not yet fired"
    );

    let fired = wait_for("the trigger to fire", Duration::from_secs(30), || {
        let doc = assess(pki, &addr);
        (trigger(&doc, "High Error Rate")["state"] == "FIRED").then_some(doc)
    })
    .await;
    let row = trigger(&fired, "High Error Rate");
    assert!(row["held_ms"].as_i64().unwrap() >= 4_000, "{row}");
    assert_eq!(fired["verdict"], "ASSESS FOR ROLLBACK");
    assert_eq!(
        fired["matrix"]["deciders"],
        json!(["technical-lead", "release-manager"])
    );
    // Started after the deploy (given as one minute ago).
    assert_eq!(
        fired["checklist"]["started_after_deploy"]["answer"], "yes",
        "{}",
        fired["checklist"]
    );

    // A person confirms a breach: the immediate trigger outranks.
    let out = cli(
        pki,
        &addr,
        "alice",
        &[
            "signal",
            "set",
            "breach_confirmed=true",
            "--note",
            "PII exposed",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = wait_for("the breach to fire", Duration::from_secs(10), || {
        let doc = assess(pki, &addr);
        (doc["verdict"] == "IMMEDIATE ROLLBACK").then_some(doc)
    })
    .await;
    assert_eq!(
        doc["matrix"]["deciders"],
        json!(["security-lead", "release-manager"])
    );
    let breach = doc["matrix"]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "breach_confirmed")
        .unwrap()
        .clone();
    assert_eq!(breach["set_by"], "alice");
    assert_eq!(breach["note"], "PII exposed");

    // Guard saw it all, acted on the immediate trigger and exited 1.
    let status = tokio::time::timeout(Duration::from_secs(20), guard.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let said = guard_output.await.unwrap();
    assert!(said.contains("High Error Rate: ok -> breaching"), "{said}");
    assert!(
        said.contains("High Error Rate: breaching -> FIRED"),
        "{said}"
    );
    assert!(
        said.contains(
            "ASSESS FOR ROLLBACK: High Error Rate fired; paging technical-lead + release-manager"
        ),
        "{said}"
    );
    assert!(
        said.contains("IMMEDIATE ROLLBACK: Critical Security Breach fired"),
        "{said}"
    );
    assert!(
        said.contains("decision recorded on the coordinator"),
        "{said}"
    );
    assert!(
        fleet
            .coordinator
            .proc
            .log_text()
            .contains("decision recorded")
    );
    cli(
        pki,
        &addr,
        "alice",
        &["signal", "set", "breach_confirmed=false"],
    );

    // Fixed: back to ok.
    app.fault(json!({ "error_rate": 0.0 })).await;
    wait_for("the trigger to recover", Duration::from_secs(30), || {
        (trigger(&assess(pki, &addr), "High Error Rate")["state"] == "ok").then_some(())
    })
    .await;

    // Prometheus down: the trigger is unknown (never ok), and says why.
    prometheus.proc.kill().await;
    let doc = wait_for("the trigger to be unknown", Duration::from_secs(30), || {
        let doc = assess(pki, &addr);
        (trigger(&doc, "High Error Rate")["state"] == "unknown").then_some(doc)
    })
    .await;
    let signal = doc["matrix"]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "error_rate")
        .unwrap()
        .clone();
    assert!(
        signal["error"]
            .as_str()
            .unwrap_or_default()
            .contains("api/v1/query"),
        "{signal}"
    );
    assert!(
        doc["matrix"]["unknown"]
            .as_array()
            .unwrap()
            .contains(&json!("High Error Rate"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signal_input_is_refused_with_exit_2() {
    let fleet = fleet(Pki::new("signals.test"), &plan("http://127.0.0.1:9"))
        .start()
        .await;
    for (args, expect) in [
        (vec!["signal", "set", "nope=true"], "no signal `nope`"),
        (
            vec!["signal", "set", "error_rate=0.5"],
            "only manual signals",
        ),
        (
            vec!["signal", "set", "breach_confirmed=maybe"],
            "not a value",
        ),
        (vec!["signal", "set", "breach_confirmed"], "NAME=VALUE"),
    ] {
        let out = fleet.cli("alice", &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}
