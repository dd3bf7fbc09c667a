//! The `app` plugin rolls a real application back: a git repository with
//! STABLE-marked history, an app started and stopped by the command
//! adapter, a config backup, a build command, health that must fail when
//! stopped and answer from the old version after.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use backout_e2e::fleet::Fleet;
use backout_e2e::services::free_port;
use backout_e2e::{Pki, wait_for};
use serde_json::{Value, json};

/// A tiny app: /health answers its version and the config's MODE, or 500
/// when the version is the bad one; /api/orders/health is a critical path.
const APP: &str = r#"import http.server, json, sys
VERSION = "@VERSION@"
MODE = open("config/production.env").read().strip()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        bad = VERSION == "1.2"
        code = 500 if bad else 200
        body = json.dumps({"version": VERSION, "mode": MODE}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three releases: 1.0 STABLE, 1.1 STABLE, 1.2 (the bad deploy, checked out).
fn repository(repo: &Path) {
    std::fs::create_dir_all(repo.join("config")).unwrap();
    sh(
        repo,
        "git init -q -b main . && git config user.email t@example.com && git config user.name test",
    );
    for (version, subject) in [
        ("1.0", "release 1.0 STABLE"),
        ("1.1", "release 1.1 STABLE"),
        ("1.2", "release 1.2 with the new checkout flow"),
    ] {
        std::fs::write(repo.join("app.py"), APP.replace("@VERSION@", version)).unwrap();
        std::fs::write(
            repo.join("config/production.env"),
            format!("mode-of-{version}\n"),
        )
        .unwrap();
        sh(repo, &format!("git add -A && git commit -q -m '{subject}'"));
    }
    // The deploy of 1.2 kept the previous config aside, and changed the live one.
    std::fs::write(repo.join("config/production.env.backup"), "good\n").unwrap();
    std::fs::write(repo.join("config/production.env"), "broken\n").unwrap();
}

fn health(port: u16) -> Option<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())",
            &format!("http://127.0.0.1:{port}/health"),
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_plugin_rolls_back_to_the_previous_stable_version_and_its_health_says_so() {
    let pki = Pki::new("app.test");
    let repo = pki.path().join("repo");
    repository(&repo);
    let port = free_port();
    let start = format!(
        "cd {r} && nohup python3 app.py {port} >> {r}/app.log 2>&1 < /dev/null & echo $! > {r}/app.pid",
        r = repo.display()
    );
    let stop = format!("kill $(cat {}/app.pid)", repo.display());
    sh(&repo, &start);
    wait_for("the bad deploy to run", Duration::from_secs(20), || {
        // 1.2 answers 500: the health check fails, but the port is open.
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .await;

    let params = json!({
        "service": "sample-app",
        "manager": { "start": ["sh", "-c", start], "stop": ["sh", "-c", stop] },
        "repo": repo,
        "stable": { "grep": "STABLE", "last": 10 },
        "config_backup": "config/production.env.backup",
        "config": "config/production.env",
        "build": ["python3 -m py_compile app.py"],
        "health_url": format!("http://127.0.0.1:{port}/health"),
        "retries": 40,
        "interval": "250ms",
        "critical": [{ "name": "orders", "url": format!("http://127.0.0.1:{port}/api/orders/health") }],
        "log": { "path": repo.join("app.log"), "pattern": "ERROR", "tail_lines": 50 },
    });
    // TOML accepts JSON's inline shapes for these values.
    let plan = format!(
        "[[phase]]\nid = \"application\"\nname = \"Application Rollback\"\n[[phase.step]]\nid = \"deploy-previous\"\nplugin = \"app\"\naction = \"rollback\"\non = \"app-1\"\ntimeout = \"60s\"\nparams = {}\n",
        toml_inline(&params)
    );
    let grants = format!(
        "[[plugin]]\nname = \"app\"\npath = \"{}\"\n[plugin.grants]\nprograms = [\"git\", \"sh\", \"python3\"]\ndry_run_programs = [\"git log\"]\nurls = [\"http://127.0.0.1:{port}/\"]\nread = [\"{r}\"]\nwrite = [\"{r}\"]\n",
        backout_e2e::plugin("app").display(),
        r = repo.display()
    );
    let fleet = Fleet::builder("app.test")
        .pki(pki)
        .name("app e2e")
        .hosts(["app-1"])
        .approvals(["technical-lead"])
        .plan(&plan)
        .agent_config(move |_, config| config + &grants)
        .start()
        .await;

    // A dry run names both versions and changes nothing.
    let dry = fleet.start_run("dave", &["--reason", "rehearsal", "--dry-run"]);
    let would = dry["hosts"]["app-1"][0]["would"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        would.contains("(release 1.1 STABLE)") && would.contains("would stop"),
        "{would}"
    );
    assert!(
        health(port).is_none(),
        "the bad version still runs, still failing"
    );

    let id = fleet.start_approved(&["--reason", "checkout errors"]);
    let lines = fleet.watch_to_end(&id).await;
    let result = lines.last().unwrap();
    assert_eq!(result["run"]["status"], "succeeded", "{lines:#?}");
    let finished = lines.iter().find(|l| l["kind"] == "finished").unwrap();
    let data = &finished["data"];
    assert!(
        data["from"]["subject"].as_str().unwrap().contains("1.2"),
        "{data}"
    );
    assert_eq!(data["to"]["subject"], "release 1.1 STABLE", "{data}");
    assert_eq!(data["config_restored"], true);
    assert_eq!(data["built"], json!(["python3 -m py_compile app.py"]));
    assert!(
        data["stopped"]["verified_down_after"].as_u64().is_some(),
        "{data}"
    );
    assert_eq!(data["checks"]["critical"][0]["up"], true);

    // The app now answers from the old version, with the restored config.
    let now = health(port).expect("the app answers after the rollback");
    assert_eq!(now, json!({ "version": "1.1", "mode": "good" }));
    sh(
        &repo,
        &format!("kill $(cat {}/app.pid) || true", repo.display()),
    );
}

/// JSON as a TOML inline value (objects become inline tables).
fn toml_inline(v: &Value) -> String {
    match v {
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{k} = {}", toml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_inline).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}
