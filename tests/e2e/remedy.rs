//! The lighter remedy (issue 20), end to end: a real Prometheus scrapes the
//! sample app; a considered trigger reads its error rate; the plan names a
//! `flags` phase as the trigger's remedy. The flags live in a small
//! stateful Unleash (`backout_e2e::unleash`) behind Prism in proxy mode, so
//! every call is checked against Unleash's own OpenAPI document. In the
//! first case the flag is what causes the errors: turning it off is what
//! clears the trigger. In the second it is not, and the verdict moves on to
//! the rollback once the hold has passed. Times are scaled down (a minute
//! of the seed plan is a second here), on the same code path.

use std::sync::Arc;
use std::time::Duration;

use backout_e2e::dashboard::{dashboard, http};
use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::plans::mark_step;
use backout_e2e::prism::{Prism, provider_api};
use backout_e2e::providers::{Grants, UNLEASH_TOKEN, assert_no_secret_leaves, fleet};
use backout_e2e::services::{Prometheus, SampleApp};
use backout_e2e::unleash::FakeUnleash;
use backout_e2e::{Pki, wait_for};
use serde_json::{Value, json};

use crate::dashboard::{Driver, click_and_confirm, screenshot, until};

const TRIGGER: &str = "High Error Rate";

/// The seed's considered "High Error Rate" trigger (window 2 s) with the
/// remedy `flags-off` (turn off `new-checkout`) and its hold, and a full
/// rollback phase `application`.
fn plan(prometheus: &str, unleash: &str, hold: &str, marks: &std::path::Path) -> String {
    format!(
        r#"[signals.error_rate]
prometheus = {{ url = "{prometheus}", query = 'sum(rate(http_requests_total{{code=~"5.."}}[5s])) / sum(rate(http_requests_total[5s]))' }}
interval = "500ms"
stale_after = "3s"

[[trigger]]
name = "{TRIGGER}"
class = "considered"
when = "error_rate > 5%"
for = "2s"
deciders = ["technical-lead", "release-manager"]
remedy = "flags-off"
remedy_hold = "{hold}"
remedy_approvals = ["release-manager"]

[[phase]]
id = "flags-off"
name = "Feature flags off"
optional = true
[[phase.step]]
id = "off"
plugin = "flags"
action = "off"
on = "app-1"
[phase.step.params]
api_base = "{unleash}"
token = "${{secret:UNLEASH_TOKEN}}"
project = "default"
environment = "production"
flags = ["new-checkout"]

[[phase]]
id = "application"
name = "Application Rollback"
{}"#,
        mark_step("restart", "app-1", &marks.join("marks"), "rolled back")
    )
}

struct Rig {
    fleet: Fleet,
    _app: Arc<SampleApp>,
    unleash: FakeUnleash,
    prism: Prism,
    _prometheus: Prometheus,
}

/// The sample app failing 12% of requests while `new-checkout` is on (it
/// starts on); when `flag_causes_errors`, each change of the flag sets the
/// app's error rate (on: 12%, off: none), else the errors have another
/// cause and stay.
async fn rig(domain: &str, hold: &str, flag_causes_errors: bool) -> Rig {
    let pki = Pki::new(domain);
    let app = Arc::new(SampleApp::start(pki.path()).await);
    app.fault(json!({ "error_rate": 0.12 })).await;
    let prometheus = Prometheus::start(pki.path(), &[format!("127.0.0.1:{}", app.port)]).await;
    let (unleash, mut changes) = FakeUnleash::start(&[("new-checkout", true)]).await;
    let driven = app.clone();
    tokio::spawn(async move {
        while let Some((flag, on)) = changes.recv().await {
            if flag_causes_errors && flag == "new-checkout" {
                let rate = if on { 0.12 } else { 0.0 };
                driven.fault(json!({ "error_rate": rate })).await;
            }
        }
    });
    let document = provider_api("unleash-feature-environments.openapi.json");
    let log = pki.path().join("prism-unleash.log");
    let upstream = unleash.url();
    let prism = tokio::task::spawn_blocking(move || Prism::proxy(&document, &upstream, &log))
        .await
        .unwrap();
    let marks = pki.path().join("marks-dir");
    std::fs::create_dir_all(&marks).unwrap();
    let grants = Grants {
        flags: vec![format!("{}/api/admin/projects/", prism.base())],
        testbed: format!("write = [\"{}\"]", marks.display()),
        config: "evaluate_every = \"500ms\"\n".into(),
        ..Default::default()
    };
    let plan = plan(&prometheus.url, &prism.base(), hold, &marks);
    let fleet = fleet(pki, &plan, &grants).await;
    Rig {
        fleet,
        _app: app,
        unleash,
        prism,
        _prometheus: prometheus,
    }
}

