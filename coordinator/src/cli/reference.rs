//! The plan reference, generated from what the built-in plugins declare:
//! `plugins/builtin.json` (what `plan check` and `serve` check against when
//! given no plugin files), `docs/plugins/<name>.md`, and the plan file's JSON
//! Schema (`backout plan schema`). `backout plan reference` regenerates the
//! files; a test fails when they are stale.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::BadInput;
use super::catalog::{self, Described};

/// The built-in plugins (scripts/build-plugins.sh builds them; `testbed` is
/// the tests' own and not documented).
pub const BUILTIN: &[&str] = &[
    "app",
    "cdn",
    "db",
    "flags",
    "health",
    "notify",
    "statuspage",
    "webhook",
];

/// Describes the built-in plugin files of `dir`.
pub fn describe_builtin(dir: &Path) -> Result<BTreeMap<String, Described>, BadInput> {
    let mut out = BTreeMap::new();
    for name in BUILTIN {
        let path = dir.join(format!("{name}.wasm"));
        let (described, _) = catalog::describe_file(name, &path)?;
        out.insert((*name).to_string(), described);
    }
    Ok(out)
}

/// Every generated file, by its path from the repository's root.
pub fn generate(plugins: &BTreeMap<String, Described>) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let json = serde_json::to_string_pretty(plugins).unwrap_or_default();
    files.insert("plugins/builtin.json".to_string(), format!("{json}\n"));
    let mut index = String::from(
        "# Built-in plugins\n\nGenerated from the plugins' own `describe` and `schema` by `backout plan reference`; do not edit.\n\n| plugin | what it does |\n| --- | --- |\n",
    );
    for (name, described) in plugins {
        index.push_str(&format!(
            "| [`{name}`]({name}.md) | {} |\n",
            cell(&described.description)
        ));
        files.insert(
            format!("docs/plugins/{name}.md"),
            plugin_markdown(name, described),
        );
    }
    files.insert("docs/plugins/README.md".to_string(), index);
    files.insert("docs/plan.md".to_string(), plan_markdown());
    files
}

