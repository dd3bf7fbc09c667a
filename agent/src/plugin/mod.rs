//! The plugin host: runs steps in sandboxed WebAssembly components.
//!
//! A plugin is a component implementing the `backout:plugin@0.1.1` world
//! (or 0.1.0, served from the same semver track)
//! (`wit/plugin.wit`). It has no ambient authority: it gets an empty WASI
//! context (no files, no environment, no arguments, no sockets), and
//! everything it does to the outside world goes through the host interface,
//! where each call is checked against the capabilities the agent's
//! configuration grants that plugin (`caps`). Named secrets are filled in at
//! the boundary and redacted from everything that comes back (`secrets`).
//!
//! Each step runs in a fresh instance with three limits (`limits`): a
//! wall-clock deadline (epoch interruption for guest code, explicit bounds
//! in host calls), a memory cap, and an output cap. How a step ended is
//! reported as a `StepOutcome`; the failures the host itself produces have
//! stable codes (see [`codes`]).
//!
//! Code map: `bindings` (the one `bindgen!`), `config` (configuration
//! types), `caps` (capability checks), `secrets`, `limits`, `state` (store
//! data), `host_impl` (the host interface) with `http`, `exec` and `files`,
//! `engine` (engine, linker, compilation), `run` (one step), `threads` (the
//! threads steps run on).

/// For the sandbox benchmark only (`benches/sandbox.rs`): a bare Wasmtime
/// instantiate + call of a plugin with the agent's engine configuration.
#[doc(hidden)]
pub mod bench_support;
mod bindings;
mod caps;
mod config;
mod engine;
mod exec;
mod files;
mod host_impl;
mod http;
mod limits;
mod needs;
mod run;
mod secrets;
mod state;
mod threads;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use backout_tls::stamp;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;
use wasmtime::Engine;
use wasmtime::component::Linker;

pub use caps::GrantError;
pub use config::{
    ByteSize, DEFAULT_DEADLINE, DEFAULT_MEMORY, DEFAULT_OUTPUT, Grants, LimitsError, MAX_DEADLINE,
    MAX_MEMORY, PluginConfig, StepLimits, StepLimitsConfig,
};
pub use needs::Need;
pub use secrets::{SecretError, SecretSource, SecretStore, SubstituteError};

use bindings::PluginPre;
use caps::Capabilities;
use limits::{Deadline, EpochTicker, OutputBudget};
use state::{EventSink, HostState, StepContext};
use threads::StepThreads;

/// Failure codes produced by the host itself. Plugins return their own
/// codes (`bad-params`, `unknown-action`, ...), which are passed on.
pub mod codes {
    /// The step ran past its deadline (guest code interrupted, or a host
    /// call reached it). Message: "stopped at its deadline of 2s".
    pub const DEADLINE: &str = backout_proto::codes::DEADLINE;
    /// The plugin tried to grow a memory past its cap. The message names
    /// the cap.
    pub const MEMORY: &str = "memory";
    /// The step's log, progress, emitted and returned bytes passed the cap.
    pub const OUTPUT_LIMIT: &str = "output-limit";
    /// Any other trap: a panic (its message, from stderr, is included), a
    /// stack overflow, an out-of-bounds access...
    pub const TRAP: &str = "trap";
    /// The plugin returned data that is not JSON.
    pub const BAD_OUTCOME: &str = "bad-outcome";
    /// The host itself failed (a bug, or the host shutting down).
    pub const HOST: &str = "host";
    /// The step names an action the plugin's `describe` does not list; the
    /// plugin was not called.
    pub const UNKNOWN_ACTION: &str = "unknown-action";
}

/// How long past a step's deadline the host waits for an instance stuck in
/// a WASI call (which epochs cannot interrupt) before abandoning it.
const ABANDON_GRACE: Duration = Duration::from_secs(2);
/// Versions of one plugin kept compiled besides the current one.
const CACHE_VERSIONS: usize = 4;

/// The lowercase hex SHA-256 of `bytes`: how plugins are pinned.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One step to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRequest {
    pub step_id: String,
    pub action: String,
    /// Parameters as JSON text.
    pub params_json: String,
    /// The plugin must change nothing; the host refuses writes, exec (but
    /// `grants.dry_run_programs`) and HTTP methods other than GET and HEAD.
    pub dry_run: bool,
    /// The deadline the command asks for; never longer than the plugin's
    /// configured deadline, which applies when this is `None`.
    pub deadline: Option<Duration>,
}

