//! `backout audit verify`: walk the journal's hash chain (and the archives
//! its first entries moved to). `backout audit archive`: move old, ended
//! runs out of the journal into an archive file that verifies on its own and
//! joins the journal's chain.

use std::path::{Path, PathBuf};

use backout_proto::now_ms;

use super::{BadInput, Exit, Output};
use crate::journal::checkpoint;
use crate::journal::{Announced, CheckpointKey, Head, JournalStore, SqliteStore, Verdict};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Walk the journal's hash chain; report the first entry that does not
    /// match. With --archive, also each archive (oldest first) and that each
    /// one ends where the next begins. With the checkpoint key (--key, or
    /// the configuration's checkpoint_key), check every signed checkpoint:
    /// a chain rewritten with its hashes recomputed is reported. With
    /// --checkpoint, check that the journal still holds the checkpoint a
    /// run's report or end message announced. Exit 0 intact, 1 broken, 2 bad
    /// input.
    ///
    /// Example: backout audit verify --config /etc/backout/coordinator.toml
    ///
    /// Example: backout audit verify --journal journal.db --key checkpoint-signing.pub --checkpoint 42:3f9a…
    Verify {
        #[command(flatten)]
        journal: JournalArgs,
        /// The checkpoint key's public half (checkpoint-signing.pub, made by
        /// `backout pki init`); default with --config: its checkpoint_key.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// A checkpoint announced at a run's end (SEQ:HASH, or HASH), as
        /// its report and end message give it: the journal must still hold
        /// that entry with that hash.
        #[arg(long, value_name = "SEQ:HASH")]
        checkpoint: Option<String>,
        /// An archive written by `backout audit archive`; repeat it for
        /// several, oldest first.
        #[arg(long, value_name = "FILE")]
        archive: Vec<PathBuf>,
        /// text: for people; json: for programs.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Move the entries of runs that ended before a cutoff (and the signal
    /// entries among them) into a new archive file. The archive verifies on
    /// its own, and `audit verify --archive FILE` checks that the journal
    /// left behind starts where it ends. Stop the coordinator first: the
    /// journal must not be in use.
    ///
    /// Example: backout audit archive --config coordinator.toml --before 30d --to journal-2026-10.db
    Archive {
        #[command(flatten)]
        journal: JournalArgs,
        /// Archive what is older than this ("30d", "12h").
        #[arg(long, value_parser = backout_config::parse_duration)]
        before: std::time::Duration,
        /// The archive file to write (must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// text: for people; json: for programs.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct JournalArgs {
    /// The coordinator's configuration (its state_dir holds the journal).
    #[arg(long, conflicts_with = "journal")]
    config: Option<PathBuf>,
    /// The journal file itself.
    #[arg(long)]
    journal: Option<PathBuf>,
}

/// Where the journal is: a SQLite file, or the PostgreSQL database the
/// configuration's `journal = { postgres = ... }` names.
enum Location {
    Sqlite(PathBuf),
    Postgres(crate::config::JournalConfig),
}

/// What the checkpoints are checked against.
struct Against {
    key: Option<CheckpointKey>,
    announced: Option<Announced>,
}

impl Against {
    /// The key from `--key`, else the configuration's `checkpoint_key`;
    /// the announced checkpoint from `--checkpoint`. Unreadable: bad input.
    fn of(
        journal: &JournalArgs,
        key: Option<PathBuf>,
        checkpoint: Option<String>,
    ) -> anyhow::Result<Against> {
        let announced = checkpoint
            .map(|c| {
                c.parse::<Announced>()
                    .map_err(|e| BadInput(format!("--checkpoint: {e}")))
            })
            .transpose()?;
        let (path, what) = match (key, &journal.config) {
            (Some(key), _) => (Some(key), "--key"),
            (None, Some(config)) => (
                crate::config::CoordinatorConfig::load(config)?.checkpoint_key,
                "checkpoint_key",
            ),
            (None, None) => (None, "--key"),
        };
        let key = path
            .map(|path| {
                let bad = |m: String| BadInput(format!("{}: {what}: {m}", path.display()));
                let pem = std::fs::read(&path).map_err(|e| bad(format!("cannot read it: {e}")))?;
                let pem = String::from_utf8(pem).map_err(|_| bad("not a PEM file".into()))?;
                CheckpointKey::from_pem(&pem).map_err(|e| bad(e.to_string()))
            })
            .transpose()?;
        Ok(Against { key, announced })
    }
}

impl JournalArgs {
    fn locate(self) -> anyhow::Result<Location> {
        let path = match (self.config, self.journal) {
            (_, Some(journal)) => journal,
            (Some(config), None) => {
                let config = crate::config::CoordinatorConfig::load(&config)?;
                if let Some(journal) = config.journal {
                    return Ok(Location::Postgres(journal));
                }
                config.journal_path()
            }
            (None, None) => {
                return Err(BadInput("give --config FILE or --journal PATH".into()).into());
            }
        };
        existing(&path)?;
        Ok(Location::Sqlite(path))
    }
}

/// `audit verify` of a PostgreSQL journal: the chain from its first entry
/// (archives are SQLite files cut from a SQLite journal; there are none).
fn verify_postgres(
    journal: &crate::config::JournalConfig,
    archives: &[PathBuf],
    against: &Against,
    output: Output,
) -> anyhow::Result<Exit> {
    if !archives.is_empty() {
        return Err(BadInput(
            "--archive: archives are cut from a SQLite journal; this configuration's journal is in PostgreSQL".into(),
        )
        .into());
    }
    let password = journal.password().map_err(BadInput)?;
    let store = crate::journal::PostgresStore::connect_with(
        &journal.postgres,
        password.as_deref(),
        journal.ca_file.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the journal in PostgreSQL: {e}"))?;
    let snapshot = store.snapshot()?;
    let name = store.name();
    let verdict = crate::journal::chain_verdict(&snapshot);
    let checked = match &verdict {
        Verdict::Intact { .. } => Some(checkpoint::check(
            &snapshot.base,
            &snapshot.rows,
            against.key.as_ref(),
            against.announced.as_ref(),
        )),
        Verdict::Broken { .. } => None,
    };
    let (verdict, found) = match checked {
        Some(Err((seq, reason))) => (Verdict::Broken { seq, reason }, None),
        Some(Ok(found)) => (verdict, Some(found)),
        None => (verdict, None),
    };
    let doc = match &verdict {
        Verdict::Intact { entries } => {
            let mut doc = serde_json::json!({
                "intact": true,
                "entries": entries,
                "starts_after": 0,
                "archives": 0,
            });
            add_checkpoints(&mut doc, found.as_ref());
            doc
        }
        Verdict::Broken { seq, reason } => serde_json::json!({
            "intact": false,
            "file": name,
            "first_bad_entry": seq,
            "reason": reason,
        }),
    };
    match (output, &verdict) {
        (Output::Json, _) => outln!("{doc}"),
        (Output::Text, Verdict::Intact { entries }) => {
            outln!("{name}: intact, {entries} entries");
            say_checkpoints(found.as_ref(), against);
        }
        (Output::Text, Verdict::Broken { seq, reason }) => {
            outln!("{name}: BROKEN at entry {seq}: {reason}");
        }
    }
    Ok(match verdict {
        Verdict::Intact { .. } => Exit::Ok,
        Verdict::Broken { .. } => Exit::Failed,
    })
}

/// The checkpoints' figures in `audit verify`'s JSON.
fn add_checkpoints(doc: &mut serde_json::Value, found: Option<&checkpoint::Found>) {
    let (Some(map), Some(found)) = (doc.as_object_mut(), found) else {
        return;
    };
    map.insert("checkpoints".into(), found.checkpoints.into());
    map.insert("signatures_checked".into(), found.signed.into());
    map.insert(
        "last_checkpoint".into(),
        found.last.as_ref().map(|c| c.announced()).into(),
    );
    map.insert("after_last_checkpoint".into(), found.after_last.into());
    map.insert("announced".into(), found.announced.clone().into());
}

/// The checkpoints' lines in `audit verify`'s text.
fn say_checkpoints(found: Option<&checkpoint::Found>, against: &Against) {
    let Some(found) = found else { return };
    match (&against.key, &found.last) {
        (Some(key), Some(last)) => outln!(
            "{} signed checkpoints verify against the checkpoint key {}; the last covers entry {} ({}), {} entries after it",
            found.checkpoints,
            key.key_id(),
            last.seq,
            last.announced(),
            found.after_last
        ),
        (Some(key), None) => outln!(
            "no signed checkpoint yet (checkpoint key {}); {} entries unsigned",
            key.key_id(),
            found.after_last
        ),
        (None, _) => outln!(
            "{} checkpoints found, their signatures NOT checked: give the checkpoint key's public half with --key checkpoint-signing.pub",
            found.checkpoints
        ),
    }
    if let Some(announced) = &found.announced {
        outln!("the announced checkpoint {announced} is in the journal");
    }
}

fn existing(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Err(BadInput(format!("{}: no journal here", path.display())).into());
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    match args {
        Args::Verify {
            journal,
            key,
            checkpoint,
            archive,
            output,
        } => {
            let against = Against::of(&journal, key, checkpoint)?;
            match journal.locate()? {
                Location::Sqlite(path) => verify(&path, &archive, &against, output),
                Location::Postgres(journal) => {
                    verify_postgres(&journal, &archive, &against, output)
                }
            }
        }
        Args::Archive {
            journal,
            before,
            to,
            output,
        } => match journal.locate()? {
            Location::Sqlite(path) => archive(&path, before, &to, output),
            // Moving entries out needs the coordinators stopped (the file is
            // opened exclusively); a PostgreSQL journal is shared by running
            // coordinators, and its size is PostgreSQL's to manage.
            Location::Postgres(_) => Err(BadInput(
                "audit archive works on a SQLite journal; this configuration's journal is in PostgreSQL, which keeps it (back it up and prune it with PostgreSQL's tools)".into(),
            )
            .into()),
        },
    }
}

/// One file's verdict, and where its chain starts and ends.
struct Checked {
    path: PathBuf,
    verdict: Verdict,
    base: Head,
    head: Head,
    rows: Vec<crate::journal::Row>,
}

fn check(path: &Path) -> anyhow::Result<Checked> {
    // A file that is not an SQLite database (or not one we may open) is
    // the caller's mistake, not a broken journal.
    let store = SqliteStore::open(path).map_err(|e| {
        BadInput(format!(
            "{}: cannot be read as a Backout journal: {e}",
            path.display()
        ))
    })?;
    let snapshot = store.snapshot()?;
    Ok(Checked {
        path: path.to_path_buf(),
        verdict: crate::journal::chain_verdict(&snapshot),
        head: snapshot
            .head
            .clone()
            .unwrap_or_else(|| snapshot.base.clone()),
        base: snapshot.base,
        rows: snapshot.rows,
    })
}

fn verify(
    path: &Path,
    archives: &[PathBuf],
    against: &Against,
    output: Output,
) -> anyhow::Result<Exit> {
    for archive in archives {
        existing(archive)?;
    }
    let mut files = archives
        .iter()
        .map(|a| check(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    files.push(check(path)?);
    // The first broken file, or the first seam where one file does not
    // start where the one before it ends.
    let mut problem: Option<(PathBuf, i64, String)> = None;
    // Without --archive, the journal is walked from its own base.
    let mut expected_base = match archives.is_empty() {
        true => files[0].base.clone(),
        false => Head::empty(),
    };
    for f in &files {
        if let Verdict::Broken { seq, reason } = &f.verdict {
            problem = Some((f.path.clone(), *seq, reason.clone()));
            break;
        }
        if f.base != expected_base {
            let reason = if expected_base.seq == 0 {
                format!(
                    "it starts after entry {}, which is in an archive not given (--archive FILE, oldest first)",
                    f.base.seq
                )
            } else {
                format!(
                    "it starts after entry {} but the archive before it ends at entry {} (or with another hash)",
                    f.base.seq, expected_base.seq
                )
            };
            problem = Some((f.path.clone(), f.base.seq + 1, reason));
            break;
        }
        expected_base = f.head.clone();
    }
    // The checkpoints, over every file's entries in order.
    let mut found = None;
    if problem.is_none() {
        let rows: Vec<crate::journal::Row> =
            files.iter().flat_map(|f| f.rows.iter().cloned()).collect();
        match checkpoint::check(
            &files[0].base,
            &rows,
            against.key.as_ref(),
            against.announced.as_ref(),
        ) {
            Ok(f) => found = Some(f),
            Err((seq, reason)) => {
                // The file holding that entry (the journal when none does).
                let file = files
                    .iter()
                    .find(|f| f.rows.iter().any(|r| r.seq == seq))
                    .unwrap_or(&files[files.len() - 1]);
                problem = Some((file.path.clone(), seq, reason));
            }
        }
    }
    let entries: i64 = files
        .iter()
        .map(|f| match f.verdict {
            Verdict::Intact { entries } => entries,
            Verdict::Broken { .. } => 0,
        })
        .sum();
    let (ok, doc) = match &problem {
        None => {
            let mut doc = serde_json::json!({
                "intact": true,
                "entries": entries,
                "starts_after": files[0].base.seq,
                "archives": archives.len(),
            });
            add_checkpoints(&mut doc, found.as_ref());
            (true, doc)
        }
        Some((file, seq, reason)) => (
            false,
            serde_json::json!({
                "intact": false,
                "file": file.display().to_string(),
                "first_bad_entry": seq,
                "reason": reason,
            }),
        ),
    };
    match output {
        Output::Json => outln!("{doc}"),
        Output::Text => match &problem {
            None => {
                let first = &files[0];
                let start = match (archives.is_empty(), first.base.seq) {
                    (_, 0) => String::new(),
                    (true, n) => format!(
                        " (entries 1..={n} are in archives; give them with --archive to check the seam)"
                    ),
                    (false, n) => format!(" (the oldest archive starts after entry {n})"),
                };
                let with = match archives.len() {
                    0 => String::new(),
                    n => format!(" with {n} archive(s)"),
                };
                outln!("{}{with}: intact, {entries} entries{start}", path.display());
                say_checkpoints(found.as_ref(), against);
            }
            Some((file, seq, reason)) => {
                outln!("{}: BROKEN at entry {seq}: {reason}", file.display());
            }
        },
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

fn archive(
    path: &Path,
    before: std::time::Duration,
    to: &Path,
    output: Output,
) -> anyhow::Result<Exit> {
    if to.exists() {
        return Err(BadInput(format!(
            "{}: exists already; the archive must be a new file",
            to.display()
        ))
        .into());
    }
    // The coordinator's own lock: refused while a coordinator runs.
    let store = SqliteStore::open_exclusive(path)?;
    match store.verify()? {
        Verdict::Intact { .. } => {}
        Verdict::Broken { seq, reason } => {
            anyhow::bail!(
                "{}: BROKEN at entry {seq}: {reason}; nothing archived",
                path.display()
            );
        }
    }
    let cutoff = now_ms().saturating_sub(i64::try_from(before.as_millis()).unwrap_or(i64::MAX));
    let entries = store.read_from(1, None)?;
    let upto = crate::journal::archivable_upto(&entries, cutoff);
    let first = entries.first().map_or(0, |e| e.seq);
    drop(entries);
    if upto == 0 {
        let doc = serde_json::json!({ "archived": 0 });
        match output {
            Output::Json => outln!("{doc}"),
            Output::Text => outln!(
                "nothing to archive: no run ended before the cutoff with every entry before it"
            ),
        }
        return Ok(Exit::Ok);
    }
    let base = store.archive(upto, to)?;
    let doc = serde_json::json!({
        "archived": upto - first + 1,
        "from": first,
        "to": upto,
        "archive": to.display().to_string(),
        "head_hash": base.hash,
    });
    match output {
        Output::Json => outln!("{doc}"),
        Output::Text => {
            outln!(
                "archived entries {first}..={upto} to {} (its last hash {})",
                to.display(),
                base.hash
            );
            outln!(
                "{} now starts after entry {upto}; check both with: backout audit verify --journal {} --archive {}",
                path.display(),
                path.display(),
                to.display()
            );
        }
    }
    Ok(Exit::Ok)
}
