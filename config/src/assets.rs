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
pub fn write(mut command: clap::Command, dir: &Path) -> std::io::Result<()> {
    let bin = command.get_name().to_string();
    let completions = dir.join("completions");
    let man = dir.join("man");
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, &bin, &completions)?;
    }
    let mut command = command.disable_help_subcommand(true);
    command.build();
    man_pages(&command, &man)
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
