//! The `db` plugin: phase 3 of the seed plan (database rollback) for
//! PostgreSQL.
//!
//! * `backup`: `pg_dump --format=custom` into a granted directory, verified
//!   with `pg_restore --list`, size and sha256 recorded, and a marker file
//!   (`backout-backup-RUN.json`) left for `migrate-down` of the same run.
//! * `migrate-down`: refuses (`no-backup`) without that marker; then either
//!   the built-in runner (down files of `NNN_name.down.sql`, newest first,
//!   in one transaction, the migrations table updated; a migration without
//!   a down file is `irreversible` and nothing is applied) or the plan's own
//!   command (`python migrate.py rollback --target={target}`).
//! * `audit`: applied migrations against the files of the folder.
//! * `counts`: row counts of tables.
//! * `data-loss`: rows created since a time and sums of columns over them.
//!
//! Everything goes through the host: `exec` of granted programs (`pg_dump`,
//! `pg_restore`, `psql`, `sha256sum`, `stat`, `ls`), `read-file` and
//! `write-file` under granted paths. The password is `${secret:NAME}` in
//! `PGPASSWORD`, filled in by the host; the plugin never sees it. Reads run
//! in read-only sessions. In a dry run nothing is written: `backup` and
//! `migrate-down` say what they would do, and the reads run if the agent
//! grants them in `dry_run_programs`.

mod backup;
mod migrate;
mod migrations;
mod params;
mod pg;
mod reads;
mod sql;

use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};

struct Db;

impl Plugin for Db {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "db",
            env!("CARGO_PKG_VERSION"),
            "PostgreSQL: verified backups, migrations rolled back, audit, row counts, data-loss figures.",
        )
        .action(
            "backup",
            "pg_dump --format=custom to params.dir, verified with pg_restore --list; size, sha256 and a marker for migrate-down.",
            true,
        )
        .action(
            "migrate-down",
            "Rolls migrations back to params.target (down files in one transaction, or params.command); needs this run's verified backup.",
            true,
        )
        .action(
            "audit",
            "Applied migrations against the migration files: both lists and the differences.",
            false,
        )
        .action("counts", "Row counts of params.tables.", false)
        .action(
            "data-loss",
            "Rows created since params.since in params.tables, and sums of params.sums.",
            false,
        )
    }

    fn needs() -> Vec<Need> {
        vec![Need::program(
            "",
            "pg_dump, pg_restore, psql, sha256sum, stat and ls, as the steps use them",
        )]
    }

    fn schema() -> Schema {
        Schema::new()
            .action::<params::Backup>("backup")
            .action::<params::MigrateDown>("migrate-down")
            .action::<params::Audit>("audit")
            .action::<params::Counts>("counts")
            .action::<params::DataLoss>("data-loss")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        match step.action.as_str() {
            "backup" => backup::run(&step),
            "migrate-down" => migrate::migrate_down(&step),
            "audit" => migrate::audit(&step),
            "counts" => reads::counts(&step),
            "data-loss" => reads::data_loss(&step),
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(Db);
