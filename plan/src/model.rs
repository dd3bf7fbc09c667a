//! The plan file as the user writes it (TOML), and its validation into a
//! [`Plan`] the rest of Backout runs on.
//!
//! Every table rejects unknown keys; every validation error names the field
//! (`trigger[2].when`) so `backout plan check` can point at it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use backout_config::{ConfigError, opt_duration};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::{Expr, Op};
use crate::judge::{Call, Judge, Worse};
use crate::sections::{
    self, Approvals, Channel, Contact, Drill, Escalation, EscalationSpec, Phase, ReportSpec,
    Success, Template,
};
use crate::window::Hold;

/// `[plan]`: what this document is.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The plan's name, shown in runs and reports.
    pub name: String,
    /// The document this plan carries out (a title or a link).
    #[serde(default)]
    pub document: Option<String>,
    /// The plan's own version.
    #[serde(default)]
    pub version: Option<String>,
    /// Who keeps the plan.
    #[serde(default)]
    pub owner: Option<String>,
    /// The environment it is for (`production`).
    #[serde(default)]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// The host's id: the name its agent connects with (its certificate's name).
    pub id: String,
    /// Groups it belongs to; a step `on` a group runs on each of its hosts.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Where a signal's values come from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalSpec {
    /// A Prometheus instant query.
    #[serde(default)]
    pub prometheus: Option<PrometheusSource>,
    /// A health probe run by agents through the `health` plugin.
    #[serde(default)]
    pub probe: Option<ProbeSource>,
    /// The canary judge: a metric on the canary against the baseline.
    #[serde(default)]
    pub canary: Option<CanarySource>,
    /// Set by people with `backout signal set`.
    #[serde(default)]
    pub manual: bool,
    /// Counted events; the value is the count within `window`.
    #[serde(default)]
    pub events: bool,
    /// How far back counted events count (events only).
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub window: Option<Duration>,
    /// How often to sample (Prometheus and probes).
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub interval: Option<Duration>,
    /// A value older than this is unknown (default: three intervals).
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub stale_after: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSource {
    /// Prometheus's base URL (`http://prometheus:9090`).
    pub url: String,
    /// The PromQL instant query; its first value is the signal's.
    pub query: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeSource {
    /// The assess check whose results feed the signal (`error-log` for
    /// `log-matches`: the lines of `[assess.log]`).
    pub check: String,
    /// How host results combine: "any-up" (1 while any host is up),
    /// "share-down" (fraction of hosts down), "max-latency" (seconds),
    /// "log-matches" (error-log lines matching, summed over hosts). A host
    /// the check is aimed at that does not answer is unknown: the value is
    /// unknown when it could change with that host's answer.
    #[serde(default = "default_aggregate")]
    pub aggregate: String,
}

/// The canary judge: the same metric on the canary and on the baseline over
/// the last `over`, judged by [`crate::judge`]. Two forms:
///
/// * Prometheus: `url`, `query` (the canary, e.g. `group="canary"`) and
///   `baseline` (the same metric on the baseline), as range queries.
/// * Probe host groups: `hosts` (the canary's host group, or one host) and
///   `baseline_hosts`, both of `[[host]]`, and `check`: the response time
///   (seconds) the health plugin measured for that check on each host, one
///   value per host per probe round, kept for `over`.
///
/// The signal's value is the call, compared in conditions with `pass`,
/// `marginal`, `fail` or `inconclusive`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanarySource {
    /// Prometheus's base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The metric on the canary.
    #[serde(default)]
    pub query: Option<String>,
    /// The same metric on the baseline.
    #[serde(default)]
    pub baseline: Option<String>,
    /// The canary's hosts: a group (or host id) of `[[host]]`.
    #[serde(default)]
    pub hosts: Option<String>,
    /// The baseline's hosts: a group (or host id) of `[[host]]`.
    #[serde(default)]
    pub baseline_hosts: Option<String>,
    /// The `[[assess.check]]` whose response time is compared.
    #[serde(default)]
    pub check: Option<String>,
    /// How far back to compare (default 10m).
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub over: Option<Duration>,
    /// Time between the points of the range queries (default 15s).
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub step: Option<Duration>,
    /// "higher" (default: latency, errors) or "lower" (throughput) is worse.
    #[serde(default)]
    pub worse: Option<String>,
    /// Fewer points than this on either side: inconclusive (default 10).
    #[serde(default)]
    pub min_samples: Option<usize>,
    /// One-sided p-value below which the canary is worse (default 0.05).
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Rank-biserial effect from which "worse" fails (default 0.3).
    #[serde(default)]
    pub min_effect: Option<f64>,
    /// Canary variance over the baseline's above which the spread grew (default 2).
    #[serde(default)]
    pub max_variance_ratio: Option<f64>,
}

fn default_aggregate() -> String {
    "any-up".into()
}

/// How urgent a trigger is (the seed's two tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// "Execute immediate rollback".
    Immediate,
    /// "Assess for rollback".
    Considered,
}

impl Class {
    /// As the plan writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Immediate => "immediate",
            Class::Considered => "considered",
        }
    }
}

