//! The report as one self-contained HTML page, with an SVG timeline: one bar
//! per phase and host, from its first step's start to its last step's end,
//! coloured by how the host ended.

use std::fmt::Write;

use super::Report;
use crate::text::{human_ms, rfc3339};

/// Escapes text for HTML content and attributes.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(state: &str) -> &'static str {
    match state {
        "succeeded" => "#2e7d32",
        "failed" => "#c62828",
        "timed-out" => "#ef6c00",
        "unreachable" => "#6a1b9a",
        "unknown" => "#455a64",
        _ => "#1565c0",
    }
}

const ROW: i64 = 26;
const LABEL: i64 = 220;
const WIDTH: i64 = 900;

/// One bar per phase and host that ran; the x axis is the run's time.
pub fn timeline_svg(r: &Report) -> String {
    let start = r.run.started_at_ms;
    let end = r
        .run
        .ended_at_ms
        .unwrap_or(r.generated_at_ms)
        .max(start + 1);
    let x = |ms: i64| LABEL + (ms - start) * (WIDTH - LABEL - 10) / (end - start);
    let bars: Vec<(String, String, i64, i64)> = r
        .phases
        .iter()
        .flat_map(|p| {
            p.hosts.iter().filter_map(|h| {
                Some((
                    format!("{} / {}", p.id, h.host),
                    h.state.clone(),
                    h.started_at_ms?,
                    h.ended_at_ms.unwrap_or(end),
                ))
            })
        })
        .collect();
    let height = ROW * (bars.len() as i64 + 1) + 10;
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">"
    );
    for (i, (label, state, from, to)) in bars.iter().enumerate() {
        let y = ROW * i as i64 + 6;
        let (x0, x1) = (x(*from), x(*to).max(x(*from) + 2));
        let _ = write!(
            o,
            "<text x=\"4\" y=\"{}\" font-size=\"12\">{}</text><rect class=\"bar\" x=\"{x0}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
            y + 14,
            esc(label),
            x1 - x0,
            ROW - 8,
            colour(state),
            esc(label),
            esc(state),
            human_ms(to - from)
        );
    }
    let axis = ROW * bars.len() as i64 + 18;
    let _ = write!(
        o,
        "<text x=\"{LABEL}\" y=\"{axis}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{axis}\" font-size=\"11\" text-anchor=\"end\">{} (+{})</text></svg>",
        esc(&rfc3339(start)),
        WIDTH - 10,
        esc(&rfc3339(end)),
        human_ms(end - start)
    );
    o
}

const CHART_H: i64 = 180;

/// A signal's line over time, its trigger's threshold dashed, and the run's
/// start and end as vertical lines.
pub fn chart_svg(r: &Report, c: &super::Chart) -> String {
    let Some((first, last)) = c.points.first().zip(c.points.last()) else {
        return format!(
            "<p>{}: no data ({})</p>",
            esc(&c.signal),
            esc(c.error.as_deref().unwrap_or("no samples"))
        );
    };
    // The x axis covers the points and the run itself.
    let run_end = r.run.ended_at_ms.unwrap_or(r.generated_at_ms);
    let t0 = first.0.min(r.run.started_at_ms);
    let t1 = last.0.max(run_end).max(t0 + 1);
    let top = c
        .points
        .iter()
        .map(|p| p.1)
        .chain(c.threshold)
        .fold(f64::MIN, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let x = |ms: i64| 50 + (ms - t0) * (WIDTH - 60) / (t1 - t0);
    let y = |v: f64| 10 + ((1.0 - v / top) * (CHART_H - 30) as f64) as i64;
    let points: Vec<String> = c
        .points
        .iter()
        .map(|(t, v)| format!("{},{}", x(*t), y(*v)))
        .collect();
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{WIDTH}\" height=\"{CHART_H}\"><text x=\"50\" y=\"12\" font-size=\"12\">{} — {}</text>",
        esc(&c.trigger),
        esc(&c.condition)
    );
    let _ = write!(
        o,
        "<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\" points=\"{}\"/>",
        points.join(" ")
    );
    if let Some(t) = c.threshold {
        let _ = write!(
            o,
            "<line class=\"threshold\" x1=\"50\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#c62828\" stroke-dasharray=\"6 4\"/><text x=\"4\" y=\"{y}\" font-size=\"11\">{t}</text>",
            WIDTH - 10,
            y = y(t)
        );
    }
    for (label, at) in [
        ("start", Some(r.run.started_at_ms)),
        ("end", r.run.ended_at_ms),
    ] {
        if let Some(at) = at.filter(|at| (t0..=t1).contains(at)) {
            let _ = write!(
                o,
                "<line x1=\"{x}\" x2=\"{x}\" y1=\"14\" y2=\"{}\" stroke=\"#555\"/><text x=\"{x}\" y=\"{}\" font-size=\"11\">run {label}</text>",
                CHART_H - 18,
                CHART_H - 6,
                x = x(at)
            );
        }
    }
    o.push_str("</svg>");
    o
}

