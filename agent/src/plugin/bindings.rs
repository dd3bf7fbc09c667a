//! The one `bindgen!` of the host side of `plugins/sdk/wit/plugin.wit` (`wit/` at the root links there).
//!
//! Every host import may trap (`trappable`): that is how the host stops a
//! step from inside a call (its deadline passed, its output went over the
//! cap). Guest-visible refusals (`host-error`) are kept apart from traps by
//! `trappable_error_type`: host functions return `Result<T, HostCallError>`,
//! and `HostCallError` is either a `host-error` for the guest or a reason to
//! stop the step.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../plugins/sdk/wit",
    imports: { default: trappable },
    trappable_error_type: {
        "backout:plugin/host.host-error" => super::state::HostCallError,
    },
});

pub use backout::plugin::host::{
    ExecOutput, ExecRequest, HostError, HttpRequest, HttpResponse, Level,
};
pub use backout::plugin::types::PluginInfo as WitPluginInfo;
