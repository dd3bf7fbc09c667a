//! The decision matrix: every trigger's standing, and the verdict.
//!
//! The seed plan's rule: an immediate trigger that fires means "execute
//! immediate rollback"; a considered one means "assess for rollback"; each
//! names who decides. Unknown triggers are shown as such and never hidden
//! behind a "no action".

use crate::expr::Truth;
use crate::model::{Class, Trigger, UnknownMeans};
use crate::window::{self, Hold, Sample, Standing, State};

use std::time::Duration;

/// One line of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub trigger: String,
    pub class: Class,
    pub condition: String,
    pub hold: Hold,
    pub standing: Standing,
    pub deciders: Vec<String>,
}

/// What the matrix says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An immediate trigger fired.
    ImmediateRollback {
        triggers: Vec<String>,
        deciders: Vec<String>,
    },
    /// A considered trigger fired.
    AssessForRollback {
        triggers: Vec<String>,
        deciders: Vec<String>,
    },
    /// Nothing fired; `unknown` lists triggers without fresh data.
    NoAction { unknown: Vec<String> },
}

impl Verdict {
    pub fn headline(&self) -> &'static str {
        match self {
            Verdict::ImmediateRollback { .. } => "IMMEDIATE ROLLBACK",
            Verdict::AssessForRollback { .. } => "ASSESS FOR ROLLBACK",
            Verdict::NoAction { .. } => "NO ACTION",
        }
    }
}

/// Applies the trigger's `unknown = ...` rule to one sample.
pub fn interpret(trigger: &Trigger, truth: Truth) -> Truth {
    match (truth, trigger.unknown) {
        (Truth::Unknown, UnknownMeans::Breaching) => Truth::True,
        (Truth::Unknown, UnknownMeans::Ok) => Truth::False,
        (t, _) => t,
    }
}

/// Evaluates one trigger over its samples (already interpreted).
pub fn row(trigger: &Trigger, samples: &[Sample], now_ms: i64, stale_after: Duration) -> Row {
    Row {
        trigger: trigger.name.clone(),
        class: trigger.class,
        condition: trigger.when_text.clone(),
        hold: trigger.hold,
        standing: window::evaluate(samples, trigger.hold, now_ms, stale_after),
        deciders: trigger.deciders.clone(),
    }
}

/// The verdict over all rows.
pub fn verdict(rows: &[Row]) -> Verdict {
    let fired = |class: Class| -> (Vec<String>, Vec<String>) {
        let mut triggers = Vec::new();
        let mut deciders: Vec<String> = Vec::new();
        for row in rows
            .iter()
            .filter(|r| r.class == class && r.standing.state == State::Fired)
        {
            triggers.push(row.trigger.clone());
            for d in &row.deciders {
                if !deciders.contains(d) {
                    deciders.push(d.clone());
                }
            }
        }
        (triggers, deciders)
    };
    let (triggers, deciders) = fired(Class::Immediate);
    if !triggers.is_empty() {
        return Verdict::ImmediateRollback { triggers, deciders };
    }
    let (triggers, deciders) = fired(Class::Considered);
    if !triggers.is_empty() {
        return Verdict::AssessForRollback { triggers, deciders };
    }
    Verdict::NoAction {
        unknown: rows
            .iter()
            .filter(|r| r.standing.state == State::Unknown)
            .map(|r| r.trigger.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::expr::Expr;

    fn trigger(name: &str, class: Class, deciders: &[&str]) -> Trigger {
        Trigger {
            name: name.into(),
            class,
            when_text: "x".into(),
            when: Expr::parse("x").unwrap(),
            hold: Hold::Immediately,
            deciders: deciders.iter().map(|d| d.to_string()).collect(),
            unknown: UnknownMeans::Unknown,
            auto_rollback: false,
        }
    }

    fn at(truth: Truth) -> Vec<Sample> {
        vec![Sample { at_ms: 0, truth }]
    }

    const STALE: Duration = Duration::from_secs(60);

    #[test]
    fn an_immediate_trigger_outranks_considered_ones_and_deciders_are_merged() {
        let a = trigger(
            "Payment Processing Failure",
            Class::Immediate,
            &["product-owner", "release-manager"],
        );
        let b = trigger(
            "High Error Rate",
            Class::Considered,
            &["technical-lead", "release-manager"],
        );
        let rows = vec![
            row(&a, &at(Truth::True), 0, STALE),
            row(&b, &at(Truth::True), 0, STALE),
        ];
        assert_eq!(
            verdict(&rows),
            Verdict::ImmediateRollback {
                triggers: vec!["Payment Processing Failure".into()],
                deciders: vec!["product-owner".into(), "release-manager".into()],
            }
        );
        let rows = vec![
            row(&a, &at(Truth::False), 0, STALE),
            row(&b, &at(Truth::True), 0, STALE),
        ];
        assert_eq!(verdict(&rows).headline(), "ASSESS FOR ROLLBACK");
    }

    #[test]
    fn no_action_lists_the_unknown_triggers() {
        let a = trigger("Data Corruption", Class::Immediate, &["dba"]);
        let rows = vec![row(&a, &[], 0, STALE)];
        assert_eq!(
            verdict(&rows),
            Verdict::NoAction {
                unknown: vec!["Data Corruption".into()]
            }
        );
    }

    #[test]
    fn the_plan_says_what_unknown_means() {
        let mut t = trigger(
            "Complete Service Down",
            Class::Immediate,
            &["release-manager"],
        );
        assert_eq!(interpret(&t, Truth::Unknown), Truth::Unknown);
        t.unknown = UnknownMeans::Breaching;
        assert_eq!(interpret(&t, Truth::Unknown), Truth::True);
        t.unknown = UnknownMeans::Ok;
        assert_eq!(interpret(&t, Truth::Unknown), Truth::False);
        assert_eq!(interpret(&t, Truth::True), Truth::True);
    }
}
