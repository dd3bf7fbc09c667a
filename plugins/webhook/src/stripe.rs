//! Stripe webhook endpoints.

use backout_plugin_sdk::host::HttpRequest;
use backout_plugin_sdk::{Outcome, PluginError, Step};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::{self, bad};

const DEFAULT_BASE: &str = "https://api.stripe.com";

fn default_base() -> String {
    DEFAULT_BASE.to_string()
}

/// Parameters of `stripe-update`. Fields left out are left as they are.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateParams {
    /// Where the API is (a test points it at a mock).
    #[serde(default = "default_base")]
    api_base: String,
    /// The webhook endpoint's id (`we_…`), or a `${secret:NAME}`.
    endpoint: String,
    /// The secret key, as `${secret:NAME}`.
    #[schemars(extend("x-secret" = true))]
    secret_key: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    enabled_events: Option<Vec<String>>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    description: Option<String>,
}

/// Parameters of `stripe-restore`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreParams {
    #[serde(default = "default_base")]
    api_base: String,
    endpoint: String,
    #[schemars(extend("x-secret" = true))]
    secret_key: String,
    /// What `stripe-update` recorded as `previous` (its data's `before`).
    previous: State,
}

/// The fields of an endpoint that these actions set and record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct State {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled_events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl State {
    fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// The endpoint as Stripe returns it; `status` is `enabled` or `disabled`.
    fn from_endpoint(endpoint: &Value) -> State {
        State {
            url: endpoint["url"].as_str().map(str::to_string),
            enabled_events: endpoint["enabled_events"].as_array().map(|events| {
                events
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            }),
            disabled: endpoint["status"].as_str().map(|s| s == "disabled"),
            description: endpoint["description"].as_str().map(str::to_string),
        }
    }

    /// The form fields that set what `changes` names.
    fn form(&self, changes: &[api::Change]) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for change in changes {
            match change.field.as_str() {
                "url" => pairs.extend(self.url.clone().map(|u| ("url".to_string(), u))),
                "enabled_events" => {
                    for (i, event) in self.enabled_events.iter().flatten().enumerate() {
                        pairs.push((format!("enabled_events[{i}]"), event.clone()));
                    }
                }
                "disabled" => pairs.extend(
                    self.disabled
                        .map(|d| ("disabled".to_string(), d.to_string())),
                ),
                "description" => pairs.extend(
                    self.description
                        .clone()
                        .map(|d| ("description".to_string(), d)),
                ),
                _ => {}
            }
        }
        pairs
    }
}

pub(crate) fn update(step: &Step) -> Result<Outcome, PluginError> {
    let p: UpdateParams = step.params()?;
    let wanted = State {
        url: p.url,
        enabled_events: p.enabled_events,
        disabled: p.disabled,
        description: p.description,
    };
    apply(step, &p.api_base, &p.endpoint, &p.secret_key, &wanted)
}

pub(crate) fn restore(step: &Step) -> Result<Outcome, PluginError> {
    let p: RestoreParams = step.params()?;
    apply(step, &p.api_base, &p.endpoint, &p.secret_key, &p.previous)
}

fn apply(
    step: &Step,
    base: &str,
    endpoint: &str,
    secret_key: &str,
    wanted: &State,
) -> Result<Outcome, PluginError> {
    let base = api::api_base(base)?;
    api::resource_id("endpoint", endpoint)?;
    api::secret_marker("secret_key", secret_key)?;
    let wanted_fields = wanted.fields();
    if wanted_fields.is_empty() {
        return Err(bad(
            "nothing to set: give url, enabled_events, disabled or description",
        ));
    }
    if wanted.enabled_events.as_ref().is_some_and(Vec::is_empty) {
        return Err(bad("`enabled_events` cannot be empty"));
    }
    let url = format!("{base}/v1/webhook_endpoints/{endpoint}");
    let auth = format!("Bearer {secret_key}");

    let current = api::send(HttpRequest::new("GET", url.clone()).header("authorization", &auth))?;
    let before = State::from_endpoint(&current);
    // Only the fields this action may set are recorded (never the
    // endpoint's signing secret, which Stripe may return).
    let before_fields = before.fields();
    let what = format!("stripe webhook endpoint {endpoint}");
    let ident = json!({ "provider": "stripe", "endpoint": endpoint });
    let changes = match api::decide(&what, ident, &before_fields, &wanted_fields, step.dry_run) {
        api::Decision::Done(outcome) => return Ok(outcome),
        api::Decision::Apply(changes) => changes,
    };
    let changed: Vec<Value> = changes.iter().map(api::Change::json).collect();

    let body = api::form(&wanted.form(&changes));
    let updated = api::send(
        HttpRequest::new("POST", url)
            .header("authorization", &auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )?;
    let after = State::from_endpoint(&updated).fields();
    Ok(Outcome::new(
        format!(
            "stripe webhook endpoint {endpoint}: set {}",
            api::lines(&changes)
        ),
        json!({ "provider": "stripe", "endpoint": endpoint, "before": before_fields, "requested": wanted_fields, "after": after, "changed": changed }),
    ))
}
