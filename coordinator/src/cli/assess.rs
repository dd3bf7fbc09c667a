//! `backout agents` and `backout assess`: what is connected, and is it healthy.

use backout_proto::wire;
use serde_json::{Value, json};

use super::client::{ConnectArgs, status_error};
use super::{Exit, Output, human_ms, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// text: for people; json: for programs.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    /// How long to wait for the slowest host (e.g. 15s).
    #[arg(long, value_parser = backout_config::parse_duration)]
    timeout: Option<std::time::Duration>,
    /// When the deploy happened (RFC 3339, e.g. 2026-01-15T02:00:00Z, or
    /// how long ago, e.g. 45m), to answer "did it start after the deploy?".
    #[arg(long, value_parser = super::parse_when)]
    deploy_time: Option<i64>,
}

pub async fn run(args: Args, connect: &ConnectArgs) -> anyhow::Result<Exit> {
    let Args {
        output,
        timeout,
        deploy_time,
    } = args;
    let control = connect.control().await?;
    let timeout_ms = timeout.map_or(0, |t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX));
    // Health and matrix at once: the 2 a.m. answer in one round trip's time.
    let (mut health_client, mut matrix_client) = (control.clone(), control);
    let (health, matrix) = tokio::join!(
        health_client.assess(wire::AssessRequest { timeout_ms }),
        matrix_client.matrix(wire::MatrixRequest {})
    );
    let reply = health.map_err(status_error)?.into_inner();
    let matrix = matrix.map_err(status_error)?.into_inner();
    Ok(print_assessment(&reply, Some(&matrix), deploy_time, output))
}

