//! Square webhook subscriptions.

use backout_plugin_sdk::host::HttpRequest;
use backout_plugin_sdk::{Outcome, PluginError, Step};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::{self, bad};

const DEFAULT_BASE: &str = "https://connect.squareup.com";

fn default_base() -> String {
    DEFAULT_BASE.to_string()
}

/// Parameters of `square-update`. Fields left out are left as they are.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateParams {
    /// Where the API is (a test points it at a mock).
    #[serde(default = "default_base")]
    api_base: String,
    /// The subscription's id (`wbhk_…`), or a `${secret:NAME}`.
    subscription: String,
    /// The access token, as `${secret:NAME}`.
    #[schemars(extend("x-secret" = true))]
    access_token: String,
    /// Sent as `Square-Version` when given.
    #[serde(default)]
    square_version: Option<String>,
    #[serde(default)]
    notification_url: Option<String>,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    name: Option<String>,
}

/// Parameters of `square-restore`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreParams {
    #[serde(default = "default_base")]
    api_base: String,
    subscription: String,
    #[schemars(extend("x-secret" = true))]
    access_token: String,
    #[serde(default)]
    square_version: Option<String>,
    /// What `square-update` recorded as `previous` (its data's `before`).
    previous: State,
}

/// The fields of a subscription that these actions set and record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct State {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notification_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl State {
    fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// The `subscription` object of Square's answer. Only these fields are
    /// kept: never its `signature_key`.
    fn from_answer(answer: &Value) -> Result<State, PluginError> {
        let subscription = answer.get("subscription").ok_or_else(|| {
            PluginError::new(
                "bad-response",
                format!("Square answered without a subscription: {answer}"),
            )
        })?;
        serde_json::from_value(json!({
            "notification_url": subscription.get("notification_url"),
            "event_types": subscription.get("event_types"),
            "enabled": subscription.get("enabled"),
            "name": subscription.get("name"),
        }))
        .map_err(|e| {
            PluginError::new(
                "bad-response",
                format!("Square's subscription is not what its API describes: {e}"),
            )
        })
    }
}

pub(crate) fn update(step: &Step) -> Result<Outcome, PluginError> {
    let p: UpdateParams = step.params()?;
    let wanted = State {
        notification_url: p.notification_url,
        event_types: p.event_types,
        enabled: p.enabled,
        name: p.name,
    };
    let target = Target {
        base: p.api_base,
        subscription: p.subscription,
        access_token: p.access_token,
        square_version: p.square_version,
    };
    apply(step, &target, &wanted)
}

pub(crate) fn restore(step: &Step) -> Result<Outcome, PluginError> {
    let p: RestoreParams = step.params()?;
    let target = Target {
        base: p.api_base,
        subscription: p.subscription,
        access_token: p.access_token,
        square_version: p.square_version,
    };
    apply(step, &target, &p.previous)
}

/// Which subscription, and how to reach it.
struct Target {
    base: String,
    subscription: String,
    access_token: String,
    square_version: Option<String>,
}

impl Target {
    fn request(&self, method: &str, url: &str) -> HttpRequest {
        let request = HttpRequest::new(method, url)
            .header("authorization", format!("Bearer {}", self.access_token));
        match &self.square_version {
            Some(version) => request.header("square-version", version.clone()),
            None => request,
        }
    }
}

fn apply(step: &Step, target: &Target, wanted: &State) -> Result<Outcome, PluginError> {
    let base = api::api_base(&target.base)?;
    let id = target.subscription.as_str();
    api::resource_id("subscription", id)?;
    api::secret_marker("access_token", &target.access_token)?;
    let wanted_fields = wanted.fields();
    if wanted_fields.is_empty() {
        return Err(bad(
            "nothing to set: give notification_url, event_types, enabled or name",
        ));
    }
    if wanted.event_types.as_ref().is_some_and(Vec::is_empty) {
        return Err(bad("`event_types` cannot be empty"));
    }
    let url = format!("{base}/v2/webhooks/subscriptions/{id}");

    let before = State::from_answer(&api::send(target.request("GET", &url))?)?;
    let before_fields = before.fields();
    let what = format!("square webhook subscription {id}");
    let ident = json!({ "provider": "square", "subscription": id });
    let changes = match api::decide(&what, ident, &before_fields, &wanted_fields, step.dry_run) {
        api::Decision::Done(outcome) => return Ok(outcome),
        api::Decision::Apply(changes) => changes,
    };
    let changed: Vec<Value> = changes.iter().map(api::Change::json).collect();

    // Only the changed fields are sent; the rest stay as they are.
    let mut subscription = Map::new();
    for change in &changes {
        subscription.insert(change.field.clone(), change.after.clone());
    }
    let request = target
        .request("PUT", &url)
        .json(&json!({ "subscription": subscription }))?;
    let after = State::from_answer(&api::send(request)?)?.fields();
    Ok(Outcome::new(
        format!(
            "square webhook subscription {id}: set {}",
            api::lines(&changes)
        ),
        json!({ "provider": "square", "subscription": id, "before": before_fields, "requested": wanted_fields, "after": after, "changed": changed }),
    ))
}
