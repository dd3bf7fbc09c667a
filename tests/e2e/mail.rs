//! The plan's `email` channel sent by the coordinator to a real SMTP server
//! on loopback (aiosmtpd, `backout_e2e::smtp`): STARTTLS and a login, the
//! seed's team template in the subject and body, each recipient's answer in
//! the journal and the report; and a relay that refuses the login, where
//! the run goes on, the report says why, and the password is nowhere.

use std::time::Duration;

use backout_e2e::fleet::{Fleet, FleetBuilder};
use backout_e2e::smtp::{PASSWORD, SmtpOptions, SmtpServer, USER};
use serde_json::Value;

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

fn fleet(domain: &str, smtp: &SmtpServer, slack: &str) -> FleetBuilder {
    let notify = format!(
        "[[plugin]]\nname = \"notify\"\npath = \"{}\"\n[plugin.grants]\nurls = [\"{slack}\"]\n",
        backout_e2e::plugin("notify").display(),
    );
    Fleet::builder(domain)
        .name("mail e2e")
        .hosts(["app-1"])
        .approvals(["technical-lead"])
        .plan(&format!("{PHASES}{}", channels(slack)))
        .config(&smtp.coordinator_config())
        .agent_config(move |_, config| config + &notify)
}

fn report(fleet: &Fleet, id: &str, format: &str) -> String {
    let out = fleet.cli("alice", &["report", id, "--format", format]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The report's e-mail entry, once it is journaled.
async fn email_entry(fleet: &Fleet, id: &str) -> (Value, Value) {
    backout_e2e::wait_for("the e-mail's journal entry", Duration::from_secs(60), || {
        let json: Value = serde_json::from_str(&report(fleet, id, "json")).ok()?;
        let entry = json["communications"]
            .as_array()?
            .iter()
            .find(|n| n["channel"] == "team-email")?
            .clone();
        Some((json, entry))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_team_message_goes_by_email_over_starttls_and_each_recipient_is_in_the_report() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let slack = backout_e2e::http::TestHttp::start().await;
    let hook = slack.url("/services/T000/B000/XXXX");
    let fleet = fleet("mail.test", &smtp, &hook).start().await;
    let id = fleet.start_approved(&["--reason", "5xx at 12% since the deploy"]);
    let run = fleet.ended(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let (json, entry) = email_entry(&fleet, &id).await;
    assert_eq!(entry["sent"], true, "{entry}");
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
    let slack_entry = json["communications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == "emergency")
        .unwrap();
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
    let md = report(&fleet, &id, "md");
    assert!(
        md.contains("  - emergency@samia-tarot.test: delivered (250 "),
        "{md}"
    );
    assert!(md.contains("  - cto@samia-tarot.test: delivered (250 "), "{md}");
    let html = report(&fleet, &id, "html");
    assert!(html.contains("emergency@samia-tarot.test: delivered"), "{html}");
    let after_ms = entry["at_ms"].as_i64().unwrap() - json["run"]["started_at_ms"].as_i64().unwrap();
    println!("e-mail delivered {after_ms} ms after the run started (the seed allows 15 min)");
    assert!(after_ms < 15 * 60 * 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_that_refuses_the_login_leaves_the_run_going_and_the_password_nowhere() {
    let smtp = SmtpServer::start(SmtpOptions {
        implicit_tls: true,
        refuse_login: true,
    });
    let slack = backout_e2e::http::TestHttp::start().await;
    let hook = slack.url("/services/T000/B000/XXXX");
    let fleet = fleet("nomail.test", &smtp, &hook).start().await;
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
    let emergency = json["communications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == "emergency")
        .unwrap();
    assert_eq!(emergency["sent"], true, "Slack still went out");

    let md = report(&fleet, &id, "md");
    assert!(md.contains("to team-email (end): NOT sent: not delivered to emergency@samia-tarot.test: permanent error (535)"), "{md}");
    let html = report(&fleet, &id, "html");
    let reports = format!("{md}\n{html}\n{json}");
    assert!(!reports.contains(PASSWORD), "the password is in a report");
    backout_e2e::providers::assert_no_secret_leaves(&fleet, &[], &[PASSWORD]);
}
