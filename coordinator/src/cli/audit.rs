//! `backout audit verify`: walk the journal's hash chain.

use std::path::PathBuf;

use super::{BadInput, Exit, Output};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Walk the journal's hash chain; report the first entry that does not
    /// match. Exit 0 intact, 1 broken.
    ///
    /// Example: backout audit verify --config /etc/backout/coordinator.toml
    Verify {
        /// The coordinator's configuration (its state_dir holds the journal).
        #[arg(long, conflicts_with = "journal")]
        config: Option<PathBuf>,
        /// The journal file itself.
        #[arg(long)]
        journal: Option<PathBuf>,
        /// text: for people; json: for programs.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let Args::Verify {
        config,
        journal,
        output,
    } = args;
    let path = match (config, journal) {
        (_, Some(journal)) => journal,
        (Some(config), None) => crate::config::CoordinatorConfig::load(&config)?.journal_path(),
        (None, None) => {
            return Err(BadInput("give --config FILE or --journal PATH".into()).into());
        }
    };
    if !path.exists() {
        return Err(BadInput(format!("{}: no journal here", path.display())).into());
    }
    let verdict = crate::journal::Journal::open(&path)?.verify()?;
    let (ok, doc) = match &verdict {
        crate::journal::Verdict::Intact { entries } => (
            true,
            serde_json::json!({ "intact": true, "entries": entries }),
        ),
        crate::journal::Verdict::Broken { seq, reason } => (
            false,
            serde_json::json!({ "intact": false, "first_bad_entry": seq, "reason": reason }),
        ),
    };
    match output {
        Output::Json => outln!("{doc}"),
        Output::Text => match verdict {
            crate::journal::Verdict::Intact { entries } => {
                outln!("{}: intact, {entries} entries", path.display());
            }
            crate::journal::Verdict::Broken { seq, reason } => {
                outln!("{}: BROKEN at entry {seq}: {reason}", path.display());
            }
        },
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}
