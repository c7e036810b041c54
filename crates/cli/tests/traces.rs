//! Traces from `timpora up` to an OTLP receiver run here (a tonic `TraceService` from
//! `opentelemetry-proto` on 127.0.0.1): one trace follows an event from the caller's
//! `traceparent` through the gateway's validation and JetStream publish into the correlator's
//! evaluation and the sealer, the alert links to the span of each event of its evidence, and no
//! raw identifier or token is in any span. JSON log lines of a call name its trace.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use timpora_testkit::otlp::{Span, SpanKind, attr, receiver};

mod common;
use common::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Publish one line through the binary as `identity`, in the caller's trace `traceparent`.
fn publish_traced(dir: &Path, identity: &str, line: &str, traceparent: &str) -> bool {
    let file = dir.join("line.ndjson");
    std::fs::write(&file, line).unwrap();
    run(timpora(dir)
        .arg("publish")
        .arg(&file)
        .args(["--identity", identity])
        .env("TRACEPARENT", traceparent))
    .status
    .success()
}

fn deferred(id: &str) -> String {
    let now = rfc3339_now();
    format!(
        r#"{{"event":{{"id":"{id}","time":"{now}","region":"74.02.05.2001","passport_interview":{{"applicant":{{"nik":"7402054107900001","name":"Wa Ode Synthetic"}},"declared_purpose":"TRAVEL_PURPOSE_TOURISM","destination_country":"KH","outcome":"INTERVIEW_OUTCOME_DEFERRED"}}}}}}"#
    )
}

#[test]
fn one_trace_follows_an_event_from_the_call_to_the_alert_and_the_sealer() {
    let (received, otlp) = receiver().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (gateway, nats, console) = hub_ports();
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let mut hub = Killed(
        timpora(dir.path())
            .args(["--log-format", "json", "up"])
            .args(["--listen", &format!("127.0.0.1:{gateway}")])
            .args(["--nats-port", &nats.to_string()])
            .args(["--console-listen", &format!("127.0.0.1:{console}")])
            .env(
                "TIMPORA_TELEMETRY__TRACES__ENDPOINT",
                format!("http://127.0.0.1:{otlp}"),
            )
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_port(gateway, "the hub");

    let (first_trace, first_caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let (trace, caller) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    assert!(publish_traced(
        dir.path(),
        "imigrasi/kanim-kendari",
        &deferred("tr-1"),
        &format!("00-{first_trace}-{first_caller}-01"),
    ));
    assert!(publish_traced(
        dir.path(),
        "imigrasi/kanim-palu",
        &deferred("tr-2"),
        &format!("00-{trace}-{caller}-01"),
    ));
    // A refused event: its log line names the caller's trace.
    let refused_trace = "5f3c1d2e4b6a79801122334455667788";
    let bad = deferred("tr-3").replace("7402054107900001", "74020541079");
    assert!(!publish_traced(
        dir.path(),
        "imigrasi/kanim-kendari",
        &bad,
        &format!("00-{refused_trace}-1111111111111111-01"),
    ));
    let alerts = wait_alerts(dir.path(), 1);
    let alert_id = alerts[0]["alert"]["id"].as_str().unwrap().to_owned();

    // Wait for the alert's span (exported once its links are in) and the sealer's of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let spans = loop {
        let spans = received.spans();
        let alert = spans.iter().find(|(_, s)| {
            s.name == "correlator.alert" && attr(s, "alert.id").as_deref() == Some(&alert_id)
        });
        let sealed = alert.is_some_and(|(_, a)| {
            spans
                .iter()
                .any(|(_, s)| s.name == "sealer.append" && s.parent_span_id == a.span_id)
        });
        if sealed {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "the alert's spans never came: {:?}",
            spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let by_id: HashMap<String, &Span> = spans.iter().map(|(_, s)| (hex(&s.span_id), s)).collect();
    assert!(spans.iter().all(|(service, _)| service == "timpora"));
    let in_trace = |t: &str, name: &str| -> Vec<&Span> {
        spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| hex(&s.trace_id) == t && s.name == name)
            .collect()
    };

    // The gateway's call continues the caller's span; validation and publish are its children.
    let calls = in_trace(trace, "timpora.v1.EventBusService/PublishStream");
    assert_eq!(calls.len(), 1, "{spans:#?}");
    let call = calls[0];
    assert_eq!(hex(&call.parent_span_id), caller);
    assert_eq!(call.kind, SpanKind::Server as i32);
    assert_eq!(attr(call, "rpc.system").as_deref(), Some("grpc"));
    let validate = in_trace(trace, "gateway.validate");
    assert_eq!(validate.len(), 1);
    assert_eq!(validate[0].parent_span_id, call.span_id);
    let publish = in_trace(trace, "gateway.publish");
    assert_eq!(publish.len(), 1);
    assert_eq!(publish[0].parent_span_id, call.span_id);
    assert_eq!(publish[0].kind, SpanKind::Producer as i32);
    // Over the NATS headers: the correlator's evaluation and the sealer's append.
    let evaluate = in_trace(trace, "correlator.evaluate");
    assert_eq!(evaluate.len(), 1, "{spans:#?}");
    assert_eq!(evaluate[0].parent_span_id, publish[0].span_id);
    assert_eq!(evaluate[0].kind, SpanKind::Consumer as i32);
    let sealed: Vec<_> = in_trace(trace, "sealer.append")
        .into_iter()
        .filter(|s| s.parent_span_id == publish[0].span_id)
        .collect();
    assert_eq!(sealed.len(), 1);
    assert_eq!(attr(sealed[0], "tlog.log").as_deref(), Some("events"));
    // The alert: a child of the evaluation that completed it, linked to each event's publish.
    let alert = in_trace(trace, "correlator.alert");
    assert_eq!(alert.len(), 1);
    let alert = alert[0];
    assert_eq!(alert.parent_span_id, evaluate[0].span_id);
    let first_publish = in_trace(first_trace, "gateway.publish");
    assert_eq!(first_publish.len(), 1);
    let mut links: Vec<(String, String)> = alert
        .links
        .iter()
        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
        .collect();
    links.sort();
    let mut expected = vec![
        (first_trace.to_owned(), hex(&first_publish[0].span_id)),
        (trace.to_owned(), hex(&publish[0].span_id)),
    ];
    expected.sort();
    assert_eq!(links, expected);
    // The stored alert carries the alert's span into the sealer of the alerts log.
    assert!(spans.iter().any(|(_, s)| s.name == "sealer.append"
        && s.parent_span_id == alert.span_id
        && attr(s, "tlog.log").as_deref() == Some("alerts")));
    assert!(by_id.contains_key(&hex(&alert.span_id)));

    // No raw identifier, no token, anywhere in what was exported.
    let everything = received.everything();
    for secret in [
        "7402054107900001",
        "Wa Ode Synthetic",
        "psn_",
        "nam_",
        "doc_",
        "rec_",
    ] {
        assert!(!everything.contains(secret), "{secret} was exported");
    }

    // A JSON log line of a call names the call's trace.
    let text = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    let rejected: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["fields"]["message"] == "event rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{text}");
    assert_eq!(rejected[0]["span"]["trace_id"], refused_trace, "{text}");
    interrupt(&mut hub, "the hub");
}
