//! For `benches/sandbox.rs` only: the least any Wasmtime host pays to run
//! one step of a plugin, to set beside the agent's `PluginHost::run`.
//!
//! The same component, compiled by an engine with the agent's own
//! configuration (`engine::engine`: pooling allocator, epoch interruption,
//! its epoch ticker running) and linked with the same imports (WASI and the
//! host interface, which the component needs to instantiate at all). Each
//! call gets a fresh store with an empty WASI context, an epoch deadline,
//! instantiates from the pre-instantiated component and calls the same
//! `run` export with the same step. What the agent adds is left out: the
//! step permit, the memory limiter, the step's context for host calls (the
//! plugin's log line is dropped here), the events channel, the step
//! thread and its deadline watch, checking and redacting the outcome. Not
//! part of the agent's API.

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::{Engine, Store};

use super::bindings::{PluginPre, Step};
use super::limits::{Deadline, EpochTicker};
use super::state::HostState;
use super::{PluginHostError, StepLimits, engine};

/// A component ready to instantiate, bare.
pub struct Bare {
    engine: Engine,
    pre: PluginPre<HostState>,
    limits: StepLimits,
    _ticker: EpochTicker,
}

impl Bare {
    /// Compiles the component at `path` as the agent would with default
    /// limits (the engine's pool sized for them).
    pub fn new(path: &Path) -> Result<Bare, PluginHostError> {
        let limits = StepLimits::default();
        let engine = engine::engine(limits.memory)?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|e| PluginHostError::Engine(format!("starting the epoch ticker: {e}")))?;
        let linker = engine::linker(&engine)?;
        let compile_error = |message: String| PluginHostError::Compile {
            plugin: "bench".into(),
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|source| PluginHostError::Read {
            plugin: "bench".into(),
            path: path.to_path_buf(),
            source,
        })?;
        let component =
            Component::from_binary(&engine, &bytes).map_err(|e| compile_error(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| compile_error(format!("{e:#}")))?;
        Ok(Bare {
            engine,
            pre,
            limits,
            _ticker: ticker,
        })
    }

    /// One step on this thread: a fresh store, instantiate, call `run`.
    /// Returns the step's summary, or what went wrong.
    pub fn call(
        &self,
        step_id: &str,
        action: &str,
        params_json: &str,
        dry_run: bool,
    ) -> Result<String, String> {
        let (state, _stderr) = HostState::new(self.limits.memory, None);
        let mut store = Store::new(&self.engine, state);
        store.set_epoch_deadline(Deadline::starting_now(self.limits.deadline).ticks());
        let step = Step {
            id: step_id.to_string(),
            action: action.to_string(),
            params: params_json.to_string(),
            dry_run,
        };
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("{e:#}"))?;
        match instance.call_run(&mut store, &step) {
            Ok(Ok(outcome)) => Ok(outcome.summary),
            Ok(Err(error)) => Err(format!("{}: {}", error.code, error.message)),
            Err(e) => Err(format!("{e:#}")),
        }
    }
}
