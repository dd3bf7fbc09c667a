//! The Wasmtime engine, linker and plugin compilation.
//!
//! One engine serves every plugin of the agent. It is configured for the
//! sandbox: epoch interruption (so a looping guest can be stopped) and a
//! pooling allocator sized for a handful of concurrent steps, whose slots
//! are as large as the largest memory cap. Each plugin is compiled once into
//! an `InstancePre` (imports resolved, type-checked), from which every step
//! instantiates a fresh instance in microseconds.

use std::path::Path;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

use super::bindings::{Plugin, PluginPre, WitPluginInfo};
use super::limits::Deadline;
use super::needs::{self, Need};
use super::state::HostState;
use super::{ActionInfo, PluginHostError, PluginInfo, StepLimits, sha256_hex};

/// Most plugin instances alive at once (the pool's size).
const CONCURRENT_INSTANCES: u32 = 16;
/// Most steps running at once; further steps wait for a permit. Two slots
/// are left for `describe` of a plugin compiled while steps run.
pub(crate) const CONCURRENT_STEPS: usize = CONCURRENT_INSTANCES as usize - 2;
/// Bytes of each linear memory and table kept resident when its pool slot
/// is returned (see `engine`).
const KEEP_RESIDENT: usize = 16 << 20;
/// Linear memories in the pool (a Rust component has one or two).
const POOL_MEMORIES: u32 = 64;
/// How long `describe` may take.
const DESCRIBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// An engine for plugins whose largest memory cap is `max_memory` bytes.
pub(crate) fn engine(max_memory: u64) -> Result<Engine, PluginHostError> {
    let max_memory = usize::try_from(max_memory)
        .map_err(|_| PluginHostError::Engine("memory cap does not fit this platform".into()))?;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(CONCURRENT_INSTANCES)
        .total_core_instances(CONCURRENT_INSTANCES * 8)
        .total_memories(POOL_MEMORIES)
        .total_tables(CONCURRENT_INSTANCES * 8)
        .max_core_instances_per_component(16)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_memory_size(max_memory)
        // A returned slot's pages are reset to the image with `memset`,
        // not dropped with `madvise`: the next step's instance takes no
        // page faults for them. With PAGEMAP_SCAN (Linux 6.7+) only the
        // pages the step dirtied are reset.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| PluginHostError::Engine(format!("{e:#}")))
}

/// A linker with WASI (sync, for the step threads) and the host interface.
///
/// WASI is linked because components built by Rust's `wasm32-wasip2`
/// target import it (for stdio, clocks, random); the context given to each
/// instance is empty, so it grants nothing.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<HostState>, PluginHostError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| PluginHostError::Engine(format!("linking WASI: {e:#}")))?;
    Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
        .map_err(|e| PluginHostError::Engine(format!("linking the host interface: {e:#}")))?;
    Ok(linker)
}

/// A compiled plugin and what it says about itself.
pub(crate) struct Compiled {
    pub(crate) pre: PluginPre<HostState>,
    /// With `needs` as the plugin declares them (`granted` unset).
    pub(crate) info: PluginInfo,
}

/// Compiles `bytes` (the file at `path`, configured as `name`) and asks the
/// plugin to describe itself.
pub(crate) fn compile(
    engine: &Engine,
    linker: &Linker<HostState>,
    name: &str,
    path: &Path,
    bytes: &[u8],
    limits: &StepLimits,
) -> Result<Compiled, PluginHostError> {
    let compile_error = |message: String| PluginHostError::Compile {
        plugin: name.to_string(),
        path: path.to_path_buf(),
        message,
    };
    let started = std::time::Instant::now();
    let component =
        Component::from_binary(engine, bytes).map_err(|e| compile_error(format!("{e:#}")))?;
    let pre = linker
        .instantiate_pre(&component)
        .and_then(PluginPre::new)
        .map_err(|e| compile_error(format!("it does not fit the backout:plugin world: {e:#}")))?;
    let (described, needs, schema_json) =
        describe(engine, &pre, limits).map_err(|message| PluginHostError::Describe {
            plugin: name.to_string(),
            message,
        })?;
    if described.name != name {
        tracing::warn!(
            plugin = %name,
            described = %described.name,
            "the plugin calls itself by another name; the configured name is used"
        );
    }
    let info = PluginInfo {
        name: name.to_string(),
        version: described.version,
        description: described.description,
        sha256: sha256_hex(bytes),
        actions: described.actions.iter().map(|a| a.name.clone()).collect(),
        action_info: described
            .actions
            .into_iter()
            .map(|a| ActionInfo {
                name: a.name,
                description: a.description,
                changes_state: a.changes_state,
            })
            .collect(),
        schema_json,
        needs,
    };
    tracing::info!(
        plugin = %name,
        version = %info.version,
        sha256 = %info.sha256,
        ms = started.elapsed().as_millis(),
        "plugin compiled"
    );
    Ok(Compiled { pre, info })
}

/// Calls `describe` (and `needs` and `schema`, if exported) on a fresh instance, on a
/// thread of its own: sync WASI must not run inside a Tokio task, and callers
/// may well be in one.
fn describe(
    engine: &Engine,
    pre: &PluginPre<HostState>,
    limits: &StepLimits,
) -> Result<(WitPluginInfo, Vec<Need>, String), String> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let (state, stderr) = HostState::new(limits.memory, None);
            let mut store = Store::new(engine, state);
            store.limiter(|state| &mut state.limiter);
            let deadline = Deadline::starting_now(DESCRIBE_DEADLINE);
            store.set_epoch_deadline(deadline.ticks());
            let result = pre
                .instance_pre()
                .instantiate(&mut store)
                .and_then(|instance| {
                    let plugin = Plugin::new(&mut store, &instance)?;
                    let info = plugin.call_describe(&mut store)?;
                    let needs = needs::read(&mut store, &instance)?;
                    let schema = read_schema(&mut store, &instance)?;
                    Ok((info, needs, schema))
                });
            result.map_err(|e| {
                let stderr = String::from_utf8_lossy(&stderr.contents())
                    .trim()
                    .to_string();
                if stderr.is_empty() {
                    format!("describe failed: {e:#}")
                } else {
                    format!("describe failed: {e:#}; stderr: {stderr}")
                }
            })
        });
        worker
            .join()
            .unwrap_or_else(|_| Err("describe panicked in the host".to_string()))
    })
}

/// Calls the instance's `schema` export if it has one (plugins built for the
/// `plugin-with-schema` world); empty when it has none. The text must be a
/// JSON object with an `actions` object: a plugin that says something else
/// fails to load, naming it.
fn read_schema(
    store: &mut Store<HostState>,
    instance: &wasmtime::component::Instance,
) -> wasmtime::Result<String> {
    let Some(func) = instance.get_func(&mut *store, "schema") else {
        return Ok(String::new());
    };
    let mut results = [wasmtime::component::Val::Bool(false)];
    func.call(&mut *store, &[], &mut results)?;
    let wasmtime::component::Val::String(text) = &results[0] else {
        wasmtime::bail!("`schema` must return a string");
    };
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        wasmtime::Error::msg(format!("`schema` returned text that is not JSON: {e}"))
    })?;
    if !doc.get("actions").is_some_and(serde_json::Value::is_object) {
        wasmtime::bail!("`schema` must return a JSON object with an `actions` object");
    }
    Ok(text.clone())
}