pub fn html(r: &Report) -> String {
    let run = &r.run;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Rollback report {id}</title><style>\
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}}\
.met{{color:#2e7d32}}.unmet{{color:#c62828}}.na{{color:#777}}h1{{font-size:1.6em}}</style></head><body>",
        id = esc(&run.id)
    );
    let _ = write!(
        o,
        "<h1>Rollback report: {}</h1><table><tr><th>Run</th><td><code>{}</code>{}</td></tr><tr><th>Status</th><td><b>{}</b></td></tr><tr><th>Reason</th><td>{}</td></tr>{}<tr><th>Started by</th><td>{}</td></tr><tr><th>Started</th><td>{}</td></tr><tr><th>Ended</th><td>{}</td></tr><tr><th>Duration</th><td>{} ({})</td></tr><tr><th>Journal</th><td>{}</td></tr>{}</table>",
        esc(&r.plan),
        esc(&run.id),
        match (run.dry_run, run.drill) {
            (true, _) => " (dry run)",
            (_, true) => " (drill)",
            _ => "",
        },
        esc(&run.status.to_uppercase()),
        esc(&run.reason),
        if run.to_version.is_empty() {
            String::new()
        } else {
            format!(
                "<tr><th>Target version</th><td>{}</td></tr>",
                esc(&run.to_version)
            )
        },
        esc(&run.started_by),
        rfc3339(run.started_at_ms),
        run.ended_at_ms.map_or("—".into(), rfc3339),
        human_ms(run.duration_ms),
        esc(&super::timing_words(&run.timing)),
        esc(&r.journal),
        r.checkpoint.as_ref().map_or(String::new(), |c| format!(
            "<tr><th>Journal checkpoint</th><td><code>{}</code> signed {} by key {}: <code>{}</code> (check it later: <code>backout audit verify --checkpoint {}</code>)</td></tr>",
            esc(&c.announced()),
            rfc3339(c.at_ms),
            esc(&c.key_id),
            esc(&c.signature),
            esc(&c.announced())
        ))
    );
    if let Some(l) = &r.leadership {
        let _ = write!(o, "<h2>Leader and takeovers</h2><ul>");
        for line in super::leadership::words(l) {
            let _ = write!(o, "<li>{}</li>", esc(&line));
        }
        let _ = write!(o, "</ul>");
    }
    let _ = write!(o, "<h2>Timeline</h2>{}", timeline_svg(r));
    if !r.charts.is_empty() {
        let _ = write!(o, "<h2>Signals around the rollback</h2>");
        for c in &r.charts {
            o.push_str(&chart_svg(r, c));
        }
    }
    if !r.judged.is_empty() {
        let _ = write!(o, "<h2>Canary judge</h2>");
        for j in &r.judged {
            let _ = write!(
                o,
                "<figure><figcaption>{} fired {} on the canary judge</figcaption>{}</figure>",
                esc(&j.trigger),
                rfc3339(j.at_ms),
                j.figures.svg()
            );
        }
    }
    let _ = write!(o, "<h2>Success criteria</h2>");
    if r.success.is_empty() {
        let _ = write!(
            o,
            "<p>The plan sets none (<code>[success]</code>).</p><table>"
        );
    } else {
        let _ = write!(
            o,
            "<table><tr><th>Criterion</th><th>Target</th><th>Measured</th><th>Result</th></tr>"
        );
    }
    for c in &r.success {
        let (class, word) = match c.met {
            Some(true) => ("met", "met"),
            Some(false) => ("unmet", "not met"),
            None => ("na", "not measured"),
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            esc(&c.name),
            esc(&c.target),
            esc(&c.measured)
        );
    }
    let _ = write!(
        o,
        "</table><h2>Steps</h2><table><tr><th>Start</th><th>Phase</th><th>Host</th><th>Step</th><th>Attempt</th><th>Result</th><th>Summary</th></tr>"
    );
    for s in &r.timeline {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} <small>{}</small></td><td>{}</td><td style=\"color:{}\">{}</td><td>{}</td></tr>",
            rfc3339(s.started_at_ms),
            esc(&s.phase),
            esc(&s.host),
            esc(&s.step),
            esc(&s.what),
            s.attempt,
            colour(&s.result),
            esc(&s.result),
            esc(&s.summary)
        );
    }
    let _ = write!(o, "</table><h2>Approvals</h2><ul>");
    for d in &r.approvals {
        let _ = write!(
            o,
            "<li>{} — {} ({}) {} <code>{}</code> {}</li>",
            rfc3339(d.at_ms),
            esc(&d.by),
            esc(&d.role),
            if d.approved {
                "approved"
            } else {
                "<b>refused</b>"
            },
            esc(&d.scope),
            esc(&d.why)
        );
    }
    let _ = write!(o, "</ul>");
    if !r.backups.is_empty() {
        let _ = write!(
            o,
            "<h2>Backups</h2><table><tr><th>Host</th><th>Step</th><th>File</th><th>Size</th><th>SHA-256</th></tr>"
        );
        for b in &r.backups {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td>{} bytes</td><td><code>{}</code></td></tr>",
                esc(&b.host),
                esc(&b.phase),
                esc(&b.step),
                esc(&b.file),
                b.size,
                esc(&b.sha256)
            );
        }
        let _ = write!(o, "</table>");
    }
    if !r.versions.is_empty() {
        let _ = write!(
            o,
            "<h2>Versions</h2><table><tr><th>Host</th><th>From</th><th>To</th></tr>"
        );
        for v in &r.versions {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.host),
                esc(&v.from),
                esc(&v.to)
            );
        }
        let _ = write!(o, "</table>");
    }
    let _ = write!(o, "<h2>Impact</h2><table>");
    for (name, value) in &r.figures {
        let _ = write!(
            o,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(name),
            esc(&super::figure_text(name, value))
        );
    }
    let _ = write!(o, "</table><h2>Communication</h2><ul>");
    for n in &r.communications {
        let _ = write!(
            o,
            "<li>{} — <code>{}</code> to {} ({}): {}</li>",
            rfc3339(n.at_ms),
            esc(&n.template),
            esc(&n.channel),
            esc(&n.moment),
            if n.sent {
                "sent".to_string()
            } else {
                format!("<b>not sent</b>: {}", esc(&n.detail))
            }
        );
        for to in &n.recipients {
            let word = if to.delivered {
                "delivered"
            } else {
                "<b>not delivered</b>"
            };
            let _ = write!(
                o,
                "<li class=\"recipient\">{}: {word} ({})</li>",
                esc(&to.address),
                esc(&to.reply)
            );
        }
        for who in &n.paged {
            let word = if n.sent { "paged" } else { "<b>not paged</b>" };
            let _ = write!(o, "<li class=\"paged\">{word}: {}</li>", esc(who));
        }
        if let Some(incident) = &n.incident {
            let _ = match &incident.link {
                Some(link) if link.starts_with("http://") || link.starts_with("https://") => {
                    write!(
                        o,
                        "<li class=\"incident\">incident {}: <a href=\"{}\">{}</a></li>",
                        esc(&incident.id),
                        esc(link),
                        esc(link)
                    )
                }
                _ => write!(
                    o,
                    "<li class=\"incident\">incident {}</li>",
                    esc(&incident.id)
                ),
            };
        }
    }
    let _ = write!(o, "</ul><h2>Escalation</h2><ul>");
    for e in &r.escalations {
        let _ = write!(
            o,
            "<li>{}: <code>{}</code> — <b>{}</b></li>",
            esc(&e.who),
            esc(&e.when),
            esc(&e.state)
        );
    }
    let _ = write!(o, "</ul><h2>Evidence</h2><ul>");
    for e in &r.evidence {
        let _ = write!(o, "<li>{} — {}</li>", rfc3339(e.at_ms), esc(&e.text));
    }
    let _ = write!(o, "</ul><h2>Time to decision</h2><ul>");
    for d in &r.time_to_decision {
        let _ = write!(o, "<li>{}</li>", esc(&super::decision_words(d)));
    }
    let _ = write!(o, "</ul><h2>Follow-ups</h2><ul>");
    for f in &r.follow_ups {
        let _ = write!(
            o,
            "<li>{} — due {}</li>",
            esc(&f.what),
            f.due_at_ms.map_or("—".into(), rfc3339)
        );
    }
    let _ = write!(
        o,
        "</ul><p><small>Generated {} by Backout from the run's journal.</small></p></body></html>",
        rfc3339(r.generated_at_ms)
    );
    o
}
