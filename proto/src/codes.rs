//! The words of a step's answer that both sides act on.
//!
//! An agent answers a command with a [`wire::StepResult`](crate::wire::StepResult):
//! done, failed with a code, or refused naming a
//! [`Check`](crate::command::Check). Plugins choose most failure codes
//! (`bad-params`, `unknown-action`, ...), and the coordinator passes them
//! on. The codes here are the ones the agent's host or the coordinator's
//! dispatcher produce themselves and the coordinator's driver acts on, so
//! both sides name the same constant instead of repeating a string. Their
//! text is part of the wire format (and of the journal): never change one.

/// The step is running on the agent right now (the command was sent again,
/// e.g. after a reconnection); its result comes with the first command. The
/// driver asks again, and when time runs out the step timed out.
pub const IN_PROGRESS: &str = "in-progress";

/// The step was running when the agent stopped: its outcome is unknown and
/// the agent never runs it again. The driver records the outcome unknown.
pub const INTERRUPTED: &str = "interrupted";

/// The agent's step ledger could not record or read the step, so it was
/// not run.
pub const LEDGER: &str = "ledger";

/// The coordinator could not journal the command, so it was never sent.
/// The driver asks again.
pub const JOURNAL: &str = "journal";

/// The step ran past its deadline on the agent (it may have done part of
/// its work). The driver records the step timed out.
pub const DEADLINE: &str = "deadline";

/// The plan names a plugin the coordinator has no pin for.
pub const NO_PLUGIN: &str = "no-plugin";

#[cfg(test)]
mod tests {
    use super::*;

    /// The text is the wire format: a change here breaks every journal and
    /// every agent of the previous version.
    #[test]
    fn the_words_are_stable() {
        assert_eq!(
            [
                IN_PROGRESS,
                INTERRUPTED,
                LEDGER,
                JOURNAL,
                DEADLINE,
                NO_PLUGIN
            ],
            [
                "in-progress",
                "interrupted",
                "ledger",
                "journal",
                "deadline",
                "no-plugin"
            ]
        );
    }
}
