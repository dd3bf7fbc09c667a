//! The `db` plugin against a real PostgreSQL 15 (`backout_e2e::postgres`),
//! run by a real agent in rollback runs: a verified backup, migrations
//! rolled back to a target, audit, row counts, data-loss figures; a failed
//! backup stops the phase before any migration; an irreversible migration
//! is refused with nothing applied; a dry run changes nothing; and the
//! database password never reaches the journal or the logs.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use backout_e2e::Pki;
use backout_e2e::fleet::{Fleet, dispatched, finished};
use backout_e2e::postgres::{MIGRATIONS, Migration, Postgres};
use serde_json::{Value, json};

/// A database, a coordinator with a plan, and agent `db-1` granted the db
/// plugin: its programs, the backup dir (read, write), the migrations dir
/// (read) and the password secret (from a file).
struct Db {
    fleet: Fleet,
    pg: Postgres,
    backups: PathBuf,
}

/// The directories a plan names, known before the plan is written.
struct Dirs {
    backups: PathBuf,
    migrations: PathBuf,
    /// Exists, but is granted to nobody.
    elsewhere: PathBuf,
}

/// The `db` parameter of every step: the password is a secret reference.
fn db(pg: &Postgres, port: u16) -> String {
    format!(
        r#"{{ host = "127.0.0.1", port = {port}, dbname = "{}", user = "{}", password = "${{secret:DB_PASSWORD}}" }}"#,
        pg.dbname, pg.user
    )
}

async fn fleet(migrations: &[Migration], phases: impl Fn(&Postgres, &Dirs) -> String) -> Db {
    fleet_checked(migrations, phases, true).await
}

/// As [`fleet`]; with `checked` false the coordinator serves a plan `plan
/// check` refuses (a migration without a backup before it): what the agent
/// does on its own is what such a test checks.
async fn fleet_checked(
    migrations: &[Migration],
    phases: impl Fn(&Postgres, &Dirs) -> String,
    checked: bool,
) -> Db {
    let pki = Pki::new("db.test");
    let pg = Postgres::start();
    let dirs = Dirs {
        backups: pki.path().join("backups"),
        migrations: pki.path().join("migrations"),
        elsewhere: pki.path().join("elsewhere"),
    };
    std::fs::create_dir_all(&dirs.backups).unwrap();
    std::fs::create_dir_all(&dirs.elsewhere).unwrap();
    pg.migrate_up(&dirs.migrations, migrations);

    let secret = pki.path().join("db-password");
    backout_e2e::write_secret(&secret, &pg.password);
    let db_plugin = backout_e2e::db_plugin_config(&dirs.backups, &dirs.migrations, &secret);
    let mut builder = Fleet::builder("db.test")
        .pki(pki)
        .name("db e2e")
        .hosts(["db-1"])
        .approvals(["technical-lead"])
        .plan(&phases(&pg, &dirs))
        .agent_config(move |_, config| config + &db_plugin);
    if !checked {
        builder = builder.skip_plan_check();
    }
    let fleet = builder.start().await;
    Db {
        fleet,
        pg,
        backups: dirs.backups,
    }
}

