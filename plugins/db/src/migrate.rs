//! `migrate-down` and `audit`: the migrations table against the folder.

use backout_plugin_sdk::host::{self, ExecRequest};
use backout_plugin_sdk::{Outcome, PluginError, Step};
use serde_json::{Value, json};

use crate::migrations::{self, PlanError};
use crate::params::{self, Db, Migrations};
use crate::{backup, pg, sql};

/// The largest down file read (the host's own cap on one read).
const MAX_SQL: u64 = 16 * 1024 * 1024;

fn plan_error(e: PlanError) -> PluginError {
    let code = match e {
        PlanError::Unorderable(_) => "unorderable",
        PlanError::UnknownTarget(_) | PlanError::AmbiguousTarget(..) => "unknown-target",
    };
    PluginError::new(code, e.to_string())
}

/// The applied migration ids, from the migrations table.
fn applied(db: &Db, m: &Migrations) -> Result<Vec<String>, PluginError> {
    let query = sql::applied_sql(&m.table, &m.column).map_err(params::bad)?;
    let value = pg::query_json(db, &query)?;
    serde_json::from_value(value).map_err(|e| {
        PluginError::new(
            "query-failed",
            format!("{} is not a list of ids: {e}", m.table),
        )
    })
}

fn file_of(m: &Migrations, id: &str, direction: &str) -> String {
    sql::join(&m.dir, &format!("{id}.{direction}.sql"))
}

pub fn migrate_down(step: &Step) -> Result<Outcome, PluginError> {
    let p: params::MigrateDown = step.params()?;
    p.validate()?;
    let run = sql::run_id(&step.id).map_err(params::bad)?;
    let db = &p.db;

    if step.dry_run {
        return dry_run(&p);
    }
    let marker = backup::require(&p.backup_dir, &run, db)?;
    host::log_info(&format!(
        "verified backup of run {run}: {} ({} bytes, sha256 {})",
        marker.file, marker.size, marker.sha256
    ));
    match (&p.migrations, &p.command) {
        (Some(m), _) => built_in(&p, m, &marker),
        (None, Some(command)) => external(&p, command, &marker),
        (None, None) => Err(params::bad("give migrations or command")),
    }
}

/// The down files of `revert`, or `irreversible` naming the migrations
/// without one.
fn read_downs(m: &Migrations, revert: &[String]) -> Result<Vec<(String, String)>, PluginError> {
    let mut downs = Vec::new();
    let mut missing = Vec::new();
    for id in revert {
        match pg::read_optional(&file_of(m, id, "down"), MAX_SQL)? {
            Some(sql) => downs.push((id.clone(), sql)),
            None => missing.push(id.clone()),
        }
    }
    if missing.is_empty() {
        Ok(downs)
    } else {
        Err(PluginError::new(
            "irreversible",
            format!(
                "no down file for {} in {}: irreversible, nothing was applied",
                missing.join(", "),
                m.dir
            ),
        ))
    }
}

/// Resolves the target against the applied ids, or a file of the folder.
fn target_of(
    p: &params::MigrateDown,
    m: &Migrations,
    applied: &[String],
) -> Result<String, PluginError> {
    match migrations::resolve_target(&p.target, applied) {
        Ok(id) => Ok(id),
        Err(PlanError::UnknownTarget(t))
            if migrations::valid_id(&t)
                && pg::read_optional(&file_of(m, &t, "up"), 1)?.is_some() =>
        {
            Ok(t)
        }
        Err(e) => Err(plan_error(e)),
    }
}

