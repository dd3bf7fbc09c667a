//! Every channel of the seed's communication section in one run: the team
//! template by e-mail (the coordinator, to a real SMTP server on loopback:
//! aiosmtpd, `backout_e2e::smtp`, STARTTLS and a login) and Slack, and the
//! customer template on the status page (the `statuspage` plugin against
//! Prism serving the Statuspage contract: opened at the start, updated at
//! each phase's end, resolved at the end); each delivery in the journal and
//! the report. And a relay that refuses the login: the run goes on, the
//! report says why, and the password is nowhere.

use std::time::Duration;

use backout_e2e::fleet::{Fleet, FleetBuilder};
use backout_e2e::prism::{Prism, provider_api};
use backout_e2e::smtp::{PASSWORD, SmtpOptions, SmtpServer, USER};
use serde_json::Value;

const STATUSPAGE_KEY: &str = "sp_mail_e2e_key_81c2";

const PHASES: &str = r#"[[phase]]
id = "application"
name = "Application Rollback"
[[phase.step]]
id = "deploy"
plugin = "testbed"
action = "echo"
on = "app-1"
"#;

/// The seed's team template (6.1, "Internal Team Notification") to the
/// team's address and a second one, at the run's end.
fn channels(slack: &str) -> String {
    format!(
        r#"[channels.emergency]
kind = "slack"
target = "{slack}"
via = "app-1"
[channels.team-email]
kind = "email"
target = "emergency@samia-tarot.test, cto@samia-tarot.test"
[templates.internal]
channels = ["team-email", "emergency"]
on = ["end"]
subject = "PRODUCTION ROLLBACK COMPLETED - Action Required"
body = """
Team,

We have completed an emergency rollback of the Samia Tarot production deployment.

ROLLBACK DETAILS:
- Time: {{{{ rollback_time }}}}
- Reason: {{{{ reason }}}}
- Duration: {{{{ duration }}}}
- Data Loss: {{{{ data_loss }}}}

CURRENT STATUS:
- Application: {{{{ status.application }}}}

{{{{ release_manager }}}}
"""
"#
    )
}

/// The seed's status page, customer-facing, with the seed's customer
/// template at the end; its API is Prism at `base`.
fn status_page(base: &str) -> String {
    format!(
        r#"[channels.status-page]
kind = "status-page"
target = "https://status.samia-tarot.test"
via = "app-1"
customer_facing = true
[channels.status-page.params]
api_base = "{base}"
page = "gytm4qzbx9t6"
api_key = "${{secret:STATUSPAGE_API_KEY}}"
name = "Service disruption"
components = {{ "8kbf7d35c070" = "major_outage" }}
[templates.customer]
channels = ["status-page"]
on = ["end"]
subject = "Service Update - Resolved"
body = """
Dear Samia Tarot Users,

We experienced a brief service issue today that has now been resolved.

Impact: Some users may have experienced {{{{ impact }}}} between {{{{ start_time }}}} and {{{{ end_time }}}}.
"""
"#
    )
}

/// A status page the plan does not call customer-facing, with the
/// customer template: nothing may be published there.
const INTERNAL_STATUS_PAGE: &str = r#"[channels.internal-status]
kind = "status-page"
target = "https://status.internal.samia-tarot.test"
via = "app-1"
[templates.customer-internal]
channels = ["internal-status"]
on = ["end"]
subject = "Service Update - Resolved"
body = "Dear Samia Tarot Users, we experienced a brief service issue."
"#;

/// app-1 with the notify plugin (and statuspage when `statuspage` is
/// Prism's base URL), the coordinator with `smtp`'s `[smtp]`.
fn fleet(
    domain: &str,
    smtp: &SmtpServer,
    slack: &str,
    statuspage: Option<&str>,
    extra: &str,
) -> FleetBuilder {
    let mut agent = format!(
        "[[plugin]]\nname = \"notify\"\npath = \"{}\"\n[plugin.grants]\nurls = [\"{slack}\"]\n",
        backout_e2e::plugin("notify").display(),
    );
    let mut plan = format!("{PHASES}{}{extra}", channels(slack));
    if let Some(base) = statuspage {
        let key = smtp.cert().with_file_name("statuspage-key");
        backout_e2e::write_secret(&key, STATUSPAGE_KEY);
        agent += &format!(
            "[[plugin]]\nname = \"statuspage\"\npath = \"{}\"\n[plugin.grants]\nurls = [\"{base}/pages/\"]\nsecrets = [\"STATUSPAGE_API_KEY\"]\n[secrets]\nSTATUSPAGE_API_KEY = {{ file = \"{}\" }}\n",
            backout_e2e::plugin("statuspage").display(),
            key.display()
        );
        plan += &status_page(base);
    }
    Fleet::builder(domain)
        .name("mail e2e")
        .hosts(["app-1"])
        .approvals(["technical-lead"])
        .plan(&plan)
        .config(&smtp.coordinator_config())
        .agent_config(move |_, config| config + &agent)
}

