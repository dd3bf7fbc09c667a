//! `backout approve RUN`: approve (or refuse) a run or one of its gated phases.
//!
//! The decision is signed with the operator's own key (the one their
//! certificate for mutual TLS goes with): the coordinator hands out a nonce
//! and says what the statement must name (`ApprovalNonce`), the statement
//! is signed here (`backout_tls::approval`), and the coordinator journals
//! it as it came. Agents whose `approval_policy` gates an action verify
//! these statements themselves.

use backout_proto::{now_ms, wire};
use backout_tls::Identity;
use backout_tls::approval::{Decision, STATEMENT_VERSION, Statement};

use super::client::{ConnectArgs, status_error};
use super::{BadInput, Exit, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (as `backout runs` lists it).
    run: String,
    /// A gated phase (default: the run itself).
    #[arg(long)]
    phase: Option<String>,
    /// Which of your roles to approve as (default: the first one still needed).
    #[arg(long)]
    role: Option<String>,
    /// Refuse instead of approving: stops the run or the phase.
    #[arg(long, requires = "why")]
    refuse: bool,
    /// Why you refuse (recorded in the journal and the report).
    #[arg(long)]
    why: Option<String>,
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let files = connect.files()?;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| BadInput(format!("{}: {e}", path.display())))
    };
    let (cert_pem, key_pem) = (read(&files.cert)?, read(&files.key)?);
    let operator = match files.load()?.identity {
        Identity::Operator(name) => name,
        other => {
            return Err(BadInput(format!(
                "{}: this certificate belongs to {other}, not to an operator",
                files.cert.display()
            ))
            .into());
        }
    };
    let mut control = connect.control().await?;
    let phase = args.phase.unwrap_or_default();
    let given = control
        .approval_nonce(wire::ApprovalNonceRequest {
            run_id: args.run.clone(),
            phase: phase.clone(),
            role: args.role.clone().unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let statement = Statement {
        version: STATEMENT_VERSION,
        operator,
        run_id: args.run.clone(),
        plan_digest: given.plan_digest,
        scope: given.scope,
        role: given.role.clone(),
        decision: if args.refuse {
            Decision::Refuse
        } else {
            Decision::Approve
        },
        at_ms: now_ms(),
        nonce: given.nonce,
    };
    let signed = backout_tls::approval::sign(&statement, &key_pem, &cert_pem)
        .map_err(|e| BadInput(format!("{}: {e}", files.key.display())))?;
    let signed = crate::runs::approvals::to_wire(&signed).map_err(anyhow::Error::msg)?;
    let request = wire::ApproveRequest {
        run_id: args.run,
        phase,
        role: given.role,
        refuse: args.refuse,
        why: args.why.unwrap_or_default(),
        signed: Some(signed),
    };
    let summary = control
        .approve(request)
        .await
        .map_err(status_error)?
        .into_inner();
    super::runs::print_summary(&summary, args.output);
    Ok(Exit::Ok)
}