/// Level of a log event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// Something a running step reports live. Secret values are redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEvent {
    Log {
        level: LogLevel,
        message: String,
    },
    Progress {
        done: u32,
        total: u32,
        message: String,
    },
    Emit {
        name: String,
        value_json: String,
    },
}

/// How a step ended. Secret values are redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Succeeded {
        summary: String,
        data_json: String,
        /// Every `emit`, in order: (name, JSON value).
        outputs: Vec<(String, String)>,
    },
    Failed {
        /// A plugin's own code, or one of [`codes`].
        code: String,
        message: String,
    },
}

impl StepOutcome {
    pub(crate) fn failed(code: &str, message: impl Into<String>) -> Self {
        StepOutcome::Failed {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// What the plugin file at `path` says about itself (`describe`, `needs`,
/// `schema`), without an agent: how `backout plan check --plugins DIR` reads
/// plugin files. It runs in the same sandbox with nothing granted.
pub fn describe_file(name: &str, path: &Path) -> Result<PluginInfo, PluginHostError> {
    let limits = StepLimits::default();
    let engine = engine::engine(limits.memory)?;
    let linker = engine::linker(&engine)?;
    // A plugin that loops in `describe` is stopped at its deadline.
    let _ticker = EpochTicker::start(&engine)
        .map_err(|e| PluginHostError::Engine(format!("starting the epoch ticker: {e}")))?;
    let bytes = std::fs::read(path).map_err(|source| PluginHostError::Read {
        plugin: name.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(engine::compile(&engine, &linker, name, path, &bytes, &limits)?.info)
}

/// What the agent tells the coordinator about a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The configured name.
    pub name: String,
    pub version: String,
    pub description: String,
    /// Hex SHA-256 of the component file.
    pub sha256: String,
    /// Action names.
    pub actions: Vec<String>,
    /// Actions with their descriptions.
    pub action_info: Vec<ActionInfo>,
    /// The `schema` export's JSON (`{"actions": {...}}`); empty when the
    /// plugin declares none.
    pub schema_json: String,
    /// What the plugin says it needs (`needs`), each with whether this
    /// agent grants it (unset when the file is described on its own).
    pub needs: Vec<Need>,
}

/// One action of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInfo {
    pub name: String,
    pub description: String,
    pub changes_state: bool,
}

/// A compiled plugin, ready to run steps.
pub struct LoadedPlugin {
    pub name: String,
    pub path: PathBuf,
    /// Hex SHA-256 of the bytes compiled.
    pub sha256: String,
    pub info: PluginInfo,
    pub limits: StepLimits,
    pre: PluginPre<HostState>,
    caps: Arc<Capabilities>,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("version", &self.info.version)
            .finish_non_exhaustive()
    }
}

/// Why the plugin host could not start, or load a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginHostError {
    #[error("plugin `{plugin}`: {source}")]
    Grants { plugin: String, source: GrantError },
    #[error("plugin `{plugin}`: [plugin.limits]: {source}")]
    Limits { plugin: String, source: LimitsError },
    #[error("[limits]: {0}")]
    DefaultLimits(LimitsError),
    #[error("plugin `{0}` is configured twice")]
    Duplicate(String),
    #[error("plugin `{plugin}`: cannot read {}: {source}", path.display())]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin `{plugin}`: {} is not a valid plugin component: {message}", path.display())]
    Compile {
        plugin: String,
        path: PathBuf,
        message: String,
    },
    #[error("plugin `{plugin}`: {message}")]
    Describe { plugin: String, message: String },
    #[error("the plugin engine cannot start: {0}")]
    Engine(String),
    #[error(
        "plugin `{plugin}` needs what its [plugin.grants] do not give (or a granted secret this agent has no value for in [secrets]): {missing}; grant and configure them, or remove the plugin"
    )]
    Needs {
        plugin: String,
        missing: String,
        /// The file's sha256: the plugin is disabled, not the agent stopped.
        sha256: String,
    },
}

