//! The parameters of each action, as a plan writes them, and their checks.
//! Unknown fields are errors: a typo in a rollback plan must not be ignored.

use std::collections::BTreeMap;

use backout_plugin_sdk::PluginError;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::sql;

/// `bad-params` with a message.
pub fn bad(message: impl Into<String>) -> PluginError {
    PluginError::new("bad-params", message)
}

/// Where the database is and who connects. Every action has it as `db`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Db {
    /// A host name or address, or a directory holding the Unix socket.
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub dbname: String,
    pub user: String,
    /// `${secret:NAME}` only: the host fills it into `PGPASSWORD`.
    #[serde(default)]
    pub password: Option<String>,
    /// `PGSSLMODE`, e.g. `require`.
    #[serde(default)]
    pub sslmode: Option<String>,
    /// Where `pg_dump`, `pg_restore` and `psql` are; by default their bare
    /// names, looked up in the agent's PATH. Grants name the exact strings.
    #[serde(default)]
    pub bin_dir: Option<String>,
}

fn default_port() -> u16 {
    5432
}

impl Db {
    pub fn validate(&self) -> Result<(), PluginError> {
        for (field, value) in [
            ("db.host", &self.host),
            ("db.dbname", &self.dbname),
            ("db.user", &self.user),
        ] {
            if value.trim().is_empty() {
                return Err(bad(format!("{field} is empty")));
            }
        }
        if let Some(password) = &self.password
            && sql::secret_reference(password).is_none()
        {
            return Err(bad(
                "db.password must be `${secret:NAME}`: a password written in the plan would be journaled",
            ));
        }
        if let Some(dir) = &self.bin_dir
            && !dir.starts_with('/')
        {
            return Err(bad(format!("db.bin_dir `{dir}` must be absolute")));
        }
        Ok(())
    }

    /// The program to run for a PostgreSQL tool.
    pub fn program(&self, tool: &str) -> String {
        match &self.bin_dir {
            Some(dir) => sql::join(dir, tool),
            None => tool.to_string(),
        }
    }

    /// The libpq environment. Read-only sessions get
    /// `default_transaction_read_only`, so a read can never write.
    pub fn env(&self, read_only: bool) -> Vec<(String, String)> {
        let mut env = vec![
            ("PGHOST".to_string(), self.host.clone()),
            ("PGPORT".to_string(), self.port.to_string()),
            ("PGDATABASE".to_string(), self.dbname.clone()),
            ("PGUSER".to_string(), self.user.clone()),
            ("PGCONNECT_TIMEOUT".to_string(), "10".to_string()),
            ("PGAPPNAME".to_string(), "backout-db".to_string()),
        ];
        if let Some(password) = &self.password {
            env.push(("PGPASSWORD".to_string(), password.clone()));
        }
        if let Some(mode) = &self.sslmode {
            env.push(("PGSSLMODE".to_string(), mode.clone()));
        }
        if read_only {
            env.push((
                "PGOPTIONS".to_string(),
                "-c default_transaction_read_only=on".to_string(),
            ));
        }
        env
    }

    /// `db samia on 10.0.0.5:5432`, for summaries.
    pub fn describe(&self) -> String {
        format!("db {} on {}:{}", self.dbname, self.host, self.port)
    }
}

/// An absolute directory without `..` (the host checks grants; this only
/// keeps file names the plugin builds sensible).
fn check_dir(field: &str, dir: &str) -> Result<(), PluginError> {
    if !dir.starts_with('/') || dir.split('/').any(|part| part == "..") {
        return Err(bad(format!(
            "{field} `{dir}` must be an absolute path without `..`"
        )));
    }
    Ok(())
}

fn check_tables(tables: &[String]) -> Result<(), PluginError> {
    if tables.is_empty() {
        return Err(bad("tables is empty"));
    }
    for table in tables {
        sql::quote_qualified(table).map_err(|e| bad(format!("tables: {e}")))?;
    }
    Ok(())
}

/// `backup`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub db: Db,
    /// Directory the dump and its marker are written to.
    pub dir: String,
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_prefix() -> String {
    "backout_".to_string()
}

impl Backup {
    pub fn validate(&self) -> Result<(), PluginError> {
        self.db.validate()?;
        check_dir("dir", &self.dir)?;
        if !sql::valid_prefix(&self.prefix) {
            return Err(bad(format!(
                "prefix `{}` may hold letters, digits, `-`, `_` and `.` (not first)",
                self.prefix
            )));
        }
        Ok(())
    }
}

