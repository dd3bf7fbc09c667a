//! The decision matrix: every trigger's standing, and the verdict.
//!
//! The seed plan's rule: an immediate trigger that fires means "execute
//! immediate rollback"; a considered one means "assess for rollback"; each
//! names who decides. Unknown triggers are shown as such and never hidden
//! behind a "no action".

use crate::expr::{Truth, Value};
use crate::model::{Class, Trigger, UnknownMeans};
use crate::sections::Escalation;
use crate::window::{Hold, Standing, State};

/// How many of the hosts expected to answer a probe did (the others are
/// unknown, never counted as up or down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub heard: u32,
    pub expected: u32,
}

/// One line of the matrix, from one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub trigger: String,
    pub class: Class,
    pub condition: String,
    pub hold: Hold,
    pub standing: Standing,
    pub deciders: Vec<String>,
    pub auto_rollback: bool,
    /// The value of the signal the condition compares, as evaluated.
    pub value: Option<Value>,
    /// For a probe signal: how many hosts were heard.
    pub heard: Option<Heard>,
    /// When its deciders must have decided (fired + `decide_within`).
    pub decide_by_ms: Option<i64>,
    /// Past that deadline: whom the plan's escalation rules page
    /// ([`escalate_for`]).
    pub escalate_to: Vec<String>,
}

/// What the matrix says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An immediate trigger fired.
    ImmediateRollback,
    /// A considered trigger fired (and no immediate one).
    AssessForRollback,
    /// Nothing fired.
    NoAction,
}

/// A trigger that fired, as the verdict names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub trigger: String,
    pub class: Class,
    pub deciders: Vec<String>,
    /// When its breach began.
    pub since_ms: Option<i64>,
    /// When it met its hold.
    pub fired_at_ms: Option<i64>,
    /// When its deciders must have decided.
    pub decide_by_ms: Option<i64>,
}

/// The verdict over all rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// Every fired trigger, immediate ones first (plan order within a class).
    pub fired: Vec<Fired>,
    /// Who decides the action: the deciders of the fired triggers of the
    /// action's class, merged in order.
    pub deciders: Vec<String>,
    /// Triggers without fresh data (listed whatever the action).
    pub unknown: Vec<String>,
}

impl Verdict {
    pub fn headline(&self) -> &'static str {
        match self.action {
            Action::ImmediateRollback => "IMMEDIATE ROLLBACK",
            Action::AssessForRollback => "ASSESS FOR ROLLBACK",
            Action::NoAction => "NO ACTION",
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

/// One trigger's row, from its standing and the value it was evaluated on.
pub fn row(
    trigger: &Trigger,
    standing: Standing,
    value: Option<Value>,
    heard: Option<Heard>,
) -> Row {
    Row {
        trigger: trigger.name.clone(),
        class: trigger.class,
        condition: trigger.when_text.clone(),
        hold: trigger.hold,
        standing,
        deciders: trigger.deciders.clone(),
        auto_rollback: trigger.auto_rollback,
        value,
        heard,
        decide_by_ms: standing
            .fired_at_ms
            .zip(trigger.decide_within)
            .map(|(at, within)| {
                at.saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX))
            }),
        escalate_to: Vec::new(),
    }
}

/// Whom to escalate to when `row`'s decision deadline has passed at
/// `now_ms`: the plan's escalation rules that hold with what is known
/// before any run (`decision_overdue` true, `outage` the seconds since the
/// breach began; every other figure unknown, so a rule that needs one does
/// not hold). Empty before the deadline.
pub fn escalate_for(escalations: &[Escalation], row: &Row, now_ms: i64) -> Vec<String> {
    let overdue = row.decide_by_ms.is_some_and(|by| now_ms >= by);
    if !overdue {
        return Vec::new();
    }
    let outage = row
        .standing
        .since_ms
        .map(|since| now_ms.saturating_sub(since) as f64 / 1000.0);
    escalations
        .iter()
        .filter(|e| {
            e.when.eval(&|figure| match figure {
                "decision_overdue" => Some(Value::Bool(true)),
                "outage" => outage.map(Value::Number),
                _ => None,
            }) == Truth::True
        })
        .map(|e| e.who.clone())
        .collect()
}

