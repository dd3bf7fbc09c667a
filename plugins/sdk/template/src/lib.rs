//! TEMPLATE: one action that calls one URL. Replace the names, the params
//! and the action; keep the shape (describe, needs, params, dry-run, data).

use backout_plugin_sdk::host::HttpRequest;
use backout_plugin_sdk::{Need, Outcome, Plugin, PluginError, PluginInfo, Step, export_plugin};
use serde::Deserialize;
use schemars::JsonSchema;
use serde_json::json;

struct Template;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    url: String,
}

impl Plugin for Template {
    fn describe() -> PluginInfo {
        PluginInfo::new("template", env!("CARGO_PKG_VERSION"), "What this plugin is for.")
            .action("ping", "GETs `url` and reports its status.", false)
    }

    fn needs() -> Vec<Need> {
        vec![Need::url("", "the URL given in the step's params")]
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        let p: Params = step.params()?;
        match step.action.as_str() {
            "ping" => {
                let response = HttpRequest::new("GET", &p.url).timeout_ms(5_000).send()?;
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