/// Writes the generated files under `root`.
pub fn write(plugins_dir: &Path, root: &Path) -> Result<(), BadInput> {
    let plugins = describe_builtin(plugins_dir)?;
    for (rel, text) in generate(&plugins) {
        let path = root.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| BadInput(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

fn cell(text: &str) -> String {
    backout_plan::check::first_line(text).replace('|', "\\|")
}

/// A type in a few words: `string`, `array of object`, `integer or null`.
fn type_text(schema: &Value) -> String {
    if schema.get("x-duration").and_then(Value::as_bool) == Some(true) {
        return "duration".into();
    }
    if let Some(value) = schema.get("const") {
        return value.to_string();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    let types: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let types: Vec<String> = types.into_iter().filter(|t| t != "null").collect();
    if types.as_slice() == ["array"] {
        return match schema.get("items") {
            Some(items) => format!("array of {}", type_text(items)),
            None => "array".into(),
        };
    }
    if types.as_slice() == ["object"]
        && let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object())
    {
        return format!("table of {}", type_text(values));
    }
    if !types.is_empty() {
        return types.join(" or ");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            return branches
                .iter()
                .map(type_text)
                .filter(|t| t != "null")
                .collect::<Vec<_>>()
                .join(" or ");
        }
    }
    "any".into()
}

/// The object schema inside `schema` (itself, an array's items, a nullable's branch).
fn object_within(schema: &Value) -> Option<&Value> {
    if schema.get("properties").is_some() {
        return Some(schema);
    }
    if let Some(items) = schema.get("items") {
        return object_within(items);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        return object_within(values);
    }
    ["anyOf", "oneOf"].iter().find_map(|key| {
        schema
            .get(*key)
            .and_then(Value::as_array)
            .and_then(|bs| bs.iter().find_map(object_within))
    })
}

/// What an action's `x-needs-backup` asks of a plan, said for people.
fn backup_sentence(plugin: &str, need: &Value) -> String {
    let action = need
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("backup");
    let same: Vec<String> = need
        .get("same")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(mine, theirs)| {
                    Some(if mine == theirs.as_str()? {
                        format!("`{mine}`")
                    } else {
                        format!("`{mine}` (the backup's `{}`)", theirs.as_str()?)
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "Changes data: it runs only after a `{plugin}.{action}` step on the same host in the same run, with the same {} (`plan check`, `serve` and `rollback start` refuse a plan or run that orders it otherwise; the plugin re-verifies that backup when it runs).\n\n",
        same.join(" and ")
    )
}

fn parameter_rows(schema: &Value, prefix: &str, rows: &mut String) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, property) in properties {
        let default = property
            .get("default")
            .filter(|d| !d.is_null())
            .map(|d| format!("`{d}`"))
            .unwrap_or_default();
        let secret = if property.get("x-secret").and_then(Value::as_bool) == Some(true) {
            "secret"
        } else {
            ""
        };
        rows.push_str(&format!(
            "| `{prefix}{name}` | {} | {} | {} | {secret} | {} |\n",
            type_text(property),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            default,
            cell(
                property
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ),
        ));
        if let Some(inner) = object_within(property) {
            let nested = if property.get("items").is_some() {
                format!("{prefix}{name}[].")
            } else if property
                .get("additionalProperties")
                .is_some_and(Value::is_object)
            {
                format!("{prefix}{name}.NAME.")
            } else {
                format!("{prefix}{name}.")
            };
            parameter_rows(inner, &nested, rows);
        }
    }
}

/// `docs/plugins/<name>.md`.
pub fn plugin_markdown(name: &str, plugin: &Described) -> String {
    let mut md = format!(
        "# Plugin `{name}`\n\nGenerated from the plugin's own `describe` and `schema` by `backout plan reference`; do not edit.\n\n{}\n\nVersion {}.\n",
        plugin.description, plugin.version
    );
    if !plugin.needs.is_empty() {
        md.push_str(
            "\n## Needs\n\nWhat the agent's `[plugin.grants]` must give it. Without a required one the agent disables the plugin and says why; without an optional one the plugin serves and does without.\n\n| kind | what | why | required |\n| --- | --- | --- | --- |\n",
        );
        for need in &plugin.needs {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                need.kind,
                if need.value.is_empty() {
                    "any".to_string()
                } else {
                    format!("`{}`", cell(&need.value))
                },
                cell(&need.why),
                if need.optional {
                    "no (optional)"
                } else {
                    "yes"
                }
            ));
        }
    }
    for action in &plugin.actions {
        md.push_str(&format!(
            "\n## `{}`\n\n{} ({}).\n\n",
            action.name,
            action.description.trim_end_matches('.'),
            if action.changes_state {
                "changes state; honours dry-run"
            } else {
                "changes nothing"
            }
        ));
        match plugin
            .schema
            .get("actions")
            .and_then(|a| a.get(&action.name))
        {
            Some(schema) => {
                if let Some(need) = schema.get("x-needs-backup") {
                    md.push_str(&backup_sentence(name, need));
                }
                let mut rows = String::new();
                parameter_rows(schema, "", &mut rows);
                if rows.is_empty() {
                    md.push_str("No parameters.\n");
                } else {
                    md.push_str(
                        "| parameter | type | required | default | secret | description |\n| --- | --- | --- | --- | --- | --- |\n",
                    );
                    md.push_str(&rows);
                }
            }
            None => md.push_str("Parameters not declared.\n"),
        }
    }
    md
}

