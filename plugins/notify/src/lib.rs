//! The `notify` plugin: posts a message to a Slack incoming webhook (the
//! seed plan's emergency notification, section 6.1).
//!
//! The message is a template with `{{name}}` placeholders filled from
//! `params.facts`; nothing more (issue 6 brings real templates on the
//! coordinator's side). A placeholder without a fact is an error, never an
//! empty string. Slack gets `text` (the filled template, for notifications)
//! and `blocks`: a header with the filled `title`, and a section with the
//! filled template as mrkdwn.
//!
//! The webhook URL is itself the credential, so it belongs in a secret:
//! `url = "${secret:SLACK_WEBHOOK_URL}"`; the host fills it in, checks the
//! granted URL prefixes against the filled URL, and never shows it. Dry-run
//! has nothing to read: it returns the message it would post.

use std::collections::BTreeMap;

use backout_plugin_sdk::host::{self, HttpRequest};
use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Slack's limits: a header's text and a section's text.
const MAX_HEADER: usize = 150;
const MAX_SECTION: usize = 3000;
/// Time allowed for the post, in milliseconds.
const TIMEOUT_MS: u32 = 15_000;

struct Notify;

impl Plugin for Notify {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "notify",
            env!("CARGO_PKG_VERSION"),
            "Posts a message filled from a template to a Slack incoming webhook.",
        )
        .action(
            "post",
            "Fills params.template (and params.title) from params.facts and posts text and blocks to params.url.",
            true,
        )
    }

    fn needs() -> Vec<Need> {
        vec![
            Need::url("", "the Slack incoming webhook"),
            // A plain http(s) URL (a local receiver) needs no secret.
            Need::secret("", "the webhook URL, when params.url is `${secret:NAME}`").optional(),
        ]
    }

    fn schema() -> Schema {
        Schema::new().action::<Params>("post")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        match step.action.as_str() {
            "post" => post(&step),
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(Notify);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The incoming webhook, as `${secret:NAME}` (or a plain http(s) URL
    /// for a local receiver).
    url: String,
    /// The header of the message; may use placeholders.
    #[serde(default)]
    title: Option<String>,
    /// The message, Slack mrkdwn with `{{name}}` placeholders.
    template: String,
    /// The values of the placeholders: strings, numbers or booleans.
    #[serde(default)]
    facts: BTreeMap<String, Value>,
}

/// `NAME` of a URL written `${secret:NAME}…`.
fn secret_name(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("${secret:")?;
    rest.split_once('}').map(|(name, _)| name)
}

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::new("bad-params", message)
}

fn post(step: &Step) -> Result<Outcome, PluginError> {
    let p: Params = step.params()?;
    if !(p.url.starts_with("${secret:")
        || p.url.starts_with("https://")
        || p.url.starts_with("http://"))
    {
        return Err(bad(
            "`url` must be a `${secret:NAME}` (the webhook URL is a credential) or an http(s) URL",
        ));
    }
    let text = fill(&p.template, &p.facts)?;
    if text.trim().is_empty() {
        return Err(bad("the filled template is empty"));
    }
    if text.chars().count() > MAX_SECTION {
        return Err(bad(format!(
            "the filled template is longer than Slack's {MAX_SECTION} characters per section"
        )));
    }
    let mut blocks = Vec::new();
    if let Some(title) = &p.title {
        let title = fill(title, &p.facts)?;
        if title.chars().count() > MAX_HEADER {
            return Err(bad(format!(
                "the filled title is longer than Slack's {MAX_HEADER} characters per header"
            )));
        }
        blocks.push(json!({ "type": "header", "text": { "type": "plain_text", "text": title, "emoji": true } }));
    }
    blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } }));
    let message = json!({ "text": text, "blocks": blocks });
    let first_line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string();

    if step.dry_run {
        return Ok(Outcome::new(
            format!("would post to Slack: {first_line}"),
            json!({ "dry_run": true, "would_post": message }),
        ));
    }
    // The secret is an optional need: say plainly when this agent does not
    // grant the one the step names, rather than the host's refusal.
    if let Some(name) = secret_name(&p.url)
        && !Need::secret(name, "").granted()
    {
        return Err(PluginError::new(
            "not-granted",
            format!(
                "the webhook URL is the secret `{name}`, which this agent does not grant this plugin or has no value for: add it to the plugin's [plugin.grants] secrets and to [secrets]"
            ),
        ));
    }
    let request = HttpRequest::new("POST", p.url.clone())
        .json(&message)?
        .timeout_ms(TIMEOUT_MS);
    let response = request.send()?;
    // Slack answers `ok`, or a short error word (invalid_payload,
    // no_service, channel_is_archived...).
    let answer: String = response.text().chars().take(200).collect();
    if !response.is_success() {
        let code = match response.status {
            401 | 403 | 404 | 410 => "unauthorized",
            400..=499 => "rejected",
            _ => "provider-error",
        };
        return Err(PluginError::new(
            code,
            format!("Slack answered HTTP {}: {answer}", response.status),
        ));
    }
    host::log_info(&format!("posted to Slack: {first_line}"));
    Ok(Outcome::new(
        format!("posted to Slack: {first_line}"),
        json!({ "posted": message, "status": response.status, "answer": answer }),
    ))
}

/// Replaces each `{{ name }}` with `facts[name]` (strings as they are,
/// numbers and booleans as JSON). Every missing fact is named in one error.
fn fill(template: &str, facts: &BTreeMap<String, Value>) -> Result<String, PluginError> {
    let mut out = String::with_capacity(template.len());
    let mut missing: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(bad(format!(
                "unclosed `{{{{` in template: `{}`",
                &rest[start..]
            )));
        };
        let name = after[..end].trim();
        match facts.get(name) {
            Some(Value::String(s)) => out.push_str(s),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
            Some(_) => {
                return Err(bad(format!(
                    "fact `{name}` must be a string, number or boolean"
                )));
            }
            None => {
                if !missing.iter().any(|m| m == name) {
                    missing.push(name.to_string());
                }
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(bad(format!(
            "the template uses facts that params.facts does not give: {}",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_a_url_names_is_read_from_it() {
        assert_eq!(secret_name("${secret:SLACK_URL}"), Some("SLACK_URL"));
        assert_eq!(secret_name("https://hooks.slack.com/x"), None);
    }

    #[test]
    fn the_webhook_secret_is_an_optional_need() {
        let needs = Notify::needs();
        assert!(needs.iter().any(|n| n.kind == "secret" && n.optional));
        assert!(needs.iter().any(|n| n.kind == "url" && !n.optional));
    }

    fn facts(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn fills_placeholders_with_or_without_spaces() {
        let f = facts(&[("issue", json!("5xx at 12%")), ("hosts", json!(2))]);
        let filled = fill("Issue: {{ issue }} on {{hosts}} hosts", &f);
        assert_eq!(filled.ok().as_deref(), Some("Issue: 5xx at 12% on 2 hosts"));
    }

    #[test]
    fn missing_facts_and_unclosed_braces_are_errors() {
        let f = facts(&[("a", json!("x"))]);
        let err = fill("{{a}} {{b}} {{ c }} {{b}}", &f)
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some("the template uses facts that params.facts does not give: b, c")
        );
        assert!(fill("{{a", &f).is_err());
        assert!(fill("{{a}}", &facts(&[("a", json!([1]))])).is_err());
    }
}