fn built_in(
    p: &params::MigrateDown,
    m: &Migrations,
    marker: &backup::Marker,
) -> Result<Outcome, PluginError> {
    let db = &p.db;
    let before = applied(db, m)?;
    let target = target_of(p, m, &before)?;
    let plan = migrations::plan_down(&target, &before).map_err(plan_error)?;
    if plan.revert.is_empty() {
        return Ok(Outcome::new(
            format!(
                "{} is already at {target}: nothing to roll back",
                db.describe()
            ),
            json!({ "target": target, "reverted": [], "applied": before, "backup": marker.file, "changed": [] }),
        ));
    }
    let downs = read_downs(m, &plan.revert)?;
    host::progress(
        0,
        1,
        &format!(
            "applying {} down migrations: {}",
            downs.len(),
            plan.revert.join(", ")
        ),
    );
    let script = sql::down_script(&m.table, &m.column, &downs).map_err(params::bad)?;
    pg::run_script(db, &script)?;
    let after = applied(db, m)?;
    let left: Vec<&String> = plan.revert.iter().filter(|id| after.contains(id)).collect();
    if !left.is_empty() {
        return Err(PluginError::new(
            "migrate-unverified",
            format!("the down files ran but {} still list {left:?}", m.table),
        ));
    }
    host::progress(1, 1, &format!("rolled back to {target}"));
    host::emit_json("reverted", &plan.revert);
    let summary = format!(
        "rolled {} back to {target}: {} down migrations applied ({})",
        db.describe(),
        plan.revert.len(),
        plan.revert.join(", ")
    );
    let changed: Vec<String> = plan
        .revert
        .iter()
        .map(|id| format!("reverted {id}"))
        .collect();
    Ok(Outcome::new(
        summary,
        json!({
            "target": target,
            "reverted": plan.revert,
            "applied_before": before,
            "applied_after": after,
            "backup": marker.file,
            "changed": changed,
        }),
    ))
}

/// The command with `{target}` filled in.
fn command_words(command: &[String], target: &str) -> Vec<String> {
    command
        .iter()
        .map(|w| w.replace("{target}", target))
        .collect()
}

fn external(
    p: &params::MigrateDown,
    command: &[String],
    marker: &backup::Marker,
) -> Result<Outcome, PluginError> {
    let words = command_words(command, &p.target);
    let (program, args) = words
        .split_first()
        .ok_or_else(|| params::bad("command is empty"))?;
    let mut request = ExecRequest::new(program.clone(), args.iter().cloned());
    request.env = p.db.env(false);
    request.cwd = p.cwd.clone();
    host::progress(0, 1, &format!("running {}", words.join(" ")));
    let out = request.run()?;
    let stdout = pg::tail(&out.stdout_text());
    if !out.success() {
        return Err(PluginError::new(
            "migrate-failed",
            format!("{} {}", words.join(" "), pg::failure(&out)),
        ));
    }
    host::progress(1, 1, &format!("rolled back to {}", p.target));
    Ok(Outcome::new(
        format!(
            "rolled {} back to {} with {}",
            p.db.describe(),
            p.target,
            words.join(" ")
        ),
        json!({
            "target": p.target,
            "command": words,
            "exit_code": out.exit_code,
            "output": stdout,
            "backup": marker.file,
            "changed": [format!("ran {}", words.join(" "))],
        }),
    ))
}

