//! The Prometheus `/metrics` listener both binaries serve, off unless their
//! configuration has a `[metrics]` table:
//!
//! ```toml
//! [metrics]
//! listen = "127.0.0.1:9464"
//! ```
//!
//! Without `[metrics.tls]` the listener is plain HTTP with no
//! authentication, so it binds loopback only: a non-loopback address is
//! refused when the configuration is loaded. With it, the listener speaks
//! HTTPS (TLS 1.3) and requires a client certificate signed by
//! `client_ca`, and any address is allowed:
//!
//! ```toml
//! [metrics]
//! listen = "0.0.0.0:9464"
//! [metrics.tls]
//! cert = "metrics.crt"          # this listener's certificate chain (PEM)
//! key = "metrics.key"           # its private key (PEM)
//! client_ca = "scrapers-ca.crt" # the CA(s) whose client certificates may scrape
//! ```
//!
//! The three files are read when the listener starts (a file that does
//! not load is bad input: exit 2) and belong to the monitoring system, not
//! to the fleet: the fleet CA's certificates are identities that run commands,
//! and a scraper needs none of that. What the endpoint shows (counts,
//! durations, agent and step names) is not secret, but it tells an attacker
//! what the fleet is doing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[metrics]` in the coordinator's or an agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `ip:port`, on loopback unless `tls` is set (port 0 picks a free
    /// one, printed at start).
    pub listen: String,
    /// Mutual TLS; without it the listener is plain HTTP on loopback.
    #[serde(default)]
    pub tls: Option<MetricsTls>,
}

/// `[metrics.tls]`: HTTPS with a client certificate required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsTls {
    /// The listener's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA certificate(s) (PEM) that sign the scrapers' client
    /// certificates.
    pub client_ca: PathBuf,
}

impl MetricsConfig {
    /// Relative TLS paths resolved against `config_file`'s directory.
    pub fn resolved(mut self, config_file: &Path) -> MetricsConfig {
        if let Some(tls) = &mut self.tls {
            tls.cert = crate::resolve(config_file, &tls.cert);
            tls.key = crate::resolve(config_file, &tls.key);
            tls.client_ca = crate::resolve(config_file, &tls.client_ca);
        }
        self
    }

    /// The address to bind, or what is wrong with `listen`.
    pub fn addr(&self) -> Result<SocketAddr, String> {
        let addr: SocketAddr = self.listen.parse().map_err(|_| {
            format!(
                "`{}` is not an ip:port address (e.g. 127.0.0.1:9464)",
                self.listen
            )
        })?;
        if !addr.ip().is_loopback() && self.tls.is_none() {
            return Err(format!(
                "`{}` is not a loopback address: without [metrics.tls] /metrics is plain HTTP \
                 without authentication, so it listens on 127.0.0.1 or ::1 only (give \
                 [metrics.tls] cert, key and client_ca to serve it over mutual TLS)",
                self.listen
            ));
        }
        Ok(addr)
    }

    /// The TLS server configuration, when `[metrics.tls]` is set.
    #[cfg(feature = "metrics")]
    fn server_config(
        &self,
    ) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, backout_tls::tls::TlsError> {
        self.tls
            .as_ref()
            .map(|tls| backout_tls::tls::https_server_config(&tls.cert, &tls.key, &tls.client_ca))
            .transpose()
    }

    /// Binds the listener, with the TLS files as they are now.
    #[cfg(feature = "metrics")]
    pub async fn bind(&self) -> Result<MetricsListener, MetricsError> {
        let addr = self
            .addr()
            .map_err(|e| MetricsError::Invalid(format!("metrics.listen: {e}")))?;
        let tls = self
            .server_config()
            .map_err(|e| MetricsError::Invalid(format!("metrics.tls: {e}")))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(MetricsListener { listener, tls })
    }
}

/// Why the `/metrics` listener cannot start.
#[cfg(feature = "metrics")]
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Bad input: the address, or a TLS file that does not load.
    #[error("{0}")]
    Invalid(String),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound `/metrics` listener, plain or mutual TLS; [`MetricsListener::serve`]
/// serves it.
#[cfg(feature = "metrics")]
pub struct MetricsListener {
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

#[cfg(feature = "metrics")]
impl MetricsListener {
    /// The URL Prometheus scrapes (`http://` or `https://`, the bound port).
    pub fn url(&self) -> std::io::Result<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(format!(
            "{scheme}://{}/metrics",
            self.listener.local_addr()?
        ))
    }

    /// Serves `GET /metrics`, answering what `render` returns at each
    /// scrape, until the process ends. Over TLS each handshake runs in its
    /// own task (a slow client holds up no other), and refused ones are
    /// logged at most once per reason every 10 s.
    pub fn serve(
        self,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        match self.tls {
            None => serve(self.listener, render),
            Some(config) => {
                let incoming = backout_tls::tls::incoming(self.listener, config, String::new());
                serve(Handshaken(incoming.into_inner()), render)
            }
        }
    }
}

/// Connections whose TLS handshake is done, as axum's listener.
#[cfg(feature = "metrics")]
struct Handshaken(tokio::sync::mpsc::Receiver<Result<backout_tls::tls::TlsConn, std::io::Error>>);

#[cfg(feature = "metrics")]
impl axum::serve::Listener for Handshaken {
    type Io = backout_tls::tls::TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.recv().await {
                Some(Ok(conn)) => {
                    let addr = conn.peer().addr;
                    return (conn, addr);
                }
                Some(Err(_)) => continue,
                // The accept loop is gone (it never ends while we listen).
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Err(std::io::Error::other(
            "the listener is behind its TLS handshakes",
        ))
    }
}

/// The media type of the text [`serve`]'s `render` returns (what
/// `prometheus-client` encodes).
#[cfg(feature = "metrics")]
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener`, answering what `render` returns at
/// each scrape, until the process ends. Nothing else is served.
#[cfg(feature = "metrics")]
fn serve<L>(
    listener: L,
    render: impl Fn() -> String + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    use std::sync::Arc;

    use axum::http::header;
    use axum::routing::get;

    let render = Arc::new(render);
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render()) }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the /metrics listener failed");
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::MetricsConfig;

    fn addr(listen: &str) -> Result<std::net::SocketAddr, String> {
        MetricsConfig {
            listen: listen.into(),
            tls: None,
        }
        .addr()
    }

    #[test]
    fn with_mutual_tls_any_address_is_accepted() {
        let config = MetricsConfig {
            listen: "0.0.0.0:9464".into(),
            tls: Some(super::MetricsTls {
                cert: "m.pem".into(),
                key: "m.key".into(),
                client_ca: "ca.pem".into(),
            }),
        };
        assert_eq!(config.addr().unwrap(), "0.0.0.0:9464".parse().unwrap());
        let resolved = config.resolved(std::path::Path::new("/etc/backout/agent.toml"));
        let tls = resolved.tls.unwrap();
        assert_eq!(tls.cert, std::path::Path::new("/etc/backout/m.pem"));
        assert_eq!(tls.client_ca, std::path::Path::new("/etc/backout/ca.pem"));
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert_eq!(
            addr("127.0.0.1:9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert!(addr("[::1]:0").is_ok());
        assert!(addr("0.0.0.0:9464").unwrap_err().contains("not a loopback"));
        assert!(
            addr("10.1.2.3:9464")
                .unwrap_err()
                .contains("not a loopback")
        );
        assert!(
            addr("localhost:9464")
                .unwrap_err()
                .contains("not an ip:port")
        );
        assert!(
            addr("127.0.0.1:99999")
                .unwrap_err()
                .contains("not an ip:port")
        );
    }
}
