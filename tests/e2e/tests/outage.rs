//! NATS stopped mid-run: calls fail `UNAVAILABLE` (never a false acknowledgement); after restart
//! the gateway recovers by itself, and every acknowledged event is in the stream exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::HashMap;
use std::time::Duration;

use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::event_bus_service_client::EventBusServiceClient;
use timpora_e2e::v1::*;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn health_of(hub: &Hub, service: &str) -> ServingStatus {
    let mut h = HealthClient::new(hub.channel().await.unwrap());
    let r = h
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(r.status).unwrap()
}

/// Poll health until it reports `want` (the gateway checks the NATS connection every 250 ms).
async fn wait_health(hub: &Hub, want: ServingStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = health_of(hub, "timpora.v1.EventBusService").await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health stayed {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn nats_outage_is_unavailable_and_acknowledged_events_survive_exactly_once() {
    let mut hub = Hub::start().await.unwrap();
    let mut c = EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let mut acked: Vec<String> = Vec::new();
    let mut unavailable = 0;
    let mut i = 0u32;
    let publish = async |c: &mut EventBusServiceClient<_>, i: u32| {
        c.publish(PublishRequest {
            event: Some(interview_event(&format!("o-{i}"), i + 1)),
        })
        .await
    };
    wait_health(&hub, ServingStatus::Serving).await;
    for _ in 0..20 {
        publish(&mut c, i).await.unwrap();
        acked.push(format!("o-{i}"));
        i += 1;
    }
    hub.nats().stop();
    // While NATS is down every call fails UNAVAILABLE.
    for _ in 0..5 {
        let err = publish(&mut c, i).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        unavailable += 1;
        i += 1;
    }
    wait_health(&hub, ServingStatus::NotServing).await;
    hub.nats().restart().unwrap();
    // The gateway reconnects by itself; publish until it accepts again, retrying refused ids.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut next = i;
    while acked.len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateway did not recover"
        );
        match publish(&mut c, next).await {
            Ok(r) => {
                let ack = r.into_inner().ack.unwrap();
                if !ack.duplicate {
                    acked.push(format!("o-{next}"));
                }
                next += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(unavailable > 0);
    wait_health(&hub, ServingStatus::Serving).await;
    let stored = hub.stored().await.unwrap();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, ev) in &stored {
        *counts.entry(ev.id.as_str()).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            counts.get(id.as_str()),
            Some(&1),
            "acknowledged {id} stored exactly once"
        );
    }
    assert!(counts.values().all(|&n| n == 1), "no event stored twice");
}

#[tokio::test]
async fn alert_watchers_are_told_when_nats_is_gone_and_can_watch_again_after() {
    use timpora_e2e::v1::alert_service_client::AlertServiceClient;
    let mut hub = Hub::start().await.unwrap();
    let mut alerts = AlertServiceClient::new(hub.as_agency("ops/timpora-kendari").await.unwrap());
    wait_health(&hub, ServingStatus::Serving).await;
    let mut watch = alerts
        .watch_alerts(WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    hub.nats().stop();
    // The open watch ends with UNAVAILABLE instead of going quiet over a stale list.
    let ended = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the watch was not told");
    assert_eq!(ended.unwrap_err().code(), Code::Unavailable);
    // A new watch is refused while NATS is away.
    let refused = alerts
        .watch_alerts(WatchAlertsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.message().contains("not current"), "{refused:?}");
    hub.nats().restart().unwrap();
    wait_health(&hub, ServingStatus::Serving).await;
    let mut again = alerts
        .watch_alerts(WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Live again: nothing is wrong with the stream (no alerts yet, so it waits).
    assert!(
        tokio::time::timeout(Duration::from_millis(500), again.message())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_missing_stream_is_a_precondition_not_an_outage() {
    // The gateway's own re-creation of missing streams is off here: this is about the answer.
    let hub = Hub::builder()
        .configure(|c| c.topology_check_secs = 0)
        .start()
        .await
        .unwrap();
    let mut c = EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let events = hub.bus.topology().events_stream.clone();
    hub.bus.jetstream().delete_stream(&events).await.unwrap();
    // Retrying would not help: the hub is misconfigured, and says what to do.
    let err = c
        .publish(PublishRequest {
            event: Some(interview_event("m-1", 1)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("timpora bus init"), "{err:?}");
    // Provisioned again, the same event is stored.
    hub.bus.ensure_topology().await.unwrap();
    let ack = c
        .publish(PublishRequest {
            event: Some(interview_event("m-1", 1)),
        })
        .await
        .unwrap()
        .into_inner()
        .ack
        .unwrap();
    assert!(!ack.duplicate);
}

#[tokio::test]
async fn a_missing_stream_is_re_created_and_health_says_when_it_cannot_be() {
    use std::time::Instant;
    let hub = Hub::builder()
        .configure(|c| c.topology_check_secs = 1)
        .start()
        .await
        .unwrap();
    wait_health(&hub, ServingStatus::Serving).await;
    let topology = hub.bus.topology().clone();
    // The alerts stream deleted: the gateway puts it back by itself and keeps serving.
    hub.bus
        .jetstream()
        .delete_stream(&topology.alerts_stream)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while hub
        .bus
        .jetstream()
        .get_stream(&topology.alerts_stream)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the alerts stream was not re-created"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        health_of(&hub, "timpora.v1.AlertService").await,
        ServingStatus::Serving
    );
    // The events stream deleted and its subjects taken by another stream: it cannot be
    // re-created, and health says so instead of SERVING.
    hub.bus
        .jetstream()
        .delete_stream(&topology.events_stream)
        .await
        .unwrap();
    hub.bus
        .jetstream()
        .create_stream(async_nats::jetstream::stream::Config {
            name: "SQUATTER".into(),
            subjects: vec![format!("{}.>", topology.subject_prefix)],
            ..Default::default()
        })
        .await
        .unwrap();
    wait_health(&hub, ServingStatus::NotServing).await;
    assert_eq!(health_of(&hub, "").await, ServingStatus::NotServing);
    // Freed again: re-created, serving.
    hub.bus.jetstream().delete_stream("SQUATTER").await.unwrap();
    wait_health(&hub, ServingStatus::Serving).await;
    assert!(
        hub.bus
            .jetstream()
            .get_stream(&topology.events_stream)
            .await
            .is_ok()
    );
}
