//! `backout-agent plugin run` (issue 17, item 5): one step of a plugin run
//! here, in the agent's sandbox, under the grants given on the command line
//! only; no PKI, coordinator, plan or approval. And an agent that loads a
//! new or changed plugin file on SIGHUP, without a restart.

use std::time::Duration;

use backout_e2e::fleet::Fleet;
use backout_e2e::{bin, plugin, run, sha256_file, wait_for};
use serde_json::Value;

fn plugin_run(args: &[&str]) -> std::process::Output {
    let mut all = vec!["plugin", "run"];
    all.extend_from_slice(args);
    run(&bin("backout-agent"), &all, &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_runs_under_the_grants_given_and_no_others() {
    let tmp = tempfile::tempdir().unwrap();
    let testbed = plugin("testbed");
    let testbed = testbed.to_str().unwrap();
    let target = tmp.path().join("out.txt");
    let params = format!(r#"{{"path":"{}","contents":"hello"}}"#, target.display());
    let grant = format!("write={}", tmp.path().display());

    // Granted: the file is written, the outcome printed.
    let out = plugin_run(&[testbed, "write", "--params", &params, "--grant", &grant]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SUCCEEDED: wrote 5 bytes"), "{text}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "hello");
    std::fs::remove_file(&target).unwrap();

    // Not granted: refused by the sandbox, exit 1, nothing written.
    let out = plugin_run(&[testbed, "write", "--params", &params]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(!target.exists());

    // A dry run is refused the write even with the grant.
    let out = plugin_run(&[
        testbed,
        "write",
        "--params",
        &params,
        "--grant",
        &grant,
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!target.exists());

    // JSON for programs: the outcome, its data and the live events; params
    // from a file.
    let file = tmp.path().join("params.json");
    std::fs::write(&file, r#"{"say":"hi"}"#).unwrap();
    let at_file = format!("@{}", file.display());
    let out = plugin_run(&[testbed, "echo", "--params", &at_file, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["outcome"], "succeeded", "{doc}");
    assert_eq!(doc["plugin"], "testbed");
    assert_eq!(doc["data"]["say"], "hi", "{doc}");
    assert!(
        doc["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "log" && e["message"] == "echo"),
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_to_the_runner_exits_2_naming_it() {
    let testbed = plugin("testbed");
    let testbed = testbed.to_str().unwrap();
    for (args, expect) in [
        (vec![testbed, "echo", "--params", "{"], "--params: not JSON"),
        (
            vec![testbed, "echo", "--params", "@/nonexistent/p.json"],
            "cannot read",
        ),
        (
            vec![testbed, "echo", "--grant", "network=all"],
            "--grant `network=all`",
        ),
        (
            vec![testbed, "echo", "--secret", "TOKEN=hunter2"],
            "--secret `TOKEN=hunter2`",
        ),
        (vec!["/nonexistent/x.wasm", "echo"], "/nonexistent/x.wasm"),
    ] {
        let out = plugin_run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

/// The plugin `name` as `backout agents --output json` lists it for agent `id`.
fn listed_plugin(fleet: &Fleet, id: &str, name: &str) -> Option<Value> {
    let agents = fleet.json("alice", &["agents", "--output", "json"]);
    let agent = agents["agents"]
        .as_array()?
        .iter()
        .find(|a| a["agent"] == id && a["connected"] == true)?
        .clone();
    agent["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// Waits until `backout agents` lists plugin `name` of agent app-1 with
/// file `sha256`.
async fn listed_as(fleet: &Fleet, name: &str, sha256: &str) {
    wait_for(
        &format!("plugin {name} to be listed with sha256 {sha256}"),
        Duration::from_secs(30),
        || {
            let p = listed_plugin(fleet, "app-1", name)?;
            (p["sha256"] == sha256).then_some(())
        },
    )
    .await;
}

fn hang_up(fleet: &Fleet, id: &str) {
    let pid = fleet.agents[id].child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_loads_a_changed_plugin_and_disables_one_that_fails_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dyn.wasm");
    std::fs::copy(plugin("testbed"), &file).unwrap();
    let extra = format!(
        "[[plugin]]\nname = \"dyn\"\npath = \"{}\"\n",
        file.display()
    );
    let fleet = Fleet::builder("sighup.test")
        .hosts(["app-1"])
        .approvals(["technical-lead"])
        .plan(
            "[[phase]]\nid = \"p\"\nname = \"P\"\n[[phase.step]]\nid = \"echo\"\nplugin = \"testbed\"\naction = \"echo\"\non = \"app-1\"\n",
        )
        .agent_config(move |_, config| format!("{config}{extra}"))
        .start()
        .await;
    let pid = fleet.agents["app-1"].child.id();
    let listed = listed_plugin(&fleet, "app-1", "dyn").expect("dyn is listed");
    assert_eq!(listed["sha256"], sha256_file(&plugin("testbed")));

    // A changed file: loaded on SIGHUP, and the coordinator is told.
    std::fs::copy(plugin("health"), &file).unwrap();
    hang_up(&fleet, "app-1");
    listed_as(&fleet, "dyn", &sha256_file(&plugin("health"))).await;
    assert_eq!(fleet.agents["app-1"].child.id(), pid, "not restarted");

    // A file that does not load: the plugin is disabled and said to be;
    // the agent serves the rest.
    std::fs::write(&file, b"not a component").unwrap();
    hang_up(&fleet, "app-1");
    let disabled = wait_for(
        "the broken plugin to be reported",
        Duration::from_secs(30),
        || {
            let p = listed_plugin(&fleet, "app-1", "dyn")?;
            p["load_error"].as_str().map(str::to_string)
        },
    )
    .await;
    assert!(
        disabled.contains("not a valid plugin component"),
        "{disabled}"
    );
    let text = fleet.cli("alice", &["agents"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("dyn (DISABLED: "), "{text}");
    assert!(
        std::fs::read_to_string(&fleet.agents["app-1"].log)
            .unwrap()
            .contains("failed to load and is disabled"),
        "the agent's log says so"
    );
    let id = fleet.start_approved(&["--reason", "the rest still serves"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(fleet.agents["app-1"].child.id(), pid, "not restarted");
}

/// The example of `backout-agent plugin run --help`: a health check, its
/// URL granted; with `require_healthy`, a service that is down fails it.
#[tokio::test(flavor = "multi_thread")]
async fn a_health_check_runs_locally_as_the_help_shows() {
    let service = backout_e2e::http::TestHttp::start().await;
    let health = plugin("health");
    let grant = format!("urls={}", service.url("/"));
    let check = |path: &str| {
        let params = format!(
            r#"{{"checks":[{{"name":"app","url":"{}"}}],"require_healthy":true}}"#,
            service.url(path)
        );
        plugin_run(&[
            health.to_str().unwrap(),
            "check",
            "--params",
            &params,
            "--grant",
            &grant,
        ])
    };
    let up = check("/up");
    assert_eq!(
        up.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&up.stdout)
    );
    let down = check("/down");
    let text = String::from_utf8_lossy(&down.stdout);
    assert_eq!(down.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED (unhealthy)"), "{text}");
}

/// Waits until the agent's log (`fleet`'s `id`) contains `text`.
async fn logged(fleet: &Fleet, id: &str, text: &str) {
    let log = fleet.agents[id].log.clone();
    wait_for(
        &format!("the agent to log {text:?}"),
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .ok()?
                .contains(text)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_added_removed_and_broken_plugin_entries_without_a_restart() {
    let fleet = Fleet::builder("sighup-config.test")
        .hosts(["app-1"])
        .approvals(["technical-lead"])
        .plan(
            "[[phase]]\nid = \"p\"\nname = \"P\"\n\
             [[phase.step]]\nid = \"echo\"\nplugin = \"testbed\"\naction = \"echo\"\non = \"app-1\"\n\
             [[phase.step]]\nid = \"added\"\nplugin = \"added\"\naction = \"echo\"\non = \"app-1\"\n",
        )
        .start()
        .await;
    let pid = fleet.agents["app-1"].child.id();
    let config = fleet.agent_config_path("app-1");
    let original = std::fs::read_to_string(&config).unwrap();
    assert!(listed_plugin(&fleet, "app-1", "added").is_none());

    // A new [[plugin]] entry: loaded on SIGHUP, listed, and its step runs.
    let added = format!(
        "{original}\n[[plugin]]\nname = \"added\"\npath = \"{}\"\n",
        plugin("testbed").display()
    );
    std::fs::write(&config, &added).unwrap();
    hang_up(&fleet, "app-1");
    listed_as(&fleet, "added", &sha256_file(&plugin("testbed"))).await;
    let id = fleet.start_approved(&["--reason", "a plugin added on SIGHUP"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // A configuration that does not load: logged, the running one kept.
    std::fs::write(&config, format!("{added}\nunknown_key = 1\n")).unwrap();
    hang_up(&fleet, "app-1");
    logged(&fleet, "app-1", "the configuration does not load").await;
    assert!(listed_plugin(&fleet, "app-1", "added").is_some());

    // A broken entry: reported and disabled; the others still serve. A
    // setting that applies only at start is logged as needing a restart.
    let broken = added.replace("clock_skew = \"2s\"", "clock_skew = \"3s\"")
        + "\n[[plugin]]\nname = \"broken\"\npath = \"/nonexistent/broken.wasm\"\n";
    std::fs::write(&config, &broken).unwrap();
    hang_up(&fleet, "app-1");
    let error = wait_for(
        "the broken plugin to be reported",
        Duration::from_secs(30),
        || {
            let p = listed_plugin(&fleet, "app-1", "broken")?;
            p["load_error"].as_str().map(str::to_string)
        },
    )
    .await;
    assert!(error.contains("/nonexistent/broken.wasm"), "{error}");
    let text = fleet.cli("alice", &["agents"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("broken (DISABLED: "), "{text}");
    logged(&fleet, "app-1", "needs a restart").await;
    let id = fleet.start_approved(&["--reason", "the rest still serves"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // Entries removed: unloaded and no longer listed.
    std::fs::write(&config, &original).unwrap();
    hang_up(&fleet, "app-1");
    wait_for(
        "the removed plugins to be gone",
        Duration::from_secs(30),
        || {
            (listed_plugin(&fleet, "app-1", "testbed").is_some()
                && listed_plugin(&fleet, "app-1", "added").is_none()
                && listed_plugin(&fleet, "app-1", "broken").is_none())
            .then_some(())
        },
    )
    .await;
    assert_eq!(fleet.agents["app-1"].child.id(), pid, "not restarted");
}
