//! `backout drill --plan staging.toml`: the seed's monthly rollback drill.
//! Runs the whole plan against the staging fleet (the coordinator that
//! serves that plan), for real, with its approvals; follows it live; writes
//! a drill report with each phase's time against the last drill's; and
//! stamps the plan file's `[drill]` with the date and the figures, so later
//! reports show each phase's time against the last drill.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use backout_plan::model::Plan;
use backout_proto::wire;
use serde_json::Value;

use super::client::{ConnectArgs, status_error};
use super::{BadInput, Exit, Output, human_ms};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The staging plan: the one the coordinator serves.
    #[arg(long)]
    pub plan: PathBuf,
    /// Only these phases (comma-separated; default: every non-optional phase).
    #[arg(long, value_delimiter = ',')]
    pub phases: Vec<String>,
    /// Why the drill (recorded in the journal and the report; default:
    /// "drill of PLAN-NAME").
    #[arg(long)]
    pub reason: Option<String>,
    /// Where the drill report goes (default: drill-RUN.md here).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let plan = Plan::load(&args.plan)?;
    let mut control = connect.control().await?;
    // A drill runs for real: never against a coordinator serving another plan.
    let served = control
        .matrix(wire::MatrixRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if served.plan_name != plan.meta.name {
        return Err(BadInput(format!(
            "{}: the coordinator serves plan `{}`, not `{}`; a drill runs only against the coordinator of the plan it rehearses",
            args.plan.display(),
            served.plan_name,
            plan.meta.name
        ))
        .into());
    }
    let previous = plan.drill.as_ref().and_then(|d| d.last.clone());
    let started = control
        .start_run(wire::StartRunRequest {
            reason: args
                .reason
                .unwrap_or_else(|| format!("drill of {}", plan.meta.name)),
            phases: args.phases,
            drill: true,
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let id = started.run_id.clone();
    super::say_error(&format!("drill run {id} started"));
    let updates = control
        .watch(wire::WatchRequest { run_id: id.clone() })
        .await
        .map_err(status_error)?
        .into_inner();
    let exit = super::watch::follow(updates, args.output).await?;

    let report = |format: &str| {
        let mut control = control.clone();
        let request = wire::ReportRequest {
            run_id: id.clone(),
            format: format.into(),
        };
        async move {
            control
                .report(request)
                .await
                .map(|r| r.into_inner().text)
                .map_err(status_error)
        }
    };
    let facts: Value = serde_json::from_str(&report("json").await?)?;
    let phases = phase_seconds(&facts);
    let mut text = report("md").await?;
    text.push_str(&comparison(&phases, previous.as_ref().map(|p| &p.phases)));
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("drill-{id}.md")));
    std::fs::write(&out, &text)
        .with_context(|| format!("{}: cannot write the drill report", out.display()))?;
    let result = facts["run"]["status"].as_str().unwrap_or("unknown");
    stamp(&args.plan, &id, result, &phases)?;
    super::say_error(&format!(
        "drill report written to {}; {} stamped with today's drill",
        out.display(),
        args.plan.display()
    ));
    Ok(exit)
}

/// Seconds each phase took, from the report's phases.
fn phase_seconds(report: &Value) -> BTreeMap<String, f64> {
    report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let (start, end) = (p["started_at_ms"].as_i64()?, p["ended_at_ms"].as_i64()?);
            Some((p["id"].as_str()?.to_string(), (end - start) as f64 / 1000.0))
        })
        .collect()
}

/// A Markdown table of this drill's phase times against the last drill's.
pub fn comparison(now: &BTreeMap<String, f64>, last: Option<&BTreeMap<String, f64>>) -> String {
    let secs = |s: f64| human_ms((s * 1000.0) as i64);
    let mut o = String::from(
        "\n## Against the last drill\n\n| Phase | This drill | Last drill | Change |\n| --- | --- | --- | --- |\n",
    );
    for (phase, s) in now {
        let (before, change) = match last.and_then(|l| l.get(phase)) {
            Some(b) => (secs(*b), format!("{:+.0}%", (s - b) / b.max(0.001) * 100.0)),
            None => ("—".into(), "—".into()),
        };
        o.push_str(&format!(
            "| {phase} | {} | {before} | {change} |\n",
            secs(*s)
        ));
    }
    o
}

/// Writes `[drill] last_tested` and `[drill.last]` into the plan file,
/// keeping the rest of it as it was.
pub fn stamp(
    path: &Path,
    run: &str,
    result: &str,
    phases: &BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the plan", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{}: not TOML", path.display()))?;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let drill = doc
        .entry("drill")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    let Some(drill) = drill.as_table_mut() else {
        return Err(BadInput(format!("{}: `drill` is not a table", path.display())).into());
    };
    drill["last_tested"] = toml_edit::value(today);
    let mut last = toml_edit::Table::new();
    last["run"] = toml_edit::value(run);
    last["result"] = toml_edit::value(result);
    let mut times = toml_edit::InlineTable::new();
    for (phase, s) in phases {
        times.insert(phase, ((s * 10.0).round() / 10.0).into());
    }
    last["phases"] = toml_edit::value(times);
    drill["last"] = toml_edit::Item::Table(last);
    // Written whole, then renamed: a crash never leaves half a plan.
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot replace", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamping_keeps_the_plan_and_records_the_drill() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("staging.toml");
        std::fs::write(
            &path,
            "# staging\n[plan]\nname = \"staging\" # kept\n[drill]\ncadence = \"monthly\"\n",
        )
        .unwrap();
        let phases = BTreeMap::from([("application".to_string(), 123.45)]);
        stamp(&path, "run-1", "succeeded", &phases).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# staging\n[plan]\nname = \"staging\" # kept\n"),
            "{text}"
        );
        let plan = Plan::parse(&path, &text).unwrap();
        let drill = plan.drill.unwrap();
        assert_eq!(drill.cadence.as_deref(), Some("monthly"));
        assert!(drill.last_tested.is_some());
        let last = drill.last.unwrap();
        assert_eq!(
            (last.run.as_str(), last.result.as_str()),
            ("run-1", "succeeded")
        );
        assert_eq!(last.phases["application"], 123.5);
    }

    #[test]
    fn each_phase_is_compared_with_the_last_drill() {
        let now = BTreeMap::from([
            ("application".to_string(), 90.0),
            ("database".to_string(), 30.0),
        ]);
        let last = BTreeMap::from([("application".to_string(), 60.0)]);
        let table = comparison(&now, Some(&last));
        assert!(
            table.contains("| application | 1 m 30 s | 1 m 0 s | +50% |"),
            "{table}"
        );
        assert!(table.contains("| database | 30.0 s | — | — |"), "{table}");
    }
}
