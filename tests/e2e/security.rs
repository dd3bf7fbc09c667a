//! The security matrix: every gRPC method of every service, called with every
//! kind of wrong client certificate, is refused; the right caller gets past
//! authentication. The method list comes from the proto itself, so a new rpc
//! without a row in the coordinator's access table fails this test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backout::server::access::{self, Caller};
use backout_e2e::fake::RawCodec;
use backout_e2e::{Coordinator, Pki, cli};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::Code;

/// `/package.Service/Method` for every rpc in `proto/proto/backout.proto`.
fn proto_methods() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/proto/backout.proto");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut package = String::new();
    let mut service = String::new();
    let mut methods = BTreeSet::new();
    for line in text.lines() {
        // Drop comments; the proto has no block comments.
        let line = line.split("//").next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("package") => {
                package = words.next().unwrap().trim_end_matches(';').to_string();
            }
            Some("service") => service = words.next().unwrap().to_string(),
            Some("rpc") => {
                let name = words.next().unwrap();
                let name = name.split('(').next().unwrap();
                assert!(!service.is_empty(), "rpc {name} outside a service");
                methods.insert(format!("/{package}.{service}/{name}"));
            }
            _ => {}
        }
    }
    assert!(!methods.is_empty(), "no rpc found in {}", path.display());
    methods
}

#[test]
fn every_proto_method_has_exactly_one_access_rule() {
    let proto = proto_methods();
    let table: BTreeSet<String> = access::TABLE.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(table.len(), access::TABLE.len(), "a method has two rows");
    let missing: Vec<_> = proto.difference(&table).collect();
    let stale: Vec<_> = table.difference(&proto).collect();
    assert!(
        missing.is_empty(),
        "rpcs without a row in coordinator/src/server/access.rs: {missing:?}"
    );
    assert!(stale.is_empty(), "rows for rpcs the proto lacks: {stale:?}");
}

/// Where a client certificate and key live, or none.
#[derive(Clone)]
struct Credential {
    label: &'static str,
    files: Option<(PathBuf, PathBuf)>,
}

fn leaf(dir: &Path, kind: &str, name: &str) -> Option<(PathBuf, PathBuf)> {
    let base = dir.join(format!("{kind}s"));
    Some((
        base.join(format!("{name}.pem")),
        base.join(format!("{name}.key")),
    ))
}

/// What happened to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The connection failed (the TLS handshake, or the first read after it).
    Handshake(String),
    /// The coordinator answered with this code.
    Status(Code, String),
}

impl Seen {
    /// Past the TLS handshake and the access table: any answer but
    /// Unauthenticated / PermissionDenied (e.g. "no run ``" for an empty
    /// request).
    fn passed_authentication(&self) -> bool {
        match self {
            Seen::Handshake(_) => false,
            Seen::Status(code, _) => !matches!(
                code,
                Code::Unauthenticated | Code::PermissionDenied | Code::Unavailable | Code::Unknown
            ),
        }
    }
}

/// Calls `method` once with an empty message, over a fresh mutual-TLS
/// connection that presents `credential` and trusts `ca`.
async fn call(addr: &str, ca: &Path, credential: &Credential, method: &str) -> Seen {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match &credential.files {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    // In TLS 1.3 the client's handshake ends before the server has checked
    // its certificate; the server's verdict is the first thing read. HTTP/2
    // servers speak first (SETTINGS), so a probe that reads one record sees
    // either that or the alert the server refused us with.
    if let Err(refusal) = probe(addr, config.clone()).await {
        return Seen::Handshake(refusal);
    }
    let target = addr.to_string();
    let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
        let config = config.clone();
        let target = target.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&target).await?;
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = match tonic::transport::Endpoint::from_static("http://127.0.0.1")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(connector)
        .await
    {
        Ok(channel) => channel,
        Err(e) => return Seen::Handshake(backout_tls::tls::error_chain(&e)),
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        return Seen::Handshake(e.to_string());
    }
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(method).unwrap();
    // One empty message fits every request type and every streaming shape.
    let request = tonic::Request::new(tokio_stream::iter(vec![Vec::<u8>::new()]));
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        grpc.streaming(request, path, RawCodec),
    )
    .await;
    match answer {
        Ok(Ok(_)) => Seen::Status(Code::Ok, String::new()),
        Ok(Err(status)) => Seen::Status(status.code(), status.message().to_string()),
        Err(_) => Seen::Status(Code::DeadlineExceeded, "no answer in 30 s".into()),
    }
}

