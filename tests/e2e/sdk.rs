//! A third-party plugin, built outside the workspace, loads into an agent
//! built without it; an agent that does not grant what a plugin needs
//! disables that plugin and says what is missing, and one that does not
//! grant an optional need loads the plugin anyway.

use backout_e2e::fleet::Fleet;
use backout_e2e::{Pki, plugin};

fn maintenance(flag_dir: &std::path::Path, grants: bool) -> String {
    let grants = if grants {
        format!(
            "read = [\"{d}\"]\nwrite = [\"{d}\"]\n",
            d = flag_dir.display()
        )
    } else {
        String::new()
    };
    format!(
        "[[plugin]]\nname = \"maintenance\"\npath = \"{}\"\n[plugin.grants]\n{grants}",
        plugin("maintenance").display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_outside_the_workspace_runs_in_an_unchanged_agent() {
    let pki = Pki::new("sdk.test");
    let flags = pki.path().join("www");
    std::fs::create_dir_all(&flags).unwrap();
    let flag = flags.join("maintenance.flag");
    let plan = format!(
        "[[phase]]\nid = \"maintenance\"\nname = \"Maintenance page\"\n[[phase.step]]\nid = \"on\"\nplugin = \"maintenance\"\naction = \"on\"\non = \"web-1\"\nparams = {{ flag = \"{}\", message = \"rolling back\" }}\n",
        flag.display()
    );
    let grants = maintenance(&flags, true);
    let fleet = Fleet::builder("sdk.test")
        .pki(pki)
        .name("sdk e2e")
        .hosts(["web-1"])
        .approvals(["technical-lead"])
        .plan(&plan)
        .agent_config(move |_, config| config + &grants)
        .start()
        .await;
    // The agent reports the plugin with its hash, like its own.
    let agents = fleet.json("alice", &["agents", "--output", "json"]);
    assert!(agents.to_string().contains("\"maintenance\""), "{agents}");

    let id = fleet.start_approved(&["--reason", "sdk"]);
    let lines = fleet.watch_to_end(&id).await;
    assert_eq!(
        lines.last().unwrap()["run"]["status"],
        "succeeded",
        "{lines:#?}"
    );
    let finished = lines.iter().find(|l| l["kind"] == "finished").unwrap();
    assert_eq!(finished["data"]["before"], false);
    assert_eq!(finished["data"]["after"], true);
    assert_eq!(std::fs::read_to_string(&flag).unwrap(), "rolling back");
}

/// Through the real agent: a plugin whose required needs its grants do
/// not cover is disabled, naming them, and the rest serve; a plugin whose
/// optional need is not granted loads (the agent logs it), runs, and asks
/// at run time whether it was granted.
#[tokio::test(flavor = "multi_thread")]
async fn an_ungranted_required_need_disables_the_plugin_and_an_ungranted_optional_one_does_not() {
    let pki = Pki::new("needs.test");
    let grants = maintenance(&pki.path().join("www"), false);
    let plan = "[[phase]]\nid = \"p\"\nname = \"P\"\n[[phase.step]]\nid = \"ask\"\nplugin = \"testbed\"\naction = \"granted\"\non = \"web-1\"\nparams = { kind = \"url\", value = \"http://optional.invalid/\" }\n";
    let fleet = Fleet::builder("needs.test")
        .pki(pki)
        .name("needs e2e")
        .hosts(["web-1"])
        .approvals(["technical-lead"])
        .plan(plan)
        .agent_config(move |_, config| config + &grants)
        .start()
        .await;
    let agents = fleet.json("alice", &["agents", "--output", "json"]);
    let plugins = agents["agents"][0]["plugins"].as_array().unwrap();
    let listed = |name: &str| plugins.iter().find(|p| p["name"] == name).unwrap();
    let disabled = listed("maintenance")["load_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        disabled.contains("plugin `maintenance` needs what its [plugin.grants] do not give")
            && disabled.contains("some read grant")
            && disabled.contains("some write grant"),
        "{agents}"
    );
    let testbed = listed("testbed");
    assert_eq!(testbed["load_error"], serde_json::Value::Null, "{agents}");
    assert_eq!(
        testbed["needs"][0],
        serde_json::json!({
            "kind": "url", "value": "http://optional.invalid/", "why": "a proxy it can do without",
            "optional": true, "granted": false,
        }),
        "{agents}"
    );
    let text = fleet.cli("alice", &["agents"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("maintenance (DISABLED: "), "{text}");
    assert!(
        text.contains("without optional url `http://optional.invalid/`"),
        "{text}"
    );
    let log = std::fs::read_to_string(&fleet.agents["web-1"].log).unwrap();
    assert!(
        log.contains("an optional need of the plugin is not granted")
            && log.contains("http://optional.invalid/"),
        "the agent logs the optional need at start"
    );

    let id = fleet.start_approved(&["--reason", "needs"]);
    let lines = fleet.watch_to_end(&id).await;
    assert_eq!(
        lines.last().unwrap()["run"]["status"],
        "succeeded",
        "{lines:#?}"
    );
    let finished = lines.iter().find(|l| l["kind"] == "finished").unwrap();
    assert_eq!(finished["data"]["granted"], false, "{finished}");
}
