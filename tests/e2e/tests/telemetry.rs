//! What a process tells the operator, over real sockets: the gateway's metrics count every
//! event by the unit that sent it and how it ended (stored, duplicate, refused and why), with
//! publish and acknowledgement latencies, and never carry an identifier from an event; readiness
//! goes false while NATS is down and true when it is back, while liveness stays true.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::event_bus_service_client::EventBusServiceClient;
use timpora_e2e::v1::*;

/// GET `path` from the telemetry endpoint: (status code, body).
async fn get(hub: &Hub, path: &str) -> (u16, String) {
    hub.telemetry_get(path).await.unwrap()
}

/// Wait until `/readyz` answers `code`; its body.
async fn until_ready_is(hub: &Hub, code: u16) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (got, body) = get(hub, "/readyz").await;
        if got == code {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {got}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_outcome_by_unit_and_readiness_follows_nats() {
    let mut hub = Hub::builder().telemetry().start().await.unwrap();
    let body = until_ready_is(&hub, 200).await;
    assert!(body.contains("gateway: ready"), "{body}");

    let mut kdi =
        EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let publish = |ev: Event| PublishRequest { event: Some(ev) };
    kdi.publish(publish(interview_event("t-1", 1)))
        .await
        .unwrap();
    let again = kdi
        .publish(publish(interview_event("t-1", 1)))
        .await
        .unwrap();
    assert!(again.into_inner().ack.unwrap().duplicate);
    let mut no_region = interview_event("t-2", 2);
    no_region.region = String::new();
    kdi.publish(publish(no_region)).await.unwrap_err();
    // A village may not record passport interviews.
    let mut desa = EventBusServiceClient::new(hub.as_agency("desa/74.02.05.2001").await.unwrap());
    let denied = desa
        .publish(publish(interview_event("t-3", 3)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");

    let (code, text) = get(&hub, "/metrics").await;
    assert_eq!(code, 200, "{text}");
    let unit = r#"agency="imigrasi",unit="kanim-kendari""#;
    for line in [
        format!(r#"timpora_gateway_events_total{{{unit},outcome="stored",field=""}} 1"#),
        format!(r#"timpora_gateway_events_total{{{unit},outcome="duplicate",field=""}} 1"#),
        format!(
            r#"timpora_gateway_events_total{{{unit},outcome="invalid",field="event.region"}} 1"#
        ),
        r#"timpora_gateway_events_total{agency="desa",unit="74.02.05.2001",outcome="denied",field=""} 1"#.to_owned(),
        r#"timpora_gateway_publish_seconds_count{agency="imigrasi"} 2"#.to_owned(),
        "timpora_gateway_jetstream_ack_seconds_count 1".to_owned(),
    ] {
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    // Units, outcomes and field paths only: nothing the events carried about people.
    for n in 1..=3 {
        for raw in [nik(n), passport(n), phone(n)] {
            assert!(!text.contains(&raw), "{raw} in the metrics");
        }
    }
    // Prometheus conventions: base units, counters end in _total.
    assert!(
        text.contains("# UNIT timpora_gateway_publish_seconds seconds"),
        "{text}"
    );

    // NATS down: not ready, and says why; alive all the while. Back: ready again.
    hub.nats().stop();
    let body = until_ready_is(&hub, 503).await;
    assert!(
        body.contains("gateway: not ready: nats unreachable"),
        "{body}"
    );
    assert_eq!(get(&hub, "/healthz").await.0, 200);
    hub.nats().restart().unwrap();
    let body = until_ready_is(&hub, 200).await;
    assert!(body.contains("gateway: ready"), "{body}");
}
