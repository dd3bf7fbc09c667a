//! What breaks at run time that the plan's own rules cannot see: a step
//! naming a plugin or an action nobody offers, parameters the plugin does not
//! take, lacks or cannot read, a probe naming a check nobody defines, and a
//! step that changes data (its action's schema says `x-needs-backup`) that
//! can run before the verified backup it needs.
//!
//! Pure: given the plan's text, what the plugins say about themselves (their
//! actions and each action's parameter schema, the JSON Schema the SDK
//! derives from the params type) and the checks the coordinator defines, it
//! returns findings that point at the plan file's own line, column and field
//! (`phase[1].step[0].params.require_healthy`), from toml's spans.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What a plugin says about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginSpec {
    /// The actions its `describe` lists.
    pub actions: Vec<String>,
    /// Each action's parameters (JSON Schema), as its `schema` export says;
    /// an action missing here declares none.
    pub params: BTreeMap<String, Value>,
    /// Where it came from, for messages (`plugins/health.wasm`, `agent app-1`).
    pub source: String,
}

impl PluginSpec {
    /// Reads the `schema` export's JSON (`{"actions": {...}}`; empty: none
    /// declared) beside the action names of `describe`.
    pub fn new(
        actions: Vec<String>,
        schema_json: &str,
        source: impl Into<String>,
    ) -> Result<PluginSpec, String> {
        let mut params = BTreeMap::new();
        if !schema_json.trim().is_empty() {
            let doc: Value = serde_json::from_str(schema_json)
                .map_err(|e| format!("its schema is not JSON: {e}"))?;
            let Some(declared) = doc.get("actions").and_then(Value::as_object) else {
                return Err("its schema has no `actions` object".into());
            };
            for (action, schema) in declared {
                params.insert(action.clone(), schema.clone());
            }
        }
        Ok(PluginSpec {
            actions,
            params,
            source: source.into(),
        })
    }
}

