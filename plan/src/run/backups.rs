//! Data-changing steps need a verified backup earlier in the same run, as
//! the run is started: `plan check` sees the whole plan, but `rollback start
//! --phases down` (or an undo, or a remedy's phase) runs only some phases,
//! and a backup in a phase left out does not run. The rule is the plugin's:
//! an action whose schema says `x-needs-backup` (the `db` plugin's
//! `migrate-down`) needs, on each of its hosts, a step of the same plugin
//! running the named backup action with the same values, earlier in its own
//! phase or in a phase it runs `after` (directly or through others) in this
//! run.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::plan::RunPlan;
use crate::check::Catalog;

/// What one data-changing action needs before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsBackup {
    /// The plugin's backup action (`backup`).
    pub action: String,
    /// (this step's parameter, the backup step's parameter) pairs that must
    /// be equal: `db` = `db`, `backup_dir` = `dir`.
    pub same: Vec<(String, String)>,
}

/// The data-changing actions the plugins declare: (plugin, action) → rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupRules(pub BTreeMap<(String, String), NeedsBackup>);

impl BackupRules {
    /// Every action of `catalog` whose schema carries `x-needs-backup`.
    pub fn from_catalog(catalog: &Catalog) -> BackupRules {
        let mut rules = BTreeMap::new();
        for (plugin, spec) in &catalog.plugins {
            for (action, schema) in &spec.params {
                let Some(need) = schema.get("x-needs-backup") else {
                    continue;
                };
                let Some(backup) = need.get("action").and_then(Value::as_str) else {
                    continue;
                };
                let same = need
                    .get("same")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(mine, theirs)| {
                                Some((mine.clone(), theirs.as_str()?.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                rules.insert(
                    (plugin.clone(), action.clone()),
                    NeedsBackup {
                        action: backup.to_string(),
                        same,
                    },
                );
            }
        }
        BackupRules(rules)
    }
}

/// A data-changing step of a run with no backup before it on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBackup {
    pub phase: String,
    pub step: String,
    pub host: String,
    /// `db.migrate-down`.
    pub action: String,
    /// `db.backup`.
    pub backup: String,
    /// The values the backup must share, as `db = {...}, dir = "..."`.
    pub same: String,
}

impl std::fmt::Display for MissingBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step `{}/{}` ({}) on {} changes data, but no `{}` step with the same {} runs before it in this run",
            self.phase, self.step, self.action, self.host, self.backup, self.same
        )
    }
}

