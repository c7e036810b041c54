//! Traces: `tracing` spans exported over OTLP/gRPC when an endpoint is configured, and the W3C
//! trace context (`traceparent`) that links one process's spans to another's — the agency's call
//! to the gateway's publish, the publish to the correlator's evaluation and the sealer's append,
//! the evaluation to the alert.
//!
//! A span continues a remote trace with [`continue_trace`], links to others with [`link`], and
//! tells what to send on with [`traceparent`]. Without an exporter (no OTLP layer in the
//! subscriber) all of them do nothing and [`traceparent`] is `None`: callers then keep the trace
//! id they were given, so logs still name it. Per-message spans of the correlator and the sealer
//! are made only while [`exporting`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

use crate::Error;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported: the correlator and the sealer make a span per message only
/// then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Where and how much to export.
#[derive(Debug, Clone)]
pub struct Export {
    /// The OTLP/gRPC receiver (`http://collector:4317`).
    pub endpoint: String,
    /// The share of new traces kept, 0.0–1.0; a caller's decision (its `traceparent`'s sampled
    /// flag) is followed.
    pub sampling: f64,
    /// `service.name`: the process's component (`timpora-gateway`), or `timpora` for a
    /// process that runs them all.
    pub service: String,
    /// More resource attributes (`service.instance.id`, the office).
    pub attributes: Vec<(String, String)>,
}

/// Spans on their way to an OTLP receiver, until [`Exporter::shutdown`].
#[derive(Debug)]
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Start exporting as `export` says. Must run inside the tokio runtime that will carry
    /// the exports (the batch processor's thread hands each batch to it).
    pub fn start(export: &Export) -> Result<Self, Error> {
        let fail = |message: String| Error::Traces {
            endpoint: export.endpoint.clone(),
            message,
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| fail(format!("no async runtime: {e}")))?;
        if !(0.0..=1.0).contains(&export.sampling) {
            return Err(fail(format!(
                "sampling {} is not between 0 and 1",
                export.sampling
            )));
        }
        let inner = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(export.endpoint.clone())
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(export.service.clone())
            .with_attributes([
                KeyValue::new("service.namespace", "timpora"),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .with_attributes(
                export
                    .attributes
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(OnRuntime {
                inner: Arc::new(inner),
                runtime,
            })
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                export.sampling,
            ))))
            .with_resource(resource)
            .build();
        EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!(endpoint = %export.endpoint, service = %export.service, sampling = export.sampling, "exporting traces");
        Ok(Self { provider })
    }

    /// The tracer for the subscriber's OpenTelemetry layer.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("timpora")
    }

    /// The subscriber layer that turns the hub's own spans (`timpora*` targets, INFO and
    /// above, whatever the log filter) into exported spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer())
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_filter(Targets::new().with_target("timpora", LevelFilter::INFO))
    }

    /// Export what is still buffered and stop (from a blocking thread: the export needs the
    /// runtime this is called from).
    pub async fn shutdown(self) {
        EXPORTING.store(false, Ordering::Relaxed);
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "traces not all exported at shutdown");
        }
    }
}

/// The OTLP exporter, each export run on the process's tokio runtime: the SDK's batch
/// processor exports from its own thread, where tonic finds no reactor.
#[derive(Debug)]
struct OnRuntime {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: tokio::runtime::Handle,
}

impl opentelemetry_sdk::trace::SpanExporter for OnRuntime {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let inner = self.inner.clone();
        match self
            .runtime
            .spawn(async move { inner.export(batch).await })
            .await
        {
            Ok(result) => result,
            Err(e) => Err(OTelSdkError::InternalFailure(format!("export task: {e}"))),
        }
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

#[derive(Default)]
struct Out(Option<String>);

impl Injector for Out {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}

/// Whether `traceparent` has the W3C form: `00-` 32 and 16 lowercase hex digits, 2 of flags
/// (the propagator alone takes shorter ids).
fn well_formed(traceparent: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let parts: Vec<&str> = traceparent.split('-').collect();
    matches!(parts.as_slice(), [v, t, s, f] if hex(v, 2) && hex(t, 32) && hex(s, 16) && hex(f, 2))
}

/// The span context a `traceparent` names, when it is well-formed.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    if !well_formed(traceparent) {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&One(traceparent));
    let span = cx.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// The trace id a `traceparent` names (32 hex digits), when it is well-formed.
pub fn trace_id(traceparent: &str) -> Option<String> {
    parse(traceparent).map(|s| s.trace_id().to_string())
}

/// Make `span` continue the trace `traceparent` names (a caller's, or the one in a message's
/// headers). Call before the span is entered.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if let Some(remote) = parse(traceparent) {
        // Without the OpenTelemetry layer there is nothing to continue.
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
}

/// Link `span` to the span `traceparent` names (an alert to each event of its evidence).
pub fn link(span: &tracing::Span, traceparent: &str) {
    if let Some(other) = parse(traceparent) {
        span.add_link(other);
    }
}

/// The `traceparent` that makes another process's span a child of `span`: `None` without the
/// OpenTelemetry layer.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut out = Out::default();
    TraceContextPropagator::new().inject_context(&cx, &mut out);
    out.0
}

/// Whether a `traceparent` asks for its trace to be kept (its sampled flag).
pub fn sampled(traceparent: &str) -> bool {
    parse(traceparent).is_some_and(|s| s.is_sampled())
}

/// The span of one gRPC call to `path` (`/timpora.v1.ImmigrationService/PublishInterview`),
/// continuing the caller's `traceparent` when it sent one. Its `trace_id` field (in every log
/// line of the call) is filled in here when it is known, or by [`record_trace_id`].
pub fn grpc_span(path: &str, traceparent: Option<&str>) -> tracing::Span {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        trace_id = tracing::field::Empty,
    );
    if let Some(tp) = traceparent {
        continue_trace(&span, tp);
    }
    let id = trace_id_of(&span, traceparent);
    if let Some(id) = id {
        span.record("trace_id", id.as_str());
    }
    span
}

/// The trace id `span` is in, or else the one `given` names.
fn trace_id_of(span: &tracing::Span, given: Option<&str>) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        return Some(sc.trace_id().to_string());
    }
    given.and_then(trace_id)
}

/// Name `traceparent`'s trace in the `trace_id` field of the current span (the gRPC call's),
/// for a call whose trace id was made up after the span began.
pub fn record_trace_id(traceparent: &str) {
    if let Some(id) = trace_id(traceparent) {
        tracing::Span::current().record("trace_id", id.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_well_formed_trace_contexts() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse(tp).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        assert!(sampled(tp));
        assert!(!sampled(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        ));
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-NIK7402054107900001aaaaaaaaaaaa-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn without_the_layer_spans_carry_no_context_and_keep_the_given_trace_id() {
        let span = grpc_span(
            "/timpora.v1.ImmigrationService/PublishInterview",
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(traceparent(&span), None);
        assert_eq!(
            trace_id_of(
                &span,
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            )
            .as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(!exporting());
    }
}