/// Why `resolve` refused a plugin.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no plugin named `{0}` is configured on this agent")]
    UnknownPlugin(String),
    #[error("plugin `{plugin}`: the command pins sha256 {expected}, the file here is {actual}")]
    HashMismatch {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Load(#[from] PluginHostError),
    #[error("plugin `{plugin}` is disabled: its file failed to load ({error})")]
    Disabled { plugin: String, error: String },
    /// From [`PluginHost::resolve_without_reading`] only: the answer needs
    /// the file read (and maybe compiled); ask [`PluginHost::resolve`].
    #[error("plugin `{0}`: its file must be read again before it can be used")]
    NeedsReading(String),
}

/// Whether resolving a plugin may read, hash and compile its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Allowed,
    Refused,
}

/// What a reload ([`PluginHost::reload`]) did to one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The file is the one loaded.
    Unchanged,
    /// A new or changed file, compiled and serving now.
    Loaded { sha256: String },
    /// The file failed to load: the plugin is disabled until it loads.
    Disabled { error: String },
    /// Its `[[plugin]]` entry is gone from the configuration: unloaded.
    Removed,
}

/// Runs plugin steps. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost")
            .field("plugins", &self.inner.slots().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    secrets: SecretStore,
    http: reqwest::Client,
    /// Replaced whole when a reload changes the `[[plugin]]` entries.
    plugins: RwLock<Arc<BTreeMap<String, Arc<Slot>>>>,
    /// `[[plugin]]` entries added by a reload whose plugin failed to
    /// load: name -> (sha256 of its file, or empty; why).
    failed: Mutex<BTreeMap<String, (String, String)>>,
    /// The agent-wide step limits, for plugins added by a reload.
    defaults: StepLimits,
    /// The engine's memory cap: a plugin added later may not ask for more.
    max_memory: u64,
    /// One permit per pool slot: steps beyond it wait rather than fail.
    permits: Arc<Semaphore>,
    /// Bumped when a reload changed what the plugins are (sessions then
    /// tell the coordinator again).
    changed: tokio::sync::watch::Sender<u64>,
    /// The threads steps run on, kept between steps.
    threads: StepThreads,
    /// Dropped last: stops the epoch thread.
    _ticker: EpochTicker,
}

/// One configured plugin: its grants and limits, the version loaded now,
/// and other versions compiled before (keyed by sha256).
struct Slot {
    config: PluginConfig,
    caps: Arc<Capabilities>,
    limits: StepLimits,
    current: Mutex<Arc<LoadedPlugin>>,
    cache: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    /// The file's stamp when it was last hashed, and its hash.
    hashed: Mutex<Option<(stamp::FileStamp, String)>>,
    /// Set by a reload whose file failed to load: that file's sha256 and
    /// why. Steps of that file are refused until a file loads again.
    disabled: Mutex<Option<(String, String)>>,
}

impl PluginHost {
    /// Compiles every configured plugin once and asks each to describe
    /// itself. Compilation is CPU-heavy (tens to hundreds of milliseconds
    /// per plugin): call this at start, before serving.
    pub fn new(
        plugins: &[PluginConfig],
        secrets: SecretStore,
        defaults: StepLimits,
    ) -> Result<Self, PluginHostError> {
        defaults
            .validate()
            .map_err(PluginHostError::DefaultLimits)?;
        // Validate everything before compiling anything.
        let mut checked = Vec::with_capacity(plugins.len());
        let mut names = std::collections::BTreeSet::new();
        for config in plugins {
            if !names.insert(config.name.as_str()) {
                return Err(PluginHostError::Duplicate(config.name.clone()));
            }
            let (caps, limits) = prepare(config, &secrets, &defaults)?;
            checked.push((config, caps, limits));
        }
        let max_memory = checked
            .iter()
            .map(|(_, _, l)| l.memory)
            .chain(std::iter::once(defaults.memory))
            .max()
            .unwrap_or(defaults.memory);
        let engine = engine::engine(max_memory)?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|e| PluginHostError::Engine(format!("cannot start the epoch thread: {e}")))?;
        let linker = engine::linker(&engine)?;
        let http =
            http::client().map_err(|e| PluginHostError::Engine(format!("HTTP client: {e}")))?;