/// What an unknown value means for a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnknownMeans {
    /// Shown as UNKNOWN; neither fires nor counts as healthy (default).
    #[default]
    Unknown,
    /// Treated as breaching (e.g. a probe that cannot run means "down").
    Breaching,
    /// Treated as fine.
    Ok,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// Unique within the plan.
    pub name: String,
    /// `immediate` (roll back now) or `considered` (assess first).
    pub class: Class,
    /// The condition over signals: `error_rate > 5% and p95 > 2000ms`.
    pub when: String,
    /// How long (`15m`) or how many samples (`5 samples`) the condition must hold before the trigger fires.
    #[serde(default, rename = "for")]
    pub hold: Option<String>,
    /// Roles of `[roles]` who decide when it fires.
    pub deciders: Vec<String>,
    /// What an unknown value means: `unknown` (default), `breaching` or `ok`.
    #[serde(default)]
    pub unknown: UnknownMeans,
    /// `backout guard` may start the rollback by itself when this fires.
    #[serde(default)]
    pub auto_rollback: bool,
    /// A considered trigger's lighter remedy: an optional phase, offered
    /// before the full rollback (`remedy.rs`).
    #[serde(default)]
    pub remedy: Option<String>,
    /// How long the trigger has to clear once the remedy succeeded.
    #[serde(default)]
    pub remedy_hold: Option<String>,
    /// The roles that approve the remedy's run (default: `deciders`).
    #[serde(default)]
    pub remedy_approvals: Option<Vec<String>>,
}

/// `[decide_within]`: how long the deciders have, from the moment a
/// trigger of each class fires, to decide (the seed's headings: "Immediate
/// Rollback Triggers (0-15 minutes)", "Considered Rollback Triggers (15-30
/// minutes)"). A class without one has no deadline.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideWithin {
    /// Time to decide on an immediate trigger.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub immediate: Option<Duration>,
    /// Time to decide on a considered trigger.
    #[serde(default, deserialize_with = "opt_duration")]
    #[schemars(schema_with = "crate::schema::duration")]
    pub considered: Option<Duration>,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// `[plan]`: what this document is.
    pub plan: Meta,
    /// `[[host]]`: the hosts whose agents run steps.
    #[serde(default, rename = "host")]
    pub hosts: Vec<Host>,
    /// `[roles]`: role -> the person or team holding it (`release_manager = "Dana"`).
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// `[signals.NAME]`: where each signal's values come from (exactly one source).
    #[serde(default)]
    pub signals: BTreeMap<String, SignalSpec>,
    /// `[[trigger]]`: when a rollback is called for (the decision matrix).
    #[serde(default, rename = "trigger")]
    pub triggers: Vec<TriggerSpec>,
    /// `[decide_within]`: how long deciders have, by trigger class.
    #[serde(default)]
    pub decide_within: DecideWithin,
    /// `[approvals]`: who must approve a run before it starts.
    #[serde(default)]
    pub approvals: Approvals,
    /// `[[phase]]`: the rollback itself, phases of steps run by agents' plugins.
    #[serde(default, rename = "phase")]
    pub phases: Vec<Phase>,
    /// `[channels.NAME]`: where messages go.
    #[serde(default)]
    pub channels: BTreeMap<String, Channel>,
    /// `[templates.NAME]`: messages, and when they are sent.
    #[serde(default)]
    pub templates: BTreeMap<String, Template>,
    /// `[[escalation]]`: who is paged when the run's figures pass a line.
    #[serde(default, rename = "escalation")]
    pub escalations: Vec<EscalationSpec>,
    /// `[success]`: the success criteria each report measures.
    #[serde(default)]
    pub success: Option<Success>,
    /// `[[contact]]`: who to call, by role.
    #[serde(default, rename = "contact")]
    pub contacts: Vec<Contact>,
    /// `[report]`: the post-rollback report's follow-up deadlines.
    #[serde(default)]
    pub report: Option<ReportSpec>,
    /// `[drill]`: rehearsals of the plan.
    #[serde(default)]
    pub drill: Option<Drill>,
}

/// A signal after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Prometheus {
        url: String,
        query: String,
    },
    Probe {
        check: String,
        aggregate: String,
    },
    Canary {
        from: CanaryFrom,
        over: Duration,
        judge: Judge,
    },
    Manual,
    Events {
        window: Duration,
    },
}

/// Where the canary judge's two samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryFrom {
    /// Two Prometheus range queries, a point every `step`.
    Prometheus {
        url: String,
        query: String,
        baseline: String,
        step: Duration,
    },
    /// The response times of `check` on the hosts of two groups.
    Hosts {
        canary: String,
        baseline: String,
        check: String,
    },
}

