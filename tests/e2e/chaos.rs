//! Chaos: runs of a two-phase, two-host plan while the coordinator and the
//! agents are SIGKILLed at random moments and started again (which also
//! cuts every agent's connection). Each run must end in a correct state:
//! succeeded with every step run exactly once, or failed only because an
//! agent died in the middle of a step (outcome `unknown`), never with a
//! step run twice; and the journal verifies.
//!
//! The same on the PostgreSQL journal with two coordinators: the leader is
//! SIGKILLed or SIGSTOPped (the standby takes over, the old one comes back
//! as the standby), the standby is paused, agents are killed or paused.
//!
//! CI runs a few runs; the long part is
//! `BACKOUT_CHAOS_RUNS=50 cargo test -p backout-e2e --test e2e chaos -- --nocapture`
//! (`BACKOUT_CHAOS_SEED` replays a seed; the figures go to RELIABILITY.md).

use std::path::Path;
use std::time::{Duration, Instant};

use backout::journal::Verdict;
use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::plans::{APP_HOSTS, marked, marked_counts, marked_fleet};
use backout_e2e::postgres::Postgres;
use backout_e2e::{send_signal, wait_for};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// A small deterministic generator (xorshift64*), so a seed replays a run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below.max(1)
    }
}

/// The run's summary (`backout runs RUN`), or `None` while the
/// coordinator cannot answer.
fn status_of(fleet: &Fleet, id: &str) -> Option<Value> {
    let out = fleet.cli("alice", &["runs", id, "--output", "json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// How many runs (`BACKOUT_CHAOS_RUNS`, else `default`) and the seed
/// (`BACKOUT_CHAOS_SEED`, else the clock), printed so a run can be replayed.
fn runs_and_dice(what: &str, default: usize) -> (usize, u64, Dice) {
    let runs: usize = std::env::var("BACKOUT_CHAOS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let seed: u64 = std::env::var("BACKOUT_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    eprintln!("{what}: {runs} runs, BACKOUT_CHAOS_SEED={seed}");
    (runs, seed, Dice(seed))
}

/// Whether a run that failed failed only on a step an agent died in.
fn failed_on_unknown(run: &Value) -> bool {
    run["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| !p["hosts_unknown"].as_array().is_none_or(Vec::is_empty))
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_end_correctly_while_the_coordinator_and_agents_are_killed_at_random() {
    let (runs, seed, mut dice) = runs_and_dice("chaos", 3);

    let (builder, marks_dir) = marked_fleet("chaos.test", |dir| marked(&dir.join("m")));
    let mut fleet = builder.start().await;

    let (mut coordinator_kills, mut agent_kills) = (0, 0);
    let (mut succeeded, mut failed_unknown, mut duplicates) = (0, 0, 0);
    for n in 1..=runs {
        let marks = marks_dir.join(format!("run-{n}"));
        fleet.write_plan(&marked(&marks));
        // A new plan is read at start: restart the coordinator for it.
        fleet.restart_coordinator().await;
        let id = start_and_approve(&fleet).await;
        let deadline = Instant::now() + Duration::from_secs(90);
        let run = loop {
            tokio::time::sleep(Duration::from_millis(20 + dice.roll(400))).await;
            match dice.roll(4) {
                0 => {
                    fleet.restart_coordinator().await;
                    coordinator_kills += 1;
                }
                1 => {
                    let which = APP_HOSTS[dice.roll(APP_HOSTS.len() as u64) as usize];
                    fleet.kill_agent(which).await;
                    agent_kills += 1;
                    fleet.start_agent(which, "");
                }
                _ => {}
            }
            if let Some(run) = status_of(&fleet, &id) {
                if run["status"] == "awaiting-approval" {
                    let _ = fleet.cli("bob", &["approve", &id]);
                }
                if run["finished_at_ms"].as_i64().is_some() {
                    break run;
                }
            }
            assert!(Instant::now() < deadline, "run {n} ({id}) did not end");
        };
        let ran = marked_counts(&marks);
        duplicates += ran.iter().filter(|(step, c)| *c > expected(step)).count();
        match run["status"].as_str() {
            Some("succeeded") => {
                succeeded += 1;
                for (step, c) in &ran {
                    assert_eq!(
                        *c,
                        expected(step),
                        "run {n}: step `{step}` ran {c} times: {run}"
                    );
                }
            }
            Some("failed") => {
                // Only an agent dying in the middle of a step may fail a run.
                assert!(
                    failed_on_unknown(&run),
                    "run {n} failed for another reason: {run}"
                );
                failed_unknown += 1;
            }
            other => panic!("run {n} ended {other:?}: {run}"),
        }
        assert_eq!(duplicates, 0, "run {n}: a step ran twice: {ran:?}");
        let audit = fleet.audit_verify();
        assert_eq!(audit["intact"], true, "run {n}: {audit}");
    }
    eprintln!(
        "chaos: seed {seed}: {runs} runs ({succeeded} succeeded, {failed_unknown} failed on a step an agent died in), \
         {coordinator_kills} coordinator kills, {agent_kills} agent kills, {duplicates} steps run twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgresql_runs_end_correctly_while_leader_standby_and_agents_are_killed_or_paused() {
    let (runs, seed, mut dice) = runs_and_dice("chaos on PostgreSQL", 2);
    let pg = Postgres::start();
    let (builder, marks_dir) = marked_fleet("chaos-pg.test", |dir| marked(&dir.join("m")));
    let marks = marks_dir.join("m");
    let mut fleet = builder.ha(&pg, "2s").start().await;

    let mut restarts = 0;
    let mut chaos = std::collections::BTreeMap::<&str, usize>::new();
    let (mut succeeded, mut failed_unknown, mut duplicates) = (0, 0, 0);
    let mut before = marked_counts(&marks);
    for n in 1..=runs {
        let id = start_and_approve(&fleet).await;
        let deadline = Instant::now() + Duration::from_secs(180);
        let run = loop {
            tokio::time::sleep(Duration::from_millis(20 + dice.roll(600))).await;
            let what = match dice.roll(8) {
                0 => {
                    fleet.kill_coordinator().await;
                    let old = fleet.standby_leads().await;
                    restarts += 1;
                    fleet.restart_as_standby(old, restarts).await;
                    "leader SIGKILLed"
                }
                1 => {
                    // Paused past its lease: the standby leads; woken, the
                    // old leader steps down (exit 1) and comes back as the standby.
                    let pid = fleet.coordinator.proc.child.id().unwrap();
                    send_signal(pid, "STOP");
                    let mut old = fleet.standby_leads().await;
                    send_signal(pid, "CONT");
                    let exited = tokio::time::timeout(WAIT, old.proc.child.wait()).await;
                    assert!(
                        exited.is_ok(),
                        "a woken leader kept running beside the new one"
                    );
                    restarts += 1;
                    fleet.restart_as_standby(old, restarts).await;
                    "leader SIGSTOPped"
                }
                2 => {
                    let standby = fleet.standby.as_ref().unwrap();
                    let pid = standby.serving.proc.child.id().unwrap();
                    send_signal(pid, "STOP");
                    tokio::time::sleep(Duration::from_millis(dice.roll(3000))).await;
                    send_signal(pid, "CONT");
                    "standby SIGSTOPped"
                }
                3 => {
                    let which = APP_HOSTS[dice.roll(APP_HOSTS.len() as u64) as usize];
                    fleet.kill_agent(which).await;
                    fleet.start_agent(which, "");
                    "agent SIGKILLed"
                }
                4 => {
                    let which = APP_HOSTS[dice.roll(APP_HOSTS.len() as u64) as usize];
                    let pid = fleet.agents[which].child.id().unwrap();
                    send_signal(pid, "STOP");
                    tokio::time::sleep(Duration::from_millis(dice.roll(3000))).await;
                    send_signal(pid, "CONT");
                    "agent SIGSTOPped"
                }
                _ => "",
            };
            if !what.is_empty() {
                *chaos.entry(what).or_default() += 1;
            }
            if let Some(run) = status_of(&fleet, &id) {
                if run["status"] == "awaiting-approval" {
                    let _ = fleet.cli("bob", &["approve", &id]);
                }
                if run["finished_at_ms"].as_i64().is_some() {
                    break run;
                }
            }
            assert!(Instant::now() < deadline, "run {n} ({id}) did not end");
        };
        // What this run added to the marks.
        let after = marked_counts(&marks);
        let ran: Vec<(String, usize)> = after
            .iter()
            .zip(&before)
            .map(|((step, a), (_, b))| (step.clone(), a - b))
            .collect();
        before = after;
        duplicates += ran.iter().filter(|(step, c)| *c > expected(step)).count();
        assert_eq!(duplicates, 0, "run {n}: a step ran twice: {ran:?}");
        match run["status"].as_str() {
            Some("succeeded") => {
                succeeded += 1;
                let all_once = ran.iter().all(|(step, c)| *c == expected(step));
                assert!(all_once, "run {n}: {ran:?}: {run}");
            }
            Some("failed") => {
                assert!(
                    failed_on_unknown(&run),
                    "run {n} failed for another reason: {run}"
                );
                failed_unknown += 1;
            }
            other => panic!("run {n} ended {other:?}: {run}"),
        }
        assert!(
            matches!(pg.journal_verdict(), Verdict::Intact { .. }),
            "run {n}: the chain is broken"
        );
    }
    eprintln!(
        "chaos on PostgreSQL: seed {seed}: {runs} runs ({succeeded} succeeded, {failed_unknown} failed on a step an agent died in), \
         {chaos:?}, {duplicates} steps run twice, the chain intact"
    );
}

/// How many times each step of the crash plan runs: on both hosts, or
/// (`check`) on app-1 only.
fn expected(step: &str) -> usize {
    if step == "check" { 1 } else { 2 }
}

/// Starts a run as dave and approves it as bob, trying again while the
/// coordinator is just back.
async fn start_and_approve(fleet: &Fleet) -> String {
    let started = loop {
        let out = fleet.cli(
            "dave",
            &["rollback", "start", "--reason", "chaos", "--output", "json"],
        );
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = run_id(&started);
    let _ = fleet.cli("bob", &["approve", &id]);
    id
}

/// The crash plan with a first step that sleeps on both hosts, so that it
/// is in flight when the disk fills.
fn slow_plan(marks: &Path) -> String {
    let slow = "[[phase.step]]\nid = \"slow\"\nplugin = \"testbed\"\naction = \"sleep\"\non = \"app\"\nparams = { ms = 1500 }\n";
    marked(marks).replacen(
        "name = \"Application Rollback\"\n",
        &format!("name = \"Application Rollback\"\n{slow}"),
        1,
    )
}

/// `prlimit --fsize` on a running process: the most bytes it may write into
/// any file (a full disk, as the process sees it), or `unlimited`.
fn limit_file_size(pid: u32, limit: &str) {
    let out = std::process::Command::new("prlimit")
        // The soft limit only: raising it again needs no privilege.
        .args(["--pid", &pid.to_string(), &format!("--fsize={limit}:")])
        .output()
        .expect("prlimit (util-linux) runs");
    assert!(
        out.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_changes_and_the_run_carries_on_once_there_is_room() {
    let (builder, marks_dir) = marked_fleet("full.test", |dir| slow_plan(&dir.join("marks")));
    let fleet = builder.start().await;
    let marks = marks_dir.join("marks");
    let id = start_and_approve(&fleet).await;
    // The sleeps are out on both agents; then the disk is full.
    wait_for("the slow steps to be sent", WAIT, || {
        let run = status_of(&fleet, &id)?;
        let hosts = run["phases"][0]["hosts"].as_array()?;
        hosts.iter().all(|h| h["state"] == "running").then_some(())
    })
    .await;
    let pid = fleet
        .coordinator
        .proc
        .child
        .id()
        .expect("the coordinator runs");
    limit_file_size(pid, "1");

    // A change that cannot be journaled is refused, and says why.
    let refused = fleet.cli("dave", &["rollback", "start", "--reason", "while full"]);
    assert!(!refused.status.success(), "a run started on a full disk");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("journal"), "{why}");
    // The sleeps end meanwhile (each agent's ledger records its step done,
    // then its result goes back); their outcomes wait with the driver, and
    // nothing after them is sent.
    wait_for("both slow steps to end on their agents", WAIT, || {
        APP_HOSTS
            .iter()
            .all(|host| slow_step_done(&fleet, host))
            .then_some(())
    })
    .await;
    assert!(
        marked_counts(&marks).iter().all(|(_, c)| *c == 0),
        "a step was sent while nothing could be journaled"
    );
    let run = status_of(&fleet, &id).expect("the coordinator still answers");
    assert_eq!(run["status"], "running", "{run}");

    // Room again: the run carries on from where it stood.
    let room_at = backout_proto::now_ms();
    limit_file_size(pid, "unlimited");
    let run = wait_for("the run to end", WAIT, || {
        let run = status_of(&fleet, &id)?;
        run["finished_at_ms"].as_i64().is_some().then_some(run)
    })
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        marked_counts(&marks)[1],
        ("start".to_string(), 2),
        "each host once"
    );
    // Nothing after the slow steps was sent before there was room.
    let lines = fleet.watch_to_end(&id).await;
    let early: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "dispatched" && l["step"] != "slow")
        .filter(|l| l["at_ms"].as_i64().is_none_or(|at| at < room_at))
        .collect();
    assert!(early.is_empty(), "sent while the disk was full: {early:?}");
    let audit = fleet.audit_verify();
    assert_eq!(audit["intact"], true, "{audit}");
}

/// Whether `host`'s agent has recorded the slow step done in its ledger.
fn slow_step_done(fleet: &Fleet, host: &str) -> bool {
    let ledger = fleet.path().join(format!("state-{host}/agent.db"));
    let Ok(db) = rusqlite::Connection::open(ledger) else {
        return false;
    };
    db.query_row(
        "SELECT count(*) FROM steps WHERE state = 'done' AND step_key LIKE '%/application/slow/%'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .is_ok_and(|n| n == 1)
}
