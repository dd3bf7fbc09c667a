//! Plan fragments (what follows the head [`crate::fleet`] writes) that more
//! than one test file runs.

use std::path::{Path, PathBuf};

use crate::Pki;
use crate::fleet::{Fleet, FleetBuilder};

/// Two phases over hosts app-1 and app-2 (group `app`): `application`, one
/// host at a time, steps `stop` (its data `{ what = "stop" }`) and `start`
/// on both; then `database`, which dba and technical-lead must approve,
/// step `backup` on app-1. Every step is a testbed `echo`.
pub const APP_THEN_DATABASE: &str = r#"[[phase]]
id = "application"
name = "Application Rollback"
rolling = 1
[[phase.step]]
id = "stop"
plugin = "testbed"
action = "echo"
on = "app"
params = { what = "stop" }
[[phase.step]]
id = "start"
plugin = "testbed"
action = "echo"
on = "app"
[[phase]]
id = "database"
name = "Database Rollback"
after = ["application"]
approvals = ["dba", "technical-lead"]
[[phase.step]]
id = "backup"
plugin = "testbed"
action = "echo"
on = "app-1"
"#;

/// A fleet for [`APP_THEN_DATABASE`]: app-1 and app-2 (group `app`), run
/// approvals by release-manager and technical-lead, and operators dave
/// (release-manager), alice (release-manager and technical-lead), bob
/// (technical-lead) and carol (dba).
pub fn app_then_database(domain: &str) -> FleetBuilder {
    Fleet::builder(domain)
        .name("runs e2e")
        .hosts(APP_HOSTS)
        .group("app", APP_HOSTS)
        .operators(&[
            ("dave", &["release-manager"]),
            ("alice", &["release-manager", "technical-lead"]),
            ("bob", &["technical-lead"]),
            ("carol", &["dba"]),
        ])
        .approvals(["release-manager", "technical-lead"])
        .plan(APP_THEN_DATABASE)
}

/// The two application hosts of the plans here.
pub const APP_HOSTS: [&str; 2] = ["app-1", "app-2"];

/// A testbed step that appends `text` and a newline to `marks` (the agent
/// must be granted to write there).
pub fn mark_step(id: &str, on: &str, marks: &Path, text: &str) -> String {
    format!(
        "[[phase.step]]\nid = \"{id}\"\nplugin = \"testbed\"\naction = \"write\"\non = \"{on}\"\nparams = {{ path = \"{}\", contents = \"{text}\\n\", append = true }}\n",
        marks.display()
    )
}

/// Two phases whose steps count themselves: `application` (steps `stop`
/// and `start` on group `app`, app-1 and app-2), then `verify` (step
/// `check` on app-1). Every step appends its id to `marks`, so a step run
/// twice shows ([`marked_counts`]).
pub fn marked(marks: &Path) -> String {
    format!(
        "[[phase]]\nid = \"application\"\nname = \"Application Rollback\"\n{}{}\
         [[phase]]\nid = \"verify\"\nname = \"Verification\"\nafter = [\"application\"]\n{}",
        mark_step("stop", "app", marks, "stop"),
        mark_step("start", "app", marks, "start"),
        mark_step("check", "app-1", marks, "check"),
    )
}

/// How many times each step of [`marked`] ran, from its marks file.
pub fn marked_counts(marks: &Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(marks).unwrap_or_default();
    ["stop", "start", "check"]
        .iter()
        .map(|s| (s.to_string(), text.lines().filter(|l| l == s).count()))
        .collect()
}

/// A fleet for the steps that count themselves: app-1 and app-2 (group
/// `app`), run approval by technical-lead (bob), and the plan `plan` makes
/// of the marks directory, which the agents may write in. The builder, and
/// that directory.
pub fn marked_fleet(domain: &str, plan: impl FnOnce(&Path) -> String) -> (FleetBuilder, PathBuf) {
    let pki = Pki::new(domain);
    let marks_dir = pki.path().join("marks");
    std::fs::create_dir_all(&marks_dir).unwrap();
    let builder = Fleet::builder(domain)
        .name("crash e2e")
        .hosts(APP_HOSTS)
        .group("app", APP_HOSTS)
        .approvals(["technical-lead"])
        .plan(&plan(&marks_dir))
        .testbed_grants(&format!("write = [\"{}\"]", marks_dir.display()))
        .pki(pki);
    (builder, marks_dir)
}