        let mut slots = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for (config, caps, limits) in checked {
            let bytes = std::fs::read(&config.path).map_err(|source| PluginHostError::Read {
                plugin: config.name.clone(),
                path: config.path.clone(),
                source,
            })?;
            let loaded = match load(&engine, &linker, &secrets, config, &caps, &limits, &bytes) {
                Ok(loaded) => Arc::new(loaded),
                // A plugin this agent does not grant what it needs is
                // disabled (its steps refused, the coordinator told), and the
                // others serve; anything else wrong with the configuration
                // stops the agent.
                Err(PluginHostError::Needs {
                    plugin,
                    missing,
                    sha256,
                }) => {
                    let error = PluginHostError::Needs {
                        plugin,
                        missing,
                        sha256: sha256.clone(),
                    }
                    .to_string();
                    tracing::error!(plugin = %config.name, error = %error, "the plugin is disabled; the others serve");
                    failed.insert(config.name.clone(), (sha256, error));
                    continue;
                }
                Err(e) => return Err(e),
            };
            slots.insert(
                config.name.clone(),
                Arc::new(Slot::new(config, caps, limits, loaded)),
            );
        }
        Ok(PluginHost {
            inner: Arc::new(Inner {
                engine,
                linker,
                secrets,
                http,
                plugins: RwLock::new(Arc::new(slots)),
                failed: Mutex::new(failed),
                defaults,
                max_memory,
                permits: Arc::new(Semaphore::new(engine::CONCURRENT_STEPS)),
                changed: tokio::sync::watch::channel(0).0,
                threads: StepThreads::new(),
                _ticker: ticker,
            }),
        })
    }

    /// Every configured plugin as loaded now, in name order; disabled
    /// ones are in [`PluginHost::disabled`] instead.
    pub fn inventory(&self) -> Vec<PluginInfo> {
        self.inner
            .slots()
            .values()
            .filter(|slot| lock(&slot.disabled).is_none())
            .map(|slot| lock(&slot.current).info.clone())
            .collect()
    }

    /// The disabled plugins: name, the sha256 of the file that failed to
    /// load, and why.
    pub fn disabled(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .inner
            .slots()
            .iter()
            .filter_map(|(name, slot)| {
                let (sha256, error) = lock(&slot.disabled).clone()?;
                Some((name.clone(), sha256, error))
            })
            .collect();
        out.extend(
            lock(&self.inner.failed)
                .iter()
                .map(|(name, (sha256, error))| (name.clone(), sha256.clone(), error.clone())),
        );
        out.sort();
        out
    }

    /// Told (a new value) whenever a reload changes what the plugins are.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Reads every plugin's file again (on SIGHUP) and compiles the new or
    /// changed ones. A file that fails to load disables its plugin (its
    /// steps are refused, the failure logged and reported to the
    /// coordinator); the others keep serving. Sessions are told when
    /// anything changed.
    pub fn reload(&self) -> Vec<(String, Reloaded)> {
        let out = self.reload_files();
        if out.iter().any(|(_, r)| *r != Reloaded::Unchanged) {
            self.inner
                .changed
                .send_modify(|generation| *generation += 1);
        }
        out
    }

    /// Applies a new list of `[[plugin]]` entries (on SIGHUP, from the
    /// configuration file read again): a new entry is loaded, a removed
    /// one unloaded, a changed one (path, grants, limits) loaded again
    /// under its new entry; then every file is read again as
    /// [`PluginHost::reload`] does. An entry that fails to load is
    /// disabled (logged, and reported to the coordinator); the others
    /// keep serving. Sessions are told when anything changed.
    pub fn reconfigure(&self, plugins: &[PluginConfig]) -> Vec<(String, Reloaded)> {
        let inner = &self.inner;
        let old = inner.slots();
        let mut slots = BTreeMap::new();
        let mut failed = BTreeMap::new();
        let mut out = Vec::new();
        for config in plugins {
            if let Some(slot) = old.get(&config.name)
                && slot.config == *config
            {
                slots.insert(config.name.clone(), slot.clone());
                continue;
            }
            match inner.new_slot(config) {
                Ok(slot) => {
                    let sha256 = lock(&slot.current).sha256.clone();
                    tracing::info!(plugin = %config.name, sha256 = %sha256, "plugin loaded from its new [[plugin]] entry");
                    slots.insert(config.name.clone(), Arc::new(slot));
                    out.push((config.name.clone(), Reloaded::Loaded { sha256 }));
                }
                Err((sha256, error)) => {
                    tracing::error!(plugin = %config.name, error = %error, "the plugin failed to load and is disabled; the others keep serving");
                    failed.insert(config.name.clone(), (sha256, error.clone()));
                    out.push((config.name.clone(), Reloaded::Disabled { error }));
                }
            }
        }
        for name in old.keys() {
            if !plugins.iter().any(|p| p.name == *name) {
                tracing::info!(plugin = %name, "plugin unloaded: its [[plugin]] entry is gone");
                out.push((name.clone(), Reloaded::Removed));
            }
        }
        let was_failed = std::mem::replace(&mut *lock(&inner.failed), failed.clone());
        *inner
            .plugins
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(slots);
        let files = self.reload_files();
        // A plugin loaded above from its new entry is reported once.
        let files: Vec<_> = files
            .into_iter()
            .filter(|(name, _)| !out.iter().any(|(n, _)| n == name))
            .collect();
        out.extend(files);
        if out.iter().any(|(_, r)| *r != Reloaded::Unchanged) || was_failed != failed {
            inner.changed.send_modify(|generation| *generation += 1);
        }
        out
    }

    /// Reads every plugin's file again; see [`PluginHost::reload`].
    fn reload_files(&self) -> Vec<(String, Reloaded)> {
        let inner = &self.inner;
        let mut out = Vec::new();
        for (name, slot) in inner.slots().iter() {
            let result = match std::fs::read(&slot.config.path) {
                Err(source) => Err((
                    String::new(),
                    PluginHostError::Read {
                        plugin: name.clone(),
                        path: slot.config.path.clone(),
                        source,
                    }
                    .to_string(),
                )),
                Ok(bytes) => {
                    let sha256 = sha256_hex(&bytes);
                    let loaded = lock(&slot.current).sha256 == sha256;
                    if loaded && lock(&slot.disabled).is_none() {
                        out.push((name.clone(), Reloaded::Unchanged));
                        continue;
                    }
                    let mut cache = lock(&slot.cache);
                    match cache.get(&sha256).cloned() {
                        Some(plugin) => Ok(plugin),
                        None => inner
                            .compile_into(slot, &mut cache, &sha256, &bytes)
                            .map_err(|e| (sha256.clone(), e.to_string())),
                    }
                }
            };
            *lock(&slot.hashed) = None;
            let reloaded = match result {
                Ok(plugin) => {
                    tracing::info!(plugin = %name, sha256 = %plugin.sha256, "plugin loaded");
                    let sha256 = plugin.sha256.clone();
                    *lock(&slot.current) = plugin;
                    *lock(&slot.disabled) = None;
                    Reloaded::Loaded { sha256 }
                }
                Err((sha256, error)) => {
                    tracing::error!(plugin = %name, error = %error, "the plugin failed to load and is disabled; the others keep serving");
                    *lock(&slot.disabled) = Some((sha256, error.clone()));
                    Reloaded::Disabled { error }
                }
            };
            out.push((name.clone(), reloaded));
        }
        out
    }

    /// The plugin `name` as the file on disk is now, if its SHA-256 is
    /// `expected_sha256` (hex, any case). A file that changed since it was
    /// loaded is compiled again (or taken from the cache of versions seen);
    /// this may take a moment.
    pub fn resolve(
        &self,
        name: &str,
        expected_sha256: &str,
    ) -> Result<Arc<LoadedPlugin>, ResolveError> {
        self.resolve_with(name, expected_sha256, Reading::Allowed)
    }

    /// [`PluginHost::resolve`] without reading, hashing or compiling
    /// anything, so that it never blocks: the answer when the file's stamp
    /// is settled and unchanged since it was hashed and that version is
    /// compiled (every step of a busy agent), else
    /// [`ResolveError::NeedsReading`] and the caller asks `resolve` on a
    /// thread that may block.
    pub fn resolve_without_reading(
        &self,
        name: &str,
        expected_sha256: &str,
    ) -> Result<Arc<LoadedPlugin>, ResolveError> {
        self.resolve_with(name, expected_sha256, Reading::Refused)
    }

    fn resolve_with(
        &self,
        name: &str,
        expected_sha256: &str,
        reading: Reading,
    ) -> Result<Arc<LoadedPlugin>, ResolveError> {
        if let Some((_, error)) = lock(&self.inner.failed).get(name) {
            return Err(ResolveError::Disabled {
                plugin: name.to_string(),
                error: error.clone(),
            });
        }
        let slots = self.inner.slots();
        let slot = slots
            .get(name)
            .ok_or_else(|| ResolveError::UnknownPlugin(name.to_string()))?;
        let read = || {
            std::fs::read(&slot.config.path).map_err(|source| PluginHostError::Read {
                plugin: name.to_string(),
                path: slot.config.path.clone(),
                source,
            })
        };
        // The file is read and hashed again unless its stamp says it has
        // not changed since it was last hashed (see `stamp.rs`).
        let stamp = stamp::FileStamp::of(&slot.config.path);
        let known = match (&stamp, &*lock(&slot.hashed)) {
            (Some(now), Some((then, hash))) if now == then => Some(hash.clone()),
            _ => None,
        };
        let (actual, mut bytes) = match known {
            Some(hash) => (hash, None),
            None if reading == Reading::Refused => {
                return Err(ResolveError::NeedsReading(name.to_string()));
            }
            None => {
                let bytes = read()?;
                (sha256_hex(&bytes), Some(bytes))
            }
        };
        if let Some((sha256, error)) = &*lock(&slot.disabled)
            && *sha256 == actual
        {
            return Err(ResolveError::Disabled {
                plugin: name.to_string(),
                error: error.clone(),
            });
        }
        if !actual.eq_ignore_ascii_case(expected_sha256.trim()) {
            return Err(ResolveError::HashMismatch {
                plugin: name.to_string(),
                expected: expected_sha256.to_string(),
                actual,
            });
        }
        // Held while compiling: two commands for a new version compile it once.
        let mut cache = match reading {
            Reading::Allowed => lock(&slot.cache),
            Reading::Refused => match slot.cache.try_lock() {
                Ok(cache) => cache,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                // Another command is compiling a version: waiting blocks.
                Err(TryLockError::WouldBlock) => {
                    return Err(ResolveError::NeedsReading(name.to_string()));
                }
            },
        };
        let loaded = match cache.get(&actual) {
            Some(loaded) => loaded.clone(),
            None if reading == Reading::Refused => {
                return Err(ResolveError::NeedsReading(name.to_string()));
            }
            None => {
                tracing::info!(plugin = %name, sha256 = %actual, "the plugin file changed; compiling it again");
                let bytes = match bytes.take() {
                    Some(bytes) => bytes,
                    None => {
                        // Known by its stamp but no longer compiled: read it
                        // and check it again before compiling.
                        let bytes = read()?;
                        let again = sha256_hex(&bytes);
                        if again != actual {
                            return Err(ResolveError::HashMismatch {
                                plugin: name.to_string(),
                                expected: expected_sha256.to_string(),
                                actual: again,
                            });
                        }
                        bytes
                    }
                };
                self.inner.compile_into(slot, &mut cache, &actual, &bytes)?
            }
        };
        *lock(&slot.current) = loaded.clone();
        if lock(&slot.disabled).take().is_some() {
            // A file that loads again, changed since the reload that disabled it.
            self.inner
                .changed
                .send_modify(|generation| *generation += 1);
        }
        if let Some(stamp) = stamp.filter(stamp::FileStamp::settled) {
            *lock(&slot.hashed) = Some((stamp, actual));
        }
        Ok(loaded)
    }

    /// Runs one step in a fresh instance of `plugin`, streaming its events
    /// to `events`, and returns how it ended. Never panics on plugin
    /// behaviour; a misbehaving plugin yields a `Failed` outcome.
    pub async fn run(
        &self,
        plugin: Arc<LoadedPlugin>,
        req: StepRequest,
        events: UnboundedSender<StepEvent>,
    ) -> StepOutcome {
        // Host calls do their async work (HTTP, processes) on the caller's
        // runtime, from the step thread the instance runs on (`threads`).
        if !plugin.info.actions.contains(&req.action) {
            return StepOutcome::failed(
                codes::UNKNOWN_ACTION,
                format!(
                    "plugin `{}` has no action `{}` (it offers: {}); the plugin was not called",
                    plugin.name,
                    req.action,
                    plugin.info.actions.join(", ")
                ),
            );
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return StepOutcome::failed(codes::HOST, "steps must be run from a Tokio runtime");
        };
        let permit = match self.inner.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => return StepOutcome::failed(codes::HOST, "the plugin host is shutting down"),
        };
        let budget = req.deadline.map_or(plugin.limits.deadline, |asked| {
            asked.min(plugin.limits.deadline)
        });
        let deadline = Deadline::starting_now(budget);
        let abandoned = Arc::new(AtomicBool::new(false));
        let sink = EventSink::new(events);
        // The step thread runs in the caller's runtime context, as a thread
        // of its blocking pool would: WASI's sync calls (a sleep, a write to
        // stderr) then `block_on` it, not a runtime of their own.
        let context = runtime.clone();
        let ctx = StepContext {
            plugin: plugin.name.clone(),
            step_id: req.step_id.clone(),
            caps: plugin.caps.clone(),
            secrets: self.inner.secrets.clone(),
            dry_run: req.dry_run,
            deadline,
            output: OutputBudget::new(plugin.limits.output),
            events: sink.clone(),
            outputs: Vec::new(),
            stop: None,
            denials: 0,
            http: self.inner.http.clone(),
            runtime,
            abandoned: abandoned.clone(),
        };
        let engine = self.inner.engine.clone();
        let name = plugin.name.clone();
        // The permit is held until the store is dropped and its pool slot
        // is free again, or until the step is abandoned (below).
        let permit = Arc::new(Mutex::new(Some(permit)));
        let held = permit.clone();
        // The step's span (run, phase, step, host) follows it onto the
        // step thread, so the host calls' log lines carry it too. The
        // plugin call's own span (traces only) is opened there, inside it:
        // a log line's context is the innermost span on its thread's stack
        // that log lines show.
        let span = tracing::Span::current();
        let done = self.inner.threads.run(Box::new(move || {
            let _in_runtime = context.enter();
            let _in_step = span.enter();
            let _in_plugin = tracing::info_span!(
                target: backout_config::logging::TRACES_ONLY,
                "plugin",
                plugin = %plugin.name,
                action = %req.action
            )
            .entered();
            let outcome = run::run_step(&engine, &plugin, req, ctx);
            lock(&held).take();
            outcome
        }));
        let outcome = match tokio::time::timeout(budget.saturating_add(ABANDON_GRACE), done).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => {
                tracing::error!(plugin = %name, "a plugin step panicked in the host, or no thread could be started for it");
                StepOutcome::failed(
                    codes::HOST,
                    "the plugin host failed while running this step",
                )
            }
            Err(_) => {
                // The instance is stuck inside a WASI call (a guest sleeping
                // through `wasi:clocks`, say) that epochs cannot interrupt.
                // Tell its host calls to stop, stop listening, give its
                // permit back (so that stuck steps cannot starve the agent;
                // its pool slot stays taken until it returns), and move on.
                // The step thread is free again when the call returns.
                abandoned.store(true, Ordering::Relaxed);
                lock(&permit).take();
                tracing::warn!(plugin = %name, "a step did not return after its deadline and was abandoned");
                StepOutcome::failed(
                    codes::DEADLINE,
                    format!(
                        "{}; the plugin was stuck in a system call and was abandoned",
                        deadline.message()
                    ),
                )
            }
        };
        sink.close();
        outcome
    }
}

