//! The agent's Prometheus metrics: every definition lives here, fed by the
//! session (`session.rs`) as commands are admitted or refused and steps end.
//!
//! Names follow Prometheus' conventions: base units (`_seconds`), counters
//! end in `_total` (added by the encoder), build information in `_info`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabel {
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    plugin: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    action: String,
    /// succeeded or failed
    outcome: String,
    /// A failure's code (`deadline`, `memory`, the plugin's own...); empty
    /// for a success.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Plugin run time: 1 ms to about 40 minutes.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 3.0, 15))
}

pub struct AgentMetrics {
    prom: Registry,
    sessions: Gauge,
    admitted: Counter,
    refused: Family<CheckLabel, Counter>,
    steps: Family<OutcomeLabels, Counter>,
    step_seconds: Family<StepLabels, Histogram, fn() -> Histogram>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics::new()
    }
}

impl AgentMetrics {
    pub fn new() -> AgentMetrics {
        let mut m = AgentMetrics {
            prom: Registry::default(),
            sessions: Gauge::default(),
            admitted: Counter::default(),
            refused: Family::default(),
            steps: Family::default(),
            step_seconds: Family::new_with_constructor(duration_histogram),
        };
        let p = &mut m.prom;
        p.register(
            "backout_agent_build",
            "The agent's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        p.register(
            "backout_agent_sessions_connected",
            "Sessions to the coordinator that are open (one, or one per identity with --sessions-from)",
            m.sessions.clone(),
        );
        p.register(
            "backout_agent_commands_admitted",
            "Signed commands that passed every admission check",
            m.admitted.clone(),
        );
        p.register(
            "backout_agent_commands_refused",
            "Signed commands refused, by the first check they failed",
            m.refused.clone(),
        );
        p.register(
            "backout_agent_plugin_steps",
            "Steps run in a plugin, by plugin, action, outcome and failure code",
            m.steps.clone(),
        );
        p.register(
            "backout_agent_plugin_step_duration_seconds",
            "Time each step ran in its plugin, by plugin and action",
            m.step_seconds.clone(),
        );
        m
    }

    pub fn session_opened(&self) {
        self.sessions.inc();
    }

    pub fn session_closed(&self) {
        self.sessions.dec();
    }

    pub fn admitted(&self) {
        self.admitted.inc();
    }

    pub fn refused(&self, check: &str) {
        self.refused
            .get_or_create(&CheckLabel {
                check: check.to_string(),
            })
            .inc();
    }

    /// A step ran in `plugin`: `failure` is its code when it failed.
    pub fn step_ran(&self, plugin: &str, action: &str, failure: Option<&str>, took: Duration) {
        self.steps
            .get_or_create(&OutcomeLabels {
                plugin: plugin.to_string(),
                action: action.to_string(),
                outcome: if failure.is_some() {
                    "failed"
                } else {
                    "succeeded"
                }
                .to_string(),
                code: failure.unwrap_or_default().to_string(),
            })
            .inc();
        self.step_seconds
            .get_or_create(&StepLabels {
                plugin: plugin.to_string(),
                action: action.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.prom) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::AgentMetrics;

    #[test]
    fn refusals_and_steps_are_counted_with_their_labels() {
        let m = AgentMetrics::new();
        m.refused("signature");
        m.refused("signature");
        m.step_ran("health", "check", None, Duration::from_millis(20));
        m.step_ran("app", "rollback", Some("deadline"), Duration::from_secs(2));
        let text = m.render();
        for line in [
            "backout_agent_commands_refused_total{check=\"signature\"} 2",
            "backout_agent_plugin_steps_total{plugin=\"health\",action=\"check\",outcome=\"succeeded\",code=\"\"} 1",
            "backout_agent_plugin_steps_total{plugin=\"app\",action=\"rollback\",outcome=\"failed\",code=\"deadline\"} 1",
            "backout_agent_plugin_step_duration_seconds_count{plugin=\"app\",action=\"rollback\"} 1",
            "backout_agent_build_info{version=\"",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
