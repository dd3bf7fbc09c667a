//! The plan file's JSON Schema, derived from the types it is read into
//! ([`crate::model::PlanFile`] and its sections), so the schema, the
//! reference generated from it (docs/plan.md) and the parser cannot drift.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator, json_schema};

use crate::model::PlanFile;

/// The plan file's JSON Schema (draft 2020-12, every section inline).
pub fn plan_file() -> serde_json::Value {
    SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<PlanFile>()
        .to_value()
}

/// A duration as the plan writes it (`x-duration` tells the reference to
/// call it one).
pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "examples": ["90s", "2m", "1h 30m"],
        "x-duration": true
    })
}

/// A free table (a step's or a channel's `params`), checked against the
/// plugin's own schema elsewhere.
pub fn table(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_types_every_section_and_rejects_unknown_keys() {
        let schema = plan_file();
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
        assert_eq!(schema["required"], serde_json::json!(["plan"]));
        let step = &schema["properties"]["phase"]["items"]["properties"]["step"]["items"];
        assert_eq!(step["additionalProperties"], serde_json::json!(false));
        assert_eq!(
            step["properties"]["timeout"]["x-duration"],
            serde_json::json!(true)
        );
        let signal = &schema["properties"]["signals"]["additionalProperties"];
        assert!(signal["properties"]["prometheus"].is_object(), "{signal}");
    }
}
