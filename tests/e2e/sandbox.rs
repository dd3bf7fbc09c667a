//! Invariant 6, through a real agent process: a plugin that loops, grows
//! memory or calls what it was not granted is stopped or refused with a clear
//! error, and the agent serves the next step normally.

use std::time::Duration;

use backout_e2e::fake::command;
use backout_e2e::rig::Rig;
use backout_proto::wire;
use serde_json::json;

async fn rig(dir: &std::path::Path) -> Rig {
    let grants = format!(
        "programs = [\"/bin/echo\"]\nurls = [\"http://127.0.0.1:9/allowed/\"]\nread = [\"{d}\"]\nwrite = [\"{d}\"]\n",
        d = dir.display()
    );
    Rig::start(&grants).await
}

async fn run(
    rig: &mut Rig,
    action: &str,
    params: serde_json::Value,
    deadline_ms: u32,
) -> wire::step_result::Result {
    let mut body = command("app-1", "testbed", &rig.testbed_sha, action, params);
    body.deadline_ms = deadline_ms;
    let signed = rig.pki.signer().sign(&body);
    rig.outcome(signed).await
}

fn failed(result: wire::step_result::Result) -> wire::StepFailed {
    match result {
        wire::step_result::Result::Failed(f) => f,
        other => panic!("expected the step to fail, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_loops_forever_is_stopped_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = rig(dir.path()).await;
    let started = std::time::Instant::now();
    let f = failed(run(&mut rig, "spin", json!({}), 1_000).await);
    assert_eq!(f.code, "deadline", "{f:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_grows_memory_past_the_cap_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = rig(dir.path()).await;
    let f = failed(run(&mut rig, "grow-memory", json!({}), 10_000).await);
    assert_eq!(f.code, "memory", "{f:?}");
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ungranted_programs_urls_and_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.txt"), "granted content").unwrap();
    let mut rig = rig(dir.path()).await;

    let f = failed(
        run(
            &mut rig,
            "exec",
            json!({ "program": "/bin/sh", "args": ["-c", "id"] }),
            0,
        )
        .await,
    );
    assert!(
        f.message.contains("/bin/sh") && f.message.contains("not granted"),
        "{f:?}"
    );

    let f = failed(
        run(
            &mut rig,
            "http",
            json!({ "url": "http://127.0.0.1:9/forbidden" }),
            0,
        )
        .await,
    );
    assert!(f.message.contains("not granted"), "{f:?}");

    let f = failed(run(&mut rig, "read", json!({ "path": "/etc/passwd" }), 0).await);
    assert!(f.message.contains("not granted"), "{f:?}");

    let traversal = format!("{}/../../etc/passwd", dir.path().display());
    let f = failed(run(&mut rig, "read", json!({ "path": traversal }), 0).await);
    assert!(f.message.contains(".."), "{f:?}");

    // What is granted works: the refusals above are the grants, not a broken host.
    let ok = run(
        &mut rig,
        "read",
        json!({ "path": dir.path().join("ok.txt") }),
        0,
    )
    .await;
    match ok {
        wire::step_result::Result::Succeeded(s) => {
            assert!(s.data_json.contains("granted content"), "{s:?}")
        }
        other => panic!("granted read failed: {other:?}"),
    }
    let ok = run(
        &mut rig,
        "exec",
        json!({ "program": "/bin/echo", "args": ["hello"] }),
        0,
    )
    .await;
    assert!(
        matches!(ok, wire::step_result::Result::Succeeded(_)),
        "{ok:?}"
    );
    rig.still_serves().await;
}
