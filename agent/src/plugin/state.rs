//! What a store holds while a plugin instance runs.
//!
//! Each step gets a fresh `Store<HostState>`: an empty WASI context (no
//! preopened directories, no environment, no arguments, no sockets, stdin
//! closed, stdout discarded, stderr captured in a small buffer so a panic
//! message can be reported), a memory limiter, and the step's context, which
//! is everything the host functions need to check and perform a call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc::UnboundedSender;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::HostError;
use super::caps::{Capabilities, Refusal};
use super::config::bytes_text;
use super::limits::{Deadline, MemoryLimiter, OutputBudget};
use super::secrets::{SecretStore, SubstituteError};
use super::{LogLevel, StepEvent};

/// Refusals per step logged at warn level in the agent's own log; the rest
/// go to debug (every one still reaches the coordinator, within the cap).
const LOGGED_DENIALS: u32 = 10;

/// Bytes of guest stderr kept for trap messages.
pub(crate) const STDERR_CAPTURE: usize = 16 * 1024;

/// The data of one store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    /// `None` while the plugin describes itself: host calls are refused then.
    pub(crate) step: Option<StepContext>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// A state with the sandbox's empty WASI context. Returns the stderr
    /// pipe too, to read after a trap.
    pub(crate) fn new(memory_cap: u64, step: Option<StepContext>) -> (Self, MemoryOutputPipe) {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        // `WasiCtx::builder()` starts empty: no preopens, env or args, stdin
        // closed, stdout discarded. Sockets are turned off explicitly, on top
        // of the default of denying every address.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_cap),
            step,
        };
        (state, stderr)
    }
}

/// Why the host stopped a step from inside a host call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The step's deadline passed.
    Deadline,
    /// The step's output went over the cap.
    OutputLimit,
    /// The caller gave up waiting for this instance (it was stuck in a WASI
    /// call that the deadline cannot interrupt).
    Abandoned,
}

impl StopReason {
    fn message(self) -> &'static str {
        match self {
            StopReason::Deadline => "the step's deadline passed",
            StopReason::OutputLimit => "the step's output went over its cap",
            StopReason::Abandoned => "the step was abandoned",
        }
    }
}

/// The error type of host calls that return `result<_, host-error>`: either
/// an answer for the guest, or a reason to stop the step (a trap).
#[derive(Debug)]
pub enum HostCallError {
    Guest(HostError),
    Stop(StopReason),
}

impl From<HostError> for HostCallError {
    fn from(e: HostError) -> Self {
        HostCallError::Guest(e)
    }
}

impl HostCallError {
    /// The trap for a stop; a guest error here is a bug turned into a trap.
    pub(crate) fn into_trap(self) -> wasmtime::Error {
        match self {
            HostCallError::Stop(reason) => wasmtime::Error::msg(reason.message()),
            HostCallError::Guest(e) => wasmtime::Error::msg(format!("host error: {e:?}")),
        }
    }
}

/// Where a step's events go: the caller's channel, until the caller closes
/// it. A step abandoned inside a stuck call must not keep the caller's
/// channel open, so the host keeps the sender here and can drop it.
#[derive(Debug, Clone)]
pub(crate) struct EventSink(Arc<Mutex<Option<UnboundedSender<StepEvent>>>>);

impl EventSink {
    pub(crate) fn new(sender: UnboundedSender<StepEvent>) -> Self {
        EventSink(Arc::new(Mutex::new(Some(sender))))
    }

    /// Sends if still open; a receiver that went away is not an error.
    pub(crate) fn send(&self, event: StepEvent) {
        let guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = guard.as_ref() {
            let _ = sender.send(event);
        }
    }

    /// Drops the sender: the caller's receiver ends once it has read what
    /// was sent.
    pub(crate) fn close(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// Everything host calls need during one step.
pub(crate) struct StepContext {
    pub(crate) plugin: String,
    pub(crate) step_id: String,
    pub(crate) caps: Arc<Capabilities>,
    pub(crate) secrets: SecretStore,
    pub(crate) dry_run: bool,
    pub(crate) deadline: Deadline,
    pub(crate) output: OutputBudget,
    pub(crate) events: EventSink,
    /// Named outputs, in the order emitted.
    pub(crate) outputs: Vec<(String, String)>,
    /// Set when the host stops the step from a host call.
    pub(crate) stop: Option<StopReason>,
    /// Calls refused so far.
    pub(crate) denials: u32,
    pub(crate) http: reqwest::Client,
    /// The agent's runtime, for the async work of host calls; they run on a
    /// step thread (`threads`) and `block_on` this handle.
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) abandoned: Arc<AtomicBool>,
}

impl StepContext {
    /// Records `reason` and returns the error that stops the step.
    pub(crate) fn stop(&mut self, reason: StopReason) -> HostCallError {
        if self.stop.is_none() {
            self.stop = Some(reason);
        }
        HostCallError::Stop(reason)
    }

