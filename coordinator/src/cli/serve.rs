//! `backout serve`.

use std::path::Path;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::CoordinatorConfig;

pub async fn run(config_path: &Path, listen: Option<String>) -> anyhow::Result<()> {
    let mut config = CoordinatorConfig::load(config_path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("backout: listening on {addr}");
    tracing::info!(%addr, agents = config.agents.len(), "coordinator listening");
    crate::server::run(config, listener, shutdown_signal()).await
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
