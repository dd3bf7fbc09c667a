//! The cdn plugin against Cloudflare's document.

use serde_json::json;

use backout_e2e::Pki;
use backout_e2e::fleet::finished;
use backout_e2e::providers::{
    CF_KEY, CF_TOKEN, Grants, PHASE, RECORD, ZONE, assert_all_accepted, assert_no_secret_leaves,
    dry_run, fleet, prisms, real_run, would, writes,
};

#[tokio::test(flavor = "multi_thread")]
async fn cdn_steps_meet_the_cloudflare_contract_and_record_what_was_there() {
    let pki = Pki::new("cdn.test");
    let servers = prisms(&pki, &["cloudflare-zones.openapi.json"]).await;
    let cf = &servers[0];
    let plan = format!(
        r#"{PHASE}
[[phase.step]]
id = "cdn-always-online"
plugin = "cdn"
action = "settings"
on = "app-1"
[phase.step.params]
api_base = "{base}"
zone = "{ZONE}"
token = "${{secret:CLOUDFLARE_TOKEN}}"
settings = {{ always_online = "on", development_mode = "off" }}

[[phase.step]]
id = "cdn-purge"
plugin = "cdn"
action = "purge"
on = "app-1"
[phase.step.params]
api_base = "{base}"
zone = "{ZONE}"
email = "ops@samia-tarot.com"
key = "${{secret:CLOUDFLARE_KEY}}"
files = ["https://samia-tarot.com/", "https://samia-tarot.com/app.js"]

[[phase.step]]
id = "cdn-dns"
plugin = "cdn"
action = "dns"
on = "app-1"
[phase.step.params]
api_base = "{base}"
zone = "{ZONE}"
email = "ops@samia-tarot.com"
key = "${{secret:CLOUDFLARE_KEY}}"
record = "{RECORD}"
set = {{ content = "203.0.113.7", proxied = true }}
"#,
        base = cf.base(),
    );
    let grants = Grants {
        cdn: vec![format!("{}/zones/{ZONE}", cf.base())],
        ..Default::default()
    };
    let fleet = fleet(pki, &plan, &grants).await;

    // Dry run: reads the two settings and the record, writes nothing.
    let report = dry_run(&fleet);
    assert_eq!(report["status"], "succeeded", "{report}");
    // Prism's mock reports no value for a setting (its schema is a oneOf
    // it cannot pick an example from), so "before" is null.
    assert_eq!(
        would(&report, "cdn-always-online"),
        format!("zone {ZONE}: would set always_online: null -> on; development_mode: null -> off")
    );
    assert_eq!(
        would(&report, "cdn-purge"),
        format!(
            "zone {ZONE}: would purge 2 files: https://samia-tarot.com/, https://samia-tarot.com/app.js"
        )
    );
    assert_eq!(
        would(&report, "cdn-dns"),
        format!(
            "zone {ZONE} DNS record {RECORD}: would set content: 198.51.100.4 -> 203.0.113.7; proxied: false -> true"
        )
    );
    assert_eq!(cf.requests().len(), 3, "{:?}", cf.requests());
    assert!(writes(cf).is_empty(), "{:?}", writes(cf));

    // The real run: each write is one the document accepts.
    let lines = real_run(&fleet).await;
    assert_eq!(
        lines.last().unwrap()["run"]["status"],
        "succeeded",
        "{lines:#?}"
    );
    let zone = format!("/zones/{ZONE}");
    assert_eq!(
        writes(cf),
        [
            (
                "PATCH".to_string(),
                format!("{zone}/settings/always_online")
            ),
            (
                "PATCH".to_string(),
                format!("{zone}/settings/development_mode")
            ),
            ("POST".to_string(), format!("{zone}/purge_cache")),
            ("PATCH".to_string(), format!("{zone}/dns_records/{RECORD}")),
        ]
    );
    assert_all_accepted(cf);

    let settings = &finished(&lines, "cdn-always-online")["data"];
    assert_eq!(
        settings["before"],
        json!({ "always_online": null, "development_mode": null })
    );
    assert_eq!(
        settings["changed"],
        json!([
            { "field": "always_online", "before": null, "after": "on" },
            { "field": "development_mode", "before": null, "after": "off" },
        ])
    );
    let purge = &finished(&lines, "cdn-purge")["data"];
    assert_eq!(
        purge["purged"],
        json!({ "files": ["https://samia-tarot.com/", "https://samia-tarot.com/app.js"] })
    );
    let dns = &finished(&lines, "cdn-dns")["data"];
    assert_eq!(
        dns["before"],
        json!({ "content": "198.51.100.4", "proxied": false })
    );
    assert_eq!(
        dns["changed"],
        json!([
            { "field": "content", "before": "198.51.100.4", "after": "203.0.113.7" },
            { "field": "proxied", "before": false, "after": true },
        ])
    );

    assert_no_secret_leaves(&fleet, &lines, &[CF_TOKEN, CF_KEY]);
}