/// The plan file's JSON Schema: its sections as the plan crate's types
/// derive it (`backout_plan::schema`), each step's `plugin` and `action`
/// among the known ones, and its `params` by the plugin's own schema for
/// that action.
pub fn plan_schema(plugins: &BTreeMap<String, Described>) -> Value {
    let mut step_rules = Vec::new();
    for (name, plugin) in plugins {
        let actions: Vec<&str> = plugin.actions.iter().map(|a| a.name.as_str()).collect();
        step_rules.push(json!({
            "if": {"properties": {"plugin": {"const": name}}, "required": ["plugin"]},
            "then": {"properties": {"action": {"enum": actions}}}
        }));
        if let Some(schemas) = plugin.schema.get("actions").and_then(Value::as_object) {
            for (action, schema) in schemas {
                let mut params = schema.clone();
                if let Some(obj) = params.as_object_mut() {
                    obj.remove("$schema");
                    obj.remove("title");
                }
                step_rules.push(json!({
                    "if": {"properties": {"plugin": {"const": name}, "action": {"const": action}}, "required": ["plugin", "action"]},
                    "then": {"properties": {"params": params}}
                }));
            }
        }
    }
    let mut schema = backout_plan::schema::plan_file();
    schema["title"] = json!("Backout rollback plan");
    schema["description"] = json!(
        "A Backout plan file (TOML). Generated by `backout plan schema`; `backout plan check` checks what a schema cannot (references, conditions, durations)."
    );
    let step = &mut schema["properties"]["phase"]["items"]["properties"]["step"]["items"];
    step["properties"]["plugin"]["examples"] = json!(plugins.keys().collect::<Vec<_>>());
    step["allOf"] = Value::Array(step_rules);
    schema
}

/// A plan that starts as written, shown (and loaded by a test) in docs/plan.md.
const PLAN_EXAMPLE: &str = include_str!("plan-example.toml");

