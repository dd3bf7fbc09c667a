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
    survive_file_size_limit();
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("backout: listening on {addr}");
    tracing::info!(%addr, agents = config.agents.len(), "coordinator listening");
    crate::server::run(config, listener, shutdown_signal()).await
}

/// A write past the process's file-size limit (`RLIMIT_FSIZE`, as a full
/// quota behaves) sends SIGXFSZ, whose default is to kill the process. With
/// a handler the write fails instead (EFBIG): the journal refuses the change
/// and the coordinator keeps serving, and carries on once there is room.
fn survive_file_size_limit() {
    use tokio::signal::unix::{SignalKind, signal};
    const SIGXFSZ: i32 = 25; // Linux, every architecture Backout builds for.
    match signal(SignalKind::from_raw(SIGXFSZ)) {
        Ok(mut xfsz) => {
            tokio::spawn(async move {
                while xfsz.recv().await.is_some() {
                    tracing::error!(
                        "a file reached the size limit: journal writes fail until it is raised"
                    );
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot handle SIGXFSZ"),
    }
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
