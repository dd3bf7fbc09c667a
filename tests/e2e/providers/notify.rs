//! The notify plugin posting to a loopback Slack receiver.

use backout_e2e::Pki;
use backout_e2e::http::TestHttp;
use serde_json::{Value, json};

use backout_e2e::fleet::finished;
use backout_e2e::providers::{
    Grants, PHASE, SLACK_HOOK, assert_no_secret_leaves, dry_run, fleet, real_run, would,
};

/// The seed's emergency message (section 6.1), as the plan gives it.
const STEP: &str = r#"
[[phase.step]]
id = "notify-emergency"
plugin = "notify"
action = "post"
on = "app-1"
[phase.step.params]
url = "${secret:SLACK_WEBHOOK_URL}"
title = "🚨 PRODUCTION ROLLBACK INITIATED"
template = """
*EMERGENCY ROLLBACK IN PROGRESS*
Issue: {{ issue }}
Decision: {{reason}}"""
facts = { issue = "5xx at 12% since the 02:00 deploy", reason = "High Error Rate: roll back to v2.3.1" }
"#;

const FILLED: &str = "*EMERGENCY ROLLBACK IN PROGRESS*\nIssue: 5xx at 12% since the 02:00 deploy\nDecision: High Error Rate: roll back to v2.3.1";

#[tokio::test(flavor = "multi_thread")]
async fn notify_posts_the_filled_emergency_template_to_slack() {
    let pki = Pki::new("notify.test");
    let slack = TestHttp::start().await;
    let grants = Grants {
        notify: vec![slack.url("/services")],
        slack_url: slack.url(SLACK_HOOK),
        ..Default::default()
    };
    let plan = format!("{PHASE}{STEP}");
    let fleet = fleet(pki, &plan, &grants).await;

    // Dry run: the message it would post, and nothing posted.
    let report = dry_run(&fleet);
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(
        would(&report, "notify-emergency"),
        "would post to Slack: *EMERGENCY ROLLBACK IN PROGRESS*"
    );
    assert!(slack.requests.lock().unwrap().is_empty());

    let lines = real_run(&fleet).await;
    assert_eq!(
        lines.last().unwrap()["run"]["status"],
        "succeeded",
        "{lines:#?}"
    );
    let requests = slack.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert!(
        request.starts_with(&format!("POST {SLACK_HOOK} HTTP/1.1\r\n")),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{request}"
    );
    let body: Value = serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let expected = json!({
        "text": FILLED,
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": "🚨 PRODUCTION ROLLBACK INITIATED", "emoji": true } },
            { "type": "section", "text": { "type": "mrkdwn", "text": FILLED } },
        ],
    });
    assert_eq!(body, expected);
    let data = &finished(&lines, "notify-emergency")["data"];
    assert_eq!(data["posted"], expected);
    assert_eq!(data["answer"], "ok");

    // The webhook URL is the credential: it never leaves the agent.
    let hook_secret = SLACK_HOOK.rsplit('/').next().unwrap();
    assert_no_secret_leaves(&fleet, &lines, &[hook_secret, &grants.slack_url]);
}
