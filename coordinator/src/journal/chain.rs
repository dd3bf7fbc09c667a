//! The hash chain, the same for every store: each entry's hash covers its
//! sequence number, time, run, kind, body (as stored) and the previous
//! entry's hash, and a head (the last entry's seq and hash, written with
//! every append) says where the chain ends.
//!
//! What [`verify_from`] finds: an entry edited, removed, inserted or moved
//! without the hashes after it being recomputed (the chain breaks at the
//! first entry touched), and entries cut from the end without the head
//! being rewritten. What it does not find: a journal rewritten from some
//! entry on with every hash after it and the head recomputed, which anyone
//! able to write the file can do. Signed checkpoints of the head are what
//! would find that; they are not here yet.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry as stored: the fields the hash covers, and the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub seq: i64,
    pub at_ms: i64,
    pub run_id: String,
    pub kind: String,
    /// JSON text, exactly as stored.
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Where the chain ends: the last entry's seq and hash (0 and [`GENESIS`]
/// for an empty journal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    pub fn empty() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// The result of verifying a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry matches; `entries` were checked.
    Intact { entries: i64 },
    /// The first entry that does not match, and why.
    Broken { seq: i64, reason: String },
}

/// The hash of an entry: length-prefixed fields, so no two field lists
/// produce the same bytes.
pub fn entry_hash(
    seq: i64,
    at_ms: i64,
    run_id: &str,
    kind: &str,
    body: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    for field in [
        seq.to_string().as_str(),
        at_ms.to_string().as_str(),
        run_id,
        kind,
        body,
        prev_hash,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The rows chained after `head`, in order.
pub fn link(head: &Head, new: impl IntoIterator<Item = (i64, String, String, String)>) -> Vec<Row> {
    let (mut seq, mut prev) = (head.seq, head.hash.clone());
    new.into_iter()
        .map(|(at_ms, run_id, kind, body)| {
            seq += 1;
            let hash = entry_hash(seq, at_ms, &run_id, &kind, &body, &prev);
            Row {
                seq,
                at_ms,
                run_id,
                kind,
                body,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Walks every row from the first, then checks the head; reports the first
/// entry that does not match. The first row follows `base`: the last entry
/// moved to an archive, or [`Head::empty`] (the genesis) when none was.
/// `rows` and `head` must be read together (one transaction), so an append
/// in between cannot look like a cut tail.
pub fn verify_from(base: &Head, rows: &[Row], head: Option<&Head>) -> Verdict {
    let mut prev = base.hash.as_str();
    for (i, e) in rows.iter().enumerate() {
        let expected_seq = base.seq + i as i64 + 1;
        if e.seq != expected_seq {
            return Verdict::Broken {
                seq: expected_seq,
                reason: format!("entry {expected_seq} is missing (found {} next)", e.seq),
            };
        }
        if e.prev_hash != prev {
            return Verdict::Broken {
                seq: e.seq,
                reason: "its link to the previous entry does not match (an entry before it was removed, edited or moved)".into(),
            };
        }
        if entry_hash(e.seq, e.at_ms, &e.run_id, &e.kind, &e.body, &e.prev_hash) != e.hash {
            return Verdict::Broken {
                seq: e.seq,
                reason: "its content does not match its hash (it was edited)".into(),
            };
        }
        prev = &e.hash;
    }
    let last = rows
        .last()
        .map(|e| (e.seq, e.hash.as_str()))
        .or_else(|| (base.seq > 0).then_some((base.seq, base.hash.as_str())));
    match (head, last) {
        (None, None) => {}
        (Some(head), Some(last)) if (head.seq, head.hash.as_str()) == last => {}
        (Some(head), _) => {
            let seq = head.seq;
            return Verdict::Broken {
                seq,
                reason: format!(
                    "the journal's head names entry {seq}, which is not its last entry (entries were cut from the end)"
                ),
            };
        }
        (None, Some((seq, _))) => {
            return Verdict::Broken {
                seq,
                reason: "the journal has entries but no head".into(),
            };
        }
    }
    Verdict::Intact {
        entries: rows.len() as i64,
    }
}
