//! `backout watch RUN`: the run as it goes. One progress bar per phase and
//! host, plugins' log lines, approvals waited on, and the final result; with
//! `--output json`, one JSON object per line. Also the dry-run report of
//! `backout rollback start --dry-run`: what each plugin would do, per host.

use std::collections::BTreeMap;

use backout_proto::wire;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use super::client::{ConnectArgs, status_error};
use super::runs::summary_json;
use super::{Exit, Output, human_ms};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (as `backout runs` lists it).
    run: String,
    /// text: bars on a terminal (plain lines otherwise); json: one JSON object per line.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let mut control = connect.control().await?;
    // The fired triggers this run may be deciding, with the time their
    // deciders have left (or how late they are). Without a plan: none.
    if args.output == Output::Text
        && let Ok(m) = control.matrix(wire::MatrixRequest {}).await
    {
        for line in super::matrix::deadline_lines(m.get_ref()) {
            outln!("{line}");
        }
    }
    let updates = control
        .watch(wire::WatchRequest { run_id: args.run })
        .await
        .map_err(status_error)?
        .into_inner();
    follow(updates, args.output).await
}

/// A stream of run updates, as the Control client returns it.
pub type Updates = tonic::Streaming<wire::RunUpdate>;

pub fn event_json(e: &wire::RunEvent) -> Value {
    let mut doc = json!({ "kind": e.kind, "at_ms": e.at_ms });
    let map = doc.as_object_mut();
    if let Some(map) = map {
        for (key, value) in [
            ("phase", &e.phase),
            ("step", &e.step),
            ("host", &e.host),
            ("outcome", &e.outcome),
            ("text", &e.text),
            ("by", &e.by),
            ("role", &e.role),
        ] {
            if !value.is_empty() {
                map.insert(key.into(), json!(value));
            }
        }
        if e.attempt > 0 {
            map.insert("attempt".into(), json!(e.attempt));
        }
        if e.total > 0 {
            map.insert("done".into(), json!(e.done));
            map.insert("total".into(), json!(e.total));
        }
        if !e.data.is_empty() {
            let data = serde_json::from_str(&e.data).unwrap_or_else(|_| json!(e.data));
            map.insert("data".into(), data);
        }
    }
    doc
}

/// One line for people about an event, or nothing for events the bars show.
fn event_line(e: &wire::RunEvent, verbose: bool) -> Option<String> {
    let at = format!("{}/{}@{}", e.phase, e.step, e.host);
    Some(match e.kind.as_str() {
        "started" => format!("run started by {}", e.by),
        "approved" => format!("{} approved {} as {}", e.by, e.phase, e.role),
        "refused" => format!("{} REFUSED {} as {}: {}", e.by, e.phase, e.role, e.text),
        "aborted" => format!("ABORTED by {}", e.by),
        "phase-timed-out" => format!("phase {} TIMED OUT", e.phase),
        "awaiting" => format!(
            "{at} WAITING for its agent since {}: {}",
            crate::text::rfc3339(e.at_ms),
            e.text
        ),
        "ended" => format!("run ended: {}", e.outcome.to_uppercase()),
        "notified" => format!("told {}: {} ({})", e.host, e.step, e.text),
        "not-notified" => format!("NOT told {}: {}: {}", e.host, e.step, e.text),
        "log" => format!("{at} [{}] {}", e.role, e.text),
        "finished" if e.outcome != "succeeded" => {
            format!(
                "{at} #{} {}: {}",
                e.attempt,
                e.outcome.to_uppercase(),
                e.text
            )
        }
        "finished" if verbose => format!("{at} #{} ok {}", e.attempt, e.text),
        "dispatched" if verbose => format!("{at} #{} sent", e.attempt),
        "progress" if verbose => format!("{at} {}/{} {}", e.done, e.total, e.text),
        _ => return None,
    })
}

