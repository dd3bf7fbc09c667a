//! End-to-end tests: real `backout` and `backout-agent` processes, a PKI made
//! by `backout pki`, real plugins, free loopback ports. One binary, one module
//! per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod approvals;
mod assess;
mod bad_input;
mod chaos;
mod checkpoints;
mod crash;
mod dashboard;
mod db;
mod edges;
mod first_config;
mod ha;
mod init;
mod journal_lock;
mod local_runner;
mod logs;
mod mail;
mod matrix;
mod messages;
mod observability;
mod outcomes;
mod packages;
mod partition;
mod plan_check;
mod providers;
mod refusals;
mod remedy;
mod report;
mod retention;
mod rotation;
mod runs;
mod sandbox;
mod sdk;
mod security;
mod sessions;
mod trust;
mod verdicts;
mod waits;
mod watch;
