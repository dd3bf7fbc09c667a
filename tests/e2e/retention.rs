//! The journal grows with what happens, not with time (issue 19): the
//! sampler's health probes are not journaled one by one, the changes they
//! cause are, with their evidence. Old runs move to an archive file that
//! verifies on its own and joins the journal's chain.

use std::time::Duration;

use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::http::TestHttp;
use backout_e2e::{bin, run, wait_for};
use serde_json::Value;

/// Each entry's kind and body, read beside the running coordinator.
fn entries(fleet: &Fleet) -> Vec<(String, Value)> {
    let db = rusqlite::Connection::open_with_flags(
        fleet.journal(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db
        .prepare("SELECT kind, body FROM entries ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (kind, body) = r.unwrap();
            (kind, serde_json::from_str(&body).unwrap())
        })
        .collect()
}

const PROBED: &str = r#"[signals.service_up]
probe = { check = "application", aggregate = "any-up" }
interval = "200ms"
[[trigger]]
name = "Complete Service Down"
class = "immediate"
when = "service_up == 0"
for = "1s"
deciders = ["release-manager"]
"#;

/// Both hosts' service is down: probes every 200 ms for as long as it takes
/// the trigger to fire and a few seconds more. The journal holds the
/// trigger's changes (none → breaching → FIRED, with the value and the hosts
/// heard) and the signal's data arriving, and not one probe command.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_coordinator_journals_what_its_probes_change_not_each_probe() {
    let http = TestHttp::start().await;
    let granted = format!("urls = [\"{}\"]", http.url("/"));
    let fleet = Fleet::builder("growth.test")
        .hosts(["app-1", "app-2"])
        .plan(PROBED)
        .agent_config(move |_, config| config.replace(r#"urls = ["http://127.0.0.1/"]"#, &granted))
        .config(&format!(
            "evaluate_every = \"100ms\"\n[[assess.check]]\nname = \"application\"\nurl = \"{}\"\n",
            http.url("/down")
        ))
        .start()
        .await;
    let fired = wait_for(
        "the trigger to fire, in the journal",
        Duration::from_secs(60),
        || {
            entries(&fleet)
                .into_iter()
                .find(|(kind, body)| kind == "trigger.changed" && body["to"] == "FIRED")
        },
    )
    .await;
    let fired = fired.1;
    assert_eq!(fired["trigger"], "Complete Service Down");
    assert_eq!(fired["from"], "breaching");
    assert_eq!(fired["value"], "0", "{fired}");
    assert_eq!(fired["heard"], "2 of 2 hosts", "{fired}");
    assert!(fired["since_ms"].as_i64().is_some(), "{fired}");
    // Probes go on (the health server sees them); the journal does not grow
    // with them.
    let requests = http.requests.lock().unwrap().len();

    wait_for("ten more probe requests", Duration::from_secs(30), || {
        (http.requests.lock().unwrap().len() >= requests + 10).then_some(())
    })
    .await;
    let all = entries(&fleet);
    let kinds: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !kinds
            .iter()
            .any(|k| *k == "command.sent" || *k == "step.finished"),
        "probes were journaled: {kinds:?}"
    );
    let changes: Vec<String> = all
        .iter()
        .filter(|(k, _)| k == "trigger.changed")
        .map(|(_, b)| {
            format!(
                "{} -> {}",
                b["from"].as_str().unwrap(),
                b["to"].as_str().unwrap()
            )
        })
        .collect();
    // The first evaluation may find no value yet (unknown) before the first
    // probe round answers.
    assert!(
        changes == ["none -> breaching", "breaching -> FIRED"]
            || changes
                == [
                    "none -> unknown",
                    "unknown -> breaching",
                    "breaching -> FIRED"
                ],
        "{changes:?}"
    );
    assert!(
        all.iter().any(|(k, b)| k == "signal.changed"
            && b["signal"] == "service_up"
            && b["known"] == true),
        "{kinds:?}"
    );
}

const ONE_STEP: &str = r#"[[phase]]
id = "application"
name = "Application"
[[phase.step]]
id = "echo"
plugin = "testbed"
action = "echo"
on = "app-1"
"#;

/// `backout audit archive` with the coordinator stopped moves the ended run
/// into an archive; both verify and join (`audit verify --archive`); an
/// edit inside the archive is found there; the coordinator starts again on
/// the journal left behind. Refused while the coordinator runs, and for an
/// archive path that exists (exit 2).
#[tokio::test(flavor = "multi_thread")]
async fn ended_runs_move_to_an_archive_that_joins_the_chain() {
    let mut fleet = Fleet::builder("archive.test")
        .hosts(["app-1"])
        .plan(ONE_STEP)
        .start()
        .await;
    let id = run_id(&fleet.start_run("dave", &["--reason", "archive me", "--dry-run"]));
    fleet.ended(&id).await;
    let config = fleet.path().join("coordinator.toml");
    let config = config.to_str().unwrap();
    let archive = fleet.path().join("archive-1.db");
    let archive = archive.to_str().unwrap();
    let audit = |args: &[&str]| run(&bin("backout"), &[&["audit"], args].concat(), &[]);
    // `audit verify` of the journal with its archive, as JSON.
    let verify_joined = || {
        audit(&[
            "verify",
            "--config",
            config,
            "--archive",
            archive,
            "--output",
            "json",
        ])
    };
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    // While the coordinator runs: refused, naming the lock.
    let out = audit(&[
        "archive", "--config", config, "--before", "0s", "--to", archive,
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("another coordinator is using this journal"),
        "{}",
        text(&out)
    );
    assert!(!std::path::Path::new(archive).exists());

    fleet.kill_coordinator().await;
    let before = fleet.audit_verify();
    let out = audit(&[
        "archive", "--config", config, "--before", "0s", "--to", archive, "--output", "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let moved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(moved["archived"].as_i64().unwrap() > 3, "{moved}");
    // An archive path that exists is bad input.
    let out = audit(&[
        "archive", "--config", config, "--before", "0s", "--to", archive,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = audit(&[
        "archive", "--config", config, "--before", "soon", "--to", "x.db",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Both files verify, and the seam holds: every entry is still accounted for.
    let out = verify_joined();
    assert!(out.status.success(), "{}", text(&out));
    let joined: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(joined["intact"], true, "{joined}");
    assert_eq!(joined["entries"], before["entries"], "{joined} {before}");
    let alone = fleet.audit_verify();
    assert_eq!(
        alone["entries"].as_i64().unwrap() + moved["archived"].as_i64().unwrap(),
        before["entries"].as_i64().unwrap(),
        "{alone}"
    );

    // The coordinator starts on the journal left behind and goes on.
    fleet.start_coordinator(&[]).await;
    fleet.wait_connected(1).await;
    let again = run_id(&fleet.start_run("dave", &["--reason", "after the archive", "--dry-run"]));
    fleet.ended(&again).await;
    assert!(
        fleet.runs()["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["run"] != id.as_str()),
        "the archived run is not in the coordinator's memory"
    );
    let out = verify_joined();
    assert!(out.status.success(), "{}", text(&out));

    // An edit inside the archive is found in the archive.
    let db = rusqlite::Connection::open(archive).unwrap();
    db.execute(
        "UPDATE entries SET body = replace(body, 'archive me', 'nothing here') WHERE kind = 'run.created'",
        [],
    )
    .unwrap();
    drop(db);
    let out = verify_joined();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let broken: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(broken["file"], archive, "{broken}");
    assert_eq!(broken["intact"], false, "{broken}");
}