/// What the plan is checked against.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub plugins: BTreeMap<String, PluginSpec>,
    /// Whether `plugins` is every plugin the plan may use (files or agents
    /// were given). When it is not (only the built-in plugins are known), a
    /// step naming another plugin is a warning unless its name is a likely
    /// misspelling of a known one.
    pub complete: bool,
    /// The checks a probe may name (the coordinator's `[[assess.check]]`
    /// names, and `error-log` with `[assess.log]`); `None`: not known, not
    /// checked.
    pub checks: Option<BTreeSet<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing found, at a place in the plan file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The field's path, as the plan's other errors name it.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Finding {
    /// `LINE:COLUMN: error: field `F`: MESSAGE` (the caller puts the path first).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {severity}: field `{}`: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

/// Checks the plan's text against `catalog`. Text that is not TOML gives no
/// findings: the plan's own loading reports it.
pub fn check(text: &str, catalog: &Catalog) -> Vec<Finding> {
    let Ok(doc) = DeTable::parse(text) else {
        return Vec::new();
    };
    let mut out = Findings {
        text,
        found: Vec::new(),
    };
    let root = doc.get_ref();
    if let Some(phases) = root.get("phase").and_then(|p| p.get_ref().as_array()) {
        for (i, phase) in phases.iter().enumerate() {
            let Some(steps) = phase
                .get_ref()
                .as_table()
                .and_then(|t| t.get("step"))
                .and_then(|s| s.get_ref().as_array())
            else {
                continue;
            };
            for (j, step) in steps.iter().enumerate() {
                check_step(&mut out, catalog, &format!("phase[{i}].step[{j}]"), step);
            }
        }
        check_backups(&mut out, catalog, phases);
    }
    if let (Some(checks), Some(signals)) = (
        &catalog.checks,
        root.get("signals").and_then(|s| s.get_ref().as_table()),
    ) {
        for (name, signal) in signals.iter() {
            let Some(check) = signal
                .get_ref()
                .as_table()
                .and_then(|s| s.get("probe"))
                .and_then(|p| p.get_ref().as_table())
                .and_then(|p| p.get("check"))
            else {
                continue;
            };
            let Some(named) = check.get_ref().as_str() else {
                continue;
            };
            if !checks.contains(named) {
                let defined = if checks.is_empty() {
                    "it defines none".to_string()
                } else {
                    format!(
                        "it defines: {}",
                        checks.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                };
                out.push(
                    Severity::Error,
                    check.span(),
                    format!("signals.{}.probe.check", name.get_ref()),
                    format!(
                        "no check `{named}` in the coordinator's configuration ([[assess.check]] name, or `error-log` with [assess.log]); {defined}{}",
                        suggest(named, checks.iter().map(String::as_str))
                    ),
                );
            }
        }
    }
    out.found.sort_by_key(|f| (f.line, f.column));
    out.found
}

/// The full path (`phase[0].step[1].retries`) of the key written on
/// `line` (1-based) at or before `column`, for an error the TOML parser
/// names by its last key only. `None` when no key starts on that line.
pub fn field_at(text: &str, line: usize, column: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    let mut keys = Vec::new();
    key_paths(doc.get_ref(), "", &mut keys);
    keys.into_iter()
        .filter(|(_, span)| {
            let (l, c) = line_column(text, span.start);
            l == line && c <= column.max(1)
        })
        .max_by_key(|(_, span)| span.start)
        .map(|(path, _)| path)
}

/// The first top-level key of the plan text that is not a section of the
/// plan file (`[[phases]]`), as (line, column, key, message). Checked before
/// the file is read into its types, whose error for a misspelt section can
/// name another one.
pub fn unknown_section(text: &str) -> Option<(usize, usize, String, String)> {
    let doc = DeTable::parse(text).ok()?;
    let schema = crate::schema::plan_file();
    let sections: Vec<&str> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let (key, _) = doc
        .get_ref()
        .iter()
        .filter(|(key, _)| !sections.contains(&key.get_ref().as_ref()))
        .min_by_key(|(key, _)| key.span().start)?;
    let (line, column) = line_column(text, key.span().start);
    let name = key.get_ref().to_string();
    let message = format!(
        "unknown section `{name}`{}; the sections are: {}",
        suggest(&name, sections.iter().copied()),
        sections.join(", ")
    );
    Some((line, column, name, message))
}

/// Every key of `table` with its path and the span where it is written.
fn key_paths(table: &DeTable<'_>, prefix: &str, out: &mut Vec<(String, Range<usize>)>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.push((path.clone(), key.span()));
        value_paths(value.get_ref(), &path, out);
    }
}

fn value_paths(value: &DeValue<'_>, path: &str, out: &mut Vec<(String, Range<usize>)>) {
    match value {
        DeValue::Table(table) => key_paths(table, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                value_paths(item.get_ref(), &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

struct Findings<'t> {
    text: &'t str,
    found: Vec<Finding>,
}

impl Findings<'_> {
    fn push(&mut self, severity: Severity, span: Range<usize>, field: String, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.found.push(Finding {
            severity,
            line,
            column,
            field,
            message,
        });
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn check_step(out: &mut Findings<'_>, catalog: &Catalog, at: &str, step: &Spanned<DeValue<'_>>) {
    let Some(table) = step.get_ref().as_table() else {
        return;
    };
    let string = |key: &str| {
        table
            .get(key)
            .and_then(|v| v.get_ref().as_str().map(|s| (s.to_string(), v.span())))
    };
    let (Some((plugin, plugin_span)), Some((action, action_span))) =
        (string("plugin"), string("action"))
    else {
        return; // the plan's own loading names a missing plugin or action
    };
    let Some(spec) = catalog.plugins.get(&plugin) else {
        let known = catalog.plugins.keys().map(String::as_str);
        let hint = suggest(&plugin, known.clone());
        let severity = if catalog.complete || !hint.is_empty() {
            Severity::Error
        } else {
            Severity::Warning
        };
        let message = if catalog.complete {
            format!(
                "no plugin `{plugin}` here (known: {}){hint}",
                known.collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "`{plugin}` is not a built-in plugin{hint}; its steps are not checked (give --plugins DIR, --config or --against-fleet to check them)"
            )
        };
        out.push(severity, plugin_span, format!("{at}.plugin"), message);
        return;
    };
    if !spec.actions.contains(&action) {
        out.push(
            Severity::Error,
            action_span,
            format!("{at}.action"),
            format!(
                "plugin `{plugin}` ({}) has no action `{action}`; it offers: {}{}",
                spec.source,
                spec.actions.join(", "),
                suggest(&action, spec.actions.iter().map(String::as_str))
            ),
        );
        return;
    }
    let Some(schema) = spec.params.get(&action) else {
        out.push(
            Severity::Warning,
            action_span,
            format!("{at}.action"),
            format!(
                "plugin `{plugin}` ({}) declares no parameters for `{action}` (built without the SDK's schema); its params are not checked",
                spec.source
            ),
        );
        return;
    };
    retry_warning(out, table, schema, &plugin, &action, at);
    match table.get("params") {
        Some(params) => check_value(out, schema, params, &format!("{at}.params")),
        None => {
            // No params: the same as an empty table, so required ones are missing.
            let empty = Spanned::new(step.span(), DeValue::Table(DeTable::new()));
            check_value(out, schema, &empty, &format!("{at}.params"));
        }
    }
}

/// One step, as the backup check sees it.
struct StepAt<'a> {
    phase: usize,
    index: usize,
    plugin: &'a str,
    action: &'a str,
    on: Option<&'a str>,
    params: Option<&'a DeTable<'a>>,
    action_span: Range<usize>,
}

/// A step whose action declares `x-needs-backup` (the `db` plugin's
/// `migrate-down`: `{"action": "backup", "same": {"db": "db", "backup_dir":
/// "dir"}}`) must have, before it in the same run, a step of the same
/// plugin running that action on the same host with the same values: an
/// earlier step of its own phase, or a step of a phase it runs `after`
/// (directly or through others). Otherwise it can change data with no
/// verified backup to go back to: an error at its `action`.
fn check_backups(out: &mut Findings<'_>, catalog: &Catalog, phases: &[Spanned<DeValue<'_>>]) {
    let str_of = |t: &DeTable<'_>, key: &str| -> Option<String> {
        t.get(key)
            .and_then(|v| v.get_ref().as_str())
            .map(str::to_string)
    };
    let mut ids: Vec<Option<String>> = Vec::new();
    let mut after: Vec<Vec<String>> = Vec::new();
    let mut steps: Vec<StepAt<'_>> = Vec::new();
    for (i, phase) in phases.iter().enumerate() {
        let table = phase.get_ref().as_table();
        ids.push(table.and_then(|t| str_of(t, "id")));
        after.push(
            table
                .and_then(|t| t.get("after"))
                .and_then(|a| a.get_ref().as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.get_ref().as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        );
        let Some(list) = table
            .and_then(|t| t.get("step"))
            .and_then(|s| s.get_ref().as_array())
        else {
            continue;
        };
        for (j, step) in list.iter().enumerate() {
            let Some(t) = step.get_ref().as_table() else {
                continue;
            };
            let (Some(plugin), Some(action)) = (t.get("plugin"), t.get("action")) else {
                continue;
            };
            let (Some(plugin_name), Some(action_name)) =
                (plugin.get_ref().as_str(), action.get_ref().as_str())
            else {
                continue;
            };
            steps.push(StepAt {
                phase: i,
                index: j,
                plugin: plugin_name,
                action: action_name,
                on: t.get("on").and_then(|v| v.get_ref().as_str()),
                params: t.get("params").and_then(|p| p.get_ref().as_table()),
                action_span: action.span(),
            });
        }
    }
    // The phases each phase runs after, directly or not.
    let before = |phase: usize| -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![phase];
        while let Some(p) = todo.pop() {
            for name in &after[p] {
                for (k, id) in ids.iter().enumerate() {
                    if id.as_deref() == Some(name.as_str()) && seen.insert(k) {
                        todo.push(k);
                    }
                }
            }
        }
        seen
    };
    for s in &steps {
        let Some(need) = catalog
            .plugins
            .get(s.plugin)
            .and_then(|spec| spec.params.get(s.action))
            .and_then(|schema| schema.get("x-needs-backup"))
        else {
            continue;
        };
        let Some(backup) = need.get("action").and_then(Value::as_str) else {
            continue;
        };
        let same: Vec<(&str, &str)> = need
            .get("same")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(mine, theirs)| Some((mine.as_str(), theirs.as_str()?)))
                    .collect()
            })
            .unwrap_or_default();
        let earlier = before(s.phase);
        let value = |params: Option<&DeTable<'_>>, key: &str| {
            params
                .and_then(|p| p.get(key))
                .map(|v| to_json(v.get_ref()))
        };
        let found = steps.iter().any(|t| {
            t.plugin == s.plugin
                && t.action == backup
                && t.on == s.on
                && ((t.phase == s.phase && t.index < s.index) || earlier.contains(&t.phase))
                && same
                    .iter()
                    .all(|(mine, theirs)| value(s.params, mine) == value(t.params, theirs))
        });
        if !found {
            let phase = ids[s.phase].as_deref().unwrap_or("?");
            let fields: Vec<String> = same
                .iter()
                .map(|(mine, theirs)| match mine == theirs {
                    true => format!("`{mine}`"),
                    false => format!("`{theirs}` = this step's `{mine}`"),
                })
                .collect();
            out.push(
                Severity::Error,
                s.action_span.clone(),
                format!("phase[{}].step[{}].action", s.phase, s.index),
                format!(
                    "`{}.{}` changes data and needs a verified backup first: no `{}.{backup}` step on the same host with the same {} runs before it in the same run (an earlier step of phase `{phase}`, or a step of a phase it runs `after`)",
                    s.plugin,
                    s.action,
                    s.plugin,
                    fields.join(" and ")
                ),
            );
        }
    }
}

