//! `backout-agent plugin run FILE.wasm ACTION`: one step of one plugin, run
//! here, in the same sandbox as an agent runs it (the same engine, limits
//! and host calls, checked against the grants given on the command line),
//! without a PKI, a coordinator, a plan or an approval. What a plugin author
//! tests with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plugin::{
    Grants, PluginConfig, PluginHost, SecretSource, SecretStore, StepEvent, StepLimits,
    StepOutcome, StepRequest, sha256_hex,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct LocalStep {
    pub file: PathBuf,
    pub action: String,
    /// The params as JSON text (already read from `@file`).
    pub params_json: String,
    pub grants: Grants,
    pub secrets: BTreeMap<String, SecretSource>,
    pub dry_run: bool,
    pub deadline: Option<Duration>,
}

/// Why a local step could not be run: the input is wrong (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("--params: {0}")]
    Params(String),
    #[error(
        "--grant `{0}`: expected KIND=VALUE, KIND one of programs, dry_run_programs, urls, read, write, secrets"
    )]
    Grant(String),
    #[error(
        "--secret `{0}`: expected NAME (from the environment variable NAME), NAME=env:VAR or NAME=file:PATH"
    )]
    Secret(String),
    #[error("{0}")]
    Load(String),
}

/// The params of `--params`: JSON text, or `@FILE` for a file's contents;
/// either must be a JSON object.
pub fn read_params(text: &str) -> Result<String, LocalError> {
    let json = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| LocalError::Params(format!("cannot read {path}: {e}")))?,
        None => text.to_string(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| LocalError::Params(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(LocalError::Params("expected a JSON object".into()));
    }
    Ok(json)
}

/// Adds one `--grant KIND=VALUE` to `grants`.
pub fn add_grant(grants: &mut Grants, text: &str) -> Result<(), LocalError> {
    let (kind, value) = text
        .split_once('=')
        .filter(|(_, v)| !v.is_empty())
        .ok_or_else(|| LocalError::Grant(text.into()))?;
    match kind.trim() {
        "programs" => grants.programs.push(value.into()),
        "dry_run_programs" => grants.dry_run_programs.push(value.into()),
        "urls" => grants.urls.push(value.into()),
        "read" => grants.read.push(PathBuf::from(value)),
        "write" => grants.write.push(PathBuf::from(value)),
        "secrets" => grants.secrets.push(value.into()),
        _ => return Err(LocalError::Grant(text.into())),
    }
    Ok(())
}

/// One `--secret`: where its value comes from. Values never appear on the
/// command line (where `ps` would show them).
pub fn parse_secret(text: &str) -> Result<(String, SecretSource), LocalError> {
    let bad = || LocalError::Secret(text.into());
    match text.split_once('=') {
        None if !text.is_empty() => Ok((text.into(), SecretSource::Env(text.into()))),
        None => Err(bad()),
        Some((name, source)) => {
            let source = if let Some(var) = source.strip_prefix("env:") {
                SecretSource::Env(var.into())
            } else if let Some(path) = source.strip_prefix("file:") {
                SecretSource::File(PathBuf::from(path))
            } else {
                return Err(bad());
            };
            Ok((name.into(), source))
        }
    }
}

/// How the step went, with everything it reported live.
#[derive(Debug)]
pub struct LocalRun {
    pub plugin: String,
    pub sha256: String,
    pub events: Vec<StepEvent>,
    pub outcome: StepOutcome,
    /// The plugin's optional needs the given grants do not cover: it ran
    /// without them.
    pub without: Vec<String>,
}

/// The plugin's name: the file's stem (`health.wasm` → `health`).
fn plugin_name(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into())
}

