//! Trust that does not rest on the coordinator alone (issue 14): the roles
//! the CA attests in operator certificates, checked against the
//! coordinator's `[operators]` at start.

use std::time::Duration;

use backout_e2e::{Pki, Serving, bin, run};

/// `backout pki issue operator NAME --role ...` puts the roles in the
/// certificate; a coordinator with `operator_certs` whose `[operators]`
/// disagree refuses to start (exit 2) naming the operator out of step; a
/// renewal with the configured roles brings them back in step.
#[tokio::test]
async fn the_coordinator_refuses_operators_whose_certificates_disagree() {
    let pki = Pki::new("trust.test");
    pki.pki(&[
        "issue",
        "operator",
        "alice",
        "--role",
        "dba",
        "--role",
        "technical-lead",
        "--days",
        "30",
    ]);
    pki.pki(&["issue", "operator", "bob", "--role", "product-owner"]);
    let p = pki.path().display();
    let config = format!(
        r#"listen = "127.0.0.1:0"
command_key = "{p}/command-signing.key"
operator_certs = "{p}/operators"
state_dir = "{p}/state"
[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
[[agent]]
id = "app-1"
[operators]
alice = ["dba"]
bob = ["product-owner"]
"#
    );
    let path = pki.path().join("coordinator.toml");
    std::fs::write(&path, &config).unwrap();
    let out = run(
        &bin("backout"),
        &["serve", "--config", path.to_str().unwrap()],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("coordinator.toml:12: field `operators.alice`")
            && stderr.contains("operator alice is out of step")
            && stderr.contains("attests [dba, technical-lead]"),
        "{stderr}"
    );
    assert!(!stderr.contains("operators.bob"), "{stderr}");

    // The role change is a renewal: alice's certificate now attests only dba.
    pki.pki(&[
        "renew", "operator", "alice", "--role", "dba", "--days", "30",
    ]);
    let mut serving = Serving::start(&path, &pki.path().join("coordinator.log"), &[]);
    serving
        .line("backout: listening on ", Duration::from_secs(20))
        .await;
}
