//! The coordinator–agent contract.
//!
//! * [`wire`]: the generated protobuf messages and tonic services. **Only this
//!   crate and the transport edges of the binaries name these types.**
//! * [`command`]: the signed command envelope: signing on the coordinator,
//!   verification on the agent, and the validated [`command::Command`] that the
//!   rest of the agent works with.
//! * [`codes`]: the failure codes of a step's answer that both sides act on
//!   (a refusal's reason is a [`command::Check`]).

pub mod codes;
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

/// A plugin whose file differs from the coordinator's pin: every command
/// for it will be refused ([`command::Check::PluginHash`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinMismatch {
    pub plugin: String,
    /// What the coordinator pins.
    pub pinned: String,
    /// What the agent's file hashes to.
    pub actual: String,
}

/// The plugins in `plugins` whose sha256 differs from the pin in `pins`
/// (plugin name -> hex sha256, any case). Unpinned plugins are not listed.
/// Both sides ask: the agent when it connects, the coordinator when an
/// agent says Hello.
pub fn pin_mismatches<'a>(
    pins: impl Fn(&str) -> Option<&'a str>,
    plugins: &[wire::PluginDescriptor],
) -> Vec<PinMismatch> {
    plugins
        .iter()
        .filter_map(|p| {
            let pinned = pins(&p.name)?;
            (!pinned.trim().eq_ignore_ascii_case(p.sha256.trim())).then(|| PinMismatch {
                plugin: p.name.clone(),
                pinned: pinned.to_ascii_lowercase(),
                actual: p.sha256.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pinned_plugins_that_differ_are_mismatches() {
        let plugin = |name: &str, sha256: &str| wire::PluginDescriptor {
            name: name.into(),
            sha256: sha256.into(),
            ..Default::default()
        };
        let plugins = [plugin("a", "aa11"), plugin("b", "bb22"), plugin("c", "cc")];
        let pins = |name: &str| match name {
            "a" => Some("AA11"), // same hash, other case
            "b" => Some("ffff"),
            _ => None,
        };
        assert_eq!(
            pin_mismatches(pins, &plugins),
            vec![PinMismatch {
                plugin: "b".into(),
                pinned: "ffff".into(),
                actual: "bb22".into(),
            }]
        );
    }
}
