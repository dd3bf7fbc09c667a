//! The `testbed` plugin: a deliberately misbehaving plugin.
//!
//! The agent's sandbox tests load it to prove that a plugin which loops,
//! allocates without bound, recurses, panics, floods its output or calls
//! what it was not granted is stopped or refused with a clear error, and
//! that the agent carries on afterwards (`echo`). Never grant it anything in
//! production.

use std::hint::black_box;

use backout_plugin_sdk::host::{self, ExecRequest, HttpRequest};
use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

struct Testbed;

impl Plugin for Testbed {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "testbed",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves on purpose, for sandbox tests. Never grant it anything.",
        )
        .action("spin", "Loops forever.", false)
        .action("grow-memory", "Allocates without bound.", false)
        .action("recurse", "Recurses without bound.", false)
        .action(
            "exec",
            "Runs params.program with params.args through the host.",
            true,
        )
        .action(
            "http",
            "Sends params.method (GET) to params.url through the host.",
            true,
        )
        .action("read", "Reads params.path through the host.", false)
        .action(
            "write",
            "Writes params.contents to params.path through the host.",
            true,
        )
        .action("echo", "Returns its parameters as data.", false)
        .action(
            "spam",
            "Logs and emits large output (or makes refused calls) in a loop.",
            false,
        )
        .action("sleep", "Sleeps params.ms through the host.", false)
        .action(
            "wasi-sleep",
            "Sleeps params.ms through WASI's clock, which the host cannot interrupt.",
            false,
        )
        .action(
            "env",
            "Reports the environment, arguments and files WASI gives it.",
            false,
        )
        .action("panic", "Panics.", false)
        .action(
            "granted",
            "Asks the host whether it grants params.kind params.value.",
            false,
        )
    }

    /// One optional need, granted nowhere by the tests unless they mean to:
    /// the agent loads the testbed without it and logs that it is missing.
    fn needs() -> Vec<Need> {
        vec![Need::url("http://optional.invalid/", "a proxy it can do without").optional()]
    }

    fn schema() -> Schema {
        // `echo` takes any JSON and declares nothing; the rest take no
        // parameters or the ones below.
        ["spin", "grow-memory", "recurse", "env", "panic"]
            .into_iter()
            .fold(Schema::new(), |s, action| s.action_without_params(action))
            .action::<ExecParams>("exec")
            .action::<HttpParams>("http")
            .action::<ReadParams>("read")
            .action::<WriteParams>("write")
            .action::<SpamParams>("spam")
            .action::<SleepParams>("sleep")
            .action::<SleepParams>("wasi-sleep")
            .action::<GrantedParams>("granted")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        match step.action.as_str() {
            "spin" => spin(),
            "grow-memory" => grow_memory(),
            "recurse" => Ok(Outcome::new("recursed", json!({ "depth": recurse(0) }))),
            "exec" => exec(&step),
            "http" => http(&step),
            "read" => read(&step),
            "write" => write(&step),
            "echo" => echo(&step),
            "spam" => spam(&step),
            "sleep" => sleep(&step),
            "wasi-sleep" => wasi_sleep(&step),
            "env" => Ok(env()),
            "panic" => panic!("testbed panicked on purpose"),
            "granted" => granted(&step),
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(Testbed);

/// Loops until the host stops the instance. `black_box` keeps the compiler
/// from proving the loop has no effect and removing it.
fn spin() -> Result<Outcome, PluginError> {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
        if black_box(counter) == 0 {
            return Ok(Outcome::new("wrapped", json!({})));
        }
    }
}

/// Allocates and touches 1 MiB blocks until growth is refused (the Rust
/// allocator then aborts, which traps).
fn grow_memory() -> Result<Outcome, PluginError> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(black_box(vec![1u8; 1024 * 1024]));
        if black_box(blocks.len()) == usize::MAX {
            return Ok(Outcome::new("impossible", json!({})));
        }
    }
}

/// Recurses with a 1 KiB frame until the stack runs out.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse(depth + 1);
    black_box(below.wrapping_add(u64::from(frame[(depth % 1024) as usize])))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExecParams {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<(String, String)>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u32>,
    #[serde(default)]
    stdin: Option<String>,
}

