//! `backout serve`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use backout_config::ConfigError;

use anyhow::Context;
use backout_config::metrics::MetricsError;
use backout_proto::command::CommandSigner;
use tokio::net::TcpListener;

use std::sync::Arc;

use super::{BadInput, Exit};
use crate::config::CoordinatorConfig;
use crate::journal::{JournalError, JournalStore, LeaseTaken, PostgresStore, Record, lease};
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
    // SIGHUP's default action ends a process without a word; an operator
    // who sends it expecting a reload (as the agent does) would lose the
    // coordinator. It is caught from the start and said to change nothing.
    hangup_is_not_a_reload(&args.config);
    let mut config = CoordinatorConfig::load(&args.config)?;
    // Where a bad `listen` came from, for the message: the flag, or the
    // file's `listen` line.
    let listen_flag = args.listen.is_some();
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    // Everything the configuration points at is checked before the port is
    // opened: a coordinator that says it is listening is one that can serve.
    check_command_key(&args.config, &config)?;
    check_checkpoint_key(&args.config, &config)?;
    if config.journal.is_none() {
        std::fs::create_dir_all(&config.state_dir).map_err(|e| {
            ConfigError::invalid(
                &args.config,
                "state_dir",
                format!("{}: cannot create it: {e}", config.state_dir.display()),
            )
        })?;
    }
    match config.tls.load() {
        Ok(material) => {
            // A revocation list that does not load: its own line.
            if let Some(crl) = &config.crl
                && let Err(e) = material.with_crl(crl)
            {
                return Err(ConfigError::invalid(&args.config, "crl", e.to_string()).into());
            }
        }
        // A `[tls]` file that is missing, unreadable or not the others'
        // (a key that is not the certificate's): name its line.
        Err(backout_tls::TlsError::File { path, message }) => {
            let field = config
                .tls
                .field_of(&path)
                .map_or_else(|| "tls".to_string(), |f| format!("tls.{f}"));
            return Err(ConfigError::invalid(
                &args.config,
                field,
                format!("{}: {message}", path.display()),
            )
            .into());
        }
        Err(e) => return Err(ConfigError::invalid(&args.config, "tls", e.to_string()).into()),
    }
    backout_tls::reload::ReloadingServerConfig::load(config.tls_files(), config.crl.clone())
        .with_context(|| format!("{}: TLS", config.tls.cert.display()))?;
    // The plugins' data-changing actions (`x-needs-backup`): each run is
    // checked against them at start, whatever phases it runs.
    let mut backups = if skip_plan_check() {
        backout_plan::run::BackupRules::default()
    } else {
        builtin_backup_rules()
    };
    if let Some(plan) = &config.plan {
        backout_plan::model::Plan::load(plan)?;
        // What `plan check --config` finds would break at run time: refuse
        // to start on it (unknown plugins, actions, parameters; probes
        // naming undefined checks; pins that differ from their files).
        if !skip_plan_check() {
            let (catalog, pins) = super::catalog::for_config(&args.config, &config)?;
            backups = backout_plan::run::BackupRules::from_catalog(&catalog);
            let warnings = super::plan::check_steps(plan, &catalog, pins)?;
            for w in warnings {
                tracing::warn!("{}:{w}", plan.display());
            }
        }
    }
    let addrs = listen_addrs(&config.listen).await.map_err(|message| {
        let message = format!("`{}`: {message}", config.listen);
        if listen_flag {
            anyhow::Error::new(BadInput(format!("--listen: {message}")))
        } else {
            ConfigError::invalid(&args.config, "listen", message).into()
        }
    })?;
    let listener = TcpListener::bind(addrs.as_slice())
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // The metrics listener: plain HTTP on loopback, or mutual TLS with
    // `[metrics.tls]` (its files are read now).
    let metrics_listener = match &config.metrics {
        Some(metrics) => Some(metrics.bind().await.map_err(|e| match e {
            MetricsError::Invalid(message) => {
                anyhow::Error::new(BadInput(format!("{}: {message}", args.config.display())))
            }
            other => other.into(),
        })?),
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
    // With the journal in PostgreSQL, this coordinator is a standby until it
    // takes the leader lease.
    let (postgres, listener, taken) = match lead(&config, listener).await? {
        Lead::Sqlite(listener) => (None, listener, None),
        Lead::Leading(store, listener, taken) => (Some(store), listener, Some(taken)),
        Lead::StoppedWaiting => return Ok(Exit::Ok),
    };
    survive_file_size_limit();
    // The parts are built (the journal opened under its lock: a second
    // coordinator on one journal is refused here) and the unfinished runs
    // resumed before the coordinator says it is listening.
    let coordinator = Coordinator::build_on(config, postgres.clone())?;
    coordinator.runs.set_backup_rules(backups);
    if postgres.is_some() {
        // An append that met another epoch: the lease is another's. (One
        // refused while a renewal is pending waits for the lease's keeper.)
        coordinator.journal.on_fenced(Box::new(|e| {
            if let JournalError::Fenced {
                current: Some(_), ..
            } = e
            {
                step_down(e.to_string());
            }
        }));
    }
    if let Some(taken) = taken {
        // The takeover, journaled under the new epoch before any run is
        // carried on (the run's report shows it).
        let journal = coordinator.journal.clone();
        tokio::task::spawn_blocking(move || {
            journal.append(backout_proto::now_ms(), "", &Record::LeaseTaken(taken))
        })
        .await?
        .context("cannot journal the lease's takeover")?;
    }
    coordinator.start()?;
    if let Some(metrics_listener) = metrics_listener {
        let url = metrics_listener.url()?;
        let metrics = coordinator.metrics.clone();
        metrics_listener.serve(move || metrics.render());
        let _ = writeln!(std::io::stdout(), "backout: metrics on {url}");
    }
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when listening on
    // port 0. A closed standard output does not stop the server.
    let _ = writeln!(std::io::stdout(), "backout: listening on {addr}");
    tracing::info!(%addr, agents = coordinator.config.agents.len(), "coordinator listening");
    // Under systemd (`Type=notify`): ready now that the port is open and the
    // journal is up; pings while the runtime runs, when the unit has a
    // watchdog. Nothing happens without `NOTIFY_SOCKET`.
    backout_config::service::ready();
    backout_config::service::spawn_watchdog();
    // Asked to stop, a leader hands over first: its queued journal entries
    // are written, then the lease is released and the standbys told (they
    // take it at once), and only then are the agents' sessions ended (they
    // dial again and find the new leader). From the release on, this
    // coordinator writes nothing, so it dispatches nothing.
    let journal = coordinator.journal.clone();
    let stop = async move {
        shutdown_signal().await;
        if let Some(store) = postgres {
            hand_over(journal, store).await;
        }
    };
    crate::server::serve(coordinator, listener, stop).await?;
    backout_config::otel::flush();
    Ok(Exit::Ok)
}

