//! `backout report RUN`: the post-rollback report.

use std::path::PathBuf;

use anyhow::Context;
use backout_proto::wire;

use super::Exit;
use super::client::{ConnectArgs, status_error};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (as `backout runs` lists it).
    run: String,
    /// md (Markdown), json or html.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Markdown, for the incident ticket.
    Md,
    Json,
    /// One self-contained page with an SVG timeline.
    Html,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let mut control = connect.control().await?;
    let format = match args.format {
        Format::Md => "md",
        Format::Json => "json",
        Format::Html => "html",
    };
    let text = control
        .report(wire::ReportRequest {
            run_id: args.run,
            format: format.into(),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .text;
    match args.out {
        Some(path) => {
            std::fs::write(&path, text)
                .with_context(|| format!("{}: cannot write the report", path.display()))?;
            outln!("report written to {}", path.display());
        }
        None => out!("{text}"),
    }
    Ok(Exit::Ok)
}