/// The built-in runner's folder and table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Migrations {
    /// Folder of `NNN_name.up.sql` / `NNN_name.down.sql`.
    pub dir: String,
    #[serde(default = "default_table")]
    pub table: String,
    /// The column holding each applied migration's id.
    #[serde(default = "default_column")]
    pub column: String,
}

fn default_table() -> String {
    "schema_migrations".to_string()
}

fn default_column() -> String {
    "version".to_string()
}

impl Migrations {
    fn validate(&self) -> Result<(), PluginError> {
        check_dir("migrations.dir", &self.dir)?;
        sql::quote_qualified(&self.table).map_err(|e| bad(format!("migrations.table: {e}")))?;
        sql::quote_ident(&self.column).map_err(|e| bad(format!("migrations.column: {e}")))?;
        Ok(())
    }
}

/// `migrate-down`: the built-in runner (`migrations`) or an external
/// command (`command`, `{target}` replaced), never both.
///
/// It changes data: `plan check` refuses a plan where it can run before a
/// `backup` step of the same database into its `backup_dir` on the same
/// host (`x-needs-backup`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-needs-backup" = {"action": "backup", "same": {"db": "db", "backup_dir": "dir"}}))]
pub struct MigrateDown {
    pub db: Db,
    /// The migration to roll back to (it stays applied): an id or a number.
    pub target: String,
    /// Where `backup` of this run left its marker.
    pub backup_dir: String,
    #[serde(default)]
    pub migrations: Option<Migrations>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Working directory of `command`.
    #[serde(default)]
    pub cwd: Option<String>,
}

impl MigrateDown {
    pub fn validate(&self) -> Result<(), PluginError> {
        self.db.validate()?;
        check_dir("backup_dir", &self.backup_dir)?;
        if self.target.trim().is_empty() {
            return Err(bad("target is empty"));
        }
        match (&self.migrations, &self.command) {
            (Some(m), None) => {
                m.validate()?;
                if self.cwd.is_some() {
                    return Err(bad("cwd goes with command, not with migrations"));
                }
            }
            (None, Some(command)) => {
                if command.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err(bad("command is empty"));
                }
                if let Some(cwd) = &self.cwd {
                    check_dir("cwd", cwd)?;
                }
            }
            _ => {
                return Err(bad(
                    "give exactly one of migrations (the built-in runner) or command",
                ));
            }
        }
        Ok(())
    }
}

/// `audit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    pub db: Db,
    pub migrations: Migrations,
    /// Expect the migrations up to this one only (after a rollback).
    #[serde(default)]
    pub up_to: Option<String>,
    /// Fail the step when applied and expected differ.
    #[serde(default)]
    pub require_match: bool,
}

impl Audit {
    pub fn validate(&self) -> Result<(), PluginError> {
        self.db.validate()?;
        self.migrations.validate()
    }
}

/// `counts`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub db: Db,
    pub tables: Vec<String>,
}

impl Counts {
    pub fn validate(&self) -> Result<(), PluginError> {
        self.db.validate()?;
        check_tables(&self.tables)
    }
}

/// `since`: epoch milliseconds, or text (RFC 3339 or a span like `1h`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Since {
    Ms(i64),
    Text(String),
}

/// One column or several.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Columns {
    One(String),
    Many(Vec<String>),
}

/// Where one run figure comes from in the data-loss counts.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureSource {
    pub table: String,
    /// A summed column; `None`: the row count.
    pub column: Option<String>,
    pub divisor: f64,
}

impl FigureSource {
    /// The figure's value in the counts (`{table: {rows, sums: {column}}}`).
    pub fn value(&self, tables: &serde_json::Value) -> Option<f64> {
        let entry = &tables[self.table.as_str()];
        let raw = match &self.column {
            Some(c) => &entry["sums"][c.as_str()],
            None => &entry["rows"],
        };
        let n = raw.as_f64().or_else(|| raw.as_str()?.parse().ok())?;
        Some(n / self.divisor)
    }
}

