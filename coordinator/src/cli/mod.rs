//! The operator CLI: one module per command (its clap `Args` and its `run`),
//! exit codes, output helpers. `main.rs` is only the clap root.
//!
//! Everything a command prints to standard output goes through [`outln!`] or
//! [`out!`], never `println!`: when the reader goes away early
//! (`backout plan check plan.toml | head -2`), `println!` panics (exit 101);
//! these end the process quietly with [`EXIT_BROKEN_PIPE`] instead.

use std::fmt;
use std::io::{self, Write};

/// Prints a line to standard output, like `println!`, but never panics: see
/// [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Prints to standard output, like `print!`, but never panics: see
/// [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

pub mod abort;
pub mod agents;
pub mod approve;
pub mod assess;
pub mod audit;
pub mod catalog;
pub mod client;
pub mod drill;
pub mod guard;
pub mod init;
pub mod matrix;
pub mod pki;
pub mod plan;
pub mod reference;
pub mod remedy;
pub mod report;
pub mod rollback;
pub mod runs;
pub mod serve;
pub mod signal;
pub mod status;
pub mod table;
pub mod watch;
pub mod whoami;

/// The exit code when standard output's reader went away before everything
/// was printed: 141 (128 + SIGPIPE), what a shell reports for `cat`, `ls` or
/// any coreutils program in the same place. Neither "ok" nor one of the
/// documented failures: the reader chose to stop reading.
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Writes to standard output and flushes. When the reader has gone away
/// (EPIPE), the process ends quietly with [`EXIT_BROKEN_PIPE`] (unless a
/// command that changes files asked to finish its work first:
/// [`finish_work_if_stdout_closes`]); any other write error (a full disk
/// behind a redirection) is said on standard error and exits 1. Never a
/// panic.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    use std::sync::atomic::Ordering;
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(error) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if error.kind() == io::ErrorKind::BrokenPipe && FINISH_WORK.load(Ordering::Relaxed) {
            STDOUT_GONE.store(true, Ordering::Relaxed);
            return;
        }
        stdout_failed(&error);
    }
}

/// Set by commands that write files as they go (`init`, `pki`): a reader
/// that stops reading (`backout init … | head -2`) must not leave half a
/// starter set or PKI behind, so output is dropped from then on and the
/// command finishes.
static FINISH_WORK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Standard output's reader went away (with [`FINISH_WORK`] set).
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a command that changes files: when standard output's reader goes
/// away, its output is dropped and the command finishes its work (the
/// process does not end at the next print).
pub fn finish_work_if_stdout_closes() {
    FINISH_WORK.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Ends the process after standard output failed: see [`write_stdout`].
pub fn stdout_failed(error: &io::Error) -> ! {
    if error.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(EXIT_BROKEN_PIPE));
    }
    say_error(&format!(
        "backout: cannot write to standard output: {error}"
    ));
    std::process::exit(Exit::Failed as i32)
}

/// Writes one line to standard error; a closed standard error is ignored
/// (`eprintln!` would panic).
pub fn say_error(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Parses an RFC 3339 time or a duration meaning "that long ago", to Unix ms.
pub fn parse_when(text: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now();
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(at) => at,
        Err(_) => {
            let ago = backout_config::parse_duration(text).map_err(|_| {
                format!(
                    "`{text}` is neither a time like 2026-01-15T02:00:00Z nor a duration like 45m"
                )
            })?;
            now.checked_sub(ago).ok_or("too long ago")?
        }
    };
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .map_err(|_| "before 1970".to_string())
}

/// Exit codes, stable and documented in `backout --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked and everything is fine.
    Ok = 0,
    /// 1: the command ran and the answer is "not fine" (unhealthy, refused, failed).
    Failed = 1,
    /// 2: bad input (flags, files, configuration).
    BadInput = 2,
    /// 3: the answer is unknown: nothing is known to be wrong, but some of
    /// what should be known is not (`assess`: a trigger has no data).
    Unknown = 3,
}

/// An error caused by what the user gave us; exits with code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Chooses the exit code for an error: bad input anywhere in its chain gives 2.
pub fn exit_code_for(error: &anyhow::Error) -> Exit {
    let bad_input = error.chain().any(|e| {
        e.is::<BadInput>()
            || e.is::<backout_config::ConfigError>()
            || e.is::<backout_tls::TlsError>()
                && matches!(
                    e.downcast_ref::<backout_tls::TlsError>(),
                    Some(backout_tls::TlsError::File { .. })
                )
            || e.is::<backout_tls::pki::PkiError>()
    });
    if bad_input {
        Exit::BadInput
    } else {
        Exit::Failed
    }
}

/// How a command prints data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Tables for people.
    #[default]
    Text,
    /// JSON for programs.
    Json,
}

/// Text from agents and plugins made safe for a terminal: control
/// characters (escape sequences, carriage returns, newlines) are shown as
/// `\u{1b}` instead of acting on the operator's screen. Tabs stay.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Formats a duration for people (kept in `crate::text`, with the report's).
pub use crate::text::human_ms;

#[cfg(test)]
mod printable_tests {
    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(
            super::printable("ok\u{1b}[2J\rdone\tx"),
            "ok\\u{1b}[2J\\u{d}done\tx"
        );
        assert_eq!(super::printable("déjà vu"), "déjà vu");
    }
}
