//! Signed phase commands.
//!
//! The coordinator serialises a [`wire::CommandBody`] once and signs those exact
//! bytes with its ed25519 command key (separate from its TLS key). The agent
//! pins the public key and verifies, before anything else:
//!
//! 1. the signature over the bytes it received ([`Check::Signature`]);
//! 2. that the bytes decode to a well-formed command ([`Check::Malformed`]);
//! 3. the validity window, with a small clock-skew allowance
//!    ([`Check::Expired`], [`Check::NotYetValid`]);
//!
//! and then, with its own state, the nonce ([`Check::Replay`]), the target
//! ([`Check::Target`]) and the plugin hash ([`Check::UnknownPlugin`],
//! [`Check::PluginHash`]). Every refusal names the check that failed.

use std::fmt;
use std::time::Duration;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use prost::Message;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::wire;

/// Length of a command nonce in bytes.
pub const NONCE_LEN: usize = 16;

/// The verification a command failed. The string forms are stable: they are
/// what an agent answers and what operators and tests see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    Malformed,
    Signature,
    Expired,
    NotYetValid,
    Replay,
    Target,
    UnknownPlugin,
    PluginHash,
    /// The command's lease epoch is lower than one the agent has seen: it
    /// comes from a coordinator that lost its lease.
    StaleCoordinator,
    /// The command arrived after the coordinator's give-up time for its
    /// step (`CommandBody.give_up_at_ms`): the coordinator has already
    /// recorded the step as timed out, so it is not run.
    Deadline,
    /// The action needs operators' approvals (the agent's
    /// `approval_policy`) and the attached statements do not give them: none,
    /// one person twice, another run, expired, revoked, outside the CA...
    Approvals,
}

impl Check {
    /// Every check, in the order the agent runs them.
    pub const ALL: [Check; 11] = [
        Check::Signature,
        Check::Malformed,
        Check::Expired,
        Check::NotYetValid,
        Check::Deadline,
        Check::StaleCoordinator,
        Check::Replay,
        Check::Target,
        Check::UnknownPlugin,
        Check::PluginHash,
        Check::Approvals,
    ];

    /// The check a refusal names on the wire (`Refusal.check`), if it is one
    /// of ours.
    pub fn from_wire(text: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Check::Malformed => "malformed",
            Check::Signature => "signature",
            Check::Expired => "expired",
            Check::NotYetValid => "not_yet_valid",
            Check::Replay => "replay",
            Check::Target => "target",
            Check::UnknownPlugin => "unknown_plugin",
            Check::PluginHash => "plugin_hash",
            Check::StaleCoordinator => "stale-coordinator",
            Check::Deadline => "deadline",
            Check::Approvals => "approvals",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused command: which check failed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("command refused ({check}): {detail}")]
pub struct Refused {
    pub check: Check,
    pub detail: String,
}

impl Refused {
    pub fn new(check: Check, detail: impl Into<String>) -> Self {
        Refused {
            check,
            detail: detail.into(),
        }
    }
}

/// Errors loading or encoding command keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an ed25519 private key in PKCS#8 PEM: {0}")]
    Private(String),
    #[error("not an ed25519 public key in SPKI PEM: {0}")]
    Public(String),
}

const PRIVATE_LABEL: &str = "PRIVATE KEY";
const PUBLIC_LABEL: &str = "PUBLIC KEY";