/// A TOML value as JSON, to compare two steps' parameters.
fn to_json(value: &DeValue<'_>) -> Value {
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Integer(i) => Value::String(i.as_str().to_string()),
        DeValue::Float(f) => Value::String(f.as_str().to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Array(a) => Value::Array(a.iter().map(|v| to_json(v.get_ref())).collect()),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), to_json(v.get_ref())))
                .collect(),
        ),
    }
}

/// A step retried on failure whose action only fails with a flag it does not
/// set (`x-fails-only-when-true`: `health.check` succeeds on a down service
/// unless `require_healthy = true`) is never retried: a warning.
fn retry_warning(
    out: &mut Findings<'_>,
    step: &DeTable<'_>,
    schema: &Value,
    plugin: &str,
    action: &str,
    at: &str,
) {
    let Some(on_failure) = step
        .get("on_failure")
        .filter(|v| v.get_ref().as_str() == Some("retry"))
    else {
        return;
    };
    let span = on_failure.span();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let params = step.get("params").and_then(|p| p.get_ref().as_table());
    for (name, property) in properties {
        if property
            .get("x-fails-only-when-true")
            .and_then(Value::as_bool)
            != Some(true)
        {
            continue;
        }
        let set = params
            .and_then(|p| p.get(name.as_str()))
            .and_then(|v| v.get_ref().as_bool())
            == Some(true);
        if !set {
            out.push(
                Severity::Warning,
                span.clone(),
                format!("{at}.on_failure"),
                format!(
                    "`retry` retries a failed step, and `{plugin}.{action}` fails only with `{name} = true` in its params; without it this step succeeds and is never retried"
                ),
            );
        }
    }
}

