//! Running one step in a fresh instance, and turning how it ended into a
//! `StepOutcome` with a stable failure code.
//!
//! This runs on a step thread (`threads`: sync WASI and blocking host calls
//! must not run on the async runtime). The store is dropped at the end, which
//! returns the instance's slot to the pool; a trapped instance is never
//! entered again.

use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::bindings::Step;
use super::config::bytes_text;
use super::state::{HostState, StepContext, StopReason};
use super::{LoadedPlugin, StepOutcome, StepRequest, codes};

/// Most bytes of guest stderr quoted in a trap message.
const STDERR_IN_MESSAGE: usize = 4096;
/// Longest plugin error code passed on; codes are meant to be short.
const MAX_CODE: usize = 64;

/// Instantiates `plugin`, runs `request` in it and classifies the result.
/// The request's text is moved into the call, not copied.
pub(crate) fn run_step(
    engine: &Engine,
    plugin: &LoadedPlugin,
    request: StepRequest,
    ctx: StepContext,
) -> StepOutcome {
    let deadline = ctx.deadline;
    let (state, stderr) = HostState::new(plugin.limits.memory, Some(ctx));
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // The epoch deadline is counted from now, in ticks of the engine's
    // background ticker; host calls check the exact deadline themselves.
    store.set_epoch_deadline(deadline.ticks());

    let step = Step {
        id: request.step_id,
        action: request.action,
        params: request.params_json,
        dry_run: request.dry_run,
    };
    let result = plugin
        .pre
        .instantiate(&mut store)
        .and_then(|instance| instance.call_run(&mut store, &step));

    match result {
        Ok(Ok(outcome)) => succeeded(&mut store, plugin, outcome.summary, outcome.data),
        Ok(Err(error)) => plugin_failed(&mut store, error.code, error.message),
        Err(error) => trapped(&store, plugin, &error, &stderr),
    }
}

fn ctx_mut(store: &mut Store<HostState>) -> Option<&mut StepContext> {
    store.data_mut().step.as_mut()
}

fn succeeded(
    store: &mut Store<HostState>,
    plugin: &LoadedPlugin,
    summary: String,
    data: String,
) -> StepOutcome {
    let Some(ctx) = ctx_mut(store) else {
        return StepOutcome::failed(codes::HOST, "the step lost its context");
    };
    if !ctx.output.charge(summary.len().saturating_add(data.len())) {
        return StepOutcome::failed(codes::OUTPUT_LIMIT, ctx.output_message());
    }
    let data = if data.trim().is_empty() {
        "null".to_string()
    } else {
        data
    };
    // Checked, not built: the text goes on as it is.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&data) {
        return StepOutcome::failed(
            codes::BAD_OUTCOME,
            format!("plugin {} returned data that is not JSON: {e}", plugin.name),
        );
    }
    StepOutcome::Succeeded {
        summary: ctx.secrets.redact_owned(summary),
        data_json: ctx.secrets.redact_owned(data),
        outputs: std::mem::take(&mut ctx.outputs),
    }
}

fn plugin_failed(store: &mut Store<HostState>, code: String, message: String) -> StepOutcome {
    let Some(ctx) = ctx_mut(store) else {
        return StepOutcome::failed(codes::HOST, "the step lost its context");
    };
    if !ctx.output.charge(code.len().saturating_add(message.len())) {
        return StepOutcome::failed(codes::OUTPUT_LIMIT, ctx.output_message());
    }
    let code: String = code.chars().take(MAX_CODE).collect();
    let code = if code.trim().is_empty() {
        "failed".to_string()
    } else {
        code
    };
    StepOutcome::Failed {
        code: ctx.secrets.redact(&code),
        message: ctx.secrets.redact(&message),
    }
}

