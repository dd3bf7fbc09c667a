//! `backout assess`: phase 1.1 of the plan, the emergency assessment.
//!
//! The coordinator sends a signed `health` step to every agent and gathers the
//! answers. Building each agent's parameters is pure code (unit-tested); the
//! fan-out is a thin async layer over the dispatcher.

use std::time::{Duration, Instant};

use backout_proto::now_ms;
use serde_json::{Value, json};

use crate::config::CoordinatorConfig;
use crate::fleet::StepOutcome;
use crate::fleet::dispatch::{Audit, Dispatcher, StepSpec, give_up_in};

/// One agent's answer.
#[derive(Debug, Clone)]
pub struct HostResult {
    pub agent_id: String,
    pub outcome: StepOutcome,
    pub duration_ms: i64,
}

/// The `health` plugin's parameters for `agent_id`: the checks and log tail
/// that the configuration aims at it.
pub fn health_params(config: &CoordinatorConfig, agent_id: &str) -> Value {
    let checks: Vec<Value> = config
        .assess
        .checks
        .iter()
        .filter(|c| config.targets(&c.agents, agent_id))
        .map(|c| {
            let mut check = json!({ "name": c.name, "url": c.url });
            if let Some(method) = &c.method {
                check["method"] = json!(method);
            }
            if let Some(expect) = &c.expect_status {
                check["expect_status"] = json!(expect);
            }
            if let Some(timeout) = c.timeout {
                check["timeout_ms"] = json!(timeout.as_millis());
            }
            if let Some(slow) = c.slow {
                check["slow_ms"] = json!(slow.as_millis());
            }
            check
        })
        .collect();
    let mut params = json!({ "checks": checks });
    if let Some(log) = config
        .assess
        .log
        .as_ref()
        .filter(|l| config.targets(&l.agents, agent_id))
    {
        params["log"] =
            json!({ "path": log.path, "tail_lines": log.tail_lines, "pattern": log.pattern });
    }
    params
}

/// Runs the health step on every configured agent at once, at most `timeout`.
/// Agents that are configured but not connected are reported unreachable.
/// `audit` says what the journal keeps of the commands: an operator's
/// `assess` is journaled, the sampler's repeated probes are not.
pub async fn run(
    dispatcher: &Dispatcher,
    config: &CoordinatorConfig,
    timeout: Duration,
    audit: Audit,
) -> Vec<HostResult> {
    let run_id = format!("assess-{}", now_ms());
    let futures = config.agents.iter().map(|agent| {
        let spec = StepSpec {
            run_id: run_id.clone(),
            step_id: format!("{run_id}/{}", agent.id),
            agent_id: agent.id.clone(),
            plugin: "health".into(),
            action: "check".into(),
            params_json: health_params(config, &agent.id).to_string(),
            dry_run: false,
            deadline: Some(timeout),
            give_up_at_ms: give_up_in(timeout),
            audit,
            traceparent: String::new(),
            approvals: Default::default(),
        };
        async move {
            let started = Instant::now();
            let outcome = dispatcher.send(spec).await.wait(timeout).await;
            HostResult {
                agent_id: agent.id.clone(),
                outcome,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            }
        }
    });
    futures::future::join_all(futures).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_agent_gets_only_the_checks_aimed_at_it() {
        let text = r#"
listen = "127.0.0.1:0"
command_key = "k"
[tls]
ca = "a"
cert = "b"
key = "c"
[[agent]]
id = "app-1"
groups = ["app"]
[[agent]]
id = "db-1"
[[assess.check]]
name = "app"
url = "http://127.0.0.1:1/health"
agents = ["app"]
slow = "500ms"
[[assess.check]]
name = "everyone"
url = "http://127.0.0.1:1/ping"
[assess.log]
path = "/var/log/app.log"
agents = ["app-1"]
"#;
        let config: CoordinatorConfig =
            backout_config::parse(std::path::Path::new("t.toml"), text).unwrap();
        let app = health_params(&config, "app-1");
        assert_eq!(app["checks"].as_array().unwrap().len(), 2);
        assert_eq!(app["checks"][0]["slow_ms"], 500);
        assert_eq!(app["log"]["pattern"], "ERROR");
        let db = health_params(&config, "db-1");
        assert_eq!(db["checks"].as_array().unwrap().len(), 1);
        assert!(db.get("log").is_none());
    }
}
