//! The statuspage plugin against the Statuspage contract
//! (`statuspage-incidents.openapi.json`, written from Atlassian's reference).

use serde_json::json;

use backout_e2e::Pki;
use backout_e2e::fleet::finished;
use backout_e2e::providers::{
    Grants, PHASE, STATUSPAGE_KEY, assert_all_accepted, assert_no_secret_leaves, dry_run, fleet,
    prisms, real_run, would, writes,
};

#[tokio::test(flavor = "multi_thread")]
async fn statuspage_steps_open_update_resolve_and_restore_within_the_contract() {
    let pki = Pki::new("statuspage.test");
    let servers = prisms(&pki, &["statuspage-incidents.openapi.json"]).await;
    let prism = &servers[0];
    let base = prism.base();
    let target = format!(
        "api_base = \"{base}\"\npage = \"gytm4qzbx9t6\"\napi_key = \"${{secret:STATUSPAGE_API_KEY}}\""
    );
    let plan = format!(
        r#"{PHASE}
[[phase.step]]
id = "open"
plugin = "statuspage"
action = "open"
on = "app-1"
[phase.step.params]
{target}
name = "Service disruption"
body = "We are rolling back a release; some pages may be slow."
components = {{ "8kbf7d35c070" = "major_outage", "vtnh60py4yd7" = "degraded_performance" }}

[[phase.step]]
id = "update"
plugin = "statuspage"
action = "update"
on = "app-1"
[phase.step.params]
{target}
incident = "p31zjtct2jer"
status = "identified"
body = "Application Rollback: succeeded."

[[phase.step]]
id = "resolve"
plugin = "statuspage"
action = "resolve"
on = "app-1"
[phase.step.params]
{target}
incident = "p31zjtct2jer"
body = "Resolved."
previous = {{ "8kbf7d35c070" = "operational" }}

[[phase.step]]
id = "restore"
plugin = "statuspage"
action = "restore"
on = "app-1"
[phase.step.params]
{target}
previous = {{ "vtnh60py4yd7" = "partial_outage" }}
"#
    );
    let grants = Grants {
        statuspage: vec![format!("{base}/pages/")],
        ..Default::default()
    };
    let fleet = fleet(pki, &plan, &grants).await;

    // A dry run reads the components and the incident; it writes nothing.
    let report = dry_run(&fleet);
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(
        would(&report, "open"),
        "would open a Statuspage incident `Service disruption` (2 component(s))"
    );
    assert_eq!(
        would(&report, "update"),
        "would update Statuspage incident p31zjtct2jer"
    );
    assert!(writes(prism).is_empty(), "{:?}", prism.requests());
    assert!(!prism.requests().is_empty());

    let lines = real_run(&fleet).await;
    assert_eq!(
        lines.last().unwrap()["run"]["status"],
        "succeeded",
        "{lines:#?}"
    );
    assert_eq!(
        writes(prism),
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
            (
                "PATCH".to_string(),
                "/pages/gytm4qzbx9t6/components/vtnh60py4yd7".to_string()
            ),
        ]
    );
    assert_all_accepted(prism);

    // The components' previous status is recorded first; the incident is named.
    let open = &finished(&lines, "open")["data"];
    assert_eq!(
        open["before"],
        json!({ "8kbf7d35c070": "operational", "vtnh60py4yd7": "operational" }),
        "Prism's example status"
    );
    assert_eq!(open["incident"], "p31zjtct2jer");
    assert_eq!(open["shortlink"], "http://stspg.io/803310a12");
    assert_eq!(
        open["changed"],
        json!([
            { "field": "8kbf7d35c070", "before": "operational", "after": "major_outage" },
            { "field": "vtnh60py4yd7", "before": "operational", "after": "degraded_performance" },
        ])
    );
    let resolve = &finished(&lines, "resolve")["data"];
    assert_eq!(
        resolve["sent"],
        json!({ "body": "Resolved.", "status": "resolved", "components": { "8kbf7d35c070": "operational" } })
    );
    let restore = &finished(&lines, "restore")["data"];
    assert_eq!(
        restore["changed"],
        json!([{ "field": "vtnh60py4yd7", "before": "operational", "after": "partial_outage" }])
    );
    assert_no_secret_leaves(&fleet, &lines, &[STATUSPAGE_KEY]);
}
