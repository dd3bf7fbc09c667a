//! The logging set-up both binaries share (`backout` and `backout-agent`).

use std::io::IsTerminal;

/// Sends `tracing` events to standard error, filtered by `filter` (a
/// `--log` flag), else `RUST_LOG`, else `default` (e.g. "info").
///
/// Colours only when standard error is a terminal: a log file or a journal
/// gets plain text. A log line that cannot be written (the disk is full) is
/// dropped: reporting it would `eprintln!` to the same full standard error,
/// which panics the task that logged (a run's driver died of it).
///
/// A second call (tests, or a library that set one up) changes nothing.
pub fn init(filter: Option<&str>, default: &str) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(filter))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .log_internal_errors(false),
        );
    // Spans go to OpenTelemetry too once `otel::start` has an endpoint.
    #[cfg(feature = "otel")]
    let subscriber = subscriber.with(crate::otel::layer());
    let _ = subscriber.try_init();
}
