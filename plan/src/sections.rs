//! The rest of a plan beyond the decision matrix: phases and their steps,
//! approvals, notification channels and message templates, escalation rules,
//! success criteria, contacts and drills. Parsed and checked here (references
//! to roles, hosts, groups and phases; conditions; durations); executed by the
//! run engine, the plugins and the report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use backout_config::opt_duration;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::Expr;

/// `[approvals]`: who must approve a run before it starts (seed 1.2:
/// "Release Manager + Technical Lead (minimum)").
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    /// Roles that must approve a run before it starts.
    #[serde(default)]
    pub run: Vec<String>,
    /// May the person who started the run approve it? (default: no)
    #[serde(default)]
    pub self_approval: bool,
}

/// What a step does when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the phase (default).
    #[default]
    Halt,
    /// Record the failure and go on.
    Continue,
    /// Try again (see `retries` and `backoff`), then halt.
    Retry,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the plan.
    pub id: String,
    /// What the step does, in a few words.
    #[serde(default)]
    pub name: Option<String>,
    /// The plugin that runs it (built in: docs/plugins/).
    pub plugin: String,
    /// One of the plugin's actions.
    pub action: String,
    /// A host id or a group.
    pub on: String,
    /// The action's parameters (docs/plugins/PLUGIN.md), checked by `plan check`.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::table")]
    pub params: Option<toml::Table>,
    /// `halt` (default), `continue` or `retry`.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// How many times a failed step is tried again (with `on_failure = "retry"`).
    #[serde(default)]
    pub retries: u32,
    /// Time between retries.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub backoff: Option<Duration>,
    /// Time allowed for one try (default 10 minutes).
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Unique within the plan.
    pub id: String,
    /// What the phase does.
    pub name: String,
    /// Seed section, e.g. "2.1-2.3".
    #[serde(default)]
    pub section: Option<String>,
    /// Phases that must end first.
    #[serde(default)]
    pub after: Vec<String>,
    /// Roles that must approve this phase (seed 3.1: DBA + Technical Lead + Product Owner).
    #[serde(default)]
    pub approvals: Vec<String>,
    /// Time allowed for the phase. A step whose host's agent is not connected
    /// waits at most this long for it (without a limit: 2 minutes; a dry run
    /// never waits).
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub time_limit: Option<Duration>,
    /// Hosts at a time for steps aimed at a group (0 or absent: all at once).
    #[serde(default)]
    pub rolling: u32,
    /// Only when asked for (`--phases`) or when a condition over run figures holds.
    #[serde(default)]
    pub optional: bool,
    /// A warning shown before the phase starts.
    #[serde(default)]
    pub warning: Option<String>,
    /// `[[phase.step]]`: the phase's steps, in order.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

/// A channel messages go to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// "slack", "email", "status-page", "phone-bridge".
    pub kind: String,
    /// Where: a webhook (`${secret:NAME}`), an address, a URL, a number.
    pub target: String,
    /// A name for people.
    #[serde(default)]
    pub label: Option<String>,
    /// The host (or group) whose agent posts to this channel with its
    /// `notify` plugin (Slack). Without it, messages to the channel are
    /// recorded as not sent.
    #[serde(default)]
    pub via: Option<String>,
    /// A `status-page` channel is public: Backout opens, updates and
    /// resolves its incident only when the plan says the incident is
    /// customer-facing.
    #[serde(default)]
    pub customer_facing: bool,
    /// What the channel's plugin gets with every message (`status-page`:
    /// `page`, `api_key` as `${secret:NAME}`, `components`, `name`,
    /// `api_base`).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::table")]
    pub params: Option<toml::Table>,
}

/// A message template (minijinja), filled from the run's facts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The subject (email).
    #[serde(default)]
    pub subject: Option<String>,
    /// The message (minijinja).
    pub body: String,
    /// Channels it goes to.
    #[serde(default)]
    pub channels: Vec<String>,
    /// When: "start", "approval-waiting", "end", "escalation" (a run's
    /// moments), "trigger-fired" (its deciders are paged),
    /// "decision-overdue" (they let its `[decide_within]` pass).
    #[serde(default)]
    pub on: Vec<String>,
}

