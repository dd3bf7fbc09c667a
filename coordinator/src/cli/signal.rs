//! `backout signal set|event`: manual signals and counted events.

use backout_proto::wire;

use super::client::{ConnectArgs, status_error};
use super::{BadInput, Exit, Output};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Set a manual signal, recorded with your identity.
    ///
    /// Example: backout signal set breach_confirmed=true --note "customer PII in public bucket"
    Set {
        /// NAME=VALUE, VALUE being true or false (yes/no and on/off also do)
        /// or a number; anything else exits 2.
        assignment: String,
        /// Why (recorded in the journal with your name).
        #[arg(long, default_value = "")]
        note: String,
        /// text: for people; json: for programs.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Record counted events (e.g. one critical ticket).
    ///
    /// Example: backout signal event critical_tickets --count 3 --note "ZD-4411..4413"
    Event {
        /// The counted-events signal.
        name: String,
        /// How many events.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// What they are (recorded in the journal with your name).
        #[arg(long, default_value = "")]
        note: String,
        /// text: for people; json: for programs.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let mut control = connect.control().await?;
    let (reply, output) = match args {
        Args::Set {
            assignment,
            note,
            output,
        } => {
            let (name, value) = assignment
                .split_once('=')
                .ok_or_else(|| BadInput(format!("`{assignment}`: expected NAME=VALUE")))?;
            let request = wire::SetSignalRequest {
                name: name.trim().into(),
                value: value.trim().into(),
                note,
            };
            (control.set_signal(request).await, output)
        }
        Args::Event {
            name,
            count,
            note,
            output,
        } => {
            let request = wire::RecordEventRequest { name, count, note };
            (control.record_event(request).await, output)
        }
    };
    let signal = reply
        .map_err(status_error)?
        .into_inner()
        .signal
        .unwrap_or_default();
    match output {
        Output::Json => outln!("{}", super::matrix::signal_json(&signal)),
        Output::Text => outln!(
            "{} = {} (set by {})",
            signal.name,
            if signal.known {
                signal.value.as_str()
            } else {
                "unknown"
            },
            signal.set_by
        ),
    }
    Ok(Exit::Ok)
}
