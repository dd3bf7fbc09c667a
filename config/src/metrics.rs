//! The Prometheus `/metrics` listener both binaries serve, off unless their
//! configuration has a `[metrics]` table:
//!
//! ```toml
//! [metrics]
//! listen = "127.0.0.1:9464"
//! ```
//!
//! The listener is plain HTTP with no authentication, so it binds loopback
//! only: a non-loopback address is refused when the configuration is loaded.
//! Prometheus on the same host scrapes it directly; a remote Prometheus
//! scrapes through a TLS-terminating proxy (or an SSH tunnel) on that host.
//! What the endpoint shows (counts, durations, agent and step names) is not
//! secret, but it tells an attacker what the fleet is doing.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[metrics]` in the coordinator's or an agent's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `ip:port` on loopback (port 0 picks a free one, printed at start).
    pub listen: String,
}

impl MetricsConfig {
    /// The address to bind, or what is wrong with `listen`.
    pub fn addr(&self) -> Result<SocketAddr, String> {
        let addr: SocketAddr = self.listen.parse().map_err(|_| {
            format!(
                "`{}` is not an ip:port address (e.g. 127.0.0.1:9464)",
                self.listen
            )
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "`{}` is not a loopback address: /metrics is plain HTTP without authentication, \
                 so it listens on 127.0.0.1 or ::1 only (scrape from another host through a \
                 TLS-terminating proxy)",
                self.listen
            ));
        }
        Ok(addr)
    }
}

/// The media type of the text [`serve`]'s `render` returns (what
/// `prometheus-client` encodes).
#[cfg(feature = "metrics")]
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener`, answering what `render` returns at
/// each scrape, until the process ends. Nothing else is served.
#[cfg(feature = "metrics")]
pub fn serve(
    listener: tokio::net::TcpListener,
    render: impl Fn() -> String + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
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
        }
        .addr()
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
