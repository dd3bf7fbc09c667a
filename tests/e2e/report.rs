//! The report of a real run in all three formats: timeline entries for
//! every phase and host, success criteria from the journal's timestamps,
//! figures reported by a step, and the escalation they fire.

use std::time::Duration;

use backout_e2e::fleet::{Fleet, FleetBuilder};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const PLAN: &str = r#"[[phase]]
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

/// app-1 and app-2 (group `app`), run approval by technical-lead (bob),
/// and `plan` after the head.
fn fleet(domain: &str, plan: &str) -> FleetBuilder {
    Fleet::builder(domain)
        .name("report e2e")
        .hosts(["app-1", "app-2"])
        .group("app", ["app-1", "app-2"])
        .approvals(["technical-lead"])
        .plan(plan)
}

fn start_approved(fleet: &Fleet) -> String {
    fleet.start_approved(&["--reason", "outcomes"])
}

fn report(fleet: &Fleet, id: &str, format: &str) -> String {
    let out = fleet.cli("alice", &["report", id, "--format", format]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runs_report_in_markdown_json_and_html_comes_from_its_journal() {
    let fleet = fleet("report.test", PLAN).start().await;
    let id = start_approved(&fleet);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded");

    let json: Value = serde_json::from_str(&report(&fleet, &id, "json")).unwrap();
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
    let state = |who: &str| backout_e2e::escalation(&json, who);
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

    let md = report(&fleet, &id, "md");
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

    let html = report(&fleet, &id, "html");
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 3);
    // It opens in a real browser: headless Chromium renders it to a picture.
    let page = fleet.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let shot = fleet.path().join("report.png");
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
    let out = fleet.cli("alice", &["report", "run-nope"]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_starts_the_rollback_when_an_immediate_trigger_allows_it() {
    let plan = PLAN.to_string()
        + "[signals.breach]\nmanual = true\n[[trigger]]\nname = \"Breach\"\nclass = \"immediate\"\nwhen = \"breach\"\nunknown = \"ok\"\nauto_rollback = true\ndeciders = [\"release-manager\"]\n";
    let fleet = fleet("autorollback.test", &plan).no_agents().start().await;
    let mut guard = fleet.cli_child(
        "dave",
        &["guard", "--interval", "200ms", "--exit-on-immediate"],
    );
    // The guard watches before the signal changes: it has told the
    // trigger's first state.
    let mut said = BufReader::new(guard.stdout.take().unwrap()).lines();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = said.next_line().await.unwrap() {
            text.push_str(&line);
            text.push('\n');
            if line.contains("Breach: - -> ") {
                return;
            }
        }
        panic!("the guard exited: {text}");
    })
    .await
    .expect("the guard tells the trigger's state");
    let out = fleet.cli(
        "alice",
        &["signal", "set", "breach=true", "--note", "PII exposed"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = said.next_line().await.unwrap() {
            text.push_str(&line);
            text.push('\n');
        }
        guard.wait().await.unwrap()
    })
    .await
    .expect("guard exits on an immediate trigger");
    assert!(text.contains("rollback run run-"), "{text}");
    let runs = fleet.runs();
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
    let fleet = fleet("drill.test", PLAN).start().await;
    let plan = fleet.plan_path();

    // Not the plan this coordinator serves: refused before anything runs.
    let other = fleet.path().join("other.toml");
    let served = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&other, served.replace("report e2e", "production")).unwrap();
    let out = fleet.cli("dave", &["drill", "--plan", other.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report_file = fleet.path().join("drill.md");
    let drill = fleet.cli_child(
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
    let id = backout_e2e::wait_for("the drill run", Duration::from_secs(20), || {
        fleet.runs()["runs"][0]["run"].as_str().map(str::to_string)
    })
    .await;
    fleet.approve(&id, &["bob"]);
    let out = tokio::time::timeout(Duration::from_secs(60), drill.wait_with_output())
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
    let later = start_approved(&fleet);
    fleet.ended(&later).await;
    let json: Value = serde_json::from_str(&report(&fleet, &later, "json")).unwrap();
    assert_eq!(
        json["phases"][0]["last_drill_s"].as_f64(),
        last.phases.get("application").copied()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn people_are_told_at_start_approval_end_and_escalation_and_the_report_says_when() {
    let slack = backout_e2e::http::TestHttp::start().await;
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
    let notify = format!(
        "[[plugin]]\nname = \"notify\"\npath = \"{}\"\n[plugin.grants]\nurls = [\"{}\"]\n",
        backout_e2e::plugin("notify").display(),
        slack.url("/services/")
    );
    let fleet = fleet("tell.test", &plan)
        .agent_config(move |_, config| config + &notify)
        .start()
        .await;
    let id = start_approved(&fleet);
    fleet.ended(&id).await;
    // The end and escalation messages go out just after the run ends.
    let json = backout_e2e::wait_for("five messages", Duration::from_secs(30), || {
        let json: Value = serde_json::from_str(&report(&fleet, &id, "json")).ok()?;
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
    let md = report(&fleet, &id, "md");
    assert!(
        md.contains("NOT sent: Backout does not send to `email` channels"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escalation_fires_once_and_the_run_keeps_its_figures_across_a_coordinator_restart() {
    // The run keeps its figures and fired escalations as it goes (the
    // escalation rules never read its journal back); a resumed run rebuilds
    // both from the journal. The first phase reports a data loss over the
    // CTO's line; the coordinator is killed while the second phase runs.
    let slack = backout_e2e::http::TestHttp::start().await;
    let hook = slack.url("/services/T000/B000/XXXX");
    let plan = PLAN
        .replace("data_loss_usd = 6000", "data_loss_usd = 20000")
        .replace(
            "id = \"tell\"\nplugin = \"testbed\"\naction = \"echo\"\non = \"app-1\"\n",
            "id = \"tell\"\nplugin = \"testbed\"\naction = \"sleep\"\non = \"app-1\"\nparams = { ms = 3000 }\n",
        )
        .replace(
            "[[escalation]]\nwho = \"CTO\"\nwhen = \"data_loss_usd > 10000 or outage > 4h\"\n",
            "[[escalation]]\nwho = \"CTO\"\nwhen = \"data_loss_usd > 10000 or outage > 4h\"\nchannels = [\"emergency\"]\n",
        )
        + &format!(
            r#"[channels.emergency]
kind = "slack"
target = "{hook}"
via = "app-2"
[templates.internal]
channels = ["emergency"]
on = ["end"]
body = "ENDED. Data loss: {{{{ data_loss }}}}."
[templates.exec]
on = ["escalation"]
body = "ESCALATION to {{{{ escalation_who }}}}"
"#
        );
    let notify = format!(
        "[[plugin]]\nname = \"notify\"\npath = \"{}\"\n[plugin.grants]\nurls = [\"{}\"]\n",
        backout_e2e::plugin("notify").display(),
        slack.url("/services/")
    );
    let mut fleet = fleet("escalate-restart.test", &plan)
        .agent_config(move |_, config| config + &notify)
        .start()
        .await;
    let id = start_approved(&fleet);
    backout_e2e::wait_for(
        "the escalation, then the second phase's step",
        Duration::from_secs(30),
        || {
            (fleet.journal_count("escalation.fired") == 1
                && backout_e2e::phase(&fleet.run_of(&id), "communication")["status"] == "running")
                .then_some(())
        },
    )
    .await;
    fleet.restart_coordinator().await;
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let ended = backout_e2e::wait_for("the end message", Duration::from_secs(30), || {
        let posted = slack.requests.lock().unwrap().join("\n");
        posted.contains("ENDED.").then_some(posted)
    })
    .await;
    assert!(
        // Both app hosts reported 20,000 before the restart: summed.
        ended.contains("Data loss: $40000.00"),
        "the resumed run kept the figures reported before the restart: {ended}"
    );
    assert_eq!(
        fleet.journal_count("escalation.fired"),
        1,
        "the escalation fired once, not again after the restart"
    );
    let escalation_posts = slack
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("ESCALATION to CTO"))
        .count();
    assert_eq!(escalation_posts, 1, "{ended}");
}