/// The agents as `backout agents --output json` prints them (the dashboard
/// answers the same).
pub fn agents_json(reply: &wire::ListAgentsReply) -> Value {
    let agents: Vec<Value> = reply
        .agents
        .iter()
        .map(|a| {
            json!({
                "agent": a.agent_id,
                "connected": a.connected,
                "version": a.version,
                "hostname": a.hostname,
                "peer": a.peer_addr,
                "connected_since_ms": a.connected_since_ms,
                "last_seen_ms": a.last_seen_ms,
                "last_seen_ago_ms": reply.now_ms - a.last_seen_ms,
                "plugins": a.plugins.iter().map(|p| json!({
                    "name": p.name, "version": p.version, "sha256": p.sha256, "actions": p.actions,
                    "pinned_sha256": (!p.pinned_sha256.is_empty()).then_some(&p.pinned_sha256),
                    "pin": pin_state(p),
                    "load_error": (!p.load_error.is_empty()).then_some(&p.load_error),
                    "needs": p.needs.iter().map(|n| json!({
                        "kind": n.kind, "value": n.value, "why": n.why,
                        "optional": n.is_optional, "granted": n.granted,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "agents": agents })
}

/// Prints the agents table (or JSON). Always `Exit::Ok` once the call succeeded.
pub fn print_agents(reply: &wire::ListAgentsReply, output: Output) -> Exit {
    match output {
        Output::Json => outln!("{}", agents_json(reply)),
        Output::Text => {
            if reply.agents.is_empty() {
                outln!("no agent has connected yet");
                return Exit::Ok;
            }
            let rows: Vec<Vec<String>> = reply
                .agents
                .iter()
                .map(|a| {
                    vec![
                        a.agent_id.clone(),
                        if a.connected { "connected" } else { "gone" }.to_string(),
                        a.version.clone(),
                        format!("{} ago", human_ms(reply.now_ms - a.last_seen_ms)),
                        a.plugins
                            .iter()
                            .map(|p| {
                                let mismatch = if pin_state(p) == PIN_MISMATCH {
                                    format!(
                                        ", PIN MISMATCH: the coordinator pins {}",
                                        short(&p.pinned_sha256)
                                    )
                                } else {
                                    String::new()
                                };
                                if !p.load_error.is_empty() {
                                    return format!(
                                        "{} (DISABLED: {})",
                                        p.name,
                                        super::printable(&p.load_error)
                                    );
                                }
                                format!(
                                    "{}@{} ({}{mismatch}{})",
                                    p.name,
                                    p.version,
                                    short(&p.sha256),
                                    without_optional(p)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            out!(
                "{}",
                table::render(
                    &["AGENT", "STATE", "VERSION", "LAST SEEN", "PLUGINS"],
                    &rows
                )
            );
        }
    }
    Exit::Ok
}

/// The optional needs the agent does not grant a plugin, for the agents
/// table: ", without optional url `http://proxy:3128/`" (empty when none).
fn without_optional(p: &wire::PluginDescriptor) -> String {
    let missing: Vec<String> = p
        .needs
        .iter()
        .filter(|n| n.is_optional && !n.granted)
        .map(|n| {
            if n.value.is_empty() {
                format!("some {} grant", n.kind)
            } else {
                format!("{} `{}`", n.kind, super::printable(&n.value))
            }
        })
        .collect();
    if missing.is_empty() {
        String::new()
    } else {
        format!(", without optional {}", missing.join(", "))
    }
}

/// A plugin whose file differs from the coordinator's pin: every step of it
/// on that agent will be refused.
pub const PIN_MISMATCH: &str = "mismatch";

/// "ok" (the file is the pinned one), [`PIN_MISMATCH`], or "unpinned".
fn pin_state(p: &wire::PluginDescriptor) -> &'static str {
    if p.pinned_sha256.is_empty() {
        "unpinned"
    } else if p.pinned_sha256.eq_ignore_ascii_case(&p.sha256) {
        "ok"
    } else {
        PIN_MISMATCH
    }
}

/// The first 12 hex digits of a sha256, enough for people to compare.
fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// One host's assessment, with the health plugin's data parsed.
fn host_json(host: &wire::HostAssessment) -> Value {
    let data: Value = serde_json::from_str(&host.data_json).unwrap_or(Value::Null);
    json!({
        "agent": host.agent_id,
        "state": host.state,
        "detail": host.detail,
        "duration_ms": host.duration_ms,
        "healthy": host.state == "ok" && data["healthy"] == json!(true),
        "checks": data.get("checks").cloned().unwrap_or(json!([])),
        "log": data.get("log").cloned().unwrap_or(Value::Null),
    })
}

/// The exit of `assess`: 1 (failed) when a host is unhealthy or not heard,
/// or a trigger fired; else 3 (unknown) when a trigger has no data (missing
/// data is never health); else 0.
pub fn assessment_exit(healthy: bool, matrix: Option<&wire::MatrixReply>) -> Exit {
    let fired = matrix.is_some_and(|m| m.verdict != "NO ACTION");
    let unknown = matrix.is_some_and(|m| !m.unknown.is_empty());
    if !healthy || fired {
        Exit::Failed
    } else if unknown {
        Exit::Unknown
    } else {
        Exit::Ok
    }
}

/// Prints the assessment: host health, then (with a plan) the decision
/// matrix, the verdict and the checklist; see [`assessment_exit`] for the
/// exit code, which the JSON carries as `status` and `exit_code`.
pub fn print_assessment(
    reply: &wire::AssessReply,
    matrix: Option<&wire::MatrixReply>,
    deploy_ms: Option<i64>,
    output: Output,
) -> Exit {
    let hosts: Vec<Value> = reply.hosts.iter().map(host_json).collect();
    let healthy = !hosts.is_empty() && hosts.iter().all(|h| h["healthy"] == json!(true));
    let matrix = matrix.filter(|m| m.has_plan);
    let checklist = super::matrix::checklist(&hosts, matrix, deploy_ms);
    let exit = assessment_exit(healthy, matrix);
    let status = match exit {
        Exit::Ok => "ok",
        Exit::Unknown => "unknown",
        _ => "failed",
    };
    match output {
        Output::Json => {
            let doc = json!({
                "status": status,
                "exit_code": exit as u8,
                "healthy": healthy,
                "started_at_ms": reply.started_at_ms,
                "duration_ms": reply.finished_at_ms - reply.started_at_ms,
                "hosts": hosts,
                "matrix": matrix.map(super::matrix::matrix_json),
                "verdict": matrix.map(|m| m.verdict.clone()),
                "checklist": checklist,
            });
            outln!("{doc}");
        }
        Output::Text => {
            let mut rows = Vec::new();
            for host in &hosts {
                let agent = host["agent"].as_str().unwrap_or_default().to_string();
                if host["state"] != "ok" {
                    rows.push(vec![
                        agent,
                        "-".into(),
                        host["state"].as_str().unwrap_or_default().to_uppercase(),
                        "-".into(),
                        host["detail"].as_str().unwrap_or_default().to_string(),
                    ]);
                    continue;
                }
                for check in host["checks"].as_array().into_iter().flatten() {
                    rows.push(vec![
                        agent.clone(),
                        check["name"].as_str().unwrap_or_default().to_string(),
                        check["status"].as_str().unwrap_or_default().to_uppercase(),
                        check["latency_ms"]
                            .as_i64()
                            .map(human_ms)
                            .unwrap_or_else(|| "-".into()),
                        check["detail"].as_str().unwrap_or_default().to_string(),
                    ]);
                }
                if let Some(log) = host["log"].as_object() {
                    let matches = log.get("matches").and_then(Value::as_u64).unwrap_or(0);
                    rows.push(vec![
                        agent.clone(),
                        "error-log".into(),
                        if matches == 0 { "OK" } else { "ERRORS" }.into(),
                        "-".into(),
                        format!(
                            "{matches} matching lines in the last {} of {}",
                            log.get("lines").and_then(Value::as_u64).unwrap_or(0),
                            log.get("path").and_then(Value::as_str).unwrap_or("?")
                        ),
                    ]);
                }
            }
            out!(
                "{}",
                table::render(&["HOST", "CHECK", "STATUS", "LATENCY", "DETAIL"], &rows)
            );
            let down = hosts.iter().filter(|h| h["healthy"] != json!(true)).count();
            outln!(
                "\n{}: {} of {} hosts healthy (assessed in {})",
                if healthy { "HEALTHY" } else { "UNHEALTHY" },
                hosts.len() - down,
                hosts.len(),
                human_ms(reply.finished_at_ms - reply.started_at_ms)
            );
            match matrix {
                Some(m) => super::matrix::print_text(m, &checklist),
                None => outln!("(no plan: the coordinator shows no decision matrix)"),
            }
            if let (Exit::Unknown, Some(m)) = (exit, matrix) {
                outln!(
                    "\nUNKNOWN (exit 3): nothing fired, but {} trigger(s) have no data; missing data is not health",
                    m.unknown.len()
                );
            }
        }
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(verdict: &str, unknown: &[&str]) -> wire::MatrixReply {
        wire::MatrixReply {
            has_plan: true,
            verdict: verdict.into(),
            unknown: unknown.iter().map(|u| u.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn exit_zero_only_when_every_trigger_has_data_and_none_fired() {
        let quiet = matrix("NO ACTION", &[]);
        assert_eq!(assessment_exit(true, Some(&quiet)), Exit::Ok);
        // Prometheus down: four triggers without data is not health.
        let blind = matrix("NO ACTION", &["High Error Rate", "Performance Degradation"]);
        assert_eq!(assessment_exit(true, Some(&blind)), Exit::Unknown);
        assert_eq!(Exit::Unknown as u8, 3);
        // Something known to be wrong outranks what is not known.
        assert_eq!(assessment_exit(false, Some(&blind)), Exit::Failed);
        let fired = matrix("ASSESS FOR ROLLBACK", &["Performance Degradation"]);
        assert_eq!(assessment_exit(true, Some(&fired)), Exit::Failed);
        assert_eq!(assessment_exit(true, None), Exit::Ok);
        assert_eq!(assessment_exit(false, None), Exit::Failed);
    }
}
