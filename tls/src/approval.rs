//! Signed approvals that an agent checks itself (issue 14, items 2 and 3).
//!
//! An operator approves with the private key of their own mTLS certificate
//! (ECDSA P-256, as `backout pki issue operator` makes it). What is signed is
//! a [`Statement`] as canonical JSON bytes: version, operator, run id, plan
//! digest, scope (`run` or `phase:<id>`), role, decision, time and the nonce
//! the coordinator handed out. A [`SignedApproval`] carries those exact
//! bytes, the signature and the operator's certificate (DER), so a verifier
//! needs only the fleet CA and its revocation list: see [`check`].
//!
//! Everything here is pure (no I/O): the caller reads files and the clock.

use serde::{Deserialize, Serialize};

use crate::identity::{self, Identity};
use crate::tls::TlsMaterial;

/// The statement format written by this code.
pub const STATEMENT_VERSION: u32 = 1;

/// How long a statement counts after it was signed: four hours. A run that
/// waits longer needs the approval again.
pub const LIFETIME_MS: i64 = 4 * 3600 * 1000;

/// How far in the future a statement's time may be (clock skew).
pub const SKEW_MS: i64 = 60 * 1000;

/// Approve or refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Approve,
    Refuse,
}

/// What an operator signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub version: u32,
    pub operator: String,
    pub run_id: String,
    pub plan_digest: String,
    /// `run`, or `phase:<id>` for one gated phase.
    pub scope: String,
    pub role: String,
    pub decision: Decision,
    /// When it was signed (Unix milliseconds).
    pub at_ms: i64,
    /// The nonce the coordinator handed out for this approval.
    pub nonce: String,
}

/// A statement as signed: the exact bytes, the signature (ASN.1 ECDSA
/// P-256 SHA-256) and the signer's certificate (DER).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedApproval {
    /// The statement's canonical JSON, as signed.
    pub statement: String,
    /// Hex.
    pub signature: String,
    /// Hex DER of the operator's certificate.
    pub certificate: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("the private key is not a PKCS#8 P-256 key: {0}")]
    Key(String),
    #[error("signing failed")]
    Sign,
    #[error("the certificate is not PEM: {0}")]
    Certificate(String),
}

impl Statement {
    /// The canonical bytes: JSON with the fields in declaration order.
    pub fn to_json(&self) -> String {
        // A struct of strings, integers and an enum always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl SignedApproval {
    /// The bytes that travel (journal and `CommandBody.approvals`).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedApproval, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a signed approval: {e}"))
    }
}

/// Signs `statement` with the operator's private key (PKCS#8 PEM) and
/// attaches their certificate (PEM).
pub fn sign(
    statement: &Statement,
    key_pem: &str,
    cert_pem: &str,
) -> Result<SignedApproval, ApprovalError> {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;

    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| ApprovalError::Key(e.to_string()))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = key else {
        return Err(ApprovalError::Key("not PKCS#8".into()));
    };
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.secret_pkcs8_der(),
        &rng,
    )
    .map_err(|e| ApprovalError::Key(e.to_string()))?;
    let certificate = crate::pki::first_pem_der(cert_pem)
        .ok_or_else(|| ApprovalError::Certificate("no CERTIFICATE block".into()))?;
    let json = statement.to_json();
    let signature = pair
        .sign(&rng, json.as_bytes())
        .map_err(|_| ApprovalError::Sign)?;
    Ok(SignedApproval {
        statement: json,
        signature: hex::encode(signature.as_ref()),
        certificate: hex::encode(certificate),
    })
}

/// What a gated action needs, as the verifier (the agent) knows it.
#[derive(Debug, Clone)]
pub struct Need {
    pub run_id: String,
    pub plan_digest: String,
    /// The scopes that count: `run` and/or `phase:<id>`.
    pub scopes: Vec<String>,
    /// Roles, each held by a different person.
    pub roles: Vec<String>,
    /// The operator who started the run, when the plan forbids that they
    /// approve it.
    pub no_self_approval_by: Option<String>,
}

