//! Sampling signals: Prometheus instant queries over its HTTP API, health
//! probes through the agents' `health` plugin, and the evaluator that ticks
//! every trigger. Each loop survives its source being down: the failure is
//! recorded as an unknown value with its reason, and the loop tries again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use backout_plan::expr::Value;
use backout_plan::matrix::Heard;
use backout_plan::model::{CanaryFrom, Source};
use backout_proto::now_ms;
use serde_json::Value as Json;

use super::board::Board;
use crate::config::CoordinatorConfig;
use crate::fleet::StepOutcome;
use crate::fleet::dispatch::{Audit, Dispatcher};
use crate::journal::{Journal, NewEntry, Record};

/// Starts one task per sampled signal, and the evaluator. Probes go
/// through `dispatcher` to the agents `config` names; their commands are not
/// journaled one by one: the evaluator journals what changes (a trigger's
/// state, a signal's data coming or going) and a `matrix.summary` every
/// `config.journal_summary_every`, so the journal grows with what happens,
/// not with time.
pub fn spawn(
    board: Arc<Board>,
    dispatcher: Arc<Dispatcher>,
    journal: Arc<Journal>,
    config: Arc<CoordinatorConfig>,
) {
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
                let (board, dispatcher, config) =
                    (board.clone(), dispatcher.clone(), config.clone());
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(interval);
                    loop {
                        ticker.tick().await;
                        let hosts = probe_round(&dispatcher, &config, interval).await;
                        let probes: Vec<HostProbe<'_>> = hosts
                            .iter()
                            .map(|h| HostProbe {
                                agent: &h.agent_id,
                                outcome: &h.outcome,
                                expected: expects(&config, &h.agent_id, &check, &aggregate),
                            })
                            .collect();
                        let reading = aggregate_probe(&probes, &check, &aggregate);
                        board.record_probe(
                            &signal.name,
                            now_ms(),
                            reading.value,
                            reading.error,
                            Some(reading.heard),
                        );
                    }
                });
            }
            Source::Canary {
                from:
                    CanaryFrom::Prometheus {
                        url,
                        query,
                        baseline,
                        step,
                    },
                over,
                judge,
            } => {
                let (board, client) = (board.clone(), client.clone());
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(interval);
                    let over_ms = i64::try_from(over.as_millis()).unwrap_or(i64::MAX);
                    loop {
                        ticker.tick().await;
                        let now = now_ms();
                        let start = now.saturating_sub(over_ms);
                        let (canary, base) = tokio::join!(
                            query_range(&client, &url, &query, start, now, step.as_secs()),
                            query_range(&client, &url, &baseline, start, now, step.as_secs())
                        );
                        match (canary, base) {
                            (Ok(canary), Ok(base)) => {
                                let values = |points: Vec<(i64, f64)>| -> Vec<f64> {
                                    points.into_iter().map(|(_, v)| v).collect()
                                };
                                let judgement = judge.judge(&values(canary), &values(base));
                                tracing::debug!(signal = %signal.name, judgement = %judgement.explain(), "canary judged");
                                board.record_judged(&signal.name, now, judgement);
                            }
                            (Err(e), _) | (_, Err(e)) => {
                                tracing::warn!(signal = %signal.name, error = %e, "canary query failed");
                                board.record(&signal.name, now, None, Some(e));
                            }
                        }
                    }
                });
            }
            Source::Canary {
                from:
                    CanaryFrom::Hosts {
                        canary,
                        baseline,
                        check,
                    },
                over,
                judge,
            } => {
                let (board, dispatcher, config) =
                    (board.clone(), dispatcher.clone(), config.clone());
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(interval);
                    let mut samples = GroupSamples::new(over);
                    loop {
                        ticker.tick().await;
                        let hosts = probe_round(&dispatcher, &config, interval).await;
                        let now = now_ms();
                        let side = |agent: &str| {
                            if config.targets(std::slice::from_ref(&canary), agent) {
                                Some(Side::Canary)
                            } else if config.targets(std::slice::from_ref(&baseline), agent) {
                                Some(Side::Baseline)
                            } else {
                                None
                            }
                        };
                        let round: Vec<(&str, &StepOutcome)> = hosts
                            .iter()
                            .map(|h| (h.agent_id.as_str(), &h.outcome))
                            .collect();
                        samples.add_round(now, &round, &check, side);
                        let judgement = judge.judge(&samples.canary(), &samples.baseline());
                        tracing::debug!(signal = %signal.name, judgement = %judgement.explain(), "canary judged");
                        board.record_judged(&signal.name, now, judgement);
                    }
                });
            }
            // Set by people and by events through the Control service.
            Source::Manual | Source::Events { .. } => {}
        }
    }
    let tick = board.tick;
    let summary_every = config.journal_summary_every;
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick);
        let mut summary = tokio::time::interval(summary_every);
        // The first summary after one period, not at once: the first
        // evaluation journals every state it finds.
        summary.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let now = now_ms();
                    let changes = board.evaluate(now);
                    journal_all(&journal, now, &changes);
                }
                _ = summary.tick() => {
                    if let Some(record) = board.summary() {
                        journal_all(&journal, now_ms(), &[record]);
                    }
                }
            }
        }
    });
}

