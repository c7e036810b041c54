//! Publishing semantics: duplicates, `PublishStream` ordering, one rejection per bad event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use futures::StreamExt;
use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::event_bus_service_client::EventBusServiceClient;
use timpora_e2e::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_e2e::v1::*;

#[tokio::test]
async fn the_same_id_twice_is_stored_once_and_answered_as_duplicate() {
    let hub = Hub::start().await.unwrap();
    let mut c = ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let req = RecordPassportInterviewRequest {
        meta: Some(meta("kdi-dup-1")),
        interview: Some(interview(1)),
    };
    let first = c
        .record_passport_interview(req.clone())
        .await
        .unwrap()
        .into_inner()
        .ack
        .unwrap();
    let second = c
        .record_passport_interview(req)
        .await
        .unwrap()
        .into_inner()
        .ack
        .unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(
        second.sequence, first.sequence,
        "the duplicate names the original"
    );
    assert_eq!(hub.stored().await.unwrap().len(), 1);

    // The same id from another source is a different event.
    let mut other = ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-palu").await.unwrap());
    let third = other
        .record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(meta("kdi-dup-1")),
            interview: Some(interview(2)),
        })
        .await
        .unwrap()
        .into_inner()
        .ack
        .unwrap();
    assert!(!third.duplicate);
    assert_eq!(hub.stored().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_retry_after_the_duplicate_window_is_still_a_duplicate_even_at_another_gateway() {
    // JetStream forgets ids after one second here; the hub must not.
    let topology = timpora_bus::Topology {
        duplicate_window_secs: 1,
        ..Default::default()
    };
    let hub = Hub::builder()
        .topology(topology.clone())
        .start()
        .await
        .unwrap();
    let req = RecordPassportInterviewRequest {
        meta: Some(meta("kdi-late-retry")),
        interview: Some(interview(1)),
    };
    async fn send(hub: &Hub, req: &RecordPassportInterviewRequest) -> PublishAck {
        let mut c =
            ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
        c.record_passport_interview(req.clone())
            .await
            .unwrap()
            .into_inner()
            .ack
            .unwrap()
    }
    let first = send(&hub, &req).await;
    assert!(!first.duplicate);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let late = send(&hub, &req).await;
    assert!(
        late.duplicate,
        "a retry after the window was stored again: {late:?}"
    );
    assert_eq!(
        late.sequence, first.sequence,
        "the duplicate names the original"
    );
    // A gateway started later on the same bus knows it too (it reads the stream at start).
    let other = Hub::builder()
        .nats(hub.nats_config.clone())
        .topology(topology)
        .start()
        .await
        .unwrap();
    let again = send(&other, &req).await;
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.sequence, first.sequence);
    assert_eq!(hub.stored().await.unwrap().len(), 1, "stored once");
}

#[tokio::test]
async fn publish_stream_acknowledges_in_order_and_rejects_bad_events_alone() {
    let hub = Hub::start().await.unwrap();
    let mut c = EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let mut events = Vec::new();
    for i in 0..200u32 {
        let mut ev = interview_event(&format!("s-{i}"), i + 1);
        if i == 50 {
            ev.region = "bogus".into();
        }
        if i == 120 {
            // Another agency's type: refused for this caller.
            ev.payload = Some(event::Payload::CpmiStatus(CpmiStatus::default()));
        }
        events.push(PublishStreamRequest { event: Some(ev) });
    }
    // A repeat of an earlier id inside the same stream.
    events.push(PublishStreamRequest {
        event: Some(interview_event("s-3", 4)),
    });
    let n = events.len();
    let mut responses = c
        .publish_stream(futures::stream::iter(events))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = responses.next().await {
        got.push(r.unwrap());
    }
    assert_eq!(got.len(), n);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.index, i as u64, "responses come in request order");
    }
    let rejection = |i: usize| match &got[i].result {
        Some(publish_stream_response::Result::Rejection(r)) => r.clone(),
        other => panic!("expected a rejection at {i}, got {other:?}"),
    };
    let bad = rejection(50);
    assert_eq!(bad.code, "InvalidArgument");
    assert_eq!(bad.field_violations[0].field, "event.region");
    assert_eq!(rejection(120).code, "PermissionDenied");
    let dup = match &got[n - 1].result {
        Some(publish_stream_response::Result::Ack(a)) => a.clone(),
        other => panic!("{other:?}"),
    };
    assert!(dup.duplicate);
    let acked: Vec<u64> = got
        .iter()
        .filter_map(|r| match &r.result {
            Some(publish_stream_response::Result::Ack(a)) if !a.duplicate => Some(a.sequence),
            _ => None,
        })
        .collect();
    assert_eq!(acked.len(), 198);
    assert_eq!(
        acked,
        (1..=198).collect::<Vec<_>>(),
        "stored in order, nothing skipped"
    );
    assert_eq!(hub.stored().await.unwrap().len(), 198);
}