impl Inner {
    /// The plugins configured now.
    fn slots(&self) -> Arc<BTreeMap<String, Arc<Slot>>> {
        self.plugins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Checks and loads a `[[plugin]]` entry added (or changed) by a
    /// reload. On failure: the file's sha256 (empty if unread) and why.
    fn new_slot(&self, config: &PluginConfig) -> Result<Slot, (String, String)> {
        let (caps, limits) = prepare(config, &self.secrets, &self.defaults)
            .map_err(|e| (String::new(), e.to_string()))?;
        if limits.memory > self.max_memory {
            return Err((
                String::new(),
                format!(
                    "plugin `{}`: its memory limit is above every limit the agent started with; it needs a restart",
                    config.name
                ),
            ));
        }
        let bytes = std::fs::read(&config.path).map_err(|source| {
            let e = PluginHostError::Read {
                plugin: config.name.clone(),
                path: config.path.clone(),
                source,
            };
            (String::new(), e.to_string())
        })?;
        let sha256 = sha256_hex(&bytes);
        let loaded = load(
            &self.engine,
            &self.linker,
            &self.secrets,
            config,
            &caps,
            &limits,
            &bytes,
        )
        .map_err(|e| (sha256, e.to_string()))?;
        Ok(Slot::new(config, caps, limits, Arc::new(loaded)))
    }

    /// Compiles `bytes` (whose hash is `sha256`) for `slot` and keeps the
    /// version in the slot's cache (`cache`, locked by the caller).
    fn compile_into(
        &self,
        slot: &Slot,
        cache: &mut HashMap<String, Arc<LoadedPlugin>>,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<Arc<LoadedPlugin>, PluginHostError> {
        let loaded = Arc::new(load(
            &self.engine,
            &self.linker,
            &self.secrets,
            &slot.config,
            &slot.caps,
            &slot.limits,
            bytes,
        )?);
        if cache.len() > CACHE_VERSIONS {
            cache.clear();
        }
        cache.insert(sha256.to_string(), loaded.clone());
        Ok(loaded)
    }
}

impl Slot {
    fn new(
        config: &PluginConfig,
        caps: Arc<Capabilities>,
        limits: StepLimits,
        loaded: Arc<LoadedPlugin>,
    ) -> Self {
        let mut cache = HashMap::new();
        cache.insert(loaded.sha256.clone(), loaded.clone());
        Slot {
            config: config.clone(),
            caps,
            limits,
            current: Mutex::new(loaded),
            cache: Mutex::new(cache),
            hashed: Mutex::new(None),
            disabled: Mutex::new(None),
        }
    }
}

/// Checks one `[[plugin]]` entry's grants and limits (against the
/// agent-wide `defaults`); warns of granted secrets with no value here.
fn prepare(
    config: &PluginConfig,
    secrets: &SecretStore,
    defaults: &StepLimits,
) -> Result<(Arc<Capabilities>, StepLimits), PluginHostError> {
    let caps = Capabilities::new(&config.grants).map_err(|source| PluginHostError::Grants {
        plugin: config.name.clone(),
        source,
    })?;
    for name in caps.secrets() {
        if !secrets.contains(name) {
            tracing::warn!(plugin = %config.name, secret = %name, "a granted secret is not configured on this agent");
        }
    }
    let limits = match &config.limits {
        Some(own) => own
            .over(defaults)
            .map_err(|source| PluginHostError::Limits {
                plugin: config.name.clone(),
                source,
            })?,
        None => *defaults,
    };
    Ok((Arc::new(caps), limits))
}

/// Compiles one plugin version.
fn load(
    engine: &Engine,
    linker: &Linker<HostState>,
    secrets: &SecretStore,
    config: &PluginConfig,
    caps: &Arc<Capabilities>,
    limits: &StepLimits,
    bytes: &[u8],
) -> Result<LoadedPlugin, PluginHostError> {
    let mut compiled = engine::compile(engine, linker, &config.name, &config.path, bytes, limits)?;
    let configured = |name: &str| secrets.contains(name);
    let unmet: Vec<Need> = needs::unmet(caps, &configured, &compiled.info.needs)
        .into_iter()
        .cloned()
        .collect();
    for need in &mut compiled.info.needs {
        need.granted = Some(!unmet.contains(need));
    }
    let required: Vec<String> = unmet
        .iter()
        .filter(|n| !n.optional)
        .map(ToString::to_string)
        .collect();
    if !required.is_empty() {
        return Err(PluginHostError::Needs {
            plugin: config.name.clone(),
            missing: required.join("; "),
            sha256: compiled.info.sha256.clone(),
        });
    }
    for need in unmet.iter().filter(|n| n.optional) {
        tracing::info!(plugin = %config.name, need = %need, "an optional need of the plugin is not granted; the plugin loads and works without it");
    }
    Ok(LoadedPlugin {
        name: config.name.clone(),
        path: config.path.clone(),
        sha256: compiled.info.sha256.clone(),
        info: compiled.info,
        limits: *limits,
        pre: compiled.pre,
        caps: caps.clone(),
    })
}

/// Locks a mutex, ignoring poisoning: the data behind these locks stays
/// consistent (whole values are swapped in).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