#[derive(Debug, Clone)]
pub struct Signal {
    pub name: String,
    pub source: Source,
    pub interval: Duration,
    pub stale_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Trigger {
    pub name: String,
    pub class: Class,
    pub when_text: String,
    pub when: Expr,
    pub hold: Hold,
    pub deciders: Vec<String>,
    pub unknown: UnknownMeans,
    pub auto_rollback: bool,
    /// Its lighter remedy, offered before the rollback.
    pub remedy: Option<crate::remedy::Remedy>,
    /// How long its deciders have once it fires (`[decide_within]` of its class).
    pub decide_within: Option<Duration>,
}

/// A validated plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub meta: Meta,
    pub hosts: Vec<Host>,
    pub roles: BTreeMap<String, String>,
    pub signals: BTreeMap<String, Signal>,
    pub triggers: Vec<Trigger>,
    pub decide_within: DecideWithin,
    pub approvals: Approvals,
    pub phases: Vec<Phase>,
    pub channels: BTreeMap<String, Channel>,
    pub templates: BTreeMap<String, Template>,
    pub escalations: Vec<Escalation>,
    pub success: Option<Success>,
    pub contacts: Vec<Contact>,
    pub report: Option<ReportSpec>,
    pub drill: Option<Drill>,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

impl Plan {
    /// Reads and validates a plan file.
    pub fn load(path: &Path) -> Result<Plan, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Plan::parse(path, &text)
    }

