//! The `flags` plugin: feature flags as a remedy (seed, "Rollback Prevention
//! & Improvement": "Feature Flags: instant feature disable without
//! rollback"), through Unleash's admin API.
//!
//! * `off`: for each of `params.flags`, reads its state in
//!   `params.environment` first (`GET /api/admin/projects/{project}/features/
//!   {flag}/environments/{environment}`), records it (data `before`, emitted
//!   as `previous`), then turns the enabled ones off (`POST …/off`).
//! * `restore`: puts each flag of `params.previous` back (`POST …/on` or
//!   `…/off`) where it differs: the undo of `off`.
//!
//! The admin token is a `${secret:NAME}` the host fills into the
//! `Authorization` header. Dry-run only reads and says what it would turn.
//! `data.changed` lists each flag that changed, from and to.

use std::collections::BTreeMap;

use backout_plugin_sdk::api::{self, bad};
use backout_plugin_sdk::host::HttpRequest;
use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

struct Flags;

impl Plugin for Flags {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "flags",
            env!("CARGO_PKG_VERSION"),
            "Turns Unleash feature flags off (and back), recording their previous state.",
        )
        .action(
            "off",
            "Records each of params.flags' state in params.environment, then turns the enabled ones off.",
            true,
        )
        .action(
            "restore",
            "Puts each flag of params.previous back to its recorded state (on or off).",
            true,
        )
    }

    fn needs() -> Vec<Need> {
        vec![
            Need::url("", "Unleash's admin API (params.api_base)"),
            Need::secret("", "an Unleash admin token"),
        ]
    }

    fn schema() -> Schema {
        Schema::new()
            .action::<OffParams>("off")
            .action::<RestoreParams>("restore")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        match step.action.as_str() {
            "off" => {
                let p: OffParams = step.params()?;
                if p.flags.is_empty() {
                    return Err(bad("`flags` names no flag"));
                }
                let wanted = p.flags.iter().map(|f| (f.clone(), false)).collect();
                apply(&step, &p.target(), &wanted)
            }
            "restore" => {
                let p: RestoreParams = step.params()?;
                if p.previous.is_empty() {
                    return Err(bad("`previous` names no flag"));
                }
                apply(&step, &p.target(), &p.previous)
            }
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(Flags);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OffParams {
    /// Unleash's root URL (granted to the plugin on the agent).
    api_base: String,
    /// The admin token, as `${secret:NAME}`.
    #[schemars(extend("x-secret" = true))]
    token: String,
    /// The Unleash project.
    #[serde(default = "default_project")]
    project: String,
    /// The environment whose flags are turned off (`production`).
    environment: String,
    /// The flags to turn off.
    flags: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RestoreParams {
    /// Unleash's root URL (granted to the plugin on the agent).
    api_base: String,
    /// The admin token, as `${secret:NAME}`.
    #[schemars(extend("x-secret" = true))]
    token: String,
    /// The Unleash project.
    #[serde(default = "default_project")]
    project: String,
    /// The environment whose flags are put back.
    environment: String,
    /// What `off` recorded: flag -> enabled.
    previous: BTreeMap<String, bool>,
}

fn default_project() -> String {
    "default".to_string()
}

/// Where the flags are, and the token.
struct Target {
    base: String,
    token: String,
    project: String,
    environment: String,
}

/// Each action's first four params are where the flags are.
macro_rules! target_of {
    ($($params:ty),*) => {$(
        impl $params {
            fn target(&self) -> Target {
                Target {
                    base: self.api_base.clone(),
                    token: self.token.clone(),
                    project: self.project.clone(),
                    environment: self.environment.clone(),
                }
            }
        }
    )*};
}
target_of!(OffParams, RestoreParams);

impl Target {
    fn url(&self, flag: &str) -> Result<String, PluginError> {
        Ok(format!(
            "{}/api/admin/projects/{}/features/{flag}/environments/{}",
            api::api_base(&self.base)?,
            self.project,
            self.environment
        ))
    }

    fn request(&self, method: &str, url: &str) -> HttpRequest {
        HttpRequest::new(method, url).header("authorization", self.token.clone())
    }
}

/// Reads every flag's state, records it, and sets the ones that differ
/// from `wanted` (flag -> enabled).
fn apply(
    step: &Step,
    target: &Target,
    wanted: &BTreeMap<String, bool>,
) -> Result<Outcome, PluginError> {
    api::secret_marker("token", &target.token)?;
    api::resource_id("project", &target.project)?;
    api::resource_id("environment", &target.environment)?;
    let mut before = Map::new();
    for flag in wanted.keys() {
        api::resource_id("flags", flag)?;
        let answer = api::send(target.request("GET", &target.url(flag)?))?;
        let enabled = answer
            .get("enabled")
            .and_then(Value::as_bool)
            .ok_or_else(|| {
                PluginError::new(
                    "bad-response",
                    format!("Unleash answered flag {flag} without `enabled`: {answer}"),
                )
            })?;
        before.insert(flag.clone(), json!(enabled));
    }
    let wanted: Map<String, Value> = wanted
        .iter()
        .map(|(f, on)| (f.clone(), json!(on)))
        .collect();
    let what = format!("unleash flags in {}/{}", target.project, target.environment);
    let ident = json!({ "project": target.project, "environment": target.environment });
    let changes = match api::decide(&what, ident, &before, &wanted, step.dry_run) {
        api::Decision::Done(outcome) => return Ok(outcome),
        api::Decision::Apply(changes) => changes,
    };
    let mut after = before.clone();
    for change in &changes {
        let on = change.after.as_bool().unwrap_or(false);
        let url = format!(
            "{}/{}",
            target.url(&change.field)?,
            if on { "on" } else { "off" }
        );
        api::send(target.request("POST", &url))?;
        after.insert(change.field.clone(), json!(on));
    }
    let changed: Vec<Value> = changes.iter().map(api::Change::json).collect();
    Ok(Outcome::new(
        format!("{what}: set {}", api::lines(&changes)),
        json!({
            "project": target.project,
            "environment": target.environment,
            "before": before,
            "requested": wanted,
            "after": after,
            "changed": changed,
        }),
    ))
}
