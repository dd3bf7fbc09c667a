//! Per-step sandbox overhead: a fresh instance of a trivial plugin (the
//! testbed's `echo`), through the agent's real `PluginHost::run` (permit,
//! instantiate from the pre-compiled component, limits, the call, events),
//! against spawning `sh -c true`, measured side by side in one run.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p backout-agent --bench sandbox`
//! (figures in BENCHMARKS.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backout_agent::plugin::{
    Grants, PluginConfig, PluginHost, SecretStore, StepLimits, StepRequest,
};

const PLUGIN_STEPS: usize = 2_000;
const SHELLS: usize = 500;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    println!(
        "{name:<44} n={:<5} p50 {:>9.1} µs   p99 {:>9.1} µs",
        samples.len(),
        p50.as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6
    );
    p50
}

fn testbed() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("plugins/testbed.wasm");
    if !path.is_file() {
        panic!(
            "{} is missing: run scripts/build-plugins.sh",
            path.display()
        );
    }
    path
}

fn main() {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let host = match PluginHost::new(
        &[PluginConfig {
            name: "testbed".into(),
            path: testbed(),
            grants: Grants::default(),
            limits: None,
        }],
        SecretStore::empty(),
        StepLimits::default(),
    ) {
        Ok(host) => host,
        Err(e) => panic!("plugin host: {e}"),
    };
    let sha = host.inventory()[0].sha256.clone();
    let plugin = match host.resolve("testbed", &sha) {
        Ok(p) => p,
        Err(e) => panic!("resolve: {e}"),
    };
    let step = |i: usize| {
        let plugin = plugin.clone();
        let host = host.clone();
        runtime.block_on(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let request = StepRequest {
                step_id: format!("bench-{i}"),
                action: "echo".into(),
                params_json: "{\"i\":1}".into(),
                dry_run: false,
                deadline: None,
            };
            let started = Instant::now();
            let outcome = host.run(plugin, request, tx).await;
            let took = started.elapsed();
            while rx.try_recv().is_ok() {}
            if !matches!(
                outcome,
                backout_agent::plugin::StepOutcome::Succeeded { .. }
            ) {
                panic!("echo failed: {outcome:?}");
            }
            took
        })
    };
    // Warm up both paths.
    for i in 0..50 {
        step(i);
    }
    let plugin_samples: Vec<Duration> = (0..PLUGIN_STEPS).map(step).collect();
    let shell_samples: Vec<Duration> = (0..SHELLS)
        .map(|_| {
            let started = Instant::now();
            let status = std::process::Command::new("sh")
                .args(["-c", "true"])
                .status();
            let took = started.elapsed();
            if !matches!(status, Ok(s) if s.success()) {
                panic!("sh -c true failed: {status:?}");
            }
            took
        })
        .collect();
    let plugin_p50 = report("plugin step (fresh instance, testbed echo)", plugin_samples);
    let shell_p50 = report("sh -c true (spawn and wait)", shell_samples);
    println!(
        "a sandboxed step costs 1/{:.0} of a shell spawn (p50)",
        shell_p50.as_secs_f64() / plugin_p50.as_secs_f64()
    );
}
