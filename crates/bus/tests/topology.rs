//! The topology against a real nats-server: created or updated idempotently, and a stream with
//! three replicas on a three-node cluster keeps acknowledging with one node down.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::{Duration, Instant, SystemTime};

use timpora_bus::{Bus, Topology};
use timpora_natsd::{Cluster, NatsServer};
use timpora_proto::v1::event::Payload;
use timpora_proto::v1::{Event, Prosecution};

fn event(id: &str) -> Event {
    Event {
        id: id.into(),
        source: "kejaksaan/kejati-sultra".into(),
        r#type: "timpora.kejaksaan.prosecution.v1".into(),
        time: Some(SystemTime::now().into()),
        region: "74.71".into(),
        payload: Some(Payload::Prosecution(Prosecution {
            case_number: "PDM-1".into(),
            status: 2,
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn ensure_topology_is_idempotent_and_updates_settings() {
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), "t", Topology::default())
        .await
        .unwrap();
    bus.ensure_topology().await.unwrap();
    bus.ensure_topology().await.unwrap();
    let ack = bus
        .publish(&event("e-1"))
        .await
        .unwrap()
        .ack()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 1);

    let changed = Topology {
        duplicate_window_secs: 120,
        ..Topology::default()
    };
    let bus2 = Bus::connect(&nats.url(), "t2", changed).await.unwrap();
    bus2.ensure_topology().await.unwrap();
    let status = bus2.status().await.unwrap();
    let names: Vec<&str> = status.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "KV_TIMPORA_CORRELATORS",
            "KV_TIMPORA_HOLDS",
            "KV_TIMPORA_RULES",
            "KV_TIMPORA_TLOG",
            "OBJ_TIMPORA_CHECKPOINTS",
            "OBJ_TIMPORA_TLOG_TILES",
            "TIMPORA_ACCESS",
            "TIMPORA_ALERTS",
            "TIMPORA_EVENTS",
            "TIMPORA_HOLDS",
            "TIMPORA_TLOG"
        ]
    );
    let events = status
        .streams
        .iter()
        .find(|s| s.name == "TIMPORA_EVENTS")
        .unwrap();
    assert_eq!(events.duplicate_window_secs, 120);
    assert_eq!(events.messages, 1, "updating kept the events");
    // The stored record refuses deletion.
    let stream = bus2.jetstream().get_stream("TIMPORA_EVENTS").await.unwrap();
    assert!(stream.delete_message(1).await.is_err());
    // So does the record of who read what.
    let access = bus2.jetstream().get_stream("TIMPORA_ACCESS").await.unwrap();
    // And so do the transparency log's checkpoints.
    let tlog = bus2.jetstream().get_stream("TIMPORA_TLOG").await.unwrap();
    let c = &tlog.cached_info().config;
    assert!(c.deny_delete && c.deny_purge, "{c:?}");
    assert!(access.cached_info().config.deny_delete && access.cached_info().config.deny_purge);
}

#[tokio::test]
async fn three_replicas_survive_one_node_down() {
    let mut cluster = Cluster::start().unwrap();
    let topology = Topology {
        replicas: 3,
        ..Topology::default()
    };
    let bus = Bus::connect(&cluster.urls(), "t", topology).await.unwrap();
    // The cluster elects a JetStream leader first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = bus.ensure_topology().await {
        assert!(Instant::now() < deadline, "no jetstream cluster: {e}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = bus.status().await.unwrap();
    assert!(status.streams.iter().all(|s| s.replicas == 3));
    bus.publish(&event("c-1"))
        .await
        .unwrap()
        .ack()
        .await
        .unwrap();

    // Stop one node: the other two still form a quorum and acknowledge.
    cluster.nodes[2].stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ack = loop {
        match bus.publish(&event("c-2")).await {
            Ok(pending) => match pending.ack().await {
                Ok(ack) => break ack,
                Err(e) => assert!(Instant::now() < deadline, "no ack with one node down: {e}"),
            },
            Err(e) => assert!(
                Instant::now() < deadline,
                "no publish with one node down: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ack.sequence, 2);
    assert!(!ack.duplicate);
}

#[tokio::test]
async fn an_alert_is_stored_once_however_late_it_is_repeated() {
    let nats = NatsServer::start().unwrap();
    // A duplicate window of one second: the repeat below comes after it has passed.
    let topology = Topology {
        duplicate_window_secs: 1,
        ..Topology::default()
    };
    let bus = Bus::connect(&nats.url(), "t", topology).await.unwrap();
    bus.ensure_topology().await.unwrap();
    let alert = timpora_proto::v1::Alert {
        id: "alr_0123456789abcdef0123456789abcdef".into(),
        rule_id: "R2".into(),
        rule_version: "v".into(),
        ..Default::default()
    };
    assert_eq!(
        bus.publish_alert(&alert).await.unwrap(),
        timpora_bus::AlertOutcome::Stored(1)
    );
    assert_eq!(
        bus.publish_alert(&alert).await.unwrap(),
        timpora_bus::AlertOutcome::Duplicate
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        bus.publish_alert(&alert).await.unwrap(),
        timpora_bus::AlertOutcome::Duplicate
    );
    let other = timpora_proto::v1::Alert {
        id: "alr_ffffffffffffffffffffffffffffffff".into(),
        ..alert
    };
    assert_eq!(
        bus.publish_alert(&other).await.unwrap(),
        timpora_bus::AlertOutcome::Stored(2)
    );
    // Clock ticks share their dedup key per second.
    let now = SystemTime::now();
    let first = bus.record_tick(now).await.unwrap().ack().await.unwrap();
    let again = bus.record_tick(now).await.unwrap().ack().await.unwrap();
    assert!(!first.duplicate && again.duplicate);
}

#[tokio::test]
async fn errors_say_whether_a_retry_can_help() {
    // Nobody listens: unavailable, worth retrying.
    let port = timpora_natsd::free_port().unwrap();
    let e = Bus::connect(
        &format!("nats://127.0.0.1:{port}"),
        "t",
        Topology::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), timpora_bus::ErrorKind::Unavailable);
    assert!(e.is_transient());
    // A stream that is gone: missing, not transient.
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), "t", Topology::default())
        .await
        .unwrap();
    bus.ensure_topology().await.unwrap();
    bus.jetstream()
        .delete_stream(&bus.topology().events_stream)
        .await
        .unwrap();
    let e = bus.events_last_sequence().await.unwrap_err();
    assert_eq!(e.kind(), timpora_bus::ErrorKind::Missing, "{e}");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn status_tells_the_agencies_events_from_the_hubs_clock_ticks() {
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), "t", Topology::default())
        .await
        .unwrap();
    bus.ensure_topology().await.unwrap();
    bus.publish(&event("e-1"))
        .await
        .unwrap()
        .ack()
        .await
        .unwrap();
    let now = SystemTime::now();
    for secs in 0..3 {
        bus.record_tick(now + Duration::from_secs(secs))
            .await
            .unwrap()
            .ack()
            .await
            .unwrap();
    }
    let status = bus.status().await.unwrap();
    let events = status
        .streams
        .iter()
        .find(|s| s.name == "TIMPORA_EVENTS")
        .unwrap();
    assert_eq!(events.messages, 4);
    assert_eq!(
        (events.agency_events, events.clock_ticks),
        (Some(1), Some(3))
    );
    let alerts = status
        .streams
        .iter()
        .find(|s| s.name == "TIMPORA_ALERTS")
        .unwrap();
    assert_eq!((alerts.agency_events, alerts.clock_ticks), (None, None));
}
