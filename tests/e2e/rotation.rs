//! Certificate rotation without a restart: the coordinator's certificate, an
//! agent's and the CRL are renewed in place while a phase runs; the phase
//! completes on the open session, new handshakes see the new files, and the
//! agent reconnects with its renewed certificate (its old one revoked).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backout_e2e::fleet::{Fleet, run_id};
use backout_e2e::{Pki, bin, run, wait_for};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const WAIT: Duration = Duration::from_secs(30);

fn backout(pki: &Pki, args: &[&str]) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--dir", pki.path().to_str().unwrap()]);
    let out = run(&bin("backout"), &all, &[]);
    assert!(
        out.status.success(),
        "backout {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The certificate the coordinator presents to a new connection of operator
/// `who`, or the error that connection ended with.
async fn served_certificate(pki: &Pki, addr: &str, who: &str) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.path().join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let dir = pki.path().join("operators");
    let chain = CertificateDer::pem_file_iter(dir.join(format!("{who}.pem")))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{who}.key"))).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    // The server's verdict on our certificate comes with its first bytes.
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut byte)).await {
        Ok(Err(e)) => Err(e.to_string()),
        _ => Ok(served),
    }
}

fn der_of(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_and_crl_rotate_during_a_run_without_a_restart() {
    let pki = Pki::new("rotation.test");
    pki.issue("operator", "eve");
    backout(&pki, &["pki", "revoke"]);
    let p = pki.path().display().to_string();
    let mut fleet = Fleet::builder("rotation.test")
        .pki(pki)
        .name("rotation")
        .hosts(["app-1"])
        .group("app", ["app-1"])
        .operators(&[
            ("alice", &["release-manager"]),
            ("eve", &["release-manager"]),
        ])
        .config(&format!("crl = \"{p}/crl.pem\"\n"))
        .plan(
            r#"[[phase]]
id = "slow"
name = "Slow"
[[phase.step]]
id = "sleep"
plugin = "testbed"
action = "sleep"
on = "app-1"
params = { ms = 6000 }
"#,
        )
        .start()
        .await;
    let pki = &fleet.pki;
    let addr = fleet.addr.clone();
    let old_coordinator = der_of(&pki.path().join("coordinator.pem"));
    let served = served_certificate(pki, &addr, "alice").await.unwrap();
    assert!(
        served == old_coordinator,
        "not the coordinator's certificate"
    );

    let id = run_id(&fleet.start_run("alice", &["--reason", "rotation"]));
    // The step runs on the agent over the session opened with the old
    // certificates.
    let agent_log = fleet.agent_log("app-1", "");
    wait_for("the slow step to run on the agent", WAIT, || {
        std::fs::read_to_string(&agent_log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("running step") && l.contains("/slow/sleep/"))
            .then_some(())
    })
    .await;

    // Renew in place while the phase runs; revoke eve.
    backout(pki, &["pki", "renew", "coordinator"]);
    backout(pki, &["pki", "renew", "agent", "app-1"]);
    backout(pki, &["pki", "revoke", "operator", "eve"]);
    let new_coordinator = der_of(&pki.path().join("coordinator.pem"));
    assert_ne!(new_coordinator, old_coordinator);
    assert_eq!(
        fleet.run_of(&id)["status"],
        "running",
        "the phase must still run while the certificates change"
    );
    let served = served_certificate(pki, &addr, "alice").await.unwrap();
    assert!(
        served == new_coordinator,
        "a new handshake gets {} certificate",
        if served == old_coordinator {
            "the old"
        } else {
            "an unknown"
        }
    );
    let refused = served_certificate(pki, &addr, "eve").await.unwrap_err();
    assert!(refused.contains("CertificateRevoked"), "{refused}");

    // The phase finishes on the session opened with the old certificates.
    let run = fleet
        .wait_run(&id, "the run to end", |run| {
            run["status"] == "succeeded" || run["status"] == "failed"
        })
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let agent = &fleet.agents["app-1"];
    assert!(
        !agent.log_text().contains("reconnecting"),
        "the session was dropped: {}",
        agent.log_text()
    );

    // The agent's next connection uses its renewed certificate: revoke the
    // old one, make the agent reconnect (coordinator restarted on the same
    // port), and it gets back in.
    let old_agent = pki.path().join("agents/app-1.pem.old");
    backout(
        pki,
        &["pki", "revoke", "--cert", old_agent.to_str().unwrap()],
    );
    fleet.restart_coordinator().await;
    wait_for("the agent to reconnect", WAIT, || {
        (fleet.connected() == ["app-1"]).then_some(())
    })
    .await;
    assert!(
        !fleet.coordinator.proc.log_text().contains("Revoked"),
        "the agent dialled with its old certificate"
    );
}
