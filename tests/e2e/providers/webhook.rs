//! The webhook plugin against Stripe's and Square's documents.

use serde_json::json;

use backout_e2e::Pki;
use backout_e2e::fleet::finished;
use backout_e2e::providers::{
    Grants, PHASE, SQUARE_TOKEN, STRIPE_KEY, assert_all_accepted, assert_no_secret_leaves, dry_run,
    fleet, prisms, real_run, would, writes,
};

#[tokio::test(flavor = "multi_thread")]
async fn webhook_steps_meet_the_stripe_and_square_contracts_and_record_what_was_there() {
    let pki = Pki::new("webhooks.test");
    let servers = prisms(
        &pki,
        &[
            "stripe-webhook-endpoints.openapi.json",
            "square-webhook-subscriptions.openapi.json",
        ],
    )
    .await;
    let (stripe, square) = (&servers[0], &servers[1]);
    let plan = format!(
        r#"{PHASE}
[[phase.step]]
id = "stripe-webhook"
plugin = "webhook"
action = "stripe-update"
on = "app-1"
[phase.step.params]
api_base = "{stripe}"
endpoint = "we_1Samia"
secret_key = "${{secret:STRIPE_SECRET_KEY}}"
url = "https://samia-tarot.com/webhooks/stripe/v1"
enabled_events = ["payment_intent.succeeded"]
disabled = false

[[phase.step]]
id = "stripe-undo"
plugin = "webhook"
action = "stripe-restore"
on = "app-1"
[phase.step.params]
api_base = "{stripe}"
endpoint = "we_1Samia"
secret_key = "${{secret:STRIPE_SECRET_KEY}}"
previous = {{ url = "https://samia-tarot.com/webhooks/stripe/v2", enabled_events = ["payment_intent.succeeded", "charge.refunded"], disabled = false }}

[[phase.step]]
id = "square-webhook"
plugin = "webhook"
action = "square-update"
on = "app-1"
[phase.step.params]
api_base = "{square}"
subscription = "wbhk_samia"
access_token = "${{secret:SQUARE_ACCESS_TOKEN}}"
notification_url = "https://samia-tarot.com/webhooks/square/v1"
event_types = ["payment.created", "payment.updated"]
enabled = true

[[phase.step]]
id = "square-undo"
plugin = "webhook"
action = "square-restore"
on = "app-1"
[phase.step.params]
api_base = "{square}"
subscription = "wbhk_samia"
access_token = "${{secret:SQUARE_ACCESS_TOKEN}}"
previous = {{ notification_url = "https://samia-tarot.com/webhooks/square/v2", event_types = ["payment.created"], enabled = true }}
"#,
        stripe = stripe.base(),
        square = square.base(),
    );
    let grants = Grants {
        webhook: vec![
            format!("{}/v1/webhook_endpoints", stripe.base()),
            format!("{}/v2/webhooks/subscriptions", square.base()),
        ],
        ..Default::default()
    };
    let fleet = fleet(pki, &plan, &grants).await;

    // A dry run reads each resource and says what it would change; it
    // writes nothing.
    let report = dry_run(&fleet);
    assert_eq!(report["status"], "succeeded", "{report}");
    let stripe_would = would(&report, "stripe-webhook");
    assert!(
        stripe_would.starts_with("stripe webhook endpoint we_1Samia: would set ")
            && stripe_would.contains("url: string -> https://samia-tarot.com/webhooks/stripe/v1"),
        "{stripe_would}"
    );
    let square_would = would(&report, "square-webhook");
    assert!(
        square_would.contains(
            "notification_url: https://example-webhook-url.com -> https://samia-tarot.com/webhooks/square/v1"
        ),
        "{square_would}"
    );
    assert_eq!(stripe.requests().len(), 2, "{:?}", stripe.requests());
    assert_eq!(square.requests().len(), 2, "{:?}", square.requests());
    assert!(writes(stripe).is_empty() && writes(square).is_empty());

    // The real run: every step succeeds, so the contract accepted each call.
    let lines = real_run(&fleet).await;
    let result = lines.last().unwrap();
    assert_eq!(result["run"]["status"], "succeeded", "{lines:#?}");
    assert_eq!(
        writes(stripe),
        [
            (
                "POST".to_string(),
                "/v1/webhook_endpoints/we_1Samia".to_string()
            ),
            (
                "POST".to_string(),
                "/v1/webhook_endpoints/we_1Samia".to_string()
            ),
        ]
    );
    assert_eq!(
        writes(square),
        [
            (
                "PUT".to_string(),
                "/v2/webhooks/subscriptions/wbhk_samia".to_string()
            ),
            (
                "PUT".to_string(),
                "/v2/webhooks/subscriptions/wbhk_samia".to_string()
            ),
        ]
    );
    assert_all_accepted(stripe);
    assert_all_accepted(square);

    // What was there before is in the data (and emitted as `previous`),
    // with what changed; Prism's mock answers are the "before".
    let stripe_data = &finished(&lines, "stripe-webhook")["data"];
    assert_eq!(
        stripe_data["before"],
        json!({ "url": "string", "enabled_events": ["string"], "disabled": false, "description": "string" })
    );
    assert_eq!(
        stripe_data["changed"],
        json!([
            { "field": "enabled_events", "before": ["string"], "after": ["payment_intent.succeeded"] },
            { "field": "url", "before": "string", "after": "https://samia-tarot.com/webhooks/stripe/v1" },
        ])
    );
    let square_data = &finished(&lines, "square-webhook")["data"];
    assert_eq!(
        square_data["before"],
        json!({
            "notification_url": "https://example-webhook-url.com",
            "event_types": ["payment.created", "payment.updated"],
            "enabled": true,
            "name": "Example Webhook Subscription",
        })
    );
    assert!(
        !square_data.to_string().contains("signature_key"),
        "Square's signature key is never recorded: {square_data}"
    );
    let undo = &finished(&lines, "square-undo")["data"];
    assert_eq!(
        undo["requested"],
        json!({ "notification_url": "https://samia-tarot.com/webhooks/square/v2", "event_types": ["payment.created"], "enabled": true })
    );
    assert!(
        lines.iter().any(|l| l.to_string().contains("previous")
            && l["kind"] != "finished"
            && l["step"] == "stripe-webhook"),
        "the previous state is emitted as an output: {lines:#?}"
    );

    assert_no_secret_leaves(&fleet, &lines, &[STRIPE_KEY, SQUARE_TOKEN]);
}
