//! Admission: the checks every command passes before anything runs.
//!
//! In order: signature over the exact bytes, well-formedness, validity window
//! (all in `backout_proto::command`), then the coordinator's lease epoch not
//! lower than the highest seen (`stale-coordinator`), nonce never seen, addressed to this
//! agent, and the plugin's sha256 equal to the file it would load. The first
//! check that fails is the answer; nothing of the command has run.

use std::sync::Arc;

use backout_proto::command::{Check, Command, CommandVerifier, Refused};
use backout_proto::wire;

use crate::nonces::NonceStore;
use crate::plugin::{LoadedPlugin, PluginHost, ResolveError};

pub struct Admission {
    pub agent_id: String,
    pub verifier: CommandVerifier,
    pub skew_ms: i64,
    pub nonces: NonceStore,
}

impl Admission {
    /// Runs every check; returns the command and the plugin to run it with.
    pub fn admit(
        &self,
        signed: &wire::SignedCommand,
        host: &PluginHost,
        now_ms: i64,
    ) -> Result<(Command, Arc<LoadedPlugin>), Refused> {
        let command = self.verifier.verify(signed, now_ms)?;
        // A coordinator that lost its lease (a paused leader that woke up)
        // is fenced here: its epoch is lower than its successor's.
        match self.nonces.check_epoch(command.epoch) {
            Ok(Ok(())) => {}
            Ok(Err(highest)) => {
                return Err(Refused::new(
                    Check::StaleCoordinator,
                    format!(
                        "command `{}` carries lease epoch {}, but this agent has seen epoch {highest}: it comes from a coordinator that is no longer the leader",
                        command.command_id, command.epoch
                    ),
                ));
            }
            Err(e) => {
                return Err(Refused::new(
                    Check::StaleCoordinator,
                    format!("cannot check the lease epoch: {e}"),
                ));
            }
        }
        let fresh = self
            .nonces
            .check_and_record(
                &command.nonce,
                command.expires_at_ms.saturating_add(self.skew_ms),
                now_ms,
            )
            .map_err(|e| {
                // Without the nonce store we cannot rule out a replay: refuse.
                Refused::new(Check::Replay, format!("cannot check the nonce: {e}"))
            })?;
        if !fresh {
            return Err(Refused::new(
                Check::Replay,
                format!(
                    "nonce of command `{}` was already used; replays are refused",
                    command.command_id
                ),
            ));
        }
        if command.target_agent != self.agent_id {
            return Err(Refused::new(
                Check::Target,
                format!(
                    "command is for agent `{}`, this is `{}`",
                    command.target_agent, self.agent_id
                ),
            ));
        }
        let plugin = host
            .resolve(&command.plugin, &command.plugin_sha256)
            .map_err(|e| match e {
                ResolveError::UnknownPlugin(_) => Refused::new(Check::UnknownPlugin, e.to_string()),
                _ => Refused::new(Check::PluginHash, e.to_string()),
            })?;
        Ok((command, plugin))
    }
}

/// The command and step ids of a body, read without trusting it, so that a
/// refusal can be matched to the command it answers.
pub fn untrusted_ids(signed: &wire::SignedCommand) -> (String, String) {
    use prost::Message;
    wire::CommandBody::decode(signed.body.as_slice())
        .map(|b| (b.command_id, b.step_id))
        .unwrap_or_default()
}

/// The W3C trace context inside a command's body, read before the command
/// is verified: it only places this agent's spans in a trace.
pub fn untrusted_traceparent(signed: &wire::SignedCommand) -> String {
    use prost::Message;
    wire::CommandBody::decode(signed.body.as_slice())
        .map(|b| b.traceparent)
        .unwrap_or_default()
}
