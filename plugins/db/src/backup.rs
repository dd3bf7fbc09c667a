//! `backup`: `pg_dump --format=custom` into a granted directory, verified
//! with `pg_restore --list`, hashed, and recorded in a marker file that
//! `migrate-down` of the same run requires.

use backout_plugin_sdk::host::{self, ExecRequest};
use backout_plugin_sdk::{Outcome, PluginError, Step};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::params::{self, Db};
use crate::{pg, sql};

/// Most bytes of a marker file read back.
const MAX_MARKER: u64 = 64 * 1024;

/// What a verified backup leaves behind for the run's later steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct Marker {
    pub run: String,
    pub step: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub toc_entries: usize,
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub created_at_ms: i64,
    pub verified: bool,
}

fn failed(message: String) -> PluginError {
    PluginError::new("backup-failed", message)
}

fn unverified(message: String) -> PluginError {
    PluginError::new("backup-unverified", message)
}

pub fn run(step: &Step) -> Result<Outcome, PluginError> {
    let p: params::Backup = step.params()?;
    p.validate()?;
    let run = sql::run_id(&step.id).map_err(params::bad)?;
    let now = i64::try_from(host::now()).unwrap_or(i64::MAX);
    let file = sql::join(&p.dir, &sql::backup_file_name(&p.prefix, &run, now));
    let marker_path = sql::join(&p.dir, &sql::marker_file_name(&run));
    let db = &p.db;

    if step.dry_run {
        let would = format!(
            "would dump {} to {file} (pg_dump --format=custom), verify it with pg_restore --list, \
             hash it and record it in {marker_path} for migrate-down",
            db.describe()
        );
        return Ok(Outcome::new(
            would.clone(),
            json!({ "dry_run": true, "would": would, "file": file, "marker": marker_path, "changed": [] }),
        ));
    }

    // The file is created through the host first, so the directory's write
    // grant is checked for the very path pg_dump then writes.
    host::write_file(&file, b"", false)
        .map_err(|e| failed(format!("cannot create {file}: {}", e.message())))?;

    host::progress(0, 4, &format!("dumping {}", db.describe()));
    let dump = pg::exec(
        db,
        &db.program("pg_dump"),
        &[
            "--format=custom",
            "--no-password",
            &format!("--file={file}"),
        ],
        false,
        None,
    )
    .map_err(|e| failed(format!("pg_dump of {}: {}", db.describe(), e.message())))?;
    if !dump.success() {
        return Err(failed(format!(
            "pg_dump of {} {}; {file} is not a backup and no marker was written",
            db.describe(),
            pg::failure(&dump)
        )));
    }

    host::progress(1, 4, &format!("verifying {file}"));
    let toc_entries = verify(db, &file)?;

    host::progress(2, 4, &format!("hashing {file}"));
    let sha256 = sha256(&file)?;
    let size = pg::file_size(&file).map_err(|e| unverified(format!("size of {file}: {e}")))?;
    if size == 0 {
        return Err(unverified(format!("{file} is empty")));
    }

    let marker = Marker {
        run: run.clone(),
        step: step.id.clone(),
        file: file.clone(),
        size,
        sha256: sha256.clone(),
        toc_entries,
        host: db.host.clone(),
        port: db.port,
        dbname: db.dbname.clone(),
        created_at_ms: now,
        verified: true,
    };
    let text =
        serde_json::to_vec_pretty(&marker).map_err(|e| failed(format!("marker of {file}: {e}")))?;
    host::write_file(&marker_path, &text, false).map_err(|e| {
        failed(format!(
            "cannot record the backup in {marker_path}: {}",
            e.message()
        ))
    })?;
    host::progress(4, 4, &format!("{file} verified and recorded"));
    host::emit_json("backup", &marker);

    let summary = format!(
        "dumped {} to {file}: {size} bytes, sha256 {}, {toc_entries} entries verified",
        db.describe(),
        &sha256[..12.min(sha256.len())]
    );
    Ok(Outcome::new(
        summary,
        // The hash and size at top level: the coordinator journals them
        // with the step and its report shows them, so a copy of what was
        // made lives outside the agent's marker file.
        json!({
            "file": file,
            "size": size,
            "sha256": sha256,
            "backup": marker,
            "marker": marker_path,
            "changed": [format!("created {file}"), format!("created {marker_path}")],
        }),
    ))
}

