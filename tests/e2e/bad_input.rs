//! Invariant 7: bad input gets an error naming file, line and field; servers
//! keep running through malformed messages.

use std::time::Duration;

use backout_e2e::fake::attach_raw;
use backout_e2e::{Coordinator, Pki, bin, cli, run};
use backout_proto::wire;
use prost::Message;

#[test]
fn a_malformed_agent_config_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "coordinator = \"127.0.0.1:1\"\ncommand_key = \"k.pub\"\nstate_dir = \"s\"\nclock_skew = 30\n",
    )
    .unwrap();
    let out = run(
        &bin("backout-agent"),
        &["--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("clock_skew"), "{stderr}");

    std::fs::write(&path, "coordinator = \"x\"\ncomand_key = \"k\"\n").unwrap();
    let out = run(
        &bin("backout-agent"),
        &["--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":2:") && stderr.contains("comand_key"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_coordinator_config_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coordinator.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\ncommand_key = \"k\"\ncommand_ttl = \"soon\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n",
    )
    .unwrap();
    let out = run(
        &bin("backout"),
        &["serve", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("command_ttl"), "{stderr}");
}

#[test]
fn a_file_that_is_not_a_journal_is_bad_input_for_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "not a database, just text long enough to have a header\n".repeat(20),
    )
    .unwrap();
    let out = run(
        &bin("backout"),
        &["audit", "verify", "--journal", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("Backout journal"), "{stderr}");
}

#[test]
fn cli_commands_without_an_identity_exit_2() {
    let out = run(
        &bin("backout"),
        &["assess", "--coordinator", "127.0.0.1:1"],
        &[("BACKOUT_PKI", ""), ("BACKOUT_OPERATOR", "")],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&bin("backout"), &["assess", "--output", "yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

async fn coordinator(pki: &Pki) -> Coordinator {
    pki.issue("agent", "app-1");
    pki.issue("operator", "alice");
    Coordinator::minimal(pki).await
}

fn hello() -> Vec<u8> {
    wire::AgentMessage {
        kind: Some(wire::agent_message::Kind::Hello(wire::Hello {
            agent_id: "app-1".into(),
            version: "test".into(),
            ..Default::default()
        })),
    }
    .encode_to_vec()
}

fn decode(frames: &[Vec<u8>]) -> Vec<wire::coordinator_message::Kind> {
    frames
        .iter()
        .filter_map(|f| wire::CoordinatorMessage::decode(f.as_slice()).ok()?.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_session_messages_do_not_kill_the_coordinator() {
    let pki = Pki::new("malformed.test");
    let mut coordinator = coordinator(&pki).await;
    let material = pki.tls_files("agents/app-1").load().unwrap();
    let connect = || {
        backout_tls::tls::connect_coordinator(
            &coordinator.addr,
            "127.0.0.1",
            &material,
            Duration::from_secs(5),
        )
    };

    // Undecodable bytes after a good Hello: the session ends, nothing else.
    let channel = connect().await.unwrap();
    let _ = attach_raw(channel, vec![hello(), vec![0xff; 17]]).await;

    // Messages that decode but make no sense are answered with Rejected and the
    // session goes on (the heartbeat after them is still acknowledged).
    let unknown_result = wire::AgentMessage {
        kind: Some(wire::agent_message::Kind::Result(wire::StepResult {
            command_id: "never-sent".into(),
            result: Some(wire::step_result::Result::Failed(
                wire::StepFailed::default(),
            )),
            ..Default::default()
        })),
    };
    let empty = wire::AgentMessage { kind: None };
    let heartbeat = wire::AgentMessage {
        kind: Some(wire::agent_message::Kind::Heartbeat(wire::Heartbeat {
            seq: 7,
            sent_at_ms: 0,
        })),
    };
    let frames = vec![
        hello(),
        unknown_result.encode_to_vec(),
        empty.encode_to_vec(),
        hello(),
        heartbeat.encode_to_vec(),
    ];
    let answers = decode(&attach_raw(connect().await.unwrap(), frames).await.unwrap());
    let rejected: Vec<String> = answers
        .iter()
        .filter_map(|k| match k {
            wire::coordinator_message::Kind::Rejected(r) => Some(r.reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 3, "{answers:?}");
    assert!(rejected[0].contains("never-sent"), "{rejected:?}");
    assert!(
        answers
            .iter()
            .any(|k| matches!(k, wire::coordinator_message::Kind::HeartbeatAck(h) if h.seq == 7)),
        "{answers:?}"
    );

    // A first message that is not Hello is refused.
    let err = attach_raw(connect().await.unwrap(), vec![heartbeat.encode_to_vec()]).await;
    assert!(err.is_err(), "{err:?}");

    // The coordinator is alive and answers.
    assert!(coordinator.proc.child.try_wait().unwrap().is_none());
    assert!(
        cli(&pki, &coordinator.addr, "alice", &["agents"])
            .status
            .success()
    );
    coordinator.proc.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_coordinator_messages_do_not_kill_the_agent() {
    let mut rig = backout_e2e::rig::Rig::start("").await;
    // A message with nothing in it, then a command that is not one.
    rig.session
        .tx
        .send(wire::CoordinatorMessage { kind: None })
        .await
        .unwrap();
    rig.session
        .send(wire::SignedCommand {
            body: vec![1, 2, 3],
            signature: vec![0; 3],
            key_id: String::new(),
        })
        .await;
    rig.still_serves().await;
}

#[test]
fn plan_check_accepts_the_seed_plan_and_names_file_line_and_field_of_bad_ones() {
    let seed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/samia-tarot/plan.toml");
    let out = run(
        &bin("backout"),
        &["plan", "check", seed.to_str().unwrap(), "--output", "json"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["triggers"].as_array().unwrap().len(), 8);
    assert_eq!(doc["phases"].as_array().unwrap().len(), 6);

    let dir = tempfile::tempdir().unwrap();
    let base = "[plan]\nname = \"t\"\n[roles]\nrm = \"RM\"\n[signals.x]\nmanual = true\n[[trigger]]\nname = \"a\"\nclass = \"immediate\"\n";
    for (tail, line, field) in [
        (
            "when = \"x\"\ndeciders = [\"rm\"]\nwhen_not = 1\n",
            12,
            "when_not",
        ),
        (
            "when = \"x >\"\ndeciders = [\"rm\"]\n",
            10,
            "trigger[0].when",
        ),
        (
            "when = \"y > 1\"\ndeciders = [\"rm\"]\n",
            10,
            "trigger[0].when",
        ),
        ("when = \"x\"\ndeciders = []\n", 11, "trigger[0].deciders"),
    ] {
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, format!("{base}{tail}")).unwrap();
        let out = run(
            &bin("backout"),
            &["plan", "check", path.to_str().unwrap()],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{tail}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{}:{line}:", path.display())),
            "{tail}: {stderr}"
        );
        assert!(stderr.contains(field), "{tail}: {stderr}");
    }
}
