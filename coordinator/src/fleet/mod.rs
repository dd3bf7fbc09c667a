//! The fleet as the coordinator sees it: domain types (this file, no I/O, no
//! protobuf), who is connected (`registry.rs`) and the dispatcher that signs
//! commands, sends them down agents' streams and matches their answers
//! (`dispatch.rs`). The registry and dispatcher hold the agents' stream
//! senders, so they are a transport edge: they name protobuf messages.

pub mod crl;
pub mod dispatch;
pub mod registry;

/// A plugin an agent reported in its hello.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub actions: Vec<String>,
    /// Why the plugin's file failed to load on the agent (it is disabled
    /// there); empty when it loaded.
    pub load_error: String,
    /// Each action's parameters as the plugin declares them
    /// (`{"actions": {...}}`); empty when it declares none.
    pub schema_json: String,
    /// What the plugin says it needs, each with whether the agent grants it.
    pub needs: Vec<NeedInfo>,
}

/// One need a plugin declares, as an agent reported it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NeedInfo {
    /// `program`, `url`, `read`, `write` or `secret`.
    pub kind: String,
    /// Exactly what; empty: some grant of this kind.
    pub value: String,
    pub why: String,
    /// The plugin works without it.
    pub optional: bool,
    /// Whether the agent grants it.
    pub granted: bool,
}

/// Something a plugin reported while its step ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEvent {
    Log {
        level: String,
        message: String,
    },
    Progress {
        done: u32,
        total: u32,
        message: String,
    },
    Output {
        name: String,
        value_json: String,
    },
}

/// What became of one step sent to one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The agent refused the command; `check` names the verification that failed.
    Refused {
        check: String,
        detail: String,
    },
    Succeeded {
        summary: String,
        data_json: String,
        outputs: Vec<(String, String)>,
    },
    Failed {
        code: String,
        message: String,
    },
    /// No answer within the time allowed.
    TimedOut,
    /// The agent is not connected, or its session ended before it answered.
    Unreachable {
        detail: String,
    },
}

impl StepOutcome {
    /// A short state word for tables and JSON.
    pub fn state(&self) -> &'static str {
        match self {
            StepOutcome::Refused { .. } => "refused",
            StepOutcome::Succeeded { .. } => "ok",
            StepOutcome::Failed { .. } => "failed",
            StepOutcome::TimedOut => "timeout",
            StepOutcome::Unreachable { .. } => "unreachable",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            StepOutcome::Refused { check, detail } => format!("refused ({check}): {detail}"),
            StepOutcome::Succeeded { summary, .. } => summary.clone(),
            StepOutcome::Failed { code, message } => format!("{code}: {message}"),
            StepOutcome::TimedOut => "no answer in time".into(),
            StepOutcome::Unreachable { detail } => detail.clone(),
        }
    }
}
