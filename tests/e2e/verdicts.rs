//! Verdicts people can trust (issue 18), end to end: honest onsets, hosts
//! not heard are unknown, `assess` exit codes, `log-matches` from a real
//! host log. Real coordinator and agents; the plans' times are scaled down
//! (a minute of the seed plan is a second here), on the same code path.

use std::time::{Duration, Instant};

use backout_e2e::http::TestHttp;
use backout_e2e::{Coordinator, Pki, agent_config, cli, plugin, sha256_file, start_agent};
use serde_json::{Value, json};

/// Starts a coordinator with `plan` that knows `agents` (each checked at
/// `/path` of `http` under the check name `application`), and starts the
/// agents listed in `start`. The log file (3 ERROR lines) is app-1's.
async fn fleet(
    pki: &Pki,
    http: &TestHttp,
    agents: &[(&str, &str)],
    start: &[&str],
    plan: &str,
) -> (Coordinator, Vec<backout_e2e::Proc>) {
    pki.issue("operator", "alice");
    let log_dir = pki.path().join("logs");
    std::fs::create_dir_all(&log_dir).unwrap();
    let log_file = log_dir.join("error.log");
    let mut lines: Vec<String> = (0..50).map(|i| format!("INFO request {i}")).collect();
    for i in [40, 45, 49] {
        lines[i] = format!("ERROR payment provider timeout {i}");
    }
    std::fs::write(&log_file, lines.join("\n") + "\n").unwrap();
    std::fs::write(pki.path().join("plan.toml"), plan).unwrap();
    let mut config = format!(
        r#"command_key = "{p}/command-signing.key"
heartbeat_interval = "1s"
plan = "plan.toml"
evaluate_every = "100ms"
[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
[operators]
alice = ["release-manager"]
[plugins.health]
sha256 = "{health}"
[assess]
timeout = "5s"
[assess.log]
path = "{log}"
tail_lines = 100
pattern = "ERROR"
agents = ["app-1"]
"#,
        p = pki.path().display(),
        health = sha256_file(&plugin("health")),
        log = log_file.display(),
    );
    for (id, path) in agents {
        pki.issue("agent", id);
        config.push_str(&format!(
            "[[agent]]\nid = \"{id}\"\n[[assess.check]]\nname = \"application\"\nurl = \"{}\"\nagents = [\"{id}\"]\n",
            http.url(path)
        ));
    }
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let mut procs = Vec::new();
    for id in start {
        procs.push(start_fleet_agent(pki, http, &coordinator.addr, id));
    }
    (coordinator, procs)
}

fn start_fleet_agent(pki: &Pki, http: &TestHttp, addr: &str, id: &str) -> backout_e2e::Proc {
    let state = pki.path().join(format!("state-{id}"));
    let text = agent_config(pki, id, addr, &state, "")
        .replace(
            &format!("read = [\"{}\"]", state.display()),
            &format!("read = [\"{}\"]", pki.path().join("logs").display()),
        )
        .replace(
            "urls = [\"http://127.0.0.1/\"]",
            &format!("urls = [\"{}\"]", http.url("/")),
        );
    let path = pki.path().join(format!("{id}.toml"));
    std::fs::write(&path, text).unwrap();
    start_agent(&path, &pki.path().join(format!("{id}.log")))
}

/// `backout assess --output json [extra]`: its exit code and document.
fn assess(pki: &Pki, addr: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["assess", "--output", "json"];
    args.extend_from_slice(extra);
    let out = cli(pki, addr, "alice", &args);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        [0, 1, 3].contains(&code),
        "exit {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

fn row(doc: &Value, trigger: &str) -> Value {
    doc["matrix"]["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trigger"] == trigger)
        .cloned()
        .unwrap_or(Value::Null)
}

fn signal(doc: &Value, name: &str) -> Value {
    doc["matrix"]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Polls `check` every `every` until it gives `Some`, at most `timeout`
/// (for waits of many seconds, where a tighter poll would only load the
/// machine).
async fn poll<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

const PLAN: &str = r#"[plan]
name = "verdicts"
[roles]
release-manager = "Release Manager"
security-lead = "Security Lead"
technical-lead = "Technical Lead"
[signals.error_rate]
prometheus = { url = "http://127.0.0.1:9", query = "sum(rate(http_requests_total[1m]))" }
interval = "200ms"
[signals.error_lines]
probe = { check = "error-log", aggregate = "log-matches" }
interval = "300ms"
[signals.breach_confirmed]
manual = true
[[trigger]]
name = "Critical Security Breach"
class = "immediate"
when = "breach_confirmed"
unknown = "ok"
deciders = ["security-lead", "release-manager"]
[[trigger]]
name = "High Error Rate"
class = "considered"
when = "error_rate > 5%"
for = "1s"
deciders = ["technical-lead", "release-manager"]
[[trigger]]
name = "Error Log"
class = "considered"
when = "error_lines > 100"
deciders = ["technical-lead"]
"#;

/// Prometheus down: `assess` exits 3 (unknown), never 0, and says so in
/// its JSON. `log-matches` reads the host's error log. A breach confirmed
/// before the deploy is "no" for "started after the deploy" three and
/// thirty (scaled) minutes later, long after a history of the trigger's
/// hold would have dropped its first sample.
#[tokio::test(flavor = "multi_thread")]
async fn assess_says_unknown_and_keeps_the_onset_of_a_breach() {
    let pki = Pki::new("verdicts.test");
    let http = TestHttp::start().await;
    let (coordinator, _agents) = fleet(&pki, &http, &[("app-1", "/up")], &["app-1"], PLAN).await;
    let addr = coordinator.addr.clone();

    // The host is healthy and its log has 3 matching lines; Prometheus is
    // down, so the error-rate trigger has no data.
    let (code, doc) = poll(
        "the error log to be read and the error rate to be unknown",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let (code, doc) = assess(&pki, &addr, &[]);
            (signal(&doc, "error_lines")["value"] == "3"
                && row(&doc, "High Error Rate")["state"] == "unknown"
                && doc["healthy"] == true)
                .then_some((code, doc))
        },
    )
    .await;
    assert_eq!(code, 3, "{doc}");
    assert_eq!(doc["status"], "unknown");
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["verdict"], "NO ACTION");
    assert_eq!(doc["matrix"]["unknown"], json!(["High Error Rate"]));
    assert_eq!(
        signal(&doc, "error_lines")["hosts"],
        json!({ "heard": 1, "expected": 1 })
    );
    assert_eq!(row(&doc, "Error Log")["state"], "ok");
    assert_eq!(row(&doc, "Error Log")["value"], "3");
    // The text says it too, with the same exit code.
    let out = cli(&pki, &addr, "alice", &["assess"]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("UNKNOWN (exit 3)") && text.contains("High Error Rate"),
        "{text}"
    );

    // A breach is confirmed; the deploy comes one (scaled) minute later.
    let out = cli(
        &pki,
        &addr,
        "alice",
        &["signal", "set", "breach_confirmed=true"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let confirmed = Instant::now();
    let deploy_after = Duration::from_secs(1);
    for minutes in [3, 30] {
        let doc = poll(
            &format!("the breach to have held {minutes} s"),
            Duration::from_secs(minutes + 30),
            Duration::from_millis(500),
            || {
                let ago = confirmed.elapsed().saturating_sub(deploy_after);
                let ago = format!("{}ms", ago.as_millis());
                let (code, doc) = assess(&pki, &addr, &["--deploy-time", &ago]);
                let held = row(&doc, "Critical Security Breach")["held_ms"]
                    .as_u64()
                    .unwrap_or(0);
                (code == 1 && held >= minutes * 1000).then_some(doc)
            },
        )
        .await;
        let answer = &doc["checklist"]["started_after_deploy"];
        assert_eq!(answer["answer"], "no", "after {minutes} s: {answer}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap()
                .ends_with("before the deploy"),
            "{answer}"
        );
        assert_eq!(doc["verdict"], "IMMEDIATE ROLLBACK");
        assert_eq!(doc["status"], "failed");
        let fired = &doc["matrix"]["fired_triggers"][0];
        assert_eq!(fired["trigger"], "Critical Security Breach");
        assert_eq!(fired["class"], "immediate");
        assert!(fired["since_ms"].as_i64().unwrap() < answer["deploy_ms"].as_i64().unwrap());
        let evidence = fired["evidence"].as_str().unwrap();
        assert!(
            evidence.starts_with("breach_confirmed at true, breaching since "),
            "{evidence}"
        );
    }
}

const SERVICE_DOWN: &str = r#"[plan]
name = "service down"
[roles]
release-manager = "Release Manager"
[signals.service_up]
probe = { check = "application", aggregate = "any-up" }
interval = "500ms"
[[trigger]]
name = "Complete Service Down"
class = "immediate"
when = "service_up == 0"
for = "2s"
deciders = ["release-manager"]
"#;

/// Two hosts down and the third's agent unreachable: Complete Service Down
/// is unknown for longer than its hold, never fired, and the row says 2 of
/// 3 hosts were heard. Once the third is heard, down too, it fires after
/// its hold.
#[tokio::test(flavor = "multi_thread")]
async fn complete_service_down_is_unknown_while_a_host_is_not_heard() {
    let pki = Pki::new("service-down.test");
    let http = TestHttp::start().await;
    let hosts = [("app-1", "/down"), ("app-2", "/down"), ("app-3", "/down")];
    let (coordinator, mut agents) =
        fleet(&pki, &http, &hosts, &["app-1", "app-2"], SERVICE_DOWN).await;
    let addr = coordinator.addr.clone();

    let doc = poll(
        "the trigger to be unknown for twice its hold",
        Duration::from_secs(40),
        Duration::from_millis(200),
        || {
            let (_, doc) = assess(&pki, &addr, &[]);
            let row = row(&doc, "Complete Service Down");
            assert_ne!(row["state"], "FIRED", "fired on partial data: {doc}");
            assert_ne!(doc["verdict"], "IMMEDIATE ROLLBACK", "{doc}");
            let unknown_for = doc["matrix"]["evaluated_at_ms"].as_i64().unwrap_or(0)
                - row["unknown_since_ms"].as_i64().unwrap_or(i64::MAX);
            (row["hosts"] == json!({ "heard": 2, "expected": 3 }) && unknown_for >= 4_000)
                .then_some(doc)
        },
    )
    .await;
    let service_up = signal(&doc, "service_up");
    assert!(
        service_up["error"]
            .as_str()
            .unwrap_or_default()
            .contains("2 of 3 hosts heard; not heard: app-3"),
        "{service_up}"
    );
    let widespread = &doc["checklist"]["widespread"];
    assert!(
        widespread["detail"]
            .as_str()
            .unwrap()
            .starts_with("2 of 3 hosts failing (67%), 1 not heard (app-3: unreachable)"),
        "{widespread}"
    );

    // The third host is heard, and down: the service is down, after its hold.
    agents.push(start_fleet_agent(&pki, &http, &addr, "app-3"));
    let doc = poll(
        "the trigger to fire",
        Duration::from_secs(40),
        Duration::from_millis(200),
        || {
            let (_, doc) = assess(&pki, &addr, &[]);
            (row(&doc, "Complete Service Down")["state"] == "FIRED").then_some(doc)
        },
    )
    .await;
    let row = row(&doc, "Complete Service Down");
    assert_eq!(row["hosts"], json!({ "heard": 3, "expected": 3 }));
    // It fired once its breach had held for its hold, not before.
    let (since, fired_at) = (
        row["since_ms"].as_i64().unwrap(),
        row["fired_at_ms"].as_i64().unwrap(),
    );
    assert_eq!(fired_at - since, 2_000, "{row}");
    assert!(row["held_ms"].as_i64().unwrap() >= 2_000, "{row}");
    assert_eq!(doc["verdict"], "IMMEDIATE ROLLBACK");
}

const DEADLINE: &str = r#"[plan]
name = "deadline"
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
[signals.errors]
manual = true
[signals.other]
manual = true
[decide_within]
considered = "2s"
[[trigger]]
name = "High Error Rate"
class = "considered"
when = "errors"
unknown = "ok"
deciders = ["technical-lead", "release-manager"]
[[trigger]]
name = "Other"
class = "considered"
when = "other"
unknown = "ok"
deciders = ["release-manager"]
[[escalation]]
who = "Head of Engineering"
when = "decision_overdue"
"#;

/// The seed's "decide within" in scaled time (2 s): guard pages the deciders
/// when the trigger fires, with the time left; when the deadline passes with
/// no rollback started it pages them again and escalates as the plan's rule
/// says, exactly once, and the coordinator journals it once (guard only
/// says it).
#[tokio::test(flavor = "multi_thread")]
async fn a_missed_decision_deadline_pages_and_escalates_exactly_once() {
    let pki = Pki::new("deadline.test");
    pki.issue("operator", "alice");
    std::fs::write(pki.path().join("plan.toml"), DEADLINE).unwrap();
    let config = format!(
        "command_key = \"{p}/command-signing.key\"\nplan = \"plan.toml\"\nevaluate_every = \"100ms\"\n[tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/coordinator.pem\"\nkey = \"{p}/coordinator.key\"\n[operators]\nalice = [\"release-manager\"]\n",
        p = pki.path().display()
    );
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let addr = coordinator.addr.clone();
    let mut guard = backout_e2e::Proc::spawn(
        &backout_e2e::bin("backout"),
        &[
            "guard",
            "--interval",
            "200ms",
            "--coordinator",
            &addr,
            "--pki",
            pki.path().to_str().unwrap(),
            "--operator",
            "alice",
        ],
        &pki.path().join("guard.log"),
    );
    let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stdout = guard.child.stdout.take().unwrap();
    let lines = said.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut reader = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            lines.lock().unwrap().push(line);
        }
    });
    let saw = |text: &str| said.lock().unwrap().iter().any(|l| l.contains(text));
    let count = |text: &str| {
        said.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    };
    let set = |assignment: &str| {
        let out = cli(&pki, &addr, "alice", &["signal", "set", assignment]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    poll(
        "guard to watch",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || saw("High Error Rate: - -> ok").then_some(()),
    )
    .await;

    set("errors=true");
    poll(
        "the deciders to be paged",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            saw("ASSESS FOR ROLLBACK: High Error Rate fired; paging technical-lead + release-manager, decide within")
                .then_some(())
        },
    )
    .await;
    poll(
        "the deadline to pass",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || saw("DECISION OVERDUE: High Error Rate").then_some(()),
    )
    .await;
    // Another trigger fires and misses its own deadline ten guard looks
    // later: the first one was not said again meanwhile.
    set("other=true");
    poll(
        "the second deadline to pass",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || saw("DECISION OVERDUE: Other").then_some(()),
    )
    .await;
    guard.kill().await;
    let overdue: Vec<String> = said
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("DECISION OVERDUE: High Error Rate"))
        .cloned()
        .collect();
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert!(
        overdue[0].contains(
            "paging technical-lead + release-manager again; escalating to Head of Engineering"
        ),
        "{}",
        overdue[0]
    );
    assert_eq!(count("DECISION OVERDUE"), 2);
    // The coordinator journaled each missed deadline once, as
    // `trigger.overdue`; guard records no `decision-overdue` of its own.
    let journal = rusqlite::Connection::open(pki.path().join("state/journal.db")).unwrap();
    let kind_count = |kind: &str| -> i64 {
        journal
            .query_row(
                "SELECT count(*) FROM entries WHERE kind = ?1",
                [kind],
                |r| r.get(0),
            )
            .unwrap()
    };
    // Guard says "overdue" by its own clock; the coordinator's watcher
    // journals it at its next evaluation, which may come a little later.
    let journaled = poll(
        "the coordinator to journal both missed deadlines",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let n = kind_count("trigger.overdue");
            (n >= 2).then_some(n)
        },
    )
    .await;
    assert_eq!(journaled, 2);
    let log = coordinator.proc.log_text();
    assert_eq!(log.matches("decision=decision-overdue").count(), 0, "{log}");
}