/// JSON Schema's name for a TOML value's type.
fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) | DeValue::Datetime(_) => "string",
        DeValue::Integer(_) => "integer",
        DeValue::Float(_) => "number",
        DeValue::Boolean(_) => "boolean",
        DeValue::Array(_) => "array",
        DeValue::Table(_) => "object",
    }
}

fn type_matches(allowed: &str, value: &DeValue<'_>) -> bool {
    let found = kind(value);
    allowed == found || (allowed == "number" && found == "integer")
}

/// The types a schema allows, as written (`"string"`, `["string", "null"]`).
fn allowed_types(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// What a schema accepts, in a few words, for messages.
fn expected(schema: &Value) -> String {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return format!(
            "one of {}",
            values
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(types) = allowed_types(schema) {
        let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        return if types.first() == Some(&"array") {
            match schema.get("items") {
                Some(items) => format!("an array of {}", expected(items)),
                None => "an array".into(),
            }
        } else {
            types.join(" or ")
        };
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            return branches
                .iter()
                .map(expected)
                .collect::<Vec<_>>()
                .join(", or ");
        }
    }
    "a value".into()
}

fn check_value(out: &mut Findings<'_>, schema: &Value, value: &Spanned<DeValue<'_>>, field: &str) {
    let v = value.get_ref();
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let fits = branches.iter().any(|branch| {
                let mut scratch = Findings {
                    text: out.text,
                    found: Vec::new(),
                };
                check_value(&mut scratch, branch, value, field);
                scratch.found.is_empty()
            });
            if !fits {
                return mismatch(out, schema, value, field);
            }
        }
    }
    if let Some(types) = allowed_types(schema)
        && !types.iter().any(|t| type_matches(t, v))
    {
        return mismatch(out, schema, value, field);
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && let Some(s) = v.as_str()
        && !values.iter().any(|e| e.as_str() == Some(s))
    {
        out.push(
            Severity::Error,
            value.span(),
            field.to_string(),
            format!("expected {}, found \"{s}\"", expected(schema)),
        );
        return;
    }
    if schema.get("x-secret").and_then(Value::as_bool) == Some(true)
        && let Some(s) = v.as_str()
        && !s.contains("${secret:")
    {
        out.push(
            Severity::Error,
            value.span(),
            field.to_string(),
            "a secret: write a `${secret:NAME}` reference the agent fills in, never the value"
                .into(),
        );
        return;
    }
    if let DeValue::Integer(i) = v
        && let Ok(n) = i128::from_str_radix(i.as_str(), i.radix())
    {
        let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
        #[allow(clippy::cast_precision_loss)]
        let n_f = n as f64;
        if bound("minimum").is_some_and(|min| n_f < min)
            || bound("maximum").is_some_and(|max| n_f > max)
        {
            out.push(
                Severity::Error,
                value.span(),
                field.to_string(),
                format!("{n} is out of range for {}", schema_format(schema)),
            );
            return;
        }
    }
    match v {
        DeValue::Table(table) => check_table(out, schema, table, value.span(), field),
        DeValue::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (k, item) in items.iter().enumerate() {
                    check_value(out, item_schema, item, &format!("{field}[{k}]"));
                }
            }
        }
        _ => {}
    }
}