/// One probe round for a signal sampled every `interval`: the health step
/// on every configured agent, given at most the interval (30 s at most),
/// its commands not journaled one by one.
async fn probe_round(
    dispatcher: &Dispatcher,
    config: &CoordinatorConfig,
    interval: Duration,
) -> Vec<crate::assess::HostResult> {
    crate::assess::run(
        dispatcher,
        config,
        interval.min(Duration::from_secs(30)),
        Audit::Sampled,
    )
    .await
}

/// Journals what the board saw change (under no run). A journal that cannot
/// be written is logged; the matrix goes on (the runs stop on it anyway).
fn journal_all(journal: &Journal, at_ms: i64, records: &[Record]) {
    if records.is_empty() {
        return;
    }
    let entries: Vec<NewEntry<'_>> = records
        .iter()
        .map(|record| NewEntry {
            at_ms,
            run_id: "",
            record,
        })
        .collect();
    if let Err(e) = journal.append_all(&entries) {
        tracing::error!(error = %e, "cannot journal the matrix's changes");
    }
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

/// Whether the configuration aims the probe's check at `agent_id` (the
/// error log, for `log-matches`): only those hosts are expected to answer.
pub fn expects(config: &CoordinatorConfig, agent_id: &str, check: &str, aggregate: &str) -> bool {
    if aggregate == "log-matches" {
        return config
            .assess
            .log
            .as_ref()
            .is_some_and(|l| config.targets(&l.agents, agent_id));
    }
    config
        .assess
        .checks
        .iter()
        .any(|c| c.name == check && config.targets(&c.agents, agent_id))
}

/// One host's answer to a probe round.
#[derive(Debug, Clone, Copy)]
pub struct HostProbe<'a> {
    pub agent: &'a str,
    pub outcome: &'a StepOutcome,
    /// The configuration aims the probe's check at this host.
    pub expected: bool,
}

/// A probe signal's value from one round, how many hosts were heard, and
/// why the value is unknown when it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReading {
    pub value: Option<Value>,
    pub heard: Heard,
    pub error: Option<String>,
}

/// Combines the hosts' health results for one check. A host that was
/// expected to run it and did not answer (unreachable, timed out, failed,
/// silent about the check, or unable to make it: status `unknown`) is
/// unknown, never up or down: the value is
/// unknown whenever the missing hosts could change it (Kleene logic, as for
/// conditions).
///
/// * `any-up`: 1 while any host heard has it up (certain whatever the
///   others say); 0 only when every expected host was heard and none is up.
/// * `share-down`: the fraction of the expected hosts with it down.
/// * `max-latency`: the slowest, in seconds.
/// * `log-matches`: error-log lines matching (`[assess.log]`), summed over
///   hosts; its `check` is `error-log`.
///
/// The last three need every expected host.
pub fn aggregate_probe(hosts: &[HostProbe<'_>], check: &str, aggregate: &str) -> ProbeReading {
    let expected: Vec<&HostProbe<'_>> = hosts.iter().filter(|h| h.expected).collect();
    let mut results: Vec<Json> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for host in &expected {
        let result = match host.outcome {
            StepOutcome::Succeeded { data_json, .. } => serde_json::from_str::<Json>(data_json)
                .ok()
                .and_then(|data| {
                    if aggregate == "log-matches" {
                        data["log"]["matches"]
                            .as_f64()
                            .map(|m| serde_json::json!({ "matches": m }))
                    } else {
                        data["checks"]
                            .as_array()?
                            .iter()
                            .find(|c| c["name"] == check)
                            .cloned()
                    }
                }),
            _ => None,
        };
        match result {
            // A check the host could not make (its grants, a bad URL) says
            // nothing of the service: that host is not heard.
            Some(result) if result["status"] == "unknown" => missing.push(format!(
                "{} (could not check: {})",
                host.agent,
                result["detail"].as_str().unwrap_or("no detail")
            )),
            Some(result) => results.push(result),
            None => missing.push(match host.outcome {
                StepOutcome::Succeeded { .. } => format!("{} (did not report it)", host.agent),
                other => format!("{} ({})", host.agent, other.state()),
            }),
        }
    }
    let heard = Heard {
        heard: u32::try_from(results.len()).unwrap_or(u32::MAX),
        expected: u32::try_from(expected.len()).unwrap_or(u32::MAX),
    };
    let unknown = |error: String| ProbeReading {
        value: None,
        heard,
        error: Some(error),
    };
    if expected.is_empty() {
        return unknown(if aggregate == "log-matches" {
            "no host is configured with an error log ([assess.log])".into()
        } else {
            format!("no host is configured to run check `{check}`")
        });
    }
    let up = |c: &Json| c["status"] == "up" || c["status"] == "slow";
    let not_heard = || {
        format!(
            "{} of {} hosts heard; not heard: {}",
            heard.heard,
            heard.expected,
            missing.join(", ")
        )
    };
    let value = match aggregate {
        "any-up" if results.iter().any(up) => 1.0,
        _ if !missing.is_empty() => return unknown(not_heard()),
        "any-up" => 0.0,
        "share-down" => results.iter().filter(|c| !up(c)).count() as f64 / results.len() as f64,
        "max-latency" => {
            results
                .iter()
                .filter_map(|c| c["latency_ms"].as_f64())
                .fold(0.0, f64::max)
                / 1000.0
        }
        "log-matches" => results.iter().filter_map(|c| c["matches"].as_f64()).sum(),
        other => return unknown(format!("unknown aggregate `{other}`")),
    };
    ProbeReading {
        value: Some(Value::Number(value)),
        heard,
        error: None,
    }
}

/// Which side of a canary comparison a host is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Canary,
    Baseline,
}

