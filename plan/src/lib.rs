//! The rollback plan as code: the condition language ([`expr`]) and held-for
//! windows ([`window`]). Pure: no I/O, no clock (callers pass `now`), so every
//! rule is unit-tested.

pub mod expr;
pub mod model;
pub mod window;
