//! The report as Markdown: what a release manager pastes into the incident
//! ticket the next morning.

use std::fmt::Write;

use super::Report;
use crate::text::{human_ms, rfc3339};

fn at(ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".into(), rfc3339)
}

fn span(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => human_ms(e - s),
        _ => "—".into(),
    }
}

/// Text from plugins and operators, safe in a table cell: pipes and line
/// breaks would break the table, and `<` and `&` would start HTML or an
/// entity to a Markdown renderer; other control characters are dropped.
/// `>` alone opens no tag and stays as written (`a -> b`).
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "✅ met",
        Some(false) => "❌ not met",
        None => "— not measured",
    }
}

pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let run = &r.run;
    let _ = writeln!(o, "# Rollback report: {}\n", cell(&r.plan));
    let _ = writeln!(o, "| | |\n| --- | --- |");
    let kind = match (run.dry_run, run.drill) {
        (true, _) => " (dry run)",
        (_, true) => " (drill)",
        _ => "",
    };
    let _ = writeln!(o, "| Run | `{}`{kind} |", run.id);
    let _ = writeln!(o, "| Status | **{}** |", run.status.to_uppercase());
    let _ = writeln!(o, "| Reason | {} |", cell(&run.reason));
    if !run.to_version.is_empty() {
        let _ = writeln!(o, "| Target version | {} |", cell(&run.to_version));
    }
    let _ = writeln!(o, "| Started by | {} |", run.started_by);
    let _ = writeln!(o, "| Started | {} |", rfc3339(run.started_at_ms));
    let _ = writeln!(o, "| Ended | {} |", at(run.ended_at_ms));
    let _ = writeln!(o, "| Duration | {} |", human_ms(run.duration_ms));
    let _ = writeln!(
        o,
        "| Where the time went | {} |",
        super::timing_words(&run.timing)
    );
    let _ = writeln!(o, "| Journal | {} |", cell(&r.journal));
    if let Some(c) = &r.checkpoint {
        let _ = writeln!(
            o,
            "| Journal checkpoint | `{}` signed {} by key {}: `{}` (check it later: `backout audit verify --checkpoint {}`) |",
            c.announced(),
            rfc3339(c.at_ms),
            c.key_id,
            c.signature,
            c.announced()
        );
    }

    if let Some(l) = &r.leadership {
        let _ = writeln!(o, "\n## Leader and takeovers\n");
        for line in super::leadership::words(l) {
            let _ = writeln!(o, "- {line}");
        }
    }

    let _ = writeln!(o, "\n## Success criteria\n");
    if r.success.is_empty() {
        let _ = writeln!(o, "The plan sets none (`[success]`).");
    } else {
        let _ = writeln!(
            o,
            "| Criterion | Target | Measured | Result |\n| --- | --- | --- | --- |"
        );
        for c in &r.success {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                cell(&c.name),
                cell(&c.target),
                cell(&c.measured),
                met(c.met)
            );
        }
    }

    let _ = writeln!(o, "\n## Phases\n");
    let _ = writeln!(
        o,
        "| Phase | Status | Start | End | Duration | Last drill | Hosts |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for p in &r.phases {
        let hosts: Vec<String> = p
            .hosts
            .iter()
            .map(|h| format!("{} {}", h.host, h.state))
            .collect();
        let drill = p
            .last_drill_s
            .map_or_else(|| "—".into(), |s| human_ms((s * 1000.0) as i64));
        let _ = writeln!(
            o,
            "| {} ({}) | {} | {} | {} | {} | {drill} | {} |",
            cell(&p.name),
            p.id,
            p.status,
            at(p.started_at_ms),
            at(p.ended_at_ms),
            span(p.started_at_ms, p.ended_at_ms),
            cell(&hosts.join(", "))
        );
    }

    let _ = writeln!(o, "\n## Timeline\n");
    let _ = writeln!(
        o,
        "| Start | End | Phase | Host | Step | Attempt | Result | Summary |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for s in &r.timeline {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} |",
            rfc3339(s.started_at_ms),
            at(s.ended_at_ms),
            s.phase,
            s.host,
            s.step,
            cell(&s.what),
            s.attempt,
            s.result,
            cell(&s.summary)
        );
    }

    let _ = writeln!(o, "\n## Decision makers and approvals\n");
    if r.approvals.is_empty() {
        let _ = writeln!(o, "None recorded.");
    }
    for d in &r.approvals {
        let verb = if d.approved { "approved" } else { "REFUSED" };
        let why = if d.why.is_empty() {
            String::new()
        } else {
            format!(": {}", d.why)
        };
        let _ = writeln!(
            o,
            "- {} — {} ({}) {verb} `{}`{}",
            rfc3339(d.at_ms),
            d.by,
            d.role,
            d.scope,
            cell(&why)
        );
    }

    let baselines: Vec<_> = r
        .timeline
        .iter()
        .filter(|s| s.data["samples"].is_array())
        .collect();
    if !baselines.is_empty() {
        let _ = writeln!(
            o,
            "\n## Stabilisation baseline\n\n| Host | Samples | Response avg | Response max | Errors at the end | Samples with warnings |\n| --- | --- | --- | --- | --- | --- |"
        );
        for s in baselines {
            let d = &s.data;
            let _ = writeln!(
                o,
                "| {} | {} | {:.2} s | {:.2} s | {} | {} |",
                s.host,
                d["samples"].as_array().map_or(0, Vec::len),
                d["avg_response_s"].as_f64().unwrap_or(0.0),
                d["max_response_s"].as_f64().unwrap_or(0.0),
                d["log"]["matches"],
                d["samples_with_warnings"]
            );
        }
    }

    if !r.backups.is_empty() {
        let _ = writeln!(
            o,
            "\n## Backups\n\nAs each backup step reported them (check a file with `sha256sum`).\n\n| Host | Step | File | Size | SHA-256 |\n| --- | --- | --- | --- | --- |"
        );
        for b in &r.backups {
            let _ = writeln!(
                o,
                "| {} | {}/{} | {} | {} bytes | `{}` |",
                b.host,
                b.phase,
                b.step,
                cell(&b.file),
                b.size,
                cell(&b.sha256)
            );
        }
    }

    if !r.versions.is_empty() {
        let _ = writeln!(
            o,
            "\n## Versions\n\n| Host | From | To |\n| --- | --- | --- |"
        );
        for v in &r.versions {
            let _ = writeln!(o, "| {} | {} | {} |", v.host, cell(&v.from), cell(&v.to));
        }
    }

    let _ = writeln!(o, "\n## Impact\n\n| Figure | Value |\n| --- | --- |");
    for (name, value) in &r.figures {
        let _ = writeln!(o, "| {name} | {} |", super::figure_text(name, value));
    }

    let _ = writeln!(o, "\n## Communication\n");
    if r.communications.is_empty() {
        let _ = writeln!(o, "No message was sent.");
    }
    for n in &r.communications {
        let what = if n.sent {
            "sent".to_string()
        } else {
            format!("NOT sent: {}", n.detail)
        };
        let _ = writeln!(
            o,
            "- {} — `{}` to {} ({}): {}",
            rfc3339(n.at_ms),
            n.template,
            n.channel,
            n.moment,
            cell(&what)
        );
        for to in &n.recipients {
            let word = if to.delivered {
                "delivered"
            } else {
                "NOT delivered"
            };
            let _ = writeln!(o, "  - {}: {word} ({})", to.address, cell(&to.reply));
        }
        for who in &n.paged {
            let word = if n.sent { "paged" } else { "NOT paged" };
            let _ = writeln!(o, "  - {word}: {}", cell(who));
        }
        if let Some(incident) = &n.incident {
            let link = incident.link.as_deref().unwrap_or("no public link");
            let _ = writeln!(o, "  - incident {}: {}", cell(&incident.id), cell(link));
        }
    }

    let _ = writeln!(o, "\n## Escalation\n");
    if r.escalations.is_empty() {
        let _ = writeln!(o, "The plan sets no escalation rules.");
    }
    for e in &r.escalations {
        let _ = writeln!(o, "- {}: `{}` — **{}**", e.who, e.when, e.state);
    }

    let _ = writeln!(o, "\n## Evidence before the decision\n");
    if r.evidence.is_empty() {
        let _ = writeln!(
            o,
            "No decision or signal was recorded in the six hours before the run."
        );
    }
    for e in &r.evidence {
        let _ = writeln!(o, "- {} — {}", rfc3339(e.at_ms), cell(&e.text));
    }

    let _ = writeln!(o, "\n## Time to decision\n");
    if r.time_to_decision.is_empty() {
        let _ = writeln!(o, "No trigger fired in the six hours before the run.");
    }
    for d in &r.time_to_decision {
        let _ = writeln!(o, "- {}", cell(&super::decision_words(d)));
    }

    if !r.judged.is_empty() {
        let _ = writeln!(o, "\n## Canary judge\n");
        for j in &r.judged {
            let _ = writeln!(
                o,
                "- {} fired {} on the canary judge: {} (canary {} values, baseline {}; chart in the HTML report)",
                cell(&j.trigger),
                rfc3339(j.at_ms),
                cell(&j.figures.caption()),
                j.figures.canary.len(),
                j.figures.baseline.len()
            );
        }
    }

    let _ = writeln!(o, "\n## Follow-ups\n");
    for f in &r.follow_ups {
        let _ = writeln!(o, "- [ ] {} — due {}", f.what, at(f.due_at_ms));
    }
    let _ = writeln!(
        o,
        "\n### Root cause\n\n_To be written._\n\n### Prevention measures\n\n_To be written._\n\n### Lessons learned\n\n_To be written._"
    );
    let _ = writeln!(
        o,
        "\n---\nGenerated {} by Backout from the run's journal.",
        rfc3339(r.generated_at_ms)
    );
    o
}

#[cfg(test)]
mod cell_tests {
    #[test]
    fn a_cell_keeps_its_table_and_carries_no_html() {
        assert_eq!(
            super::cell("a|b\n<script>x</script> & \u{1b}[2Jc"),
            "a\\|b &lt;script>x&lt;/script> &amp; [2Jc"
        );
        assert_eq!(super::cell("stop -> start"), "stop -> start");
    }
}