/// The verdict over all rows: every fired trigger, immediate first.
pub fn verdict(rows: &[Row]) -> Verdict {
    let fired_of = |class: Class| {
        rows.iter()
            .filter(move |r| r.class == class && r.standing.state == State::Fired)
    };
    let fired: Vec<Fired> = fired_of(Class::Immediate)
        .chain(fired_of(Class::Considered))
        .map(|r| Fired {
            trigger: r.trigger.clone(),
            class: r.class,
            deciders: r.deciders.clone(),
            since_ms: r.standing.since_ms,
            fired_at_ms: r.standing.fired_at_ms,
            decide_by_ms: r.decide_by_ms,
        })
        .collect();
    let action = match fired.first().map(|f| f.class) {
        Some(Class::Immediate) => Action::ImmediateRollback,
        Some(Class::Considered) => Action::AssessForRollback,
        None => Action::NoAction,
    };
    let mut deciders: Vec<String> = Vec::new();
    if let Some(first) = fired.first() {
        for d in fired
            .iter()
            .filter(|f| f.class == first.class)
            .flat_map(|f| &f.deciders)
        {
            if !deciders.contains(d) {
                deciders.push(d.clone());
            }
        }
    }
    Verdict {
        action,
        fired,
        deciders,
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
    use crate::window::{Sample, Tracker};
    use std::time::Duration;

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
            remedy: None,
            decide_within: None,
        }
    }

    fn row(trigger: &Trigger, samples: &[Sample], now_ms: i64, stale: Duration) -> Row {
        let mut tracker = Tracker::default();
        for s in samples {
            tracker.push(*s, trigger.hold);
        }
        super::row(
            trigger,
            tracker.standing(trigger.hold, now_ms, stale),
            None,
            None,
        )
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
        let v = verdict(&rows);
        assert_eq!(v.action, Action::ImmediateRollback);
        assert_eq!(v.deciders, ["product-owner", "release-manager"]);
        // Every fired trigger is named, immediate first, with its class and deciders.
        let fired: Vec<(&str, Class, Vec<String>)> = v
            .fired
            .iter()
            .map(|f| (f.trigger.as_str(), f.class, f.deciders.clone()))
            .collect();
        assert_eq!(
            fired,
            [
                (
                    "Payment Processing Failure",
                    Class::Immediate,
                    vec!["product-owner".to_string(), "release-manager".into()]
                ),
                (
                    "High Error Rate",
                    Class::Considered,
                    vec!["technical-lead".to_string(), "release-manager".into()]
                ),
            ]
        );
        // Listed in the plan after the considered one, still first.
        let rows_reversed: Vec<Row> = rows.iter().rev().cloned().collect();
        assert_eq!(verdict(&rows_reversed).fired[0].class, Class::Immediate);
        let rows = vec![
            row(&a, &at(Truth::False), 0, STALE),
            row(&b, &at(Truth::True), 0, STALE),
        ];
        assert_eq!(verdict(&rows).headline(), "ASSESS FOR ROLLBACK");
    }

    #[test]
    fn a_fired_trigger_has_a_deadline_and_escalates_past_it() {
        let mut t = trigger("High Error Rate", Class::Considered, &["technical-lead"]);
        t.hold = Hold::For(Duration::from_secs(60));
        t.decide_within = Some(Duration::from_secs(30 * 60));
        let samples: Vec<Sample> = (0..=60)
            .map(|i| Sample {
                at_ms: i * 1000,
                truth: Truth::True,
            })
            .collect();
        let r = row(&t, &samples, 60_000, STALE);
        assert_eq!(r.standing.fired_at_ms, Some(60_000));
        assert_eq!(r.decide_by_ms, Some(60_000 + 30 * 60_000));
        let escalations = crate::sections::check_escalations(
            vec![
                crate::sections::EscalationSpec {
                    who: "CTO".into(),
                    when: "data_loss_usd > 10000 or outage > 4h".into(),
                    channels: vec![],
                },
                crate::sections::EscalationSpec {
                    who: "Head of Engineering".into(),
                    when: "decision_overdue".into(),
                    channels: vec![],
                },
            ],
            &Default::default(),
        )
        .unwrap();
        assert!(escalate_for(&escalations, &r, 60_000 + 30 * 60_000 - 1).is_empty());
        assert_eq!(
            escalate_for(&escalations, &r, 60_000 + 30 * 60_000),
            ["Head of Engineering"]
        );
        // Four hours into the outage the CTO is paged too, from the onset.
        assert_eq!(
            escalate_for(&escalations, &r, 4 * 3_600_000 + 1),
            ["CTO", "Head of Engineering"]
        );
        // Not fired: no deadline.
        let r = row(&t, &samples[..10], 9_000, STALE);
        assert_eq!(r.decide_by_ms, None);
    }

    #[test]
    fn no_action_lists_the_unknown_triggers() {
        let a = trigger("Data Corruption", Class::Immediate, &["dba"]);
        let rows = vec![row(&a, &[], 0, STALE)];
        let v = verdict(&rows);
        assert_eq!(v.action, Action::NoAction);
        assert_eq!(v.unknown, ["Data Corruption"]);
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
