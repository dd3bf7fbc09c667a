//! End-to-end tests: real `backout` and `backout-agent` processes, a PKI made
//! by `backout pki`, real plugins, free loopback ports. One binary, one module
//! per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assess;
mod bad_input;
mod matrix;
mod refusals;
mod runs;
mod sandbox;
mod sessions;