    /// Parses and validates plan text that came from `path`. A parse error
    /// names its field by its full path (`phase[0].step[1].retries`).
    pub fn parse(path: &Path, text: &str) -> Result<Plan, ConfigError> {
        if let Some((line, column, key, message)) = crate::check::unknown_section(text) {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                field: format!("field `{key}`: "),
                message,
            });
        }
        let file: PlanFile = backout_config::parse(path, text).map_err(|mut e| {
            if let ConfigError::Parse {
                line,
                column,
                field,
                ..
            } = &mut e
                && !field.is_empty()
                && let Some(full) = crate::check::field_at(text, *line, *column)
            {
                *field = format!("field `{full}`: ");
            }
            e
        })?;
        Plan::validate(path, file).map_err(|e| e.locate_in(text))
    }

    fn validate(path: &Path, file: PlanFile) -> Result<Plan, ConfigError> {
        let bad = |field: String, message: String| ConfigError::invalid(path, field, message);

        let mut host_ids = BTreeSet::new();
        for (i, host) in file.hosts.iter().enumerate() {
            if !valid_name(&host.id) {
                return Err(bad(
                    format!("host[{i}].id"),
                    format!("`{}` is not a valid host id", host.id),
                ));
            }
            if !host_ids.insert(host.id.clone()) {
                return Err(bad(
                    format!("host[{i}].id"),
                    format!("host `{}` is listed twice", host.id),
                ));
            }
        }

        let targets: BTreeSet<String> = file
            .hosts
            .iter()
            .flat_map(|h| std::iter::once(h.id.clone()).chain(h.groups.iter().cloned()))
            .collect();
        let mut signals = BTreeMap::new();
        for (name, spec) in file.signals {
            let field = |f: &str| format!("signals.{name}.{f}");
            let kinds = usize::from(spec.prometheus.is_some())
                + usize::from(spec.probe.is_some())
                + usize::from(spec.canary.is_some())
                + usize::from(spec.manual)
                + usize::from(spec.events);
            if kinds != 1 {
                return Err(bad(
                    format!("signals.{name}"),
                    "give exactly one source: prometheus, probe, canary, manual = true or events = true"
                        .into(),
                ));
            }
            let source = if let Some(p) = spec.prometheus {
                if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                    return Err(bad(
                        field("prometheus.url"),
                        format!("`{}` is not an http(s) URL", p.url),
                    ));
                }
                Source::Prometheus {
                    url: p.url,
                    query: p.query,
                }
            } else if let Some(p) = spec.probe {
                if !["any-up", "share-down", "max-latency", "log-matches"]
                    .contains(&p.aggregate.as_str())
                {
                    return Err(bad(
                        field("probe.aggregate"),
                        format!(
                            "`{}`: use any-up, share-down, max-latency or log-matches",
                            p.aggregate
                        ),
                    ));
                }
                if p.aggregate == "log-matches" && p.check != "error-log" {
                    return Err(bad(
                        field("probe.check"),
                        format!(
                            "`{}`: log-matches counts the error log's matching lines ([assess.log] of the coordinator); write check = \"error-log\"",
                            p.check
                        ),
                    ));
                }
                Source::Probe {
                    check: p.check,
                    aggregate: p.aggregate,
                }
            } else if let Some(c) = spec.canary {
                canary_source(c, &targets)
                    .map_err(|(f, m)| bad(field(&format!("canary.{f}")), m))?
            } else if spec.manual {
                Source::Manual
            } else {
                let window = spec.window.ok_or_else(|| {
                    bad(
                        field("window"),
                        "counted events need a window, like \"1h\"".into(),
                    )
                })?;
                Source::Events { window }
            };
            if spec.window.is_some() && !matches!(source, Source::Events { .. }) {
                return Err(bad(
                    field("window"),
                    "only counted events (events = true) have a window".into(),
                ));
            }
            let interval = spec.interval.unwrap_or(DEFAULT_INTERVAL);
            if interval.is_zero() {
                return Err(bad(field("interval"), "must be above zero".into()));
            }
            // Manual signals and events stay valid until changed.
            let default_stale = match source {
                Source::Manual | Source::Events { .. } => Duration::MAX,
                _ => interval.saturating_mul(3),
            };
            signals.insert(
                name.clone(),
                Signal {
                    name,
                    source,
                    interval,
                    stale_after: spec.stale_after.unwrap_or(default_stale),
                },
            );
        }

        let mut triggers = Vec::new();
        let mut names = BTreeSet::new();
        for (i, spec) in file.triggers.into_iter().enumerate() {
            let field = |f: &str| format!("trigger[{i}].{f}");
            if !names.insert(spec.name.clone()) {
                return Err(bad(
                    field("name"),
                    format!("trigger `{}` is listed twice", spec.name),
                ));
            }
            let when = Expr::parse(&spec.when)
                .map_err(|e| bad(field("when"), format!("`{}`: {e}", spec.when)))?;
            for signal in when.signals() {
                if !signals.contains_key(&signal) {
                    return Err(bad(field("when"), format!("unknown signal `{signal}`")));
                }
            }
            let hold = Hold::parse(spec.hold.as_deref().unwrap_or(""))
                .map_err(|e| bad(field("for"), e))?;
            // The canary judge's marginal and inconclusive calls are for a
            // person: only `X == fail` may be immediate or roll back by itself.
            for signal in when.signals() {
                let is_canary = signals
                    .get(&signal)
                    .is_some_and(|s: &Signal| matches!(s.source, Source::Canary { .. }));
                let only_fail = when
                    == Expr::Compare(
                        Box::new(Expr::Signal(signal.clone())),
                        Op::Eq,
                        Box::new(Expr::Number(Call::Fail.code())),
                    );
                if is_canary && !only_fail && (spec.class == Class::Immediate || spec.auto_rollback)
                {
                    return Err(bad(
                        field("when"),
                        format!(
                            "`{}` reads the canary judge `{signal}`: an immediate or auto_rollback trigger may only be `{signal} == fail`; marginal and inconclusive are for people (a considered trigger)",
                            spec.when
                        ),
                    ));
                }
            }
            if spec.deciders.is_empty() {
                return Err(bad(field("deciders"), "name at least one role".into()));
            }
            for role in &spec.deciders {
                if !file.roles.contains_key(role) {
                    return Err(bad(
                        field("deciders"),
                        format!("unknown role `{role}` (add it to [roles])"),
                    ));
                }
            }
            if spec.remedy.is_none() && spec.remedy_approvals.is_some() {
                return Err(bad(
                    field("remedy_approvals"),
                    "there is no `remedy`".into(),
                ));
            }
            let remedy_approvals = spec
                .remedy_approvals
                .clone()
                .unwrap_or_else(|| spec.deciders.clone());
            if remedy_approvals.is_empty() {
                return Err(bad(
                    field("remedy_approvals"),
                    "name at least one role (or leave it out: the deciders approve)".into(),
                ));
            }
            for role in &remedy_approvals {
                if !file.roles.contains_key(role) {
                    return Err(bad(
                        field("remedy_approvals"),
                        format!("unknown role `{role}` (add it to [roles])"),
                    ));
                }
            }
            let remedy = match (&spec.remedy, &spec.remedy_hold) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(bad(field("remedy_hold"), "there is no `remedy`".into()));
                }
                (Some(_), None) => {
                    return Err(bad(
                        field("remedy_hold"),
                        "say how long the trigger has to clear after the remedy".into(),
                    ));
                }
                (Some(phase), Some(hold)) => {
                    if spec.class != Class::Considered {
                        return Err(bad(
                            field("remedy"),
                            "only a considered trigger has a remedy: an immediate one rolls back"
                                .into(),
                        ));
                    }
                    if !file.phases.iter().any(|p| &p.id == phase && p.optional) {
                        return Err(bad(
                            field("remedy"),
                            format!("`{phase}` is not an optional phase of the plan"),
                        ));
                    }
                    let hold = backout_config::parse_duration(hold)
                        .map_err(|e| bad(field("remedy_hold"), e))?;
                    Some(crate::remedy::Remedy {
                        phase: phase.clone(),
                        hold,
                        approvals: remedy_approvals,
                    })
                }
            };
            triggers.push(Trigger {
                remedy,
                name: spec.name,
                class: spec.class,
                when_text: spec.when,
                when,
                hold,
                deciders: spec.deciders,
                unknown: spec.unknown,
                auto_rollback: spec.auto_rollback,
                decide_within: match spec.class {
                    Class::Immediate => file.decide_within.immediate,
                    Class::Considered => file.decide_within.considered,
                },
            });
        }

        for (i, role) in file.approvals.run.iter().enumerate() {
            if !file.roles.contains_key(role) {
                return Err(bad(
                    format!("approvals.run[{i}]"),
                    format!("unknown role `{role}` (add it to [roles])"),
                ));
            }
        }
        sections::check_phases(&file.phases, &file.roles, &targets).map_err(|(f, m)| bad(f, m))?;
        sections::check_templates(&file.templates, &file.channels).map_err(|(f, m)| bad(f, m))?;
        for (name, channel) in &file.channels {
            if let Some(via) = &channel.via
                && !targets.contains(via)
            {
                return Err(bad(
                    format!("channels.{name}.via"),
                    format!("`{via}` is neither a host nor a group of [[host]]"),
                ));
            }
        }
        let escalations = sections::check_escalations(file.escalations, &file.channels)
            .map_err(|(f, m)| bad(f, m))?;

        Ok(Plan {
            meta: file.plan,
            hosts: file.hosts,
            roles: file.roles,
            signals,
            triggers,
            decide_within: file.decide_within,
            approvals: file.approvals,
            phases: file.phases,
            channels: file.channels,
            templates: file.templates,
            escalations,
            success: file.success,
            contacts: file.contacts,
            report: file.report,
            drill: file.drill,
        })
    }
}

