//! W3C trace context: continue the caller's trace (`traceparent` metadata) with a new span id,
//! or start a new trace; the result travels in the event and its NATS headers. With traces
//! exported, the span id is the call's own span's (see `timpora_telemetry::traces`).

use crate::pseudo::push_hex;

/// The span of each gRPC call the gateway serves (none for health checks, which an
/// orchestrator makes every few seconds).
pub fn call_span(req: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let path = req.uri().path();
    if path.starts_with("/grpc.health.") {
        return tracing::Span::none();
    }
    let caller = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    timpora_telemetry::traces::grpc_span(path, caller)
}

/// The traceparent for work done on behalf of `req`: the call's span when traces are
/// exported; else the caller's trace with a new span id, or a new trace (named in the call's
/// log lines from here on).
pub fn traceparent<T>(req: &tonic::Request<T>) -> String {
    if let Some(tp) = timpora_telemetry::traces::traceparent(&tracing::Span::current()) {
        return tp;
    }
    let tp = made_up(req);
    timpora_telemetry::traces::record_trace_id(&tp);
    tp
}

fn made_up<T>(req: &tonic::Request<T>) -> String {
    let incoming = req
        .metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(timpora_telemetry::traces::parse)
        .map(|caller| {
            (
                caller.trace_id().to_string(),
                format!("{:02x}", caller.trace_flags().to_u8()),
            )
        });
    let mut random = [0u8; 24];
    if getrandom::fill(&mut random).is_err() {
        // Without randomness the trace is still valid, only not unique.
        random
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as u8 + 1);
    }
    let (trace, flags) = incoming.unwrap_or_else(|| {
        let mut t = String::with_capacity(32);
        push_hex(&mut t, &random[..16]);
        (t, "01".to_owned())
    });
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    out.push_str(&trace);
    out.push('-');
    push_hex(&mut out, &random[16..]);
    out.push('-');
    out.push_str(&flags);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_trace_and_starts_one_otherwise() {
        let mut req = tonic::Request::new(());
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        req.metadata_mut().insert(
            "traceparent",
            format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap(),
        );
        let tp = traceparent(&req);
        assert!(tp.starts_with(&format!("00-{trace}-")), "{tp}");
        assert!(!tp.contains("00f067aa0ba902b7"));
        let fresh = traceparent(&tonic::Request::new(()));
        assert_eq!(fresh.len(), 55, "{fresh}");
        assert_ne!(fresh, traceparent(&tonic::Request::new(())));
    }
}
