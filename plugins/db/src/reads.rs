//! `counts` and `data-loss`: read-only queries (the session is read-only),
//! allowed in a dry run when the agent grants `psql` in `dry_run_programs`.

use backout_plugin_sdk::host;
use backout_plugin_sdk::{Outcome, PluginError, Step};
use serde_json::{Value, json};

use crate::params;
use crate::{pg, sql};

/// A dry run whose read the host refused says what the step would read.
fn refused_in_dry_run(step: &Step, e: &PluginError, would: String) -> Option<Outcome> {
    (step.dry_run && e.code == "host-denied").then(|| {
        let text = format!("{would} (not readable in this dry run: {})", e.message);
        Outcome::new(
            text.clone(),
            json!({ "dry_run": true, "would": text, "changed": [] }),
        )
    })
}

pub fn counts(step: &Step) -> Result<Outcome, PluginError> {
    let p: params::Counts = step.params()?;
    p.validate()?;
    let query = sql::counts_sql(&p.tables).map_err(params::bad)?;
    let counts = match pg::query_json(&p.db, &query) {
        Ok(value) => value,
        Err(e) => {
            let would = format!("would count the rows of {}", p.tables.join(", "));
            return refused_in_dry_run(step, &e, would).ok_or(e);
        }
    };
    host::emit_json("counts", &counts);
    let summary = p
        .tables
        .iter()
        .map(|t| format!("{t} {}", counts.get(t).unwrap_or(&Value::Null)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Outcome::new(
        summary,
        json!({ "counts": counts, "changed": [] }),
    ))
}

pub fn data_loss(step: &Step) -> Result<Outcome, PluginError> {
    let p: params::DataLoss = step.params()?;
    p.validate()?;
    let figures = p.figure_sources()?;
    let now = i64::try_from(host::now()).unwrap_or(i64::MAX);
    let since_ms = p.since_ms(now)?;
    let sums = p.sums();
    let query = sql::data_loss_sql(&p.tables, &p.column, &sums, since_ms).map_err(params::bad)?;
    let since = sql::rfc3339(since_ms);
    let tables = match pg::query_json(&p.db, &query) {
        Ok(value) => value,
        Err(e) => {
            let would = format!(
                "would count the rows of {} created after {since}",
                p.tables.join(", ")
            );
            return refused_in_dry_run(step, &e, would).ok_or(e);
        }
    };
    let report = json!({ "since": since, "since_ms": since_ms, "tables": tables });
    host::emit_json("data_loss", &report);
    let summary = p
        .tables
        .iter()
        .map(|t| {
            let entry = &tables[t.as_str()];
            let mut text = format!("{t} {} rows", entry["rows"]);
            if let Some(map) = entry["sums"].as_object() {
                for (column, total) in map {
                    text.push_str(&format!(" ({column} {total})"));
                }
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut data = report;
    if let Some(map) = data.as_object_mut() {
        map.insert("changed".into(), json!([]));
        // Run figures at the top level of the data, where the report and
        // escalation rules read them.
        for (name, source) in &figures {
            if let Some(value) = source.value(&tables) {
                map.insert(name.clone(), json!(value));
            }
        }
    }
    Ok(Outcome::new(format!("since {since}: {summary}"), data))
}
