//! `backout plan check FILE`: validate a plan and summarise it.

use std::path::{Path, PathBuf};

use backout_plan::model::{Plan, Source};
use backout_plan::window::Hold;
use serde_json::json;

use super::{Exit, Output, table};

fn hold_text(hold: Hold) -> String {
    match hold {
        Hold::Immediately => "-".into(),
        Hold::For(d) => humantime::format_duration(d).to_string(),
        Hold::Samples(n) => format!("{n} samples"),
    }
}

fn source_text(source: &Source) -> String {
    match source {
        Source::Prometheus { url, .. } => format!("prometheus {url}"),
        Source::Probe { check, aggregate } => format!("probe {check} ({aggregate})"),
        Source::Canary { url, over, .. } => {
            format!(
                "canary judge {url} over {}",
                humantime::format_duration(*over)
            )
        }
        Source::Manual => "manual".into(),
        Source::Events { window } => format!("events in {}", humantime::format_duration(*window)),
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Validate a plan and print a summary; exit 2 with file, line and field when invalid.
    ///
    /// Example: backout plan check examples/samia-tarot/plan.toml
    Check {
        /// The plan file.
        file: PathBuf,
        /// text: for people; json: for programs.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let Args::Check { file, output } = args;
    check(&file, output)?;
    Ok(Exit::Ok)
}

pub fn check(path: &Path, output: Output) -> anyhow::Result<()> {
    let plan = Plan::load(path)?;
    match output {
        Output::Json => {
            let doc = json!({
                "valid": true,
                "name": plan.meta.name,
                "document": plan.meta.document,
                "hosts": plan.hosts.iter().map(|h| json!({"id": h.id, "groups": h.groups})).collect::<Vec<_>>(),
                "signals": plan.signals.values().map(|s| json!({"name": s.name, "source": source_text(&s.source)})).collect::<Vec<_>>(),
                "phases": plan.phases.iter().map(|p| json!({
                    "id": p.id, "name": p.name, "after": p.after, "approvals": p.approvals,
                    "time_limit_s": p.time_limit.map(|d| d.as_secs()),
                    "steps": p.steps.iter().map(|s| json!({"id": s.id, "plugin": s.plugin, "action": s.action, "on": s.on})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "approvals": plan.approvals.run,
                "escalation": plan.escalations.iter().map(|e| json!({"who": e.who, "when": e.when_text})).collect::<Vec<_>>(),
                "triggers": plan.triggers.iter().map(|t| json!({
                    "name": t.name, "class": t.class.as_str(), "when": t.when_text,
                    "for": hold_text(t.hold), "deciders": t.deciders,
                })).collect::<Vec<_>>(),
            });
            outln!("{doc}");
        }
        Output::Text => {
            outln!(
                "{}: valid — {}{}",
                path.display(),
                plan.meta.name,
                plan.meta
                    .document
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
            outln!(
                "{} hosts, {} roles, {} signals, {} triggers\n",
                plan.hosts.len(),
                plan.roles.len(),
                plan.signals.len(),
                plan.triggers.len()
            );
            let rows: Vec<Vec<String>> = plan
                .triggers
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.class.as_str().into(),
                        t.when_text.clone(),
                        hold_text(t.hold),
                        t.deciders.join(" + "),
                    ]
                })
                .collect();
            out!(
                "{}",
                table::render(&["TRIGGER", "CLASS", "WHEN", "FOR", "DECIDERS"], &rows)
            );
            outln!();
            let rows: Vec<Vec<String>> = plan
                .signals
                .values()
                .map(|s| vec![s.name.clone(), source_text(&s.source)])
                .collect();
            out!("{}", table::render(&["SIGNAL", "SOURCE"], &rows));
            outln!();
            let rows: Vec<Vec<String>> = plan
                .phases
                .iter()
                .map(|p| {
                    vec![
                        p.id.clone(),
                        p.name.clone(),
                        if p.after.is_empty() {
                            "-".into()
                        } else {
                            p.after.join(", ")
                        },
                        if p.approvals.is_empty() {
                            "-".into()
                        } else {
                            p.approvals.join(" + ")
                        },
                        p.time_limit
                            .map(|d| humantime::format_duration(d).to_string())
                            .unwrap_or_else(|| "-".into()),
                        p.steps.len().to_string(),
                    ]
                })
                .collect();
            out!(
                "{}",
                table::render(
                    &["PHASE", "NAME", "AFTER", "APPROVALS", "TIME LIMIT", "STEPS"],
                    &rows
                )
            );
            if !plan.approvals.run.is_empty() {
                outln!(
                    "\nA run needs approval by: {}",
                    plan.approvals.run.join(" + ")
                );
            }
            for e in &plan.escalations {
                outln!("Escalate to {} when {}", e.who, e.when_text);
            }
        }
    }
    Ok(())
}
