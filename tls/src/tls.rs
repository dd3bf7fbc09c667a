//! Mutual TLS 1.3 for every Backout connection, and tonic running over it.
//!
//! We build the rustls configurations ourselves instead of using tonic's TLS
//! options, because we need three things those do not give: TLS 1.3 only,
//! the peer's certificate on every request (to read its identity), and a check
//! that the server really is the coordinator (its URI SAN), not merely a host
//! the CA has signed for.
//!
//! **Architecture invariant:** every listener and every dialler in Backout goes
//! through [`server_config`] / [`client_config`]; there is no plaintext path.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};

use crate::identity::{self, Identity};
use crate::quiet::LogLimiter;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
}

/// Paths to the CA, our certificate and our private key: the `[tls]` table
/// of the coordinator's and the agent's configuration files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loaded TLS material: what [`TlsFiles`] points at, parsed and checked.
#[derive(Debug)]
pub struct TlsMaterial {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Revocation lists the server checks client certificates against.
    crls: Vec<CertificateRevocationListDer<'static>>,
    /// The trust domain, read from the CA certificate.
    pub domain: String,
    /// Who our own certificate says we are.
    pub identity: Identity,
    /// The files this was read from.
    files: TlsFiles,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        TlsMaterial {
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            crls: self.crls.clone(),
            domain: self.domain.clone(),
            identity: self.identity.clone(),
            files: self.files.clone(),
        }
    }
}

fn file_err(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

impl TlsFiles {
    /// Resolves relative paths with `resolve` (against the configuration file's directory).
    pub fn resolved(&self, resolve: impl Fn(&Path) -> PathBuf) -> TlsFiles {
        TlsFiles {
            ca: resolve(&self.ca),
            cert: resolve(&self.cert),
            key: resolve(&self.key),
        }
    }

    /// Which of the three fields (`ca`, `cert`, `key`) names `path`, for an
    /// error that points at the configuration's `[tls]` line.
    pub fn field_of(&self, path: &Path) -> Option<&'static str> {
        [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)]
            .into_iter()
            .find(|(_, p)| p.as_path() == path)
            .map(|(field, _)| field)
    }

    /// Reads and checks the files: the CA names the trust domain, and our
    /// certificate carries an identity in that domain.
    pub fn load(&self) -> Result<TlsMaterial, TlsError> {
        let ca_certs = read_certs(&self.ca)?;
        let domain = crate::pki::ca_domain(&ca_certs[0]).map_err(|m| file_err(&self.ca, m))?;
        let mut roots = RootCertStore::empty();
        for cert in ca_certs {
            roots
                .add(cert)
                .map_err(|e| file_err(&self.ca, format!("not a usable CA certificate: {e}")))?;
        }
        let chain = read_certs(&self.cert)?;
        let identity = Identity::from_cert_der(&chain[0], &domain)
            .map_err(|e| file_err(&self.cert, e.to_string()))?;
        let key_bytes = std::fs::read(&self.key).map_err(|e| file_err(&self.key, e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes)
            .map_err(|e| file_err(&self.key, format!("not a PEM private key: {e}")))?;
        // A key that is not the certificate's fails every handshake: say so
        // now, naming both files, rather than at each connection attempt.
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(
            |e| {
                let why = match e {
                    rustls::Error::InconsistentKeys(_) => format!(
                        "is not the private key of {} (its public key differs)",
                        self.cert.display()
                    ),
                    other => format!("not usable with {}: {other}", self.cert.display()),
                };
                file_err(&self.key, why)
            },
        )?;
        Ok(TlsMaterial {
            roots: Arc::new(roots),
            chain,
            key,
            crls: Vec::new(),
            domain,
            identity,
            files: self.clone(),
        })
    }
}

impl TlsMaterial {
    /// Reads the files again, for a client about to (re)connect: a renewed
    /// certificate, key or CA bundle is used from the next connection on.
    /// Refuses material that names another identity or trust domain, so a
    /// caller can keep what it has. (CRLs are the server's; not re-read.)
    pub fn reloaded(&self) -> Result<TlsMaterial, TlsError> {
        let fresh = self.files.load()?;
        if fresh.identity != self.identity || fresh.domain != self.domain {
            return Err(file_err(
                &self.files.cert,
                format!(
                    "now names {} in {}, not {} in {}",
                    fresh.identity, fresh.domain, self.identity, self.domain
                ),
            ));
        }
        Ok(fresh)
    }

    /// Adds the certificate revocation lists (PEM, signed by the fleet CA) in
    /// `path`: the server then refuses any client certificate they list, and
    /// every client certificate once a list is past its next-update time.
    pub fn with_crl(self, path: &Path) -> Result<Self, TlsError> {
        let bytes = std::fs::read(path).map_err(|e| file_err(path, e.to_string()))?;
        self.with_crl_pem(&bytes)
            .map_err(|message| file_err(path, message))
    }

