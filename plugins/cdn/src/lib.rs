//! The `cdn` plugin: Cloudflare zone settings, cache purges and DNS records
//! (phase 4.2 of the seed plan).
//!
//! * `settings`: `GET` then `PATCH /zones/{zone}/settings/{id}` with
//!   `{"value": …}`, one setting at a time (the seed's always_online).
//! * `purge`: `POST /zones/{zone}/purge_cache`.
//! * `dns`: `GET` then `PATCH /zones/{zone}/dns_records/{id}` with the record
//!   as read and the asked fields changed.
//!
//! Credentials: `token = "${secret:NAME}"` (`Authorization: Bearer`), or
//! `email` and `key = "${secret:NAME}"` (`X-Auth-Email`, `X-Auth-Key`);
//! Cloudflare's published API document of 2024-07-31 accepts only the latter
//! for DNS records and cache purges. Settings and DNS actions read the
//! current values first, record them in their data as `before` and emit them
//! as `previous`; the same action given those values undoes the change.
//! Dry-run reads and says what it would change; it never writes.

mod api;
mod dns;
mod settings;

use backout_plugin_sdk::host::HttpRequest;
use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use api::bad;

struct Cdn;

impl Plugin for Cdn {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "cdn",
            env!("CARGO_PKG_VERSION"),
            "Cloudflare: zone settings, cache purges and DNS records, recording what they were.",
        )
        .action(
            "settings",
            "Sets zone settings (params.settings: id to value); records the previous values, which this action given back restores.",
            true,
        )
        .action(
            "purge",
            "Purges the zone's cache: everything, or files, hosts, prefixes or tags.",
            true,
        )
        .action(
            "dns",
            "Changes fields of a DNS record (params.set); records their previous values, which this action given back restores.",
            true,
        )
    }

    fn needs() -> Vec<Need> {
        vec![
            Need::url("", "Cloudflare's API (params.base_url)"),
            Need::secret("", "the API token, or the e-mail and key"),
        ]
    }

    fn schema() -> Schema {
        Schema::new()
            .action::<settings::Params>("settings")
            .action::<PurgeParams>("purge")
            .action::<dns::Params>("dns")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        match step.action.as_str() {
            "settings" => settings::run(&step),
            "purge" => purge(&step),
            "dns" => dns::run(&step),
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(Cdn);

pub(crate) const DEFAULT_BASE: &str = "https://api.cloudflare.com/client/v4";

pub(crate) fn default_base() -> String {
    DEFAULT_BASE.to_string()
}

/// Which zone, and the credentials for it, as every action's params give
/// them.
pub(crate) struct Zone {
    base: String,
    pub(crate) id: String,
    headers: Vec<(String, String)>,
}

impl Zone {
    /// Checks the zone and credentials: a token, or an email and a key.
    pub(crate) fn new(
        base: &str,
        zone: &str,
        token: Option<&str>,
        email: Option<&str>,
        key: Option<&str>,
    ) -> Result<Zone, PluginError> {
        let base = api::api_base(base)?;
        api::resource_id("zone", zone)?;
        let headers = match (token, email, key) {
            (Some(token), None, None) => {
                api::secret_marker("token", token)?;
                vec![("authorization".to_string(), format!("Bearer {token}"))]
            }
            (None, Some(email), Some(key)) => {
                api::secret_marker("key", key)?;
                vec![
                    ("x-auth-email".to_string(), email.to_string()),
                    ("x-auth-key".to_string(), key.to_string()),
                ]
            }
            _ => {
                return Err(bad(
                    "give either `token`, or both `email` and `key` (Cloudflare's two ways to authenticate)",
                ));
            }
        };
        Ok(Zone {
            base,
            id: zone.to_string(),
            headers,
        })
    }

    /// A request to `path` under the zone, with the credentials.
    pub(crate) fn request(&self, method: &str, path: &str) -> HttpRequest {
        let mut request =
            HttpRequest::new(method, format!("{}/zones/{}{path}", self.base, self.id));
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        request
    }

    /// Sends and returns the `result` of Cloudflare's answer; an answer
    /// with `success` other than true is a failure (`rejected`).
    pub(crate) fn send(&self, request: HttpRequest) -> Result<Value, PluginError> {
        let what = format!("{} {}", request.method, request.url);
        let answer = api::send(request)?;
        if answer["success"] != Value::Bool(true) {
            return Err(PluginError::new(
                "rejected",
                format!(
                    "{what}: Cloudflare answered success = {}: {}",
                    answer["success"], answer["errors"]
                ),
            ));
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }
}

/// Parameters of `purge`: exactly one of what to purge.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PurgeParams {
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
    #[serde(default)]
    purge_everything: bool,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// A purge cannot be undone and has nothing to read first: dry-run says
/// what it would purge and calls nothing.
fn purge(step: &Step) -> Result<Outcome, PluginError> {
    let p: PurgeParams = step.params()?;
    let zone = Zone::new(
        &p.api_base,
        &p.zone,
        p.token.as_deref(),
        p.email.as_deref(),
        p.key.as_deref(),
    )?;
    let lists = [
        ("files", &p.files),
        ("hosts", &p.hosts),
        ("prefixes", &p.prefixes),
        ("tags", &p.tags),
    ];
    let given: Vec<&(&str, &Vec<String>)> = lists.iter().filter(|(_, l)| !l.is_empty()).collect();
    let (body, what) = match (p.purge_everything, given.as_slice()) {
        (true, []) => (
            json!({ "purge_everything": true }),
            "everything".to_string(),
        ),
        (false, [(name, list)]) => (
            json!({ *name: list }),
            format!("{} {name}: {}", list.len(), list.join(", ")),
        ),
        _ => {
            return Err(bad(
                "give exactly one of purge_everything = true, files, hosts, prefixes or tags",
            ));
        }
    };
    if step.dry_run {
        return Ok(Outcome::new(
            format!("zone {}: would purge {what}", zone.id),
            json!({ "zone": zone.id, "dry_run": true, "would_purge": body }),
        ));
    }
    let result = zone.send(zone.request("POST", "/purge_cache").json(&body)?)?;
    Ok(Outcome::new(
        format!("zone {}: purged {what}", zone.id),
        json!({ "zone": zone.id, "purged": body, "purge_id": result.get("id") }),
    ))
}