/// Compiles the plugin with the given grants and runs one step, as an
/// agent does. `on_event` sees each event as it comes.
pub async fn run(
    step: LocalStep,
    mut on_event: impl FnMut(&StepEvent),
) -> Result<LocalRun, LocalError> {
    let name = plugin_name(&step.file);
    // Secrets it is given are granted too: that is why they are given.
    let mut grants = step.grants;
    for secret in step.secrets.keys() {
        if !grants.secrets.contains(secret) {
            grants.secrets.push(secret.clone());
        }
    }
    let file = std::path::absolute(&step.file)
        .map_err(|e| LocalError::Load(format!("{}: {e}", step.file.display())))?;
    let config = PluginConfig {
        name: name.clone(),
        path: file.clone(),
        grants,
        limits: None,
    };
    let secrets = SecretStore::load(&step.secrets).map_err(|e| LocalError::Load(e.to_string()))?;
    let host = PluginHost::new(&[config], secrets, StepLimits::default())
        .map_err(|e| LocalError::Load(e.to_string()))?;
    // A required need the grants do not give disables the plugin: say why.
    if let Some((_, _, error)) = host.disabled().into_iter().next() {
        return Err(LocalError::Load(error));
    }
    let bytes =
        std::fs::read(&file).map_err(|e| LocalError::Load(format!("{}: {e}", file.display())))?;
    let sha256 = sha256_hex(&bytes);
    let plugin = host
        .resolve(&name, &sha256)
        .map_err(|e| LocalError::Load(e.to_string()))?;
    let without = plugin
        .info
        .needs
        .iter()
        .filter(|n| n.optional && n.granted == Some(false))
        .map(ToString::to_string)
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let request = StepRequest {
        step_id: format!("local/{name}/{}", step.action),
        action: step.action,
        params_json: step.params_json,
        dry_run: step.dry_run,
        deadline: step.deadline,
    };
    let running = host.run(plugin, request, tx);
    tokio::pin!(running);
    let mut events = Vec::new();
    let outcome = loop {
        tokio::select! {
            outcome = &mut running => break outcome,
            Some(event) = rx.recv() => {
                on_event(&event);
                events.push(event);
            }
        }
    };
    // Events sent just before the end.
    while let Ok(event) = rx.try_recv() {
        on_event(&event);
        events.push(event);
    }
    Ok(LocalRun {
        plugin: name,
        sha256,
        events,
        outcome,
        without,
    })
}

/// One event as a line for people.
pub fn event_line(event: &StepEvent) -> String {
    match event {
        StepEvent::Log { level, message } => format!("[{level}] {message}"),
        StepEvent::Progress {
            done,
            total,
            message,
        } => format!("[progress {done}/{total}] {message}"),
        StepEvent::Emit { name, value_json } => format!("[emit] {name} = {value_json}"),
    }
}

/// One event as JSON.
pub fn event_json(event: &StepEvent) -> serde_json::Value {
    match event {
        StepEvent::Log { level, message } => {
            serde_json::json!({ "kind": "log", "level": level.to_string(), "message": message })
        }
        StepEvent::Progress {
            done,
            total,
            message,
        } => {
            serde_json::json!({ "kind": "progress", "done": done, "total": total, "message": message })
        }
        StepEvent::Emit { name, value_json } => {
            let value = serde_json::from_str::<serde_json::Value>(value_json)
                .unwrap_or_else(|_| serde_json::json!(value_json));
            serde_json::json!({ "kind": "emit", "name": name, "value": value })
        }
    }
}

/// The whole run as JSON (`--output json`).
pub fn run_json(run: &LocalRun) -> serde_json::Value {
    let events: Vec<serde_json::Value> = run.events.iter().map(event_json).collect();
    let parse = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).unwrap_or_else(|_| serde_json::json!(text))
    };
    match &run.outcome {
        StepOutcome::Succeeded {
            summary, data_json, ..
        } => serde_json::json!({
            "plugin": run.plugin, "sha256": run.sha256, "outcome": "succeeded",
            "summary": summary, "data": parse(data_json), "events": events,
            "without_optional": run.without,
        }),
        StepOutcome::Failed { code, message } => serde_json::json!({
            "plugin": run.plugin, "sha256": run.sha256, "outcome": "failed",
            "code": code, "message": message, "events": events,
            "without_optional": run.without,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn grants_secrets_and_params_are_read_or_refused() {
        let mut grants = Grants::default();
        add_grant(&mut grants, "urls=http://127.0.0.1:8080/").unwrap();
        add_grant(&mut grants, "dry_run_programs=git log").unwrap();
        assert_eq!(grants.urls, ["http://127.0.0.1:8080/"]);
        assert_eq!(grants.dry_run_programs, ["git log"]);
        assert!(add_grant(&mut grants, "network=all").is_err());
        assert!(add_grant(&mut grants, "urls=").is_err());

        assert_eq!(
            parse_secret("TOKEN").unwrap(),
            ("TOKEN".into(), SecretSource::Env("TOKEN".into()))
        );
        assert_eq!(
            parse_secret("TOKEN=file:/run/t").unwrap().1,
            SecretSource::File("/run/t".into())
        );
        assert!(
            parse_secret("TOKEN=hunter2").is_err(),
            "no value on the command line"
        );

        assert!(read_params(r#"{"a":1}"#).is_ok());
        assert!(read_params("[1]").is_err());
        assert!(read_params("{").is_err());
        assert!(read_params("@/nonexistent/params.json").is_err());
    }
}
