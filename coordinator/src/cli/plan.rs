//! `backout plan check FILE`: validate a plan and summarise it; `backout
//! plan schema`: the plan file's JSON Schema.

use std::io::Write;
use std::path::{Path, PathBuf};

use backout_plan::check::{Catalog, Finding, PluginSpec, Severity};
use backout_plan::model::{CanaryFrom, Plan, Source};
use backout_plan::window::Hold;
use serde_json::json;

use super::client::ConnectArgs;
use super::{BadInput, Exit, Output, catalog, reference, table};
use crate::config::CoordinatorConfig;

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
        Source::Canary { from, over, .. } => {
            let over = humantime::format_duration(*over);
            match from {
                CanaryFrom::Prometheus { url, .. } => format!("canary judge {url} over {over}"),
                CanaryFrom::Hosts {
                    canary,
                    baseline,
                    check,
                } => format!(
                    "canary judge {canary} vs {baseline} ({check} response time) over {over}"
                ),
            }
        }
        Source::Manual => "manual".into(),
        Source::Events { window } => format!("events in {}", humantime::format_duration(*window)),
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Validate a plan and print a summary; exit 2 with file, line and field when invalid.
    ///
    /// Besides the plan's own rules, every step is checked against what its
    /// plugin declares (its actions; its parameters' names, types, required
    /// ones and secrets): the built-in plugins by default, or the plugin
    /// files of --plugins DIR, the pinned files of --config, or what the
    /// connected agents run with --against-fleet. With --config, probes must
    /// name checks the coordinator defines, and pins must match their files.
    ///
    /// Example: backout plan check examples/samia-tarot/plan.toml --plugins target/plugins
    Check(CheckArgs),
    /// Print a JSON Schema of the plan file, the built-in plugins' parameters
    /// included, for an editor's completion and checking (e.g. taplo's
    /// `#:schema ./plan.schema.json` first line). docs/plan.md is the same
    /// reference for people, generated from the same types.
    ///
    /// Example: backout plan schema > plan.schema.json
    Schema,
    /// Regenerate plugins/builtin.json and docs/plugins/*.md from the
    /// built-in plugin files, and docs/plan.md from the plan's types
    /// (maintainers; a test fails when they are stale).
    #[command(hide = true)]
    Reference {
        /// The built plugins (scripts/build-plugins.sh puts them in target/plugins).
        #[arg(long, value_name = "DIR")]
        plugins: PathBuf,
        /// The repository's root.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The plan file.
    file: PathBuf,
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    /// Check the steps against the plugin files (*.wasm, named by file stem) in DIR.
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// The coordinator's configuration: probes must name its checks, and its
    /// pins (with `path`) must match their files, whose schemas are used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the steps against the plugins the connected agents run (asks
    /// the coordinator named by BACKOUT_COORDINATOR, BACKOUT_PKI and
    /// BACKOUT_OPERATOR, or the other BACKOUT_* connection variables).
    #[arg(long)]
    against_fleet: bool,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    match args {
        Args::Check(args) => {
            let mut catalog = Catalog {
                plugins: catalog::builtin()
                    .into_iter()
                    .filter_map(|(name, d)| {
                        let spec = PluginSpec::new(
                            d.actions.iter().map(|a| a.name.clone()).collect(),
                            &if d.schema.is_null() {
                                String::new()
                            } else {
                                d.schema.to_string()
                            },
                            "built in",
                        )
                        .ok()?;
                        Some((name, spec))
                    })
                    .collect(),
                complete: false,
                checks: None,
            };
            let mut notes = catalog::optional_needs(&catalog::builtin());
            let mut errors = Vec::new();
            if let Some(config_path) = &args.config {
                let config = CoordinatorConfig::load(config_path)?;
                let (from_config, pins) = catalog::for_config(config_path, &config)?;
                catalog = from_config;
                errors.extend(pins);
            }
            if let Some(dir) = &args.plugins {
                let files = catalog::describe_dir(dir)?;
                if let Some(config_path) = &args.config {
                    let config = CoordinatorConfig::load(config_path)?;
                    for (name, pin) in &config.plugins {
                        if let Some((_, sha256, path)) = files.get(name)
                            && !sha256.eq_ignore_ascii_case(pin.sha256.trim())
                        {
                            errors.push(catalog::pin_mismatch(
                                config_path,
                                name,
                                &pin.sha256,
                                path,
                                sha256,
                            ));
                        }
                    }
                }
                notes = catalog::optional_needs(files.iter().map(|(name, (d, _, _))| (name, d)));
                catalog::add_files(&mut catalog, files)?;
            }
            if args.against_fleet {
                let reply = super::agents::list(connect, true).await?;
                let (plugins, fleet_errors) = catalog::from_fleet(&reply);
                if !catalog.complete {
                    catalog.plugins.clear();
                    catalog.complete = true;
                }
                catalog.plugins.extend(plugins);
                errors.extend(fleet_errors);
                notes = catalog::fleet_notes(&reply);
            }
            check(&args.file, args.output, &catalog, errors, &notes)?;
            Ok(Exit::Ok)
        }
        Args::Schema => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&reference::plan_schema(&catalog::builtin()))?
            );
            Ok(Exit::Ok)
        }
        Args::Reference { plugins, out } => {
            reference::write(&plugins, &out)?;
            Ok(Exit::Ok)
        }
    }
}

/// The plan's steps and probes against `catalog`: warnings are printed to
/// stderr, errors (with `extra`, found elsewhere) make it bad input.
pub fn check_steps(
    path: &Path,
    catalog: &Catalog,
    extra: Vec<String>,
) -> Result<Vec<Finding>, BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read: {e}", path.display())))?;
    let findings = backout_plan::check::check(&text, catalog);
    let mut errors = extra;
    let mut warnings = Vec::new();
    for f in findings {
        match f.severity {
            Severity::Error => errors.push(format!("{}:{f}", path.display())),
            Severity::Warning => warnings.push(f),
        }
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(BadInput(format!(
            "{} problem(s) that would break at run time:\n{}",
            errors.len(),
            errors.join("\n")
        )))
    }
}

pub fn check(
    path: &Path,
    output: Output,
    catalog: &Catalog,
    extra: Vec<String>,
    notes: &catalog::Notes,
) -> anyhow::Result<()> {
    let plan = Plan::load(path)?;
    let warnings = check_steps(path, catalog, extra)?;
    for w in &warnings {
        let _ = writeln!(std::io::stderr(), "{}:{w}", path.display());
    }
    // What the plan's plugins can do without: said, never an error.
    let used: std::collections::BTreeSet<&str> = plan
        .phases
        .iter()
        .flat_map(|p| p.steps.iter().map(|s| s.plugin.as_str()))
        .collect();
    let notes: Vec<&String> = notes
        .iter()
        .filter(|(plugin, _)| used.contains(plugin.as_str()))
        .flat_map(|(_, n)| n)
        .collect();
    // Said with the rest of the check's answer (stdout), not as a
    // warning: nothing is wrong.
    match output {
        Output::Json => {
            let doc = json!({
                "valid": true,
                "warnings": warnings,
                "notes": notes,
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
            if !notes.is_empty() {
                outln!();
            }
            for note in &notes {
                outln!("note: {note}");
            }
        }
    }
    Ok(())
}