#[tokio::test]
async fn trace_context_travels_from_the_call_into_the_nats_headers() {
    let hub = Hub::start().await.unwrap();
    let mut c = EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(PublishRequest {
        event: Some(interview_event("tp-1", 1)),
    });
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let ack = c.publish(req).await.unwrap().into_inner().ack.unwrap();
    c.publish(PublishRequest {
        event: Some(interview_event("tp-2", 2)),
    })
    .await
    .unwrap();

    let stream = hub
        .bus
        .jetstream()
        .get_stream(&hub.bus.topology().events_stream)
        .await
        .unwrap();
    let raw = stream.get_raw_message(ack.sequence).await.unwrap();
    let header = raw.headers.get("traceparent").unwrap().as_str().to_owned();
    assert!(header.starts_with(&format!("00-{trace_id}-")), "{header}");
    assert!(
        !header.contains("00f067aa0ba902b7"),
        "the hub's own span, not the caller's"
    );
    assert_eq!(
        raw.headers.get("Nats-Msg-Id").unwrap().as_str(),
        "imigrasi/kanim-kendari/tp-1"
    );
    assert_eq!(
        raw.headers.get("Timpora-Classification").unwrap().as_str(),
        "CLASSIFICATION_OPEN_TO_MEMBERS"
    );
    let stored = hub.stored().await.unwrap();
    assert_eq!(
        stored[0].1.traceparent, header,
        "the envelope carries the same context"
    );
    // Without incoming context the hub starts a new trace.
    assert!(!stored[1].1.traceparent.contains(trace_id));
    assert_eq!(stored[1].1.traceparent.len(), 55);
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let hub = Hub::start().await.unwrap();
    let mut reflection = ServerReflectionClient::new(hub.channel().await.unwrap());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let first = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("unexpected reflection answer {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for s in [
        "timpora.v1.ImigrasiService",
        "timpora.v1.DesaService",
        "timpora.v1.EventBusService",
    ] {
        assert!(names.contains(&s.to_owned()), "{s} in {names:?}");
    }
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(hub.channel().await.unwrap());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "timpora.v1.ImigrasiService".into(),
            })
            .await;
        if matches!(&r, Ok(r) if r.get_ref().status == 1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not serving: {r:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_identity_cannot_publish_past_its_rate_and_is_told_when_to_retry() {
    use tonic_types::StatusExt;
    let hub = Hub::builder()
        .configure(|c| {
            c.limits.events_per_second = 4;
            c.limits.burst = 5;
        })
        .start()
        .await
        .unwrap();
    let mut c = EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let publish = |id: String, n: u32| PublishRequest {
        event: Some(interview_event(&id, n)),
    };
    for i in 0..5 {
        c.publish(publish(format!("r-{i}"), i + 1)).await.unwrap();
    }
    let refused = c.publish(publish("r-5".into(), 6)).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    let retry = refused
        .get_details_retry_info()
        .unwrap()
        .retry_delay
        .unwrap();
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(250),
        "{retry:?}"
    );
    assert_eq!(
        hub.stored().await.unwrap().len(),
        5,
        "nothing stored past the rate"
    );
    // Another identity is not held back by this one.
    let mut other = EventBusServiceClient::new(hub.as_agency("imigrasi/tpi-cgk").await.unwrap());
    other.publish(publish("o-1".into(), 7)).await.unwrap();
    // After the delay it was told, the same event goes through.
    tokio::time::sleep(retry + Duration::from_millis(20)).await;
    c.publish(publish("r-5".into(), 6)).await.unwrap();

    // A village's reads of its receipts take from the same allowance.
    let mut village = desa_service_client::DesaServiceClient::new(
        hub.as_agency("desa/74.02.05.2001").await.unwrap(),
    );
    let list = || ListCommunityReportsRequest { page_size: 0 };
    for _ in 0..5 {
        village.list_community_reports(list()).await.unwrap();
    }
    let refused = village.list_community_reports(list()).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.get_details_retry_info().is_some());
}