/// Connects, completes the client side of the handshake and reads once.
async fn probe(addr: &str, config: Arc<rustls::ClientConfig>) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut byte)).await {
        Ok(Ok(0)) => Err("closed by the server".into()),
        Ok(Ok(_)) | Err(_) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// A coordinator configuration that lists every agent and operator of the
/// matrix (so refusals come from the certificates, not from the lists).
fn config(pki: &Pki, crl: bool) -> String {
    let p = pki.path().display();
    let crl = if crl {
        format!("crl = \"{p}/crl.pem\"\n")
    } else {
        String::new()
    };
    format!(
        r#"command_key = "{p}/command-signing.key"
{crl}[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
[[agent]]
id = "app-1"
[[agent]]
id = "app-old"
[[agent]]
id = "app-revoked"
[[agent]]
id = "app-future"
[operators]
alice = ["release-manager"]
old = ["release-manager"]
revoked = ["release-manager"]
future = ["release-manager"]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_refuses_every_wrong_certificate() {
    let pki = Pki::new("security.test");
    for (kind, name) in [
        ("agent", "app-1"),
        ("operator", "alice"),
        ("agent", "app-revoked"),
        ("operator", "revoked"),
        ("operator", "unlisted"),
    ] {
        pki.issue(kind, name);
    }
    // Valid from 10 days ago for 1 day: expired 9 days ago.
    for (kind, name) in [("agent", "app-old"), ("operator", "old")] {
        pki.pki(&["issue", kind, name, "--days", "1", "--backdate-days", "10"]);
    }
    // Valid from tomorrow.
    for (kind, name) in [("agent", "app-future"), ("operator", "future")] {
        pki.pki(&["issue", kind, name, "--postdate-days", "1"]);
    }
    pki.pki(&["revoke", "agent", "app-revoked"]);
    pki.pki(&["revoke", "operator", "revoked"]);
    // Another fleet with the same trust domain and the same names.
    let foreign = Pki::new("security.test");
    foreign.issue("agent", "app-1");
    foreign.issue("operator", "alice");
    let coordinator = Coordinator::start(pki.path(), &config(&pki, true)).await;
    let ca = pki.path().join("ca.pem");
    let p = pki.path();
    let f = foreign.path();

    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for (method, caller) in access::TABLE {
        let (role, legit) = match caller {
            Caller::Agent => ("agent", "app-1"),
            Caller::Operator => ("operator", "alice"),
        };
        let (other_role, other) = match caller {
            Caller::Agent => ("operator", "alice"),
            Caller::Operator => ("agent", "app-1"),
        };
        let (old, revoked, future) = match caller {
            Caller::Agent => ("app-old", "app-revoked", "app-future"),
            Caller::Operator => ("old", "revoked", "future"),
        };
        // (credential, the TLS alert the server must refuse it with, or
        // None: it must get PermissionDenied from the access table)
        let cases = [
            (("no client certificate", None), Some("CertificateRequired")),
            (("foreign CA", leaf(f, role, legit)), Some("DecryptError")),
            (("expired", leaf(p, role, old)), Some("CertificateExpired")),
            (
                ("not yet valid", leaf(p, role, future)),
                Some("CertificateExpired"),
            ),
            (
                ("revoked (CRL)", leaf(p, role, revoked)),
                Some("CertificateRevoked"),
            ),
            (("wrong role", leaf(p, other_role, other)), None),
        ];
        for ((label, files), alert) in cases {
            let credential = Credential { label, files };
            let seen = call(&coordinator.addr, &ca, &credential, method).await;
            let ok = match (alert, &seen) {
                (Some(alert), Seen::Handshake(message)) => message.contains(alert),
                (Some(_), Seen::Status(..)) => false,
                (None, seen) => matches!(seen, Seen::Status(Code::PermissionDenied, _)),
            };
            rows.push(format!("{method:40} {:22} {seen:?}", credential.label));
            if !ok {
                failures.push(format!("{method} / {}: {seen:?}", credential.label));
            }
        }
        if *caller == Caller::Operator {
            let unlisted = Credential {
                label: "operator not in config",
                files: leaf(p, "operator", "unlisted"),
            };
            let seen = call(&coordinator.addr, &ca, &unlisted, method).await;
            rows.push(format!("{method:40} {:22} {seen:?}", unlisted.label));
            if !matches!(seen, Seen::Status(Code::PermissionDenied, _)) {
                failures.push(format!("{method} / {}: {seen:?}", unlisted.label));
            }
        }
        let legit = Credential {
            label: "legitimate",
            files: leaf(p, role, legit),
        };
        let seen = call(&coordinator.addr, &ca, &legit, method).await;
        rows.push(format!("{method:40} {:22} {seen:?}", legit.label));
        if !seen.passed_authentication() {
            failures.push(format!("{method} / legitimate: {seen:?}"));
        }
    }
    eprintln!("{}", rows.join("\n"));
    assert!(
        failures.is_empty(),
        "security matrix:\n{}",
        failures.join("\n")
    );
    // The refusals were the coordinator's TLS checks, and it still serves.
    // rustls sends the same alert for expired and not-yet-valid; its log
    // tells them apart, and names the other refusals.
    for reason in [
        "peer sent no certificates",
        "BadSignature",
        "certificate expired",
        "certificate not valid yet",
        "Revoked",
    ] {
        // The alert reaches the client before the coordinator's log line is written.
        backout_e2e::wait_for(
            &format!("a refusal for `{reason}` in the log"),
            Duration::from_secs(10),
            || coordinator.proc.log_text().contains(reason).then_some(()),
        )
        .await;
    }
    assert!(
        cli(&pki, &coordinator.addr, "alice", &["agents"])
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_out_of_date_crl_refuses_everyone() {
    let pki = Pki::new("stale-crl.test");
    pki.issue("operator", "alice");
    // Dated 10 days back with a next update 1 day after: out of date.
    pki.pki(&["revoke", "--days", "1", "--backdate-days", "10"]);
    let coordinator = Coordinator::start(pki.path(), &config(&pki, true)).await;
    let alice = Credential {
        label: "alice",
        files: leaf(pki.path(), "operator", "alice"),
    };
    let ca = pki.path().join("ca.pem");
    let method = "/backout.v1.Control/WhoAmI";
    let seen = call(&coordinator.addr, &ca, &alice, method).await;
    assert!(
        matches!(&seen, Seen::Handshake(m) if m.contains("fatal alert")),
        "a stale CRL let alice in: {seen:?}"
    );
    // The alert reaches the client before the coordinator's log line is written.
    backout_e2e::wait_for("the refusal in the log", Duration::from_secs(10), || {
        coordinator
            .proc
            .log_text()
            .contains("TLS handshake refused")
            .then_some(())
    })
    .await;
    // A fresh list lets her in again, without a restart: the coordinator
    // reads its TLS files again when they change.
    pki.pki(&["revoke"]);
    let seen = call(&coordinator.addr, &ca, &alice, method).await;
    assert!(seen.passed_authentication(), "{seen:?}");
}
