//! The host side of the `host` interface: every call a plugin can make.
//!
//! Each call first checks that the step may go on (not abandoned, not past
//! its deadline), then the plugin's capabilities, then does the work bounded
//! by the remaining deadline. Refusals go back to the guest as
//! `host-error::denied` and to the coordinator as a warning event. Anything
//! that leaves the sandbox towards the coordinator is redacted of secret
//! values; anything that comes back to the guest from outside (HTTP
//! responses, program output) is too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backout_config::logging::TRACES_ONLY;

use super::bindings::backout::plugin::{host, types};
use super::bindings::{ExecOutput, ExecRequest, HostError, HttpRequest, HttpResponse, Level};
use super::state::{HostCallError, HostState, StepContext, StopReason};
use super::{LogLevel, StepEvent, exec, files, http};

impl From<Level> for LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }
}

/// The message a guest gets for a host call made while it describes itself.
fn not_now() -> HostCallError {
    HostCallError::Guest(HostError::Failed(
        "host calls are not available while a plugin describes itself".into(),
    ))
}

impl HostState {
    /// The step context, for calls that act on the outside world.
    fn step_mut(&mut self) -> Result<&mut StepContext, HostCallError> {
        let ctx = self.step.as_mut().ok_or_else(not_now)?;
        ctx.check_alive()?;
        Ok(ctx)
    }

    /// Streams one event after charging its bytes to the output budget.
    /// During `describe` there is nobody to stream to and events are dropped.
    fn stream(&mut self, bytes: usize, event: StepEvent) -> wasmtime::Result<()> {
        let Some(ctx) = self.step.as_mut() else {
            return Ok(());
        };
        ctx.check_alive().map_err(HostCallError::into_trap)?;
        ctx.charge(bytes).map_err(HostCallError::into_trap)?;
        ctx.send(event);
        Ok(())
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let bytes = message.len();
        self.stream(
            bytes,
            StepEvent::Log {
                level: level.into(),
                message,
            },
        )
    }

    fn progress(&mut self, done: u32, total: u32, message: String) -> wasmtime::Result<()> {
        let bytes = message.len();
        self.stream(
            bytes,
            StepEvent::Progress {
                done,
                total,
                message,
            },
        )
    }

    fn emit(&mut self, name: String, value: String) -> wasmtime::Result<()> {
        let bytes = name.len().saturating_add(value.len());
        // An output is JSON text; anything else is kept as a JSON string so
        // the coordinator never stores an unparseable value.
        let value_json = if serde_json::from_str::<serde_json::Value>(&value).is_ok() {
            value
        } else {
            serde_json::Value::String(value).to_string()
        };
        self.stream(
            bytes,
            StepEvent::Emit {
                name: name.clone(),
                value_json: value_json.clone(),
            },
        )?;
        if let Some(ctx) = self.step.as_mut() {
            let name = ctx.secrets.redact(&name);
            let value_json = ctx.secrets.redact(&value_json);
            ctx.outputs.push((name, value_json));
        }
        Ok(())
    }

    // Each call that reaches outside the sandbox is a span: a trace shows
    // the plugin's host calls under its step.
    fn http(&mut self, request: HttpRequest) -> Result<HttpResponse, HostCallError> {
        let _span = tracing::info_span!(target: TRACES_ONLY, "host.http").entered();
        http::call(self.step_mut()?, request)
    }

    fn exec(&mut self, request: ExecRequest) -> Result<ExecOutput, HostCallError> {
        let _span = tracing::info_span!(target: TRACES_ONLY, "host.exec").entered();
        exec::run(self.step_mut()?, request)
    }

    fn read_file(
        &mut self,
        path: String,
        max_bytes: u64,
        from_end: bool,
    ) -> Result<Vec<u8>, HostCallError> {
        let _span = tracing::info_span!(target: TRACES_ONLY, "host.read-file").entered();
        files::read(self.step_mut()?, &path, max_bytes, from_end)
    }

    fn write_file(
        &mut self,
        path: String,
        contents: Vec<u8>,
        append: bool,
    ) -> Result<(), HostCallError> {
        let _span = tracing::info_span!(target: TRACES_ONLY, "host.write-file").entered();
        files::write(self.step_mut()?, &path, &contents, append)
    }

    fn sleep(&mut self, ms: u32) -> Result<(), HostCallError> {
        let ctx = self.step_mut()?;
        let wanted = Duration::from_millis(u64::from(ms));
        let remaining = ctx.deadline.remaining();
        if wanted <= remaining {
            std::thread::sleep(wanted);
            Ok(())
        } else {
            // Sleeping past the deadline would only delay the inevitable:
            // sleep until it, then stop the step there.
            std::thread::sleep(remaining);
            Err(ctx.stop(StopReason::Deadline))
        }
    }

    fn now(&mut self) -> wasmtime::Result<u64> {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Ok(ms)
    }

    fn granted(&mut self, kind: String, value: String) -> wasmtime::Result<bool> {
        // While the plugin describes itself there are no grants to ask about.
        let Some(ctx) = self.step.as_ref() else {
            return Ok(false);
        };
        let secrets = &ctx.secrets;
        Ok(super::needs::granted(
            &ctx.caps,
            &|name| secrets.contains(name),
            &kind,
            &value,
        ))
    }

    fn convert_host_error(&mut self, err: HostCallError) -> wasmtime::Result<HostError> {
        match err {
            HostCallError::Guest(e) => Ok(e),
            stop @ HostCallError::Stop(_) => Err(stop.into_trap()),
        }
    }
}

/// The `types` interface has no functions; the trait is empty.
impl types::Host for HostState {}
