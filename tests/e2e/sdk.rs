//! A third-party plugin, built outside the workspace, loads into an agent
//! built without it; an agent that does not grant what a plugin needs
//! refuses to start and says what is missing.

use backout_e2e::fleet::Fleet;
use backout_e2e::{Pki, agent_config, bin, plugin};

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

#[test]
fn an_agent_refuses_to_load_a_plugin_whose_needs_are_not_granted() {
    let pki = Pki::new("needs.test");
    pki.issue("agent", "web-1");
    let config = pki.path().join("web-1.toml");
    std::fs::write(
        &config,
        agent_config(&pki, "web-1", "127.0.0.1:9", &pki.path().join("state"), "")
            + &maintenance(&pki.path().join("www"), false),
    )
    .unwrap();
    let out = std::process::Command::new(bin("backout-agent"))
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a configuration problem");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plugin `maintenance` needs what its [plugin.grants] do not give")
            && stderr.contains("some read grant")
            && stderr.contains("some write grant"),
        "{stderr}"
    );
}
