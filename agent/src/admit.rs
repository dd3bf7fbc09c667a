//! Admission: the checks every command passes before anything runs.
//!
//! In order: signature over the exact bytes, well-formedness, validity window
//! (all in `backout_proto::command`), addressed to this agent, and the
//! plugin's sha256 equal to the file it would load ([`Admission::admit`]);
//! then, in one transaction of the agent database that also records the step
//! as running ([`Admission::record`]), the coordinator's lease epoch not
//! lower than the highest seen (`stale-coordinator`) and the nonce never
//! seen (`replay`). The first check that fails is the answer; nothing of the
//! command has run.

use std::sync::Arc;

use backout_proto::command::{Check, Command, CommandVerifier, Refused};
use backout_proto::wire;

use crate::ledger::{Admit, Admitted, Ledger, Prior};
use crate::plugin::{LoadedPlugin, PluginHost, ResolveError};

pub struct Admission {
    pub agent_id: String,
    pub verifier: CommandVerifier,
    pub skew_ms: i64,
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

    /// Records an admitted command's epoch, nonce and step as running in one
    /// transaction (nothing when refused); says what the ledger knew of the
    /// step under `key`.
    pub async fn record(
        &self,
        ledger: &Ledger,
        command: &Command,
        key: &str,
        now_ms: i64,
    ) -> Result<Prior, Refused> {
        let admit = Admit {
            epoch: command.epoch,
            nonce: command.nonce.to_vec(),
            keep_until_ms: command.expires_at_ms.saturating_add(self.skew_ms),
            now_ms,
            step_key: key.to_string(),
            command_id: command.command_id.clone(),
        };
        match ledger.admit(admit).await {
            Ok(Admitted::Step(prior)) => Ok(prior),
            // A coordinator that lost its lease (a paused leader that woke
            // up) is fenced here: its epoch is lower than its successor's.
            Ok(Admitted::StaleEpoch { highest }) => Err(Refused::new(
                Check::StaleCoordinator,
                format!(
                    "command `{}` carries lease epoch {}, but this agent has seen epoch {highest}: it comes from a coordinator that is no longer the leader",
                    command.command_id, command.epoch
                ),
            )),
            Ok(Admitted::Replay) => Err(Refused::new(
                Check::Replay,
                format!(
                    "nonce of command `{}` was already used; replays are refused",
                    command.command_id
                ),
            )),
            // Without its database the agent can rule out neither a replay
            // nor a second run of the step: refuse.
            Err(e) => Err(Refused::new(
                Check::Replay,
                format!("cannot record the command: {e}"),
            )),
        }
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