    /// [`TlsMaterial::with_crl`] for lists already read (an agent gets the
    /// fleet's list from the coordinator). The error says what is wrong.
    pub fn with_crl_pem(mut self, bytes: &[u8]) -> Result<Self, String> {
        let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not a PEM CRL: {e}"))?;
        if crls.is_empty() {
            return Err("no X509 CRL block".into());
        }
        self.crls = crls;
        Ok(self)
    }
}

impl TlsMaterial {
    /// Checks a client certificate (DER) as the server's handshake would:
    /// it chains to the fleet CA, is valid now, and is not on a revocation
    /// list added with [`TlsMaterial::with_crl`] (nor is a list out of date).
    pub fn verify_client_cert(&self, der: &[u8]) -> Result<(), String> {
        let verifier = client_verifier(self).map_err(|e| e.to_string())?;
        let now = rustls_pki_types::UnixTime::now();
        verifier
            .verify_client_cert(&CertificateDer::from(der.to_vec()), &[], now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn client_verifier(
    material: &TlsMaterial,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(material.roots.clone(), provider());
    if !material.crls.is_empty() {
        // A revoked certificate is refused, and so is every certificate once
        // a list is out of date: a stale list could hide a revocation.
        builder = builder
            .with_crls(material.crls.iter().cloned())
            .enforce_revocation_expiration();
    }
    builder.build().map_err(|e| TlsError::Config(e.to_string()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server side: TLS 1.3 only, a client certificate signed by the fleet CA required.
pub fn server_config(material: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = client_verifier(material)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Server side of a listener outside the fleet's PKI (the `/metrics`
/// endpoint scraped over mutual TLS): TLS 1.3 only, HTTP/1.1, the
/// certificate chain in `cert` with its key in `key` (any PEM server
/// certificate), and a client certificate signed by a CA of `client_ca`
/// required.
pub fn https_server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in read_certs(client_ca)? {
        roots
            .add(ca)
            .map_err(|e| file_err(client_ca, format!("not a usable CA certificate: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| file_err(client_ca, e.to_string()))?;
    let chain = read_certs(cert)?;
    let key_bytes = std::fs::read(key).map_err(|e| file_err(key, e.to_string()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| file_err(key, format!("not a PEM private key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(|e| file_err(cert, format!("does not go with its key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client side: TLS 1.3 only, trusts only the fleet CA, presents our certificate.
pub fn client_config(material: &TlsMaterial) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(material.roots.clone())
        .with_client_auth_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Who is on the other end of a server-side connection. tonic puts it in every
/// request's extensions (`request.extensions().get::<PeerInfo>()`).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The identity from the client certificate, or why there is none usable.
    pub identity: Result<Identity, String>,
}

/// A server-side TLS connection that knows its peer.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl TlsConn {
    /// Who is on the other end.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts TCP connections on `listener` and completes the TLS handshake of
/// each in its own task, so one slow or hostile client never holds up the
/// others. Yields only connections whose handshake succeeded; pass the stream
/// to tonic's `serve_with_incoming*`. The accept loop ends when the stream is
/// dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    domain: String,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let limiter = Arc::new(LogLimiter::new(crate::quiet::EVERY));
    incoming_with(listener, move || config.clone(), domain, limiter)
}

/// Like [`incoming`], taking the configuration for each new handshake from
/// `config`, which rebuilds it when the certificate, key, CA bundle or CRL
/// changes on disk (see [`crate::reload`]). Accepted connections keep theirs.
pub fn incoming_reloading(
    listener: TcpListener,
    config: Arc<crate::reload::ReloadingServerConfig>,
    domain: String,
    limiter: Arc<LogLimiter>,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    incoming_with(listener, move || config.current(), domain, limiter)
}

/// Failed handshakes are caused by whoever reaches the port, signed in or
/// not: their lines go through `limiter` so they cannot fill the disk (its
/// totals count every one, for metrics).
fn incoming_with(
    listener: TcpListener,
    config: impl Fn() -> Arc<ServerConfig> + Send + Sync + 'static,
    domain: String,
    limiter: Arc<LogLimiter>,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(128);
    let config = Arc::new(config);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        if let Some(suppressed) = limiter.admit("accept failed", Instant::now()) {
                            tracing::warn!(error = %e, suppressed, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                // The server is gone: stop accepting.
                () = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let config = config.clone();
            let tx = tx.clone();
            let domain = domain.clone();
            let limiter = limiter.clone();
            tokio::spawn(async move {
                // Taken here, not in the accept loop: a reload (a few file
                // reads) never holds up accepting the next connection.
                let acceptor = tokio_rustls::TlsAcceptor::from(config());
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        let error = e.to_string();
                        let reason = format!("refused: {error}");
                        if let Some(suppressed) = limiter.admit(&reason, Instant::now()) {
                            tracing::info!(
                                peer = %addr,
                                error,
                                suppressed,
                                "TLS handshake refused (at most one line per reason every {}s; `suppressed` counts those left out)",
                                limiter.every().as_secs()
                            );
                        }
                        return;
                    }
                    Err(_) => {
                        if let Some(suppressed) = limiter.admit("timed out", Instant::now()) {
                            tracing::info!(
                                peer = %addr,
                                suppressed,
                                "TLS handshake timed out (at most one line every {}s; `suppressed` counts those left out)",
                                limiter.every().as_secs()
                            );
                        }
                        return;
                    }
                };
                let identity = match stream.get_ref().1.peer_certificates() {
                    Some([leaf, ..]) => {
                        Identity::from_cert_der(leaf, &domain).map_err(|e| e.to_string())
                    }
                    _ => Err("no client certificate".to_string()),
                };
                let peer = PeerInfo { addr, identity };
                let _ = tx
                    .send(Ok(TlsConn {
                        inner: stream,
                        peer,
                    }))
                    .await;
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Whether `name` can be the name a TLS client asks for (a DNS name or an
/// IP address), as [`connect_coordinator`] will; the error says why not.
pub fn check_server_name(name: &str) -> Result<(), String> {
    ServerName::try_from(name.to_string())
        .map(drop)
        .map_err(|e| format!("`{name}` is not a DNS name or an IP address: {e}"))
}

/// Dials the coordinator at `addr` (`host:port`) over mutual TLS and returns a
/// tonic channel. `server_name` is the DNS name or IP the coordinator's
/// certificate must carry; beyond that, its URI SAN must say `/coordinator` in
/// our trust domain.
pub async fn connect_coordinator(
    addr: &str,
    server_name: &str,
    material: &TlsMaterial,
    connect_timeout: Duration,
) -> Result<Channel, TlsError> {
    let config = client_config(material)?;
    let server_name = ServerName::try_from(server_name.to_string())
        .map_err(|e| TlsError::Config(format!("server name `{server_name}`: {e}")))?;
    let connect_err = |message: String| TlsError::Connect {
        addr: addr.to_string(),
        message,
    };
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| connect_err(format!("not a host:port: {e}")))?
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let target = addr.to_string();
    let domain = material.domain.clone();
    let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
        let config = config.clone();
        let server_name = server_name.clone();
        let target = target.clone();
        let domain = domain.clone();
        async move {
            let tcp = TcpStream::connect(&target).await?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await?;
            let peer_ok = match tls.get_ref().1.peer_certificates() {
                Some([leaf, ..]) => {
                    matches!(identity::spiffe_of_cert(leaf), Ok((d, Identity::Coordinator)) if d == domain)
                }
                _ => false,
            };
            if !peer_ok {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the server's certificate is not the coordinator's",
                ));
            }
            Ok::<_, io::Error>(TokioIo::new(tls))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| connect_err(error_chain(&e)))
}

/// The host part of a `host:port` address, used as the TLS server name by
/// default: "127.0.0.1:7443" -> "127.0.0.1"; "[::1]:7443" -> "::1".
pub fn host_part(addr: &str) -> String {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    addr.rsplit_once(':')
        .map_or_else(|| addr.to_string(), |(host, _)| host.to_string())
}

/// Formats an error with its sources, so "transport error" says why.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part_handles_ipv6_and_names() {
        assert_eq!(host_part("127.0.0.1:7443"), "127.0.0.1");
        assert_eq!(host_part("[::1]:7443"), "::1");
        assert_eq!(host_part("coord.internal:7443"), "coord.internal");
        assert_eq!(host_part("coord.internal"), "coord.internal");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_at_load() {
        use crate::pki::{self, LeafOptions};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        pki::init(dir.path(), "keys.local", &LeafOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let (web, db) = (
            Identity::Agent("web-1".into()),
            Identity::Agent("db-1".into()),
        );
        for id in [&web, &db] {
            pki::issue(dir.path(), id, &LeafOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        }
        let (cert, key) = pki::leaf_paths(dir.path(), &web);
        let (_, other_key) = pki::leaf_paths(dir.path(), &db);
        let files = |key: &Path| TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: cert.clone(),
            key: key.to_path_buf(),
        };
        assert!(files(&key).load().is_ok(), "its own key loads");
        let err = files(&other_key).load().err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.starts_with(&format!(
                "{}: is not the private key of {}",
                other_key.display(),
                cert.display()
            )),
            "{err}"
        );
    }
}
