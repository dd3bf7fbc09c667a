//! Admission: the checks every command passes before anything runs.
//!
//! In order: signature over the exact bytes, well-formedness, validity window
//! (all in `backout_proto::command`), addressed to this agent, the
//! plugin's sha256 equal to the file it would load, and, for an action the
//! agent's `approval_policy` gates, the operators' signed approvals the
//! command carries, verified here against the fleet CA and the newest CRL
//! ([`ApprovalGate`]) ([`Admission::admit`]);
//! then, in one transaction of the agent database that also records the step
//! as running ([`Admission::record`]), the coordinator's lease epoch not
//! lower than the highest seen (`stale-coordinator`) and the nonce never
//! seen (`replay`). The first check that fails is the answer; nothing of the
//! command has run.

use std::sync::{Arc, Mutex};

use backout_proto::command::{Check, Command, CommandVerifier, Refused};
use backout_proto::wire;
use backout_tls::approval::{self, Approver, Need, SignedApproval};
use backout_tls::crl::CrlDates;
use backout_tls::tls::TlsMaterial;

use crate::config::ApprovalPolicy;

use crate::ledger::{Admit, Admitted, Ledger, Prior};
use crate::plugin::{LoadedPlugin, PluginHost, ResolveError};

pub struct Admission {
    pub agent_id: String,
    pub verifier: CommandVerifier,
    pub skew_ms: i64,
    pub approvals: ApprovalGate,
}

/// What the agent needs to check signed approvals itself: its policies,
/// the fleet CA (from its own TLS material) and the newest revocation list
/// the coordinator handed it (`CoordinatorMessage.crl`).
pub struct ApprovalGate {
    policies: Vec<ApprovalPolicy>,
    material: TlsMaterial,
    crl: Mutex<Option<(Vec<u8>, CrlDates)>>,
}

impl ApprovalGate {
    pub fn new(policies: Vec<ApprovalPolicy>, material: TlsMaterial) -> ApprovalGate {
        ApprovalGate {
            policies,
            material,
            crl: Mutex::new(None),
        }
    }

    /// A revocation list from the coordinator: kept unless it does not read
    /// or is older than the one held (a coordinator cannot take back a
    /// revocation by sending an earlier list). Its CA signature and
    /// freshness are checked when an approval is checked against it.
    /// Returns the list's dates when it was taken.
    pub fn offer_crl(&self, pem: &[u8]) -> Result<Option<CrlDates>, String> {
        let dates = backout_tls::crl::dates(pem)?;
        self.material.clone().with_crl_pem(pem)?;
        let mut held = self.crl.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, have)) = held.as_ref()
            && have.this_update > dates.this_update
        {
            return Ok(None);
        }
        *held = Some((pem.to_vec(), dates));
        Ok(Some(dates))
    }

    /// For an action a policy gates (and not a dry run, which changes
    /// nothing), the approvers the command's statements prove, or the
    /// `approvals` refusal saying what is missing. Empty: no policy.
    pub fn check(&self, command: &Command, now_ms: i64) -> Result<Vec<Approver>, Refused> {
        let Some(policy) = self
            .policies
            .iter()
            .find(|p| p.action.split_once('.') == Some((&command.plugin, &command.action)))
        else {
            return Ok(Vec::new());
        };
        if command.dry_run {
            return Ok(Vec::new());
        }
        let refused = |why: String| {
            Refused::new(
                Check::Approvals,
                format!(
                    "{} needs signed approvals by {} (each a different person): {why}",
                    policy.action,
                    policy.roles.join(", ")
                ),
            )
        };
        let crl = self
            .crl
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(pem, _)| pem.clone())
            .ok_or_else(|| {
                refused(
                    "no revocation list from the coordinator yet, so no approval can be checked"
                        .into(),
                )
            })?;
        let material = self.material.clone().with_crl_pem(&crl).map_err(refused)?;
        let attached: Vec<Vec<u8>> = command
            .approvals
            .iter()
            .map(|w| {
                SignedApproval {
                    statement: String::from_utf8_lossy(&w.statement).into_owned(),
                    signature: hex::encode(&w.signature),
                    certificate: hex::encode(&w.certificate),
                }
                .to_bytes()
            })
            .collect();
        let phase = command.step_id.split('/').nth(1).unwrap_or_default();
        let need = Need {
            run_id: command.run_id.clone(),
            plan_digest: command.plan_digest.clone(),
            scopes: vec!["run".into(), format!("phase:{phase}")],
            roles: policy.roles.clone(),
            no_self_approval_by: (!policy.allow_self_approval).then(|| command.started_by.clone()),
        };
        approval::check(&attached, &need, &material, now_ms).map_err(refused)
    }
}