fn pending_line(r: &wire::RunSummary) -> Option<String> {
    let waits: Vec<String> = r
        .pending
        .iter()
        .map(|p| {
            format!(
                "{} by {} (waiting {})",
                p.scope,
                p.roles.join(" + "),
                human_ms(p.waiting_ms)
            )
        })
        .collect();
    let mut parts = Vec::new();
    if !waits.is_empty() {
        parts.push(format!("awaiting approval: {}", waits.join("; ")));
    }
    let hosts = super::runs::awaited_texts(r);
    if !hosts.is_empty() {
        parts.push(format!("waiting for {}", hosts.join("; ")));
    }
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// Progress bars, one per (phase, host), made when the phase starts.
struct Bars {
    multi: MultiProgress,
    bars: BTreeMap<(String, String), ProgressBar>,
    style: ProgressStyle,
    /// Who was last said to be awaited (scopes and roles, hosts).
    last_pending: Option<String>,
}

impl Bars {
    fn new() -> Bars {
        let style = ProgressStyle::with_template("{prefix:<32} [{bar:24}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: BTreeMap::new(),
            style,
            last_pending: None,
        }
    }

    /// Prints above the bars (or plainly when there is no terminal).
    fn line(&self, text: &str) {
        let text = super::printable(text);
        if self.multi.is_hidden() || self.multi.println(&text).is_err() {
            outln!("{text}");
        }
    }

    /// A plugin's progress shows on its host's bar until the next change.
    fn progress(&self, e: &wire::RunEvent) {
        if let Some(bar) = self.bars.get(&(e.phase.clone(), e.host.clone())) {
            bar.set_message(super::printable(&format!(
                "running {} {}/{}: {}",
                e.step, e.done, e.total, e.text
            )));
        }
    }

    fn update(&mut self, r: &wire::RunSummary) {
        for phase in &r.phases {
            if matches!(phase.status.as_str(), "waiting" | "awaiting-approval") {
                continue;
            }
            for h in &phase.hosts {
                let key = (phase.id.clone(), h.host.clone());
                let bar = self.bars.entry(key).or_insert_with(|| {
                    let bar = self
                        .multi
                        .add(ProgressBar::new(u64::from(h.steps_total.max(1))));
                    bar.set_style(self.style.clone());
                    bar.set_prefix(format!("{}/{}", phase.id, h.host));
                    bar
                });
                bar.set_length(u64::from(h.steps_total.max(1)));
                bar.set_position(u64::from(h.steps_done));
                let mut msg = h.state.clone();
                if !h.step.is_empty() && h.state != "succeeded" {
                    msg.push_str(&format!(" {}", h.step));
                }
                if !h.detail.is_empty() {
                    msg.push_str(&format!(": {}", h.detail));
                }
                bar.set_message(super::printable(&msg));
                if h.state != "pending" && h.state != "running" && !bar.is_finished() {
                    bar.finish();
                }
            }
        }
        // Said again only when who is awaited changes, not as the wait grows.
        let awaited: Vec<String> = r
            .pending
            .iter()
            .map(|p| format!("{}:{}", p.scope, p.roles.join("+")))
            .chain(r.awaited.iter().map(|a| format!("host:{}", a.host)))
            .collect();
        let key = (!awaited.is_empty()).then(|| awaited.join(";"));
        if key != self.last_pending {
            if let Some(p) = pending_line(r) {
                self.line(&p);
            }
            self.last_pending = key;
        }
    }
}

/// Follows a run to its end. Exit 0 when it succeeded, 1 otherwise.
pub async fn follow(mut updates: Updates, output: Output) -> anyhow::Result<Exit> {
    let mut bars = (output == Output::Text).then(Bars::new);
    let mut last: Option<wire::RunSummary> = None;
    while let Some(update) = updates
        .message()
        .await
        .map_err(super::client::status_error)?
    {
        let summary = update.summary;
        match (&mut bars, output) {
            (_, Output::Json) => {
                if let Some(e) = &update.event {
                    outln!("{}", event_json(e));
                } else if let Some(s) = &summary {
                    let kind = if last.is_none() { "snapshot" } else { "resync" };
                    outln!(
                        "{}",
                        json!({ "kind": kind, "missed": update.missed, "run": summary_json(s) })
                    );
                }
            }
            (Some(bars), Output::Text) => {
                if last.is_none()
                    && let Some(s) = &summary
                {
                    bars.line(&format!(
                        "{}  {}{}  started by {}: {}",
                        s.run_id,
                        s.status.to_uppercase(),
                        if s.dry_run { " (dry run)" } else { "" },
                        s.started_by,
                        s.reason
                    ));
                }
                if update.missed > 0 {
                    bars.line(&format!("(fell behind: {} events skipped)", update.missed));
                }
                if let Some(line) = update
                    .event
                    .as_ref()
                    .and_then(|e| event_line(e, bars.multi.is_hidden()))
                {
                    bars.line(&line);
                }
                if let Some(s) = &summary {
                    bars.update(s);
                }
                if let Some(e) = update.event.as_ref().filter(|e| e.kind == "progress") {
                    bars.progress(e);
                }
            }
            (None, Output::Text) => {}
        }
        if summary.is_some() {
            last = summary;
        }
    }
    let Some(last) = last else {
        anyhow::bail!("the coordinator sent nothing about this run");
    };
    if output == Output::Json {
        outln!(
            "{}",
            json!({ "kind": "result", "run": summary_json(&last) })
        );
    } else {
        super::runs::print_summary(&last, Output::Text);
    }
    Ok(if last.status == "succeeded" {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// One step of the dry-run report.
struct Would {
    phase: String,
    step: String,
    what: String,
    outcome: String,
    text: String,
}

/// Follows a dry run to its end and prints, per host, the ordered steps and
/// what each plugin says it would do. Exit 0 when every step could be planned.
pub async fn dry_run_report(mut updates: Updates, output: Output) -> anyhow::Result<Exit> {
    let mut hosts: BTreeMap<String, Vec<Would>> = BTreeMap::new();
    let mut last: Option<wire::RunSummary> = None;
    while let Some(update) = updates
        .message()
        .await
        .map_err(super::client::status_error)?
    {
        if let Some(e) = &update.event {
            let list = hosts.entry(e.host.clone()).or_default();
            match e.kind.as_str() {
                "dispatched" => list.push(Would {
                    phase: e.phase.clone(),
                    step: e.step.clone(),
                    what: e.text.clone(),
                    outcome: "pending".into(),
                    text: String::new(),
                }),
                "finished" => {
                    if let Some(w) = list
                        .iter_mut()
                        .rev()
                        .find(|w| w.phase == e.phase && w.step == e.step)
                    {
                        w.outcome = e.outcome.clone();
                        w.text = e.text.clone();
                    }
                }
                _ => {}
            }
        }
        if update.summary.is_some() {
            last = update.summary;
        }
    }
    hosts.retain(|host, _| !host.is_empty());
    let Some(last) = last else {
        anyhow::bail!("the coordinator sent nothing about this run");
    };
    let ok = last.status == "succeeded";
    match output {
        Output::Json => {
            let hosts: serde_json::Map<String, Value> = hosts
                .iter()
                .map(|(host, steps)| {
                    let steps: Vec<Value> = steps
                        .iter()
                        .map(|w| {
                            json!({ "phase": w.phase, "step": w.step, "plugin_action": w.what, "outcome": w.outcome, "would": w.text })
                        })
                        .collect();
                    (host.clone(), json!(steps))
                })
                .collect();
            outln!(
                "{}",
                json!({ "run": last.run_id, "dry_run": true, "status": last.status, "hosts": hosts })
            );
        }
        Output::Text => {
            outln!(
                "{}  DRY RUN {}: nothing was changed",
                last.run_id,
                last.status.to_uppercase()
            );
            for (host, steps) in &hosts {
                outln!("{host}");
                for (i, w) in steps.iter().enumerate() {
                    let text = would_text(&w.outcome, &w.text);
                    outln!(
                        "  {:>2}. {:<28} {:<20} {}",
                        i + 1,
                        format!("{}/{}", w.phase, w.step),
                        w.what,
                        super::printable(&text)
                    );
                }
            }
        }
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

/// One step's line in the dry-run report: what the plugin says it would
/// do (plugins that say "would ..." themselves are not made to say it
/// twice), or how it failed.
fn would_text(outcome: &str, text: &str) -> String {
    if outcome != "succeeded" {
        format!("{}: {text}", outcome.to_uppercase())
    } else if text.to_lowercase().starts_with("would") {
        text.to_string()
    } else {
        format!("would: {text}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dry_run_line_says_would_once() {
        assert_eq!(
            super::would_text("succeeded", "would set maintenance on"),
            "would set maintenance on"
        );
        assert_eq!(
            super::would_text("succeeded", "2 checks planned"),
            "would: 2 checks planned"
        );
        assert_eq!(
            super::would_text("unreachable", "agent `a` is not connected"),
            "UNREACHABLE: agent `a` is not connected"
        );
    }
}