/// Validates a canary source (its host groups against `targets`, the
/// plan's host ids and groups); errors are (field under `canary.`, message).
fn canary_source(c: CanarySource, targets: &BTreeSet<String>) -> Result<Source, (String, String)> {
    let defaults = Judge::default();
    let worse = match c.worse.as_deref() {
        None | Some("higher") => Worse::Higher,
        Some("lower") => Worse::Lower,
        Some(other) => return Err(("worse".into(), format!("`{other}`: use higher or lower"))),
    };
    let judge = Judge {
        worse,
        min_samples: c.min_samples.unwrap_or(defaults.min_samples),
        alpha: c.alpha.unwrap_or(defaults.alpha),
        min_effect: c.min_effect.unwrap_or(defaults.min_effect),
        max_variance_ratio: c.max_variance_ratio.unwrap_or(defaults.max_variance_ratio),
    };
    if judge.min_samples < 2 {
        return Err(("min_samples".into(), "at least 2".into()));
    }
    if judge.alpha.is_nan() || judge.alpha <= 0.0 || judge.alpha >= 1.0 {
        return Err(("alpha".into(), "between 0 and 1, like 0.05".into()));
    }
    if !(0.0..=1.0).contains(&judge.min_effect) {
        return Err(("min_effect".into(), "between 0 and 1, like 0.3".into()));
    }
    if judge.max_variance_ratio.is_nan() || judge.max_variance_ratio < 1.0 {
        return Err(("max_variance_ratio".into(), "1 or more, like 2".into()));
    }
    let over = c.over.unwrap_or(Duration::from_secs(600));
    let from = match (c.hosts, c.url) {
        (Some(_), Some(_)) => {
            return Err((
                "hosts".into(),
                "give either hosts, baseline_hosts and check (probe groups) or url, query and baseline (Prometheus), not both".into(),
            ));
        }
        (Some(canary), None) => {
            if let Some((field, _)) = [("query", &c.query), ("baseline", &c.baseline)]
                .into_iter()
                .find(|(_, v)| v.is_some())
            {
                return Err((
                    field.into(),
                    "is for Prometheus; host groups compare `check`".into(),
                ));
            }
            if c.step.is_some() {
                return Err((
                    "step".into(),
                    "is for Prometheus; host groups give a value per probe round".into(),
                ));
            }
            let baseline = c.baseline_hosts.ok_or_else(|| {
                (
                    "baseline_hosts".into(),
                    "the baseline's host group is missing".to_string(),
                )
            })?;
            let check = c.check.ok_or_else(|| {
                (
                    "check".into(),
                    "name the [[assess.check]] whose response time is compared".to_string(),
                )
            })?;
            for (field, group) in [("hosts", &canary), ("baseline_hosts", &baseline)] {
                if !targets.contains(group) {
                    return Err((
                        field.into(),
                        format!("`{group}` is neither a host nor a group of [[host]]"),
                    ));
                }
            }
            if canary == baseline {
                return Err((
                    "baseline_hosts".into(),
                    format!("`{baseline}` is the canary's own group"),
                ));
            }
            CanaryFrom::Hosts {
                canary,
                baseline,
                check,
            }
        }
        (None, url) => {
            let url = url.ok_or_else(|| {
                ("url".into(), "give url, query and baseline (Prometheus) or hosts, baseline_hosts and check (probe groups)".to_string())
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(("url".into(), format!("`{url}` is not an http(s) URL")));
            }
            if let Some((field, _)) = [("baseline_hosts", &c.baseline_hosts), ("check", &c.check)]
                .into_iter()
                .find(|(_, v)| v.is_some())
            {
                return Err((
                    field.into(),
                    "is for host groups; Prometheus compares `query` with `baseline`".into(),
                ));
            }
            let query = c
                .query
                .ok_or_else(|| ("query".into(), "the canary's query is missing".to_string()))?;
            let baseline = c.baseline.ok_or_else(|| {
                (
                    "baseline".into(),
                    "the baseline's query is missing".to_string(),
                )
            })?;
            let step = c.step.unwrap_or(Duration::from_secs(15));
            if step < Duration::from_secs(1) {
                return Err(("step".into(), "at least 1s".into()));
            }
            if over < step {
                return Err(("over".into(), "at least one step".into()));
            }
            CanaryFrom::Prometheus {
                url,
                query,
                baseline,
                step,
            }
        }
    };
    Ok(Source::Canary { from, over, judge })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn seed() -> Plan {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/samia-tarot/plan.toml");
        Plan::load(&path).unwrap()
    }

    #[test]
    fn the_seed_plan_encodes_every_trigger_of_both_tables() {
        let plan = seed();
        let immediate: Vec<&str> = plan
            .triggers
            .iter()
            .filter(|t| t.class == Class::Immediate)
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            immediate,
            [
                "Complete Service Down",
                "Critical Security Breach",
                "Data Corruption",
                "Payment Processing Failure"
            ]
        );
        let considered: Vec<&str> = plan
            .triggers
            .iter()
            .filter(|t| t.class == Class::Considered)
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            considered,
            [
                "High Error Rate",
                "Performance Degradation",
                "High Support Volume",
                "User Registration Failure"
            ]
        );
        let error_rate = plan
            .triggers
            .iter()
            .find(|t| t.name == "High Error Rate")
            .unwrap();
        assert_eq!(error_rate.hold, Hold::For(Duration::from_secs(15 * 60)));
        assert_eq!(error_rate.deciders, ["technical-lead", "release-manager"]);
        // The seed's response times: immediate within 15 minutes, considered within 30.
        assert_eq!(error_rate.decide_within, Some(Duration::from_secs(30 * 60)));
        assert_eq!(
            plan.triggers[0].decide_within,
            Some(Duration::from_secs(15 * 60))
        );
        assert_eq!(
            plan.signals["critical_tickets"].source,
            Source::Events {
                window: Duration::from_secs(3600)
            }
        );
    }

    #[test]
    fn the_seed_plan_encodes_phases_approvals_escalation_and_success() {
        let plan = seed();
        let ids: Vec<&str> = plan.phases.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "immediate-response",
                "application",
                "database",
                "external-services",
                "stabilisation",
                "communication"
            ]
        );
        assert_eq!(plan.approvals.run, ["release-manager", "technical-lead"]);
        let db = &plan.phases[2];
        assert_eq!(db.approvals, ["dba", "technical-lead", "product-owner"]);
        assert_eq!(db.steps[0].action, "backup", "the backup comes first");
        assert_eq!(plan.escalations.len(), 3);
        assert_eq!(plan.escalations[0].who, "CTO");
        let success = plan.success.as_ref().unwrap();
        assert_eq!(success.rto, Some(Duration::from_secs(3600)));
        assert_eq!(success.notify_within, Some(Duration::from_secs(900)));
        assert!(plan.templates["internal"].body.contains("{{ data_loss }}"));
        assert_eq!(plan.templates["decision-overdue"].on, ["decision-overdue"]);
    }

    const PHASES: &str = "[[host]]\nid = \"app-1\"\ngroups = [\"app\"]\n";

    #[test]
    fn a_parse_error_names_its_field_by_its_full_path() {
        let text = "[plan]\nname = \"p\"\n[[host]]\nid = \"h\"\n[[phase]]\nid = \"a\"\nname = \"A\"\n[[phase.step]]\nid = \"s\"\nplugin = \"app\"\naction = \"stop\"\non = \"h\"\n[[phase.step]]\nid = \"t\"\nplugin = \"app\"\naction = \"stop\"\non = \"h\"\nretries = \"3\"\n";
        let err = Plan::parse(Path::new("p.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.toml:18:11: field `phase[0].step[1].retries`: "),
            "{err}"
        );
        let typo = "[plan]\nname = \"p\"\nownr = \"me\"\n";
        let err = Plan::parse(Path::new("p.toml"), typo)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.toml:3:1: field `plan.ownr`: unknown field"),
            "{err}"
        );
        // A misspelt section is named as such, not by what it broke.
        let sections = "[plan]\nname = \"p\"\n[[host]]\nid = \"h\"\n[[phases]]\nid = \"a\"\nname = \"A\"\n[[phase.step]]\nid = \"s\"\n";
        let err = Plan::parse(Path::new("p.toml"), sections)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "p.toml:5:3: field `phases`: unknown section `phases`; did you mean `phase`?"
            ),
            "{err}"
        );
    }

    #[test]
    fn phases_reference_known_hosts_roles_and_phases_without_cycles() {
        let cycle = format!(
            "{BASE}{PHASES}[[phase]]\nid = \"a\"\nname = \"A\"\nafter = [\"b\"]\n[[phase]]\nid = \"b\"\nname = \"B\"\nafter = [\"a\"]\n"
        );
        let err = Plan::parse(Path::new("p.toml"), &cycle)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycle"), "{err}");
        let unknown_host = format!(
            "{BASE}{PHASES}[[phase]]\nid = \"a\"\nname = \"A\"\n[[phase.step]]\nid = \"s\"\nplugin = \"app\"\naction = \"stop\"\non = \"db\"\n"
        );
        let err = Plan::parse(Path::new("p.toml"), &unknown_host)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("phase[0].step[0].on") && err.contains("`db`"),
            "{err}"
        );
        let bad_escalation =
            format!("{BASE}[[escalation]]\nwho = \"CTO\"\nwhen = \"dollars > 5\"\n");
        let err = Plan::parse(Path::new("p.toml"), &bad_escalation)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("escalation[0].when") && err.contains("unknown figure `dollars`"),
            "{err}"
        );
    }

    const BASE: &str =
        "[plan]\nname = \"t\"\n[roles]\nrm = \"Release Manager\"\n[signals.x]\nmanual = true\n";

    #[test]
    fn an_unknown_signal_in_a_condition_names_the_field() {
        let text = format!(
            "{BASE}[[trigger]]\nname = \"a\"\nclass = \"immediate\"\nwhen = \"y > 1\"\ndeciders = [\"rm\"]\n"
        );
        let err = Plan::parse(Path::new("p.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.toml") && err.contains("trigger[0].when") && err.contains("`y`"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_condition_points_at_its_column() {
        let text = format!(
            "{BASE}[[trigger]]\nname = \"a\"\nclass = \"immediate\"\nwhen = \"x > \"\ndeciders = [\"rm\"]\n"
        );
        let err = Plan::parse(Path::new("p.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("trigger[0].when") && err.contains("column"),
            "{err}"
        );
    }

    #[test]
    fn log_matches_reads_the_error_log_and_says_so() {
        let probe = |check: &str| {
            format!(
                "[plan]\nname = \"t\"\n[roles]\nrm = \"RM\"\n[signals.errors]\nprobe = {{ check = \"{check}\", aggregate = \"log-matches\" }}\n[[trigger]]\nname = \"a\"\nclass = \"considered\"\nwhen = \"errors > 10\"\ndeciders = [\"rm\"]\n"
            )
        };
        let err = Plan::parse(Path::new("p.toml"), &probe("application"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.toml:")
                && err.contains("field `signals.errors.probe.check`")
                && err.contains("error-log"),
            "{err}"
        );
        let plan = Plan::parse(Path::new("p.toml"), &probe("error-log")).unwrap();
        assert_eq!(
            plan.signals["errors"].source,
            Source::Probe {
                check: "error-log".into(),
                aggregate: "log-matches".into()
            }
        );
    }

    const CANARY: &str = "[plan]\nname = \"t\"\n[roles]\nrm = \"RM\"\n[signals.canary_latency]\ncanary = { url = \"http://127.0.0.1:9090\", query = 'p95{group=\"canary\"}', baseline = 'p95{group=\"baseline\"}', over = \"10m\", min_samples = 20 }\n";

    #[test]
    fn a_considered_trigger_may_name_an_optional_phase_as_its_remedy() {
        let plan = |class: &str, remedy: &str, optional: bool| {
            format!(
                "[plan]\nname = \"t\"\n[roles]\nrm = \"RM\"\n[[host]]\nid = \"app-1\"\n[signals.checkout_errors]\nmanual = true\n[[trigger]]\nname = \"Checkout errors\"\nclass = \"{class}\"\nwhen = \"checkout_errors > 5\"\ndeciders = [\"rm\"]\n{remedy}\n[[phase]]\nid = \"flags-off\"\nname = \"Feature flags off\"\noptional = {optional}\n[[phase.step]]\nid = \"off\"\nplugin = \"flags\"\naction = \"off\"\non = \"app-1\"\n"
            )
        };
        let remedy = "remedy = \"flags-off\"\nremedy_hold = \"5m\"";
        let parsed = Plan::parse(Path::new("p.toml"), &plan("considered", remedy, true)).unwrap();
        assert_eq!(
            parsed.triggers[0].remedy,
            Some(crate::remedy::Remedy {
                phase: "flags-off".into(),
                hold: Duration::from_secs(300),
                approvals: vec!["rm".into()],
            })
        );
        for (class, remedy, optional, field) in [
            ("considered", remedy, false, "trigger[0].remedy"),
            ("immediate", remedy, true, "trigger[0].remedy"),
            (
                "considered",
                "remedy = \"flags-off\"",
                true,
                "trigger[0].remedy_hold",
            ),
            (
                "considered",
                "remedy = \"flags-off\"\nremedy_hold = \"5m\"\nremedy_approvals = [\"cto\"]",
                true,
                "field `trigger[0].remedy_approvals`: unknown role `cto`",
            ),
            (
                "considered",
                "remedy = \"flags-off\"\nremedy_hold = \"5m\"\nremedy_approvals = []",
                true,
                "trigger[0].remedy_approvals",
            ),
            (
                "considered",
                "remedy_approvals = [\"rm\"]",
                true,
                "field `trigger[0].remedy_approvals`: there is no `remedy`",
            ),
        ] {
            let err = Plan::parse(Path::new("p.toml"), &plan(class, remedy, optional))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn a_canary_judge_is_a_signal_and_only_its_fail_may_act_alone() {
        let trigger = |class: &str, when: &str, auto: bool| {
            format!(
                "{CANARY}[[trigger]]\nname = \"Canary\"\nclass = \"{class}\"\nwhen = \"{when}\"\nauto_rollback = {auto}\ndeciders = [\"rm\"]\n"
            )
        };
        let plan = Plan::parse(
            Path::new("p.toml"),
            &trigger("immediate", "canary_latency == fail", true),
        )
        .unwrap();
        let Source::Canary { judge, over, .. } = &plan.signals["canary_latency"].source else {
            panic!("not a canary");
        };
        assert_eq!((judge.min_samples, judge.alpha), (20, 0.05));
        assert_eq!(*over, Duration::from_secs(600));
        // Marginal and inconclusive pause for a person: a considered trigger.
        let text = trigger(
            "considered",
            "canary_latency == marginal or canary_latency == inconclusive",
            false,
        );
        assert!(Plan::parse(Path::new("p.toml"), &text).is_ok());
        for (class, when, auto) in [
            ("immediate", "canary_latency == marginal", false),
            ("considered", "canary_latency != pass", true),
            ("immediate", "canary_latency >= fail", false),
        ] {
            let err = Plan::parse(Path::new("p.toml"), &trigger(class, when, auto))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("trigger[0].when") && err.contains("for people"),
                "{when}: {err}"
            );
        }
        let bad = CANARY.replace("min_samples = 20", "worse = \"sideways\"");
        let err = Plan::parse(Path::new("p.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("signals.canary_latency.canary.worse") && err.contains("sideways"),
            "{err}"
        );
    }

    /// The host-group form: groups of `[[host]]`, checked by name.
    #[test]
    fn a_canary_of_host_groups_names_groups_the_plan_has() {
        let plan = |canary: &str| {
            format!(
                "[plan]\nname = \"t\"\n[[host]]\nid = \"app-1\"\ngroups = [\"canary\"]\n[[host]]\nid = \"app-2\"\ngroups = [\"web\"]\n[signals.canary_response]\ncanary = {{ {canary} }}\n"
            )
        };
        let ok = Plan::parse(
            Path::new("p.toml"),
            &plan(r#"hosts = "canary", baseline_hosts = "web", check = "app", over = "5m""#),
        )
        .unwrap();
        let Source::Canary { from, over, .. } = &ok.signals["canary_response"].source else {
            panic!("not a canary");
        };
        assert_eq!(
            from,
            &CanaryFrom::Hosts {
                canary: "canary".into(),
                baseline: "web".into(),
                check: "app".into()
            }
        );
        assert_eq!(*over, Duration::from_secs(300));
        for (canary, field, says) in [
            (
                r#"hosts = "canary", baseline_hosts = "db", check = "app""#,
                "canary.baseline_hosts",
                "`db` is neither a host nor a group",
            ),
            (
                r#"hosts = "cnary", baseline_hosts = "web", check = "app""#,
                "canary.hosts",
                "`cnary`",
            ),
            (
                r#"hosts = "canary", baseline_hosts = "web""#,
                "canary.check",
                "[[assess.check]]",
            ),
            (
                r#"hosts = "canary", check = "app""#,
                "canary.baseline_hosts",
                "missing",
            ),
            (
                r#"hosts = "web", baseline_hosts = "web", check = "app""#,
                "canary.baseline_hosts",
                "own group",
            ),
            (
                r#"hosts = "canary", baseline_hosts = "web", check = "app", url = "http://p:9090""#,
                "canary.hosts",
                "not both",
            ),
            (
                r#"hosts = "canary", baseline_hosts = "web", check = "app", query = "q""#,
                "canary.query",
                "for Prometheus",
            ),
            (
                r#"url = "http://p:9090", query = "q", baseline = "b", check = "app""#,
                "canary.check",
                "for host groups",
            ),
            (r#"check = "app""#, "canary.url", "give url"),
        ] {
            let err = Plan::parse(Path::new("p.toml"), &plan(canary))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("signals.canary_response.{field}")) && err.contains(says),
                "{canary}: {err}"
            );
        }
    }

    #[test]
    fn unknown_roles_and_keys_are_errors() {
        let text = format!(
            "{BASE}[[trigger]]\nname = \"a\"\nclass = \"immediate\"\nwhen = \"x\"\ndeciders = [\"cfo\"]\n"
        );
        let err = Plan::parse(Path::new("p.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.toml:11: field `trigger[0].deciders`")
                && err.contains("unknown role `cfo`"),
            "{err}"
        );
        let text = format!(
            "{BASE}[[trigger]]\nname = \"a\"\nclass = \"immediate\"\nwhen = \"x\"\ndeciders = []\n"
        );
        let err = Plan::parse(Path::new("p.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.toml:11: field `trigger[0].deciders`")
                && err.contains("at least one role"),
            "{err}"
        );
        let text = format!(
            "{BASE}[[trigger]]\nname = \"a\"\nclass = \"immediate\"\nwen = \"x\"\ndeciders = [\"rm\"]\n"
        );
        let err = Plan::parse(Path::new("p.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.toml:") && err.contains("wen"), "{err}");
    }

    mod fuzz {
        //! Plan files mangled at random: an error naming the file, never a panic.
        use proptest::prelude::*;

        use super::*;

        const SEED: &str = include_str!("../../examples/samia-tarot/plan.toml");

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn any_text_is_a_plan_or_an_error(text in ".{0,400}") {
                let _ = Plan::parse(Path::new("fuzz.toml"), &text);
            }

            #[test]
            fn a_mangled_seed_plan_is_a_plan_or_an_error_naming_the_file(
                cut in 0usize..SEED.len(),
                len in 0usize..40,
                insert in ".{0,12}",
            ) {
                let mut text = SEED.to_string();
                let start = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                let end = (start + len).min(text.len());
                let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
                text.replace_range(start..end, &insert);
                if let Err(e) = Plan::parse(Path::new("fuzz.toml"), &text) {
                    prop_assert!(e.to_string().contains("fuzz.toml"), "{e}");
                }
            }
        }
    }
}
