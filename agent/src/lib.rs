//! The Backout agent, as a library so tests can reach its parts.
//!
//! * [`config`]: the agent's configuration file.
//! * [`session`]: the connection to the coordinator (dial, hello, heartbeats,
//!   commands, reconnect with jittered backoff).
//! * [`admit`]: the checks every command passes before anything runs.
//! * [`ledger`]: the agent database: nonces seen, the highest lease epoch,
//!   step ids already run and their outcomes (a step runs once); admission
//!   is one transaction, commits grouped.
//! * [`plugin`]: the sandboxed WASM plugin host.
//! * [`metrics`]: the agent's Prometheus metrics, every definition in one place.

pub mod admit;
pub mod backoff;
pub mod config;
pub mod ledger;
pub mod local;
pub mod metrics;
pub mod plugin;
pub mod session;