/// `docs/plan.md`: every section and field of the plan file, from the same
/// schema `backout plan schema` prints.
pub fn plan_markdown() -> String {
    let schema = backout_plan::schema::plan_file();
    let mut md = String::from(
        "# The plan file\n\nGenerated from the plan's own types by `backout plan reference` (the same source as `backout plan schema`); do not edit.\n\n\
         A plan is a TOML file. `backout plan check PLAN` checks it (every error names the file, line and field); `backout plan schema` prints its JSON Schema for an editor. Durations are written `\"90s\"`, `\"2m\"` or `\"1h 30m\"`. Each plugin's parameters are in [plugins/](plugins/README.md).\n\n## Example\n\n<!-- example: plan -->\n```toml\n",
    );
    md.push_str(PLAN_EXAMPLE.trim_end());
    md.push_str("\n```\n");
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(sections) = schema.get("properties").and_then(Value::as_object) else {
        return md;
    };
    for (name, section) in sections {
        md.push_str(&format!(
            "\n## `{name}`{}\n\n{}\n",
            if required.contains(&name.as_str()) {
                " (required)"
            } else {
                ""
            },
            section
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
        ));
        let mut rows = String::new();
        if let Some(inner) = object_within(section) {
            parameter_rows(inner, "", &mut rows);
        }
        if rows.is_empty() {
            md.push_str(&format!("\nA {}.\n", type_text(section)));
        } else {
            md.push_str(
                "\n| field | type | required | default | secret | description |\n| --- | --- | --- | --- | --- | --- |\n",
            );
            md.push_str(&rows);
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built plugins (scripts/build-plugins.sh, run by scripts/test.sh
    /// before the tests).
    fn built() -> BTreeMap<String, Described> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
        match describe_builtin(&dir) {
            Ok(plugins) => plugins,
            Err(e) => panic!("{e}: build the plugins first (scripts/build-plugins.sh)"),
        }
    }

    #[test]
    fn the_generated_reference_is_up_to_date() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut stale = Vec::new();
        for (rel, text) in generate(&built()) {
            let on_disk = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
            if on_disk != text {
                stale.push(rel);
            }
        }
        assert!(
            stale.is_empty(),
            "stale: {stale:?}; regenerate with `cargo run -p backout -- plan reference --plugins target/plugins`"
        );
    }

    #[test]
    fn the_reference_says_what_health_check_does_without_require_healthy() {
        let md = plugin_markdown("health", &catalog::builtin()["health"]);
        let line = md
            .lines()
            .find(|l| l.starts_with("| `require_healthy` |"))
            .unwrap_or_default();
        assert!(line.contains("SUCCEEDS even when a check is down"), "{md}");
        assert!(md.contains("| `checks[].url` | string | yes |"), "{md}");
    }

    #[test]
    fn the_plan_schema_constrains_each_plugins_params() {
        let schema = plan_schema(&catalog::builtin());
        let rules = &schema["properties"]["phase"]["items"]["properties"]["step"]["items"]["allOf"];
        let health_check = rules
            .as_array()
            .and_then(|r| {
                r.iter().find(|rule| {
                    rule["if"]["properties"]["plugin"]["const"] == "health"
                        && rule["if"]["properties"]["action"]["const"] == "check"
                })
            })
            .cloned()
            .unwrap_or_default();
        let params = &health_check["then"]["properties"]["params"];
        assert_eq!(params["additionalProperties"], json!(false));
        assert_eq!(
            params["properties"]["require_healthy"]["type"],
            json!("boolean")
        );
    }

    #[test]
    fn the_plan_example_passes_plan_check_against_the_builtin_plugins() {
        let mut plugins = BTreeMap::new();
        for (name, described) in catalog::builtin() {
            let spec = described
                .spec("built in".into())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            plugins.insert(name, spec);
        }
        let catalog = backout_plan::check::Catalog {
            plugins,
            complete: true,
            checks: None,
        };
        let findings = backout_plan::check::check(PLAN_EXAMPLE, &catalog);
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn the_plan_reference_lists_every_section_and_step_field() {
        let md = plan_markdown();
        for section in [
            "## `plan` (required)",
            "## `phase`",
            "## `signals`",
            "## `trigger`",
        ] {
            assert!(md.contains(section), "{section} missing:\n{md}");
        }
        assert!(
            md.contains("| `step[].time_limit` |") || md.contains("| `time_limit` | duration |"),
            "{md}"
        );
        assert!(md.contains("| `step[].plugin` | string | yes |"), "{md}");
        assert!(md.contains("| `prometheus.query` | string | yes |"), "{md}");
    }

    /// Every ```toml block of every page under docs/ and of the README,
    /// after the `<!-- example: KIND -->` line that says what it is (KIND:
    /// `coordinator`, `agent`, `plan`; `coordinator-part`, `agent-part`
    /// for an excerpt, loaded within a minimal file; several kinds may be
    /// listed, separated by spaces).
    fn examples() -> Vec<(String, String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let docs = root.join("docs");
        let mut pages = vec![root.join("README.md")];
        let mut dirs = vec![docs];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "md") {
                    pages.push(path);
                }
            }
        }
        pages.sort();
        let mut out = Vec::new();
        for page in pages {
            let text = std::fs::read_to_string(&page).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if line.trim() != "```toml" {
                    continue;
                }
                let kind = i
                    .checked_sub(1)
                    .and_then(|j| lines[j].trim().strip_prefix("<!-- example: "))
                    .and_then(|k| k.strip_suffix(" -->"))
                    .unwrap_or("untagged")
                    .to_string();
                let body: Vec<&str> = lines[i + 1..]
                    .iter()
                    .take_while(|l| l.trim() != "```")
                    .copied()
                    .collect();
                out.push((
                    format!("{}:{}", page.display(), i + 1),
                    kind,
                    body.join("\n"),
                ));
            }
        }
        out
    }

    /// The keys a table of a configuration file accepts, as serde lists
    /// them when it meets one it does not know.
    fn keys_of(table: &str, load: impl Fn(&Path) -> Option<String>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("keys.toml");
        std::fs::write(&file, format!("{table}\nzz_not_a_key = 1\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        let error = load(&file).unwrap_or_default();
        let (_, expected) = error
            .split_once("expected ")
            .unwrap_or_else(|| panic!("{table}: {error}"));
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// Whether docs/config.md names `key`: in backticks, as a table
    /// (`[key]`, `[[key]]`, `[parent.key]`), or as `key =` in an example
    /// (commented out or inline too).
    fn documented(doc: &str, key: &str) -> bool {
        doc.contains(&format!("`{key}`"))
            || doc.contains(&format!("[{key}]"))
            || doc.contains(&format!(".{key}]"))
            || doc.lines().any(|line| {
                let line = line.trim_start_matches(|c: char| c == '#' || c.is_whitespace());
                line.starts_with(&format!("{key} ="))
                    || line.contains(&format!(", {key} ="))
                    || line.contains(&format!("{{ {key} ="))
            })
    }

    #[test]
    fn every_key_of_both_files_is_in_docs_config_md() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let coordinator = |f: &Path| {
            crate::config::CoordinatorConfig::load(f)
                .err()
                .map(|e| e.to_string())
        };
        let agent = |f: &Path| {
            backout_agent::config::AgentConfig::load(f)
                .err()
                .map(|e| e.to_string())
        };
        let mut missing = Vec::new();
        for table in [
            "",
            "[tls]",
            "[smtp]",
            "[journal]",
            "[plugins.x]",
            "[assess]",
            "[[assess.check]]",
            "[assess.log]",
            "[[agent]]",
            "[metrics]",
            "[metrics.tls]",
            "[otlp]",
        ] {
            for key in keys_of(table, coordinator) {
                if !documented(&doc, &key) {
                    missing.push(format!("coordinator.toml {table} {key}"));
                }
            }
        }
        for table in [
            "",
            "[reconnect]",
            "[limits]",
            "[[plugin]]",
            "[[plugin]]\n[plugin.grants]",
            "[[approval_policy]]",
            "[metrics]",
            "[otlp]",
        ] {
            for key in keys_of(table, agent) {
                if !documented(&doc, &key) {
                    missing.push(format!("agent.toml {table} {key}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "docs/config.md does not name: {missing:#?}"
        );
    }

    #[test]
    fn every_example_in_the_docs_loads() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // The coordinator's example names `plan = "plan.toml"`, which it loads.
        std::fs::write(dir.path().join("plan.toml"), "[plan]\nname = \"example\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        // The PostgreSQL journal's example names a password file and a CA
        // file, which it reads (the CA as a PEM certificate bundle).
        // (only its owner may read it: a shared one is refused).
        let pass = dir.path().join("pg.pass");
        std::fs::write(&pass, "secret\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("pg-ca.pem"),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let examples = examples();
        assert!(examples.iter().any(|(_, kind, _)| kind == "coordinator"));
        assert!(examples.iter().any(|(_, kind, _)| kind == "agent"));
        assert!(
            examples.iter().any(|(at, _, _)| at.contains("README.md")),
            "the README's examples are loaded too"
        );
        // An excerpt is loaded between the top-level keys it does not give
        // and the `[tls]` table (so its own tables, if any, stay its own).
        const COORDINATOR_TOP: &str = "listen = \"127.0.0.1:7443\"\ncommand_key = \"k\"\n";
        const AGENT_TOP: &str = "command_key = \"k.pub\"\nstate_dir = \"state\"\n";
        const TLS: &str = "\n[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n";
        for (at, kinds, text) in examples {
            for kind in kinds.split_whitespace() {
                let file = dir.path().join("example.toml");
                let whole = match kind {
                    "coordinator-part" => format!("{COORDINATOR_TOP}{text}{TLS}"),
                    "agent-part" if text.contains("coordinator =") => {
                        format!("{AGENT_TOP}{text}{TLS}")
                    }
                    "agent-part" => {
                        format!("coordinator = \"c1:7443\"\n{AGENT_TOP}{text}{TLS}")
                    }
                    _ => text.clone(),
                };
                std::fs::write(&file, &whole).unwrap_or_else(|e| panic!("{e}"));
                let loaded = match kind {
                    "coordinator" | "coordinator-part" => {
                        crate::config::CoordinatorConfig::load(&file).map(drop)
                    }
                    "agent" | "agent-part" => {
                        backout_agent::config::AgentConfig::load(&file).map(drop)
                    }
                    "plan" => backout_plan::model::Plan::parse(&file, &text).map(drop),
                    other => panic!(
                        "{at}: a toml block must follow `<!-- example: coordinator|agent|plan|coordinator-part|agent-part -->`, not {other}"
                    ),
                };
                if let Err(e) = loaded {
                    panic!("{at}: the {kind} example does not load: {e}");
                }
            }
        }
    }
}
