//! Sampling signals: Prometheus instant queries over its HTTP API, health
//! probes through the agents' `health` plugin, and the evaluator that ticks
//! every trigger. Each loop survives its source being down: the failure is
//! recorded as an unknown value with its reason, and the loop tries again.

use std::sync::Arc;
use std::time::Duration;

use backout_plan::expr::Value;
use backout_plan::model::Source;
use backout_proto::now_ms;
use serde_json::Value as Json;

use super::board::Board;
use crate::fleet::StepOutcome;
use crate::server::State;

/// Starts one task per sampled signal, and the evaluator.
pub fn spawn(state: Arc<State>, board: Arc<Board>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; Prometheus signals stay unknown");
            reqwest::Client::new()
        }
    };
    for signal in board.plan().signals.values().cloned() {
        let interval = signal.interval;
        match signal.source {
            Source::Prometheus { url, query } => {
                let (board, client) = (board.clone(), client.clone());
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(interval);
                    loop {
                        ticker.tick().await;
                        let (value, error) = match query_prometheus(&client, &url, &query).await {
                            Ok(value) => (value.map(Value::Number), None),
                            Err(e) => {
                                tracing::warn!(signal = %signal.name, error = %e, "Prometheus query failed");
                                (None, Some(e))
                            }
                        };
                        board.record(&signal.name, now_ms(), value, error);
                    }
                });
            }
            Source::Probe { check, aggregate } => {
                let (board, state) = (board.clone(), state.clone());
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(interval);
                    loop {
                        ticker.tick().await;
                        let hosts =
                            crate::assess::run(&state, interval.min(Duration::from_secs(30))).await;
                        let outcomes: Vec<StepOutcome> =
                            hosts.into_iter().map(|h| h.outcome).collect();
                        let value = aggregate_probe(&outcomes, &check, &aggregate);
                        let error = value
                            .is_none()
                            .then(|| format!("no host reported check `{check}`"));
                        board.record(&signal.name, now_ms(), value, error);
                    }
                });
            }
            // Set by people and by events through the Control service.
            Source::Manual | Source::Events { .. } => {}
        }
    }
    let tick = board.tick;
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick);
        loop {
            ticker.tick().await;
            board.evaluate(now_ms());
        }
    });
}

/// Runs an instant query. `Ok(None)` when Prometheus answered without a
/// usable number (no series yet, or NaN from 0/0): unknown, not zero.
pub async fn query_prometheus(
    client: &reqwest::Client,
    base: &str,
    query: &str,
) -> Result<Option<f64>, String> {
    let data = prometheus_api(client, base, "query", &[("query", query.to_string())]).await?;
    Ok(parse_query_result(&data))
}

/// Runs a range query from `start_ms` to `end_ms` with `step_s` seconds
/// between points: the first series, as (ms, value) points (NaN dropped).
pub async fn query_range(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_s: u64,
) -> Result<Vec<(i64, f64)>, String> {
    let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let params = [
        ("query", query.to_string()),
        ("start", seconds(start_ms)),
        ("end", seconds(end_ms)),
        ("step", step_s.max(1).to_string()),
    ];
    let data = prometheus_api(client, base, "query_range", &params).await?;
    Ok(parse_range_result(&data))
}

/// Calls `/api/v1/<endpoint>` and returns the answer's `data`, or an error
/// naming the URL (transport, not JSON, HTTP status or Prometheus's error).
async fn prometheus_api(
    client: &reqwest::Client,
    base: &str,
    endpoint: &str,
    params: &[(&str, String)],
) -> Result<Json, String> {
    let url = format!("{}/api/v1/{endpoint}", base.trim_end_matches('/'));
    let response = client
        .get(&url)
        .query(params)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", backout_tls::tls::error_chain(&e)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("{url}: {}", backout_tls::tls::error_chain(&e)))?;
    let mut body: Json =
        serde_json::from_slice(&bytes).map_err(|e| format!("{url}: answer is not JSON: {e}"))?;
    if !status.is_success() || body["status"] != "success" {
        return Err(format!(
            "{url}: HTTP {status}: {}",
            body["error"].as_str().unwrap_or("query failed")
        ));
    }
    Ok(body["data"].take())
}

