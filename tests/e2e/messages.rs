//! Messages that said the wrong thing (issue 17, item 8), through the real
//! binaries: approving a run that has ended, and the connection flags on
//! offline commands.

use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::{bin, run};

#[tokio::test(flavor = "multi_thread")]
async fn approving_a_run_that_has_ended_says_so() {
    let fleet = Fleet::builder("ended.test")
        .hosts(["app-1"])
        .approvals(["technical-lead"])
        .plan(
            "[[phase]]\nid = \"p\"\nname = \"P\"\n[[phase.step]]\nid = \"echo\"\nplugin = \"testbed\"\naction = \"echo\"\non = \"app-1\"\n",
        )
        .start()
        .await;
    let id = run_id(&fleet.start_run("dave", &["--reason", "done soon"]));
    fleet.approve(&id, &["bob"]);
    assert_eq!(fleet.ended(&id).await["status"], "succeeded");
    let out = fleet.cli("alice", &["approve", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "run {id} has ended (succeeded): there is nothing left to approve or refuse"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("()"), "{stderr}");
}

#[test]
fn offline_commands_do_not_offer_the_connection_flags() {
    let help = |args: &[&str]| {
        let out = run(&bin("backout"), args, &[]);
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for offline in [
        &["pki", "init", "--help"][..],
        &["serve", "--help"],
        &["init", "--help"],
        &["plan", "check", "--help"],
    ] {
        let text = help(offline);
        assert!(!text.contains("--coordinator"), "{offline:?}: {text}");
    }
    let text = help(&["agents", "--help"]);
    assert!(text.contains("--coordinator"), "{text}");
    let text = help(&["signal", "set", "--help"]);
    assert!(
        text.contains("--coordinator") && text.contains("yes/no"),
        "{text}"
    );
}
