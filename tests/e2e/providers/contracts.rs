//! The contracts bite: requests the providers' documents reject are
//! rejected by Prism (sent raw through the testbed plugin's `http` action),
//! and the plugins turn a rejected call or bad parameters into a failed step.

use serde_json::Value;

use backout_e2e::Pki;
use backout_e2e::fleet::finished;
use backout_e2e::providers::{Grants, PHASE, RECORD, ZONE, fleet, prisms, quoted, real_run};

/// A testbed `http` step: `(id, method, url, headers, body)`.
fn raw(id: &str, method: &str, url: &str, headers: &str, body: &str) -> String {
    format!(
        "\n[[phase.step]]\nid = \"{id}\"\nplugin = \"testbed\"\naction = \"http\"\non = \"app-1\"\n[phase.step.params]\nmethod = \"{method}\"\nurl = \"{url}\"\nheaders = {headers}\nbody = '{body}'\n"
    )
}

/// A plugin step whose failure the run carries on past.
fn failing(id: &str, plugin: &str, action: &str, params: &str) -> String {
    format!(
        "\n[[phase.step]]\nid = \"{id}\"\nplugin = \"{plugin}\"\naction = \"{action}\"\non = \"app-1\"\non_failure = \"continue\"\nparams = {params}\n"
    )
}

const BEARER: &str =
    r#"[["authorization", "Bearer sk_test_x"], ["content-type", "application/json"]]"#;
const FORM: &str = r#"[["authorization", "Bearer sk_test_x"], ["content-type", "application/x-www-form-urlencoded"]]"#;
const CF_KEY_HEADERS: &str = r#"[["x-auth-email", "ops@samia-tarot.com"], ["x-auth-key", "k"], ["content-type", "application/json"]]"#;