/// `backout assess --output json` as alice.
fn assess(fleet: &Fleet) -> Value {
    let out = fleet.cli("alice", &["assess", "--output", "json"]);
    assert!(
        out.status.code().is_some_and(|c| c <= 1 || c == 3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn row(doc: &Value) -> Value {
    doc["matrix"]["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trigger"] == TRIGGER)
        .cloned()
        .unwrap()
}

/// Waits until assess says `done` (at most 60 s).
async fn assess_until(fleet: &Fleet, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = tokio::time::timeout(
        Duration::from_secs(60),
        wait_for(what, Duration::from_secs(61), || {
            let doc = assess(fleet);
            let found = done(&doc).then(|| doc.clone());
            last = doc;
            found
        }),
    )
    .await;
    found.unwrap_or_else(|_| {
        panic!("timed out after 60s waiting for {what}; assess said last: {last}")
    })
}

/// The trigger fires and assess offers the remedy before the rollback, in
/// JSON and in text.
async fn offered(fleet: &Fleet) {
    let doc = assess_until(fleet, "the trigger to fire with its remedy offered", |d| {
        row(d)["state"] == "FIRED" && row(d)["remedy"]["state"] == "offered"
    })
    .await;
    assert_eq!(doc["verdict"], "ASSESS FOR ROLLBACK", "{doc}");
    let remedy = &row(&doc)["remedy"];
    assert_eq!(remedy["phase"], "flags-off");
    assert_eq!(remedy["what"], "turn off flags new-checkout");
    assert_eq!(
        remedy["command"],
        format!("backout remedy start \"{TRIGGER}\"")
    );
    let text = fleet.cli("alice", &["assess"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("remedy available for High Error Rate: turn off flags new-checkout"),
        "{text}"
    );
}

/// The remedy's own run: started with its phase alone (`rollback start
/// --phases flags-off`, or its shortcut `remedy start TRIGGER`), approved
/// by a release manager, watched to its end. Its id.
async fn apply_remedy(fleet: &Fleet, shortcut: bool) -> String {
    let started = if shortcut {
        fleet.json("dave", &["remedy", "start", TRIGGER, "--output", "json"])
    } else {
        fleet.start_run(
            "dave",
            &[
                "--phases",
                "flags-off",
                "--reason",
                "remedy for High Error Rate",
            ],
        )
    };
    approved_and_done(fleet, &started).await
}

/// The run `started` approved by a release manager and watched to its
/// end, which is a success. Its id.
async fn approved_and_done(fleet: &Fleet, started: &Value) -> String {
    let id = run_id(started);
    approved_by_a_release_manager(fleet, started, &id);
    let lines = fleet.watch_to_end(&id).await;
    assert_eq!(
        lines.last().unwrap()["run"]["status"],
        "succeeded",
        "{lines:#?}"
    );
    id
}

/// The run waits for the remedy's approvers (`remedy_approvals`: a
/// release manager), not the plan's run approvers (a technical lead): bob,
/// a technical lead, may not approve it; alice, a release manager, does.
fn approved_by_a_release_manager(fleet: &Fleet, started: &Value, id: &str) {
    let pending = &started["pending_approvals"];
    assert_eq!(pending[0]["scope"], "run", "{started}");
    assert_eq!(pending[0]["roles"], json!(["release-manager"]), "{started}");
    let bob = fleet.cli("bob", &["approve", id]);
    assert!(!bob.status.success());
    let said = String::from_utf8_lossy(&bob.stderr);
    assert!(said.contains("release-manager"), "{said}");
    fleet.approve(id, &["alice"]);
}

/// `backout remedy undo RUN` as dave, approved like the remedy, watched to
/// its end. Its id.
async fn undo(fleet: &Fleet, remedy_run: &str) -> String {
    let started = fleet.json("dave", &["remedy", "undo", remedy_run, "--output", "json"]);
    approved_and_done(fleet, &started).await
}

/// Prism saw the flag read and turned off, and found no violation of
/// Unleash's document in any request or answer.
fn assert_within_contract(rig: &Rig) {
    let env = "/api/admin/projects/default/features/new-checkout/environments/production";
    let requests = rig.prism.requests();
    assert!(
        requests.contains(&("POST".to_string(), format!("{env}/off"))),
        "{requests:?}"
    );
    let log = rig.prism.log_text();
    assert!(!log.contains("Violation"), "Prism found a violation: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_flag_remedy_clears_the_trigger_so_there_is_no_rollback() {
    let rig = rig("remedy-a.test", "60s", true).await;
    let fleet = &rig.fleet;
    offered(fleet).await;

    let remedy_run = apply_remedy(fleet, false).await;
    assert_eq!(rig.unleash.enabled("new-checkout"), Some(false));
    let doc = assess_until(fleet, "the remedy to clear the trigger", |d| {
        d["verdict"] == "NO ACTION" && row(d)["remedy"]["state"] == "cleared"
    })
    .await;
    let remedy = &row(&doc)["remedy"];
    assert_eq!(remedy["run_id"], remedy_run.as_str(), "{doc}");
    assert_eq!(doc["matrix"]["remedies"][0]["trigger"], TRIGGER);
    let text = fleet.cli("alice", &["assess"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "remedy `flags-off` worked (run {remedy_run}): High Error Rate cleared, no rollback"
        )),
        "{text}"
    );
    // No rollback: the remedy's run is the only run.
    let runs = fleet.runs();
    let ids: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["run"].as_str())
        .collect();
    assert_eq!(ids, [remedy_run.as_str()], "{runs}");
    // The remedy's run has its own report, naming what it changed.
    let report: Value = serde_json::from_str(&fleet.report(&remedy_run, "json")).unwrap();
    assert_eq!(report["run"]["status"], "succeeded", "{report}");
    assert!(
        report.to_string().contains("new-checkout: true -> false"),
        "{report}"
    );

    // Undo: the flag is back on, as the remedy's run recorded it, in a run
    // of its own whose report says so.
    let undo_run = undo(fleet, &remedy_run).await;
    assert_eq!(rig.unleash.enabled("new-checkout"), Some(true));
    let report: Value = serde_json::from_str(&fleet.report(&undo_run, "json")).unwrap();
    assert_eq!(report["run"]["status"], "succeeded", "{report}");
    let text = report.to_string();
    assert!(text.contains("new-checkout: false -> true"), "{report}");
    assert!(
        text.contains(&format!("undo of remedy run {remedy_run}")),
        "{report}"
    );
    let markdown = fleet.report(&undo_run, "md");
    assert!(markdown.contains("undo-flags-off"), "{markdown}");
    // An undo has nothing to undo, and an unknown run is named.
    for (run, says) in [
        (undo_run.as_str(), "there is nothing to restore"),
        ("run-1-nope", "no run `run-1-nope`"),
    ] {
        let out = fleet.cli("dave", &["remedy", "undo", run]);
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{said}");
    }
    let env = "/api/admin/projects/default/features/new-checkout/environments/production";
    let requests = rig.prism.requests();
    assert!(
        requests.contains(&("POST".to_string(), format!("{env}/on"))),
        "{requests:?}"
    );
    assert_within_contract(&rig);
    assert_no_secret_leaves(fleet, &[], &[UNLEASH_TOKEN]);
}

#[tokio::test(flavor = "multi_thread")]
async fn still_firing_after_the_hold_moves_on_to_rollback_naming_the_remedy() {
    let rig = rig("remedy-b.test", "3s", false).await;
    offered(&rig.fleet).await;

    // A trigger the plan does not have is bad input (exit 2, named).
    let out = rig.fleet.cli("dave", &["remedy", "start", "Nope"]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no trigger `Nope` in the plan (its triggers: High Error Rate)"),
        "{said}"
    );
    // The remedy's run, its page open in dave's browser before it ends:
    // once it ends, the live page offers to undo it (no reload).
    let started = rig
        .fleet
        .json("dave", &["remedy", "start", TRIGGER, "--output", "json"]);
    let driver = Driver::start(rig.fleet.path()).await;
    let dave = dashboard(&rig.fleet, "dave").await;
    let browser = driver.browser().await;
    browser
        .goto(&dave.page(&format!("/runs/{}", run_id(&started))))
        .await
        .unwrap();
    until(
        &browser,
        "the remedy run's page before it ended (Abort, no Undo)",
        "return !!document.getElementById('abort') && !document.getElementById('undo');",
    )
    .await;
    let remedy_run = approved_and_done(&rig.fleet, &started).await;
    until(
        &browser,
        "the live page to offer Undo once the remedy run ended",
        "return !!document.querySelector('#undo button') && !document.getElementById('abort');",
    )
    .await;
    screenshot(&browser, "remedy-run-ended-live").await;
    assert_eq!(
        rig.fleet.run_of(&remedy_run)["reason"],
        "remedy for High Error Rate"
    );
    assert_eq!(rig.unleash.enabled("new-checkout"), Some(false));
    let doc = assess_until(&rig.fleet, "the verdict to move on to rollback", |d| {
        d["verdict"] == "ROLL BACK"
    })
    .await;
    let remedy = &row(&doc)["remedy"];
    assert_eq!(remedy["state"], "rollback", "{doc}");
    assert_eq!(remedy["run_id"], remedy_run.as_str());
    assert_eq!(
        remedy["why"],
        format!("still firing 3s after the remedy `flags-off` (run {remedy_run})")
    );
    let text = rig.fleet.cli("alice", &["assess"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("VERDICT: ROLL BACK"), "{text}");
    assert!(
        text.contains(&format!("remedy did not clear High Error Rate: still firing 3s after the remedy `flags-off` (run {remedy_run})")),
        "{text}"
    );

    // The rollback: its report names the remedy's attempt.
    let rollback = rig
        .fleet
        .start_approved(&["--reason", "remedy did not clear High Error Rate"]);
    rig.fleet.ended(&rollback).await;
    let report: Value = serde_json::from_str(&rig.fleet.report(&rollback, "json")).unwrap();
    let tried: Vec<&Value> = report["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["text"]
                .as_str()
                .unwrap_or_default()
                .contains("remedy-tried")
        })
        .collect();
    assert_eq!(tried.len(), 1, "{report}");
    assert_eq!(
        tried[0]["text"],
        format!(
            "High Error Rate: remedy-tried (turn off flags new-checkout in run {remedy_run}: still firing 3s after the remedy `flags-off` (run {remedy_run})) by coordinator"
        )
    );
    let markdown = rig.fleet.report(&rollback, "md");
    assert!(
        markdown.contains(&format!("turn off flags new-checkout in run {remedy_run}")),
        "{markdown}"
    );

    // The remedy's run is undone from the dashboard, as dave.
    undone_from_the_dashboard(&rig, &remedy_run, &rollback, &browser).await;
    browser.close().await.unwrap();
    assert_within_contract(&rig);
}

/// On dave's dashboard the ended remedy run's page has an Undo button (the
/// rollback's has none). A POST without the page's token is refused and
/// starts nothing; the button that `browser`'s live page added when the run
/// ended starts the undo run as dave's and shows its page; it waits for the
/// remedy's approvers (bob may not, alice does), and puts the flag back on.
async fn undone_from_the_dashboard(
    rig: &Rig,
    remedy_run: &str,
    other_run: &str,
    browser: &fantoccini::Client,
) {
    let fleet = &rig.fleet;
    let dave = dashboard(fleet, "dave").await;
    let host = dave.host();
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (status, page) = http(&dave, &get(&format!("/runs/{remedy_run}"))).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!(r#"action="/runs/{remedy_run}/undo""#)),
        "{page}"
    );
    let token = page
        .split(r#"name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let (_, page) = http(&dave, &get(&format!("/runs/{other_run}"))).await;
    assert!(page.contains(r#"id="run""#), "{page}");
    assert!(!page.contains("/undo"), "{page}");
    let post = |token: &str| {
        let body = format!("csrf={token}");
        format!(
            "POST /runs/{remedy_run}/undo HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let runs_before = fleet.runs()["runs"].as_array().unwrap().len();
    assert_eq!(http(&dave, &post("")).await.0, 403);
    assert_eq!(fleet.runs()["runs"].as_array().unwrap().len(), runs_before);
    assert!(!token.is_empty());
    // The live page's button (the page has been open since before the run
    // ended): confirmed, it starts the undo and shows the undo run's page.
    click_and_confirm(browser, "#undo button").await;
    let shown = format!(
        "const p = location.pathname; return p.startsWith('/runs/') && p !== '/runs/{remedy_run}' && document.getElementById('run') ? document.getElementById('run').dataset.run : null;"
    );
    let undo_run = until(browser, "the undo run's page", &shown).await;
    let started = &fleet.run_of(undo_run.as_str().unwrap());
    assert_eq!(
        started["reason"],
        format!("undo of remedy run {remedy_run}")
    );
    assert_eq!(started["started_by"], "dave", "{started}");
    assert_eq!(started["remedy"], false, "an undo is not a remedy run");
    let undo_run = approved_and_done(fleet, started).await;
    assert_eq!(rig.unleash.enabled("new-checkout"), Some(true));
    let report: Value = serde_json::from_str(&fleet.report(&undo_run, "json")).unwrap();
    assert!(
        report.to_string().contains("new-checkout: false -> true"),
        "{report}"
    );
}

/// The same verdict across a coordinator killed right after the remedy's
/// run: the episode the run came after is in the journal (the run's start
/// journals it, even before the episodes' next tick), so the restarted
/// coordinator, whose tracker fires again later, still names the remedy's
/// run and moves on to rollback once the hold has passed.
#[tokio::test(flavor = "multi_thread")]
async fn the_remedy_verdict_survives_a_coordinator_restart() {
    let mut rig = rig("remedy-c.test", "3s", false).await;
    offered(&rig.fleet).await;
    let remedy_run = apply_remedy(&rig.fleet, true).await;
    rig.fleet.restart_coordinator().await;
    let doc = assess_until(&rig.fleet, "the verdict to move on to rollback", |d| {
        d["verdict"] == "ROLL BACK"
    })
    .await;
    assert_eq!(row(&doc)["remedy"]["run_id"], remedy_run.as_str(), "{doc}");
}