    /// Fails if the step must not go on: abandoned, or past its deadline.
    pub(crate) fn check_alive(&mut self) -> Result<(), HostCallError> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(self.stop(StopReason::Abandoned));
        }
        if self.deadline.passed() {
            return Err(self.stop(StopReason::Deadline));
        }
        Ok(())
    }

    /// Charges output; stops the step once it passes the cap.
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), HostCallError> {
        if self.output.charge(bytes) {
            Ok(())
        } else {
            Err(self.stop(StopReason::OutputLimit))
        }
    }

    /// The failure message of an output-limit stop.
    pub(crate) fn output_message(&self) -> String {
        format!(
            "plugin {} produced more than {} of log, progress, emitted and returned output (its cap)",
            self.plugin,
            bytes_text(self.output.cap)
        )
    }

    /// Sends an event to the coordinator, with every secret value redacted.
    /// A closed channel (nobody listening any more) is not an error.
    pub(crate) fn send(&self, event: StepEvent) {
        let event = match event {
            StepEvent::Log { level, message } => StepEvent::Log {
                level,
                message: self.secrets.redact(&message),
            },
            StepEvent::Progress {
                done,
                total,
                message,
            } => StepEvent::Progress {
                done,
                total,
                message: self.secrets.redact(&message),
            },
            StepEvent::Emit { name, value_json } => StepEvent::Emit {
                name: self.secrets.redact(&name),
                value_json: self.secrets.redact(&value_json),
            },
        };
        self.events.send(event);
    }

    /// Refuses a call: tells the guest `denied(message)`, and tells the
    /// coordinator (a warning event) and the agent's log. The warning counts
    /// against the output cap, so a plugin cannot flood the coordinator by
    /// making refused calls in a loop; past the cap the step is stopped.
    pub(crate) fn deny(&mut self, message: String) -> HostCallError {
        let message = self.secrets.redact(&message);
        self.denials = self.denials.saturating_add(1);
        if self.denials <= LOGGED_DENIALS {
            tracing::warn!(plugin = %self.plugin, step_id = %self.step_id, "refused: {message}");
        } else {
            tracing::debug!(plugin = %self.plugin, step_id = %self.step_id, "refused: {message}");
        }
        let warning = format!("host refused: {message}");
        if let Err(stop) = self.charge(warning.len()) {
            return stop;
        }
        self.send(StepEvent::Log {
            level: LogLevel::Warn,
            message: warning,
        });
        HostCallError::Guest(HostError::Denied(message))
    }

    /// A capability refusal as the guest sees it.
    pub(crate) fn refuse(&mut self, refusal: Refusal) -> HostCallError {
        match refusal {
            Refusal::Denied(message) => self.deny(message),
            Refusal::Invalid(message) => self.invalid(message),
        }
    }

    /// A secret that could not be filled in.
    pub(crate) fn secret_refusal(&mut self, error: SubstituteError) -> HostCallError {
        match error {
            SubstituteError::NotGranted(name) => {
                let message = format!("secret {name} is not granted to plugin {}", self.plugin);
                self.deny(message)
            }
            SubstituteError::Missing(name) => {
                self.failed(format!("secret {name} is not configured on this agent"))
            }
        }
    }

    /// Fills in `${secret:NAME}` for secrets this plugin is granted.
    pub(crate) fn substitute(&mut self, text: &str) -> Result<String, HostCallError> {
        let caps = &self.caps;
        match self
            .secrets
            .substitute(text, |name| caps.secret_granted(name))
        {
            Ok(filled) => Ok(filled),
            Err(e) => Err(self.secret_refusal(e)),
        }
    }

    /// `substitute` over bytes.
    pub(crate) fn substitute_bytes(&mut self, bytes: &[u8]) -> Result<Vec<u8>, HostCallError> {
        let caps = &self.caps;
        match self
            .secrets
            .substitute_bytes(bytes, |name| caps.secret_granted(name))
        {
            Ok(filled) => Ok(filled),
            Err(e) => Err(self.secret_refusal(e)),
        }
    }

    /// A guest-visible failure, redacted.
    pub(crate) fn failed(&self, message: String) -> HostCallError {
        HostCallError::Guest(HostError::Failed(self.secrets.redact(&message)))
    }

    /// A guest-visible timeout, redacted.
    pub(crate) fn timed_out(&self, message: String) -> HostCallError {
        HostCallError::Guest(HostError::Timeout(self.secrets.redact(&message)))
    }

    /// A guest-visible invalid request, redacted.
    pub(crate) fn invalid(&self, message: String) -> HostCallError {
        HostCallError::Guest(HostError::Invalid(self.secrets.redact(&message)))
    }
}
