//! `backout plan check` catches what would break at run time, against the
//! plugins' own schemas (files, the coordinator's configuration, or the
//! connected agents), pointing at the plan file's line and field; `serve`
//! refuses to start on the same errors.

use backout_e2e::fleet::Fleet;
use backout_e2e::{bin, run};

/// The plugin files scripts/build-plugins.sh built.
fn plugins_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins")
}

const BROKEN_STEPS: &str = "[[phase]]
id = \"verify\"
name = \"Verify\"

[[phase.step]]
id = \"a\"
plugin = \"helth\"
action = \"check\"
on = \"web-1\"

[[phase.step]]
id = \"b\"
plugin = \"health\"
action = \"chek\"
on = \"web-1\"

[[phase.step]]
id = \"c\"
plugin = \"health\"
action = \"check\"
on = \"web-1\"
retries = 3
on_failure = \"retry\"
[phase.step.params]
require_helthy = true
checks = [{ url = \"http://127.0.0.1:1/health\", timeout_ms = \"5s\" }]
";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The 1-based line of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn assert_names_each_problem(err: &str, plan: &std::path::Path, text: &str) {
    let at = |needle: &str| format!("{}:{}:", plan.display(), line_of(text, needle));
    for (needle, field, says) in [
        (
            "plugin = \"helth\"",
            "phase[0].step[0].plugin",
            "did you mean `health`?",
        ),
        (
            "action = \"chek\"",
            "phase[0].step[1].action",
            "did you mean `check`?",
        ),
        (
            "require_helthy",
            "phase[0].step[2].params.require_helthy",
            "did you mean `require_healthy`?",
        ),
        (
            "timeout_ms = \"5s\"",
            "phase[0].step[2].params.checks[0].timeout_ms",
            "expected integer, found a string (\"5s\")",
        ),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("field `{field}`")))
            .unwrap_or_else(|| panic!("nothing about {field}:\n{err}"));
        assert!(
            line.starts_with(&at(needle)),
            "{line}\nexpected at {}",
            at(needle)
        );
        assert!(line.contains(says), "{line}");
    }
}

