//! A partition between one agent and the coordinator, made with a proxy
//! that stops forwarding without closing anything
//! ([`backout_e2e::proxy::Proxy`]): no reset, no end of stream, only
//! silence, as behind a dead link.
//!
//! The coordinator's `heartbeat_interval` is 8 s here, so either side
//! calls the other gone after 24 s of silence (before HTTP/2's own
//! keepalive, 20 s + 10 s, would); the step's give-up time (its 1 s
//! timeout and the coordinator's 10 s grace) comes well before that, so its
//! command is still in the open connection when the coordinator gives up
//! on it.

use std::time::Duration;

use backout_e2e::plans::{APP_HOSTS, mark_step, marked_fleet};
use backout_e2e::proxy::Proxy;
use backout_e2e::{phase, wait_for};
use serde_json::json;

/// The coordinator's heartbeat interval in this test, and the bound it
/// sets: an agent silent for three intervals is unreachable.
const HEARTBEAT: &str = "8s";
const SILENCE_BOUND: Duration = Duration::from_secs(24);

/// How many times `text` is in the marks file (each run of the step adds one).
fn marks(path: &std::path::Path, text: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == text)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_agent_times_out_is_reported_unreachable_and_its_late_command_is_refused() {
    let proxy = Proxy::start().await;
    let (builder, marks_dir) = marked_fleet("partition.test", |dir| {
        format!(
            "[[phase]]\nid = \"application\"\nname = \"Application Rollback\"\n{}timeout = \"1s\"\n",
            mark_step("mark", "app", &dir.join("marks"), "mark")
        )
    });
    let marks_file = marks_dir.join("marks");
    let fleet = builder
        .config(&format!("heartbeat_interval = \"{HEARTBEAT}\"\n"))
        .proxied("app-1", &proxy)
        .start()
        .await;

    // Cut before the run: app-1's command goes into the silent connection.
    proxy.cut();
    let id = fleet.start_approved(&["--reason", "partition"]);
    let run = fleet.ended(&id).await;
    // The phase's policy (stop at the first failure): app-2 ran, app-1 is
    // timed out at its give-up time, the run failed.
    assert_eq!(run["status"], "failed", "{run}");
    let phase = phase(&run, "application");
    assert_eq!(phase["hosts_succeeded"], json!(["app-2"]), "{phase}");
    assert_eq!(phase["hosts_timed_out"], json!(["app-1"]), "{phase}");

    // Heal: the command held in the connection arrives late, after its
    // give-up time, and the agent refuses it without running it.
    proxy.heal();
    let log = fleet.agent_log("app-1", "");
    let refusal = wait_for(
        "app-1 to refuse the late command",
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .find(|l| l.contains("command refused") && l.contains("deadline"))
                .map(str::to_string)
        },
    )
    .await;
    assert!(
        refusal.contains("after the coordinator gave up on step"),
        "{refusal}"
    );
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains("running step")
    );
    assert_eq!(marks(&marks_file, "mark"), 1, "only app-2's step ran");

    // A longer cut: the coordinator reports app-1 unreachable (within three
    // heartbeats; the wait allows for a loaded machine), and the agent
    // drops its session too.
    fleet.wait_connected(APP_HOSTS.len()).await;
    proxy.cut();
    wait_for(
        "the coordinator to report app-1 unreachable",
        SILENCE_BOUND + Duration::from_secs(30),
        || (!fleet.connected().iter().any(|a| a == "app-1")).then_some(()),
    )
    .await;
    assert!(
        fleet
            .coordinator
            .proc
            .log_text()
            .contains("agent unreachable: no heartbeat for three intervals")
    );
    wait_for(
        "app-1 to drop its silent session",
        SILENCE_BOUND + Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("no word from the coordinator")
                .then_some(())
        },
    )
    .await;

    // Healed: app-1 dials again and is back; nothing ran twice.
    proxy.heal();
    fleet.wait_connected(APP_HOSTS.len()).await;
    assert_eq!(marks(&marks_file, "mark"), 1, "a step ran twice");
    assert_eq!(fleet.run_of(&id)["status"], "failed");
}