/// `data-loss`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataLoss {
    pub db: Db,
    pub since: Since,
    pub tables: Vec<String>,
    /// The creation time column of every table.
    #[serde(default = "default_created")]
    pub column: String,
    /// Columns summed over the rows since `since`, per table.
    #[serde(default)]
    pub sums: BTreeMap<String, Columns>,
    /// Run figures (what escalation rules and the report use) from the
    /// counts: figure name -> `"table"` (rows), `"table.column"` (a sum), with
    /// an optional divisor: `"payment_transactions.amount_cents / 100"`.
    #[serde(default)]
    pub figures: BTreeMap<String, String>,
}

fn default_created() -> String {
    "created_at".to_string()
}

impl DataLoss {
    /// Each figure's source, checked against the tables and sums asked for.
    pub fn figure_sources(&self) -> Result<Vec<(String, FigureSource)>, PluginError> {
        let sums = self.sums();
        self.figures
            .iter()
            .map(|(name, text)| {
                let (path, divisor) = match text.split_once('/') {
                    Some((path, d)) => (
                        path.trim(),
                        d.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|d| *d != 0.0)
                            .ok_or_else(|| {
                                bad(format!("figures.{name}: `{d}` is not a divisor"))
                            })?,
                    ),
                    None => (text.trim(), 1.0),
                };
                let (table, column) = match path.split_once('.') {
                    Some((t, c)) => (t.to_string(), Some(c.to_string())),
                    None => (path.to_string(), None),
                };
                if !self.tables.contains(&table) {
                    return Err(bad(format!("figures.{name}: `{table}` is not in tables")));
                }
                if let Some(c) = &column
                    && !sums.get(&table).is_some_and(|cols| cols.contains(c))
                {
                    return Err(bad(format!("figures.{name}: `{table}.{c}` is not in sums")));
                }
                Ok((
                    name.clone(),
                    FigureSource {
                        table,
                        column,
                        divisor,
                    },
                ))
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), PluginError> {
        self.db.validate()?;
        check_tables(&self.tables)?;
        sql::quote_ident(&self.column).map_err(|e| bad(format!("column: {e}")))?;
        for table in self.sums.keys() {
            if !self.tables.contains(table) {
                return Err(bad(format!("sums names `{table}`, which is not in tables")));
            }
        }
        Ok(())
    }

    /// The sums as table → columns.
    pub fn sums(&self) -> BTreeMap<String, Vec<String>> {
        self.sums
            .iter()
            .map(|(table, columns)| {
                let columns = match columns {
                    Columns::One(c) => vec![c.clone()],
                    Columns::Many(list) => list.clone(),
                };
                (table.clone(), columns)
            })
            .collect()
    }

    /// `since` as epoch milliseconds.
    pub fn since_ms(&self, now_ms: i64) -> Result<i64, PluginError> {
        match &self.since {
            Since::Ms(ms) => Ok(*ms),
            Since::Text(text) => {
                sql::parse_since(text, now_ms).map_err(|e| bad(format!("since: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_loss(figures: &str) -> Result<DataLoss, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{ "db": {{ "host": "/tmp", "dbname": "app", "user": "app" }}, "since": "1h",
                 "tables": ["orders", "payment_transactions"],
                 "sums": {{ "payment_transactions": "amount_cents" }}, "figures": {figures} }}"#
        ))
    }

    #[test]
    fn figures_come_from_counts_and_sums_with_a_divisor() {
        let p = data_loss(
            r#"{ "lost_orders": "orders", "affected_amount_cents": "payment_transactions.amount_cents",
                 "data_loss_usd": "payment_transactions.amount_cents / 100" }"#,
        )
        .unwrap();
        let tables = serde_json::json!({
            "orders": { "rows": 3 },
            "payment_transactions": { "rows": 2, "sums": { "amount_cents": "3750" } },
        });
        let values: BTreeMap<String, Option<f64>> = p
            .figure_sources()
            .unwrap()
            .into_iter()
            .map(|(name, source)| (name, source.value(&tables)))
            .collect();
        assert_eq!(values["lost_orders"], Some(3.0));
        assert_eq!(values["affected_amount_cents"], Some(3750.0));
        assert_eq!(values["data_loss_usd"], Some(37.5));
    }

    #[test]
    fn a_figure_must_name_a_counted_table_or_summed_column() {
        for bad in [
            r#"{ "x": "profiles" }"#,
            r#"{ "x": "orders.amount_cents" }"#,
            r#"{ "x": "orders / 0" }"#,
        ] {
            assert!(data_loss(bad).unwrap().figure_sources().is_err(), "{bad}");
        }
    }
}
