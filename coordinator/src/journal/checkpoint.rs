//! Signed checkpoints of the journal's head (issue 14, item 4).
//!
//! The hash chain alone (`chain.rs`) cannot tell a journal rewritten from
//! some entry on, with every hash after it and the head recomputed, from the
//! original: anyone who can write the file can do that. A checkpoint is the
//! coordinator's signature over (seq, hash, time) of the chain's head, made
//! with the checkpoint key (`checkpoint-signing.key`, made by `backout pki
//! init`; ed25519, separate from the command key, its public half
//! `checkpoint-signing.pub` held by operators). It is written as a journal
//! entry of its own (`journal.checkpoint`) at every run's end and every
//! `checkpoint_every` entries ([`DEFAULT_EVERY`]).
//!
//! What [`check`] finds, given the public key: a checkpoint whose signature
//! does not verify (one forged, or edited, by someone without the key), a
//! checkpoint whose signed hash is not the hash of the entry it names (the
//! chain was rewritten under it: "checkpoint mismatch"), and a run's end no
//! checkpoint covers (checkpoints removed). Given the checkpoint announced
//! at a run's end (printed in its report, sent in its end message: `SEQ:HASH`),
//! it finds a journal cut after that entry, or rewritten before it. What it
//! cannot find: entries cut after the last checkpoint when nobody holds an
//! announced checkpoint later than it; and someone holding the checkpoint
//! key (the coordinator's host) can sign a rewritten chain.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::chain::{Head, Row};
use super::record::Record;

/// Entries between two checkpoints, unless the configuration says
/// otherwise (`checkpoint_every`): a journal cut or rewritten after the last
/// one loses at most this many entries unseen by a checkpoint.
pub const DEFAULT_EVERY: u64 = crate::config::DEFAULT_CHECKPOINT_EVERY;

/// The kind of a checkpoint entry.
pub const KIND: &str = "journal.checkpoint";

/// File names of the checkpoint key pair inside a PKI directory.
pub const KEY_FILE: &str = "checkpoint-signing.key";
pub const PUB_FILE: &str = "checkpoint-signing.pub";

/// What the signature says: entry `seq` of the chain has hash `hash`, as
/// of `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The entry it covers: the chain's last entry when it was signed.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When it was signed (Unix milliseconds).
    pub at_ms: i64,
    /// The signing key's id (hex of the first 8 bytes of its SHA-256).
    pub key_id: String,
    /// The ed25519 signature over [`message`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// `SEQ:HASH`, as announced and as `audit verify --checkpoint` takes it.
    pub fn announced(&self) -> String {
        format!("{}:{}", self.seq, self.hash)
    }
}

