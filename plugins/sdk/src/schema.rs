//! Each action's parameters, as JSON Schema derived from the Rust types the
//! plugin parses them into (the `schema` export of `plugin-with-schema`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

/// The parameters of a plugin's actions: what `backout plan check` checks a
/// plan's steps against, and what the plan reference is generated from.
///
/// Derive [`JsonSchema`](crate::JsonSchema) on the params struct beside
/// `Deserialize`, and name it here for each action that parses it:
///
/// ```ignore
/// #[derive(Deserialize, JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct CheckParams {
///     /// URL to GET (one line of doc: it becomes the reference's text).
///     url: String,
///     /// Fail the step when the service is down (default: only report it).
///     #[serde(default)]
///     require_healthy: bool,
///     /// An API token: must be a `${secret:NAME}` reference.
///     #[schemars(extend("x-secret" = true))]
///     token: String,
/// }
///
/// fn schema() -> Schema {
///     Schema::new().action::<CheckParams>("check").action_without_params("status")
/// }
/// ```
///
/// What serde reads is what the schema says: field names and renames,
/// `Option` or `#[serde(default)]` (optional, with its default), doc comments
/// (the one-line description), `deny_unknown_fields` (no other keys).
#[derive(Debug, Clone, Default)]
pub struct Schema {
    actions: BTreeMap<String, Value>,
}

impl Schema {
    /// No action described yet.
    pub fn new() -> Self {
        Schema::default()
    }

    /// Describes `action`'s parameters by the type `P` the plugin parses
    /// them into (with `Step::params::<P>()`).
    pub fn action<P: JsonSchema>(mut self, action: &str) -> Self {
        let schema = SchemaSettings::draft2020_12()
            .with(|s| s.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<P>()
            .to_value();
        self.actions.insert(action.to_string(), schema);
        self
    }

    /// Describes an action that takes no parameters (any key is an error).
    pub fn action_without_params(mut self, action: &str) -> Self {
        self.actions.insert(
            action.to_string(),
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        );
        self
    }

    /// The JSON text the `schema` export returns:
    /// `{"actions": {"<action>": <JSON Schema>}}`.
    pub fn to_json(&self) -> String {
        json!({ "actions": self.actions }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Parameters of a test action.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        /// Where to go.
        url: String,
        /// How many times.
        #[serde(default = "three")]
        retries: u32,
        /// The token.
        #[schemars(extend("x-secret" = true))]
        token: Option<String>,
    }

    fn three() -> u32 {
        3
    }

    #[test]
    fn the_schema_says_what_serde_reads() {
        let text = Schema::new()
            .action::<Params>("go")
            .action_without_params("stop")
            .to_json();
        let doc: Value = serde_json::from_str(&text).unwrap_or_default();
        let go = &doc["actions"]["go"];
        assert_eq!(go["required"], json!(["url"]));
        assert_eq!(go["additionalProperties"], json!(false));
        assert_eq!(go["properties"]["url"]["type"], json!("string"));
        assert_eq!(
            go["properties"]["url"]["description"],
            json!("Where to go.")
        );
        assert_eq!(go["properties"]["retries"]["default"], json!(3));
        assert_eq!(go["properties"]["token"]["x-secret"], json!(true));
        assert_eq!(doc["actions"]["stop"]["properties"], json!({}));
    }
}
