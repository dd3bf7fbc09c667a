//! Per-step sandbox overhead: a fresh instance of a trivial plugin (the
//! testbed's `echo`), through the agent's real `PluginHost::run` (permit,
//! instantiate from the pre-compiled component, limits, the call, events),
//! against spawning `sh -c true` and against a bare Wasmtime instantiate +
//! call of the same component with the same engine configuration
//! (`plugin::bench_support`: the least any Wasmtime host pays), measured
//! side by side in one run, interleaved so that all three see the same load.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p backout-agent --bench sandbox`
//! (figures in BENCHMARKS.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backout_agent::plugin::bench_support::Bare;
use backout_agent::plugin::{
    Grants, PluginConfig, PluginHost, SecretStore, StepLimits, StepRequest,
};

const PLUGIN_STEPS: usize = 2_000;
const SHELLS: usize = 500;
/// The params every step is called with (both plugin rows).
const PARAMS: &str = "{\"i\":1}";

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
                params_json: PARAMS.into(),
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
    let bare = match Bare::new(&testbed()) {
        Ok(bare) => bare,
        Err(e) => panic!("bare wasmtime: {e}"),
    };
    let bare_step = |i: usize| {
        let step_id = format!("bench-{i}");
        let started = Instant::now();
        let outcome = bare.call(&step_id, "echo", PARAMS, false);
        let took = started.elapsed();
        if let Err(e) = outcome {
            panic!("bare echo failed: {e}");
        }
        took
    };
    let shell = || {
        let started = Instant::now();
        let status = std::process::Command::new("sh")
            .args(["-c", "true"])
            .status();
        let took = started.elapsed();
        if !matches!(status, Ok(s) if s.success()) {
            panic!("sh -c true failed: {status:?}");
        }
        took
    };
    // Warm up every path.
    for i in 0..50 {
        step(i);
        bare_step(i);
    }
    // Interleaved: a load that comes and goes weighs on every row alike.
    let (mut plugin_samples, mut bare_samples, mut shell_samples) =
        (Vec::new(), Vec::new(), Vec::new());
    let shell_every = PLUGIN_STEPS / SHELLS;
    for i in 0..PLUGIN_STEPS {
        plugin_samples.push(step(i));
        bare_samples.push(bare_step(i));
        if i % shell_every == 0 {
            shell_samples.push(shell());
        }
    }
    let plugin_p50 = report("plugin step (fresh instance, testbed echo)", plugin_samples);
    let bare_p50 = report("bare wasmtime instantiate + call (same)", bare_samples);
    let shell_p50 = report("sh -c true (spawn and wait)", shell_samples);
    println!(
        "a sandboxed step costs 1/{:.0} of a shell spawn and {:.2}x a bare wasmtime call (p50)",
        shell_p50.as_secs_f64() / plugin_p50.as_secs_f64(),
        plugin_p50.as_secs_f64() / bare_p50.as_secs_f64()
    );
}