/// What `migrate-down` would do, with what a dry run may read.
fn dry_run(p: &params::MigrateDown) -> Result<Outcome, PluginError> {
    let db = &p.db;
    let needs = format!(
        "needs the verified backup of this run in {} (the backup step; a dry run makes none)",
        p.backup_dir
    );
    let (would, detail) = match (&p.migrations, &p.command) {
        (Some(m), _) => match applied(db, m) {
            Ok(before) => {
                let target = target_of(p, m, &before)?;
                let plan = migrations::plan_down(&target, &before).map_err(plan_error)?;
                let irreversible = migrations::irreversible(&plan.revert, |id| {
                    matches!(pg::read_optional(&file_of(m, id, "down"), 1), Ok(Some(_)))
                });
                let would = if !irreversible.is_empty() {
                    format!(
                        "would refuse: no down file for {} (irreversible)",
                        irreversible.join(", ")
                    )
                } else if plan.revert.is_empty() {
                    format!("would apply nothing: {} is at {target}", db.describe())
                } else {
                    format!(
                        "would apply {} down migrations to {}: {} (newest first, one transaction) to reach {target}",
                        plan.revert.len(),
                        db.describe(),
                        plan.revert.join(", ")
                    )
                };
                (
                    would,
                    json!({ "target": target, "revert": plan.revert, "irreversible": irreversible }),
                )
            }
            Err(e) => (
                format!(
                    "would roll {} back to {} with the down files in {} (the applied migrations could not be read in the dry run: {})",
                    db.describe(),
                    p.target,
                    m.dir,
                    e.message
                ),
                json!({ "target": p.target }),
            ),
        },
        (None, Some(command)) => (
            format!(
                "would run {}{}",
                command_words(command, &p.target).join(" "),
                p.cwd
                    .as_ref()
                    .map(|c| format!(" in {c}"))
                    .unwrap_or_default()
            ),
            json!({ "target": p.target }),
        ),
        (None, None) => return Err(params::bad("give migrations or command")),
    };
    let text = format!("{would}; {needs}");
    Ok(Outcome::new(
        text.clone(),
        json!({ "dry_run": true, "would": text, "plan": detail, "changed": [] }),
    ))
}

/// The migration files of the folder (`ls` with the folder as working
/// directory, so the host checks the folder's grant).
fn folder(m: &Migrations) -> Result<migrations::Folder, PluginError> {
    let out = ExecRequest::new("ls", ["-1", "-A"])
        .cwd(m.dir.clone())
        .run()?;
    if !out.success() {
        return Err(PluginError::new(
            "migrations-unreadable",
            format!("ls {}: {}", m.dir, pg::failure(&out)),
        ));
    }
    let text = out.stdout_text();
    let names: Vec<&str> = text.lines().collect();
    Ok(migrations::read_folder(&names))
}

pub fn audit(step: &Step) -> Result<Outcome, PluginError> {
    let p: params::Audit = step.params()?;
    p.validate()?;
    let m = &p.migrations;
    let result = folder(m).and_then(|f| applied(&p.db, m).map(|a| (f, a)));
    let (folder, applied) = match result {
        Ok(found) => found,
        Err(e) if step.dry_run && e.code == "host-denied" => {
            let would = format!(
                "would compare {}'s {} with the migration files in {} (not readable in this dry run: {})",
                p.db.describe(),
                m.table,
                m.dir,
                e.message
            );
            return Ok(Outcome::new(
                would.clone(),
                json!({ "dry_run": true, "would": would, "changed": [] }),
            ));
        }
        Err(e) => return Err(e),
    };
    let expected = migrations::expected_up_to(&folder.ups, p.up_to.as_deref());
    let audit = migrations::audit(&expected, &applied);
    let without_down: Vec<&String> = audit
        .applied
        .iter()
        .filter(|id| !folder.downs.contains(id))
        .collect();
    host::emit_json("audit", &audit);
    let summary = format!(
        "{} applied, {} expected; {} missing{}, {} unexpected{}",
        audit.applied.len(),
        audit.expected.len(),
        audit.missing.len(),
        list(&audit.missing),
        audit.unexpected.len(),
        list(&audit.unexpected)
    );
    if p.require_match && !audit.matches() {
        return Err(PluginError::new("audit-mismatch", summary));
    }
    let mut data = serde_json::to_value(&audit).unwrap_or(Value::Null);
    if let Some(map) = data.as_object_mut() {
        map.insert("matches".into(), json!(audit.matches()));
        map.insert("without_down".into(), json!(without_down));
        map.insert("ignored_files".into(), json!(folder.ignored));
        map.insert("changed".into(), json!([]));
    }
    Ok(Outcome::new(summary, data))
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(" ({})", ids.join(", "))
    }
}