/// Says what is wrong with a key file that did not load as an ed25519 key
/// with PEM label `expected`: not PEM at all, another kind of PEM block, or
/// a key of another algorithm (named). `fallback` is the decoder's own
/// message, for what is none of these.
fn explain_key(text: &str, expected: &str, fallback: &str) -> String {
    use ed25519_dalek::pkcs8::{Document, SecretDocument};
    use ed25519_dalek::pkcs8::{PrivateKeyInfo, spki::SubjectPublicKeyInfoRef};

    let wanted =
        format!("expected `-----BEGIN {expected}-----` (ed25519, made by `backout pki init`)");
    let Some(label) = pem_label(text) else {
        return format!("not a PEM file: no `-----BEGIN ...-----` line; {wanted}");
    };
    if label != expected {
        let kind = match label {
            "EC PRIVATE KEY" => " (an elliptic-curve key such as P-256, in SEC1 form)",
            "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => " (an RSA key)",
            "CERTIFICATE" => " (a certificate, not a key)",
            "ENCRYPTED PRIVATE KEY" => " (a key protected by a passphrase)",
            "PRIVATE KEY" if expected == PUBLIC_LABEL => {
                " (a private key: agents pin the public one, command-signing.pub)"
            }
            "PUBLIC KEY" if expected == PRIVATE_LABEL => {
                " (a public key: the coordinator needs the private one, command-signing.key)"
            }
            _ => "",
        };
        return format!("a PEM `{label}` block{kind}; {wanted}");
    }
    let oid = if expected == PRIVATE_LABEL {
        SecretDocument::from_pem(text).ok().and_then(|(_, doc)| {
            PrivateKeyInfo::try_from(doc.as_bytes())
                .ok()
                .map(|info| info.algorithm.oid)
        })
    } else {
        Document::from_pem(text).ok().and_then(|(_, doc)| {
            SubjectPublicKeyInfoRef::try_from(doc.as_bytes())
                .ok()
                .map(|info| info.algorithm.oid)
        })
    };
    match oid.map(|oid| oid.to_string()) {
        Some(oid) if oid != ED25519_OID => {
            let name = match oid.as_str() {
                "1.2.840.10045.2.1" => "an elliptic-curve key (e.g. P-256)",
                "1.2.840.113549.1.1.1" => "an RSA key",
                "1.3.101.113" => "an Ed448 key",
                "1.3.101.110" | "1.3.101.111" => "an X25519/X448 key",
                _ => "a key of another algorithm",
            };
            format!("{name} (algorithm {oid}), not ed25519 ({ED25519_OID}); {wanted}")
        }
        _ => format!("not a valid ed25519 key: {fallback}; {wanted}"),
    }
}

/// The ed25519 algorithm identifier (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// The label of the first PEM block in `text` (`PRIVATE KEY` for
/// `-----BEGIN PRIVATE KEY-----`), if any.
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    let end = rest.find("-----")?;
    Some(rest[..end].trim())
}

/// A validated command, the agent's domain view of a [`wire::CommandBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub command_id: String,
    pub run_id: String,
    pub step_id: String,
    pub target_agent: String,
    pub plugin: String,
    pub plugin_sha256: String,
    pub action: String,
    /// Parameters as JSON text; guaranteed to be a JSON object.
    pub params_json: String,
    pub dry_run: bool,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub nonce: [u8; NONCE_LEN],
    /// How long the step may run (None: the agent's default).
    pub deadline: Option<Duration>,
    /// The sending coordinator's lease epoch (0: no lease).
    pub epoch: u64,
    /// When the coordinator gives up on the step, in Unix milliseconds
    /// (None: it did not say).
    pub give_up_at_ms: Option<i64>,
    /// The operators' signed approvals attached to the command (checked by
    /// the agent when its policy gates the action).
    pub approvals: Vec<wire::SignedApproval>,
    /// The run's plan digest the approvals must name.
    pub plan_digest: String,
    /// Who started the run (the no-self-approval rule).
    pub started_by: String,
}

impl TryFrom<wire::CommandBody> for Command {
    type Error = Refused;

    fn try_from(body: wire::CommandBody) -> Result<Self, Refused> {
        fn required(field: &str, value: String) -> Result<String, Refused> {
            if value.trim().is_empty() {
                Err(Refused::new(
                    Check::Malformed,
                    format!("field `{field}` is empty"),
                ))
            } else {
                Ok(value)
            }
        }
        let nonce: [u8; NONCE_LEN] = body.nonce.as_slice().try_into().map_err(|_| {
            Refused::new(
                Check::Malformed,
                format!(
                    "field `nonce` has {} bytes, expected {NONCE_LEN}",
                    body.nonce.len()
                ),
            )
        })?;
        match serde_json::from_str::<serde_json::Value>(&body.params_json) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                return Err(Refused::new(
                    Check::Malformed,
                    "field `params_json` is not a JSON object",
                ));
            }
            Err(e) => {
                return Err(Refused::new(
                    Check::Malformed,
                    format!("field `params_json` is not JSON: {e}"),
                ));
            }
        }
        if body.expires_at_ms <= body.issued_at_ms {
            return Err(Refused::new(
                Check::Malformed,
                "field `expires_at_ms` is not after `issued_at_ms`",
            ));
        }
        Ok(Command {
            command_id: required("command_id", body.command_id)?,
            run_id: required("run_id", body.run_id)?,
            step_id: required("step_id", body.step_id)?,
            target_agent: required("target_agent", body.target_agent)?,
            plugin: required("plugin", body.plugin)?,
            plugin_sha256: required("plugin_sha256", body.plugin_sha256)?,
            action: required("action", body.action)?,
            params_json: body.params_json,
            dry_run: body.dry_run,
            issued_at_ms: body.issued_at_ms,
            expires_at_ms: body.expires_at_ms,
            nonce,
            deadline: (body.deadline_ms > 0)
                .then(|| Duration::from_millis(body.deadline_ms.into())),
            epoch: body.epoch,
            give_up_at_ms: (body.give_up_at_ms > 0).then_some(body.give_up_at_ms),
            approvals: body.approvals,
            plan_digest: body.plan_digest,
            started_by: body.started_by,
        })
    }
}