impl Db {
    /// Starts a run of `phases`, has bob approve it, follows it to its end;
    /// returns the run summary and every watch line.
    async fn run(&self, phases: &str) -> (Value, Vec<Value>) {
        let id = self
            .fleet
            .start_approved(&["--reason", "db e2e", "--phases", phases]);
        // `backout watch` exits 1 when the run failed, which these tests
        // expect of some runs: its lines are read either way.
        let lines = self.fleet.watch_to_end(&id).await;
        (self.fleet.run_of(&id), lines)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn all_ids() -> Vec<String> {
    MIGRATIONS.iter().map(|(id, _, _)| id.to_string()).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_rollback_backs_up_assesses_migrates_down_audits_and_counts() {
    let since = now_ms() - 24 * 3600 * 1000;
    let f = fleet(MIGRATIONS, |pg, d| {
        let db = db(pg, pg.port);
        format!(
            r#"[[phase]]
id = "database"
name = "Database Rollback"
[[phase.step]]
id = "backup"
plugin = "db"
action = "backup"
on = "db-1"
params = {{ db = {db}, dir = "{backups}", prefix = "emergency_rollback_" }}
[[phase.step]]
id = "data-loss"
plugin = "db"
action = "data-loss"
on = "db-1"
params = {{ db = {db}, since = {since}, tables = ["orders", "profiles", "payment_transactions"], sums = {{ payment_transactions = "amount_cents" }}, figures = {{ lost_orders = "orders", lost_registrations = "profiles", affected_transactions = "payment_transactions", affected_amount_cents = "payment_transactions.amount_cents", data_loss_usd = "payment_transactions.amount_cents / 100" }} }}
[[phase.step]]
id = "migrate-down"
plugin = "db"
action = "migrate-down"
on = "db-1"
params = {{ db = {db}, target = "003_payment_transactions", backup_dir = "{backups}", migrations = {{ dir = "{migrations}" }} }}
[[phase.step]]
id = "audit"
plugin = "db"
action = "audit"
on = "db-1"
params = {{ db = {db}, migrations = {{ dir = "{migrations}" }}, up_to = "003_payment_transactions", require_match = true }}
[[phase.step]]
id = "counts"
plugin = "db"
action = "counts"
on = "db-1"
params = {{ db = {db}, tables = ["profiles", "orders", "payment_transactions"] }}
[[escalation]]
who = "CTO"
when = "data_loss_usd > 37"
[[escalation]]
who = "CEO"
when = "data_loss_usd > 37.5 or lost_orders > 3"
"#,
            backups = d.backups.display(),
            migrations = d.migrations.display(),
        )
    })
    .await;
    // Rows from before the window (two days old) and inside it (now).
    f.pg.sql(
        "INSERT INTO profiles (email, created_at) SELECT 'old' || i, now() - interval '2 days' FROM generate_series(1, 3) i;
         INSERT INTO profiles (email) VALUES ('new1'), ('new2');
         INSERT INTO orders (total_cents, created_at) SELECT 1000, now() - interval '2 days' FROM generate_series(1, 4) i;
         INSERT INTO orders (total_cents) VALUES (500), (700), (900);
         INSERT INTO payment_transactions (amount_cents, created_at) VALUES (1000, now() - interval '2 days'), (1000, now() - interval '2 days');
         INSERT INTO payment_transactions (amount_cents) VALUES (2500), (1250);",
    );

    let (run, lines) = f.run("database").await;
    assert_eq!(run["status"], "succeeded", "{run:#}");

    // The backup: a custom-format dump pg_restore can list, as hashed.
    let backup = &finished(&lines, "backup")["data"]["backup"];
    let file = PathBuf::from(backup["file"].as_str().unwrap());
    assert_eq!(file.parent(), Some(f.backups.as_path()));
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("emergency_rollback_") && name.ends_with(".dump"),
        "{name}"
    );
    assert_eq!(backup["sha256"], backout_e2e::sha256_file(&file));
    assert_eq!(backup["size"], std::fs::metadata(&file).unwrap().len());
    assert_eq!(backup["verified"], true);
    let listed = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&file)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let toc = String::from_utf8_lossy(&listed.stdout);
    assert!(toc.contains("TABLE public secrets_providers"), "{toc}");
    assert!(
        f.backups
            .join(format!(
                "backout-backup-{}.json",
                backup["run"].as_str().unwrap()
            ))
            .exists()
    );

    // Data loss in the window, before the rollback.
    let loss = &finished(&lines, "data-loss")["data"];
    assert_eq!(loss["since_ms"], since);
    assert_eq!(loss["tables"]["orders"]["rows"], 3, "{loss}");
    assert_eq!(loss["tables"]["profiles"]["rows"], 2, "{loss}");
    assert_eq!(loss["tables"]["payment_transactions"]["rows"], 2, "{loss}");
    assert_eq!(
        loss["tables"]["payment_transactions"]["sums"]["amount_cents"], 3750,
        "{loss}"
    );
    assert!(
        lines.iter().any(|l| l["kind"] == "output"
            && l["step"] == "data-loss"
            && l["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("data_loss = "))),
        "the figures are emitted as an output: {lines:#?}"
    );

    // The down files ran, newest first, and the table says so.
    let down = &finished(&lines, "migrate-down")["data"];
    assert_eq!(
        down["reverted"],
        json!(["005_secrets_providers", "004_orders_status"]),
        "{down}"
    );
    assert_eq!(down["backup"], backup["file"]);
    assert!(!f.pg.has_table("secrets_providers"));
    assert_eq!(
        f.pg.number("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'status'"),
        0
    );
    assert_eq!(f.pg.applied(), all_ids()[..3].to_vec());
    assert_eq!(
        f.pg.number("SELECT count(*) FROM orders"),
        7,
        "rows survive"
    );

    let audit = &finished(&lines, "audit")["data"];
    assert_eq!(audit["matches"], true, "{audit}");
    assert_eq!(audit["applied"], json!(all_ids()[..3]));
    assert_eq!(audit["expected"], json!(all_ids()[..3]));

    let counts = &finished(&lines, "counts")["data"]["counts"];
    assert_eq!(
        counts,
        &json!({ "profiles": 5, "orders": 7, "payment_transactions": 4 })
    );

    // The password was used (scram auth succeeded) but never recorded.
    let journal = rusqlite::Connection::open(f.fleet.journal()).unwrap();
    let rows: Vec<String> = journal
        .prepare("SELECT kind || ' ' || body FROM entries")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        rows.iter().any(|r| r.contains("${secret:DB_PASSWORD}")),
        "the plan's reference is journaled"
    );
    assert!(
        rows.iter().any(|r| r.contains("emergency_rollback_")),
        "the journal holds the steps' results"
    );
    for row in &rows {
        assert!(
            !row.contains(&f.pg.password),
            "the password is in the journal: {row}"
        );
    }
    let agent_log = std::fs::read_to_string(f.fleet.agent_log("db-1", "")).unwrap();
    assert!(
        agent_log.contains("running step"),
        "the agent logged its steps"
    );
    for log in ["db-1.log", "coordinator.log"] {
        let text = std::fs::read_to_string(f.fleet.path().join(log)).unwrap();
        assert!(!text.contains(&f.pg.password), "the password is in {log}");
    }

    // The report's figures are what the test put into PostgreSQL, and each
    // escalation fires exactly when its threshold is crossed.
    let out = f.fleet.cli(
        "alice",
        &["report", run["run"].as_str().unwrap(), "--format", "json"],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let figures = &report["figures"];
    assert_eq!(figures["lost_orders"], 3.0, "{figures}");
    assert_eq!(figures["lost_registrations"], 2.0);
    assert_eq!(figures["affected_transactions"], 2.0);
    assert_eq!(figures["affected_amount_cents"], 3750.0);
    assert_eq!(figures["data_loss_usd"], 37.5);
    let escalation = |who: &str| backout_e2e::escalation(&report, who);
    assert_eq!(escalation("CTO"), "fired", "37.5 > 37");
    assert_eq!(
        escalation("CEO"),
        "not fired",
        "37.5 is not > 37.5, 3 is not > 3"
    );
    for row in report.to_string().lines() {
        assert!(
            !row.contains(&f.pg.password),
            "the password is in the report"
        );
    }
}

/// migrate-down to 003 with the built-in runner.
fn migrate_down_step(db: &str, d: &Dirs, extra: &str) -> String {
    format!(
        r#"[[phase.step]]
id = "migrate-down"
plugin = "db"
action = "migrate-down"
on = "db-1"
{extra}params = {{ db = {db}, target = "003_payment_transactions", backup_dir = "{backups}", migrations = {{ dir = "{migrations}" }} }}
"#,
        backups = d.backups.display(),
        migrations = d.migrations.display(),
    )
}

fn backup_step(db: &str, dir: &Path) -> String {
    format!(
        r#"[[phase.step]]
id = "backup"
plugin = "db"
action = "backup"
on = "db-1"
params = {{ db = {db}, dir = "{}" }}
"#,
        dir.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_backup_stops_the_phase_and_no_migration_runs_without_one() {
    // `plan check` refuses this plan (each migrate-down lacks a backup of
    // its database into its backup_dir before it): the agent refuses too.
    let f = fleet_checked(MIGRATIONS, |pg, d| {
        let good = db(pg, pg.port);
        // Nothing listens one port up (the server took a free port; the
        // next one is almost surely free too, and a refusal is what counts).
        let wrong = db(pg, pg.port.wrapping_add(1));
        format!(
            "[[phase]]\nid = \"ungranted\"\nname = \"Backup where the agent may not write\"\n{}{}\
             [[phase]]\nid = \"unreachable\"\nname = \"Backup of a database that is not there\"\n{}{}\
             [[phase]]\nid = \"alone\"\nname = \"Migrations without a backup\"\n{}",
            backup_step(&good, &d.elsewhere),
            migrate_down_step(&good, d, ""),
            backup_step(&wrong, &d.backups),
            migrate_down_step(&good, d, ""),
            migrate_down_step(&good, d, ""),
        )
    }, false)
    .await;
    let elsewhere = f.fleet.path().join("elsewhere");

    // A backup into a directory the agent does not grant.
    let (run, lines) = f.run("ungranted").await;
    assert_eq!(run["status"], "failed", "{run:#}");
    let backup = finished(&lines, "backup");
    assert_eq!(backup["outcome"], "failed");
    let why = backup["text"].as_str().unwrap();
    assert!(
        why.contains("backup-failed") && why.contains("not granted"),
        "{why}"
    );
    assert!(
        !dispatched(&lines, "migrate-down"),
        "the phase halted before migrating"
    );
    assert!(
        Db::files(&elsewhere).is_empty(),
        "nothing was written there"
    );

    // A backup of a database that does not answer.
    let (run, lines) = f.run("unreachable").await;
    assert_eq!(run["status"], "failed", "{run:#}");
    let why = finished(&lines, "backup")["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        why.contains("backup-failed") && why.contains("pg_dump"),
        "{why}"
    );
    assert!(!dispatched(&lines, "migrate-down"));
    assert!(
        !Db::files(&f.backups).iter().any(|n| n.ends_with(".json")),
        "no marker for a failed backup: {:?}",
        Db::files(&f.backups)
    );

    // migrate-down on its own finds no verified backup of its run.
    let (run, lines) = f.run("alone").await;
    assert_eq!(run["status"], "failed", "{run:#}");
    let down = finished(&lines, "migrate-down");
    let why = down["text"].as_str().unwrap();
    assert!(why.contains("no-backup"), "{why}");

    assert_eq!(f.pg.applied(), all_ids(), "no migration was rolled back");
    assert!(f.pg.has_table("secrets_providers"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_irreversible_migration_is_refused_with_nothing_applied_and_the_plan_can_freeze() {
    // 004 has no down file; 005 and 003 have theirs.
    let migrations: Vec<Migration> = MIGRATIONS
        .iter()
        .map(|&(id, up, down)| {
            (
                id,
                up,
                if id == "004_orders_status" {
                    None
                } else {
                    down
                },
            )
        })
        .collect();
    let f = fleet(&migrations, |pg, d| {
        let db = db(pg, pg.port);
        // The plan goes on after a refusal (`on_failure = "continue"`) to a
        // freeze step; counts stands in for it.
        format!(
            "[[phase]]\nid = \"database\"\nname = \"Database Rollback\"\n{}{}\
             [[phase.step]]\nid = \"freeze\"\nplugin = \"db\"\naction = \"counts\"\non = \"db-1\"\n\
             params = {{ db = {db}, tables = [\"orders\"] }}\n",
            backup_step(&db, &d.backups),
            migrate_down_step(&db, d, "on_failure = \"continue\"\n"),
        )
    })
    .await;
    let (_run, lines) = f.run("database").await;
    assert_eq!(finished(&lines, "backup")["outcome"], "succeeded");
    let down = finished(&lines, "migrate-down");
    assert_eq!(down["outcome"], "failed");
    let why = down["text"].as_str().unwrap();
    assert!(
        why.contains("irreversible") && why.contains("004_orders_status"),
        "{why}"
    );
    assert!(
        !why.contains("005_secrets_providers"),
        "only the irreversible one is named: {why}"
    );

    assert_eq!(f.pg.applied(), all_ids(), "nothing was applied");
    assert!(
        f.pg.has_table("secrets_providers"),
        "005's down file did not run"
    );
    assert_eq!(
        f.pg.number("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'status'"),
        1
    );
    assert_eq!(
        finished(&lines, "freeze")["outcome"],
        "succeeded",
        "the plan went on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_says_what_it_would_do_and_changes_nothing() {
    let f = fleet(MIGRATIONS, |pg, d| {
        let db = db(pg, pg.port);
        format!(
            "[[phase]]\nid = \"database\"\nname = \"Database Rollback\"\n{}{}\
             [[phase.step]]\nid = \"counts\"\nplugin = \"db\"\naction = \"counts\"\non = \"db-1\"\n\
             params = {{ db = {db}, tables = [\"orders\", \"secrets_providers\"] }}\n",
            backup_step(&db, &d.backups),
            migrate_down_step(&db, d, ""),
        )
    })
    .await;
    f.pg.sql("INSERT INTO orders (total_cents) VALUES (1), (2)");
    let report = f.fleet.start_run(
        "dave",
        &["--reason", "rehearsal", "--phases", "database", "--dry-run"],
    );
    assert_eq!(report["status"], "succeeded", "{report:#}");
    let steps = report["hosts"]["db-1"].as_array().unwrap();
    let would = |step: &str| {
        steps
            .iter()
            .find(|s| s["step"] == step)
            .and_then(|s| s["would"].as_str())
            .unwrap_or_else(|| panic!("no {step} in {report:#}"))
            .to_string()
    };
    let backup = would("backup");
    assert!(
        backup.starts_with("would dump db samia on 127.0.0.1:")
            && backup.contains(&f.backups.display().to_string()),
        "{backup}"
    );
    let down = would("migrate-down");
    assert!(
        down.contains("would apply 2 down migrations")
            && down.contains("005_secrets_providers, 004_orders_status"),
        "{down}"
    );
    // Reads run in a dry run, in a read-only session.
    assert_eq!(would("counts"), "orders 2, secrets_providers 1");

    assert!(Db::files(&f.backups).is_empty(), "no backup, no marker");
    assert_eq!(f.pg.applied(), all_ids());
    assert!(f.pg.has_table("secrets_providers"));
}

/// A backup altered after it was made, at the same size: migrate-down
/// hashes it again at use, refuses naming the SHA-256 mismatch, and applies
/// nothing. The run pauses between the two for the phase's approval, while
/// the test flips one byte of the dump.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_altered_after_it_was_made_is_refused_by_migrate_down() {
    let f = fleet(MIGRATIONS, |pg, d| {
        let db = db(pg, pg.port);
        format!(
            "[[phase]]\nid = \"save\"\nname = \"Backup\"\n{}\
             [[phase]]\nid = \"down\"\nname = \"Migrations\"\nafter = [\"save\"]\napprovals = [\"technical-lead\"]\n{}",
            backup_step(&db, &d.backups),
            migrate_down_step(&db, d, ""),
        )
    })
    .await;
    let id = f
        .fleet
        .start_approved(&["--reason", "altered backup", "--phases", "save,down"]);
    let run = f
        .fleet
        .wait_run(
            &id,
            "the backup to be made and the migrations to wait",
            |run| backout_e2e::phase(run, "down")["status"] == "awaiting-approval",
        )
        .await;
    assert_eq!(
        backout_e2e::phase(&run, "save")["status"],
        "succeeded",
        "{run:#}"
    );
    let dump = Db::files(&f.backups)
        .into_iter()
        .find(|n| n.ends_with(".dump"))
        .expect("the backup's dump");
    let dump = f.backups.join(dump);
    let mut bytes = std::fs::read(&dump).unwrap();
    let size = bytes.len();
    let middle = size / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&dump, &bytes).unwrap();
    assert_eq!(
        std::fs::metadata(&dump).unwrap().len() as usize,
        size,
        "same size"
    );

    f.fleet.json(
        "bob",
        &["approve", &id, "--phase", "down", "--output", "json"],
    );
    let lines = f.fleet.watch_to_end(&id).await;
    let down = finished(&lines, "migrate-down");
    assert_eq!(down["outcome"], "failed", "{down}");
    let why = down["text"].as_str().unwrap();
    assert!(
        why.contains("backup-altered") && why.contains("sha256 mismatch"),
        "{why}"
    );
    assert_eq!(f.pg.applied(), all_ids(), "no migration was rolled back");

    // The hash recorded when the backup was made is the coordinator's too:
    // the backup step's data carries it (journaled with the step), the
    // report shows it with the size, and the refusal names it beside the
    // altered file's hash.
    let made = &finished(&lines, "backup")["data"];
    let recorded = made["sha256"]
        .as_str()
        .expect("the backup's sha256")
        .to_string();
    assert_eq!(recorded.len(), 64, "{made}");
    assert_eq!(made["size"].as_u64(), Some(size as u64), "{made}");
    let altered = hex_sha256(&bytes);
    assert_ne!(altered, recorded);
    assert!(
        why.contains(&format!("hashes to {altered}, not the {recorded} recorded")),
        "both hashes named: {why}"
    );
    let md = f.fleet.report(&id, "md");
    assert!(
        md.contains("## Backups")
            && md.contains(&format!("| {size} bytes | `{recorded}` |"))
            && md.contains(&dump.display().to_string()),
        "{md}"
    );
    let json: Value = serde_json::from_str(&f.fleet.report(&id, "json")).unwrap();
    assert_eq!(json["backups"][0]["sha256"], recorded.as_str(), "{json:#}");
    assert!(
        f.fleet
            .report(&id, "html")
            .contains(&format!("<code>{recorded}</code>"))
    );
}

/// The SHA-256 of `bytes` in hex, as `sha256sum` prints it.
fn hex_sha256(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `rollback start --phases down` leaves the backup's phase out of the run:
/// the coordinator refuses to start it (exit 1, "refused by the
/// coordinator"), naming the migration and the backup it lacks, though the
/// plan itself passes `plan check`. Nothing is journaled as a run, nothing
/// reaches the agent, and the database is unchanged; with the backup's
/// phase in the run it starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_leaves_out_the_backup_before_a_migration_is_refused_at_start() {
    let f = fleet(MIGRATIONS, |pg, d| {
        let db = db(pg, pg.port);
        format!(
            "[[phase]]\nid = \"save\"\nname = \"Backup\"\n{}\
             [[phase]]\nid = \"down\"\nname = \"Migrations\"\nafter = [\"save\"]\n{}",
            backup_step(&db, &d.backups),
            migrate_down_step(&db, d, ""),
        )
    })
    .await;
    for args in [
        vec!["--reason", "skip the backup", "--phases", "down"],
        vec![
            "--reason",
            "skip the backup",
            "--phases",
            "down",
            "--dry-run",
        ],
    ] {
        let mut all = vec!["rollback", "start"];
        all.extend_from_slice(&args);
        let out = f.fleet.cli("dave", &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("refused by the coordinator: the run was not started")
                && stderr.contains("step `down/migrate-down` (db.migrate-down) on db-1 changes data, but no `db.backup` step with the same")
                && stderr.contains(&format!("backup_dir = \"{}\"", f.backups.display()))
                && stderr.contains("add it to --phases"),
            "{args:?}: {stderr}"
        );
    }
    let runs = f.fleet.runs();
    assert_eq!(
        runs["runs"].as_array().map_or(0, Vec::len),
        0,
        "no run was created: {runs:#}"
    );
    assert!(Db::files(&f.backups).is_empty());
    assert_eq!(f.pg.applied(), all_ids(), "the database is unchanged");

    // The backup's phase in the same run: it starts (and waits for bob).
    let run = f.fleet.start_run(
        "dave",
        &["--reason", "with the backup", "--phases", "save,down"],
    );
    assert!(
        run["run"].as_str().is_some_and(|id| id.starts_with("run-")),
        "{run:#}"
    );
}