/// `pg_restore --list`: the archive must be readable and hold entries.
fn verify(db: &Db, file: &str) -> Result<usize, PluginError> {
    let out = ExecRequest::new(db.program("pg_restore"), ["--list", file])
        .run()
        .map_err(|e| unverified(format!("pg_restore --list {file}: {}", e.message())))?;
    if !out.success() {
        return Err(unverified(format!(
            "pg_restore --list {file} {}",
            pg::failure(&out)
        )));
    }
    match sql::toc_entries(&out.stdout_text()) {
        0 => Err(unverified(format!("{file} lists no entries"))),
        n => Ok(n),
    }
}

fn sha256(file: &str) -> Result<String, PluginError> {
    let out = ExecRequest::new("sha256sum", ["--", file])
        .run()
        .map_err(|e| unverified(format!("sha256sum {file}: {}", e.message())))?;
    if !out.success() {
        return Err(unverified(format!(
            "sha256sum {file} {}",
            pg::failure(&out)
        )));
    }
    sql::parse_sha256sum(&out.stdout_text())
        .ok_or_else(|| unverified(format!("sha256sum {file} printed no hash")))
}

/// The verified backup of `run` for `db`, verified again now, or why there
/// is none: no marker, a marker of another run or database (`no-backup`), a
/// dump whose SHA-256 is no longer the one recorded when it was made
/// (`backup-altered`), or one `pg_restore --list` no longer reads
/// (`backup-unverified`).
pub fn require(dir: &str, run: &str, db: &Db) -> Result<Marker, PluginError> {
    let no = |why: String| PluginError::new("no-backup", why);
    let path = sql::join(dir, &sql::marker_file_name(run));
    let text = pg::read_optional(&path, MAX_MARKER)
        .map_err(|e| no(format!("cannot read {path}: {}", e.message)))?
        .ok_or_else(|| {
            no(format!(
                "no verified backup of run {run} in {dir} ({path} does not exist): \
                 the backup step must succeed first; nothing was applied"
            ))
        })?;
    let marker: Marker = serde_json::from_str(&text)
        .map_err(|e| no(format!("{path} is not a backup marker: {e}")))?;
    if !marker.verified || marker.run != run {
        return Err(no(format!(
            "{path} records no verified backup of run {run}"
        )));
    }
    if (marker.host.as_str(), marker.port, marker.dbname.as_str())
        != (db.host.as_str(), db.port, db.dbname.as_str())
    {
        return Err(no(format!(
            "the backup of run {run} is of db {} on {}:{}, not of {}",
            marker.dbname,
            marker.host,
            marker.port,
            db.describe()
        )));
    }
    // Verified again now, at use: the file hashes to what was recorded
    // when it was made (not merely its size), and pg_restore still reads it.
    let now = sha256(&marker.file).map_err(|e| {
        no(format!(
            "the backup {} cannot be hashed again: {}",
            marker.file, e.message
        ))
    })?;
    if now != marker.sha256 {
        return Err(PluginError::new(
            "backup-altered",
            format!(
                "sha256 mismatch: the backup {} hashes to {now}, not the {} recorded when it was made (it was altered since); nothing was applied",
                marker.file, marker.sha256
            ),
        ));
    }
    verify(db, &marker.file).map_err(|e| {
        PluginError::new(
            "backup-unverified",
            format!(
                "the backup {} no longer verifies: {}; nothing was applied",
                marker.file, e.message
            ),
        )
    })?;
    Ok(marker)
}