/// The response time (seconds) a host's health result gives for `check`:
/// only a check that answered (`up` or `slow`); a host that was not heard,
/// or whose check is down or could not be made, gives no sample (the probe
/// signals say down and unknown; the judge compares answers).
pub fn response_time(outcome: &StepOutcome, check: &str) -> Option<f64> {
    let StepOutcome::Succeeded { data_json, .. } = outcome else {
        return None;
    };
    let data: Json = serde_json::from_str(data_json).ok()?;
    let result = data["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == check)?;
    let answered = result["status"] == "up" || result["status"] == "slow";
    let ms = result["latency_ms"].as_f64()?;
    (answered && ms.is_finite()).then_some(ms / 1000.0)
}

/// The samples of a canary judge over host groups: one response time per
/// host per probe round, each side kept for the last `over`.
#[derive(Debug)]
pub struct GroupSamples {
    over_ms: i64,
    canary: VecDeque<(i64, f64)>,
    baseline: VecDeque<(i64, f64)>,
}

impl GroupSamples {
    pub fn new(over: Duration) -> GroupSamples {
        GroupSamples {
            over_ms: i64::try_from(over.as_millis()).unwrap_or(i64::MAX),
            canary: VecDeque::new(),
            baseline: VecDeque::new(),
        }
    }

    /// Adds one probe round taken at `at_ms`: each host's response time to
    /// `check`, on the side `side` puts it (hosts in neither group are left
    /// out), and forgets what is older than `over`.
    pub fn add_round(
        &mut self,
        at_ms: i64,
        hosts: &[(&str, &StepOutcome)],
        check: &str,
        side: impl Fn(&str) -> Option<Side>,
    ) {
        for (agent, outcome) in hosts {
            let (Some(side), Some(seconds)) = (side(agent), response_time(outcome, check)) else {
                continue;
            };
            match side {
                Side::Canary => self.canary.push_back((at_ms, seconds)),
                Side::Baseline => self.baseline.push_back((at_ms, seconds)),
            }
        }
        let oldest = at_ms.saturating_sub(self.over_ms);
        for points in [&mut self.canary, &mut self.baseline] {
            while points.front().is_some_and(|(at, _)| *at < oldest) {
                points.pop_front();
            }
        }
    }

    pub fn canary(&self) -> Vec<f64> {
        self.canary.iter().map(|(_, v)| *v).collect()
    }

    pub fn baseline(&self) -> Vec<f64> {
        self.baseline.iter().map(|(_, v)| *v).collect()
    }
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

    fn probes<'a>(outcomes: &'a [(&'a str, StepOutcome)]) -> Vec<HostProbe<'a>> {
        outcomes
            .iter()
            .map(|(agent, outcome)| HostProbe {
                agent,
                outcome,
                expected: true,
            })
            .collect()
    }

    fn value(hosts: &[HostProbe<'_>], check: &str, aggregate: &str) -> Option<Value> {
        aggregate_probe(hosts, check, aggregate).value
    }

    #[test]
    fn a_check_a_host_could_not_make_is_not_heard_never_down() {
        let down = host(json!([{"name": "app", "status": "down", "latency_ms": 5}]));
        let denied = host(json!([{"name": "app", "status": "unknown", "latency_ms": 0,
            "detail": "not allowed: HTTP to http://10.0.0.1/health is not granted to plugin health"}]));
        let hosts = [("app-1", down.clone()), ("app-2", denied)];
        let reading = aggregate_probe(&probes(&hosts), "app", "any-up");
        assert_eq!(
            reading.value, None,
            "a refused check must not make the service down"
        );
        assert_eq!(
            reading.heard,
            Heard {
                heard: 1,
                expected: 2
            }
        );
        assert!(
            reading
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("app-2 (could not check: not allowed"),
            "{reading:?}"
        );
        let both_down = [("app-1", down.clone()), ("app-2", down)];
        assert_eq!(
            value(&probes(&both_down), "app", "any-up"),
            Some(Value::Number(0.0))
        );
    }

    #[test]
    fn probes_aggregate_across_hosts_when_every_host_answers() {
        let hosts = [
            (
                "app-1",
                host(json!([{"name": "app", "status": "down", "latency_ms": 5}])),
            ),
            (
                "app-2",
                host(json!([{"name": "app", "status": "slow", "latency_ms": 900}])),
            ),
            (
                "app-3",
                host(json!([{"name": "app", "status": "up", "latency_ms": 30}])),
            ),
        ];
        let hosts = probes(&hosts);
        assert_eq!(value(&hosts, "app", "any-up"), Some(Value::Number(1.0)));
        let third = 1.0 / 3.0;
        assert_eq!(
            value(&hosts, "app", "share-down"),
            Some(Value::Number(third))
        );
        assert_eq!(
            value(&hosts, "app", "max-latency"),
            Some(Value::Number(0.9))
        );
        let reading = aggregate_probe(&hosts, "other", "any-up");
        assert_eq!(reading.value, None);
        assert_eq!(
            reading.heard,
            Heard {
                heard: 0,
                expected: 3
            }
        );
    }

    /// The case: two hosts down, the third's agent unreachable (its
    /// app may well answer). Nothing says the whole service is down.
    #[test]
    fn a_host_not_heard_is_unknown_never_down() {
        let down = || host(json!([{"name": "app", "status": "down", "latency_ms": 5}]));
        let outcomes = [
            ("app-1", down()),
            ("app-2", down()),
            (
                "app-3",
                StepOutcome::Unreachable {
                    detail: "not connected".into(),
                },
            ),
        ];
        let hosts = probes(&outcomes);
        for aggregate in ["any-up", "share-down", "max-latency"] {
            let reading = aggregate_probe(&hosts, "app", aggregate);
            assert_eq!(reading.value, None, "{aggregate}");
            assert_eq!(
                reading.heard,
                Heard {
                    heard: 2,
                    expected: 3
                }
            );
            let error = reading.error.unwrap();
            assert!(
                error.contains("2 of 3 hosts heard") && error.contains("app-3 (unreachable)"),
                "{error}"
            );
        }
        // One host heard up settles any-up whatever the others say.
        let outcomes = [
            ("app-1", host(json!([{"name": "app", "status": "up"}]))),
            ("app-2", StepOutcome::TimedOut),
        ];
        assert_eq!(
            value(&probes(&outcomes), "app", "any-up"),
            Some(Value::Number(1.0))
        );
        // All three heard and down: the service is down.
        let outcomes = [("app-1", down()), ("app-2", down()), ("app-3", down())];
        assert_eq!(
            value(&probes(&outcomes), "app", "any-up"),
            Some(Value::Number(0.0))
        );
        assert_eq!(
            value(&probes(&outcomes), "app", "share-down"),
            Some(Value::Number(1.0))
        );
    }

    #[test]
    fn hosts_the_check_is_not_aimed_at_are_not_waited_for() {
        let db = StepOutcome::Unreachable {
            detail: "gone".into(),
        };
        let down = host(json!([{"name": "app", "status": "down"}]));
        let hosts = [
            HostProbe {
                agent: "app-1",
                outcome: &down,
                expected: true,
            },
            HostProbe {
                agent: "db-1",
                outcome: &db,
                expected: false,
            },
        ];
        let reading = aggregate_probe(&hosts, "app", "any-up");
        assert_eq!(reading.value, Some(Value::Number(0.0)));
        assert_eq!(
            reading.heard,
            Heard {
                heard: 1,
                expected: 1
            }
        );
        let none = [HostProbe {
            agent: "db-1",
            outcome: &db,
            expected: false,
        }];
        let error = aggregate_probe(&none, "app", "any-up").error.unwrap();
        assert!(
            error.contains("no host is configured to run check `app`"),
            "{error}"
        );
    }

    #[test]
    fn log_matches_sums_the_error_log_over_hosts() {
        let logged = |matches: u64| {
            StepOutcome::Succeeded {
            summary: String::new(),
            data_json: json!({ "checks": [], "log": { "path": "/var/log/app.log", "lines": 100, "matches": matches } }).to_string(),
            outputs: vec![],
        }
        };
        let outcomes = [("app-1", logged(2)), ("app-2", logged(3))];
        assert_eq!(
            value(&probes(&outcomes), "error-log", "log-matches"),
            Some(Value::Number(5.0))
        );
        let outcomes = [("app-1", logged(2)), ("app-2", StepOutcome::TimedOut)];
        assert_eq!(value(&probes(&outcomes), "error-log", "log-matches"), None);
    }

    /// A canary over host groups: each round adds one response time per
    /// host that answered, on its group's side; hosts in neither group, a
    /// check that is down or could not be made, and an unreachable host add
    /// nothing; values older than the window are forgotten.
    #[test]
    fn group_samples_take_each_sides_response_times_over_the_window() {
        let checked = |status: &str, ms: u64| {
            host(json!([
                {"name": "app", "status": status, "latency_ms": ms},
                {"name": "db", "status": "up", "latency_ms": 9000},
            ]))
        };
        let side = |agent: &str| match agent {
            "app-1" => Some(Side::Canary),
            "app-2" | "app-3" => Some(Side::Baseline),
            _ => None,
        };
        let mut samples = GroupSamples::new(Duration::from_secs(10));
        let unreachable = StepOutcome::Unreachable {
            detail: "gone".into(),
        };
        let (slow, up, down) = (checked("slow", 900), checked("up", 30), checked("down", 2));
        let unknown = checked("unknown", 0);
        let round: [(&str, &StepOutcome); 5] = [
            ("app-1", &slow),
            ("app-2", &up),
            ("app-3", &down),
            ("db-1", &up),
            ("app-4", &unreachable),
        ];
        samples.add_round(1_000, &round, "app", side);
        assert_eq!(samples.canary(), [0.9]);
        assert_eq!(samples.baseline(), [0.03]);
        let round: [(&str, &StepOutcome); 3] =
            [("app-1", &unknown), ("app-2", &up), ("app-3", &up)];
        samples.add_round(6_000, &round, "app", side);
        assert_eq!(samples.canary(), [0.9]);
        assert_eq!(samples.baseline(), [0.03, 0.03, 0.03]);
        // 11.5 s: the round of 1 s is out of the 10 s window.
        let round: [(&str, &StepOutcome); 2] = [("app-1", &up), ("app-3", &slow)];
        samples.add_round(11_500, &round, "app", side);
        assert_eq!(samples.canary(), [0.03]);
        assert_eq!(samples.baseline(), [0.03, 0.03, 0.9]);
        assert_eq!(response_time(&up, "db"), Some(9.0));
        assert_eq!(response_time(&up, "missing"), None);
    }

    /// The samples feed the judge: a canary answering in 900 ms against a
    /// baseline in 30 ms fails once there are enough rounds; before that
    /// it is inconclusive.
    #[test]
    fn a_slow_canary_group_fails_the_judge_after_enough_rounds() {
        use backout_plan::judge::{Call, Judge};
        let judge = Judge {
            min_samples: 5,
            ..Judge::default()
        };
        let side = |agent: &str| {
            Some(if agent == "app-1" {
                Side::Canary
            } else {
                Side::Baseline
            })
        };
        let mut samples = GroupSamples::new(Duration::from_secs(60));
        for round in 0..5u64 {
            let slow = host(json!([{"name": "app", "status": "slow", "latency_ms": 900 + round}]));
            let up = host(json!([{"name": "app", "status": "up", "latency_ms": 30 + round}]));
            let hosts: [(&str, &StepOutcome); 2] = [("app-1", &slow), ("app-2", &up)];
            samples.add_round(i64::try_from(round * 1000).unwrap(), &hosts, "app", side);
            let call = judge.judge(&samples.canary(), &samples.baseline()).call;
            let expected = if round < 4 {
                Call::Inconclusive
            } else {
                Call::Fail
            };
            assert_eq!(call, expected, "round {round}");
        }
    }
}
