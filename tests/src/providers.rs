//! What the provider tests (`tests/e2e/providers/`) share: Prism serving the
//! providers' documents, a fleet of one agent (app-1) with the webhook, cdn
//! and notify plugins and every secret in files, dry and real runs, and the
//! checks that secrets never leave the agent.

use serde_json::Value;

use crate::fleet::{Fleet, run_id};
use crate::prism::{Prism, provider_api};
use crate::{Pki, plugin};

pub const STRIPE_KEY: &str = "sk_test_e2e_51HxProviders";
pub const SQUARE_TOKEN: &str = "EAAAl_e2e_square_token_9f";
pub const CF_TOKEN: &str = "cf_e2e_api_token_7731";
pub const CF_KEY: &str = "cf_e2e_global_key_0042";
pub const STATUSPAGE_KEY: &str = "sp_e2e_api_key_5d1f";
pub const UNLEASH_TOKEN: &str = "*:production.unleash_e2e_token_77aa";
/// The secret part of the Slack webhook URL (the whole URL is the secret).
pub const SLACK_HOOK: &str = "/services/T0E2E/B0E2E/slackhooksecret123";
/// A Cloudflare zone and DNS record of the document's examples.
pub const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";
pub const RECORD: &str = "372e67954025e0ba6aaa6d586b9e0b59";

/// The phase every provider plan's steps belong to.
pub const PHASE: &str = r#"[[phase]]
id = "external-services"
name = "External Service Rollback"
"#;

/// Starts Prism for each document (in parallel: each takes seconds).
pub async fn prisms(pki: &Pki, documents: &[&str]) -> Vec<Prism> {
    let tasks: Vec<_> = documents
        .iter()
        .map(|doc| {
            let path = provider_api(doc);
            let log = pki.path().join(format!("prism-{doc}.log"));
            tokio::task::spawn_blocking(move || Prism::start(&path, &log))
        })
        .collect();
    let mut started = Vec::new();
    for task in tasks {
        started.push(task.await.unwrap());
    }
    started
}

/// URL prefixes per plugin, the Slack URL secret, and the testbed's grants.
#[derive(Default)]
pub struct Grants {
    pub webhook: Vec<String>,
    pub cdn: Vec<String>,
    pub notify: Vec<String>,
    pub statuspage: Vec<String>,
    pub flags: Vec<String>,
    pub slack_url: String,
    pub testbed: String,
    /// The plan has steps `plan check` refuses (to see the plugins refuse
    /// them at run time): the coordinator is started without that check.
    pub unchecked_plan: bool,
    /// More of the coordinator's configuration (e.g. `evaluate_every`).
    pub config: String,
}

