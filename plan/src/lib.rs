//! The rollback plan as code. Pure: no I/O, no clock (callers pass `now`), so
//! every rule is unit-tested.
//!
//! * [`model`]: the plan file (fleet, roles, signals, triggers) and its validation.
//! * [`sections`]: phases and steps, approvals, channels and templates,
//!   escalation, success criteria, contacts, report deadlines, drills.
//! * [`expr`]: the condition language (`error_rate > 5% and p95 > 2000ms`).
//! * [`window`]: held-for windows ("for > 15 minutes", "5 samples").
//! * [`matrix`]: the decision matrix and its verdict.
//! * [`episode`]: a fired trigger until it clears: its decision deadline,
//!   decided or escalated once.
//! * [`judge`]: the canary judge (Mann-Whitney U, effect size, variance check).
//! * [`run`]: the run state machine, a fold over journal events.
//! * [`history`]: bounded histories of signal values and counted events.
//! * [`schema`]: the plan file's JSON Schema, from the types above.
//! * [`check`]: a plan's steps and probes against what the plugins and the
//!   coordinator say they offer (`backout plan check`).

pub mod check;
pub mod episode;
pub mod expr;
pub mod history;
pub mod judge;
pub mod matrix;
pub mod model;
pub mod remedy;
pub mod run;
pub mod schema;
pub mod sections;
pub mod window;