/// A fresh random nonce.
pub fn new_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Names a public key in messages: hex of the first 8 bytes of its sha256.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

/// The coordinator's command signer.
pub struct CommandSigner {
    key: SigningKey,
    key_id: String,
}

impl fmt::Debug for CommandSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("CommandSigner")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl CommandSigner {
    pub fn new(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        CommandSigner { key, key_id }
    }

    /// Generates a new key pair (used by `backout pki init`).
    pub fn generate() -> Self {
        Self::new(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Reads an ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE
    /// KEY-----`), version 1 (what OpenSSL writes, and `backout pki init`
    /// now) or version 2 (what `pki init` wrote before). Anything else is
    /// refused saying what it is instead.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| KeyError::Private(explain_key(pem, PRIVATE_LABEL, &e.to_string())))?;
        Ok(Self::new(key))
    }

    /// The private key as PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`, the
    /// seed only, as RFC 8410 and OpenSSL write it), for a 0600 file.
    /// `openssl pkey -in FILE` reads it.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::Private(e.to_string()))
    }

    /// The public key as SPKI PEM, for agents to pin.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Public(e.to_string()))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Serialises `body` once and signs exactly those bytes.
    pub fn sign(&self, body: &wire::CommandBody) -> wire::SignedCommand {
        let bytes = body.encode_to_vec();
        let signature = self.key.sign(&bytes);
        wire::SignedCommand {
            body: bytes,
            signature: signature.to_bytes().to_vec(),
            key_id: self.key_id.clone(),
        }
    }
}

/// The agent's view: the pinned coordinator key and the clock-skew allowance.
#[derive(Debug, Clone)]
pub struct CommandVerifier {
    key: VerifyingKey,
    skew: Duration,
}

impl CommandVerifier {
    pub fn new(key: VerifyingKey, skew: Duration) -> Self {
        CommandVerifier { key, skew }
    }