fn exec(step: &Step) -> Result<Outcome, PluginError> {
    let p: ExecParams = step.params()?;
    let mut request = ExecRequest::new(p.program.clone(), p.args);
    request.env = p.env;
    request.cwd = p.cwd;
    request.timeout_ms = p.timeout_ms;
    request.stdin = p.stdin.map(String::into_bytes);
    let output = request.run()?;
    Ok(Outcome::new(
        format!("{} exited with {:?}", p.program, output.exit_code),
        json!({
            "exit_code": output.exit_code,
            "stdout": output.stdout_text(),
            "stderr": output.stderr_text(),
        }),
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HttpParams {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u32>,
}

fn http(step: &Step) -> Result<Outcome, PluginError> {
    let p: HttpParams = step.params()?;
    let mut request = HttpRequest::new(p.method.unwrap_or_else(|| "GET".to_string()), p.url);
    request.headers = p.headers;
    request.body = p.body.map(String::into_bytes);
    request.timeout_ms = p.timeout_ms;
    let response = request.send()?;
    Ok(Outcome::new(
        format!("HTTP {}", response.status),
        json!({
            "status": response.status,
            "headers": response.headers,
            "body": response.text(),
        }),
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    path: String,
    #[serde(default = "default_max_bytes")]
    max_bytes: u64,
    #[serde(default)]
    from_end: bool,
}

fn default_max_bytes() -> u64 {
    1024 * 1024
}

fn read(step: &Step) -> Result<Outcome, PluginError> {
    let p: ReadParams = step.params()?;
    let bytes = host::read_file(&p.path, p.max_bytes, p.from_end)?;
    Ok(Outcome::new(
        format!("read {} bytes", bytes.len()),
        json!({ "contents": String::from_utf8_lossy(&bytes) }),
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteParams {
    path: String,
    contents: String,
    #[serde(default)]
    append: bool,
}

fn write(step: &Step) -> Result<Outcome, PluginError> {
    let p: WriteParams = step.params()?;
    host::write_file(&p.path, p.contents.as_bytes(), p.append)?;
    Ok(Outcome::new(
        format!("wrote {} bytes", p.contents.len()),
        json!({ "written": p.contents.len() }),
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GrantedParams {
    /// `program`, `url`, `read`, `write` or `secret`.
    kind: String,
    /// What; empty: some grant of this kind.
    #[serde(default)]
    value: String,
}

fn granted(step: &Step) -> Result<Outcome, PluginError> {
    let p: GrantedParams = step.params()?;
    let granted = host::granted(&p.kind, &p.value);
    Ok(Outcome::new(
        format!("{} `{}` granted: {granted}", p.kind, p.value),
        json!({ "kind": p.kind, "value": p.value, "granted": granted }),
    ))
}

fn echo(step: &Step) -> Result<Outcome, PluginError> {
    let params: Value = step.params()?;
    host::log_info("echo");
    Ok(Outcome::new(
        format!("echo (dry-run: {})", step.dry_run),
        params,
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SpamParams {
    /// Bytes per log line and per emitted value.
    #[serde(default = "default_chunk")]
    chunk: usize,
    /// How many rounds; without it, until the host stops the step.
    #[serde(default)]
    rounds: Option<u64>,
    /// Instead of logging, make refused host calls (each one a warning the
    /// host sends to the coordinator).
    #[serde(default)]
    refused: bool,
}

fn default_chunk() -> usize {
    64 * 1024
}

fn spam(step: &Step) -> Result<Outcome, PluginError> {
    let p: SpamParams = step.params()?;
    let line = "x".repeat(p.chunk);
    let value = Value::String(line.clone()).to_string();
    let mut round: u64 = 0;
    while p.rounds.is_none_or(|rounds| round < rounds) {
        if p.refused {
            let _ = ExecRequest::new("/bin/false", ["never", "granted"]).run();
        } else {
            host::log_info(&line);
            host::emit("spam", &value);
        }
        round += 1;
    }
    Ok(Outcome::new(
        format!("spammed {round} rounds"),
        json!({ "rounds": round }),
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SleepParams {
    ms: u32,
}

fn sleep(step: &Step) -> Result<Outcome, PluginError> {
    let p: SleepParams = step.params()?;
    host::sleep(p.ms)?;
    Ok(Outcome::new(
        format!("slept {} ms", p.ms),
        json!({ "ms": p.ms }),
    ))
}

/// Sleeps in WASI (`wasi:clocks` and `wasi:io/poll`) rather than through the
/// host interface: the one way a guest can block where epochs do not reach.
fn wasi_sleep(step: &Step) -> Result<Outcome, PluginError> {
    let p: SleepParams = step.params()?;
    std::thread::sleep(std::time::Duration::from_millis(u64::from(p.ms)));
    Ok(Outcome::new(
        format!("slept {} ms in WASI", p.ms),
        json!({ "ms": p.ms }),
    ))
}

/// Reports what WASI itself offers the plugin: it must be nothing (no
/// variables, no arguments, no files, no working directory).
fn env() -> Outcome {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let args: Vec<String> = std::env::args().collect();
    let file = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("read {} bytes", text.len()),
        Err(e) => format!("error: {e}"),
    };
    let cwd = match std::env::current_dir() {
        Ok(dir) => dir.display().to_string(),
        Err(e) => format!("error: {e}"),
    };
    Outcome::new(
        format!("{} variables, {} arguments", vars.len(), args.len()),
        json!({ "vars": vars, "args": args, "etc_passwd": file, "cwd": cwd }),
    )
}