#[tokio::test(flavor = "multi_thread")]
async fn requests_the_provider_documents_reject_are_rejected_and_fail_the_step() {
    let pki = Pki::new("contracts.test");
    let servers = prisms(
        &pki,
        &[
            "stripe-webhook-endpoints.openapi.json",
            "square-webhook-subscriptions.openapi.json",
            "cloudflare-zones.openapi.json",
        ],
    )
    .await;
    let (stripe, square, cf) = (servers[0].base(), servers[1].base(), servers[2].base());
    let seed_square = r#"{"webhook": {"notification_url": "https://samia-tarot.com/webhooks/square/v1", "event_types": ["payment.created", "payment.updated"]}}"#;
    let mut plan = PHASE.to_string();
    for (id, method, url, headers, body) in [
        // The seed plan's Square call: old path, old shape.
        (
            "square-seed",
            "PUT",
            format!("{square}/v2/webhooks/wbhk_samia"),
            BEARER,
            seed_square,
        ),
        // Its body on the right path: Square's document allows properties it
        // does not name, so only the path gives the seed's call away.
        (
            "square-seed-body",
            "PUT",
            format!("{square}/v2/webhooks/subscriptions/wbhk_samia"),
            BEARER,
            seed_square,
        ),
        (
            "square-wrong-types",
            "PUT",
            format!("{square}/v2/webhooks/subscriptions/wbhk_samia"),
            BEARER,
            r#"{"subscription": {"event_types": "payment.created", "enabled": "yes"}}"#,
        ),
        (
            "square-no-credentials",
            "PUT",
            format!("{square}/v2/webhooks/subscriptions/wbhk_samia"),
            r#"[["content-type", "application/json"]]"#,
            r#"{"subscription": {"enabled": true}}"#,
        ),
        (
            "stripe-no-credentials",
            "GET",
            format!("{stripe}/v1/webhook_endpoints/we_1Samia"),
            "[]",
            "",
        ),
        (
            "stripe-unknown-event",
            "POST",
            format!("{stripe}/v1/webhook_endpoints/we_1Samia"),
            FORM,
            "enabled_events%5B0%5D=not.an.event",
        ),
        (
            "stripe-json-body",
            "POST",
            format!("{stripe}/v1/webhook_endpoints/we_1Samia"),
            BEARER,
            r#"{"url": "https://samia-tarot.com/webhooks/stripe/v1"}"#,
        ),
        (
            "cf-bad-value",
            "PATCH",
            format!("{cf}/zones/{ZONE}/settings/always_online"),
            BEARER,
            r#"{"id": "always_online", "value": "maybe"}"#,
        ),
        // Cloudflare's document wants the list itself, not {"items": [...]}.
        (
            "cf-items-object",
            "PATCH",
            format!("{cf}/zones/{ZONE}/settings"),
            BEARER,
            r#"{"items": [{"id": "always_online", "value": "on"}]}"#,
        ),
        (
            "cf-dns-partial",
            "PATCH",
            format!("{cf}/zones/{ZONE}/dns_records/{RECORD}"),
            CF_KEY_HEADERS,
            r#"{"content": "203.0.113.7"}"#,
        ),
    ] {
        plan += &raw(id, method, &url, headers, body);
    }
    let cdn_base = format!("api_base = \"{cf}\", zone = \"{ZONE}\"");
    for (id, plugin, action, params) in [
        // The document accepts only X-Auth-Email and X-Auth-Key for DNS.
        (
            "dns-with-token",
            "cdn",
            "dns",
            format!(
                "{{ {cdn_base}, token = \"${{secret:CLOUDFLARE_TOKEN}}\", record = \"{RECORD}\", set = {{ content = \"203.0.113.7\" }} }}"
            ),
        ),
        (
            "key-in-clear",
            "webhook",
            "stripe-update",
            format!(
                "{{ api_base = \"{stripe}\", endpoint = \"we_1\", secret_key = \"sk_live_in_the_plan\", url = \"https://x.example/\" }}"
            ),
        ),
        (
            "unknown-param",
            "cdn",
            "settings",
            format!(
                "{{ {cdn_base}, token = \"${{secret:CLOUDFLARE_TOKEN}}\", settings = {{ always_online = \"on\" }}, zone_id = \"x\" }}"
            ),
        ),
        (
            "missing-fact",
            "notify",
            "post",
            "{ url = \"http://127.0.0.1:9/services/x\", template = \"Issue: {{ issue }}\" }"
                .to_string(),
        ),
    ] {
        plan += &failing(id, plugin, action, &params);
    }
    let grants = Grants {
        webhook: vec![format!("{stripe}/v1/webhook_endpoints")],
        cdn: vec![format!("{cf}/zones/{ZONE}")],
        notify: vec!["http://127.0.0.1:9/services".to_string()],
        slack_url: "http://127.0.0.1:9/services/unused".to_string(),
        testbed: format!("urls = [{}]", quoted(&[stripe, square, cf])),
        // `key-in-clear` and `unknown-param` are what `plan check` refuses;
        // here the plugins must refuse them too.
        unchecked_plan: true,
        ..Default::default()
    };
    let fleet = fleet(pki, &plan, &grants).await;
    let lines = real_run(&fleet).await;

    let status = |id: &str| -> Value { finished(&lines, id)["data"]["status"].clone() };
    assert_eq!(status("square-seed"), 404, "no such path in Square's API");
    assert_eq!(status("square-seed-body"), 200);
    assert_eq!(status("square-wrong-types"), 422);
    assert_eq!(status("square-no-credentials"), 401);
    assert_eq!(status("stripe-no-credentials"), 401);
    assert_eq!(status("stripe-unknown-event"), 422);
    assert_eq!(status("stripe-json-body"), 415);
    assert_eq!(status("cf-bad-value"), 422);
    assert_eq!(status("cf-items-object"), 422);
    assert_eq!(status("cf-dns-partial"), 422);

    for (id, code) in [
        ("dns-with-token", "unauthorized"),
        ("key-in-clear", "bad-params"),
        ("unknown-param", "bad-params"),
        ("missing-fact", "bad-params"),
    ] {
        let line = finished(&lines, id);
        assert_eq!(line["outcome"], "failed", "{line}");
        let text = line["text"].as_str().unwrap();
        assert!(text.contains(code), "{id}: {text}");
    }
    let text = |id: &str| finished(&lines, id)["text"].as_str().unwrap().to_string();
    assert!(
        text("dns-with-token").contains("HTTP 401"),
        "{}",
        text("dns-with-token")
    );
    assert!(
        text("unknown-param").contains("zone_id"),
        "{}",
        text("unknown-param")
    );
    assert!(
        text("missing-fact").contains("issue"),
        "{}",
        text("missing-fact")
    );
    assert!(!text("key-in-clear").contains("sk_live_in_the_plan"));
}