    pub fn from_public_key_pem(pem: &str, skew: Duration) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| KeyError::Public(explain_key(pem, PUBLIC_LABEL, &e.to_string())))?;
        Ok(Self::new(key, skew))
    }

    pub fn key_id(&self) -> String {
        key_id(&self.key)
    }

    /// Checks, in this order, the signature over the exact bytes received, that
    /// they decode to a well-formed command, and its validity window at `now_ms`.
    pub fn verify(&self, signed: &wire::SignedCommand, now_ms: i64) -> Result<Command, Refused> {
        let signature = Signature::from_slice(&signed.signature).map_err(|_| {
            Refused::new(
                Check::Signature,
                format!(
                    "signature has {} bytes, expected 64",
                    signed.signature.len()
                ),
            )
        })?;
        self.key.verify(&signed.body, &signature).map_err(|_| {
            Refused::new(
                Check::Signature,
                format!(
                    "signature does not verify against the pinned coordinator key {}",
                    self.key_id()
                ),
            )
        })?;
        let body = wire::CommandBody::decode(signed.body.as_slice())
            .map_err(|e| Refused::new(Check::Malformed, format!("body does not decode: {e}")))?;
        let command = Command::try_from(body)?;
        let skew_ms = i64::try_from(self.skew.as_millis()).unwrap_or(i64::MAX);
        if now_ms > command.expires_at_ms.saturating_add(skew_ms) {
            return Err(Refused::new(
                Check::Expired,
                format!(
                    "command expired {} ms ago (clock-skew allowance {} ms)",
                    now_ms - command.expires_at_ms,
                    skew_ms
                ),
            ));
        }
        if command.issued_at_ms > now_ms.saturating_add(skew_ms) {
            return Err(Refused::new(
                Check::NotYetValid,
                format!(
                    "command issued {} ms in the future (clock-skew allowance {} ms)",
                    command.issued_at_ms - now_ms,
                    skew_ms
                ),
            ));
        }
        // No skew allowance here: the give-up time is the coordinator's
        // own, and a command that arrives after it must not run.
        if let Some(give_up) = command.give_up_at_ms
            && now_ms > give_up
        {
            return Err(Refused::new(
                Check::Deadline,
                format!(
                    "command `{}` arrived {} ms after the coordinator gave up on step `{}`; not run",
                    command.command_id,
                    now_ms - give_up,
                    command.step_id
                ),
            ));
        }
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn body(now: i64) -> wire::CommandBody {
        wire::CommandBody {
            command_id: "c1".into(),
            run_id: "r1".into(),
            step_id: "s1".into(),
            target_agent: "app-1".into(),
            plugin: "health".into(),
            plugin_sha256: "ab".repeat(32),
            action: "check".into(),
            params_json: "{}".into(),
            dry_run: false,
            issued_at_ms: now,
            expires_at_ms: now + 60_000,
            nonce: new_nonce().to_vec(),
            deadline_ms: 0,
            epoch: 0,
            traceparent: String::new(),
            give_up_at_ms: 0,
            ..Default::default()
        }
    }

    fn pair() -> (CommandSigner, CommandVerifier) {
        let signer = CommandSigner::generate();
        let pem = signer.public_key_pem().unwrap();
        let verifier = CommandVerifier::from_public_key_pem(&pem, Duration::from_secs(5)).unwrap();
        (signer, verifier)
    }

    #[test]
    fn a_signed_command_verifies_and_keeps_its_fields() {
        let (signer, verifier) = pair();
        let now = 1_000_000;
        let signed = signer.sign(&body(now));
        let command = verifier.verify(&signed, now).unwrap();
        assert_eq!(command.step_id, "s1");
        assert_eq!(command.target_agent, "app-1");
        assert_eq!(signed.key_id, verifier.key_id());
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_body_fails_the_signature_check() {
        let (signer, verifier) = pair();
        let signed = signer.sign(&body(1_000));
        for i in 0..signed.body.len() {
            let mut tampered = signed.clone();
            tampered.body[i] ^= 0x01;
            let err = verifier.verify(&tampered, 1_000).unwrap_err();
            assert_eq!(err.check, Check::Signature, "byte {i}");
        }
    }

    #[test]
    fn a_key_other_than_the_pinned_one_fails_the_signature_check() {
        let (_, verifier) = pair();
        let other = CommandSigner::generate();
        let err = verifier
            .verify(&other.sign(&body(1_000)), 1_000)
            .unwrap_err();
        assert_eq!(err.check, Check::Signature);
    }

    #[test]
    fn expiry_and_not_yet_valid_respect_the_skew_allowance() {
        let (signer, verifier) = pair();
        let signed = signer.sign(&body(1_000_000));
        // Expires at 1_060_000; 5 s of skew allowed.
        assert!(verifier.verify(&signed, 1_064_999).is_ok());
        assert_eq!(
            verifier.verify(&signed, 1_065_001).unwrap_err().check,
            Check::Expired
        );
        assert!(verifier.verify(&signed, 995_000).is_ok());
        assert_eq!(
            verifier.verify(&signed, 994_999).unwrap_err().check,
            Check::NotYetValid
        );
    }

    #[test]
    fn a_command_arriving_after_its_give_up_time_is_refused_without_skew() {
        let (signer, verifier) = pair();
        let mut b = body(1_000_000);
        b.give_up_at_ms = 1_010_000;
        let signed = signer.sign(&b);
        let command = verifier.verify(&signed, 1_010_000).unwrap();
        assert_eq!(command.give_up_at_ms, Some(1_010_000));
        let refused = verifier.verify(&signed, 1_010_001).unwrap_err();
        assert_eq!(refused.check, Check::Deadline);
        assert!(refused.detail.contains("1 ms after"), "{}", refused.detail);
        // 0: no give-up time, only the validity window.
        let signed = signer.sign(&body(1_000_000));
        assert_eq!(
            verifier.verify(&signed, 1_050_000).unwrap().give_up_at_ms,
            None
        );
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_field_named() {
        let (signer, verifier) = pair();
        let mut b = body(1_000);
        b.params_json = "[1]".into();
        let err = verifier.verify(&signer.sign(&b), 1_000).unwrap_err();
        assert_eq!(err.check, Check::Malformed);
        assert!(err.detail.contains("params_json"));

        let mut b = body(1_000);
        b.nonce = vec![1, 2, 3];
        let err = verifier.verify(&signer.sign(&b), 1_000).unwrap_err();
        assert!(err.detail.contains("nonce"));

        let mut b = body(1_000);
        b.step_id = String::new();
        let err = verifier.verify(&signer.sign(&b), 1_000).unwrap_err();
        assert!(err.detail.contains("step_id"));
    }

    #[test]
    fn check_names_round_trip_and_are_stable() {
        for check in Check::ALL {
            assert_eq!(Check::from_wire(check.as_str()), Some(check));
        }
        assert_eq!(Check::from_wire("plugin_hash"), Some(Check::PluginHash));
        assert_eq!(Check::from_wire("nope"), None);
    }

    #[test]
    fn private_key_pem_round_trips() {
        let signer = CommandSigner::generate();
        let pem = signer.to_pkcs8_pem().unwrap();
        let again = CommandSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(signer.key_id(), again.key_id());
        assert!(!format!("{signer:?}").contains(&pem[30..60]));
    }

    /// What OpenSSL reads (`openssl pkey -in KEY -noout`): PKCS#8 version 1,
    /// the 32-byte seed under the ed25519 OID and nothing else (RFC 8410).
    #[test]
    fn the_private_key_is_written_as_rfc_8410_pkcs8_v1() {
        use ed25519_dalek::pkcs8::SecretDocument;
        let signer = CommandSigner::generate();
        let pem = signer.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let (_, der) = SecretDocument::from_pem(&pem).unwrap();
        let prefix = hex::decode("302e020100300506032b657004220420").unwrap();
        assert_eq!(der.as_bytes().len(), 48);
        assert_eq!(&der.as_bytes()[..16], prefix.as_slice());
    }

    /// Files written by `pki init` before (PKCS#8 v2, with the public key)
    /// still load.
    #[test]
    fn a_pkcs8_v2_key_written_before_still_loads() {
        let signer = CommandSigner::generate();
        let v2 = signer.key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        assert_ne!(v2, signer.to_pkcs8_pem().unwrap());
        let again = CommandSigner::from_pkcs8_pem(&v2).unwrap();
        assert_eq!(signer.key_id(), again.key_id());
    }

    /// A wrong key file is refused saying what it is, not with the
    /// decoder's words ("unsupported algorithm OID 1.3.101.112" for a P-256
    /// key, "NUL byte" for a junk file).
    #[test]
    fn a_wrong_key_file_is_refused_saying_what_it_is() {
        const P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBkZOcG8SX1ZR5FXv
gRjofWiYkUtOO/jT4B5N+y8vsdGhRANCAAQbmXe9uDqlD5cTL8MnkAIAOwbf4pjH
YCKxUTHFQLE0S7mRSPuVLRiVpwMCqQgI07Sdy073TqwmLGOTZTdFMOfm
-----END PRIVATE KEY-----
";
        let message = |pem: &str| CommandSigner::from_pkcs8_pem(pem).unwrap_err().to_string();
        let p256 = message(P256);
        assert!(
            p256.contains("elliptic-curve key") && p256.contains("1.2.840.10045.2.1"),
            "{p256}"
        );
        let junk = message("hello\0world, not a key");
        assert!(junk.contains("not a PEM file"), "{junk}");
        let signer = CommandSigner::generate();
        let public = message(&signer.public_key_pem().unwrap());
        assert!(public.contains("a public key"), "{public}");
        let sec1 = message("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
        assert!(sec1.contains("P-256"), "{sec1}");
        let private_as_public = CommandVerifier::from_public_key_pem(
            &signer.to_pkcs8_pem().unwrap(),
            Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(
            private_as_public.contains("a private key"),
            "{private_as_public}"
        );
    }

    mod fuzz {
        //! Property tests standing in for fuzzing (cargo-fuzz needs a nightly
        //! toolchain): hostile envelopes are refused, never a panic.
        //! `PROPTEST_CASES=100000 cargo test -p backout-proto fuzz` runs longer.
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn any_envelope_is_refused_or_accepted_never_a_panic(
                body in proptest::collection::vec(any::<u8>(), 0..512),
                signature in proptest::collection::vec(any::<u8>(), 0..80),
                key_id in ".{0,20}",
            ) {
                let (_, verifier) = pair();
                let signed = wire::SignedCommand { body, signature, key_id };
                prop_assert!(verifier.verify(&signed, 1_700_000_000_000).is_err());
            }

            #[test]
            fn validly_signed_garbage_is_refused_as_malformed(
                body in proptest::collection::vec(any::<u8>(), 0..512),
            ) {
                let (signer, verifier) = pair();
                let signature = signer.key.sign(&body).to_bytes().to_vec();
                let signed = wire::SignedCommand { body, signature, key_id: signer.key_id().into() };
                // The signature holds, so the refusal must be about the body:
                // random bytes never make a well-formed command (a 16-byte
                // nonce, a JSON object of params, every id, a validity
                // window), so the refusal is `malformed`, with a reason.
                let refused = verifier.verify(&signed, 1_700_000_000_000);
                prop_assert!(refused.is_err(), "validly signed garbage was accepted");
                let refused = refused.unwrap_err();
                prop_assert_eq!(refused.check, Check::Malformed, "{}", refused.detail);
                prop_assert!(!refused.detail.is_empty());
            }
        }
    }
}
