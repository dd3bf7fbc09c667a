//! `--log-format json` (`BACKOUT_LOG_FORMAT=json`): one JSON object per
//! line, on both binaries, with the run, phase, step and host of a step's
//! lines as fields.

use backout_e2e::fleet::{Fleet, run_id};
use serde_json::Value;

/// Every line of `text`, each parsed as JSON: a line that is not JSON fails.
fn json_lines(what: &str, text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{what}: a log line is not JSON ({e}): {line}"))
        })
        .collect()
}

/// The first line whose message starts with `message`, in the span of
/// step `step` when one is given.
fn line<'a>(what: &str, lines: &'a [Value], message: &str, step: Option<&str>) -> &'a Value {
    lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
                && step.is_none_or(|step| l["span"]["step"] == step)
        })
        .unwrap_or_else(|| panic!("{what}: no `{message}` line ({step:?}) in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_lines_carry_the_run_phase_step_and_host() {
    let fleet = Fleet::builder("logs.test")
        .hosts(["app-1"])
        .plan(
            "[[phase]]\nid = \"application\"\nname = \"App\"\n\
             [[phase.step]]\nid = \"stop\"\nplugin = \"testbed\"\naction = \"echo\"\non = \"app-1\"\n\
             [[phase.step]]\nid = \"peek\"\nplugin = \"testbed\"\naction = \"read\"\non = \"app-1\"\n\
             params = { path = \"/etc/hostname\" }\n",
        )
        .approvals(["technical-lead"])
        .env("BACKOUT_LOG_FORMAT", "json")
        .start()
        .await;
    let id = run_id(&fleet.start_run("dave", &["--reason", "json logs"]));
    fleet.approve(&id, &["bob"]);
    // `peek` reads a file it was not granted: refused by the host.
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "failed", "{run:#}");

    // The coordinator: the step's answer, in the step's span.
    let lines = json_lines("coordinator", &fleet.coordinator.proc.log_text());
    let answered = line("coordinator", &lines, "step answered", Some("stop"));
    assert_eq!(answered["outcome"], "succeeded", "{answered:#}");
    let span = &answered["span"];
    assert_eq!(span["name"], "step", "{answered:#}");
    assert_eq!(span["run"], id.as_str(), "{answered:#}");
    assert_eq!(span["phase"], "application", "{answered:#}");
    assert_eq!(span["step"], "stop", "{answered:#}");
    assert_eq!(span["host"], "app-1", "{answered:#}");
    assert_eq!(
        line("coordinator", &lines, "run ended", None)["run"],
        id.as_str()
    );

    // The agent: the step it ran, in the same terms.
    let text = std::fs::read_to_string(fleet.agent_log("app-1", "")).unwrap();
    let lines = json_lines("agent", &text);
    let running = line("agent", &lines, "running step", Some("stop"));
    assert_eq!(running["plugin"], "testbed", "{running:#}");
    let span = &running["span"];
    // One span: the one that continues the coordinator's trace.
    assert_eq!(span["name"], "agent.step", "{running:#}");
    assert_eq!(
        running["spans"].as_array().map(Vec::len),
        Some(1),
        "{running:#}"
    );
    assert_eq!(span["run"], id.as_str(), "{running:#}");
    assert_eq!(span["phase"], "application", "{running:#}");
    assert_eq!(span["step"], "stop", "{running:#}");
    assert_eq!(span["host"], "app-1", "{running:#}");
    // What the README shows ("Install on a fleet") comes from here.
    let out = backout_e2e::target_dir().join("observability");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("log-lines.json"),
        format!("{answered}\n{running}\n"),
    )
    .unwrap();
    // A host call's line, from the thread the plugin runs on, in its step.
    let refused = line("agent", &lines, "refused: ", Some("peek"));
    assert_eq!(refused["level"], "WARN", "{refused:#}");
    assert_eq!(refused["span"]["run"], id.as_str(), "{refused:#}");
    assert_eq!(refused["span"]["phase"], "application", "{refused:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_format_that_does_not_exist_is_bad_input() {
    for (bin, args) in [
        ("backout", &["--log-format", "xml", "agents"][..]),
        (
            "backout-agent",
            &["--log-format", "xml", "--config", "agent.toml"],
        ),
    ] {
        let out = backout_e2e::run(&backout_e2e::bin(bin), args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bin}: {stderr}");
        assert!(stderr.contains("--log-format"), "{bin}: {stderr}");
        assert!(stderr.contains("json"), "{bin}: {stderr}");
    }
}
