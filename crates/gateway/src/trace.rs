//! W3C trace context: continue the caller's trace (`traceparent` metadata) with a new span id,
//! or start a new trace; the result travels in the event and its NATS headers.

use crate::pseudo::push_hex;

fn valid_trace_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s != "0".repeat(32)
}

/// The traceparent for work done on behalf of `req`.
pub fn traceparent<T>(req: &tonic::Request<T>) -> String {
    let incoming = req
        .metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let parts: Vec<&str> = v.split('-').collect();
            match parts.as_slice() {
                ["00", trace, span, flags]
                    if valid_trace_id(trace) && span.len() == 16 && flags.len() == 2 =>
                {
                    Some(((*trace).to_owned(), (*flags).to_owned()))
                }
                _ => None,
            }
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