#[test]
fn plan_check_names_the_line_and_field_of_what_would_break_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let text = format!(
        "[plan]\nname = \"t\"\n\n[[host]]\nid = \"web-1\"\n\n[signals.up]\nprobe = {{ check = \"ap\", aggregate = \"any-up\" }}\n\n{BROKEN_STEPS}"
    );
    std::fs::write(&plan, &text).unwrap();

    // Against the plugin files.
    let plugins = plugins_dir();
    let out = run(
        &bin("backout"),
        &[
            "plan",
            "check",
            plan.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_names_each_problem(&stderr(&out), &plan, &text);

    // Against the coordinator's configuration: its checks, and a pin whose
    // file differs.
    let config = dir.path().join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ncommand_key = \"k\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[plugins.health]\nsha256 = \"{}\"\npath = \"{}\"\n[[assess.check]]\nname = \"app\"\nurl = \"http://127.0.0.1:1/health\"\n",
            "0".repeat(64),
            plugins.join("health.wasm").display()
        ),
    )
    .unwrap();
    let out = run(
        &bin("backout"),
        &[
            "plan",
            "check",
            plan.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_names_each_problem(&err, &plan, &text);
    assert!(
        err.contains(&format!(
            "{}:{}:19: error: field `signals.up.probe.check`: no check `ap`",
            plan.display(),
            line_of(&text, "check = \"ap\"")
        )),
        "{err}"
    );
    assert!(err.contains("did you mean `app`?"), "{err}");
    assert!(
        err.contains(&format!(
            "{}:8: error: field `plugins.health.sha256`: pins 0000",
            config.display()
        )),
        "{err}"
    );
}

/// A step that changes data (`db.migrate-down`) placed before the backup
/// of its database: refused by `plan check` (the built-in plugins, and the
/// plugin files), naming the step's line and field; in the right order it
/// passes.
#[test]
fn plan_check_refuses_a_migration_that_can_run_before_its_backup() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let db = r#"{ host = "127.0.0.1", dbname = "shop", user = "backout", password = "${secret:DB_PASSWORD}" }"#;
    let backup = format!(
        "[[phase.step]]\nid = \"backup\"\nplugin = \"db\"\naction = \"backup\"\non = \"db-1\"\nparams = {{ db = {db}, dir = \"/backups\" }}\n"
    );
    let down = format!(
        "[[phase.step]]\nid = \"migrate-down\"\nplugin = \"db\"\naction = \"migrate-down\"\non = \"db-1\"\nparams = {{ db = {db}, target = \"003\", backup_dir = \"/backups\", command = [\"migrate\", \"{{target}}\"] }}\n"
    );
    let head = "[plan]\nname = \"t\"\n\n[[host]]\nid = \"db-1\"\n\n[[phase]]\nid = \"database\"\nname = \"Database\"\n";
    let plugins = plugins_dir();
    let check = |text: &str, with_files: bool| {
        std::fs::write(&plan, text).unwrap();
        let mut args = vec!["plan", "check", plan.to_str().unwrap()];
        if with_files {
            args.extend(["--plugins", plugins.to_str().unwrap()]);
        }
        run(&bin("backout"), &args, &[])
    };
    let wrong = format!("{head}{down}{backup}");
    for with_files in [false, true] {
        let out = check(&wrong, with_files);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let expected = format!(
            "{}:{}:10: error: field `phase[0].step[0].action`: `db.migrate-down` changes data and needs a verified backup first",
            plan.display(),
            line_of(&wrong, "action = \"migrate-down\"")
        );
        assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    }
    let right = format!("{head}{backup}{down}");
    let out = check(&right, true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn plan_schema_prints_a_json_schema_with_the_plugins_params() {
    let out = run(&bin("backout"), &["plan", "schema"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = schema["properties"]["phase"]["items"]["properties"]["step"]["items"]["allOf"]
        .as_array()
        .unwrap();
    let check = rules
        .iter()
        .find(|r| {
            r["if"]["properties"]["plugin"]["const"] == "health"
                && r["if"]["properties"]["action"]["const"] == "check"
        })
        .unwrap();
    let doc = check["then"]["properties"]["params"]["properties"]["require_healthy"]["description"]
        .as_str()
        .unwrap();
    assert!(doc.contains("SUCCEEDS even when a check is down"), "{doc}");
}

#[tokio::test(flavor = "multi_thread")]
async fn against_the_fleet_and_at_serve_the_same_errors_stop_it() {
    let fleet = Fleet::builder("plancheck.test")
        .hosts(["web-1"])
        .approvals(["technical-lead"])
        .plan("")
        .start()
        .await;
    // The agents report each plugin's schema; plan check uses it.
    let plan = fleet.path().join("broken.toml");
    let text = format!("[plan]\nname = \"t\"\n\n[[host]]\nid = \"web-1\"\n\n{BROKEN_STEPS}");
    std::fs::write(&plan, &text).unwrap();
    let out = fleet.cli(
        "alice",
        &["plan", "check", plan.to_str().unwrap(), "--against-fleet"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_names_each_problem(&err, &plan, &text);
    assert!(
        err.contains("plugin `health` (agent web-1) has no action `chek`"),
        "{err}"
    );

    // A coordinator given that plan refuses to start, before it opens its
    // port or its journal (the running one holds both).
    let config = fleet.path().join("coordinator.toml");
    let config_text = std::fs::read_to_string(&config).unwrap();
    let broken_config = fleet.path().join("broken-coordinator.toml");
    std::fs::write(
        &broken_config,
        config_text.replace("plan.toml", "broken.toml"),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(&broken_config)
            .unwrap()
            .contains("broken.toml")
    );
    let out = run(
        &bin("backout"),
        &["serve", "--config", broken_config.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("would break at run time"), "{err}");
    assert!(
        err.contains(&format!(
            "{}:{}:",
            plan.display(),
            line_of(&text, "plugin = \"helth\"")
        )),
        "{err}"
    );
    assert!(
        err.contains("field `phase[0].step[2].params.require_helthy`"),
        "{err}"
    );
}

/// `plan check` says which optional needs the plan's plugins have (the
/// plugin files' own `needs`), as notes that never fail the check.
#[test]
fn plan_check_lists_the_optional_needs_of_the_plans_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[plan]\nname = \"t\"\n\n[[host]]\nid = \"web-1\"\n\n[[phase]]\nid = \"tell\"\nname = \"Tell\"\n\n[[phase.step]]\nid = \"slack\"\nplugin = \"notify\"\naction = \"post\"\non = \"web-1\"\nparams = { url = \"${secret:SLACK_URL}\", template = \"rolling back\" }\n",
    )
    .unwrap();
    let plugins = plugins_dir();
    let out = run(
        &bin("backout"),
        &[
            "plan",
            "check",
            plan.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let note = "plugin `notify` has an optional need: some secret grant (the webhook URL, when params.url is `${secret:NAME}`)";
    // A note is part of the answer, not a warning: nothing on stderr.
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["notes"][0].as_str().unwrap().starts_with(note), "{doc}");
    let out = run(
        &bin("backout"),
        &[
            "plan",
            "check",
            plan.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("note: {note}")), "{text}");
}
