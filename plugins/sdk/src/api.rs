//! Helpers for plugins that drive a provider's HTTP API (the `webhook` and
//! `cdn` plugins use them): checking parameters (credentials only as
//! `${secret:NAME}` markers, ids safe in a URL path, an API base), sending
//! a request through the host and reading its JSON answer with failures
//! sorted by kind, comparing a state before and after a change, recording
//! the state before so that the change can be undone, and form encoding.

use crate::PluginError;
use crate::host::{self, HttpRequest};
use serde_json::{Map, Value, json};

/// Time allowed for one call to a provider, in milliseconds.
const TIMEOUT_MS: u32 = 15_000;
/// How much of an error body goes into a failure message.
const EXCERPT: usize = 300;

/// A `bad-params` error.
pub fn bad(message: impl Into<String>) -> PluginError {
    PluginError::new("bad-params", message)
}

/// A credential must be a `${secret:NAME}` marker, never the value itself:
/// the host fills it in, so the plan and the plugin never hold the value.
pub fn secret_marker(field: &str, value: &str) -> Result<(), PluginError> {
    if is_marker(value) {
        Ok(())
    } else {
        Err(bad(format!(
            "`{field}` must be a secret reference such as `${{secret:NAME}}`, not a value"
        )))
    }
}

/// A resource id that goes into a URL path: letters, digits, `_`, `-` and
/// `.`, or a `${secret:NAME}` marker the host fills in.
pub fn resource_id(field: &str, value: &str) -> Result<(), PluginError> {
    let plain = !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if plain || is_marker(value) {
        Ok(())
    } else {
        Err(bad(format!(
            "`{field}` = `{value}` is not an id (letters, digits, `_`, `-`, `.`) or a `${{secret:NAME}}`"
        )))
    }
}

fn is_marker(value: &str) -> bool {
    value
        .strip_prefix("${secret:")
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|name| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// An API base URL: http(s), without a trailing `/`.
pub fn api_base(value: &str) -> Result<String, PluginError> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(value.trim_end_matches('/').to_string())
    } else {
        Err(bad(format!("`api_base` = `{value}` is not an http(s) URL")))
    }
}

/// Sends one request and returns its JSON answer; anything but a 2xx with a
/// JSON body is a failure whose code says what kind: `unauthorized` (401,
/// 403), `not-found` (404), `rejected` (other 4xx: the provider refused the
/// request), `provider-error` (5xx, 3xx), `bad-response` (not JSON).
pub fn send(request: HttpRequest) -> Result<Value, PluginError> {
    let (method, url) = (request.method.clone(), request.url.clone());
    let response = request.timeout_ms(TIMEOUT_MS).send()?;
    let text = response.text();
    if !response.is_success() {
        let code = match response.status {
            401 | 403 => "unauthorized",
            404 => "not-found",
            400..=499 => "rejected",
            _ => "provider-error",
        };
        let excerpt: String = text.chars().take(EXCERPT).collect();
        return Err(PluginError::new(
            code,
            format!(
                "{method} {url} answered HTTP {}: {excerpt}",
                response.status
            ),
        ));
    }
    serde_json::from_str(&text).map_err(|e| {
        PluginError::new(
            "bad-response",
            format!(
                "{method} {url} answered HTTP {} with no JSON: {e}",
                response.status
            ),
        )
    })
}

/// One field that a change sets to a new value.
pub struct Change {
    /// The field's name (a setting, a flag, a component id).
    pub field: String,
    /// Its value before the change, as read.
    pub before: Value,
    /// The value the change sets.
    pub after: Value,
}

impl Change {
    /// `always_online: off -> on`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} -> {}",
            self.field,
            show(&self.before),
            show(&self.after)
        )
    }

    /// `{"field": ..., "before": ..., "after": ...}`, for a step's data.
    pub fn json(&self) -> Value {
        json!({ "field": self.field, "before": self.before, "after": self.after })
    }
}

