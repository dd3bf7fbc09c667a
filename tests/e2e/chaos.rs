//! Chaos: runs of a two-phase, two-host plan while the coordinator and the
//! agents are SIGKILLed at random moments and started again (which also
//! cuts every agent's connection). Each run must end in a correct state:
//! succeeded with every step run exactly once, or failed only because an
//! agent died in the middle of a step (outcome `unknown`), never with a
//! step run twice; and the journal verifies.
//!
//! CI runs a few runs; the long part is
//! `BACKOUT_CHAOS_RUNS=50 cargo test -p backout-e2e --test e2e chaos -- --nocapture`
//! (`BACKOUT_CHAOS_SEED` replays a seed; the figures go to RELIABILITY.md).

use std::time::{Duration, Instant};

use backout_e2e::{Coordinator, Pki, Proc, cli, plan_config, start_agent};
use serde_json::Value;

use crate::crash::{HOSTS, agents, counts, fleet_pki, plan};

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

fn start_agent_of(pki: &Pki, id: &str) -> Proc {
    let config = pki.path().join(format!("{id}.toml"));
    start_agent(&config, &pki.path().join(format!("{id}.log")))
}

/// The run's summary, or `None` while the coordinator cannot answer.
fn status_of(pki: &Pki, addr: &str, id: &str) -> Option<Value> {
    let out = cli(pki, addr, "alice", &["runs", "--output", "json"]);
    if !out.status.success() {
        return None;
    }
    let runs: Value = serde_json::from_slice(&out.stdout).ok()?;
    runs["runs"]
        .as_array()?
        .iter()
        .find(|r| r["run"] == id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_end_correctly_while_the_coordinator_and_agents_are_killed_at_random() {
    let runs: usize = std::env::var("BACKOUT_CHAOS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("BACKOUT_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    eprintln!("chaos: {runs} runs, BACKOUT_CHAOS_SEED={seed}");
    let mut dice = Dice(seed);

    let (pki, marks_dir, grants) = fleet_pki("chaos.test");
    std::fs::write(pki.path().join("plan.toml"), plan(&marks_dir.join("m"))).unwrap();
    let config = plan_config(&pki, "state");
    let mut coordinator = Coordinator::start(pki.path(), &config).await;
    let addr = coordinator.addr.clone();
    let mut agents = agents(&pki, &addr, &grants).await;

    let (mut coordinator_kills, mut agent_kills) = (0, 0);
    let (mut succeeded, mut failed_unknown, mut duplicates) = (0, 0, 0);
    for n in 1..=runs {
        let marks = marks_dir.join(format!("run-{n}"));
        std::fs::write(pki.path().join("plan.toml"), plan(&marks)).unwrap();
        // A new plan is read at start: restart the coordinator for it.
        coordinator.proc.kill().await;
        coordinator = Coordinator::start_on(pki.path(), &config, &addr).await;
        let id = start_and_approve(&pki, &addr).await;
        let deadline = Instant::now() + Duration::from_secs(90);
        let run = loop {
            tokio::time::sleep(Duration::from_millis(20 + dice.roll(400))).await;
            match dice.roll(4) {
                0 => {
                    coordinator.proc.kill().await;
                    coordinator_kills += 1;
                    coordinator = Coordinator::start_on(pki.path(), &config, &addr).await;
                }
                1 => {
                    let which = dice.roll(HOSTS.len() as u64) as usize;
                    agents[which].kill().await;
                    agent_kills += 1;
                    agents[which] = start_agent_of(&pki, HOSTS[which]);
                }
                _ => {}
            }
            if let Some(run) = status_of(&pki, &addr, &id) {
                if run["status"] == "awaiting-approval" {
                    let _ = cli(&pki, &addr, "bob", &["approve", &id]);
                }
                if run["finished_at_ms"].as_i64().is_some() {
                    break run;
                }
            }
            assert!(Instant::now() < deadline, "run {n} ({id}) did not end");
        };
        let ran = counts(&marks);
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
                let unknown = run["phases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| !p["hosts_unknown"].as_array().is_none_or(Vec::is_empty));
                assert!(unknown, "run {n} failed for another reason: {run}");
                failed_unknown += 1;
            }
            other => panic!("run {n} ended {other:?}: {run}"),
        }
        assert_eq!(duplicates, 0, "run {n}: a step ran twice: {ran:?}");
        let audit = backout_e2e::audit_verify(&pki);
        assert_eq!(audit["intact"], true, "run {n}: {audit}");
    }
    eprintln!(
        "chaos: seed {seed}: {runs} runs ({succeeded} succeeded, {failed_unknown} failed on a step an agent died in), \
         {coordinator_kills} coordinator kills, {agent_kills} agent kills, {duplicates} steps run twice"
    );
    for mut agent in agents {
        agent.kill().await;
    }
    coordinator.proc.kill().await;
}

/// How many times each step of the crash plan runs: on both hosts, or
/// (`check`) on app-1 only.
fn expected(step: &str) -> usize {
    if step == "check" { 1 } else { 2 }
}

/// Starts a run as dave and approves it as bob, trying again while the
/// coordinator is just back.
async fn start_and_approve(pki: &Pki, addr: &str) -> String {
    let started = loop {
        let out = cli(
            pki,
            addr,
            "dave",
            &["rollback", "start", "--reason", "chaos", "--output", "json"],
        );
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = started["run"].as_str().unwrap().to_string();
    let _ = cli(pki, addr, "bob", &["approve", &id]);
    id
}

/// The crash plan with a first step that sleeps on both hosts, so that it
/// is in flight when the disk fills.
fn slow_plan(marks: &std::path::Path) -> String {
    let slow = "[[phase.step]]\nid = \"slow\"\nplugin = \"testbed\"\naction = \"sleep\"\non = \"app\"\nparams = { ms = 1500 }\n";
    plan(marks).replacen(
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
    let (pki, marks_dir, grants) = fleet_pki("full.test");
    let marks = marks_dir.join("marks");
    std::fs::write(pki.path().join("plan.toml"), slow_plan(&marks)).unwrap();
    let config = plan_config(&pki, "state");
    let coordinator = Coordinator::start(pki.path(), &config).await;
    let addr = coordinator.addr.clone();
    let agents = agents(&pki, &addr, &grants).await;
    backout_e2e::wait_for("agents", Duration::from_secs(30), || {
        (backout_e2e::connected_agents(&pki, &addr, "alice").len() == 2).then_some(())
    })
    .await;
    let id = start_and_approve(&pki, &addr).await;
    // The sleeps are out on both agents; then the disk is full.
    backout_e2e::wait_for("the slow steps to be sent", Duration::from_secs(20), || {
        let run = status_of(&pki, &addr, &id)?;
        let hosts = run["phases"][0]["hosts"].as_array()?;
        hosts.iter().all(|h| h["state"] == "running").then_some(())
    })
    .await;
    let pid = coordinator.proc.child.id().expect("the coordinator runs");
    limit_file_size(pid, "1");

    // A change that cannot be journaled is refused, and says why.
    let refused = cli(
        &pki,
        &addr,
        "dave",
        &["rollback", "start", "--reason", "while full"],
    );
    assert!(!refused.status.success(), "a run started on a full disk");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("journal"), "{why}");
    // The sleeps end meanwhile; their outcomes wait with the driver, and
    // nothing after them is sent.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        counts(&marks).iter().all(|(_, c)| *c == 0),
        "a step was sent while nothing could be journaled"
    );
    let run = status_of(&pki, &addr, &id).expect("the coordinator still answers");
    assert_eq!(run["status"], "running", "{run}");

    // Room again: the run carries on from where it stood.
    limit_file_size(pid, "unlimited");
    let run = backout_e2e::wait_for("the run to end", Duration::from_secs(30), || {
        let run = status_of(&pki, &addr, &id)?;
        run["finished_at_ms"].as_i64().is_some().then_some(run)
    })
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        counts(&marks)[1],
        ("start".to_string(), 2),
        "each host once"
    );
    let audit = backout_e2e::audit_verify(&pki);
    assert_eq!(audit["intact"], true, "{audit}");
    for mut agent in agents {
        agent.kill().await;
    }
}