/// Writes what the journal has queued and releases the lease (see
/// [`PostgresStore::release`]); a failure leaves the lease to expire.
async fn hand_over(journal: Arc<crate::journal::Journal>, store: Arc<PostgresStore>) {
    let released = tokio::task::spawn_blocking(move || {
        if let Err(e) = journal.flush() {
            tracing::warn!(error = %e, "queued journal entries could not be written before the lease's release");
        }
        store.release()
    })
    .await;
    match released {
        Ok(Ok(())) => tracing::info!("leader lease released"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot release the leader lease; a standby takes it when it expires")
        }
        Err(e) => tracing::warn!(error = %e, "cannot release the leader lease"),
    }
}

/// The e2e tests' hook (builds with the `test-hooks` feature only): set, the
/// plan's steps are not checked against the plugins, nor a run's steps
/// against the backups they need at its start, so a test can watch the
/// plugins themselves refuse what the coordinator would have caught.
#[cfg(feature = "test-hooks")]
pub const SKIP_PLAN_CHECK_ENV: &str = "BACKOUT_TEST_SKIP_PLAN_CHECK";

/// The built-in plugins' data-changing actions (pinned files are read only
/// with the plan check).
fn builtin_backup_rules() -> backout_plan::run::BackupRules {
    let mut plugins = std::collections::BTreeMap::new();
    for (name, described) in super::catalog::builtin() {
        if let Ok(spec) = described.spec("built in".into()) {
            plugins.insert(name, spec);
        }
    }
    backout_plan::run::BackupRules::from_catalog(&backout_plan::check::Catalog {
        plugins,
        complete: false,
        checks: None,
    })
}

fn skip_plan_check() -> bool {
    #[cfg(feature = "test-hooks")]
    {
        std::env::var_os(SKIP_PLAN_CHECK_ENV).is_some()
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        false
    }
}

/// Binds `addr` again once the standby's server is gone: its accept loop
/// lets go of the port when it next runs, so a refused bind is tried again
/// for up to 2 s.
async fn bind_again(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 100 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!(
                    "cannot listen on {addr} again after taking the lease"
                )));
            }
        }
    }
}

