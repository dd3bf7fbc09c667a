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
notify_within = "15m"
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
    // Where the time went: the parts add up to the run, the steps ran on
    // their agents (each step's `ran_ms` came back from it).
    let t = &json["run"]["timing"];
    let part = |k: &str| t[k].as_i64().unwrap();
    assert_eq!(part("run_ms"), duration, "{t}");
    assert_eq!(
        part("in_steps_ms") + part("waiting_ms") + part("orchestration_ms"),
        duration,
        "{t}"
    );
    assert!(part("in_steps_ms") > 0, "{t}");
    assert!(
        json["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ran_ms"].as_i64().is_some()),
        "every step says how long it ran"
    );

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
    // It opens in a real browser: headless Chromium renders it to a picture.
    let page = pki.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let shot = pki.path().join("report.png");
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,1400",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", page.display()),
        ])
        .output()
        .expect("chromium is installed by scripts/install-parts.sh");
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 10_000,
        "a rendered page, not a blank one ({} bytes)",
        png.len()
    );
    let out = cli(&pki, &addr, "alice", &["report", "run-nope"]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_starts_the_rollback_when_an_immediate_trigger_allows_it() {
    let pki = Pki::new("autorollback.test");
    let plan = PLAN.to_string()
        + "[signals.breach]\nmanual = true\n[[trigger]]\nname = \"Breach\"\nclass = \"immediate\"\nwhen = \"breach\"\nunknown = \"ok\"\nauto_rollback = true\ndeciders = [\"release-manager\"]\n";
    let (coordinator, _agents) = fleet(&pki, &plan, &[]).await;
    let addr = coordinator.addr.clone();
    let guard = backout_e2e::cli_child(
        &pki,
        &addr,
        "dave",
        &["guard", "--interval", "200ms", "--exit-on-immediate"],
    );
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let out = cli(
        &pki,
        &addr,
        "alice",
        &["signal", "set", "breach=true", "--note", "PII exposed"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = tokio::time::timeout(std::time::Duration::from_secs(30), guard.wait_with_output())
        .await
        .expect("guard exits on an immediate trigger")
        .unwrap();
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("rollback run run-"), "{said}");
    let runs = backout_e2e::json_of(&cli(&pki, &addr, "alice", &["runs", "--output", "json"]));
    let run = &runs["runs"][0];
    assert_eq!(run["reason"], "guard: Breach fired");
    assert_eq!(
        run["started_by"], "dave",
        "under the guard's own certificate"
    );
    assert_eq!(run["status"], "awaiting-approval", "approvals still apply");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_runs_the_plan_stamps_it_and_later_reports_compare_with_it() {
    let pki = Pki::new("drill.test");
    let (coordinator, _agents) = fleet(&pki, PLAN, &["app-1", "app-2"]).await;
    let addr = coordinator.addr.clone();
    let plan = pki.path().join("plan.toml");

    // Not the plan this coordinator serves: refused before anything runs.
    let other = pki.path().join("other.toml");
    std::fs::write(&other, PLAN.replace("report e2e", "production")).unwrap();
    let out = cli(
        &pki,
        &addr,
        "dave",
        &["drill", "--plan", other.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report_file = pki.path().join("drill.md");
    let drill = backout_e2e::cli_child(
        &pki,
        &addr,
        "dave",
        &[
            "drill",
            "--plan",
            plan.to_str().unwrap(),
            "--out",
            report_file.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    // The drill waits for its approvals like any run.
    let id = backout_e2e::wait_for("the drill run", std::time::Duration::from_secs(20), || {
        let runs = backout_e2e::json_of(&cli(&pki, &addr, "alice", &["runs", "--output", "json"]));
        runs["runs"][0]["run"].as_str().map(str::to_string)
    })
    .await;
    backout_e2e::json_of(&cli(
        &pki,
        &addr,
        "bob",
        &["approve", &id, "--output", "json"],
    ));
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), drill.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let stamped = backout_plan::model::Plan::load(&plan).unwrap();
    let last = stamped.drill.unwrap().last.unwrap();
    assert_eq!(
        (last.run.as_str(), last.result.as_str()),
        (id.as_str(), "succeeded")
    );
    assert!(last.phases.contains_key("application") && last.phases.contains_key("communication"));
    let text = std::fs::read_to_string(&report_file).unwrap();
    assert!(
        text.contains("(drill)") && text.contains("## Against the last drill"),
        "{text}"
    );

    // A later run's report shows each phase against the drill.
    let later = start_approved(&pki, &addr);
    ended(&pki, &addr, &later).await;
    let json: Value = serde_json::from_str(&report(&pki, &addr, &later, "json")).unwrap();
    assert_eq!(
        json["phases"][0]["last_drill_s"].as_f64(),
        last.phases.get("application").copied()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn people_are_told_at_start_approval_end_and_escalation_and_the_report_says_when() {
    let slack = backout_e2e::http::TestHttp::start().await;
    let pki = Pki::new("tell.test");
    let hook = slack.url("/services/T000/B000/XXXX");
    let plan = PLAN.replace("data_loss_usd = 6000", "data_loss_usd = 20000")
        + &format!(
            r#"[channels.emergency]
kind = "slack"
target = "{hook}"
via = "app-1"
[channels.team-email]
kind = "email"
target = "emergency@example.com"
[templates.emergency]
channels = ["emergency"]
on = ["start"]
body = "ROLLBACK INITIATED. Decision: {{{{ reason }}}}"
[templates.waiting]
channels = ["emergency"]
on = ["approval-waiting"]
body = "Waiting for {{{{ waiting_roles }}}} on {{{{ waiting_scope }}}}"
[templates.internal]
channels = ["emergency", "team-email"]
on = ["end"]
subject = "ROLLBACK COMPLETED"
body = "Reason: {{{{ reason }}}}. Duration: {{{{ duration }}}}. Data loss: {{{{ data_loss }}}}. Application: {{{{ status.application }}}}."
[templates.exec]
on = ["escalation"]
body = "ESCALATION to {{{{ escalation_who }}}}: {{{{ escalation_when }}}}"
"#
        );
    let plan = plan.replace(
        "[[escalation]]\nwho = \"CTO\"\nwhen = \"data_loss_usd > 10000 or outage > 4h\"\n",
        "[[escalation]]\nwho = \"CTO\"\nwhen = \"data_loss_usd > 10000 or outage > 4h\"\nchannels = [\"emergency\"]\n",
    );
    let (coordinator, _none) = fleet(&pki, &plan, &[]).await;
    let addr = coordinator.addr.clone();
    let mut agents = Vec::new();
    for id in ["app-1", "app-2"] {
        let config = pki.path().join(format!("{id}-tell.toml"));
        let notify = format!(
            "[[plugin]]\nname = \"notify\"\npath = \"{}\"\n[plugin.grants]\nurls = [\"{}\"]\n",
            backout_e2e::plugin("notify").display(),
            slack.url("/services/")
        );
        std::fs::write(
            &config,
            backout_e2e::agent_config(&pki, id, &addr, &pki.path().join(format!("s-{id}")), "")
                + &notify,
        )
        .unwrap();
        agents.push(backout_e2e::start_agent(
            &config,
            &pki.path().join(format!("{id}.log")),
        ));
    }
    backout_e2e::wait_for("agents", std::time::Duration::from_secs(30), || {
        (backout_e2e::connected_agents(&pki, &addr, "alice").len() == 2).then_some(())
    })
    .await;
    let id = start_approved(&pki, &addr);
    ended(&pki, &addr, &id).await;
    // The end and escalation messages go out just after the run ends.
    let json = backout_e2e::wait_for("four messages", std::time::Duration::from_secs(30), || {
        let json: Value = serde_json::from_str(&report(&pki, &addr, &id, "json")).ok()?;
        (json["communications"].as_array()?.len() == 5).then_some(json)
    })
    .await;
    let mut moments: Vec<(String, String, bool)> = json["communications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["moment"].as_str().unwrap().to_string(),
                n["channel"].as_str().unwrap().to_string(),
                n["sent"].as_bool().unwrap(),
            )
        })
        .collect();
    // Start and approval first, in that order; the escalation fires as soon
    // as a step reports figures over its line, during the run.
    assert_eq!(moments[0].0, "start");
    assert_eq!(moments[1].0, "approval-waiting");
    moments.sort();
    assert_eq!(
        moments,
        [
            ("approval-waiting".into(), "emergency".into(), true),
            ("end".into(), "emergency".into(), true),
            ("end".into(), "team-email".into(), false),
            ("escalation".into(), "emergency".into(), true),
            ("start".into(), "emergency".into(), true),
        ]
    );
    assert_eq!(
        json["escalations"][0]["state"], "fired",
        "and the report agrees"
    );
    let posted = slack.requests.lock().unwrap().join("\n");
    assert!(
        posted.contains("Decision: 5xx at 12%") || posted.contains("ROLLBACK INITIATED"),
        "{posted}"
    );
    assert!(
        posted.contains("Waiting for technical-lead on run"),
        "{posted}"
    );
    assert!(
        posted.contains("Data loss: $40000.00"),
        "both deploy steps report 20,000: {posted}"
    );
    assert!(posted.contains("Application: succeeded"), "{posted}");
    assert!(posted.contains("ESCALATION to CTO"), "{posted}");
    let md = report(&pki, &addr, &id, "md");
    assert!(
        md.contains("NOT sent: Backout does not send to `email` channels"),
        "{md}"
    );
}
