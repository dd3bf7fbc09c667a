//! Signed approvals in the coordinator (issue 14, item 2).
//!
//! `backout approve` asks for a nonce ([`super::Runs::approval_nonce`]),
//! signs a [`Statement`] with the operator's own certificate key and sends
//! it with the decision. The control service checks the signature, chain,
//! revocation and attested role (`approval::verify_one`); the run checks
//! the rest here ([`check_statement`]): this run, this plan digest, this
//! scope, the role, the decision, a nonce it issued to this operator for
//! this scope and did not see used, and a time close to now. The statement
//! is journaled as it came (`approval.signed`) with the decision it makes,
//! in one transaction; a resumed run rebuilds its statements from the
//! journal ([`held_of`]). The approving statements of the run and of a
//! phase travel with every command of that phase ([`attached`]).

use std::collections::BTreeMap;

use backout_plan::run::{RunPlan, Scope};
use backout_proto::wire;
use backout_tls::approval::{Decision, SignedApproval, Statement};
use sha2::{Digest, Sha256};

use crate::journal::{Record, SignedStatement};

/// How long a nonce handed out for an approval stays good.
pub const NONCE_TTL_MS: i64 = 10 * 60 * 1000;

/// How far a statement's time may be from the coordinator's clock when it
/// arrives (it is signed just before it is sent).
pub const ARRIVAL_SKEW_MS: i64 = 5 * 60 * 1000;

/// A statement the run holds: its scope key, what it says, and the bytes
/// as they travel.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub statement: Statement,
    pub wire: wire::SignedApproval,
}

/// A nonce handed out and not yet used.
#[derive(Debug, Clone)]
pub(super) struct Issued {
    pub operator: String,
    pub scope: String,
    pub at_ms: i64,
}

/// What `ApprovalNonce` answers.
#[derive(Debug, Clone)]
pub struct NonceGiven {
    pub nonce: String,
    pub plan_digest: String,
    pub scope: String,
    pub role: String,
}

/// `sha256:<hex>` of the run's resolved plan as the journal keeps it
/// (`run.created`'s `plan`): what every statement of the run names.
pub fn plan_digest(plan: &RunPlan) -> String {
    let json = serde_json::to_vec(plan).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(&json)))
}

/// The scope as statements name it: `run` or `phase:<id>`.
pub fn scope_key(scope: &Scope) -> String {
    match scope {
        Scope::Run => "run".into(),
        Scope::Phase(id) => format!("phase:{id}"),
    }
}

/// The wire form of a signed approval (hex fields decoded).
pub fn to_wire(signed: &SignedApproval) -> Result<wire::SignedApproval, String> {
    Ok(wire::SignedApproval {
        statement: signed.statement.as_bytes().to_vec(),
        signature: hex::decode(&signed.signature).map_err(|e| format!("signature: {e}"))?,
        certificate: hex::decode(&signed.certificate).map_err(|e| format!("certificate: {e}"))?,
    })
}

/// A signed approval from the wire; the statement must be UTF-8 (it is
/// JSON), kept byte for byte.
pub fn from_wire(w: &wire::SignedApproval) -> Result<SignedApproval, String> {
    Ok(SignedApproval {
        statement: String::from_utf8(w.statement.clone())
            .map_err(|_| "the statement is not UTF-8 JSON".to_string())?,
        signature: hex::encode(&w.signature),
        certificate: hex::encode(&w.certificate),
    })
}

/// The statement of a journaled `approval.signed`, read back.
pub(super) fn held(signed: &SignedStatement) -> Option<Held> {
    let statement: Statement = serde_json::from_str(&signed.statement).ok()?;
    let wire = to_wire(&signed.signed()).ok()?;
    Some(Held { statement, wire })
}

/// Every statement journaled for the run, in order.
pub(super) fn held_of(entries: &[crate::journal::Entry]) -> Vec<Held> {
    entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::ApprovalSigned(s) => held(s),
            _ => None,
        })
        .collect()
}

/// The approving statements that travel with a command of `phase`: the
/// run's and that phase's.
pub(super) fn attached(held: &[Held], phase: &str) -> Vec<wire::SignedApproval> {
    let phase_scope = format!("phase:{phase}");
    held.iter()
        .filter(|h| h.statement.decision == Decision::Approve)
        .filter(|h| h.statement.scope == "run" || h.statement.scope == phase_scope)
        .map(|h| h.wire.clone())
        .collect()
}