enum Lead {
    /// One coordinator, on SQLite: no lease.
    Sqlite(TcpListener),
    /// This coordinator took the lease on the PostgreSQL journal; the
    /// listener, bound again for the real services; the takeover's record.
    Leading(Arc<PostgresStore>, TcpListener, LeaseTaken),
    /// Stopped (SIGTERM) while a standby.
    StoppedWaiting,
}

/// With `journal.postgres`: connects, waits as a standby until the lease is
/// free (answering every call on `listener` with "not the leader; the
/// leader is ADDR"), takes it and keeps it (renewed every third of
/// `lease_ttl`; lost, the coordinator steps down).
async fn lead(config: &CoordinatorConfig, listener: TcpListener) -> anyhow::Result<Lead> {
    let Some(journal) = config.journal.clone() else {
        return Ok(Lead::Sqlite(listener));
    };
    let password = journal.password().map_err(BadInput)?;
    let store = tokio::task::spawn_blocking(move || {
        PostgresStore::connect_with(
            &journal.postgres,
            password.as_deref(),
            journal.ca_file.as_deref(),
        )
    })
    .await?
    .context("cannot open the journal in PostgreSQL")?;
    let store = Arc::new(store);
    let advertise = config.advertise.clone().unwrap_or_default();
    let ttl = config.lease_ttl;
    let _ = writeln!(
        std::io::stdout(),
        "backout: standby for the leader lease ({}, as {advertise})",
        store.name()
    );
    let addr = listener.local_addr()?;
    let (leader, follow) = tokio::sync::watch::channel(String::new());
    let standby_config = config.clone();
    let standby = tokio::spawn(async move {
        crate::server::serve_standby(&standby_config, listener, follow, std::future::pending())
            .await
    });
    let taken = tokio::select! {
        taken = lease::wait_for_lease(store.clone(), advertise.clone(), ttl, leader) => taken,
        () = shutdown_signal() => return Ok(Lead::StoppedWaiting),
    };
    // The standby's answers stop (its connections dropped: clients dial
    // again and reach the services), and the port is bound again.
    standby.abort();
    let _ = standby.await;
    let listener = bind_again(addr).await?;
    let _ = writeln!(
        std::io::stdout(),
        "backout: leading (epoch {}, as {advertise})",
        taken.epoch
    );
    lease::keep(store.clone(), ttl, Box::new(step_down));
    Ok(Lead::Leading(store, listener, taken.record(&advertise)))
}

/// A coordinator that lost its lease stops at once: it logs why and exits
/// 1, writing and sending nothing more (its supervisor starts it again, as a
/// standby). Unfinished runs are carried on by the new leader.
fn step_down(why: String) {
    tracing::error!(reason = %why, "lost the leader lease: stepping down");
    let _ = writeln!(std::io::stderr(), "backout: stepping down: {why}");
    std::process::exit(1);
}

/// Reads the command-signing key, as the server will: a missing, unreadable
/// or wrong key is bad input naming the file and the field.
fn check_command_key(file: &Path, config: &CoordinatorConfig) -> Result<(), ConfigError> {
    let path = &config.command_key;
    let bad = |message: String| {
        ConfigError::invalid(
            file,
            "command_key",
            format!("{}: {message}", path.display()),
        )
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let pem = String::from_utf8(pem).map_err(|_| {
        bad("not a PEM file (not text); expected `-----BEGIN PRIVATE KEY-----` (ed25519, made by `backout pki init`)".into())
    })?;
    CommandSigner::from_pkcs8_pem(&pem).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// Reads the checkpoint key, if configured, as the server will.
fn check_checkpoint_key(file: &Path, config: &CoordinatorConfig) -> Result<(), ConfigError> {
    let Some(path) = &config.checkpoint_key else {
        return Ok(());
    };
    let bad = |message: String| {
        ConfigError::invalid(
            file,
            "checkpoint_key",
            format!("{}: {message}", path.display()),
        )
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let pem = String::from_utf8(pem).map_err(|_| bad("not a PEM file (not text)".into()))?;
    crate::journal::CheckpointSigner::from_pkcs8_pem(&pem).map_err(|e| bad(e.to_string()))?;
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
/// Catches SIGHUP for the life of the process: each one is logged as
/// changing nothing (the configuration and the plan are read at start only).
fn hangup_is_not_a_reload(config: &Path) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP");
            return;
        }
    };
    let config = config.display().to_string();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::warn!(
                %config,
                "SIGHUP: nothing reloaded; the coordinator reads its configuration and plan at start only (restart it to apply a change)"
            );
        }
    });
}

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
    backout_config::service::stopping();
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