impl RunPlan {
    /// The data-changing steps of this run that no backup precedes on some
    /// host (empty: every one has its backup first).
    pub fn missing_backups(&self, rules: &BackupRules) -> Vec<MissingBackup> {
        let params = |json: &str| -> Value { serde_json::from_str(json).unwrap_or(Value::Null) };
        // The phases each phase runs after in this run, directly or not.
        let before = |phase: &str| -> BTreeSet<&str> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![phase];
            while let Some(p) = todo.pop() {
                for q in self.phases.iter().filter(|q| q.id == p) {
                    for a in &q.after {
                        if seen.insert(a.as_str()) {
                            todo.push(a.as_str());
                        }
                    }
                }
            }
            seen
        };
        let mut missing = Vec::new();
        for phase in &self.phases {
            let earlier_phases = before(&phase.id);
            for (index, step) in phase.steps.iter().enumerate() {
                let Some(need) = rules.0.get(&(step.plugin.clone(), step.action.clone())) else {
                    continue;
                };
                let mine = params(&step.params_json);
                let matches = |other: &super::plan::StepPlan, host: &str| {
                    let theirs = params(&other.params_json);
                    other.plugin == step.plugin
                        && other.action == need.action
                        && other.hosts.iter().any(|h| h == host)
                        && need.same.iter().all(|(m, t)| mine.get(m) == theirs.get(t))
                };
                for host in &step.hosts {
                    let in_phase = phase.steps[..index].iter().any(|o| matches(o, host));
                    let in_earlier = self
                        .phases
                        .iter()
                        .filter(|p| earlier_phases.contains(p.id.as_str()))
                        .flat_map(|p| p.steps.iter())
                        .any(|o| matches(o, host));
                    if in_phase || in_earlier {
                        continue;
                    }
                    let same: Vec<String> = need
                        .same
                        .iter()
                        .map(|(m, _)| {
                            let v = mine.get(m).map_or("(none)".into(), Value::to_string);
                            format!("{m} = {v}")
                        })
                        .collect();
                    missing.push(MissingBackup {
                        phase: phase.id.clone(),
                        step: step.id.clone(),
                        host: host.clone(),
                        action: format!("{}.{}", step.plugin, step.action),
                        backup: format!("{}.{}", step.plugin, need.action),
                        same: same.join(", "),
                    });
                }
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::check::PluginSpec;
    use crate::run::{PhasePlan, StepPlan};
    use crate::sections::OnFailure;

    fn rules() -> BackupRules {
        let spec = PluginSpec {
            actions: vec!["backup".into(), "migrate-down".into()],
            params: BTreeMap::from([(
                "migrate-down".to_string(),
                json!({"type": "object", "x-needs-backup": {"action": "backup", "same": {"db": "db", "backup_dir": "dir"}}}),
            )]),
            source: "test".into(),
        };
        BackupRules::from_catalog(&Catalog {
            plugins: BTreeMap::from([("db".to_string(), spec)]),
            complete: true,
            checks: None,
        })
    }

    fn step(id: &str, action: &str, params: Value, hosts: &[&str]) -> StepPlan {
        StepPlan {
            id: id.into(),
            plugin: "db".into(),
            action: action.into(),
            params_json: params.to_string(),
            timeout: None,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            on_failure: OnFailure::Halt,
            retries: 0,
            backoff: Duration::from_secs(1),
        }
    }

    fn phase(id: &str, after: &[&str], steps: Vec<StepPlan>) -> PhasePlan {
        PhasePlan {
            id: id.into(),
            after: after.iter().map(|a| a.to_string()).collect(),
            approvals: Vec::new(),
            time_limit: None,
            rolling: 0,
            steps,
        }
    }

    fn run(phases: Vec<PhasePlan>) -> RunPlan {
        RunPlan {
            approvals: Vec::new(),
            self_approval: false,
            phases,
        }
    }

    fn backup(hosts: &[&str]) -> StepPlan {
        step(
            "save",
            "backup",
            json!({"db": {"dbname": "shop"}, "dir": "/b"}),
            hosts,
        )
    }

    fn down(hosts: &[&str]) -> StepPlan {
        step(
            "down",
            "migrate-down",
            json!({"db": {"dbname": "shop"}, "backup_dir": "/b", "target": "3"}),
            hosts,
        )
    }

    #[test]
    fn a_migration_whose_backup_phase_was_left_out_of_the_run_is_missing_its_backup() {
        // `--phases down`: the `save` phase is not in the run, so `down`'s
        // `after` no longer names it (RunPlan::new drops it).
        let missing =
            run(vec![phase("down", &[], vec![down(&["db-1"])])]).missing_backups(&rules());
        assert_eq!(missing.len(), 1);
        let m = &missing[0];
        assert_eq!(
            m.to_string(),
            "step `down/down` (db.migrate-down) on db-1 changes data, but no `db.backup` step with the same backup_dir = \"/b\", db = {\"dbname\":\"shop\"} runs before it in this run"
        );
    }

    #[test]
    fn a_backup_earlier_in_the_phase_or_in_a_phase_it_runs_after_is_enough() {
        let same_phase = run(vec![phase(
            "down",
            &[],
            vec![backup(&["db-1"]), down(&["db-1"])],
        )]);
        assert!(same_phase.missing_backups(&rules()).is_empty());
        let chained = run(vec![
            phase("save", &[], vec![backup(&["db-1"])]),
            phase("mid", &["save"], Vec::new()),
            phase("down", &["mid"], vec![down(&["db-1"])]),
        ]);
        assert!(chained.missing_backups(&rules()).is_empty());
    }

    #[test]
    fn a_backup_after_the_migration_of_another_database_or_host_is_not_enough() {
        let later = run(vec![phase(
            "down",
            &[],
            vec![down(&["db-1"]), backup(&["db-1"])],
        )]);
        assert_eq!(later.missing_backups(&rules()).len(), 1);
        let other_host = run(vec![phase(
            "down",
            &[],
            vec![backup(&["db-2"]), down(&["db-1", "db-2"])],
        )]);
        let missing = other_host.missing_backups(&rules());
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].host, "db-1");
        let mut other_db = backup(&["db-1"]);
        other_db.params_json = json!({"db": {"dbname": "other"}, "dir": "/b"}).to_string();
        let other = run(vec![phase("down", &[], vec![other_db, down(&["db-1"])])]);
        assert_eq!(other.missing_backups(&rules()).len(), 1);
        // A phase not ordered before (parallel) does not count either.
        let parallel = run(vec![
            phase("save", &[], vec![backup(&["db-1"])]),
            phase("down", &[], vec![down(&["db-1"])]),
        ]);
        assert_eq!(parallel.missing_backups(&rules()).len(), 1);
    }
}