impl Admission {
    /// Runs every check; returns the command and the plugin to run it with.
    /// May block: a plugin file that changed is read, hashed and compiled.
    pub fn admit(
        &self,
        signed: &wire::SignedCommand,
        host: &PluginHost,
        now_ms: i64,
    ) -> Result<(Command, Arc<LoadedPlugin>), Refused> {
        let command = self.verify(signed, now_ms)?;
        let plugin = host
            .resolve(&command.plugin, &command.plugin_sha256)
            .map_err(plugin_refusal)?;
        self.check_approvals(&command, now_ms)?;
        Ok((command, plugin))
    }

    /// The same checks as [`Admission::admit`] without blocking, for an
    /// async task: `Ok(None)` when the plugin's file must be read first (it
    /// changed, or changed too recently for its stamp to be trusted); then
    /// ask `admit` on a thread that may block. The signature check (tens of
    /// microseconds) runs here, so a busy agent's steps do not each hop to
    /// a blocking thread and back just to be admitted.
    pub fn admit_without_blocking(
        &self,
        signed: &wire::SignedCommand,
        host: &PluginHost,
        now_ms: i64,
    ) -> Result<Option<(Command, Arc<LoadedPlugin>)>, Refused> {
        let command = self.verify(signed, now_ms)?;
        let plugin = match host.resolve_without_reading(&command.plugin, &command.plugin_sha256) {
            Ok(plugin) => plugin,
            Err(ResolveError::NeedsReading(_)) => return Ok(None),
            Err(e) => return Err(plugin_refusal(e)),
        };
        self.check_approvals(&command, now_ms)?;
        Ok(Some((command, plugin)))
    }

    /// The signature, well-formedness and validity window, and the target.
    fn verify(&self, signed: &wire::SignedCommand, now_ms: i64) -> Result<Command, Refused> {
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
        Ok(command)
    }

    /// For an action the agent's approval policy gates, the signed
    /// approvals the command carries (logged by name when they verify).
    fn check_approvals(&self, command: &Command, now_ms: i64) -> Result<(), Refused> {
        let approvers = self.approvals.check(command, now_ms)?;
        if !approvers.is_empty() {
            let who: Vec<String> = approvers
                .iter()
                .map(|a| format!("{} ({})", a.operator, a.role))
                .collect();
            tracing::info!(
                run = %command.run_id,
                action = %format!("{}.{}", command.plugin, command.action),
                approvers = %who.join(", "),
                "signed approvals verified"
            );
        }
        Ok(())
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

/// The refusal for a plugin that cannot be resolved.
fn plugin_refusal(e: ResolveError) -> Refused {
    match e {
        ResolveError::UnknownPlugin(_) => Refused::new(Check::UnknownPlugin, e.to_string()),
        _ => Refused::new(Check::PluginHash, e.to_string()),
    }
}

/// The command's body read without trusting it (empty when it does not
/// decode): its command and step ids match a refusal to the command it
/// answers, and its W3C trace context only places this agent's spans in a
/// trace.
pub fn untrusted_body(signed: &wire::SignedCommand) -> wire::CommandBody {
    use prost::Message;
    wire::CommandBody::decode(signed.body.as_slice()).unwrap_or_default()
}
