//! `maintenance`: puts a site into maintenance mode during a rollback by
//! writing a flag file that the web server checks (nginx: `if (-f
//! /var/www/maintenance.flag) { return 503; }`), and takes it out again.
//!
//! A complete third-party plugin in one file: it describes its actions,
//! declares what it needs from the agent's grants, validates its
//! parameters, honours dry-run, and reports what it changed.

use backout_plugin_sdk::host::{self, HostError};
use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

struct Maintenance;

/// Parameters: where the flag lives and what it says.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Absolute path of the flag file, under a `write` grant.
    flag: String,
    /// Text written into the flag (shown by some servers).
    #[serde(default = "default_message")]
    message: String,
}

fn default_message() -> String {
    "Back soon: we are rolling back a release.".into()
}

impl Plugin for Maintenance {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "maintenance",
            env!("CARGO_PKG_VERSION"),
            "Maintenance mode through a flag file the web server checks.",
        )
        .action("on", "Writes the flag file.", true)
        .action(
            "off",
            "Empties the flag file (the server treats an empty flag as off).",
            true,
        )
        .action("status", "Says whether the flag is set.", false)
    }

    fn needs() -> Vec<Need> {
        vec![
            Need::read("", "the maintenance flag file, to say what it was before"),
            Need::write("", "the maintenance flag file"),
        ]
    }

    fn schema() -> Schema {
        ["status", "on", "off"]
            .into_iter()
            .fold(Schema::new(), |s, action| s.action::<Params>(action))
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        let p: Params = step.params()?;
        if !p.flag.starts_with('/') {
            return Err(PluginError::new(
                "bad-params",
                "`flag` must be an absolute path",
            ));
        }
        let before = is_on(&p.flag)?;
        match step.action.as_str() {
            "status" => Ok(Outcome::new(
                if before {
                    "maintenance is on"
                } else {
                    "maintenance is off"
                },
                json!({ "on": before }),
            )),
            "on" | "off" => {
                let on = step.action == "on";
                if step.dry_run {
                    return Ok(Outcome::new(
                        format!(
                            "would turn maintenance {} (it is {})",
                            word(on),
                            word(before)
                        ),
                        json!({ "on": before, "would_be": on }),
                    ));
                }
                let contents = if on { p.message.as_bytes() } else { &[][..] };
                host::write_file(&p.flag, contents, false)?;
                host::log_info(&format!("maintenance {} ({})", word(on), p.flag));
                Ok(Outcome::new(
                    format!("maintenance {} (was {})", word(on), word(before)),
                    json!({ "before": before, "after": on, "flag": p.flag }),
                ))
            }
            _ => Err(step.unknown_action()),
        }
    }
}

fn word(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// A flag file that exists and is not empty means maintenance is on.
fn is_on(flag: &str) -> Result<bool, PluginError> {
    match host::read_file(flag, 4096, false) {
        Ok(bytes) => Ok(!bytes.is_empty()),
        Err(HostError::Failed(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

export_plugin!(Maintenance);
