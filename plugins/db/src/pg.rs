//! Running PostgreSQL's tools (and a few coreutils) through the host.
//!
//! Every call is a granted program started by the agent without a shell;
//! the connection comes from libpq's environment variables (`PGHOST`...),
//! and `PGPASSWORD` carries `${secret:NAME}`, which only the host fills in.

use backout_plugin_sdk::PluginError;
use backout_plugin_sdk::host::{self, ExecOutput, ExecRequest, HostError};
use serde_json::Value;

use crate::params::Db;

/// The last lines of a tool's stderr (or stdout), for error messages.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    lines[start..].join(" | ")
}

/// What a tool said when it failed: its exit and the end of its stderr.
pub fn failure(out: &ExecOutput) -> String {
    let code = out
        .exit_code
        .map_or_else(|| "was killed".to_string(), |c| format!("exited {c}"));
    let said = tail(&out.stderr_text());
    if said.is_empty() {
        code
    } else {
        format!("{code}: {said}")
    }
}

/// Runs `program args` with the database's environment.
pub fn exec(
    db: &Db,
    program: &str,
    args: &[&str],
    read_only: bool,
    stdin: Option<Vec<u8>>,
) -> Result<ExecOutput, HostError> {
    let mut request = ExecRequest::new(program, args.iter().copied());
    request.env = db.env(read_only);
    request.stdin = stdin;
    request.run()
}

/// Runs one query in a read-only session and parses the single JSON value
/// it returns. A failed query is `query-failed`.
pub fn query_json(db: &Db, sql: &str) -> Result<Value, PluginError> {
    let program = db.program("psql");
    let out = exec(
        db,
        &program,
        &[
            "--no-psqlrc",
            "--no-align",
            "--tuples-only",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--command",
            sql,
        ],
        true,
        None,
    )?;
    if !out.success() {
        return Err(PluginError::new(
            "query-failed",
            format!("psql on {}: {}", db.describe(), failure(&out)),
        ));
    }
    let text = out.stdout_text();
    serde_json::from_str(text.trim()).map_err(|e| {
        PluginError::new(
            "query-failed",
            format!("psql on {} answered what is not JSON ({e})", db.describe()),
        )
    })
}

/// Runs a script in one transaction that stops at the first error; on
/// failure nothing of it is committed.
pub fn run_script(db: &Db, script: &str) -> Result<(), PluginError> {
    let program = db.program("psql");
    let out = exec(
        db,
        &program,
        &[
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            "--file=-",
        ],
        false,
        Some(script.as_bytes().to_vec()),
    )?;
    if out.success() {
        Ok(())
    } else {
        Err(PluginError::new(
            "migrate-failed",
            format!(
                "psql on {}: {}; the transaction was rolled back, nothing was applied",
                db.describe(),
                failure(&out)
            ),
        ))
    }
}

/// A file's size in bytes (`stat --format=%s`).
pub fn file_size(path: &str) -> Result<u64, String> {
    let out = ExecRequest::new("stat", ["--format=%s", "--", path])
        .run()
        .map_err(|e| e.message().to_string())?;
    if !out.success() {
        return Err(failure(&out));
    }
    out.stdout_text()
        .trim()
        .parse()
        .map_err(|_| format!("stat printed `{}`", out.stdout_text().trim()))
}

/// Whether a file under a granted path can be read: `Ok(None)` when it does
/// not exist, its text when it does.
pub fn read_optional(path: &str, max_bytes: u64) -> Result<Option<String>, PluginError> {
    match host::read_file(path, max_bytes, false) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(HostError::Failed(message)) if message.starts_with("no such file") => Ok(None),
        Err(e) => Err(e.into()),
    }
}
