//! The dashboard's pages, rendered from the same JSON documents that
//! `Accept: application/json` answers. Pure functions: JSON in, HTML out.
//! Every text from the coordinator, agents and plugins is escaped.
//!
//! Every state is shown as a word in a coloured badge (never colour
//! alone); times as UTC with "how long ago", which the script keeps fresh.

use std::fmt::Write;

use backout_proto::wire;
use serde_json::{Value, json};

use crate::cli::human_ms;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON string field, escaped ("" when absent).
fn s(v: &Value) -> String {
    match v {
        Value::String(text) => esc(text),
        Value::Null => String::new(),
        other => esc(&other.to_string()),
    }
}

/// A number a trigger's value or threshold can be read as (`true` is 1).
pub fn number(text: &str) -> Option<f64> {
    match text.trim() {
        "true" => Some(1.0),
        "false" => Some(0.0),
        t => t.trim_end_matches('%').trim().parse().ok(),
    }
}

/// The colour family of a state word: good, busy, wait, bad or none.
pub fn tone(state: &str) -> &'static str {
    let state = state.to_ascii_lowercase();
    match state.as_str() {
        "succeeded" | "ok" | "up" | "connected" | "healthy" | "no action" | "intact" | "live"
        | "no" => "good",
        "running" | "dispatched" | "connecting" => "busy",
        "awaiting-approval" | "waiting" | "pending" | "breaching" | "reconnecting" | "partly"
        | "unknown" | "skipped" | "slow" => "wait",
        "failed" | "fired" | "gone" | "aborted" | "timed-out" | "unreachable" | "unhealthy"
        | "down" | "broken" | "rollback" => "bad",
        s if s.starts_with("refused") || s.contains("rollback") || s.contains("broken") => "bad",
        _ => "none",
    }
}

/// A state as a coloured badge with its word.
pub fn badge(state: &str) -> String {
    let word = if state.is_empty() { "-" } else { state };
    format!(
        r#"<span class="st st-{}">{}</span>"#,
        tone(state),
        esc(word)
    )
}

/// A time as UTC with how long ago; the script updates the "ago".
pub fn when(ms: i64, now_ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_default();
    format!(
        r#"<time data-ms="{ms}" title="{utc}">{utc} <span class="ago">({})</span></time>"#,
        ago(now_ms - ms)
    )
}

/// "4 m ago", "in 3 s".
pub fn ago(ms: i64) -> String {
    if ms < 0 {
        return format!("in {}", rough(-ms));
    }
    format!("{} ago", rough(ms))
}

fn rough(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m", s / 60),
        3600..86400 => format!("{} h {} m", s / 3600, (s % 3600) / 60),
        _ => format!("{} d", s / 86400),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The frame around every page: navigation, who we act as, the token for
/// changes, the banner the script shows while the coordinator is away.
pub fn layout(title: &str, active: &str, identity: &str, csrf: &str, body: &str) -> String {
    let nav: String = [
        ("now", "/", "Now"),
        ("fleet", "/fleet", "Fleet"),
        ("runs", "/runs", "Runs"),
    ]
    .iter()
    .map(|(id, href, name)| {
        let current = if *id == active {
            r#" aria-current="page""#
        } else {
            ""
        };
        format!(r#"<a href="{href}"{current}>{name}</a>"#)
    })
    .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}">
<title>{title} · Backout</title>
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body>
<header>
<strong class="brand">Backout</strong>
<nav>{nav}</nav>
<span class="me">acting as <b id="identity">{identity}</b></span>
</header>
<div id="banner" class="banner" role="status" hidden>reconnecting to the coordinator…</div>
<main id="main">
{body}
</main>
<script src="/static/dashboard.js" defer></script>
</body>
</html>
"#,
        title = esc(title),
        identity = esc(if identity.is_empty() { "?" } else { identity }),
    )
}

/// The body of a page the coordinator could not answer: it says
/// "reconnecting", and the script reloads it until it can.
pub fn reconnecting(why: &str) -> String {
    format!(
        r#"<div id="live" data-refresh="2"><p class="banner" id="down">reconnecting: the coordinator is unreachable ({})</p></div>"#,
        esc(why)
    )
}

