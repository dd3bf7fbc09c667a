//! The SDK's helpers for provider APIs (`backout_plugin_sdk::api`): checking
//! parameters, sending a request and reading its answer, comparing a state
//! before and after a change.

pub(crate) use backout_plugin_sdk::api::*;