/// A coordinator with `plan` (after the head: run approval by
/// technical-lead), and agent app-1 with the three plugins, the given URL
/// grants, and every secret above in files.
pub async fn fleet(pki: Pki, plan: &str, grants: &Grants) -> Fleet {
    let mut extra = String::new();
    for (name, urls, secrets) in [
        (
            "webhook",
            &grants.webhook,
            "\"STRIPE_SECRET_KEY\", \"SQUARE_ACCESS_TOKEN\"",
        ),
        (
            "cdn",
            &grants.cdn,
            "\"CLOUDFLARE_TOKEN\", \"CLOUDFLARE_KEY\"",
        ),
        ("notify", &grants.notify, "\"SLACK_WEBHOOK_URL\""),
        ("statuspage", &grants.statuspage, "\"STATUSPAGE_API_KEY\""),
        ("flags", &grants.flags, "\"UNLEASH_TOKEN\""),
    ] {
        // A plugin with no URL to call is not loaded at all: each declares
        // that it needs one, and the agent refuses what it cannot grant.
        if urls.is_empty() {
            continue;
        }
        extra += &format!(
            "\n[[plugin]]\nname = \"{name}\"\npath = \"{}\"\n[plugin.grants]\nurls = [{}]\nsecrets = [{secrets}]\n",
            plugin(name).display(),
            quoted(urls),
        );
    }
    extra += "\n[secrets]\n";
    let secrets = [
        ("STRIPE_SECRET_KEY", STRIPE_KEY.to_string()),
        ("SQUARE_ACCESS_TOKEN", SQUARE_TOKEN.to_string()),
        ("CLOUDFLARE_TOKEN", CF_TOKEN.to_string()),
        ("CLOUDFLARE_KEY", CF_KEY.to_string()),
        ("STATUSPAGE_API_KEY", STATUSPAGE_KEY.to_string()),
        ("UNLEASH_TOKEN", UNLEASH_TOKEN.to_string()),
        // An empty secret is refused by the agent: a test without a Slack
        // receiver gets a URL nothing listens on.
        (
            "SLACK_WEBHOOK_URL",
            if grants.slack_url.is_empty() {
                "http://127.0.0.1:9/services/unused".to_string()
            } else {
                grants.slack_url.clone()
            },
        ),
    ];
    for (name, value) in secrets {
        let file = pki.path().join(format!("secret-{name}"));
        crate::write_secret(&file, value);
        extra += &format!("{name} = {{ file = \"{}\" }}\n", file.display());
    }
    let builder = Fleet::builder("providers.test")
        .pki(pki)
        .name("providers e2e")
        .hosts(["app-1"])
        .approvals(["technical-lead"])
        .plan(plan)
        .testbed_grants(&grants.testbed)
        .config(&grants.config)
        .agent_config(move |_, config| config + &extra);
    if grants.unchecked_plan {
        builder.skip_plan_check().start().await
    } else {
        builder.start().await
    }
}

/// `"a", "b"`: a TOML list's inside.
pub fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A dry run: its report (per host, each step and what it would do).
pub fn dry_run(fleet: &Fleet) -> Value {
    let report = fleet.start_run("dave", &["--reason", "rehearsal", "--dry-run"]);
    assert_eq!(report["dry_run"], true);
    report
}

/// A real run, approved by bob, watched to its end: every JSON line.
pub async fn real_run(fleet: &Fleet) -> Vec<Value> {
    let id = run_id(&fleet.start_run("dave", &["--reason", "providers"]));
    fleet.approve(&id, &["bob"]);
    fleet.watch_to_end(&id).await
}

/// What a dry-run step would do on app-1.
pub fn would(report: &Value, step: &str) -> String {
    report["hosts"]["app-1"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {report}"))["would"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Asserts that no secret value appears in what the coordinator and the
/// agent wrote or sent: watch lines, both logs, every journal row.
pub fn assert_no_secret_leaves(fleet: &Fleet, lines: &[Value], secrets: &[&str]) {
    let mut places = vec![
        ("watch lines", format!("{lines:?}")),
        (
            "agent log",
            std::fs::read_to_string(fleet.agent_log("app-1", "")).unwrap(),
        ),
        (
            "coordinator log",
            std::fs::read_to_string(fleet.path().join("coordinator.log")).unwrap(),
        ),
    ];
    let journal = rusqlite::Connection::open(fleet.journal()).unwrap();
    let mut rows = journal
        .prepare("SELECT run_id, kind, body FROM entries ORDER BY seq")
        .unwrap();
    let all: Vec<String> = rows
        .query_map([], |r| {
            Ok(format!(
                "{} {} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(all.len() > 5, "the journal has the runs: {all:?}");
    places.push(("journal", all.join("\n")));
    for (place, text) in &places {
        assert!(!text.is_empty(), "{place} is empty");
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked into the {place}");
        }
    }
}

/// Prism accepted every request it was sent: it logs each violation of the
/// document by a request (its own mock answers may violate it too: it
/// cannot build a `oneOf` of Cloudflare's settings, and says so).
pub fn assert_all_accepted(prism: &Prism) {
    let log = prism.log_text();
    assert!(
        !log.contains("Violation: request"),
        "Prism rejected a request: {log}"
    );
}

/// The requests other than GET that Prism received: (method, path).
pub fn writes(prism: &Prism) -> Vec<(String, String)> {
    prism
        .requests()
        .into_iter()
        .filter(|(m, _)| m != "GET")
        .collect()
}
