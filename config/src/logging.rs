//! The logging set-up both binaries share (`backout` and `backout-agent`).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written: `--log-format` (or `BACKOUT_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line: the event's fields at the top level, and
    /// the fields of the spans it happened in (run, phase, step, host…)
    /// under `span` (the innermost) and `spans` (outermost first).
    Json,
}

/// The target of spans that only traces show: a plugin call, a host call,
/// admission. Log lines leave them out, so a line's innermost span (`span`
/// in JSON) is the step's, with its run, phase, step and host.
pub const TRACES_ONLY: &str = "backout::traces_only";

/// A layer of the one subscriber both binaries install.
type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Sends `tracing` events to standard error, filtered by `filter` (a
/// `--log` flag), else `RUST_LOG`, else `default` (e.g. "info"), written as
/// `format` says.
///
/// Colours only when standard error is a terminal and the format is text: a
/// log file or a journal gets plain text. A log line that cannot be written
/// (the disk is full) is dropped: reporting it would `eprintln!` to the same
/// full standard error, which panics the task that logged (a run's driver
/// died of it).
///
/// The subscriber is a registry with a list of layers: another output (an
/// exporter of traces) is one more entry in `layers`.
///
/// A second call (tests, or a library that set one up) changes nothing.
pub fn init(filter: Option<&str>, default: &str, format: LogFormat) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    #[allow(unused_mut)]
    let mut layers: Vec<BoxedLayer> = vec![stderr_layer(format)];
    // Spans go to OpenTelemetry too once `otel::start` has an endpoint.
    #[cfg(feature = "otel")]
    layers.push(crate::otel::layer().boxed());
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(EnvFilter::new(filter))
        .try_init();
}

/// The layer that writes lines to standard error.
fn stderr_layer(format: LogFormat) -> BoxedLayer {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    // Spans for traces only are not a line's context.
    let lines = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.is_span() && meta.target() == TRACES_ONLY)
    });
    match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(lines)
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(lines)
            .boxed(),
    }
}