/// Names why the instance stopped. Order matters: a stop decided by the
/// host (deadline, output) is the cause even if the trap that followed looks
/// like something else; a refused memory growth explains the abort that a
/// Rust guest does next.
fn trapped(
    store: &Store<HostState>,
    plugin: &LoadedPlugin,
    error: &wasmtime::Error,
    stderr: &MemoryOutputPipe,
) -> StepOutcome {
    let state = store.data();
    let Some(ctx) = state.step.as_ref() else {
        return StepOutcome::failed(codes::HOST, "the step lost its context");
    };
    let trap = error.downcast_ref::<Trap>().copied();
    match ctx.stop {
        Some(StopReason::Deadline) | Some(StopReason::Abandoned) => {
            return StepOutcome::failed(codes::DEADLINE, ctx.deadline.message());
        }
        Some(StopReason::OutputLimit) => {
            return StepOutcome::failed(codes::OUTPUT_LIMIT, ctx.output_message());
        }
        None => {}
    }
    if trap == Some(Trap::Interrupt) {
        return StepOutcome::failed(codes::DEADLINE, ctx.deadline.message());
    }
    if let Some(asked) = state.limiter.refused() {
        return StepOutcome::failed(
            codes::MEMORY,
            format!(
                "plugin {} needed more memory than its cap of {} (it asked for {} bytes)",
                plugin.name,
                bytes_text(plugin.limits.memory),
                asked
            ),
        );
    }

    let stderr = guest_stderr(stderr);
    let name = &plugin.name;
    let mut message = match (trap, error.downcast_ref::<I32Exit>()) {
        (_, Some(exit)) => format!("plugin {name} exited with status {}", exit.0),
        (Some(Trap::StackOverflow), _) => {
            format!("plugin {name} overflowed its call stack (unbounded recursion?)")
        }
        (Some(Trap::MemoryOutOfBounds), _) => format!(
            "plugin {name} trapped: out of bounds memory access (a Rust plugin that overruns its \
             stack, e.g. by unbounded recursion, ends this way)"
        ),
        // A Rust panic aborts with `unreachable`; its message is on stderr.
        (Some(Trap::UnreachableCodeReached), _) if stderr.contains("panicked at") => {
            let panic = stderr_panic(&stderr);
            format!("plugin {name} panicked: {panic}")
        }
        (Some(trap), _) => format!("plugin {name} trapped: {}", trap_text(trap)),
        (None, _) => format!("plugin {name} failed: {}", first_line(error)),
    };
    if !stderr.is_empty() && !message.contains("panicked:") {
        message.push_str("; stderr: ");
        message.push_str(&stderr);
    }
    StepOutcome::failed(codes::TRAP, ctx.secrets.redact(&message))
}

/// What the guest wrote to stderr, without Rust's hint about backtraces
/// (there are none to display in a plugin), and only its last
/// `STDERR_IN_MESSAGE` bytes, where a panic message would be.
fn guest_stderr(stderr: &MemoryOutputPipe) -> String {
    let text = String::from_utf8_lossy(&stderr.contents())
        .lines()
        .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim();
    if text.len() <= STDERR_IN_MESSAGE {
        return text.to_string();
    }
    let mut start = text.len() - STDERR_IN_MESSAGE;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// A panic report (`thread '…' panicked at src/lib.rs:52:24:\nmessage`) as
/// `message (at src/lib.rs:52:24)`.
fn stderr_panic(stderr: &str) -> String {
    let Some(at) = stderr.find("panicked at ") else {
        return stderr.to_string();
    };
    let rest = &stderr[at + "panicked at ".len()..];
    match rest.split_once(":\n") {
        Some((location, message)) => format!("{} (at {location})", message.trim()),
        None => rest.trim().to_string(),
    }
}

/// A trap's description without Wasmtime's "wasm trap: " prefix.
fn trap_text(trap: Trap) -> String {
    let text = trap.to_string();
    text.strip_prefix("wasm trap: ")
        .unwrap_or(&text)
        .to_string()
}

/// The error's message without Wasmtime's multi-line backtrace.
fn first_line(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    text.lines().next().unwrap_or_default().to_string()
}