/// Every journal entry, one `kind body` line each.
fn journal_text(fleet: &Fleet) -> String {
    let journal = rusqlite::Connection::open(fleet.journal()).unwrap();
    let mut rows = journal
        .prepare("SELECT kind, body FROM entries ORDER BY seq")
        .unwrap();
    rows.query_map([], |r| {
        Ok(format!(
            "{} {}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect::<Vec<_>>()
    .join("\n")
}

/// The report's messages to `channel`.
fn to_channel<'a>(json: &'a Value, channel: &str) -> Vec<&'a Value> {
    json["communications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["channel"] == channel)
        .collect()
}

/// The report (once the end's e-mail and Slack message are journaled) and
/// its e-mail entry.
async fn email_entry(fleet: &Fleet, id: &str) -> (Value, Value) {
    backout_e2e::wait_for("the end's messages", Duration::from_secs(60), || {
        let json: Value = serde_json::from_str(&fleet.report(id, "json")).ok()?;
        let entry = to_channel(&json, "team-email").first().copied()?.clone();
        to_channel(&json, "emergency").first()?;
        Some((json, entry))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_tells_the_team_by_email_and_slack_and_customers_on_the_status_page() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let slack = backout_e2e::http::TestHttp::start().await;
    let hook = slack.url("/services/T000/B000/XXXX");
    let prism_log = smtp.cert().with_file_name("prism.log");
    let prism = tokio::task::spawn_blocking(move || {
        Prism::start(
            &provider_api("statuspage-incidents.openapi.json"),
            &prism_log,
        )
    })
    .await
    .unwrap();
    let fleet = fleet("mail.test", &smtp, &hook, Some(&prism.base()), "")
        .start()
        .await;
    let id = fleet.start_approved(&["--reason", "5xx at 12% since the deploy"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let (_, entry) = email_entry(&fleet, &id).await;
    assert_eq!(entry["sent"], true, "{entry}");
    // The status page's incident is resolved after the end's messages.
    let json = backout_e2e::wait_for("the incident resolved", Duration::from_secs(60), || {
        let json: Value = serde_json::from_str(&fleet.report(&id, "json")).ok()?;
        json["communications"]
            .as_array()?
            .iter()
            .any(|n| n["channel"] == "status-page" && n["moment"] == "end")
            .then_some(json)
    })
    .await;
    let recipients = entry["recipients"].as_array().unwrap();
    assert_eq!(recipients.len(), 2, "{entry}");
    for (r, address) in recipients
        .iter()
        .zip(["emergency@samia-tarot.test", "cto@samia-tarot.test"])
    {
        assert_eq!(r["address"], address);
        assert_eq!(r["delivered"], true);
        assert!(
            r["reply"].as_str().unwrap().starts_with("250 "),
            "the relay's own reply: {r}"
        );
    }
    // Slack got the same message.
    let slack_entry = to_channel(&json, "emergency")[0];
    assert_eq!(slack_entry["sent"], true, "{slack_entry}");
    assert!(
        slack
            .requests
            .lock()
            .unwrap()
            .join("\n")
            .contains("Reason: 5xx at 12% since the deploy")
    );

    // What the server received: one transaction per recipient, encrypted,
    // logged in, the seed's subject, the filled body.
    let mut messages = smtp.messages();
    messages.sort_by_key(|m| m["rcpt_tos"][0].as_str().unwrap().to_string());
    assert_eq!(messages.len(), 2, "{messages:#?}");
    for (m, to) in messages
        .iter()
        .zip(["cto@samia-tarot.test", "emergency@samia-tarot.test"])
    {
        assert_eq!(m["rcpt_tos"], serde_json::json!([to]), "{m}");
        assert_eq!(m["mail_from"], "backout@samia-tarot.test");
        assert_eq!(m["encrypted"], true, "STARTTLS before anything: {m}");
        assert_eq!(m["login"], USER);
        let headers = &m["headers"];
        assert_eq!(
            headers["Subject"],
            "PRODUCTION ROLLBACK COMPLETED - Action Required"
        );
        assert_eq!(headers["From"], "Backout <backout@samia-tarot.test>");
        assert_eq!(headers["To"], to);
        assert_eq!(headers["X-Backout-Run"], id.as_str());
        assert!(
            headers["Content-Type"]
                .as_str()
                .unwrap()
                .starts_with("text/plain"),
            "{headers}"
        );
        let body = m["body"].as_str().unwrap();
        assert!(body.starts_with("Team,\n\nWe have completed an emergency rollback of the Samia Tarot production deployment.\n"), "{body}");
        assert!(
            body.contains("- Reason: 5xx at 12% since the deploy\n"),
            "{body}"
        );
        assert!(body.contains("- Application: succeeded\n"), "{body}");
        assert!(body.contains("- Data Loss: none measured\n"), "{body}");
    }

    // The report shows each recipient, and the seed's 15 minutes: the
    // message went out this long after the run started.
    let md = fleet.report(&id, "md");
    assert!(
        md.contains("  - emergency@samia-tarot.test: delivered (250 "),
        "{md}"
    );
    assert!(
        md.contains("  - cto@samia-tarot.test: delivered (250 "),
        "{md}"
    );
    let html = fleet.report(&id, "html");
    assert!(
        html.contains("emergency@samia-tarot.test: delivered"),
        "{html}"
    );

    // The status page: opened at the start with the component's previous
    // status recorded, updated when the phase ended, resolved at the end
    // with the customer template and the component put back; every request
    // within the contract.
    let page: Vec<(String, bool, Value)> = to_channel(&json, "status-page")
        .into_iter()
        .map(|n| {
            (
                n["moment"].as_str().unwrap().to_string(),
                n["sent"].as_bool().unwrap(),
                n["incident"].clone(),
            )
        })
        .collect();
    let incident = serde_json::json!({
        "id": "p31zjtct2jer",
        "link": "http://stspg.io/803310a12",
        "previous": { "8kbf7d35c070": "operational" },
    });
    assert_eq!(
        page,
        [
            ("start".to_string(), true, incident.clone()),
            ("phase-end".to_string(), true, incident.clone()),
            ("end".to_string(), true, incident),
        ],
        "{json}"
    );
    let writes: Vec<(String, String)> = prism
        .requests()
        .into_iter()
        .filter(|(m, _)| m != "GET")
        .collect();
    assert_eq!(
        writes,
        [
            (
                "POST".to_string(),
                "/pages/gytm4qzbx9t6/incidents".to_string()
            ),
            (
                "PATCH".to_string(),
                "/pages/gytm4qzbx9t6/incidents/p31zjtct2jer".to_string()
            ),
            (
                "PATCH".to_string(),
                "/pages/gytm4qzbx9t6/incidents/p31zjtct2jer".to_string()
            ),
        ]
    );
    backout_e2e::providers::assert_all_accepted(&prism);
    let resolve = journal_text(&fleet)
        .lines()
        .find(|l| l.contains("\"action\":\"resolve\"") && l.contains("command.sent"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        resolve.contains("Dear Samia Tarot Users")
            && resolve.contains("\"previous\":{\"8kbf7d35c070\":\"operational\"}"),
        "the customer template resolves it and the component goes back: {resolve}"
    );
    assert!(
        md.contains("  - incident p31zjtct2jer: http://stspg.io/803310a12"),
        "the report links to the incident: {md}"
    );
    assert!(
        html.contains("<a href=\"http://stspg.io/803310a12\">"),
        "{html}"
    );
    // So does the dashboard's page of the run.
    let dashboard = backout_e2e::dashboard::dashboard(&fleet, "dave").await;
    let (status, page) = backout_e2e::dashboard::get(&dashboard, &format!("/runs/{id}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(r#"Status page incident p31zjtct2jer (status-page): <a href="http://stspg.io/803310a12">"#),
        "the dashboard links to the incident: {page}"
    );

    // The seed's 15 minutes: each channel's first delivery after the start.
    let started = json["run"]["started_at_ms"].as_i64().unwrap();
    for channel in ["team-email", "emergency", "status-page"] {
        let at = to_channel(&json, channel)
            .into_iter()
            .filter(|n| n["sent"] == true)
            .filter_map(|n| n["at_ms"].as_i64())
            .min()
            .unwrap();
        println!(
            "{channel}: delivered {} ms after the run started (the seed allows 15 min)",
            at - started
        );
        assert!(at - started < 15 * 60 * 1000);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_that_refuses_the_login_leaves_the_run_going_and_the_password_nowhere() {
    let smtp = SmtpServer::start(SmtpOptions {
        implicit_tls: true,
        refuse_login: true,
    });
    let slack = backout_e2e::http::TestHttp::start().await;
    let hook = slack.url("/services/T000/B000/XXXX");
    let fleet = fleet("nomail.test", &smtp, &hook, None, INTERNAL_STATUS_PAGE)
        .start()
        .await;
    let id = fleet.start_approved(&["--reason", "login refused"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "the run goes on: {run}");

    let (json, entry) = email_entry(&fleet, &id).await;
    assert_eq!(entry["sent"], false, "{entry}");
    for r in entry["recipients"].as_array().unwrap() {
        assert_eq!(r["delivered"], false, "{r}");
        assert!(r["reply"].as_str().unwrap().contains("535"), "{r}");
    }
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .starts_with("not delivered to emergency@samia-tarot.test: permanent error (535)"),
        "{entry}"
    );
    assert!(smtp.messages().is_empty(), "nothing got through");
    let emergency = to_channel(&json, "emergency")[0];
    assert_eq!(emergency["sent"], true, "Slack still went out");

    // A status page the plan does not call customer-facing gets nothing.
    let internal = to_channel(&json, "internal-status");
    assert_eq!(internal.len(), 1, "{json}");
    assert_eq!(internal[0]["sent"], false, "{json}");
    assert!(
        internal[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("the plan does not say the incident is customer-facing"),
        "{json}"
    );

    let md = fleet.report(&id, "md");
    assert!(md.contains("to team-email (end): NOT sent: not delivered to emergency@samia-tarot.test: permanent error (535)"), "{md}");
    let html = fleet.report(&id, "html");
    let reports = format!("{md}\n{html}\n{json}");
    assert!(!reports.contains(PASSWORD), "the password is in a report");
    backout_e2e::providers::assert_no_secret_leaves(&fleet, &[], &[PASSWORD]);
}