/// The canary judge over a real Prometheus scraping two sample apps, the
/// canary and the baseline: with too little data it is inconclusive (for
/// people: the considered trigger), with both alike it passes, and once the
/// canary is slower it fails and the immediate trigger fires, the signal
/// explaining why (U, p-value, medians).
#[tokio::test(flavor = "multi_thread")]
async fn the_canary_judge_passes_alike_hosts_and_fails_a_slower_canary() {
    use backout_e2e::services::{Prometheus, SampleApp};
    let pki = Pki::new("canary.test");
    pki.issue("operator", "alice");
    let canary_dir = pki.path().join("canary");
    let baseline_dir = pki.path().join("baseline");
    std::fs::create_dir_all(&canary_dir).unwrap();
    std::fs::create_dir_all(&baseline_dir).unwrap();
    let canary = SampleApp::start(&canary_dir).await;
    let baseline = SampleApp::start(&baseline_dir).await;
    let prometheus = Prometheus::start(
        pki.path(),
        &[
            format!("127.0.0.1:{}", canary.port),
            format!("127.0.0.1:{}", baseline.port),
        ],
    )
    .await;
    let latency = |port: u16| {
        format!(
            "round(rate(http_request_duration_seconds_sum{{instance=\"127.0.0.1:{port}\"}}[3s]) / rate(http_request_duration_seconds_count{{instance=\"127.0.0.1:{port}\"}}[3s]), 0.001)"
        )
    };
    let plan = format!(
        r#"[plan]
name = "canary"
[roles]
release-manager = "Release Manager"
sre-lead = "SRE Lead"
[signals.canary_latency]
canary = {{ url = "{url}", query = '{canary}', baseline = '{baseline}', over = "8s", step = "1s", min_samples = 5 }}
interval = "1s"
[[trigger]]
name = "Canary Fails"
class = "immediate"
when = "canary_latency == fail"
deciders = ["release-manager"]
[[trigger]]
name = "Canary Unclear"
class = "considered"
when = "canary_latency == marginal or canary_latency == inconclusive"
deciders = ["sre-lead", "release-manager"]
"#,
        url = prometheus.url,
        canary = latency(canary.port),
        baseline = latency(baseline.port),
    );
    std::fs::write(pki.path().join("plan.toml"), plan).unwrap();
    let config = format!(
        "command_key = \"{p}/command-signing.key\"\nplan = \"plan.toml\"\nevaluate_every = \"200ms\"\n[tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/coordinator.pem\"\nkey = \"{p}/coordinator.key\"\n[operators]\nalice = [\"release-manager\"]\n",
        p = pki.path().display()
    );
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let addr = coordinator.addr.clone();
    let judgement = |doc: &Value| {
        signal(doc, "canary_latency")["judgement"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // The first judgement: before Prometheus has 5 points of each it is
    // inconclusive, which is for people (the considered trigger), never
    // the immediate one. (On a slow machine Prometheus may already have
    // them; the board's unit test holds inconclusive deterministically.)
    let doc = poll(
        "a first judgement",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let (_, doc) = assess(&pki, &addr, &[]);
            (!judgement(&doc).is_empty()).then_some(doc)
        },
    )
    .await;
    if judgement(&doc).starts_with("inconclusive") {
        assert_eq!(row(&doc, "Canary Unclear")["state"], "FIRED", "{doc}");
        assert_eq!(doc["verdict"], "ASSESS FOR ROLLBACK", "{doc}");
    }
    assert_ne!(row(&doc, "Canary Fails")["state"], "FIRED", "{doc}");
    // Both alike (80 ms): pass, nothing fired.
    let doc = poll(
        "a pass",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let (_, doc) = assess(&pki, &addr, &[]);
            judgement(&doc).starts_with("pass").then_some(doc)
        },
    )
    .await;
    assert_eq!(row(&doc, "Canary Fails")["state"], "ok", "{doc}");
    // The canary's deploy is slower: fail, and the immediate trigger fires.
    canary.fault(json!({ "latency_ms": 400 })).await;
    let doc = poll(
        "the canary to fail",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let (_, doc) = assess(&pki, &addr, &[]);
            (doc["verdict"] == "IMMEDIATE ROLLBACK").then_some(doc)
        },
    )
    .await;
    let why = judgement(&doc);
    assert!(
        why.starts_with("fail: canary worse: p = ") && why.contains("; U "),
        "{why}"
    );
    assert_eq!(
        doc["matrix"]["fired_triggers"][0]["trigger"],
        "Canary Fails"
    );
    assert_eq!(row(&doc, "Canary Fails")["value"], "2");
    drop(prometheus);
}

