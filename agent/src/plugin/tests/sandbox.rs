//! Limits of the sandbox against the deliberately misbehaving `testbed`
//! plugin: deadline, memory, traps, WASI, output.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Opts, config, data, failure, host, host_with, step};
use crate::plugin::{
    ByteSize, Grants, LogLevel, SecretStore, StepEvent, StepLimitsConfig, StepOutcome,
};

fn limited(deadline: Option<&str>, memory: Option<&str>, output: Option<&str>) -> StepLimitsConfig {
    StepLimitsConfig {
        deadline: deadline.map(|d| humantime::parse_duration(d).expect("duration")),
        memory: memory.map(|m| ByteSize::parse(m).expect("size")),
        output: output.map(|o| ByteSize::parse(o).expect("size")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_plugin_stops_at_its_deadline_and_the_host_carries_on() {
    let host = host("testbed", Grants::default());
    let started = Instant::now();
    let opts = Opts {
        deadline: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let (outcome, _) = step(&host, "testbed", "spin", json!({}), opts).await;
    let elapsed = started.elapsed();
    assert_eq!(
        failure(&outcome),
        (
            "deadline".to_string(),
            "stopped at its deadline of 300ms".to_string()
        )
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");

    let (outcome, events) = step(
        &host,
        "testbed",
        "echo",
        json!({ "still": "here" }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome), json!({ "still": "here" }));
    assert_eq!(
        events,
        [StepEvent::Log {
            level: LogLevel::Info,
            message: "echo".into()
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_deadline_caps_the_requested_one() {
    let host = host_with(
        vec![config(
            "testbed",
            Grants::default(),
            Some(limited(Some("200ms"), None, None)),
        )],
        SecretStore::empty(),
    );
    let opts = Opts {
        deadline: Some(Duration::from_secs(600)),
        ..Default::default()
    };
    let (outcome, _) = step(&host, "testbed", "spin", json!({}), opts).await;
    assert_eq!(failure(&outcome).1, "stopped at its deadline of 200ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_sleep_never_passes_the_deadline() {
    let host = host("testbed", Grants::default());
    let started = Instant::now();
    let opts = Opts {
        deadline: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let (outcome, _) = step(&host, "testbed", "sleep", json!({ "ms": 60_000 }), opts).await;
    assert_eq!(failure(&outcome).0, "deadline");
    assert!(started.elapsed() < Duration::from_secs(2));

    let (outcome, _) = step(
        &host,
        "testbed",
        "sleep",
        json!({ "ms": 10 }),
        Opts::default(),
    )
    .await;
    assert_eq!(data(&outcome), json!({ "ms": 10 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_fails_with_memory() {
    let host = host_with(
        vec![config(
            "testbed",
            Grants::default(),
            Some(limited(None, Some("32MiB"), None)),
        )],
        SecretStore::empty(),
    );
    let (outcome, _) = step(&host, "testbed", "grow-memory", json!({}), Opts::default()).await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "memory", "{message}");
    assert!(message.contains("32MiB"), "{message}");

    let (outcome, _) = step(&host, "testbed", "echo", json!({}), Opts::default()).await;
    assert_eq!(data(&outcome), json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_and_panics_are_traps() {
    let host = host("testbed", Grants::default());
    let (outcome, _) = step(&host, "testbed", "recurse", json!({}), Opts::default()).await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "trap", "{message}");
    assert!(message.contains("recursion"), "{message}");

    let (outcome, _) = step(&host, "testbed", "panic", json!({}), Opts::default()).await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "trap");
    assert!(message.contains("testbed panicked on purpose"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_gives_nothing() {
    let host = host("testbed", Grants::default());
    let (outcome, _) = step(&host, "testbed", "env", json!({}), Opts::default()).await;
    let d = data(&outcome);
    assert_eq!(d["vars"], json!([]), "{d}");
    assert_eq!(d["args"], json!([]), "{d}");
    assert!(
        d["etc_passwd"].as_str().expect("text").starts_with("error"),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_is_bounded_by_its_timeout() {
    let host = host(
        "testbed",
        Grants {
            programs: vec!["sleep".into()],
            ..Default::default()
        },
    );
    let started = Instant::now();
    let params = json!({ "program": "sleep", "args": ["30"], "timeout_ms": 200 });
    let (outcome, _) = step(&host, "testbed", "exec", params, Opts::default()).await;
    assert_eq!(
        failure(&outcome),
        (
            "host-timeout".to_string(),
            "sleep did not finish within 200 ms and was killed".to_string()
        )
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let opts = Opts {
        deadline: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let (outcome, _) = step(
        &host,
        "testbed",
        "exec",
        json!({ "program": "sleep", "args": ["30"] }),
        opts,
    )
    .await;
    assert_eq!(failure(&outcome).0, "deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_cap_stops_the_step() {
    let host = host_with(
        vec![config(
            "testbed",
            Grants::default(),
            Some(limited(None, None, Some("256KiB"))),
        )],
        SecretStore::empty(),
    );
    let (outcome, events) = step(
        &host,
        "testbed",
        "spam",
        json!({ "chunk": 65536 }),
        Opts::default(),
    )
    .await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "output-limit");
    assert!(message.contains("256KiB"), "{message}");
    let streamed: usize = events
        .iter()
        .map(|e| match e {
            StepEvent::Log { message, .. } => message.len(),
            StepEvent::Emit { value_json, .. } => value_json.len(),
            StepEvent::Progress { message, .. } => message.len(),
        })
        .sum();
    assert!(streamed <= 256 * 1024, "streamed {streamed} bytes");

    // Refused calls are warnings to the coordinator: they count too.
    let (outcome, events) = step(
        &host,
        "testbed",
        "spam",
        json!({ "refused": true }),
        Opts::default(),
    )
    .await;
    assert_eq!(failure(&outcome).0, "output-limit");
    assert!(events.len() > 100, "{} warnings", events.len());

    // Under the cap, it completes.
    let (outcome, _) = step(
        &host,
        "testbed",
        "spam",
        json!({ "chunk": 100, "rounds": 3 }),
        Opts::default(),
    )
    .await;
    let StepOutcome::Succeeded { outputs, .. } = outcome else {
        panic!("expected success")
    };
    assert_eq!(outputs.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_concurrently() {
    let host = host("testbed", Grants::default());
    let mut handles = Vec::new();
    for i in 0..6 {
        let host = host.clone();
        handles.push(tokio::spawn(async move {
            step(&host, "testbed", "echo", json!({ "i": i }), Opts::default()).await
        }));
    }
    for (i, handle) in handles.into_iter().enumerate() {
        let (outcome, _) = handle.await.expect("joined");
        assert_eq!(data(&outcome), json!({ "i": i }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_stuck_in_wasi_is_abandoned_at_its_deadline() {
    let host = host("testbed", Grants::default());
    let started = Instant::now();
    let opts = Opts {
        deadline: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    // `step` collects events until the channel closes: this also proves the
    // host lets go of the caller's channel when it abandons a step.
    let (outcome, _) = step(
        &host,
        "testbed",
        "wasi-sleep",
        json!({ "ms": 20_000 }),
        opts,
    )
    .await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "deadline");
    assert!(message.contains("abandoned"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    let (outcome, _) = step(&host, "testbed", "echo", json!({}), Opts::default()).await;
    assert_eq!(data(&outcome), json!({}));
}
