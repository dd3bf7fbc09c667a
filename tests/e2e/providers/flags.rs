//! The flags plugin against Unleash's own OpenAPI document (its admin API's
//! feature-environment endpoints, from the unleash-server package).

use serde_json::json;

use backout_e2e::Pki;
use backout_e2e::fleet::finished;
use backout_e2e::providers::{
    Grants, PHASE, UNLEASH_TOKEN, assert_all_accepted, assert_no_secret_leaves, dry_run, fleet,
    prisms, real_run, would, writes,
};

#[tokio::test(flavor = "multi_thread")]
async fn flags_are_turned_off_and_back_within_unleashs_contract_recording_what_they_were() {
    let pki = Pki::new("flags.test");
    let servers = prisms(&pki, &["unleash-feature-environments.openapi.json"]).await;
    let prism = &servers[0];
    let base = prism.base();
    let target = format!(
        "api_base = \"{base}\"\ntoken = \"${{secret:UNLEASH_TOKEN}}\"\nproject = \"default\"\nenvironment = \"production\""
    );
    let plan = format!(
        r#"{PHASE}
[[phase.step]]
id = "flags-off"
plugin = "flags"
action = "off"
on = "app-1"
[phase.step.params]
{target}
flags = ["new-checkout", "tarot-ai-readings"]

[[phase.step]]
id = "flags-back"
plugin = "flags"
action = "restore"
on = "app-1"
[phase.step.params]
{target}
previous = {{ "new-checkout" = false }}
"#
    );
    let grants = Grants {
        flags: vec![format!("{base}/api/admin/projects/")],
        ..Default::default()
    };
    let fleet = fleet(pki, &plan, &grants).await;

    // A dry run only reads: Unleash's example says each flag is enabled.
    let report = dry_run(&fleet);
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(
        would(&report, "flags-off"),
        "unleash flags in default/production: would set new-checkout: true -> false; tarot-ai-readings: true -> false"
    );
    assert!(writes(prism).is_empty(), "{:?}", prism.requests());
    assert_eq!(prism.requests().len(), 3, "{:?}", prism.requests());

    let lines = real_run(&fleet).await;
    assert_eq!(
        lines.last().unwrap()["run"]["status"],
        "succeeded",
        "{lines:#?}"
    );
    let env = "/api/admin/projects/default/features";
    assert_eq!(
        writes(prism),
        [
            (
                "POST".to_string(),
                format!("{env}/new-checkout/environments/production/off")
            ),
            (
                "POST".to_string(),
                format!("{env}/tarot-ai-readings/environments/production/off")
            ),
            (
                "POST".to_string(),
                format!("{env}/new-checkout/environments/production/off")
            ),
        ],
        "restore turns new-checkout to what `previous` says (off), as the mock still reads it on"
    );
    assert_all_accepted(prism);
    let off = &finished(&lines, "flags-off")["data"];
    assert_eq!(
        off["before"],
        json!({ "new-checkout": true, "tarot-ai-readings": true })
    );
    assert_eq!(
        off["changed"],
        json!([
            { "field": "new-checkout", "before": true, "after": false },
            { "field": "tarot-ai-readings", "before": true, "after": false },
        ])
    );
    assert_eq!(
        off["after"],
        json!({ "new-checkout": false, "tarot-ai-readings": false })
    );
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("previous") && l["step"] == "flags-off"),
        "the previous state is emitted: {lines:#?}"
    );
    assert_no_secret_leaves(&fleet, &lines, &[UNLEASH_TOKEN]);
}