/// The canary judge over probe host groups, with real agents: app-1 (the
/// canary group) answers its health check in 800 ms, app-2 and app-3 (the
/// baseline) at once; app-4 (a second canary) answers in 800 ms like its
/// baseline app-1. The slow canary fails the judge and its immediate
/// trigger fires; the even one is judged pass and its trigger stays ok.
/// Before enough rounds, every judgement is inconclusive, never fail.
#[tokio::test(flavor = "multi_thread")]
async fn a_canary_host_group_is_judged_against_its_baseline_hosts() {
    const PLAN: &str = r#"[plan]
name = "canary-hosts"
[roles]
release-manager = "Release Manager"
[[host]]
id = "app-1"
groups = ["canary", "twin"]
[[host]]
id = "app-2"
groups = ["web"]
[[host]]
id = "app-3"
groups = ["web"]
[[host]]
id = "app-4"
groups = ["canary-b"]
[signals.slow_canary]
canary = { hosts = "canary", baseline_hosts = "web", check = "application", over = "60s", min_samples = 5, max_variance_ratio = 1000 }
interval = "2s"
[signals.even_canary]
canary = { hosts = "canary-b", baseline_hosts = "twin", check = "application", over = "60s", min_samples = 5, max_variance_ratio = 1000, min_effect = 0.6 }
interval = "2s"
[[trigger]]
name = "Canary Fails"
class = "immediate"
when = "slow_canary == fail"
deciders = ["release-manager"]
[[trigger]]
name = "Even Canary Fails"
class = "immediate"
when = "even_canary == fail"
deciders = ["release-manager"]
"#;
    let pki = Pki::new("canary-hosts.test");
    let http = TestHttp::start().await;
    let hosts = [
        ("app-1", "/slow"),
        ("app-2", "/up"),
        ("app-3", "/up"),
        ("app-4", "/slow"),
    ];
    let ids = ["app-1", "app-2", "app-3", "app-4"];
    let (coordinator, _agents) = fleet(&pki, &http, &hosts, &ids, PLAN).await;
    let addr = coordinator.addr.clone();
    let judgement = |doc: &Value, name: &str| {
        signal(doc, name)["judgement"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let mut seen_before_fail = Vec::new();
    let doc = poll(
        "the slow canary to fail and the even one to pass",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let (_, doc) = assess(&pki, &addr, &[]);
            let (slow, even) = (
                judgement(&doc, "slow_canary"),
                judgement(&doc, "even_canary"),
            );
            assert!(!even.starts_with("fail"), "alike hosts failed: {even}");
            if !slow.starts_with("fail") {
                seen_before_fail.push(slow.clone());
            }
            (slow.starts_with("fail") && even.starts_with("pass")).then_some(doc)
        },
    )
    .await;
    for early in &seen_before_fail {
        assert!(
            early.is_empty() || early.starts_with("inconclusive: too few samples"),
            "before enough rounds: {early}"
        );
    }
    let why = judgement(&doc, "slow_canary");
    assert!(
        why.starts_with("fail: canary worse: p = ") && why.contains("; U "),
        "{why}"
    );
    assert_eq!(row(&doc, "Canary Fails")["state"], "FIRED", "{doc}");
    assert_eq!(row(&doc, "Even Canary Fails")["state"], "ok", "{doc}");
    // What the dashboard charts: both sides' values and the figures.
    let judge = &signal(&doc, "slow_canary")["judge"];
    assert!(
        judge["caption"]
            .as_str()
            .unwrap_or_default()
            .starts_with("fail: U ")
            && judge["canary"].as_array().is_some_and(|v| v.len() >= 5)
            && judge["baseline"].as_array().is_some_and(|v| v.len() >= 5),
        "{judge}"
    );
    assert_eq!(doc["verdict"], "IMMEDIATE ROLLBACK", "{doc}");
    // `plan show`-style summary names the groups.
    let out = cli(
        &pki,
        &addr,
        "alice",
        &[
            "plan",
            "check",
            pki.path().join("plan.toml").to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("canary judge canary vs web (application response time)"),
        "{text}"
    );
    // A group the plan does not have: exit 2, naming the file and field.
    let bad = pki.path().join("bad-plan.toml");
    std::fs::write(
        &bad,
        PLAN.replace("baseline_hosts = \"web\"", "baseline_hosts = \"wbe\""),
    )
    .unwrap();
    let out = cli(
        &pki,
        &addr,
        "alice",
        &["plan", "check", bad.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad-plan.toml")
            && err.contains("signals.slow_canary.canary.baseline_hosts")
            && err.contains("`wbe` is neither a host nor a group"),
        "{err}"
    );
}

/// The coordinator keeps decision deadlines itself, guard or no guard: a
/// considered trigger (scaled: 2 s to decide) fires and nobody starts a
/// rollback, so its deciders are told on the plan's Slack channel and the
/// escalation rule's person on theirs, once. The coordinator is SIGKILLed and
/// started again: the operator's signal is restored, the trigger fires
/// again in the same episode, and nobody is told twice; a second trigger's
/// missed deadline after the restart is told, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_missed_deadline_tells_the_deciders_once_even_across_a_restart() {
    let slack = TestHttp::start().await;
    let hook = slack.url("/services/T000/B000/XXXX");
    let plan = format!(
        r#"[signals.errors]
manual = true
[signals.other]
manual = true
[decide_within]
considered = "2s"
[[trigger]]
name = "High Error Rate"
class = "considered"
when = "errors"
deciders = ["technical-lead", "release-manager"]
[[trigger]]
name = "Other"
class = "considered"
when = "other"
unknown = "ok"
deciders = ["release-manager"]
[[escalation]]
who = "Head of Engineering"
when = "decision_overdue"
channels = ["execs"]
[channels.deciders]
kind = "slack"
target = "{hook}"
via = "app-1"
[channels.execs]
kind = "slack"
target = "{hook}"
via = "app-1"
[channels.bridge]
kind = "phone-bridge"
target = "+1 555 0100 / 4242"
[[contact]]
role = "Head of Engineering"
primary = {{ name = "Hana Ito", phone = "+1 555 0110" }}
backup = {{ name = "Sam Roe", phone = "+1 555 0103" }}
[templates.overdue]
channels = ["deciders"]
on = ["decision-overdue"]
body = "DECISION OVERDUE: {{{{ trigger }}}} ({{{{ condition }}}} at {{{{ value }}}}); {{{{ deciders }}}} had until {{{{ decide_by }}}}"
[templates.exec]
on = ["escalation"]
body = "ESCALATION to {{{{ escalation_who }}}}: {{{{ trigger }}}} undecided; paging {{{{ paged }}}}; bridge {{{{ bridge }}}}"
[templates.page]
channels = ["deciders"]
on = ["trigger-fired"]
body = "PAGE {{{{ deciders }}}}: {{{{ trigger }}}} fired: {{{{ condition }}}} at {{{{ value }}}} since {{{{ since }}}}, recent [{{{{ chart }}}}]; decide by {{{{ decide_by }}}}"
[[phase]]
id = "application"
name = "Application Rollback"
[[phase.step]]
id = "deploy"
plugin = "testbed"
action = "echo"
on = "app-1"
"#
    );
    let notify = format!(
        "[[plugin]]\nname = \"notify\"\npath = \"{}\"\n[plugin.grants]\nurls = [\"{}\"]\n",
        plugin("notify").display(),
        slack.url("/services/")
    );
    let mut fleet = backout_e2e::fleet::Fleet::builder("overdue.test")
        .hosts(["app-1"])
        .approvals(["technical-lead"])
        .plan(&plan)
        .config("evaluate_every = \"100ms\"\n")
        .agent_config(move |_, config| config + &notify)
        .start()
        .await;
    let posted = |text: &str| {
        slack
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(text))
            .count()
    };
    let set = |fleet: &backout_e2e::fleet::Fleet, assignment: &str| {
        let out = fleet.cli("alice", &["signal", "set", assignment]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    set(&fleet, "errors=true");
    let start = Instant::now();
    while !(posted("DECISION OVERDUE: High Error Rate") == 1
        && posted("ESCALATION to Head of Engineering: High Error Rate") == 1)
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the deciders and the escalation were not told: posted {:?}; journal {:?}; coordinator log {}",
            slack.requests.lock().unwrap(),
            {
                let db = rusqlite::Connection::open(fleet.journal()).unwrap();
                let mut rows = db
                    .prepare("SELECT kind, body FROM entries ORDER BY seq")
                    .unwrap();
                rows.query_map([], |r| {
                    Ok(format!(
                        "{} {}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
            },
            std::fs::read_to_string(fleet.path().join("coordinator.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = slack.requests.lock().unwrap().join("\n");
    assert!(
        all.contains("(errors at true); technical-lead + release-manager had until"),
        "{all}"
    );
    // The escalation pages the plan's contact for the rule's `who` (and
    // backup), with the bridge, through the rule's channel; the journal
    // says whom it paged.
    assert!(
        all.contains("ESCALATION to Head of Engineering: High Error Rate undecided; paging Head of Engineering: Hana Ito +1 555 0110, backup: Sam Roe +1 555 0103; bridge +1 555 0100 / 4242"),
        "{all}"
    );
    // They were paged when it fired, with what fired it and a text chart.
    assert!(
        all.contains(
            "PAGE technical-lead + release-manager: High Error Rate fired: errors at true since 20"
        ) && all.contains(", recent [▄"),
        "{all}"
    );

    // Each message is journaled once its agent answers (a SIGKILL before
    // that loses the record, never sends it again): wait for the three.
    poll(
        "the three messages to be journaled",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || (fleet.journal_count("notification.sent") == 3).then_some(()),
    )
    .await;
    let escalations: Vec<String> = {
        let db = rusqlite::Connection::open(fleet.journal()).unwrap();
        let mut rows = db
            .prepare("SELECT body FROM entries WHERE kind = 'notification.sent' ORDER BY seq")
            .unwrap();
        rows.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .filter(|b| b.contains(r#""moment":"escalation""#))
            .collect()
    };
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert!(
        escalations[0].contains(
            r#""paged":["Head of Engineering: Hana Ito +1 555 0110, backup: Sam Roe +1 555 0103"]"#
        ),
        "{escalations:?}"
    );
    let out = fleet.cli("alice", &["assess", "--output", "json"]);
    let before: Value = serde_json::from_slice(&out.stdout).unwrap();
    let before = row(&before, "High Error Rate");
    assert_eq!(before["state"], "FIRED", "{before}");
    fleet.restart_coordinator().await;
    fleet.wait_connected(1).await;
    // The operator's signal survived the restart: the trigger fired again,
    // and assess says the journaled onset and deadline (the ones the
    // messages and the report keep), not ones the restart began again.
    let out = fleet.cli("alice", &["assess", "--output", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let after = row(&doc, "High Error Rate");
    assert_eq!(after["state"], "FIRED", "{doc}");
    assert_eq!(after["since_ms"], before["since_ms"], "{after} vs {before}");
    assert_eq!(
        after["fired_at_ms"], before["fired_at_ms"],
        "{after} vs {before}"
    );
    assert_eq!(
        after["decide_by_ms"], before["decide_by_ms"],
        "{after} vs {before}"
    );
    set(&fleet, "other=true");
    poll(
        "the second trigger's deadline to be told",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            (posted("DECISION OVERDUE: Other") == 1
                && posted("ESCALATION to Head of Engineering: Other") == 1
                && posted("PAGE release-manager: Other fired") == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(posted("DECISION OVERDUE: High Error Rate"), 1);
    assert_eq!(
        posted("ESCALATION to Head of Engineering: High Error Rate"),
        1
    );
    // Journaled: fired once (the restart is the same episode), overdue once
    // each, every message with its trigger (each once its agent answered,
    // which may come after Slack saw it).
    poll(
        "the six messages to be journaled",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || (fleet.journal_count("notification.sent") >= 6).then_some(()),
    )
    .await;
    let journal = fleet.journal_kinds();
    let count = |kind: &str| journal.iter().filter(|k| k.as_str() == kind).count();
    assert_eq!(count("trigger.fired"), 2, "{journal:?}");
    assert_eq!(count("trigger.overdue"), 2, "{journal:?}");
    // Two pages (one per trigger: the restart paged nobody again), two
    // overdue messages, two escalations.
    assert_eq!(
        posted("PAGE technical-lead + release-manager: High Error Rate"),
        1
    );
    assert_eq!(count("notification.sent"), 6, "{journal:?}");

    // At last the deciders start the rollback: both episodes are decided by
    // it, `watch` says how late, and the run's report measures the time to
    // decision against each deadline.
    let id = fleet.start_approved(&["--reason", "errors"]);
    fleet.ended(&id).await;
    let watched = fleet.cli("alice", &["watch", &id]);
    let watched = String::from_utf8_lossy(&watched.stdout);
    assert!(
        watched.contains("High Error Rate fired (considered): errors at true")
            && watched.contains("DECISION OVERDUE by"),
        "{watched}"
    );
    poll(
        "both episodes to be decided",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || (fleet.journal_count("trigger.decided") == 2).then_some(()),
    )
    .await;
    let report = fleet.cli("alice", &["report", &id, "--format", "md"]);
    let report = String::from_utf8_lossy(&report.stdout);
    let section = report
        .split("## Time to decision")
        .nth(1)
        .unwrap_or_default();
    assert!(
        section.contains("- High Error Rate fired ")
            && section.contains("DEADLINE MISSED by")
            && section.contains("deciders told again and escalated")
            && section.contains("- Other fired "),
        "{report}"
    );
    assert_eq!(
        posted("DECISION OVERDUE: High Error Rate"),
        1,
        "nobody is told again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_starts_the_rollback_when_a_canary_host_group_fails_and_the_plan_allows_it() {
    // Issue 18, item 6: guard runs the judge after a canary deploy and,
    // where the plan allows (`auto_rollback` on `X == fail`), starts the
    // rollback on fail.
    const PLAN: &str = r#"[plan]
name = "canary-guard"
[roles]
release-manager = "Release Manager"
[[host]]
id = "app-1"
groups = ["canary"]
[[host]]
id = "app-2"
groups = ["web"]
[[host]]
id = "app-3"
groups = ["web"]
[signals.canary]
canary = { hosts = "canary", baseline_hosts = "web", check = "application", over = "60s", min_samples = 5, max_variance_ratio = 1000 }
interval = "2s"
[[trigger]]
name = "Canary Fails"
class = "immediate"
when = "canary == fail"
auto_rollback = true
deciders = ["release-manager"]
[[phase]]
id = "application"
name = "Application Rollback"
[[phase.step]]
id = "verify"
plugin = "health"
action = "check"
on = "app-2"
"#;
    let pki = Pki::new("canary-guard.test");
    let http = TestHttp::start().await;
    let hosts = [("app-1", "/slow"), ("app-2", "/up"), ("app-3", "/up")];
    let ids = ["app-1", "app-2", "app-3"];
    let (coordinator, _agents) = fleet(&pki, &http, &hosts, &ids, PLAN).await;
    let guard = backout_e2e::cli_child(
        &pki,
        &coordinator.addr,
        "alice",
        &["guard", "--interval", "500ms", "--exit-on-immediate"],
    );
    let out = tokio::time::timeout(Duration::from_secs(120), guard.wait_with_output())
        .await
        .expect("guard exits once the canary fails")
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("rollback run run-"), "{said}");
    let out = cli(
        &pki,
        &coordinator.addr,
        "alice",
        &["runs", "--output", "json"],
    );
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        runs["runs"][0]["reason"], "guard: Canary Fails fired",
        "{runs}"
    );
    // The judgement that fired it is in the journal's trigger change.
    let (_, doc) = assess(&pki, &coordinator.addr, &[]);
    assert!(
        signal(&doc, "canary")["judgement"]
            .as_str()
            .unwrap_or_default()
            .starts_with("fail"),
        "{doc}"
    );
}