/// A value for people: strings bare, everything else as JSON.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The fields of `wanted` whose value differs from `before`.
pub fn diff(before: &Map<String, Value>, wanted: &Map<String, Value>) -> Vec<Change> {
    wanted
        .iter()
        .filter(|(field, after)| before.get(*field).unwrap_or(&Value::Null) != *after)
        .map(|(field, after)| Change {
            field: field.clone(),
            before: before.get(field).cloned().unwrap_or(Value::Null),
            after: after.clone(),
        })
        .collect()
}

/// `a: x -> y; b: …`, or `nothing to change`.
pub fn lines(changes: &[Change]) -> String {
    if changes.is_empty() {
        "nothing to change".to_string()
    } else {
        changes
            .iter()
            .map(Change::line)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What a read-then-write action does next, once it has read the state
/// before ([`decide`]).
pub enum Decision {
    /// Nothing to change, or a dry run: this is the step's outcome.
    Done(crate::Outcome),
    /// Apply these changes.
    Apply(Vec<Change>),
}

/// The shape every provider action shares: record the state `before` (so
/// the change can be undone), compare it with what is `wanted`, and answer
/// at once when nothing is to change or this is a dry run. `what` names the
/// thing for people ("stripe webhook endpoint we_1"); `ident` (a JSON
/// object, e.g. `{"zone": …}`) starts the outcome's data.
pub fn decide(
    what: &str,
    ident: Value,
    before: &Map<String, Value>,
    wanted: &Map<String, Value>,
    dry_run: bool,
) -> Decision {
    record_previous(what, before);
    let changes = diff(before, wanted);
    let mut data = match ident {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    data.insert("before".into(), Value::Object(before.clone()));
    if changes.is_empty() {
        data.insert("after".into(), Value::Object(before.clone()));
        data.insert("changed".into(), json!([]));
        return Decision::Done(crate::Outcome::new(
            format!("{what}: already as asked, nothing to change"),
            Value::Object(data),
        ));
    }
    if dry_run {
        data.insert("dry_run".into(), json!(true));
        data.insert("would_set".into(), Value::Object(wanted.clone()));
        let changed: Vec<Value> = changes.iter().map(Change::json).collect();
        data.insert("changed".into(), json!(changed));
        return Decision::Done(crate::Outcome::new(
            format!("{what}: would set {}", lines(&changes)),
            Value::Object(data),
        ));
    }
    Decision::Apply(changes)
}

/// Logs and emits the state read before a change, so the change can be
/// undone (the `*-restore` actions take it as `previous`).
pub fn record_previous(what: &str, previous: &Map<String, Value>) {
    host::log_info(&format!(
        "{what} before: {}",
        Value::Object(previous.clone())
    ));
    host::emit_json("previous", previous);
}

/// `application/x-www-form-urlencoded` text of `pairs`, every byte but
/// `A-Z a-z 0-9 - . _ ~` percent-encoded.
pub fn form(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    crate::url::query_component(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_percent_encoded() {
        let pairs = vec![
            ("url".to_string(), "https://a.example/x?y=1".to_string()),
            (
                "enabled_events[0]".to_string(),
                "payment_intent.succeeded".to_string(),
            ),
        ];
        assert_eq!(
            form(&pairs),
            "url=https%3A%2F%2Fa.example%2Fx%3Fy%3D1&enabled_events%5B0%5D=payment_intent.succeeded"
        );
    }

    #[test]
    fn ids_and_markers() {
        assert!(resource_id("id", "we_123").is_ok());
        assert!(resource_id("id", "${secret:STRIPE_WEBHOOK_ID}").is_ok());
        assert!(resource_id("id", "../admin").is_err());
        assert!(resource_id("id", "a/b").is_err());
        assert!(resource_id("id", "").is_err());
        assert!(secret_marker("key", "${secret:KEY}").is_ok());
        assert!(secret_marker("key", "sk_live_123").is_err());
        assert!(secret_marker("key", "Bearer ${secret:KEY}").is_err());
    }

    #[test]
    fn diffs_name_changed_fields_only() {
        let before = json!({ "a": "off", "b": 1 });
        let wanted = json!({ "a": "on", "b": 1, "c": true });
        let (Value::Object(before), Value::Object(wanted)) = (before, wanted) else {
            unreachable!()
        };
        let changes = diff(&before, &wanted);
        assert_eq!(lines(&changes), "a: off -> on; c: null -> true");
    }
}
