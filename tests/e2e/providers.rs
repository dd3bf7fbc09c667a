//! The webhook, cdn and notify plugins run by a real agent in rollback runs,
//! against Prism serving the providers' own API documents
//! (`tests/provider-apis/`) and a loopback Slack receiver. Every request a
//! plugin sends must be one the document accepts; requests the documents
//! reject are shown to be rejected; secrets never leave the agent.

use std::time::Duration;

use backout_e2e::prism::{Prism, provider_api};
use backout_e2e::{
    Coordinator, Pki, Proc, agent_config, cli, connected_agents, json_of, plan_config, plugin,
    start_agent, wait_for, watch_to_end,
};
use serde_json::Value;

mod cdn;
mod contracts;
mod notify;
mod webhook;

pub(super) const STRIPE_KEY: &str = "sk_test_e2e_51HxProviders";
pub(super) const SQUARE_TOKEN: &str = "EAAAl_e2e_square_token_9f";
pub(super) const CF_TOKEN: &str = "cf_e2e_api_token_7731";
pub(super) const CF_KEY: &str = "cf_e2e_global_key_0042";
/// The secret part of the Slack webhook URL (the whole URL is the secret).
pub(super) const SLACK_HOOK: &str = "/services/T0E2E/B0E2E/slackhooksecret123";

pub(super) const HEAD: &str = r#"[plan]
name = "providers e2e"
[[host]]
id = "app-1"
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
[approvals]
run = ["technical-lead"]
[[phase]]
id = "external-services"
name = "External Service Rollback"
"#;

/// Starts Prism for each document (in parallel: each takes seconds).
pub(super) async fn prisms(pki: &Pki, documents: &[&str]) -> Vec<Prism> {
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

/// A coordinator with `plan`, and agent app-1 with the three plugins, the
/// given URL grants, and every secret above in files.
pub(super) async fn fleet(pki: &Pki, plan: &str, grants: &Grants) -> (Coordinator, Proc) {
    pki.issue("agent", "app-1");
    for op in ["dave", "bob", "alice"] {
        pki.issue("operator", op);
    }
    std::fs::write(pki.path().join("plan.toml"), plan).unwrap();
    let coordinator = Coordinator::start(pki.path(), &plan_config(pki, "state")).await;

    let state = pki.path().join("state-app-1");
    let mut config = agent_config(pki, "app-1", &coordinator.addr, &state, &grants.testbed);
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
    ] {
        // A plugin with no URL to call is not loaded at all: each declares
        // that it needs one, and the agent refuses what it cannot grant.
        if urls.is_empty() {
            continue;
        }
        config += &format!(
            "\n[[plugin]]\nname = \"{name}\"\npath = \"{}\"\n[plugin.grants]\nurls = [{}]\nsecrets = [{secrets}]\n",
            plugin(name).display(),
            quoted(urls),
        );
    }
    config += "\n[secrets]\n";
    let secrets = [
        ("STRIPE_SECRET_KEY", STRIPE_KEY.to_string()),
        ("SQUARE_ACCESS_TOKEN", SQUARE_TOKEN.to_string()),
        ("CLOUDFLARE_TOKEN", CF_TOKEN.to_string()),
        ("CLOUDFLARE_KEY", CF_KEY.to_string()),
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
        std::fs::write(&file, value).unwrap();
        config += &format!("{name} = {{ file = \"{}\" }}\n", file.display());
    }
    let path = pki.path().join("app-1.toml");
    std::fs::write(&path, config).unwrap();
    let agent = start_agent(&path, &pki.path().join("app-1.log"));
    let addr = coordinator.addr.clone();
    wait_for("the agent", Duration::from_secs(30), || {
        (connected_agents(pki, &addr, "alice").len() == 1).then_some(())
    })
    .await;
    (coordinator, agent)
}

/// URL prefixes per plugin, the Slack URL secret, and the testbed's grants.
#[derive(Default)]
pub(super) struct Grants {
    pub(super) webhook: Vec<String>,
    pub(super) cdn: Vec<String>,
    pub(super) notify: Vec<String>,
    pub(super) slack_url: String,
    pub(super) testbed: String,
}

pub(super) fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A dry run: its report (per host, each step and what it would do).
pub(super) fn dry_run(pki: &Pki, addr: &str) -> Value {
    let report = json_of(&cli(
        pki,
        addr,
        "dave",
        &[
            "rollback",
            "start",
            "--reason",
            "rehearsal",
            "--dry-run",
            "--output",
            "json",
        ],
    ));
    assert_eq!(report["dry_run"], true);
    report
}

/// A real run, approved by bob, watched to its end: every JSON line.
pub(super) async fn real_run(pki: &Pki, addr: &str) -> Vec<Value> {
    let started = json_of(&cli(
        pki,
        addr,
        "dave",
        &[
            "rollback",
            "start",
            "--reason",
            "providers",
            "--output",
            "json",
        ],
    ));
    let id = started["run"].as_str().unwrap().to_string();
    json_of(&cli(
        pki,
        addr,
        "bob",
        &["approve", &id, "--output", "json"],
    ));
    watch_to_end(pki, addr, &id).await
}

/// The `finished` line of step `id`.
pub(super) fn finished<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["kind"] == "finished" && l["step"] == id)
        .unwrap_or_else(|| panic!("no finished line for {id}: {lines:#?}"))
}

/// What each dry-run step would do, by step id.
pub(super) fn would(report: &Value, step: &str) -> String {
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
pub(super) fn assert_no_secret_leaves(pki: &Pki, lines: &[Value], secrets: &[&str]) {
    let mut places = vec![
        ("watch lines", format!("{lines:?}")),
        (
            "agent log",
            std::fs::read_to_string(pki.path().join("app-1.log")).unwrap(),
        ),
        (
            "coordinator log",
            std::fs::read_to_string(pki.path().join("coordinator.log")).unwrap(),
        ),
    ];
    let journal = rusqlite::Connection::open(pki.path().join("state/journal.db")).unwrap();
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
pub(super) fn assert_all_accepted(prism: &Prism) {
    let log = prism.log_text();
    assert!(
        !log.contains("Violation: request"),
        "Prism rejected a request: {log}"
    );
}

pub(super) fn writes(prism: &Prism) -> Vec<(String, String)> {
    prism
        .requests()
        .into_iter()
        .filter(|(m, _)| m != "GET")
        .collect()
}
