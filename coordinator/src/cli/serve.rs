//! `backout serve`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use backout_proto::command::CommandSigner;
use tokio::net::TcpListener;

use super::{BadInput, Exit};
use crate::config::CoordinatorConfig;
use crate::root::Coordinator;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The coordinator's configuration file (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Override `listen` from the configuration (host:port; port 0 picks one).
    #[arg(long)]
    listen: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<Exit> {
    let mut config = CoordinatorConfig::load(&args.config)?;
    // Where a bad `listen` came from, for the message.
    let listen_from = match args.listen {
        Some(listen) => {
            config.listen = listen;
            "--listen".to_string()
        }
        None => format!("{}: field `listen`", args.config.display()),
    };
    // Everything the configuration points at is checked before the port is
    // opened: a coordinator that says it is listening is one that can serve.
    check_command_key(&config)?;
    backout_tls::reload::ReloadingServerConfig::load(config.tls_files(), config.crl.clone())
        .with_context(|| format!("{}: TLS", config.tls.cert.display()))?;
    if let Some(plan) = &config.plan {
        backout_plan::model::Plan::load(plan)?;
    }
    let addrs = listen_addrs(&config.listen)
        .await
        .map_err(|message| BadInput(format!("{listen_from}: `{}`: {message}", config.listen)))?;
    let listener = TcpListener::bind(addrs.as_slice())
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // The metrics listener's address was checked when the configuration
    // was loaded (loopback only).
    let metrics_listener = match &config.metrics {
        Some(metrics) => {
            let addr = metrics.addr().map_err(BadInput)?;
            Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {addr}"))?,
            )
        }
        None => None,
    };
    let otlp = config.otlp.as_ref().map(|o| o.endpoint.as_str());
    if let Some(endpoint) = backout_config::otel::start("backout", otlp).map_err(|e| {
        BadInput(format!(
            "{}: field `otlp.endpoint`: {e}",
            args.config.display()
        ))
    })? {
        tracing::info!(%endpoint, "traces exported over OTLP");
    }
    survive_file_size_limit();
    // The parts are built (the journal opened under its lock: a second
    // coordinator on one journal is refused here) and the unfinished runs
    // resumed before the coordinator says it is listening.
    let coordinator = Coordinator::build(config)?;
    coordinator.start()?;
    if let Some(metrics_listener) = metrics_listener {
        let addr = metrics_listener.local_addr()?;
        let metrics = coordinator.metrics.clone();
        backout_config::metrics::serve(metrics_listener, move || metrics.render());
        let _ = writeln!(
            std::io::stdout(),
            "backout: metrics on http://{addr}/metrics"
        );
    }
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when listening on
    // port 0. A closed standard output does not stop the server.
    let _ = writeln!(std::io::stdout(), "backout: listening on {addr}");
    tracing::info!(%addr, agents = coordinator.config.agents.len(), "coordinator listening");
    crate::server::serve(coordinator, listener, shutdown_signal()).await?;
    backout_config::otel::flush();
    Ok(Exit::Ok)
}

/// Reads the command-signing key, as the server will: a missing, unreadable
/// or wrong key is bad input naming the file and the field.
fn check_command_key(config: &CoordinatorConfig) -> Result<(), BadInput> {
    let path = &config.command_key;
    let bad = |message: String| BadInput(format!("{}: `command_key`: {message}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let pem = String::from_utf8(pem).map_err(|_| {
        bad("not a PEM file (not text); expected `-----BEGIN PRIVATE KEY-----` (ed25519, made by `backout pki init`)".into())
    })?;
    CommandSigner::from_pkcs8_pem(&pem).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// The socket addresses `listen` (`host:port`) names, or what is wrong with
/// it.
async fn listen_addrs(listen: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        return Err("expected host:port (e.g. 0.0.0.0:7443)".into());
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("`{port}` is not a port (0 to 65535)"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("no host before the port (e.g. 0.0.0.0:7443)".into());
    }
    if host.chars().all(|c| c.is_ascii_digit() || c == '.') || host.contains(':') {
        return Err(format!("`{host}` is not an IP address"));
    }
    match tokio::net::lookup_host(listen).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("`{host}` has no address"))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(format!("cannot resolve `{host}`: {e}")),
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::listen_addrs;

    #[tokio::test]
    async fn a_bad_listen_address_says_what_is_wrong() {
        let err = |text: &'static str| async move { listen_addrs(text).await.unwrap_err() };
        assert!(
            err("999.0.0.1:99999")
                .await
                .contains("`99999` is not a port")
        );
        assert!(
            err("999.0.0.1:7443")
                .await
                .contains("`999.0.0.1` is not an IP address")
        );
        assert!(err("7443").await.contains("expected host:port"));
        assert!(err(":7443").await.contains("no host"));
        assert_eq!(
            listen_addrs("127.0.0.1:0").await.unwrap(),
            vec!["127.0.0.1:0".parse().unwrap()]
        );
        assert!(!listen_addrs("localhost:0").await.unwrap().is_empty());
    }
}