/// What the run checks of a statement whose signature, chain and role the
/// control service verified: it is `by`'s, for this run, digest, scope and
/// role, says what the call does (approve or refuse), names a nonce issued
/// to `by` for this scope and not used, and was signed close to `now`.
/// Takes the nonce out of `issued` when it is good.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_statement(
    s: &Statement,
    by: &str,
    run_id: &str,
    digest: &str,
    scope: &str,
    refusing: bool,
    issued: &mut BTreeMap<String, Issued>,
    now: i64,
) -> Result<(), String> {
    if s.operator != by {
        return Err(format!(
            "the statement is {}'s, but {by} sent it",
            s.operator
        ));
    }
    if s.run_id != run_id {
        return Err(format!(
            "the statement is for run {}, not {run_id}",
            s.run_id
        ));
    }
    if s.plan_digest != digest {
        return Err(format!(
            "the statement names plan digest {}, but this run's is {digest}",
            s.plan_digest
        ));
    }
    if s.scope != scope {
        return Err(format!("the statement is for {}, not {scope}", s.scope));
    }
    if (s.decision == Decision::Refuse) != refusing {
        return Err("the statement's decision is not the one asked for".into());
    }
    if (now - s.at_ms).abs() > ARRIVAL_SKEW_MS {
        return Err(format!(
            "the statement was signed {} s from the coordinator's clock (at most {} s)",
            (now - s.at_ms).abs() / 1000,
            ARRIVAL_SKEW_MS / 1000
        ));
    }
    match issued.get(&s.nonce) {
        Some(i) if i.operator == by && i.scope == scope && now - i.at_ms <= NONCE_TTL_MS => {
            issued.remove(&s.nonce);
            Ok(())
        }
        Some(i) if now - i.at_ms > NONCE_TTL_MS => {
            issued.remove(&s.nonce);
            Err("the statement's nonce has expired: approve again".into())
        }
        _ => Err(
            "the statement's nonce was not issued for this approval, or was already used".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn statement() -> Statement {
        Statement {
            version: 1,
            operator: "dave".into(),
            run_id: "run-1".into(),
            plan_digest: "sha256:ab".into(),
            scope: "phase:database".into(),
            role: "dba".into(),
            decision: Decision::Approve,
            at_ms: 1_000,
            nonce: "n1".into(),
        }
    }

    fn issued() -> BTreeMap<String, Issued> {
        BTreeMap::from([(
            "n1".to_string(),
            Issued {
                operator: "dave".into(),
                scope: "phase:database".into(),
                at_ms: 900,
            },
        )])
    }

    #[test]
    fn a_nonce_is_good_once_for_its_operator_and_scope() {
        let s = statement();
        let mut n = issued();
        let check = |n: &mut BTreeMap<String, Issued>, by: &str, scope: &str| {
            check_statement(&s, by, "run-1", "sha256:ab", scope, false, n, 1_000)
        };
        assert!(
            check(&mut n, "bob", "phase:database")
                .unwrap_err()
                .contains("dave's")
        );
        assert!(
            check(&mut n, "dave", "run")
                .unwrap_err()
                .contains("not run")
        );
        check(&mut n, "dave", "phase:database").unwrap();
        let again = check(&mut n, "dave", "phase:database").unwrap_err();
        assert!(again.contains("already used"), "{again}");
    }

    #[test]
    fn another_run_digest_or_decision_is_refused() {
        let s = statement();
        let run = check_statement(
            &s,
            "dave",
            "run-2",
            "sha256:ab",
            "phase:database",
            false,
            &mut issued(),
            1_000,
        );
        assert!(run.unwrap_err().contains("run-1, not run-2"));
        let digest = check_statement(
            &s,
            "dave",
            "run-1",
            "sha256:cd",
            "phase:database",
            false,
            &mut issued(),
            1_000,
        );
        assert!(digest.unwrap_err().contains("plan digest"));
        let refusing = check_statement(
            &s,
            "dave",
            "run-1",
            "sha256:ab",
            "phase:database",
            true,
            &mut issued(),
            1_000,
        );
        assert!(refusing.unwrap_err().contains("decision"));
    }

    #[test]
    fn the_approving_statements_of_the_run_and_the_phase_are_attached() {
        let held = |scope: &str, decision| Held {
            statement: Statement {
                scope: scope.into(),
                decision,
                ..statement()
            },
            wire: wire::SignedApproval {
                statement: scope.as_bytes().to_vec(),
                ..Default::default()
            },
        };
        let all = vec![
            held("run", Decision::Approve),
            held("phase:database", Decision::Approve),
            held("phase:application", Decision::Approve),
            held("phase:database", Decision::Refuse),
        ];
        let got: Vec<Vec<u8>> = attached(&all, "database")
            .into_iter()
            .map(|w| w.statement)
            .collect();
        assert_eq!(got, vec![b"run".to_vec(), b"phase:database".to_vec()]);
    }
}
