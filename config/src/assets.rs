//! Shell completions (bash, zsh, fish) and man pages, written from a
//! binary's clap command: the files the Debian packages install. Each binary
//! writes its own with a hidden command (`backout generate-assets DIR`,
//! `backout-agent --generate-assets DIR`); `scripts/build-debs.sh` runs them,
//! and a test checks the files in `packaging/generated/` are current.

use std::path::Path;

use clap_complete::Shell;

/// Writes into `dir`: `completions/<bin>.bash`, `completions/_<bin>` (zsh),
/// `completions/<bin>.fish`, and `man/<bin>.1` with one page per visible
/// subcommand (`man/<bin>-<sub>.1`).
pub fn write(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    let bin = command.get_name().to_string();
    let completions = dir.join("completions");
    let man = dir.join("man");
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    // clap_complete offers hidden subcommands and flags too: completions
    // are made from a copy without them.
    let mut offered = visible(&command);
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut offered, &bin, &completions)?;
    }
    let mut command = command.disable_help_subcommand(true);
    command.build();
    man_pages(&command, &man)
}

/// A copy of `command` (not yet built) with what completions need (names,
/// help, arguments, subcommands) but none of its hidden subcommands and
/// arguments. Requirements between arguments are left out: one may name a
/// hidden argument, and completions do not use them.
fn visible(command: &clap::Command) -> clap::Command {
    let mut copy = clap::Command::new(kept(command.get_name()));
    if let Some(about) = command.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(about) = command.get_long_about() {
        copy = copy.long_about(about.clone());
    }
    if let Some(version) = command.get_version() {
        copy = copy.version(kept(version));
    }
    copy.args(
        command
            .get_arguments()
            .filter(|arg| !arg.is_hide_set())
            .map(|arg| {
                arg.clone()
                    .required_unless_present(clap::builder::Resettable::<clap::Id>::Reset)
            }),
    )
    .subcommands(
        command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .map(visible),
    )
}

/// `text` for as long as the process lives: clap's names and versions are
/// `&'static str` (without its `string` feature). Only a one-shot asset
/// generation calls this, a few dozen short strings.
fn kept(text: &str) -> &'static str {
    Box::leak(text.to_string().into_boxed_str())
}

/// One page for `command` and one for each subcommand under it, but for
/// the hidden ones and clap's own `help` (`<bin> help <sub>` is the same
/// page as `<bin> <sub> --help`).
fn man_pages(command: &clap::Command, dir: &Path) -> std::io::Result<()> {
    for sub in command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        man_pages(sub, dir)?;
    }
    clap_mangen::Man::new(command.clone()).generate_to(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn completions_offer_no_hidden_subcommand_or_flag() {
        let command = clap::Command::new("tool")
            .arg(
                clap::Arg::new("config")
                    .long("config")
                    .help("The configuration")
                    .required_unless_present("secret_flag"),
            )
            .arg(
                clap::Arg::new("secret_flag")
                    .long("secret-flag")
                    .help("Hidden")
                    .hide(true),
            )
            .subcommand(clap::Command::new("serve").about("Serve"))
            .subcommand(clap::Command::new("generate-assets").hide(true));
        let dir = tempfile::tempdir().unwrap();
        super::write(command, dir.path()).unwrap();
        for file in ["tool.bash", "_tool", "tool.fish"] {
            let text = std::fs::read_to_string(dir.path().join("completions").join(file)).unwrap();
            assert!(text.contains("serve"), "{file}: {text}");
            assert!(text.contains("config"), "{file}: {text}");
            assert!(!text.contains("generate-assets"), "{file}: {text}");
            assert!(!text.contains("secret-flag"), "{file}: {text}");
        }
    }
}