pub fn error_box(why: &str) -> String {
    format!(r#"<p class="error">{}</p>"#, esc(why))
}

/// A whole page for a failed form POST without script.
pub fn standalone_error(why: &str, back: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refused · Backout</title><link rel="stylesheet" href="/static/dashboard.css"></head><body><main><p class="error">{}</p><p><a href="{}">back</a></p></main></body></html>"#,
        esc(why),
        esc(back)
    )
}

/// The health of every host, as the Now page keeps it.
pub fn health_json(reply: &wire::AssessReply) -> Value {
    let hosts: Vec<Value> = reply
        .hosts
        .iter()
        .map(|h| {
            let data: Value = serde_json::from_str(&h.data_json).unwrap_or(Value::Null);
            json!({
                "agent": h.agent_id,
                "state": h.state,
                "detail": h.detail,
                "duration_ms": h.duration_ms,
                "healthy": h.state == "ok" && data["healthy"] == json!(true),
                "checks": data.get("checks").cloned().unwrap_or(json!([])),
            })
        })
        .collect();
    json!({ "at_ms": reply.finished_at_ms, "hosts": hosts })
}

/// The agents as `backout agents --output json` shows them, with the
/// coordinator's time.
pub fn agents_json(reply: &wire::ListAgentsReply) -> Value {
    let mut doc = crate::cli::assess::agents_json(reply);
    doc["now_ms"] = json!(reply.now_ms);
    doc
}

