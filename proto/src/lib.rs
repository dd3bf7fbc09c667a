//! The coordinator–agent contract.
//!
//! * [`wire`]: the generated protobuf messages and tonic services. **Only this
//!   crate and the transport edges of the binaries name these types.**
//! * [`command`]: the signed command envelope: signing on the coordinator,
//!   verification on the agent, and the validated [`command::Command`] that the
//!   rest of the agent works with.

pub mod command;

/// Generated protobuf messages and gRPC services (`proto/backout.proto`).
#[allow(clippy::all, clippy::pedantic)]
pub mod wire {
    tonic::include_proto!("backout.v1");
}

/// Milliseconds since the Unix epoch, the unit of every timestamp on the wire.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
