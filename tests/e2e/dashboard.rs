//! `backout dashboard` in a real browser: headless Chromium driven through
//! chromedriver, against a real coordinator and agents. Two operators
//! approve from their own dashboards and the grid goes live; a refusal needs
//! a reason and says who refused and why; a POST without the token and a
//! foreign Host header are refused; the coordinator restarts under an open
//! Run page without a duplicated or missing line; the Now page counts down a
//! fired trigger's decision deadline. Each page's screenshot is
//! written to `target/dashboard-screenshots/`.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-parts.sh).

use std::path::{Path, PathBuf};
use std::time::Duration;

use backout_e2e::dashboard::{dashboard, first_line_after, http};
use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::{Proc, bin, target_dir};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Two hosts, one at a time; the first step sleeps so "running" is seen.
const PHASES: &str = r#"[[phase]]
id = "application"
name = "Application Rollback"
rolling = 1
[[phase.step]]
id = "drain"
plugin = "testbed"
action = "sleep"
on = "app"
params = { ms = 1500 }
[[phase.step]]
id = "start"
plugin = "testbed"
action = "echo"
on = "app"
params = { what = "start" }
"#;

/// How long any wait on the browser may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// Two hosts in group `app`; carol and dave are release managers, bob the
/// technical lead, and a run needs one of each. Dave asks what the
/// coordinator knows.
async fn fleet(domain: &str) -> Fleet {
    Fleet::builder(domain)
        .name("dashboard e2e")
        .hosts(["app-1", "app-2"])
        .group("app", ["app-1", "app-2"])
        .operators(&[
            ("dave", &["release-manager"]),
            ("carol", &["release-manager"]),
            ("bob", &["technical-lead"]),
        ])
        .approvals(["release-manager", "technical-lead"])
        .plan(PHASES)
        .start()
        .await
}

/// Starts a run as carol (who may then not approve it); it waits for
/// its two approvals.
fn start_run(fleet: &Fleet, reason: &str) -> String {
    run_id(&fleet.start_run("carol", &["--reason", reason]))
}

fn run_status(fleet: &Fleet, id: &str) -> String {
    fleet.run_of(id)["status"].as_str().unwrap().to_string()
}

