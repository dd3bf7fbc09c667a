//! TEMPLATE: one action that calls one URL. Replace the names, the params
//! and the action; keep the shape (describe, needs, schema, params, dry-run,
//! data). `cargo test` runs the tests below on the host; `cargo build
//! --release --target wasm32-wasip2` builds the plugin.

use backout_plugin_sdk::host::HttpRequest;
use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

struct Template;

/// Parameters of `ping`: each doc comment is the parameter's line in the
/// plan reference, and `backout plan check` checks every step against them.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The URL to GET (granted to the plugin on the agent).
    url: String,
    /// Time allowed for the request, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
}

fn default_timeout_ms() -> u32 {
    5_000
}

impl Plugin for Template {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            // The package's name: the name agents and plans give the plugin.
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            "What this plugin is for.",
        )
        .action("ping", "GETs `url` and reports its status.", false)
    }

    fn needs() -> Vec<Need> {
        vec![Need::url("", "the URL given in the step's params")]
    }

    fn schema() -> Schema {
        Schema::new().action::<Params>("ping")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        let p: Params = step.params()?;
        match step.action.as_str() {
            "ping" if step.dry_run => Ok(Outcome::new(
                format!("would GET {}", p.url),
                json!({ "url": p.url }),
            )),
            "ping" => {
                let response = HttpRequest::new("GET", &p.url)
                    .timeout_ms(p.timeout_ms)
                    .send()?;
                Ok(Outcome::new(
                    format!("{} answered {}", p.url, response.status),
                    json!({ "status": response.status }),
                ))
            }
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(Template);

#[cfg(test)]
mod tests {
    use super::*;

    fn step(params: &str) -> Step {
        Step {
            id: "run/phase/step/host#1".into(),
            action: "ping".into(),
            params: params.into(),
            dry_run: true,
        }
    }

    #[test]
    fn params_parse_and_unknown_ones_are_refused() {
        let p: Params = step(r#"{"url": "http://x/"}"#)
            .params()
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!((p.url.as_str(), p.timeout_ms), ("http://x/", 5_000));
        let bad = step(r#"{"url": "http://x/", "urll": 1}"#).params::<Params>();
        assert!(bad.is_err_and(|e| e.code == "bad-params"));
    }

    #[test]
    fn the_schema_lists_every_action_of_describe() {
        let schema: serde_json::Value =
            serde_json::from_str(&Template::schema().to_json()).unwrap_or_default();
        for action in Template::describe().actions {
            assert!(
                schema["actions"].get(&action.name).is_some(),
                "{}",
                action.name
            );
        }
        assert_eq!(schema["actions"]["ping"]["required"], json!(["url"]));
    }

    #[test]
    fn a_dry_run_calls_nothing() {
        let outcome = Template::run(step(r#"{"url": "http://x/"}"#))
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(outcome.summary, "would GET http://x/");
    }
}
