//! OpenTelemetry traces, exported over OTLP/gRPC when configured and off by
//! default:
//!
//! ```toml
//! [otlp]
//! endpoint = "http://127.0.0.1:4317"
//! ```
//!
//! or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) in the environment.
//!
//! [`crate::logging::init`] installs the `tracing` → OpenTelemetry layer
//! before any configuration is read, with a filter that lets no span
//! through until [`start`] is called with an endpoint: until then (and
//! always, without `[otlp]`) spans cost what they cost without this module.
//! [`start`] then gives the tracer provider its exporter and the service
//! name (`backout`, `backout-agent`).
//!
//! The W3C trace context of a span travels as text ([`traceparent`],
//! [`set_parent`]): the coordinator puts its step span's inside the signed
//! command, and the agent continues the trace under it.

use serde::Deserialize;

/// `[otlp]` in the coordinator's or an agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
}

#[cfg(feature = "otel")]
pub use imp::*;

#[cfg(feature = "otel")]
mod imp {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{
        BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanProcessor,
    };
    use tracing::Subscriber;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::registry::LookupSpan;

    /// Whether spans go to OpenTelemetry: set once [`start`] has an exporter.
    static ENABLED: AtomicBool = AtomicBool::new(false);
    /// The provider behind the layer, built with the layer.
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
    /// The exporting processor, set by [`start`].
    static EXPORTING: OnceLock<BatchSpanProcessor> = OnceLock::new();

    /// Why traces cannot be exported.
    #[derive(Debug, thiserror::Error)]
    #[error("OTLP exporter for `{endpoint}`: {message}")]
    pub struct OtelError {
        endpoint: String,
        message: String,
    }

    /// The provider's one processor: hands spans to the exporting one once
    /// [`start`] has made it, and drops them before.
    #[derive(Debug)]
    struct Late;

    impl SpanProcessor for Late {
        fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
            if let Some(p) = EXPORTING.get() {
                p.on_start(span, cx);
            }
        }

        fn on_end(&self, span: SpanData) {
            if let Some(p) = EXPORTING.get() {
                p.on_end(span);
            }
        }

        fn force_flush(&self) -> OTelSdkResult {
            EXPORTING.get().map_or(Ok(()), |p| p.force_flush())
        }

        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            EXPORTING
                .get()
                .map_or(Ok(()), |p| p.shutdown_with_timeout(timeout))
        }
    }

    /// The `tracing` → OpenTelemetry layer [`crate::logging::init`] adds.
    /// It sees no span until [`start`] succeeds.
    pub fn layer<S>() -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let provider = PROVIDER.get_or_init(|| {
            SdkTracerProvider::builder()
                .with_span_processor(Late)
                .build()
        });
        let enabled =
            tracing_subscriber::filter::dynamic_filter_fn(|_, _| ENABLED.load(Ordering::Relaxed))
                .with_callsite_filter(|_| tracing::subscriber::Interest::sometimes());
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("backout"))
            .with_filter(enabled)
    }

    /// Starts exporting spans as `service` to `endpoint`, or to the
    /// endpoint the environment names (`OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Returns the endpoint, or
    /// `None` (traces stay off) when neither names one. Call it from the
    /// Tokio runtime, once.
    pub fn start(service: &str, endpoint: Option<&str>) -> Result<Option<String>, OtelError> {
        let from_env = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
        let Some(shown) = endpoint.map(str::to_string).or(from_env) else {
            return Ok(None);
        };
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let exporter = builder.build().map_err(|e| OtelError {
            endpoint: shown.clone(),
            message: e.to_string(),
        })?;
        let config = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let mut processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config)
            .build();
        processor.set_resource(
            &Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        );
        if EXPORTING.set(processor).is_ok() {
            ENABLED.store(true, Ordering::Relaxed);
        }
        Ok(Some(shown))
    }

    /// Exports the spans still queued (at shutdown).
    pub fn flush() {
        if let Some(p) = EXPORTING.get() {
            let _ = p.force_flush();
        }
    }

    /// `span`'s W3C `traceparent`, or "" when traces are off.
    pub fn traceparent(span: &tracing::Span) -> String {
        if !ENABLED.load(Ordering::Relaxed) {
            return String::new();
        }
        let mut carrier: HashMap<String, String> = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        carrier.remove("traceparent").unwrap_or_default()
    }

    /// Makes `span` a child of the span `traceparent` names (from another
    /// process); an empty or malformed one leaves `span` a root.
    pub fn set_parent(span: &tracing::Span, traceparent: &str) {
        if traceparent.is_empty() || !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(cx);
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    #[test]
    fn logging_takes_the_layer_and_traces_stay_off_until_started() {
        // The layer's per-layer filter needs a registry-based subscriber:
        // `logging::init` must not panic with it.
        crate::logging::init(Some("info"), "info", crate::logging::LogFormat::Text);
        let span = tracing::info_span!("step");
        assert_eq!(super::traceparent(&span), "");
        super::set_parent(
            &span,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        assert_eq!(super::traceparent(&span), "");
    }
}