/// The run's plugin log lines as `backout watch` prints them, in order.
fn log_lines(fleet: &Fleet, id: &str) -> Vec<String> {
    let out = fleet.cli(&fleet.observer, &["watch", id, "--output", "json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d["kind"] == "log")
        .map(|e| {
            let g = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            format!(
                "{}/{}@{} [{}] {}",
                g("phase"),
                g("step"),
                g("host"),
                g("role"),
                g("text")
            )
        })
        .collect()
}

/// chromedriver on a free port, and browser sessions on it.
pub(crate) struct Driver {
    proc: Proc,
    url: String,
}

impl Driver {
    pub(crate) async fn start(dir: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut proc = Proc::spawn(
            Path::new("chromedriver"),
            &[&format!("--port={port}")],
            &dir.join("chromedriver.log"),
        );
        let _ = first_line_after(&mut proc, "ChromeDriver was started successfully").await;
        Driver {
            proc,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new headless browser session.
    pub(crate) async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,1000"] }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start chromium: {e}; {}", self.proc.log_text()))
    }
}

/// Waits until `script` (a function body) returns something truthy in the
/// page, and returns it. Polls the page through WebDriver every 100 ms.
pub(crate) async fn until(browser: &Client, what: &str, script: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let value = browser.execute(script, vec![]).await.unwrap();
        if !(value.is_null() || value == json!(false) || value == json!("")) {
            return value;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks `selector` and accepts the confirmation it asks for.
pub(crate) async fn click_and_confirm(browser: &Client, selector: &str) {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(selector))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while browser.get_alert_text().await.is_err() {
        assert!(start.elapsed() < PATIENCE, "no confirmation for {selector}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.accept_alert().await.unwrap();
}

fn screenshots() -> PathBuf {
    let dir = target_dir().join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// The page's log: (number, class, text) of each line, in page order.
async fn page_log(browser: &Client) -> Vec<(u64, String, String)> {
    let lines = browser
        .execute(
            "return [...document.querySelectorAll('#log li')].map(li => \
             [Number(li.dataset.seq), li.className, li.textContent.replace(/^\\S+ /, '')]);",
            vec![],
        )
        .await
        .unwrap();
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l[0].as_u64().unwrap(),
                l[1].as_str().unwrap().to_string(),
                l[2].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every line once, numbered in increasing order, and the plugins' lines
/// exactly those `backout watch` prints, in its order.
fn assert_log_matches(page: &[(u64, String, String)], expected: &[String]) {
    let seqs: Vec<u64> = page.iter().map(|l| l.0).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "lines out of order or repeated: {seqs:?}"
    );
    let logs: Vec<String> = page
        .iter()
        .filter(|l| l.1 == "ev-log")
        .map(|l| l.2.clone())
        .collect();
    assert!(!expected.is_empty(), "the run logged nothing");
    assert_eq!(
        logs, expected,
        "the page's log lines differ from the journal's"
    );
    for kind in ["ev-started", "ev-ended"] {
        assert_eq!(
            page.iter().filter(|l| l.1 == kind).count(),
            1,
            "{kind} shown other than once: {page:?}"
        );
    }
}

/// Records, in the page, each state every grid cell went through (the
/// test installs it; the page does not reload, or it would be lost).
const OBSERVE_GRID: &str = r#"
window.__states = {};
window.__noReload = true;
const record = () => {
  for (const td of document.querySelectorAll('#grid td[data-host]')) {
    const host = td.dataset.host, state = td.querySelector('.st').textContent;
    const seen = (window.__states[host] = window.__states[host] || []);
    if (seen[seen.length - 1] !== state) seen.push(state);
  }
};
record();
new MutationObserver(record).observe(document.getElementById('grid-box'), { childList: true, subtree: true });
return true;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn two_operators_approve_in_their_browsers_and_the_grid_goes_live() {
    let fleet = fleet("dashboard-approve.test").await;
    let (dave, bob) = (
        dashboard(&fleet, "dave").await,
        dashboard(&fleet, "bob").await,
    );
    let driver = Driver::start(fleet.path()).await;
    let (first, second) = (driver.browser().await, driver.browser().await);
    let id = start_run(&fleet, "5xx at 12% since the deploy");

    // Dave's page: the run awaits both approvals.
    first
        .goto(&dave.page(&format!("/runs/{id}")))
        .await
        .unwrap();
    until(
        &first,
        "the run's pending approval",
        "return document.querySelector('#pending form.approve') !== null;",
    )
    .await;
    until(
        &first,
        "the live link",
        "return document.querySelector('#link-state').textContent === 'live';",
    )
    .await;
    first.execute(OBSERVE_GRID, vec![]).await.unwrap();
    click_and_confirm(&first, "#pending form.approve button").await;
    until(&first, "dave's approval in the log", "return [...document.querySelectorAll('#log li.ev-approved')].some(li => li.textContent.includes('dave approved'));").await;
    assert_eq!(run_status(&fleet, &id), "awaiting-approval");

    // Bob, in another browser with his own dashboard.
    second
        .goto(&bob.page(&format!("/runs/{id}")))
        .await
        .unwrap();
    click_and_confirm(&second, "#pending form.approve button").await;

    // Dave's page follows without a reload: each host running, then succeeded.
    until(
        &first,
        "the run's end",
        "return document.querySelector('#log li.ev-ended') !== null;",
    )
    .await;
    until(
        &first,
        "the final status",
        "return document.querySelector('#run-status').textContent === 'succeeded';",
    )
    .await;
    let states = first
        .execute("return window.__noReload ? window.__states : null;", vec![])
        .await
        .unwrap();
    assert!(!states.is_null(), "the page was reloaded");
    for host in ["app-1", "app-2"] {
        let seen: Vec<&str> = states[host]
            .as_array()
            .unwrap_or_else(|| panic!("no cell for {host}: {states}"))
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let running = seen.iter().position(|s| *s == "running");
        let succeeded = seen.iter().position(|s| *s == "succeeded");
        assert!(
            matches!((running, succeeded), (Some(r), Some(s)) if r < s),
            "{host} went {seen:?}"
        );
    }
    assert_eq!(run_status(&fleet, &id), "succeeded");
    assert_log_matches(&page_log(&first).await, &log_lines(&fleet, &id));
    screenshot(&first, "run").await;
    first.set_window_size(390, 844).await.unwrap();
    screenshot(&first, "run-phone").await;
    first.set_window_size(1280, 1000).await.unwrap();

    // The other pages, as an operator sees them.
    for (name, path, marker) in [
        ("now", "/".to_string(), "#verdict"),
        ("fleet", "/fleet".to_string(), "#fleet"),
        ("runs", "/runs".to_string(), "#runs"),
        ("report", format!("/runs/{id}/report"), "#journal"),
    ] {
        first.goto(&dave.page(&path)).await.unwrap();
        first
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(marker))
            .await
            .unwrap();
        screenshot(&first, name).await;
    }
    let journal = first
        .find(Locator::Css("#journal"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(journal.contains("intact"), "{journal}");
    first.goto(&dave.page("/fleet")).await.unwrap();
    let fleet_text = first
        .find(Locator::Css("#fleet"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        fleet_text.contains("app-1") && fleet_text.contains("connected"),
        "{fleet_text}"
    );

    // The dry-run button: the per-host plan, no approvals needed.
    first.goto(&dave.page("/runs")).await.unwrap();
    first
        .find(Locator::Css("#dry-run [name=reason]"))
        .await
        .unwrap()
        .send_keys("what would a rollback do?")
        .await
        .unwrap();
    click_and_confirm(&first, "#dry-run button").await;
    until(
        &first,
        "the dry run's end",
        "return document.querySelector('#log li.ev-ended') !== null;",
    )
    .await;
    let plan = until(
        &first,
        "every host's answer",
        "const rows = [...document.querySelectorAll('#plan tbody tr')]; return rows.length === 4 && rows.map(r => r.textContent);",
    )
    .await;
    let plan = plan.to_string();
    assert!(
        plan.contains("app-1") && plan.contains("app-2") && plan.contains("dry-run: true"),
        "{plan}"
    );
    screenshot(&first, "dry-run").await;
    first.close().await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_needs_a_reason_and_the_page_says_who_refused_and_why() {
    let fleet = fleet("dashboard-refuse.test").await;
    let dave = dashboard(&fleet, "dave").await;
    let driver = Driver::start(fleet.path()).await;
    let browser = driver.browser().await;
    let id = start_run(&fleet, "checkout errors");
    browser
        .goto(&dave.page(&format!("/runs/{id}")))
        .await
        .unwrap();
    until(
        &browser,
        "the live link",
        "return document.querySelector('#link-state').textContent === 'live';",
    )
    .await;

    // Without a reason the page does not send it, nor ask to confirm.
    browser
        .find(Locator::Css("#pending form.refuse button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let missing = browser
        .execute("return document.querySelector('#pending form.refuse [name=why]').validity.valueMissing;", vec![])
        .await
        .unwrap();
    assert_eq!(missing, json!(true));
    assert!(
        browser.get_alert_text().await.is_err(),
        "asked to confirm a refusal without reason"
    );
    assert_eq!(run_status(&fleet, &id), "awaiting-approval");

    // With one, confirmed: the run stops and the page says who and why.
    browser
        .find(Locator::Css("#pending form.refuse [name=why]"))
        .await
        .unwrap()
        .send_keys("the replica is 40 min behind")
        .await
        .unwrap();
    click_and_confirm(&browser, "#pending form.refuse button").await;
    let refusal = until(
        &browser,
        "the refusal on the page",
        "const r = document.querySelector('#refusals .refusal'); return r && r.textContent;",
    )
    .await;
    let refusal = refusal.as_str().unwrap();
    assert!(
        refusal.contains("dave") && refusal.contains("the replica is 40 min behind"),
        "{refusal}"
    );
    until(
        &browser,
        "the refused status",
        "return document.querySelector('#run-status').textContent.startsWith('refused');",
    )
    .await;
    assert!(
        run_status(&fleet, &id).starts_with("refused"),
        "{}",
        run_status(&fleet, &id)
    );
    screenshot(&browser, "run-refused").await;
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_without_the_token_and_a_foreign_host_are_refused() {
    let fleet = fleet("dashboard-csrf.test").await;
    let dave = dashboard(&fleet, "dave").await;
    let id = start_run(&fleet, "csrf check");
    let host = dave.host();

    // A page, asked for JSON.
    let get = |path: &str, host: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        )
    };
    let (status, body) = http(&dave, &get("/runs", &host)).await;
    assert_eq!(status, 200, "{body}");
    let runs: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(runs["runs"][0]["run"], json!(id));
    let (status, body) = http(&dave, &get(&format!("/runs/{id}"), &host)).await;
    assert_eq!(status, 200, "{body}");
    let run: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["run"]["status"], "awaiting-approval");

    // DNS rebinding: a name that resolves here, but is not ours.
    let (status, _) = http(
        &dave,
        &get(
            "/runs",
            &format!("evil.example:{}", host.rsplit(':').next().unwrap()),
        ),
    )
    .await;
    assert_eq!(status, 403);

    // A POST without the token, and with a wrong one: refused, nothing done.
    let post = |token: &str| {
        let body = format!("csrf={token}");
        format!(
            "POST /runs/{id}/abort HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    assert_eq!(http(&dave, &post("")).await.0, 403);
    assert_eq!(http(&dave, &post(&"0".repeat(64))).await.0, 403);
    assert_eq!(run_status(&fleet, &id), "awaiting-approval");

    // The page's own token works (the positive control).
    let (_, page) = http(
        &dave,
        &get("/", &host).replace("application/json", "text/html"),
    )
    .await;
    let token = page
        .split(r#"name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let (status, body) = http(&dave, &post(&token)).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(run_status(&fleet, &id), "aborted");

    // A non-loopback address is refused unless asked for explicitly.
    let out = std::process::Command::new(bin("backout"))
        .args(["dashboard", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Allowed, but not as 0.0.0.0: requests' Host could name nothing.
    let out = std::process::Command::new(bin("backout"))
        .args(["dashboard", "--listen", "0.0.0.0:0", "--allow-remote"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_page_survives_a_coordinator_restart_without_losing_or_repeating_lines() {
    let mut fleet = fleet("dashboard-restart.test").await;
    let dave = dashboard(&fleet, "dave").await;
    let driver = Driver::start(fleet.path()).await;
    let browser = driver.browser().await;
    let id = start_run(&fleet, "restart under the page");
    browser
        .goto(&dave.page(&format!("/runs/{id}")))
        .await
        .unwrap();
    until(
        &browser,
        "the live link",
        "return document.querySelector('#link-state').textContent === 'live';",
    )
    .await;
    until(
        &browser,
        "the start in the log",
        "return document.querySelector('#log li.ev-started') !== null;",
    )
    .await;

    // The coordinator goes away: the page says so.
    fleet.kill_coordinator().await;
    until(&browser, "the reconnecting banner", "const b = document.getElementById('banner'); return !b.hidden && b.textContent.includes('reconnecting');").await;
    screenshot(&browser, "run-reconnecting").await;

    // It comes back on the same address, and the run goes on at once:
    // whatever happens before the dashboard watches again, the page gets
    // from the replayed history; whatever it had, it does not show twice.
    fleet.start_coordinator(&[]).await;
    fleet.wait_connected(2).await;
    for operator in ["dave", "bob"] {
        let out = fleet.cli(operator, &["approve", &id, "--output", "json"]);
        assert!(
            out.status.success(),
            "{operator} approves: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    until(
        &browser,
        "the banner gone",
        "const link = document.querySelector('#link-state').textContent; \
         return document.getElementById('banner').hidden && (link === 'live' || link === 'ended');",
    )
    .await;
    until(
        &browser,
        "the run's end",
        "return document.querySelector('#log li.ev-ended') !== null;",
    )
    .await;
    assert_log_matches(&page_log(&browser).await, &log_lines(&fleet, &id));
    browser.close().await.unwrap();
}

/// The Now page says what fired each trigger and the time its deciders have
/// left (the plan's `[decide_within]`, scaled to 5 s), then how late they are.
/// Served HTML, asked for as a browser does.
#[tokio::test(flavor = "multi_thread")]
async fn the_now_page_shows_the_time_left_to_decide_then_how_late() {
    let fleet = Fleet::builder("dashboard-deadline.test")
        .hosts(["app-1"])
        .plan(
            r#"[signals.errors]
manual = true
[decide_within]
considered = "5s"
[[trigger]]
name = "High Error Rate"
class = "considered"
when = "errors"
deciders = ["release-manager"]
"#,
        )
        .config("evaluate_every = \"100ms\"\n")
        .start()
        .await;
    let dave = dashboard(&fleet, "dave").await;
    let out = fleet.cli("alice", &["signal", "set", "errors=true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
        dave.host()
    );
    let mut saw_time_left = false;
    let start = std::time::Instant::now();
    loop {
        let (status, body) = http(&dave, &get).await;
        assert_eq!(status, 200, "{body}");
        let fired = body
            .split(r#"<ul id="fired">"#)
            .nth(1)
            .and_then(|rest| rest.split("</ul>").next())
            .unwrap_or_default()
            .to_string();
        if fired.contains("decide within") {
            assert!(
                fired.contains("<b>High Error Rate</b>") && fired.contains("errors at true"),
                "{fired}"
            );
            saw_time_left = true;
        }
        if fired.contains("DECISION OVERDUE by") {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the Now page never said the decision is overdue: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(saw_time_left, "the time left was shown before the deadline");
}