/// Who is paged when the run's figures pass a line (seed: Executive Escalation).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationSpec {
    /// Whom to page: a role or a title.
    pub who: String,
    /// A condition over run figures (`outage > 30m`).
    pub when: String,
    /// Channels the page goes to.
    #[serde(default)]
    pub channels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Escalation {
    pub who: String,
    pub when_text: String,
    pub when: Expr,
    pub channels: Vec<String>,
}

/// `[success]`: the plan's Rollback Success Criteria, measured in every report.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Success {
    /// The recovery time objective the run is measured against.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub rto: Option<Duration>,
    /// Time within which the first message must go out.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub notify_within: Option<Duration>,
    /// No new errors after the rollback.
    #[serde(default)]
    pub no_new_errors: bool,
    /// Data integrity checks must pass.
    #[serde(default)]
    pub data_integrity: bool,
    /// The timeline must have every moment.
    #[serde(default)]
    pub timeline_complete: bool,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Their name.
    #[serde(default)]
    pub name: String,
    /// Their phone number.
    #[serde(default)]
    pub phone: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// A role of `[roles]`, or an executive title ("CTO").
    pub role: String,
    /// Who to call first.
    #[serde(default)]
    pub primary: Person,
    /// Who to call when the primary does not answer.
    #[serde(default)]
    pub backup: Person,
}

/// `[report]`: the post-rollback report's follow-up deadlines (seed 6.2).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// When the root cause is due, after the run.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub root_cause_due: Option<Duration>,
    /// When prevention measures are due.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub prevention_due: Option<Duration>,
    /// When lessons learned are due.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub lessons_due: Option<Duration>,
}

/// `[drill]`: rehearsal of the plan (seed: Monthly Rollback Drills).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    /// The plan file drills run in staging.
    #[serde(default)]
    pub staging_plan: Option<String>,
    /// How often (`monthly`).
    #[serde(default)]
    pub cadence: Option<String>,
    /// Stamped by `backout drill`.
    #[serde(default)]
    pub last_tested: Option<String>,
    /// The last drill's result, stamped by `backout drill`.
    #[serde(default)]
    pub last: Option<DrillResult>,
}

/// `[drill.last]`: what the last drill measured.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillResult {
    /// The drill's run id.
    #[serde(default)]
    pub run: String,
    /// How it ended.
    #[serde(default)]
    pub result: String,
    /// Seconds each phase took, by phase id.
    #[serde(default)]
    pub phases: std::collections::BTreeMap<String, f64>,
}

/// The moments a template can be sent at.
pub const MOMENTS: &[&str] = &[
    "start",
    "approval-waiting",
    "end",
    "escalation",
    "trigger-fired",
    "decision-overdue",
];

/// The run figures escalation rules may use.
pub const RUN_FIGURES: &[&str] = &[
    "data_loss_usd",
    "outage",
    "lost_orders",
    "lost_registrations",
    "affected_transactions",
    "affected_amount_cents",
    "regulatory_breach",
    "data_breach",
    "compliance_violation",
    // True for a fired trigger whose deciders let its `[decide_within]`
    // deadline pass; `outage` is then the time since its breach began.
    "decision_overdue",
];

