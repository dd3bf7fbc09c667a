//! Signals and the decision matrix, live: the [`board`] holds values and
//! trigger histories (no I/O); the [`sampler`] feeds it from Prometheus and
//! health probes and ticks the evaluation.

pub mod board;
pub mod sampler;