/// The points of the first series of a matrix result.
pub fn parse_range_result(data: &Json) -> Vec<(i64, f64)> {
    let Some(values) = data["result"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(|series| series["values"].as_array())
    else {
        return Vec::new();
    };
    values
        .iter()
        .filter_map(|pair| {
            let at = pair.get(0)?.as_f64()?;
            let value: f64 = pair.get(1)?.as_str()?.parse().ok()?;
            value
                .is_finite()
                .then_some(((at * 1000.0).round() as i64, value))
        })
        .collect()
}

/// The first number of a vector or scalar result.
pub fn parse_query_result(data: &Json) -> Option<f64> {
    let sample = match data["resultType"].as_str()? {
        "vector" => data["result"].as_array()?.first()?.get("value")?,
        "scalar" => data.get("result")?,
        _ => return None,
    };
    sample
        .get(1)?
        .as_str()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// Combines the hosts' health results for one check.
/// `any-up`: 1 while any host has it up, else 0; `share-down`: the fraction
/// of reporting hosts with it down; `max-latency`: the slowest, in seconds;
/// `log-matches`: error-log lines matching, summed over hosts.
/// None when no host reported the check (unreachable hosts are not healthy
/// hosts: with none reporting, the value is unknown).
pub fn aggregate_probe(outcomes: &[StepOutcome], check: &str, aggregate: &str) -> Option<Value> {
    let results: Vec<Json> = outcomes
        .iter()
        .filter_map(|o| match o {
            StepOutcome::Succeeded { data_json, .. } => {
                serde_json::from_str::<Json>(data_json).ok()
            }
            _ => None,
        })
        .filter_map(|data| {
            data["checks"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == check)
                .cloned()
        })
        .collect();
    if results.is_empty() {
        return None;
    }
    let up = |c: &Json| c["status"] == "up" || c["status"] == "slow";
    let value = match aggregate {
        "any-up" => f64::from(u8::from(results.iter().any(up))),
        "share-down" => results.iter().filter(|c| !up(c)).count() as f64 / results.len() as f64,
        "max-latency" => {
            results
                .iter()
                .filter_map(|c| c["latency_ms"].as_f64())
                .fold(0.0, f64::max)
                / 1000.0
        }
        _ => return None,
    };
    Some(Value::Number(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn range_results_give_the_first_series_without_nan() {
        let data = json!({ "resultType": "matrix", "result": [
            { "metric": {}, "values": [[1700000000.5, "0.01"], [1700000001.5, "NaN"], [1700000002.5, "0.12"]] },
            { "metric": {}, "values": [[1700000000.5, "9"]] },
        ]});
        assert_eq!(
            parse_range_result(&data),
            [(1_700_000_000_500, 0.01), (1_700_000_002_500, 0.12)]
        );
        assert!(parse_range_result(&json!({ "result": [] })).is_empty());
    }

    #[test]
    fn vector_scalar_empty_and_nan_results() {
        let v = json!({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.12"]}]});
        assert_eq!(parse_query_result(&v), Some(0.12));
        let s = json!({"resultType": "scalar", "result": [1.0, "3"]});
        assert_eq!(parse_query_result(&s), Some(3.0));
        assert_eq!(
            parse_query_result(&json!({"resultType": "vector", "result": []})),
            None
        );
        let nan = json!({"resultType": "vector", "result": [{"value": [1.0, "NaN"]}]});
        assert_eq!(parse_query_result(&nan), None);
    }

    fn host(checks: Json) -> StepOutcome {
        StepOutcome::Succeeded {
            summary: String::new(),
            data_json: json!({ "checks": checks }).to_string(),
            outputs: vec![],
        }
    }

    #[test]
    fn probes_aggregate_across_hosts() {
        let hosts = vec![
            host(json!([{"name": "app", "status": "down", "latency_ms": 5}])),
            host(json!([{"name": "app", "status": "slow", "latency_ms": 900}])),
            StepOutcome::TimedOut,
        ];
        assert_eq!(
            aggregate_probe(&hosts, "app", "any-up"),
            Some(Value::Number(1.0))
        );
        assert_eq!(
            aggregate_probe(&hosts, "app", "share-down"),
            Some(Value::Number(0.5))
        );
        assert_eq!(
            aggregate_probe(&hosts, "app", "max-latency"),
            Some(Value::Number(0.9))
        );
        assert_eq!(aggregate_probe(&hosts, "other", "any-up"), None);
        assert_eq!(
            aggregate_probe(&[StepOutcome::TimedOut], "app", "any-up"),
            None
        );
    }
}