/// Checks the phases: unique ids, known roles, hosts and groups, `after`
/// naming existing phases with no cycle. Returns (field, message) on error.
pub fn check_phases(
    phases: &[Phase],
    roles: &BTreeMap<String, String>,
    targets: &BTreeSet<String>,
) -> Result<(), (String, String)> {
    let ids: BTreeSet<&str> = phases.iter().map(|p| p.id.as_str()).collect();
    if ids.len() != phases.len() {
        let mut seen = BTreeSet::new();
        for (i, p) in phases.iter().enumerate() {
            if !seen.insert(p.id.as_str()) {
                return Err((
                    format!("phase[{i}].id"),
                    format!("phase `{}` is listed twice", p.id),
                ));
            }
        }
    }
    for (i, phase) in phases.iter().enumerate() {
        if phase.id == "run" {
            return Err((
                format!("phase[{i}].id"),
                "`run` is reserved (it names the run's own approval)".into(),
            ));
        }
        for after in &phase.after {
            if !ids.contains(after.as_str()) {
                return Err((format!("phase[{i}].after"), format!("no phase `{after}`")));
            }
        }
        for role in &phase.approvals {
            if !roles.contains_key(role) {
                return Err((
                    format!("phase[{i}].approvals"),
                    format!("unknown role `{role}` (add it to [roles])"),
                ));
            }
        }
        let mut step_ids = BTreeSet::new();
        for (j, step) in phase.steps.iter().enumerate() {
            if !step_ids.insert(step.id.as_str()) {
                return Err((
                    format!("phase[{i}].step[{j}].id"),
                    format!("step `{}` is listed twice in phase `{}`", step.id, phase.id),
                ));
            }
            if !targets.contains(&step.on) {
                return Err((
                    format!("phase[{i}].step[{j}].on"),
                    format!("`{}` is neither a host nor a group", step.on),
                ));
            }
            if step.on_failure == OnFailure::Retry && step.retries == 0 {
                return Err((
                    format!("phase[{i}].step[{j}].retries"),
                    "on_failure = \"retry\" needs retries > 0".into(),
                ));
            }
        }
    }
    // Kahn's algorithm: a cycle leaves phases that never become ready.
    let mut remaining: BTreeMap<&str, BTreeSet<&str>> = phases
        .iter()
        .map(|p| (p.id.as_str(), p.after.iter().map(String::as_str).collect()))
        .collect();
    while let Some(ready) = remaining
        .iter()
        .find(|(_, deps)| deps.is_empty())
        .map(|(id, _)| *id)
    {
        remaining.remove(ready);
        for deps in remaining.values_mut() {
            deps.remove(ready);
        }
    }
    if let Some((id, _)) = remaining.iter().next() {
        let i = phases.iter().position(|p| p.id == *id).unwrap_or(0);
        return Err((
            format!("phase[{i}].after"),
            format!("phase `{id}` is part of a cycle of `after`"),
        ));
    }
    Ok(())
}

/// Parses and checks escalation rules against the run figures.
pub fn check_escalations(
    specs: Vec<EscalationSpec>,
    channels: &BTreeMap<String, Channel>,
) -> Result<Vec<Escalation>, (String, String)> {
    let mut out = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let when = Expr::parse(&spec.when).map_err(|e| {
            (
                format!("escalation[{i}].when"),
                format!("`{}`: {e}", spec.when),
            )
        })?;
        for figure in when.signals() {
            if !RUN_FIGURES.contains(&figure.as_str()) {
                return Err((
                    format!("escalation[{i}].when"),
                    format!("unknown figure `{figure}` (use {})", RUN_FIGURES.join(", ")),
                ));
            }
        }
        for channel in &spec.channels {
            if !channels.contains_key(channel) {
                return Err((
                    format!("escalation[{i}].channels"),
                    format!("no channel `{channel}` in [channels]"),
                ));
            }
        }
        out.push(Escalation {
            who: spec.who,
            when_text: spec.when,
            when,
            channels: spec.channels,
        });
    }
    Ok(out)
}

/// Checks templates: known channels and moments, and that they parse as templates
/// (balanced `{{ }}`); rendering is the communication feature's.
pub fn check_templates(
    templates: &BTreeMap<String, Template>,
    channels: &BTreeMap<String, Channel>,
) -> Result<(), (String, String)> {
    for (name, template) in templates {
        for channel in &template.channels {
            if !channels.contains_key(channel) {
                return Err((
                    format!("templates.{name}.channels"),
                    format!("no channel `{channel}` in [channels]"),
                ));
            }
        }
        for moment in &template.on {
            if !MOMENTS.contains(&moment.as_str()) {
                return Err((
                    format!("templates.{name}.on"),
                    format!(
                        "`{moment}`: use start, approval-waiting, end, escalation, trigger-fired or decision-overdue"
                    ),
                ));
            }
        }
        if template.body.matches("{{").count() != template.body.matches("}}").count() {
            return Err((
                format!("templates.{name}.body"),
                "unbalanced `{{` and `}}`".into(),
            ));
        }
    }
    Ok(())
}
