//! `backout init` (issue 17, item 4): the starter set starts as written. The
//! coordinator and the agents are started from exactly the files it wrote,
//! and the plan's dry run goes through on every host.

use std::time::Duration;

use backout_e2e::http::TestHttp;
use backout_e2e::{Coordinator, bin, json_of, plugin, run, start_agent, wait_for};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn init_writes_a_starter_set_that_starts_as_written() {
    let service = TestHttp::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("starter");
    let dir_text = dir.to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let health = plugin("health");
    let plugins = health.parent().unwrap().to_str().unwrap();
    let out = run(
        &bin("backout"),
        &[
            "init",
            dir_text,
            "--host",
            "web-1",
            "--host",
            "db-1",
            "--listen",
            &listen,
            "--plugins",
            plugins,
            "--health-url",
            &service.url("/up"),
        ],
        &[],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("backout serve --config"), "{said}");

    let _coordinator = Coordinator::serve(
        &dir.join("coordinator.toml"),
        &tmp.path().join("coordinator.log"),
        &[],
    )
    .await;
    let _agents: Vec<_> = ["web-1", "db-1"]
        .iter()
        .map(|host| {
            start_agent(
                &dir.join("agents").join(format!("{host}.toml")),
                &tmp.path().join(format!("{host}.log")),
            )
        })
        .collect();
    let pki = dir.join("pki");
    let envs = [
        ("BACKOUT_COORDINATOR", listen.as_str()),
        ("BACKOUT_PKI", pki.to_str().unwrap()),
        ("BACKOUT_OPERATOR", "alice"),
    ];
    let backout = |args: &[&str]| run(&bin("backout"), args, &envs);
    wait_for("both agents to connect", Duration::from_secs(30), || {
        let agents = json_of(&backout(&["agents", "--output", "json"]));
        let connected = agents["agents"]
            .as_array()?
            .iter()
            .filter(|a| a["connected"] == true)
            .count();
        (connected == 2).then_some(())
    })
    .await;

    let dry = backout(&[
        "rollback",
        "start",
        "--reason",
        "first rehearsal",
        "--dry-run",
    ]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{text}");
    assert!(text.contains("DRY RUN SUCCEEDED"), "{text}");
    for host in ["web-1", "db-1"] {
        assert!(text.contains(&format!("{host}\n")), "{host}: {text}");
    }
    // The plan's check asked the service on each host.
    assert!(
        service.requests.lock().unwrap().len() >= 2,
        "the health check never called the service"
    );

    // A second init into the same directory writes nothing.
    let before = std::fs::read_to_string(dir.join("coordinator.toml")).unwrap();
    let again = run(&bin("backout"), &["init", dir_text, "--host", "web-1"], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("coordinator.toml")).unwrap(),
        before
    );
}

#[test]
fn init_finishes_the_starter_set_when_its_reader_stops_reading() {
    // `backout init DIR … | head -1`: the reader goes away at once (here,
    // before the first line). The starter set must still be written whole.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("starter");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = std::process::Command::new(bin("backout"))
        .args(["init", dir.to_str().unwrap(), "--host", "web-1"])
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
    for file in [
        "pki/ca.pem",
        "pki/operators/alice.pem",
        "coordinator.toml",
        "agents/web-1.toml",
        "plan.toml",
    ] {
        assert!(dir.join(file).is_file(), "{file} was not written");
    }
}
