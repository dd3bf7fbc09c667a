//! Zone settings, one `PATCH /zones/{zone}/settings/{id}` each.

use std::collections::BTreeMap;

use backout_plugin_sdk::host;
use backout_plugin_sdk::{Outcome, PluginError, Step};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{self, bad};
use crate::{Zone, default_base};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    #[serde(default = "default_base")]
    api_base: String,
    zone: String,
    #[serde(default)]
    #[schemars(extend("x-secret" = true))]
    token: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    #[schemars(extend("x-secret" = true))]
    key: Option<String>,
    /// Setting id to value: `{ always_online = "on" }`.
    settings: BTreeMap<String, Value>,
}

pub(crate) fn run(step: &Step) -> Result<Outcome, PluginError> {
    let p: Params = step.params()?;
    let zone = Zone::new(
        &p.api_base,
        &p.zone,
        p.token.as_deref(),
        p.email.as_deref(),
        p.key.as_deref(),
    )?;
    if p.settings.is_empty() {
        return Err(bad("`settings` is empty: nothing to set"));
    }
    for (id, value) in &p.settings {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad(format!(
                "`{id}` is not a Cloudflare setting id (such as always_online)"
            )));
        }
        if value.is_null() {
            return Err(bad(format!("setting `{id}`: null is not a value")));
        }
    }
    let wanted: Map<String, Value> = p.settings.into_iter().collect();

    // What each setting is now; a value Cloudflare does not report is null.
    let mut before = Map::new();
    for id in wanted.keys() {
        let result = zone.send(zone.request("GET", &format!("/settings/{id}")))?;
        let value = result.get("value").cloned().unwrap_or(Value::Null);
        if value.is_null() {
            host::log_warn(&format!(
                "zone {}: Cloudflare reported no value for {id}",
                zone.id
            ));
        }
        before.insert(id.clone(), value);
    }
    let what = format!("zone {}", zone.id);
    let ident = json!({ "zone": zone.id });
    let changes = match api::decide(&what, ident, &before, &wanted, step.dry_run) {
        api::Decision::Done(outcome) => return Ok(outcome),
        api::Decision::Apply(changes) => changes,
    };
    let changed: Vec<Value> = changes.iter().map(api::Change::json).collect();

    let mut after = Map::new();
    for change in &changes {
        let request = zone
            .request("PATCH", &format!("/settings/{}", change.field))
            .json(&json!({ "value": change.after }))?;
        let result = zone.send(request)?;
        host::log_info(&format!("zone {}: set {}", zone.id, change.line()));
        after.insert(
            change.field.clone(),
            result.get("value").cloned().unwrap_or(Value::Null),
        );
    }
    Ok(Outcome::new(
        format!("zone {}: set {}", zone.id, api::lines(&changes)),
        json!({ "zone": zone.id, "before": before, "requested": wanted, "after": after, "changed": changed }),
    ))
}
