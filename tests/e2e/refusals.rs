//! Invariant 1: an agent runs nothing that fails the signature, expiry,
//! lease epoch (`stale-coordinator`), nonce, target or plugin-hash check; it says which check failed and keeps serving.
//! And the coordinator lets in only certificates of its own CA, identities it
//! knows, and each only on its own service.

use std::time::Duration;

use backout_e2e::fake::command;
use backout_e2e::rig::Rig;
use backout_e2e::{Coordinator, Pki, cli};
use backout_proto::wire;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// A real agent process connected to a fake coordinator.
async fn rig() -> Rig {
    Rig::start("").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_tampered_after_signing_is_refused_by_signature() {
    let mut rig = rig().await;
    let mut signed = rig.pki.signer().sign(&rig.echo("x"));
    // Change one byte of the params ("x" -> "y") after signing.
    let pos = signed.body.iter().rposition(|&b| b == b'x').unwrap();
    signed.body[pos] = b'y';
    let detail = rig.expect_refused(signed, "signature").await;
    assert!(detail.contains("pinned coordinator key"), "{detail}");
    // Signed by a key other than the pinned one: refused the same way.
    let other = backout_proto::command::CommandSigner::generate();
    rig.expect_refused(other.sign(&rig.echo("y")), "signature")
        .await;
    rig.still_serves().await;
    assert!(rig.agent.log_text().contains("command refused"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_or_future_command_is_refused() {
    let mut rig = rig().await;
    let mut body = rig.echo("old");
    body.issued_at_ms -= 120_000;
    body.expires_at_ms = body.issued_at_ms + 60_000;
    let signed = rig.pki.signer().sign(&body);
    rig.expect_refused(signed, "expired").await;

    let mut body = rig.echo("future");
    body.issued_at_ms += 600_000;
    body.expires_at_ms = body.issued_at_ms + 60_000;
    let signed = rig.pki.signer().sign(&body);
    rig.expect_refused(signed, "not_yet_valid").await;
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_command_is_refused_also_after_the_agent_restarts() {
    let mut rig = rig().await;
    let signed = rig.pki.signer().sign(&rig.echo("once"));
    assert!(matches!(
        rig.outcome(signed.clone()).await,
        wire::step_result::Result::Succeeded(_)
    ));
    rig.expect_refused(signed.clone(), "replay").await;

    // Restart the agent process: the nonce is remembered on disk.
    rig.restart_agent("agent-2.log").await;
    rig.expect_refused(signed, "replay").await;
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_for_another_agent_is_refused_by_target() {
    let mut rig = rig().await;
    let mut body = rig.echo("t");
    body.target_agent = "app-2".into();
    let signed = rig.pki.signer().sign(&body);
    let detail = rig.expect_refused(signed, "target").await;
    assert!(
        detail.contains("app-2") && detail.contains("app-1"),
        "{detail}"
    );
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_hash_mismatch_or_unknown_plugin_is_refused() {
    let mut rig = rig().await;
    let mut body = rig.echo("h");
    body.plugin_sha256 = "0".repeat(64);
    let signed = rig.pki.signer().sign(&body);
    let detail = rig.expect_refused(signed, "plugin_hash").await;
    assert!(
        detail.contains(&rig.testbed_sha),
        "the detail names the hash on disk: {detail}"
    );

    let mut body = rig.echo("u");
    body.plugin = "stripe".into();
    let signed = rig.pki.signer().sign(&body);
    rig.expect_refused(signed, "unknown_plugin").await;
    rig.still_serves().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_body_is_refused_and_the_agent_keeps_serving() {
    let mut rig = rig().await;
    let mut body = rig.echo("m");
    body.params_json = "not json".into();
    let signed = rig.pki.signer().sign(&body);
    let detail = rig.expect_refused(signed, "malformed").await;
    assert!(detail.contains("params_json"), "{detail}");
    // Bytes that are not a command at all, validly signed.
    use ed25519_dalek::Signer;
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(rig.pki.path().join("command-signing.key")).unwrap();
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
    let garbage = vec![0xff, 0xff, 0xff, 0x01];
    let signed = wire::SignedCommand {
        signature: key.sign(&garbage).to_bytes().to_vec(),
        body: garbage,
        key_id: String::new(),
    };
    rig.session.send(signed).await;
    // Its ids cannot be read, so look for any refusal with check "malformed".
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(wire::AgentMessage {
                kind: Some(wire::agent_message::Kind::Result(r)),
            }) = rig.session.rx.recv().await
                && let Some(wire::step_result::Result::Refused(refusal)) = r.result
            {
                return refusal;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(refused.check, "malformed");
    rig.still_serves().await;
}

async fn attach_as(pki_files: backout_tls::TlsFiles, addr: &str) -> Result<(), tonic::Status> {
    let material = pki_files.load().unwrap();
    let channel =
        backout_tls::tls::connect_coordinator(addr, "127.0.0.1", &material, Duration::from_secs(5))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = wire::session_client::SessionClient::new(channel);
    let hello = wire::AgentMessage {
        kind: Some(wire::agent_message::Kind::Hello(wire::Hello {
            agent_id: match &material.identity {
                backout_tls::Identity::Agent(id) => id.clone(),
                other => other.to_string(),
            },
            ..Default::default()
        })),
    };
    let mut inbound = client
        .attach(tokio_stream::iter(vec![hello]))
        .await?
        .into_inner();
    inbound.message().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_id_not_in_the_configuration_is_refused() {
    let pki = Pki::new("unknown-agent.test");
    pki.issue("agent", "intruder");
    pki.issue("operator", "alice");
    let coordinator = Coordinator::minimal(&pki).await;
    let err = attach_as(pki.tls_files("agents/intruder"), &coordinator.addr)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message()
            .contains("not in the coordinator's configuration"),
        "{err:?}"
    );
    // An operator certificate cannot open an agent session either.
    let err = attach_as(pki.tls_files("operators/alice"), &coordinator.addr)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        cli(&pki, &coordinator.addr, "alice", &["agents"])
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_certificate_from_another_ca_is_refused() {
    let pki = Pki::new("same-name.test");
    pki.issue("operator", "alice");
    // Another fleet with the same trust domain name and an agent of the same id.
    let foreign = Pki::new("same-name.test");
    foreign.issue("agent", "app-1");
    let coordinator = Coordinator::minimal(&pki).await;
    let files = backout_tls::TlsFiles {
        ca: pki.path().join("ca.pem"),
        cert: foreign.path().join("agents/app-1.pem"),
        key: foreign.path().join("agents/app-1.key"),
    };
    let err = attach_as(files, &coordinator.addr).await.unwrap_err();
    // The coordinator's TLS check refuses it with a `DecryptError` alert
    // (the certificate's signature is not its CA's). In TLS 1.3 the client
    // reads it with its first call, unless that call's write already found
    // the connection closed: so the client sees the alert or the close, and
    // the coordinator's log names the reason in both cases.
    let why = backout_tls::tls::error_chain(&err);
    assert!(refused_at_handshake(&why, "DecryptError"), "{why}");
    backout_e2e::wait_for(
        "the coordinator to log the bad signature",
        std::time::Duration::from_secs(10),
        || {
            let log = coordinator.proc.log_text();
            (log.contains("TLS handshake refused") && log.contains("BadSignature")).then_some(())
        },
    )
    .await;
    // The coordinator is still up and saw no agent.
    let out = cli(
        &pki,
        &coordinator.addr,
        "alice",
        &["agents", "--output", "json"],
    );
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["agents"].as_array().unwrap().len(), 0);
    assert!(
        coordinator
            .proc
            .log_text()
            .contains("TLS handshake refused")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_without_a_client_certificate_is_refused() {
    let pki = Pki::new("no-cert.test");
    pki.issue("operator", "alice");
    pki.issue("operator", "mallory");
    let coordinator = Coordinator::minimal(&pki).await;

    // A TLS 1.3 client that trusts the CA but presents no certificate.
    let ca = std::fs::read(pki.path().join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = std::sync::Arc::new(config);
    let addr = coordinator.addr.clone();
    let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
        let config = config.clone();
        let addr = addr.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let result = async {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1")
            .connect_with_connector(connector)
            .await
            .map_err(|e| tonic::Status::unavailable(backout_tls::tls::error_chain(&e)))?;
        wire::control_client::ControlClient::new(channel)
            .list_agents(wire::ListAgentsRequest::default())
            .await
    }
    .await;
    // The coordinator's TLS check refuses it with a `CertificateRequired`
    // alert, which the client reads with its first call (or, should it come
    // sooner, on connecting).
    let err = result.expect_err("a client without a certificate got in");
    let why = backout_tls::tls::error_chain(&err);
    assert!(refused_at_handshake(&why, "CertificateRequired"), "{why}");
    backout_e2e::wait_for(
        "the coordinator to log the missing certificate",
        std::time::Duration::from_secs(10),
        || {
            coordinator
                .proc
                .log_text()
                .contains("peer sent no certificates")
                .then_some(())
        },
    )
    .await;

    // A certificate of the fleet whose operator the configuration does not list.
    let out = cli(&pki, &coordinator.addr, "mallory", &["agents"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("operator `mallory` is not in the coordinator's configuration"),
        "{stderr}"
    );
    assert!(
        cli(&pki, &coordinator.addr, "alice", &["agents"])
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_id_runs_at_most_once_even_across_agent_restarts() {
    let mut rig = rig().await;
    let signer = rig.pki.signer();
    let first = rig.echo("first");
    let step_id = first.step_id.clone();
    let data = |r: wire::step_result::Result| match r {
        wire::step_result::Result::Succeeded(s) => s.data_json,
        other => panic!("expected success, got {other:?}"),
    };
    assert!(data(rig.outcome(signer.sign(&first)).await).contains("first"));
    // Delivered again (a new command, same step): the recorded outcome, not a new run.
    let mut again = rig.echo("second");
    again.step_id = step_id.clone();
    assert!(data(rig.outcome(signer.sign(&again)).await).contains("first"));

    // A step running when the agent dies is never run again: it is reported interrupted.
    let mut slow = command(
        "app-1",
        "testbed",
        &rig.testbed_sha,
        "sleep",
        json!({ "ms": 30_000 }),
    );
    slow.deadline_ms = 60_000;
    rig.session.send(signer.sign(&slow)).await;
    // Killed once the agent runs it.
    backout_e2e::wait_for("the slow step to run", WAIT, || {
        rig.agent
            .log_text()
            .lines()
            .any(|l| l.contains("running step") && l.contains(&slow.step_id))
            .then_some(())
    })
    .await;
    rig.restart_agent("agent-2.log").await;

    let mut again = rig.echo("third");
    again.step_id = step_id;
    assert!(
        data(rig.outcome(signer.sign(&again)).await).contains("first"),
        "remembered across restart"
    );
    let mut retry = command(
        "app-1",
        "testbed",
        &rig.testbed_sha,
        "sleep",
        json!({ "ms": 1 }),
    );
    retry.step_id = slow.step_id.clone();
    match rig.outcome(signer.sign(&retry)).await {
        wire::step_result::Result::Failed(f) => assert_eq!(f.code, "interrupted", "{f:?}"),
        other => panic!("an interrupted step ran again: {other:?}"),
    }
    rig.still_serves().await;
}

/// Whether a client's error says the server ended the handshake: its TLS
/// alert `alert`, or (when the client's first write raced the alert) the
/// connection failing under it, which hyper reports as a transport error
/// ("connection closed", "broken pipe", "connection was not ready"...).
/// A status the server answered with (`PermissionDenied`...) is not a
/// handshake refusal; the coordinator's log then names the reason.
fn refused_at_handshake(why: &str, alert: &str) -> bool {
    why.contains(&format!("received fatal alert: {alert}"))
        || why.contains("transport error")
        || why.contains("connection closed")
        || why.contains("broken pipe")
        || why.contains("Connection reset")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_from_a_coordinator_that_lost_its_lease_is_refused_even_after_a_restart() {
    let mut rig = rig().await;
    let signer = rig.pki.signer();
    let with_epoch = |rig: &Rig, marker: &str, epoch: u64| {
        let mut body = rig.echo(marker);
        body.epoch = epoch;
        signer.sign(&body)
    };
    // The new leader's command (epoch 7) runs.
    match rig.outcome(with_epoch(&rig, "new", 7)).await {
        wire::step_result::Result::Succeeded(_) => {}
        other => panic!("the leader's command did not run: {other:?}"),
    }
    // The old leader (epoch 6), woken from a pause, is fenced.
    let detail = rig
        .expect_refused(with_epoch(&rig, "old", 6), "stale-coordinator")
        .await;
    assert!(
        detail.contains("epoch 6") && detail.contains("epoch 7"),
        "{detail}"
    );
    // And so is a coordinator without a lease (epoch 0), once a leased one spoke.
    rig.expect_refused(with_epoch(&rig, "none", 0), "stale-coordinator")
        .await;
    // The highest epoch is on disk: a restarted agent still refuses.
    rig.restart_agent("agent-2.log").await;
    rig.expect_refused(with_epoch(&rig, "old-again", 6), "stale-coordinator")
        .await;
    match rig.outcome(with_epoch(&rig, "newer", 8)).await {
        wire::step_result::Result::Succeeded(s) => assert!(s.data_json.contains("newer")),
        other => panic!("the next leader's command did not run: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_arriving_after_its_give_up_time_is_refused_by_deadline_and_not_run() {
    let mut rig = rig().await;
    let signer = rig.pki.signer();
    // The coordinator gave up on the step a second ago: too late.
    let mut late = rig.echo("late");
    late.give_up_at_ms = late.issued_at_ms - 1_000;
    let detail = rig.expect_refused(signer.sign(&late), "deadline").await;
    assert!(
        detail.contains("after the coordinator gave up on step"),
        "{detail}"
    );
    // Nothing of it ran: the same step, in time, runs (its step id is not
    // in the ledger) and says so.
    let mut in_time = rig.echo("late");
    in_time.step_id = late.step_id.clone();
    in_time.give_up_at_ms = in_time.issued_at_ms + 60_000;
    match rig.outcome(signer.sign(&in_time)).await {
        wire::step_result::Result::Succeeded(s) => assert!(s.data_json.contains("late")),
        other => panic!("the step in time did not run: {other:?}"),
    }
}
