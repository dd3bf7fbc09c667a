//! Who led a run (a PostgreSQL journal's leader lease): the leader when it
//! started and each takeover during it, from the `lease.taken` records: the
//! epochs, the holders, when, how long the run was without a leader, and
//! the steps the new leader asked again under their step ids. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::journal::{Entry, LeaseTaken, Record, lease_end};
use crate::text::{human_ms, rfc3339};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leadership {
    /// The leader when the run was created (`None`: the journal does not
    /// say, e.g. it was written before takeovers were journaled).
    pub led_at_start: Option<Leader>,
    pub takeovers: Vec<Takeover>,
    /// Steps (step ids) with an outcome journaled.
    pub steps: usize,
    /// Step ids with more than one outcome journaled (empty: each step was
    /// answered once).
    pub answered_twice: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leader {
    pub holder: String,
    pub epoch: u64,
    /// When it took the lease.
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Takeover {
    /// When the new leader journaled it (before carrying any run on).
    pub at_ms: i64,
    pub from_epoch: u64,
    /// The previous leader, if the journal names it.
    pub from_holder: Option<String>,
    pub epoch: u64,
    pub holder: String,
    /// `released` or `expired`.
    pub previous: String,
    /// From the previous epoch's end (its release, or its leader's last
    /// renewal) to the takeover.
    pub without_leader_ms: i64,
    /// Steps sent before the takeover and asked again after it, under the
    /// same step ids (the agents answer a step they ran from their ledgers).
    pub re_asked: usize,
    /// Of those, answered after the takeover.
    pub re_asked_answered: usize,
}

/// `None` when the journal has no takeover record up to the run's end (a
/// SQLite journal: one coordinator).
pub fn leadership(run_id: &str, entries: &[Entry], context: &[Entry]) -> Option<Leadership> {
    let created = entries
        .iter()
        .find(|e| matches!(e.record, Record::RunCreated(_)))?
        .seq;
    let ended = entries
        .iter()
        .find(|e| matches!(e.record, Record::RunEnded { .. }))
        .map_or(i64::MAX, |e| e.seq);
    let leases: Vec<(&Entry, &LeaseTaken)> = context
        .iter()
        .filter_map(|e| match &e.record {
            Record::LeaseTaken(t) if e.seq <= ended => Some((e, t)),
            _ => None,
        })
        .collect();
    if leases.is_empty() {
        return None;
    }
    let led_at_start = leases
        .iter()
        .rev()
        .find(|(e, _)| e.seq < created)
        .map(|(e, t)| Leader {
            holder: t.holder.clone(),
            epoch: t.epoch,
            since_ms: e.at_ms,
        });
    // Each step id's sends (by seq) and outcomes.
    let prefix = format!("{run_id}/");
    let mut sent: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut answered: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in entries {
        match &e.record {
            Record::CommandSent(c) => {
                let id = c.step_id.strip_prefix(&prefix).unwrap_or(&c.step_id);
                sent.entry(id.to_string()).or_default().push(e.seq);
            }
            Record::RunFinished(f) => {
                let id = format!("{}/{}/{}#{}", f.phase, f.step, f.host, f.attempt);
                answered.entry(id).or_default().push(e.seq);
            }
            _ => {}
        }
    }
    let takeovers = leases
        .iter()
        .enumerate()
        .filter(|(_, (e, t))| e.seq > created && t.previous != lease_end::NONE)
        .map(|(i, (e, t))| {
            let from_holder = i
                .checked_sub(1)
                .and_then(|j| leases.get(j))
                .filter(|(_, before)| before.epoch + 1 == t.epoch)
                .map(|(_, before)| before.holder.clone());
            let re_asked: BTreeSet<&String> = sent
                .iter()
                .filter(|(_, seqs)| {
                    seqs.iter().any(|s| *s < e.seq) && seqs.iter().any(|s| *s > e.seq)
                })
                .map(|(id, _)| id)
                .collect();
            let re_asked_answered = re_asked
                .iter()
                .filter(|id| {
                    answered
                        .get(**id)
                        .is_some_and(|a| a.iter().any(|s| *s > e.seq))
                })
                .count();
            Takeover {
                at_ms: e.at_ms,
                from_epoch: t.epoch.saturating_sub(1),
                from_holder,
                epoch: t.epoch,
                holder: t.holder.clone(),
                previous: t.previous.clone(),
                without_leader_ms: t.vacant_ms,
                re_asked: re_asked.len(),
                re_asked_answered,
            }
        })
        .collect();
    Some(Leadership {
        led_at_start,
        takeovers,
        steps: answered.len(),
        answered_twice: answered
            .iter()
            .filter(|(_, a)| a.len() > 1)
            .map(|(id, _)| id.clone())
            .collect(),
    })
}

/// The section's sentences, for both renderings (plain text: the HTML
/// escapes them).
pub fn words(l: &Leadership) -> Vec<String> {
    let mut out = Vec::new();
    out.push(match &l.led_at_start {
        Some(s) => format!(
            "Led at the start by {} (epoch {}, since {}).",
            s.holder,
            s.epoch,
            rfc3339(s.since_ms)
        ),
        None => "The journal does not say which coordinator led at the start.".into(),
    });
    if l.takeovers.is_empty() {
        out.push("No takeover during the run: one coordinator led it throughout.".into());
    }
    for t in &l.takeovers {
        let how = if t.previous == lease_end::RELEASED {
            format!(
                "the leader released the lease (it was stopped); without a leader for {} from the release to the takeover",
                human_ms(t.without_leader_ms)
            )
        } else {
            format!(
                "the lease expired (the leader died, paused or was cut off); without a leader for at most {}, from its last renewal to the takeover",
                human_ms(t.without_leader_ms)
            )
        };
        out.push(format!(
            "Takeover at {}: epoch {} ({}) → epoch {} ({}): {how}.",
            rfc3339(t.at_ms),
            t.from_epoch,
            t.from_holder.as_deref().unwrap_or("holder not journaled"),
            t.epoch,
            t.holder,
        ));
        out.push(format!(
            "After it, {} step(s) in flight were asked again under their step ids and {} of them answered (an agent answers a step it already ran from its ledger, without running it again).",
            t.re_asked, t.re_asked_answered
        ));
    }
    out.push(if l.answered_twice.is_empty() {
        format!(
            "Every step ran once: each of the {} step(s) has exactly one outcome in the journal.",
            l.steps
        )
    } else {
        format!(
            "{} step(s) have more than one outcome in the journal: {}.",
            l.answered_twice.len(),
            l.answered_twice.join(", ")
        )
    });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::journal::{CommandSent, Finished};
    use backout_plan::run::Outcome;

    fn entry(seq: i64, run_id: &str, record: Record) -> Entry {
        Entry {
            seq,
            at_ms: seq * 1000,
            run_id: run_id.into(),
            record,
        }
    }

    fn taken(epoch: u64, holder: &str, previous: &str, vacant_ms: i64) -> Record {
        Record::LeaseTaken(LeaseTaken {
            epoch,
            holder: holder.into(),
            previous: previous.into(),
            vacant_ms,
        })
    }

    fn sent(step: &str) -> Record {
        Record::CommandSent(CommandSent {
            command_id: format!("c-{step}"),
            step_id: format!("r-1/app/stop/{step}#1"),
            agent: step.into(),
            plugin: "testbed".into(),
            plugin_sha256: "00".into(),
            action: "mark".into(),
            params: serde_json::Value::Null,
            dry_run: false,
            expires_at_ms: 0,
        })
    }

    fn finished(host: &str) -> Record {
        Record::RunFinished(Finished {
            phase: "app".into(),
            step: "stop".into(),
            host: host.into(),
            attempt: 1,
            outcome: Outcome::Succeeded,
            ran_ms: None,
            output: None,
            data: None,
        })
    }

    fn created() -> Record {
        serde_json::from_value(serde_json::json!({
            "kind": "run.created", "reason": "r", "to_version": "", "phases": [],
            "dry_run": false, "drill": false, "by": "dave",
            "plan": { "approvals": [], "self_approval": false, "phases": [] }
        }))
        .unwrap()
    }

    #[test]
    fn a_takeover_mid_run_is_told_with_its_epochs_gap_and_re_asked_steps() {
        let context = vec![
            entry(1, "", taken(1, "a:1", lease_end::NONE, 0)),
            entry(5, "", taken(2, "b:1", lease_end::EXPIRED, 2_300)),
        ];
        let entries = vec![
            entry(2, "r-1", created()),
            entry(3, "r-1", sent("app-1")),
            entry(4, "r-1", sent("app-2")),
            // app-2 answered, app-1's answer lost with the leader.
            entry(4, "r-1", finished("app-2")),
            entry(6, "r-1", sent("app-1")),
            entry(7, "r-1", finished("app-1")),
        ];
        let l = leadership("r-1", &entries, &context).unwrap();
        assert_eq!(
            l.led_at_start,
            Some(Leader {
                holder: "a:1".into(),
                epoch: 1,
                since_ms: 1000
            })
        );
        assert_eq!(l.takeovers.len(), 1);
        let t = &l.takeovers[0];
        assert_eq!(
            (
                t.from_epoch,
                t.from_holder.as_deref(),
                t.epoch,
                t.holder.as_str()
            ),
            (1, Some("a:1"), 2, "b:1")
        );
        assert_eq!(
            (t.re_asked, t.re_asked_answered, t.without_leader_ms),
            (1, 1, 2_300)
        );
        assert_eq!((l.steps, l.answered_twice.len()), (2, 0));
        let text = words(&l).join("\n");
        assert!(text.contains("epoch 1 (a:1) → epoch 2 (b:1)"), "{text}");
        assert!(text.contains("at most 2.3 s"), "{text}");
        assert!(text.contains("Every step ran once"), "{text}");
    }

    #[test]
    fn a_sqlite_journal_has_no_leadership_section_and_twice_answered_steps_are_named() {
        let entries = vec![
            entry(2, "r-1", created()),
            entry(3, "r-1", finished("app-1")),
            entry(4, "r-1", finished("app-1")),
        ];
        assert_eq!(leadership("r-1", &entries, &[]), None);
        let context = vec![entry(1, "", taken(1, "a:1", lease_end::NONE, 0))];
        let l = leadership("r-1", &entries, &context).unwrap();
        assert!(l.takeovers.is_empty());
        assert_eq!(l.answered_twice, vec!["app/stop/app-1#1".to_string()]);
        let text = words(&l).join("\n");
        assert!(text.contains("No takeover"), "{text}");
        assert!(text.contains("more than one outcome"), "{text}");
    }
}
