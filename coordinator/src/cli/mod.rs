//! The operator CLI: argument definitions, exit codes, output helpers.

pub mod assess;
pub mod client;
pub mod drill;
pub mod guard;
pub mod matrix;
pub mod pki;
pub mod plan;
pub mod runs;
pub mod serve;
pub mod table;
pub mod watch;

use std::fmt;

/// Exit codes, stable and documented in `backout --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked and everything is fine.
    Ok = 0,
    /// 1: the command ran and the answer is "not fine" (unhealthy, refused, failed).
    Failed = 1,
    /// 2: bad input (flags, files, configuration).
    BadInput = 2,
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