/// The bytes signed: a fixed label (a checkpoint signature is good for
/// nothing else) and the three fields, each length-prefixed.
pub fn message(seq: i64, hash: &str, at_ms: i64) -> Vec<u8> {
    let mut m = b"backout journal checkpoint v1\n".to_vec();
    for field in [seq.to_string(), hash.to_string(), at_ms.to_string()] {
        m.extend((field.len() as u64).to_be_bytes());
        m.extend(field.as_bytes());
    }
    m
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// The coordinator's checkpoint signer.
pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl CheckpointSigner {
    pub fn new(key: SigningKey) -> CheckpointSigner {
        let key_id = backout_proto::command::key_id(&key.verifying_key());
        CheckpointSigner { key, key_id }
    }

    /// Reads an ed25519 private key in PKCS#8 PEM (as `pki init` writes it).
    pub fn from_pkcs8_pem(pem: &str) -> Result<CheckpointSigner, KeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(CheckpointSigner::new)
            .map_err(|e| {
                KeyError(format!(
                    "not an ed25519 private key in PKCS#8 PEM ({e}); expected `-----BEGIN PRIVATE KEY-----`, made by `backout pki init` as {KEY_FILE}"
                ))
            })
    }

    pub fn public(&self) -> CheckpointKey {
        CheckpointKey(self.key.verifying_key())
    }

    /// Signs entry `seq` with hash `hash` as of `at_ms`.
    pub fn sign(&self, seq: i64, hash: &str, at_ms: i64) -> Checkpoint {
        let signature = self.key.sign(&message(seq, hash, at_ms));
        Checkpoint {
            seq,
            hash: hash.to_string(),
            at_ms,
            key_id: self.key_id.clone(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// The public half, as operators hold it.
#[derive(Debug, Clone)]
pub struct CheckpointKey(VerifyingKey);

impl CheckpointKey {
    /// Reads the public key (SPKI PEM, `checkpoint-signing.pub`), or, on
    /// the coordinator's host, the private key it is the half of.
    pub fn from_pem(pem: &str) -> Result<CheckpointKey, KeyError> {
        if let Ok(key) = VerifyingKey::from_public_key_pem(pem) {
            return Ok(CheckpointKey(key));
        }
        match SigningKey::from_pkcs8_pem(pem) {
            Ok(key) => Ok(CheckpointKey(key.verifying_key())),
            Err(_) => Err(KeyError(format!(
                "not an ed25519 key in PEM; expected the checkpoint key's public half (`-----BEGIN PUBLIC KEY-----`, {PUB_FILE} made by `backout pki init`)"
            ))),
        }
    }

    pub fn key_id(&self) -> String {
        backout_proto::command::key_id(&self.0)
    }

    /// Whether `c` was signed by this key.
    pub fn verifies(&self, c: &Checkpoint) -> bool {
        let Ok(bytes) = hex::decode(&c.signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.0
            .verify(&message(c.seq, &c.hash, c.at_ms), &signature)
            .is_ok()
    }
}

/// A checkpoint someone holds outside the journal: `SEQ:HASH` (from a
/// run's report or end message), or only the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub seq: Option<i64>,
    pub hash: String,
}

impl std::str::FromStr for Announced {
    type Err = String;

    fn from_str(s: &str) -> Result<Announced, String> {
        let (seq, hash) = match s.split_once(':') {
            Some((seq, hash)) => (
                Some(
                    seq.trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            format!(
                                "`{seq}` is not an entry number (expected SEQ:HASH, e.g. 42:3f9a…)"
                            )
                        })?,
                ),
                hash,
            ),
            None => (None, s),
        };
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{hash}` is not an entry hash (64 hex digits; expected SEQ:HASH or HASH, as a run's report prints it)"
            ));
        }
        Ok(Announced { seq, hash })
    }
}

/// What [`check`] found in a journal whose checkpoints hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    /// Checkpoints read (with a key: whose signatures verified).
    pub checkpoints: usize,
    /// Whether signatures were checked (a key was given).
    pub signed: bool,
    /// The last checkpoint, if any.
    pub last: Option<Checkpoint>,
    /// Entries after the entry the last checkpoint covers (signed by none
    /// yet).
    pub after_last: i64,
    /// The announced checkpoint, found as announced.
    pub announced: Option<String>,
}

/// Checks the checkpoints among `rows` (a chain that `chain::verify_from`
/// found intact, starting after `base`): their signatures with `key`, that
/// each names an entry with the hash it signed, that every run's end is
/// covered by one (with a key), and that `announced` is in the chain.
/// `Err((seq, reason))`: the first problem.
pub fn check(
    base: &Head,
    rows: &[Row],
    key: Option<&CheckpointKey>,
    announced: Option<&Announced>,
) -> Result<Found, (i64, String)> {
    let hashes: BTreeMap<i64, &str> = std::iter::once((base.seq, base.hash.as_str()))
        .filter(|(seq, _)| *seq > 0)
        .chain(rows.iter().map(|r| (r.seq, r.hash.as_str())))
        .collect();
    let mut found = Found {
        signed: key.is_some(),
        ..Found::default()
    };
    // The last run's end, and the highest entry a checkpoint covers.
    let mut last_end: Option<(i64, &str)> = None;
    let mut covered = 0;
    for row in rows {
        if row.kind == "run.ended" {
            last_end = Some((row.seq, &row.run_id));
        }
        if row.kind != KIND {
            continue;
        }
        let c = match Record::decode(&row.kind, &row.body) {
            Ok(Record::Checkpoint(c)) => c,
            _ => return Err((row.seq, format!("checkpoint {} cannot be read", row.seq))),
        };
        if let Some(key) = key
            && c.key_id != key.key_id()
        {
            return Err((
                row.seq,
                format!(
                    "checkpoint {} names the key {} that signed it, not the checkpoint key given ({}): either the key given is not the checkpoint key's public half (`checkpoint-signing.pub`), or the journal was signed again with another key",
                    row.seq,
                    c.key_id,
                    key.key_id()
                ),
            ));
        }
        if let Some(key) = key
            && !key.verifies(&c)
        {
            return Err((
                row.seq,
                format!(
                    "checkpoint {} signature does not verify against the checkpoint key {} (it was forged or edited: the journal was rewritten)",
                    row.seq,
                    key.key_id()
                ),
            ));
        }
        if c.seq >= row.seq {
            return Err((
                row.seq,
                format!(
                    "checkpoint mismatch: checkpoint {} names entry {}, which is not before it",
                    row.seq, c.seq
                ),
            ));
        }
        match hashes.get(&c.seq) {
            Some(hash) if *hash == c.hash => {}
            Some(hash) => {
                return Err((
                    c.seq,
                    format!(
                        "checkpoint mismatch: checkpoint {} signed entry {} with hash {}, but the journal's entry {} has hash {hash} (the chain was rewritten from there on, its hashes recomputed)",
                        row.seq, c.seq, c.hash, c.seq
                    ),
                ));
            }
            // In an archive not given: its signature is all that is checked.
            None => {}
        }
        covered = covered.max(c.seq);
        found.checkpoints += 1;
        found.last = Some(c);
    }
    if key.is_some()
        && let Some((seq, run)) = last_end
        && seq > covered
    {
        return Err((
            seq,
            format!(
                "run {run} ended at entry {seq} and no signed checkpoint covers it (checkpoints were removed, or the journal was written without a checkpoint key)"
            ),
        ));
    }
    let last_seq = rows.last().map_or(base.seq, |r| r.seq);
    found.after_last = match &found.last {
        // The checkpoint entry itself is not counted.
        Some(c) => rows
            .iter()
            .filter(|r| r.seq > c.seq && r.kind != KIND)
            .count() as i64,
        None => rows.len() as i64,
    };
    if let Some(a) = announced {
        found.announced = Some(check_announced(base, rows, &hashes, last_seq, a)?);
    }
    Ok(found)
}

/// That the chain holds the announced checkpoint; its `SEQ:HASH`.
fn check_announced(
    base: &Head,
    rows: &[Row],
    hashes: &BTreeMap<i64, &str>,
    last_seq: i64,
    a: &Announced,
) -> Result<String, (i64, String)> {
    let seq = match a.seq {
        Some(seq) => seq,
        // Only the hash: the entry that has it.
        None => match rows.iter().find(|r| r.hash == a.hash) {
            Some(r) => r.seq,
            None if base.hash == a.hash && base.seq > 0 => base.seq,
            None => {
                return Err((
                    last_seq,
                    format!(
                        "checkpoint mismatch: no entry of the journal (entries {}..={last_seq}) has the announced hash {} (entries were cut, or the chain was rewritten)",
                        base.seq + 1,
                        a.hash
                    ),
                ));
            }
        },
    };
    if seq > last_seq {
        return Err((
            last_seq,
            format!(
                "the announced checkpoint {seq}:{} names entry {seq}, but the journal ends at entry {last_seq} (entries were cut after it)",
                a.hash
            ),
        ));
    }
    match hashes.get(&seq) {
        Some(hash) if *hash == a.hash => Ok(format!("{seq}:{}", a.hash)),
        Some(hash) => Err((
            seq,
            format!(
                "checkpoint mismatch: the announced checkpoint {seq}:{} does not match the journal's entry {seq}, whose hash is {hash} (the chain was rewritten)",
                a.hash
            ),
        )),
        None => Err((
            seq,
            format!(
                "the announced checkpoint names entry {seq}, which is in an archive not given (--archive FILE, oldest first)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