/// "expected what the schema accepts, found what the value is".
fn mismatch(out: &mut Findings<'_>, schema: &Value, value: &Spanned<DeValue<'_>>, field: &str) {
    out.push(
        Severity::Error,
        value.span(),
        field.to_string(),
        format!(
            "expected {}, found {}",
            expected(schema),
            describe(value.get_ref())
        ),
    );
}

fn schema_format(schema: &Value) -> String {
    schema
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or("this parameter")
        .to_string()
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("a string (\"{s}\")"),
        DeValue::Integer(i) => format!("an integer ({i})"),
        DeValue::Float(f) => format!("a number ({})", f.as_str()),
        DeValue::Boolean(b) => format!("a boolean ({b})"),
        DeValue::Datetime(d) => format!("a date-time ({d})"),
        DeValue::Array(_) => "an array".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

fn check_table(
    out: &mut Findings<'_>,
    schema: &Value,
    table: &DeTable<'_>,
    span: Range<usize>,
    field: &str,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    let extra = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let at = format!("{field}.{name}");
        // `x-aliases`: other names serde accepts for a property.
        let property = properties.and_then(|p| {
            p.get(name).or_else(|| {
                p.values().find(|prop| {
                    prop.get("x-aliases")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|n| n.as_str() == Some(name)))
                })
            })
        });
        match property {
            Some(property) => check_value(out, property, value, &at),
            None => {
                if let Some(extra) = extra {
                    check_value(out, extra, value, &at);
                } else if closed {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    out.push(
                        Severity::Error,
                        key.span(),
                        at,
                        format!(
                            "unknown parameter `{name}`{}; it takes: {}",
                            suggest(name, known.iter().copied()),
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
            }
        }
    }
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    for name in required {
        let aliases: Vec<&str> = properties
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("x-aliases"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if table.get(name).is_none() && !aliases.iter().any(|a| table.get(*a).is_some()) {
            let doc = properties
                .and_then(|p| p.get(name))
                .and_then(|p| p.get("description"))
                .and_then(Value::as_str)
                .map(|d| format!(": {}", first_line(d)))
                .unwrap_or_default();
            out.push(
                Severity::Error,
                span.clone(),
                field.to_string(),
                format!("missing required parameter `{name}` ({}){doc}", {
                    let property = properties.and_then(|p| p.get(name));
                    property.map_or_else(|| "a value".to_string(), expected)
                }),
            );
        }
    }
}

/// The first paragraph of a doc comment, on one line.
pub fn first_line(doc: &str) -> String {
    doc.split("\n\n")
        .next()
        .unwrap_or(doc)
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// "; did you mean `x`?" for the closest name within two edits, or nothing.
fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2 && *d < k.chars().count())
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn health() -> PluginSpec {
        let schema = json!({"actions": {"check": {
            "type": "object",
            "additionalProperties": false,
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "description": "URL to GET.", "x-aliases": ["href"]},
                "require_healthy": {"type": "boolean", "default": false, "x-fails-only-when-true": true},
                "retries": {"type": "integer", "format": "uint32", "minimum": 0},
                "token": {"type": ["string", "null"], "x-secret": true},
                "mode": {"enum": ["fast", "slow"]},
                "checks": {"type": "array", "items": {
                    "type": "object", "additionalProperties": false,
                    "required": ["name"], "properties": {"name": {"type": "string"}}
                }},
                "expect": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]}
            }
        }}});
        PluginSpec::new(
            vec!["check".into(), "baseline".into()],
            &schema.to_string(),
            "health.wasm",
        )
        .unwrap_or_default()
    }

    fn catalog(complete: bool) -> Catalog {
        Catalog {
            plugins: BTreeMap::from([("health".to_string(), health())]),
            complete,
            checks: Some(BTreeSet::from(["app".to_string()])),
        }
    }

    fn plan(step: &str) -> String {
        format!(
            "[plan]\nname = \"t\"\n\n[[phase]]\nid = \"p\"\n\n[[phase.step]]\nid = \"s\"\non = \"web\"\n{step}\n"
        )
    }

    fn found(text: &str, complete: bool) -> Vec<String> {
        check(text, &catalog(complete))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// A `db` plugin whose `migrate-down` needs a `backup` of the same `db`
    /// in `dir` = its `backup_dir`.
    fn db_catalog() -> Catalog {
        let schema = json!({"actions": {
            "backup": {"type": "object"},
            "migrate-down": {"type": "object", "x-needs-backup": {"action": "backup", "same": {"db": "db", "backup_dir": "dir"}}}
        }});
        let db = PluginSpec::new(
            vec!["backup".into(), "migrate-down".into()],
            &schema.to_string(),
            "db.wasm",
        )
        .unwrap_or_default();
        Catalog {
            plugins: BTreeMap::from([("db".to_string(), db)]),
            complete: true,
            checks: None,
        }
    }

    const BACKUP: &str = "[[phase.step]]\nid = \"backup\"\nplugin = \"db\"\naction = \"backup\"\non = \"db-1\"\nparams = { db = { host = \"h\", dbname = \"shop\" }, dir = \"/backups\" }\n";
    const DOWN: &str = "[[phase.step]]\nid = \"down\"\nplugin = \"db\"\naction = \"migrate-down\"\non = \"db-1\"\nparams = { db = { host = \"h\", dbname = \"shop\" }, backup_dir = \"/backups\" }\n";

    fn backups_found(text: &str) -> Vec<String> {
        check(text, &db_catalog())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_data_changing_step_needs_a_backup_of_the_same_database_before_it() {
        let head = "[plan]\nname = \"t\"\n\n";
        // Backup first in the same phase, or in a phase it runs after: fine.
        let same_phase = format!("{head}[[phase]]\nid = \"db\"\n{BACKUP}{DOWN}");
        assert_eq!(backups_found(&same_phase), Vec::<String>::new());
        let after = format!(
            "{head}[[phase]]\nid = \"down\"\nafter = [\"mid\"]\n{DOWN}[[phase]]\nid = \"mid\"\nafter = [\"save\"]\n[[phase]]\nid = \"save\"\n{BACKUP}"
        );
        assert_eq!(backups_found(&after), Vec::<String>::new());
        // After it in its phase, in a phase not ordered before it, of another
        // database: each refused at the step's action line.
        let later = format!("{head}[[phase]]\nid = \"db\"\n{DOWN}{BACKUP}");
        let found = backups_found(&later);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("9:10: error: field `phase[0].step[0].action`: `db.migrate-down` changes data and needs a verified backup first: no `db.backup` step on the same host with the same `dir` = this step's `backup_dir` and `db` runs before it"),
            "{found:?}"
        );
        let unordered =
            format!("{head}[[phase]]\nid = \"save\"\n{BACKUP}[[phase]]\nid = \"down\"\n{DOWN}");
        assert_eq!(backups_found(&unordered).len(), 1);
        let other_db = format!(
            "{head}[[phase]]\nid = \"db\"\n{}{DOWN}",
            BACKUP.replace("shop", "billing")
        );
        assert_eq!(backups_found(&other_db).len(), 1);
        let other_dir = format!(
            "{head}[[phase]]\nid = \"db\"\n{}{DOWN}",
            BACKUP.replace("/backups", "/elsewhere")
        );
        assert_eq!(backups_found(&other_dir).len(), 1);
    }

    #[test]
    fn a_good_step_has_no_findings() {
        let text = plan(
            "plugin = \"health\"\naction = \"check\"\nparams = { url = \"http://x\", require_healthy = true, retries = 3, token = \"${secret:T}\", mode = \"fast\", checks = [{ name = \"a\" }], expect = [200, 204] }",
        );
        assert_eq!(found(&text, true), Vec::<String>::new());
    }

    #[test]
    fn misspelt_plugin_action_and_parameter_point_at_their_lines() {
        let text = plan("plugin = \"helth\"\naction = \"check\"");
        assert_eq!(
            found(&text, false),
            [
                "10:10: error: field `phase[0].step[0].plugin`: `helth` is not a built-in plugin; did you mean `health`?; its steps are not checked (give --plugins DIR, --config or --against-fleet to check them)"
            ]
        );
        let text = plan("plugin = \"health\"\naction = \"chek\"\nparams = { url = \"u\" }");
        let f = found(&text, true);
        assert!(f[0].starts_with("11:10: error: field `phase[0].step[0].action`: plugin `health` (health.wasm) has no action `chek`; it offers: check, baseline; did you mean `check`?"), "{f:?}");
        let text = plan(
            "plugin = \"health\"\naction = \"check\"\n[phase.step.params]\nurl = \"u\"\nrequire_helthy = true",
        );
        let f = found(&text, true);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].starts_with("14:1: error: field `phase[0].step[0].params.require_helthy`: unknown parameter `require_helthy`; did you mean `require_healthy`?"), "{f:?}");
    }

    #[test]
    fn mistyped_missing_and_secret_values_are_errors() {
        let text = plan(
            "plugin = \"health\"\naction = \"check\"\nparams = { require_healthy = \"yes\", retries = -1, token = \"hunter2\", mode = \"medium\", checks = [{ nam = \"a\" }], expect = \"200\" }",
        );
        let f = found(&text, true);
        let fields: Vec<&str> = f
            .iter()
            .map(|l| l.split('`').nth(1).unwrap_or(""))
            .collect();
        assert_eq!(
            fields,
            [
                "phase[0].step[0].params",
                "phase[0].step[0].params.require_healthy",
                "phase[0].step[0].params.retries",
                "phase[0].step[0].params.token",
                "phase[0].step[0].params.mode",
                "phase[0].step[0].params.checks[0]",
                "phase[0].step[0].params.checks[0].nam",
                "phase[0].step[0].params.expect",
            ],
            "{f:#?}"
        );
        assert!(f[0].contains("missing required parameter `url` (string): URL to GET."));
        assert!(f[1].contains("expected boolean, found a string (\"yes\")"));
        assert!(f[2].contains("-1 is out of range for uint32"));
        assert!(f[3].contains("${secret:NAME}"));
        assert!(f[4].contains("expected one of \"fast\", \"slow\""));
        assert!(f[7].contains("expected integer, or an array of integer"));
    }

    #[test]
    fn a_retried_step_that_cannot_fail_is_a_warning() {
        let step = "plugin = \"health\"\naction = \"check\"\non_failure = \"retry\"\nretries = 3\nparams = { url = \"u\" }";
        let f = found(&plan(step), true);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].starts_with("12:14: warning: field `phase[0].step[0].on_failure`: `retry` retries a failed step, and `health.check` fails only with `require_healthy = true`"), "{f:?}");
        let step = "plugin = \"health\"\naction = \"check\"\non_failure = \"retry\"\nparams = { url = \"u\", require_healthy = true }";
        assert_eq!(found(&plan(step), true), Vec::<String>::new());
    }

    #[test]
    fn an_alias_serde_accepts_is_accepted() {
        let f = found(
            &plan("plugin = \"health\"\naction = \"check\"\nparams = { href = \"http://x\" }"),
            true,
        );
        assert_eq!(f, Vec::<String>::new());
    }

    #[test]
    fn a_step_without_params_misses_the_required_ones() {
        let f = found(&plan("plugin = \"health\"\naction = \"check\""), true);
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("missing required parameter `url`"), "{f:?}");
    }

    #[test]
    fn unknown_plugins_are_warnings_only_when_the_catalog_is_partial() {
        let text = plan("plugin = \"maintenance\"\naction = \"on\"");
        assert!(found(&text, false)[0].contains("warning"));
        assert!(found(&text, true)[0].contains(
            "error: field `phase[0].step[0].plugin`: no plugin `maintenance` here (known: health)"
        ));
    }

    #[test]
    fn an_action_without_schema_is_a_warning() {
        let text = plan("plugin = \"health\"\naction = \"baseline\"\nparams = { anything = 1 }");
        let f = found(&text, true);
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("warning: field `phase[0].step[0].action`: plugin `health` (health.wasm) declares no parameters for `baseline`"), "{f:?}");
    }

    #[test]
    fn a_probe_naming_an_undefined_check_is_an_error() {
        let text =
            "[plan]\nname = \"t\"\n[signals.up]\nprobe = { check = \"ap\", aggregate = \"min\" }\n";
        let f = found(text, true);
        assert_eq!(
            f,
            [
                "4:19: error: field `signals.up.probe.check`: no check `ap` in the coordinator's configuration ([[assess.check]] name, or `error-log` with [assess.log]); it defines: app; did you mean `app`?"
            ]
        );
        let mut unknown = catalog(true);
        unknown.checks = None;
        assert!(check(text, &unknown).is_empty());
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_column("é = 1\nab", 7), (2, 1));
        assert_eq!(line_column("é = 1\nab", 8), (2, 2));
        assert_eq!(edit_distance("helth", "health"), 1);
    }
}