/// Who approved what, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub operator: String,
    pub role: String,
}

/// One signed approval, verified on its own: the certificate chains to the
/// fleet CA and is neither expired nor revoked (per the CRLs in `material`,
/// which must themselves be fresh), names an operator, attests the
/// statement's role, and signed the statement's exact bytes.
pub fn verify_one(signed: &SignedApproval, material: &TlsMaterial) -> Result<Statement, String> {
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    use x509_parser::prelude::{FromDer, X509Certificate};

    let der = hex::decode(&signed.certificate).map_err(|e| format!("certificate: {e}"))?;
    if let Err(e) = material.verify_client_cert(&der) {
        return Err(if e.contains("Revoked") {
            "its certificate is revoked".to_string()
        } else {
            format!("its certificate is not accepted by the fleet CA ({e})")
        });
    }
    let Ok(Identity::Operator(name)) = Identity::from_cert_der(&der, &material.domain) else {
        return Err("its certificate is not an operator's".into());
    };
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let key = cert.public_key().subject_public_key.data.to_vec();
    let signature = hex::decode(&signed.signature).map_err(|e| format!("signature: {e}"))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
        .verify(signed.statement.as_bytes(), &signature)
        .map_err(|_| format!("the signature is not {name}'s"))?;
    let statement: Statement = serde_json::from_str(&signed.statement)
        .map_err(|e| format!("the statement does not read: {e}"))?;
    if statement.version != STATEMENT_VERSION {
        return Err(format!("statement version {} unknown", statement.version));
    }
    if statement.operator != name {
        return Err(format!("signed by {name} but names {}", statement.operator));
    }
    let roles =
        identity::roles_of_cert(&der, &material.domain, &name).map_err(|e| e.to_string())?;
    if !roles.contains(&statement.role) {
        return Err(format!(
            "{name}'s certificate does not attest role {}",
            statement.role
        ));
    }
    Ok(statement)
}

