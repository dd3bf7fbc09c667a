//! The Backout coordinator (`backout serve`) and operator CLI (every other
//! `backout` command), as a library so tests can start the server in-process.
//!
//! * [`config`]: the coordinator's configuration file.
//! * [`fleet`]: domain types (agents, plugins, step outcomes), the agent
//!   registry, the command dispatcher.
//! * [`root`]: the composition root: builds the parts and wires them.
//! * [`server`]: the gRPC services over mutual TLS.
//! * [`assess`]: phase 1.1, the emergency assessment.
//! * [`runs`]: rollback runs: the run state machine driven, journaled, dispatched.
//! * [`signals`]: the plan's signals, sampled live, and the decision matrix.
//! * [`replay`]: what a run's journal entries say (the run rebuilt, its
//!   steps, figures and escalations), pure; used by runs and report.
//! * [`metrics`]: the Prometheus metrics, every definition in one place.
//! * [`report`]: the post-rollback report from a run's journal.
//! * [`text`]: times and durations for people.
//! * [`cli`]: the operator commands and their output.

pub mod assess;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod fleet;
pub mod journal;
pub mod metrics;
pub mod replay;
pub mod report;
pub mod root;
pub mod runs;
pub mod server;
pub mod signals;
pub mod text;
#[cfg(test)]
mod tidy;