/// A small chart of a trigger's recent values, with its threshold as a
/// dashed line. Empty when there is nothing to draw.
pub fn chart(samples: &[(i64, f64)], threshold: Option<f64>) -> String {
    if samples.len() < 2 {
        return String::from(r#"<span class="muted">collecting…</span>"#);
    }
    let (w, h, pad) = (160.0, 36.0, 3.0);
    let mut lo = samples.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    let mut hi = samples
        .iter()
        .map(|s| s.1)
        .fold(f64::NEG_INFINITY, f64::max);
    if let Some(t) = threshold {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if (hi - lo).abs() < f64::EPSILON {
        hi = lo + 1.0;
    }
    let (t0, t1) = (
        samples[0].0,
        samples[samples.len() - 1].0.max(samples[0].0 + 1),
    );
    let x = |t: i64| (t - t0) as f64 / (t1 - t0) as f64 * (w - 2.0 * pad) + pad;
    let y = |v: f64| h - pad - (v - lo) / (hi - lo) * (h - 2.0 * pad);
    let points: Vec<String> = samples
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
        .collect();
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="recent values"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/>"#,
        points.join(" ")
    );
    if let Some(t) = threshold {
        let _ = write!(
            svg,
            r#"<line class="threshold" x1="0" x2="{w}" y1="{0:.1}" y2="{0:.1}" stroke-dasharray="4 3"><title>threshold {t}</title></line>"#,
            y(t)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The time a fired trigger's deciders have left, or how late they are
/// (empty when the plan sets no deadline).
pub fn time_left(decide_by_ms: Option<i64>, now_ms: i64) -> String {
    match decide_by_ms {
        None => String::new(),
        Some(by) if by >= now_ms => format!(
            r#"; <span class="deadline">decide within {}</span>"#,
            human_ms(by - now_ms)
        ),
        Some(by) => format!(
            r#"; <span class="deadline st st-bad">DECISION OVERDUE by {}</span>"#,
            human_ms(now_ms - by)
        ),
    }
}

/// Each canary judge's two distributions (SVG) with its call, U, p-value
/// and effect size; empty when the plan has none.
pub fn judge_charts(signals: &Value) -> String {
    let mut out = String::new();
    for signal in signals.as_array().into_iter().flatten() {
        let judge = &signal["judge"];
        if judge.is_null() {
            continue;
        }
        let values = |side: &str| -> Vec<f64> {
            judge[side]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect()
        };
        if out.is_empty() {
            out.push_str("<h2>Canary judge</h2>");
        }
        let _ = write!(
            out,
            r#"<figure class="judge"><figcaption><b>{}</b></figcaption>{}</figure>"#,
            s(&signal["name"]),
            crate::text::judge_svg(
                &values("canary"),
                &values("baseline"),
                judge["caption"].as_str().unwrap_or_default()
            )
        );
    }
    out
}

/// Now: the matrix with charts, the verdict, the checklist, host health.
pub fn now(doc: &Value) -> String {
    let now = doc["now_ms"].as_i64().unwrap_or_else(now_ms);
    let mut out = String::from(r#"<div id="live" data-refresh="5">"#);
    if doc["has_plan"] != json!(true) {
        out.push_str(
            r#"<p class="muted">The coordinator serves no plan: there is no decision matrix.</p>"#,
        );
    } else {
        let m = &doc["matrix"];
        let _ = write!(
            out,
            r#"<h1>{} <span id="verdict">{}</span></h1>"#,
            s(&m["plan"]),
            badge(m["verdict"].as_str().unwrap_or_default())
        );
        if let Some(fired) = m["fired"].as_array().filter(|f| !f.is_empty()) {
            let names: Vec<String> = fired.iter().map(s).collect();
            let _ = write!(
                out,
                "<p>Fired: <b>{}</b>. Deciders: {}</p>",
                names.join(", "),
                list(&m["deciders"])
            );
            out.push_str(r#"<ul id="fired">"#);
            for f in m["fired_triggers"].as_array().into_iter().flatten() {
                let _ = write!(
                    out,
                    "<li><b>{}</b> <span class=\"muted\">{}</span>: {}; deciders {}{}</li>",
                    s(&f["trigger"]),
                    s(&f["class"]),
                    s(&f["evidence"]),
                    list(&f["deciders"]),
                    time_left(f["decide_by_ms"].as_i64(), now)
                );
            }
            out.push_str("</ul>");
        }
        // Each trigger's remedy: offered with its command, holding, worked,
        // or did not clear the trigger.
        if let Some(remedies) = m["remedies"].as_array().filter(|r| !r.is_empty()) {
            out.push_str(r#"<ul id="remedies">"#);
            for r in remedies {
                let _ = write!(
                    out,
                    "<li class=\"remedy remedy-{}\">{}</li>",
                    s(&r["state"]),
                    s(&r["line"])
                );
            }
            out.push_str("</ul>");
        }
        out.push_str(r#"<div class="scroll"><table id="matrix"><thead><tr><th>Trigger</th><th>Value</th><th>Condition</th><th>Held / needed</th><th>State</th><th>Deciders</th><th>Recent</th></tr></thead><tbody>"#);
        for row in m["triggers"].as_array().into_iter().flatten() {
            let name = row["trigger"].as_str().unwrap_or_default();
            let samples: Vec<(i64, f64)> = doc["trends"][name]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p[0].as_i64()?, p[1].as_f64()?)))
                .collect();
            let threshold = row["threshold"].as_f64();
            let _ = write!(
                out,
                r#"<tr><td><b>{}</b> <span class="muted">{}</span></td><td>{}</td><td><code>{}</code></td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(name),
                s(&row["class"]),
                if row["value"].is_null() {
                    "unknown".into()
                } else {
                    s(&row["value"])
                },
                s(&row["condition"]),
                human_ms(row["held_ms"].as_i64().unwrap_or(0)),
                s(&row["needed"]),
                badge(row["state"].as_str().unwrap_or_default()),
                list(&row["deciders"]),
                chart(&samples, threshold),
            );
        }
        out.push_str("</tbody></table></div>");
        out.push_str(&judge_charts(&m["signals"]));
    }
    out.push_str(r#"<h2>Checklist (1.1)</h2><ul class="checklist">"#);
    if let Some(items) = doc["checklist"].as_object() {
        for (question, item) in items {
            let _ = write!(
                out,
                "<li>{} {} <span class=\"muted\">{}</span></li>",
                badge(item["answer"].as_str().unwrap_or_default()),
                esc(&question.replace('_', " ")),
                s(&item["detail"])
            );
        }
    }
    out.push_str("</ul><h2>Health per host</h2>");
    match doc["health"].as_object() {
        None => out.push_str(r#"<p class="muted">checking…</p>"#),
        Some(health) => {
            let _ = write!(
                out,
                r#"<p class="muted">checked {}</p><div class="scroll"><table id="health"><thead><tr><th>Host</th><th>State</th><th>Checks</th><th>Detail</th></tr></thead><tbody>"#,
                when(health["at_ms"].as_i64().unwrap_or(0), now)
            );
            for host in health["hosts"].as_array().into_iter().flatten() {
                let state = if host["healthy"] == json!(true) {
                    "healthy".to_string()
                } else if host["state"] == "ok" {
                    "unhealthy".to_string()
                } else {
                    host["state"].as_str().unwrap_or_default().to_string()
                };
                let checks: Vec<String> = host["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        format!(
                            "{} {}",
                            s(&c["name"]),
                            badge(c["status"].as_str().unwrap_or_default())
                        )
                    })
                    .collect();
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    s(&host["agent"]),
                    badge(&state),
                    checks.join(" "),
                    s(&host["detail"])
                );
            }
            out.push_str("</tbody></table></div>");
        }
    }
    out.push_str("</div>");
    out.push_str(r#"<form method="post" action="/assess" class="inline"><input type="hidden" name="csrf"><button>Run the health checks now</button></form>"#);
    out
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|items| items.iter().map(s).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// Fleet: every agent, connected or gone, its version and plugins.
pub fn fleet(doc: &Value) -> String {
    let now = doc["now_ms"].as_i64().unwrap_or_else(now_ms);
    let mut out = String::from(
        r#"<div id="live" data-refresh="5"><h1>Fleet</h1><div class="scroll"><table id="fleet"><thead><tr><th>Agent</th><th>State</th><th>Version</th><th>Last seen</th><th>Plugins (pinned sha256)</th></tr></thead><tbody>"#,
    );
    for a in doc["agents"].as_array().into_iter().flatten() {
        let plugins: Vec<String> = a["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let sha = p["sha256"].as_str().unwrap_or_default();
                format!(
                    r#"{}@{} <code title="{}">{}</code>"#,
                    s(&p["name"]),
                    s(&p["version"]),
                    esc(sha),
                    esc(&sha[..sha.len().min(12)])
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td><b>{}</b> <span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s(&a["agent"]),
            s(&a["hostname"]),
            badge(if a["connected"] == json!(true) {
                "connected"
            } else {
                "gone"
            }),
            s(&a["version"]),
            when(a["last_seen_ms"].as_i64().unwrap_or(0), now),
            plugins.join("<br>")
        );
    }
    out.push_str("</tbody></table></div></div>");
    out
}

fn pending_text(p: &Value) -> String {
    let roles: Vec<String> = p["roles"].as_array().into_iter().flatten().map(s).collect();
    format!(
        "{}: {} <span class=\"muted\">(waiting {})</span>",
        s(&p["scope"]),
        roles.join(" + "),
        rough(p["waiting_ms"].as_i64().unwrap_or(0))
    )
}

/// Runs: each run, its status, who started it, the approvals it waits on.
pub fn runs(doc: &Value) -> String {
    let now = now_ms();
    let mut out = String::from(
        r#"<div id="live" data-refresh="5"><h1>Runs</h1><div class="scroll"><table id="runs"><thead><tr><th>Run</th><th>Status</th><th>Started</th><th>By</th><th>Reason</th><th>Waiting on</th></tr></thead><tbody>"#,
    );
    let runs = doc["runs"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        out.push_str(r#"<tr><td colspan="6" class="muted">no run yet</td></tr>"#);
    }
    for r in runs.iter().rev() {
        let id = r["run"].as_str().unwrap_or_default();
        let mut flags = String::new();
        if r["dry_run"] == json!(true) {
            flags.push_str(r#" <span class="tag">dry run</span>"#);
        }
        let pending: Vec<String> = r["pending_approvals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(pending_text)
            .collect();
        let _ = write!(
            out,
            r#"<tr><td><a href="/runs/{id}">{id}</a>{flags}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            badge(r["status"].as_str().unwrap_or_default()),
            when(r["started_at_ms"].as_i64().unwrap_or(0), now),
            s(&r["started_by"]),
            s(&r["reason"]),
            pending.join("<br>"),
            id = esc(id),
        );
    }
    out.push_str("</tbody></table></div></div>");
    out.push_str(
        r#"<h2>Dry run</h2><form method="post" action="/dry-run" id="dry-run" class="stack" data-confirm="Start a dry run? Plugins say what they would do; nothing changes."><input type="hidden" name="csrf"><label>Reason <input name="reason" placeholder="what if we roll back now?"></label><label>Version to roll back to <input name="to" placeholder="v2.3.1"></label><button>Dry run: show the plan per host</button></form>"#,
    );
    out
}

/// One event as a line of the run's log (the script has the same rules).
pub fn event_text(e: &Value) -> String {
    let g = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    let at = format!("{}/{}@{}", g("phase"), g("step"), g("host"));
    match g("kind").as_str() {
        "started" => format!("run started by {}", g("by")),
        "approved" => format!("{} approved {} as {}", g("by"), g("phase"), g("role")),
        "refused" => format!(
            "{} REFUSED {} as {}: {}",
            g("by"),
            g("phase"),
            g("role"),
            g("text")
        ),
        "aborted" => format!("ABORTED by {}", g("by")),
        "phase-timed-out" => format!("phase {} TIMED OUT", g("phase")),
        "ended" => format!("run ended: {}", g("outcome").to_uppercase()),
        "log" => format!("{at} [{}] {}", g("role"), g("text")),
        "finished" => format!("{at} {}: {}", g("outcome"), g("text")),
        "dispatched" => format!("{at} sent"),
        "progress" => format!("{at} {}/{} {}", e["done"], e["total"], g("text")),
        kind => format!("{kind} {at} {}", g("text")),
    }
}

/// The phases × hosts grid of a run summary.
pub fn grid(run: &Value) -> String {
    let phases = run["phases"].as_array().cloned().unwrap_or_default();
    let mut hosts: Vec<String> = Vec::new();
    for p in &phases {
        for h in p["hosts"].as_array().into_iter().flatten() {
            let host = h["host"].as_str().unwrap_or_default().to_string();
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    let mut out = String::from(r#"<table id="grid"><thead><tr><th>Phase</th>"#);
    for h in &hosts {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for p in &phases {
        let _ = write!(
            out,
            r#"<tr><th>{} {}<div class="muted">{}</div></th>"#,
            s(&p["id"]),
            badge(p["status"].as_str().unwrap_or_default()),
            s(&p["detail"])
        );
        for host in &hosts {
            let cell = p["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|h| h["host"] == json!(host));
            match cell {
                None => out.push_str(r#"<td class="muted">·</td>"#),
                Some(h) => {
                    let done = h["steps_done"].as_u64().unwrap_or(0);
                    let total = h["steps_total"].as_u64().unwrap_or(0).max(1);
                    let _ = write!(
                        out,
                        r#"<td data-phase="{}" data-host="{}">{} <span class="step">{}</span><progress max="{total}" value="{done}">{done}/{total}</progress><div class="muted">{}</div></td>"#,
                        s(&p["id"]),
                        esc(host),
                        badge(h["state"].as_str().unwrap_or_default()),
                        s(&h["step"]),
                        s(&h["detail"]),
                    );
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The approvals a run waits on, with Approve and Refuse for each.
pub fn pending(run: &Value) -> String {
    let id = esc(run["run"].as_str().unwrap_or_default());
    let mut out = String::new();
    for p in run["pending_approvals"].as_array().into_iter().flatten() {
        let scope = s(&p["scope"]);
        let _ = write!(
            out,
            r#"<div class="approval" data-scope="{scope}"><p>Waiting on {}</p><form method="post" action="/runs/{id}/approve" class="approve" data-confirm="Approve {scope} of {id} as yourself?"><input type="hidden" name="csrf"><input type="hidden" name="scope" value="{scope}"><button class="go">Approve</button></form><form method="post" action="/runs/{id}/approve" class="refuse" data-confirm="Refuse {scope} of {id}? This stops it."><input type="hidden" name="csrf"><input type="hidden" name="scope" value="{scope}"><input type="hidden" name="refuse" value="1"><input name="why" required placeholder="why (required)" aria-label="reason for refusing"><button class="stop">Refuse</button></form></div>"#,
            pending_text(p)
        );
    }
    out
}

/// Who refused and why, from the run's events.
pub fn refusals(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["kind"] == "refused")
        .map(|e| {
            format!(
                r#"<p class="refusal">Refused by <b>{}</b> as {}: “{}”</p>"#,
                s(&e["by"]),
                s(&e["role"]),
                s(&e["text"])
            )
        })
        .collect()
}

/// A dry run's answer: per host, what each step's plugin would do.
pub fn dry_run_plan(events: &[Value]) -> String {
    let mut out = String::from(
        r#"<h2>What each plugin would do</h2><div class="scroll"><table id="plan"><thead><tr><th>Host</th><th>Phase / step</th><th>Answer</th><th>Would do</th></tr></thead><tbody>"#,
    );
    for e in events.iter().filter(|e| e["kind"] == "finished") {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
            s(&e["host"]),
            s(&e["phase"]),
            s(&e["step"]),
            badge(e["outcome"].as_str().unwrap_or_default()),
            s(&e["text"])
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Run: the live grid, approvals, the log; the script keeps it current.
pub fn run(doc: &Value) -> String {
    let r = &doc["run"];
    let id = r["run"].as_str().unwrap_or_default();
    let events = doc["events"].as_array().cloned().unwrap_or_default();
    let now = now_ms();
    let mut out = format!(
        r#"<section id="run" data-run="{id}" data-stream="/runs/{id}/events?after={n}">"#,
        id = esc(id),
        n = events.len()
    );
    let _ = write!(
        out,
        r#"<h1>{}{} <span id="run-status">{}</span></h1><p>{} · started by <b>{}</b> {} · <span id="link-state">{}</span></p>"#,
        esc(id),
        if r["dry_run"] == json!(true) {
            r#" <span class="tag">dry run</span>"#
        } else {
            ""
        },
        badge(r["status"].as_str().unwrap_or_default()),
        s(&r["reason"]),
        s(&r["started_by"]),
        when(r["started_at_ms"].as_i64().unwrap_or(0), now),
        badge(doc["link"].as_str().unwrap_or_default()),
    );
    out.push_str(&incidents(&doc["incidents"]));
    let _ = write!(out, r#"<div id="refusals">{}</div>"#, refusals(&events));
    let _ = write!(out, r#"<div id="pending">{}</div>"#, pending(r));
    let _ = write!(
        out,
        r#"<div class="scroll" id="grid-box">{}</div>"#,
        grid(r)
    );
    if r["dry_run"] == json!(true) {
        out.push_str(&dry_run_plan(&events));
    }
    out.push_str(r#"<h2>Log</h2><ol id="log" class="log">"#);
    for (i, e) in events.iter().enumerate() {
        if e["kind"] == "progress" {
            continue;
        }
        let _ = write!(
            out,
            r#"<li class="ev-{}" data-seq="{}"><time data-ms="{}"></time> {}</li>"#,
            s(&e["kind"]),
            i + 1,
            e["at_ms"].as_i64().unwrap_or(0),
            esc(&event_text(e))
        );
    }
    out.push_str("</ol>");
    // Abort while the run is not over.
    let abort = if r["finished_at_ms"].is_null() {
        format!(
            r#" <form method="post" action="/runs/{id}/abort" class="inline" id="abort" data-confirm="Abort {id}? Nothing more is dispatched."><input type="hidden" name="csrf"><button class="stop">Abort</button></form>"#,
            id = esc(id)
        )
    } else {
        String::new()
    };
    // Undo an ended remedy run: a run of its own that puts back what it
    // changed (`backout remedy undo RUN`).
    let undo = if r["remedy"] == json!(true)
        && !r["finished_at_ms"].is_null()
        && r["dry_run"] != json!(true)
    {
        format!(
            r#" <form method="post" action="/runs/{id}/undo" class="inline" id="undo" data-confirm="Undo remedy run {id}? A run of its own puts back what it changed; it needs the remedy's approvals."><input type="hidden" name="csrf"><button>Undo remedy</button></form>"#,
            id = esc(id)
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        r#"<p class="actions"><a href="/runs/{id}/report">Report</a>{abort}{undo}</p></section>"#,
        id = esc(id)
    );
    out
}

/// The status-page incidents the run opened, each linked when its public
/// link is a web address (as the report does).
fn incidents(list: &Value) -> String {
    let Some(list) = list.as_array().filter(|l| !l.is_empty()) else {
        return String::new();
    };
    let mut out = String::from(r#"<ul id="incidents">"#);
    for i in list {
        let link = i["link"].as_str().unwrap_or_default();
        let shown = if link.starts_with("http://") || link.starts_with("https://") {
            format!(r#": <a href="{0}">{0}</a>"#, esc(link))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<li>Status page incident {} ({}){shown}</li>",
            s(&i["id"]),
            s(&i["channel"])
        );
    }
    out.push_str("</ul>");
    out
}

/// Report: the journal's verification, then the report itself.
pub fn report(doc: &Value) -> String {
    let id = esc(doc["run"].as_str().unwrap_or_default());
    let journal = doc["journal"].as_str().unwrap_or("not checked");
    let state = if journal.starts_with("intact") {
        "intact"
    } else {
        "broken"
    };
    format!(
        r#"<h1>Report of <a href="/runs/{id}">{id}</a></h1><p id="journal">Journal: {} {}</p><p><a href="/runs/{id}/report.html" download="report-{id}.html">Download the HTML report</a></p><iframe id="report" src="/runs/{id}/report.html" sandbox title="report of {id}"></iframe>"#,
        badge(state),
        esc(journal)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_agents_is_escaped() {
        assert_eq!(
            esc(r#"<img src=x onerror="a">&'"#),
            "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;"
        );
        let doc = json!({ "run": { "run": "r-1", "status": "running", "phases": [], "pending_approvals": [] },
            "events": [{ "kind": "log", "phase": "p", "step": "s", "host": "h", "text": "<script>x</script>" }], "link": "live" });
        let page = run(&doc);
        assert!(!page.contains("<script>x"), "{page}");
        assert!(page.contains("&lt;script&gt;x"));
    }

    #[test]
    fn every_state_has_a_word_and_a_colour() {
        assert_eq!(badge("failed"), r#"<span class="st st-bad">failed</span>"#);
        assert_eq!(tone("refused by dba"), "bad");
        assert_eq!(tone("succeeded"), "good");
        assert_eq!(tone("awaiting-approval"), "wait");
    }

    #[test]
    fn times_are_utc_and_relative() {
        let t = when(1_700_000_000_000, 1_700_000_240_000);
        assert!(t.contains("2023-11-14 22:13:20 UTC"), "{t}");
        assert!(t.contains("(4 m ago)"), "{t}");
    }

    #[test]
    fn the_now_page_shows_each_fired_trigger_with_the_time_left_or_how_late() {
        let doc = |decide_by_ms: i64| {
            json!({ "now_ms": 100_000, "has_plan": true, "matrix": {
                "plan": "p", "verdict": "ASSESS FOR ROLLBACK", "fired": ["High Error Rate"],
                "deciders": ["technical-lead"], "triggers": [],
                "fired_triggers": [{ "trigger": "High Error Rate", "class": "considered",
                    "evidence": "errors > 5% at 12", "deciders": ["technical-lead"],
                    "decide_by_ms": decide_by_ms }] } })
        };
        let page = now(&doc(280_000));
        assert!(page.contains("errors &gt; 5% at 12"), "{page}");
        assert!(page.contains("decide within 3 m 0 s"), "{page}");
        let page = now(&doc(60_000));
        assert!(page.contains("DECISION OVERDUE by 40.0 s"), "{page}");
    }

    /// A canary judge on the Now page: both distributions drawn with its
    /// figures, by the same renderer as the report.
    #[test]
    fn the_now_page_charts_a_canary_judge() {
        let doc = json!({
            "has_plan": true, "now_ms": 1_000,
            "matrix": { "plan": "p", "verdict": "IMMEDIATE ROLLBACK", "triggers": [],
                "signals": [
                    { "name": "error_rate", "value": "0.01" },
                    { "name": "canary_response", "value": "2",
                      "judge": { "caption": "fail: U 25, p 6.10e-3, effect 1.00",
                                 "canary": [0.8, 0.81, 0.9], "baseline": [0.001, 0.002] } }
                ] },
        });
        let page = now(&doc);
        let section = page
            .split("<h2>Canary judge</h2>")
            .nth(1)
            .unwrap_or_default();
        assert!(
            section.starts_with(
                r#"<figure class="judge"><figcaption><b>canary_response</b></figcaption><svg"#
            ) && section.contains(">canary (3)<")
                && section.contains(">baseline (2)<")
                && section.contains("fail: U 25, p 6.10e-3, effect 1.00"),
            "{page}"
        );
        assert_eq!(page.matches("<figure").count(), 1);
    }

    #[test]
    fn the_run_page_links_the_status_page_incident() {
        let doc = |link: &str| {
            json!({ "run": { "run": "run-1", "status": "running" }, "events": [], "link": "live",
                "incidents": [{ "channel": "status", "id": "p31zjtct2jer", "link": link }] })
        };
        let page = run(&doc("https://stspg.io/p31zjtct2jer"));
        assert!(
            page.contains(r#"<li>Status page incident p31zjtct2jer (status): <a href="https://stspg.io/p31zjtct2jer">https://stspg.io/p31zjtct2jer</a></li>"#),
            "{page}"
        );
        let page = run(&doc("javascript:alert(1)"));
        assert!(
            page.contains("<li>Status page incident p31zjtct2jer (status)</li>"),
            "{page}"
        );
        assert!(!page.contains("javascript:"), "{page}");
        assert!(!run(&json!({ "run": { "run": "run-1" }, "events": [] })).contains("incidents"));
    }

    /// An ended remedy run has an Undo button (a token-carrying POST like
    /// Abort); a running one, a dry run, or another run has none.
    #[test]
    fn an_ended_remedy_run_can_be_undone_from_its_page() {
        let page = |remedy: bool, finished: Option<i64>, dry_run: bool| {
            run(
                &json!({ "run": { "run": "run-1", "status": "succeeded", "remedy": remedy,
                "finished_at_ms": finished, "dry_run": dry_run, "phases": [], "pending_approvals": [] },
                "events": [], "link": "live" }),
            )
        };
        let ended = page(true, Some(5), false);
        assert!(
            ended.contains(
                r#"<form method="post" action="/runs/run-1/undo" class="inline" id="undo""#
            ),
            "{ended}"
        );
        assert!(ended.contains(r#"<input type="hidden" name="csrf"><button>Undo remedy</button>"#));
        for other in [
            page(true, None, false),
            page(true, Some(5), true),
            page(false, Some(5), false),
        ] {
            assert!(!other.contains("/undo"), "{other}");
        }
    }

    #[test]
    fn the_now_page_offers_a_fired_triggers_remedy() {
        let page = now(&json!({ "now_ms": 100_000, "has_plan": true, "matrix": {
            "plan": "p", "verdict": "ASSESS FOR ROLLBACK", "triggers": [],
            "remedies": [{ "trigger": "High Error Rate", "state": "offered",
                "line": "remedy available for High Error Rate: turn off flags new-checkout (then 5m to clear) — `backout remedy start \"High Error Rate\"`" }] } }));
        assert!(page.contains(r#"<li class="remedy remedy-offered">remedy available for High Error Rate: turn off flags new-checkout"#), "{page}");
        assert!(
            page.contains("backout remedy start &quot;High Error Rate&quot;"),
            "{page}"
        );
    }

    #[test]
    fn a_chart_draws_its_threshold_line() {
        let svg = chart(&[(0, 1.0), (5_000, 3.0), (10_000, 2.0)], Some(2.5));
        assert!(svg.contains("<polyline"));
        assert!(svg.contains(r#"class="threshold""#));
        assert_eq!(number("12.5%"), Some(12.5));
        assert_eq!(number("true"), Some(1.0));
    }
}