/// Checks the approvals attached to a gated action against `need` at
/// `now_ms`: every attached statement must verify ([`verify_one`]) and be
/// for this run, plan digest and one of the scopes, an approval, within
/// [`LIFETIME_MS`], and not the run starter's own where that is forbidden;
/// and together they must give every needed role to a different person.
/// The error says what is wrong or missing, for the refusal's detail.
pub fn check(
    attached: &[Vec<u8>],
    need: &Need,
    material: &TlsMaterial,
    now_ms: i64,
) -> Result<Vec<Approver>, String> {
    if need.roles.is_empty() {
        return Ok(Vec::new());
    }
    let mut valid: Vec<Statement> = Vec::new();
    for (i, bytes) in attached.iter().enumerate() {
        let signed = SignedApproval::from_bytes(bytes).map_err(|e| format!("approval {i}: {e}"))?;
        let s = verify_one(&signed, material).map_err(|e| format!("approval {i}: {e}"))?;
        let who = format!("approval {i} ({} as {})", s.operator, s.role);
        if s.run_id != need.run_id {
            return Err(format!(
                "{who} is for run {}, not {}",
                s.run_id, need.run_id
            ));
        }
        if s.plan_digest != need.plan_digest {
            return Err(format!("{who} is for another plan digest"));
        }
        if !need.scopes.contains(&s.scope) {
            return Err(format!("{who} is for scope {}", s.scope));
        }
        if s.decision != Decision::Approve {
            return Err(format!("{who} refuses"));
        }
        if now_ms - s.at_ms > LIFETIME_MS {
            return Err(format!(
                "{who} expired (signed {} s ago; an approval lasts {} s)",
                (now_ms - s.at_ms) / 1000,
                LIFETIME_MS / 1000
            ));
        }
        if s.at_ms - now_ms > SKEW_MS {
            return Err(format!("{who} is dated in the future"));
        }
        if need.no_self_approval_by.as_deref() == Some(s.operator.as_str()) {
            return Err(format!(
                "{who} is a self-approval: {} started the run",
                s.operator
            ));
        }
        valid.push(s);
    }
    // Each needed role by a different person; one person counts once.
    let mut approvers: Vec<Approver> = Vec::new();
    for role in &need.roles {
        let Some(s) = valid
            .iter()
            .find(|s| &s.role == role && !approvers.iter().any(|a| a.operator == s.operator))
        else {
            let by_taken = valid
                .iter()
                .find(|s| &s.role == role)
                .map(|s| format!(" ({} already approved as another role; each role needs a different person)", s.operator))
                .unwrap_or_default();
            let missing: Vec<&str> = need
                .roles
                .iter()
                .filter(|r| !approvers.iter().any(|a| &a.role == *r))
                .map(String::as_str)
                .collect();
            return Err(format!(
                "missing approvals from distinct people for: {}{by_taken}",
                missing.join(", ")
            ));
        };
        approvers.push(Approver {
            operator: s.operator.clone(),
            role: role.clone(),
        });
    }
    Ok(approvers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crl::{self, CrlOptions};
    use crate::pki::{self, LeafOptions};
    use std::path::Path;

    const NOW: i64 = 1_800_000_000_000;
    const ROLES: [&str; 3] = ["dba", "technical-lead", "product-owner"];

    fn fleet(dir: &Path) {
        pki::init(dir, "approve.local", &LeafOptions::default()).unwrap();
        for (name, roles) in [
            ("dave", &["dba"][..]),
            ("bob", &["technical-lead", "dba"][..]),
            ("alice", &["product-owner"][..]),
            ("mallory", &["dba"][..]),
        ] {
            let options = LeafOptions {
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ..LeafOptions::default()
            };
            pki::issue(dir, &Identity::Operator(name.into()), &options).unwrap();
        }
    }

    fn material(dir: &Path) -> TlsMaterial {
        let files = crate::TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("coordinator.pem"),
            key: dir.join("coordinator.key"),
        };
        let material = files.load().unwrap();
        if dir.join(crl::CRL).exists() {
            material.with_crl(&dir.join(crl::CRL)).unwrap()
        } else {
            material
        }
    }

    fn statement(operator: &str, role: &str) -> Statement {
        Statement {
            version: STATEMENT_VERSION,
            operator: operator.into(),
            run_id: "run-1".into(),
            plan_digest: "sha256:abc".into(),
            scope: "phase:database".into(),
            role: role.into(),
            decision: Decision::Approve,
            at_ms: NOW - 1000,
            nonce: "n-1".into(),
        }
    }

    fn signed(dir: &Path, s: &Statement) -> Vec<u8> {
        let key =
            std::fs::read_to_string(dir.join(format!("operators/{}.key", s.operator))).unwrap();
        let cert =
            std::fs::read_to_string(dir.join(format!("operators/{}.pem", s.operator))).unwrap();
        sign(s, &key, &cert).unwrap().to_bytes()
    }

    fn need() -> Need {
        Need {
            run_id: "run-1".into(),
            plan_digest: "sha256:abc".into(),
            scopes: vec!["run".into(), "phase:database".into()],
            roles: ROLES.iter().map(|r| r.to_string()).collect(),
            no_self_approval_by: Some("carol".into()),
        }
    }

    fn three(dir: &Path) -> Vec<Vec<u8>> {
        vec![
            signed(dir, &statement("dave", "dba")),
            signed(dir, &statement("bob", "technical-lead")),
            signed(dir, &statement("alice", "product-owner")),
        ]
    }

    #[test]
    fn three_distinct_people_with_their_roles_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        fleet(dir.path());
        let approvers = check(&three(dir.path()), &need(), &material(dir.path()), NOW).unwrap();
        let who: Vec<(&str, &str)> = approvers
            .iter()
            .map(|a| (a.operator.as_str(), a.role.as_str()))
            .collect();
        assert_eq!(
            who,
            [
                ("dave", "dba"),
                ("bob", "technical-lead"),
                ("alice", "product-owner")
            ]
        );
    }

    /// What a compromised coordinator could attach instead, each refused
    /// with its reason.
    #[test]
    fn what_a_compromised_coordinator_could_attach_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fleet(dir.path());
        let m = material(dir.path());
        let refused = |attached: Vec<Vec<u8>>, m: &TlsMaterial| {
            check(&attached, &need(), m, NOW).unwrap_err()
        };

        let none = refused(Vec::new(), &m);
        assert!(
            none.contains(
                "missing approvals from distinct people for: dba, technical-lead, product-owner"
            ),
            "{none}"
        );

        // bob holds two roles, and signs both.
        let twice = refused(
            vec![
                signed(dir.path(), &statement("bob", "dba")),
                signed(dir.path(), &statement("bob", "technical-lead")),
                signed(dir.path(), &statement("alice", "product-owner")),
            ],
            &m,
        );
        assert!(
            twice.contains("technical-lead")
                && twice.contains("bob already approved as another role"),
            "{twice}"
        );

        let mut other_run = three(dir.path());
        other_run[0] = signed(
            dir.path(),
            &Statement {
                run_id: "run-2".into(),
                ..statement("dave", "dba")
            },
        );
        let other = refused(other_run, &m);
        assert!(
            other.contains("approval 0 (dave as dba) is for run run-2, not run-1"),
            "{other}"
        );

        let mut expired = three(dir.path());
        expired[1] = signed(
            dir.path(),
            &Statement {
                at_ms: NOW - LIFETIME_MS - 1,
                ..statement("bob", "technical-lead")
            },
        );
        let old = refused(expired, &m);
        assert!(
            old.contains("approval 1 (bob as technical-lead) expired"),
            "{old}"
        );

        let mut own = three(dir.path());
        own[0] = signed(dir.path(), &statement("dave", "dba"));
        let mut by_starter = need();
        by_starter.no_self_approval_by = Some("dave".into());
        let selfish = check(&own, &by_starter, &m, NOW).unwrap_err();
        assert!(selfish.contains("self-approval"), "{selfish}");

        // A role the certificate does not attest.
        let mut unattested = three(dir.path());
        unattested[2] = signed(dir.path(), &statement("dave", "product-owner"));
        let role = refused(unattested, &m);
        assert!(
            role.contains("does not attest role product-owner"),
            "{role}"
        );

        // The statement's bytes changed after signing.
        let mut tampered = three(dir.path());
        let mut s = SignedApproval::from_bytes(&tampered[0]).unwrap();
        s.statement = s.statement.replace("run-1", "run-9");
        tampered[0] = s.to_bytes();
        let sig = refused(tampered, &m);
        assert!(sig.contains("the signature is not dave's"), "{sig}");

        // A key and certificate from outside the fleet CA, same names and roles.
        let outside = tempfile::tempdir().unwrap();
        fleet(outside.path());
        let mut forged = three(dir.path());
        forged[0] = signed(outside.path(), &statement("dave", "dba"));
        let ca = refused(forged, &m);
        assert!(
            ca.contains("approval 0: its certificate is not accepted by the fleet CA"),
            "{ca}"
        );

        // mallory is revoked: the CA's list names her certificate.
        let (mallory, _) = pki::leaf_paths(dir.path(), &Identity::Operator("mallory".into()));
        crl::revoke(dir.path(), Some(&mallory), &CrlOptions::default()).unwrap();
        let m = material(dir.path());
        let mut revoked = three(dir.path());
        revoked[0] = signed(dir.path(), &statement("mallory", "dba"));
        let gone = refused(revoked, &m);
        assert!(
            gone.contains("approval 0: its certificate is revoked"),
            "{gone}"
        );
        // The same list, out of date, refuses every statement.
        std::fs::remove_file(dir.path().join(crl::CRL)).unwrap();
        crl::revoke(
            dir.path(),
            None,
            &CrlOptions {
                days: 1,
                backdate_days: 3,
            },
        )
        .unwrap();
        let stale = refused(three(dir.path()), &material(dir.path()));
        assert!(
            stale.contains("approval 0: its certificate is not accepted by the fleet CA"),
            "{stale}"
        );
    }
}
