//! The report of a real run in all three formats: timeline entries for
//! every phase and host, success criteria from the journal's timestamps,
//! figures reported by a step, and the escalation they fire.

use backout_e2e::{Pki, cli};
use serde_json::Value;

use crate::outcomes::{ended, fleet, start_approved};

const PLAN: &str = r#"[plan]
name = "report e2e"
[[host]]
id = "app-1"
groups = ["app"]
[[host]]
id = "app-2"
groups = ["app"]
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
[approvals]
run = ["technical-lead"]
[[phase]]
id = "application"
name = "Application Rollback"
[[phase.step]]
id = "deploy"
plugin = "testbed"
action = "echo"
on = "app"
params = { data_loss_usd = 6000, checks = { log_errors = 0 } }
[[phase]]
id = "communication"
name = "Communication"
after = ["application"]
[[phase.step]]
id = "tell"
plugin = "testbed"
action = "echo"
on = "app-1"
[[escalation]]
who = "CTO"
when = "data_loss_usd > 10000 or outage > 4h"
[[escalation]]
who = "CEO"
when = "data_loss_usd > 50000"
[success]
rto = "60m"
no_new_errors = true
timeline_complete = true
[report]
root_cause_due = "24h"
"#;

fn report(pki: &Pki, addr: &str, id: &str, format: &str) -> String {
    let out = cli(pki, addr, "alice", &["report", id, "--format", format]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runs_report_in_markdown_json_and_html_comes_from_its_journal() {
    let pki = Pki::new("report.test");
    let (coordinator, _agents) = fleet(&pki, PLAN, &["app-1", "app-2"]).await;
    let addr = coordinator.addr.clone();
    let id = start_approved(&pki, &addr);
    let run = ended(&pki, &addr, &id).await;
    assert_eq!(run["status"], "succeeded");

    let json: Value = serde_json::from_str(&report(&pki, &addr, &id, "json")).unwrap();
    let timeline = json["timeline"].as_array().unwrap();
    let mut seen: Vec<String> = timeline
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["phase"].as_str().unwrap(),
                s["host"].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "application/app-1",
            "application/app-2",
            "communication/app-1"
        ]
    );
    assert!(timeline.iter().all(|s| s["ended_at_ms"].as_i64().is_some()));
    // The figures: 6,000 USD reported by each of the two deploy steps.
    assert_eq!(json["figures"]["data_loss_usd"], 12000.0);
    let state = |who: &str| {
        json["escalations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["who"] == who)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("CTO"), "fired", "12,000 > 10,000");
    assert_eq!(state("CEO"), "not fired");
    // RTO measured from the journal: the run's own start and end.
    let rto = &json["success"][0];
    assert_eq!(rto["met"], true, "{rto}");
    let duration = json["run"]["duration_ms"].as_i64().unwrap();
    assert_eq!(
        duration,
        run["finished_at_ms"].as_i64().unwrap() - run["started_at_ms"].as_i64().unwrap()
    );
    assert!(json["journal"].as_str().unwrap().starts_with("intact"));

    let md = report(&pki, &addr, &id, "md");
    for row in [
        "| application | app-1 |",
        "| application | app-2 |",
        "| communication | app-1 |",
    ] {
        assert!(md.contains(row), "{row} missing:\n{md}");
    }
    assert!(
        md.contains("- CTO: `data_loss_usd > 10000 or outage > 4h` — **fired**"),
        "{md}"
    );
    assert!(md.contains("Root cause analysis — due"), "{md}");

    let html = report(&pki, &addr, &id, "html");
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 3);
    let out = cli(&pki, &addr, "alice", &["report", "run-nope"]);
    assert_eq!(out.status.code(), Some(1));
}
