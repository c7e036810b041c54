//! The gateway's `AuditService` over real sockets and a real JetStream: a replay returns the
//! records exactly as stored, in stream order, with each filter; only auditors may replay; every
//! call — refused ones too — is in the access stream before any record is returned, and each
//! replay is closed there with how many records it returned.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use prost::Message;
use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::audit_service_client::AuditServiceClient;
use timpora_e2e::v1::*;
use tonic::Code;

type Client = AuditServiceClient<timpora_e2e::Authed>;

async fn replay(c: &mut Client, r: ReplayRequest) -> Result<Vec<StoredRecord>, tonic::Status> {
    let mut s = c.replay(r).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.push(m.record.unwrap());
    }
    Ok(out)
}

fn events(stream: AuditStream) -> ReplayRequest {
    ReplayRequest {
        stream: stream.into(),
        ..Default::default()
    }
}

fn sequences(records: &[StoredRecord]) -> Vec<u64> {
    records.iter().map(|r| r.sequence).collect()
}

#[tokio::test]
async fn a_replay_returns_the_records_as_stored_with_each_filter_and_every_call_is_recorded() {
    let hub = Hub::start().await.unwrap();
    village_warning_then_interview(&hub, 1).await.unwrap();
    victim_repatriated_then_interview(&hub, 2).await.unwrap();
    let stored = hub.stored().await.unwrap();
    assert_eq!(stored.len(), 4);
    let mut audit = AuditServiceClient::new(hub.as_agency("audit/inspektorat").await.unwrap());

    // Everything, exactly as stored: sequence, subject, headers, payload byte for byte.
    let all = replay(&mut audit, events(AuditStream::Events))
        .await
        .unwrap();
    assert_eq!(sequences(&all), [1, 2, 3, 4]);
    for (r, (seq, ev)) in all.iter().zip(&stored) {
        assert_eq!(r.sequence, *seq);
        assert_eq!(r.stream, "TIMPORA_EVENTS");
        assert_eq!(Event::decode(r.payload.as_slice()).unwrap(), *ev);
        assert!(r.subject.starts_with("timpora.events."), "{}", r.subject);
        let msg_id = r.headers.iter().find(|h| h.name == "Nats-Msg-Id").unwrap();
        assert_eq!(msg_id.value, format!("{}/{}", ev.source, ev.id));
        let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
        assert!(names.is_sorted(), "{names:?}");
        assert!(r.stored.unwrap().seconds > 0);
    }
    let raw = hub.stored_bytes().await.unwrap();
    for r in &all {
        let found = raw
            .windows(r.payload.len())
            .any(|w| w == r.payload.as_slice());
        assert!(
            found,
            "the payload of {} is not byte for byte what is stored",
            r.sequence
        );
    }

    let with = |f: fn(&mut ReplayRequest)| {
        let mut r = events(AuditStream::Events);
        f(&mut r);
        r
    };
    // Sequence range.
    let got = replay(
        &mut audit,
        with(|r| {
            r.from_sequence = 2;
            r.to_sequence = 3;
        }),
    )
    .await
    .unwrap();
    assert_eq!(sequences(&got), [2, 3]);
    // Agency, type, region.
    let got = replay(&mut audit, with(|r| r.agencies = vec!["desa".into()]))
        .await
        .unwrap();
    assert_eq!(sequences(&got), [1]);
    let got = replay(
        &mut audit,
        with(|r| r.types = vec!["timpora.imigrasi.passport_interview.v1".into()]),
    )
    .await
    .unwrap();
    assert_eq!(sequences(&got), [2, 4]);
    let got = replay(&mut audit, with(|r| r.regions = vec!["74.02".into()]))
        .await
        .unwrap();
    let in_region: Vec<u64> = stored
        .iter()
        .filter(|(_, e)| e.region.starts_with("74.02"))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(sequences(&got), in_region);
    assert!(!in_region.is_empty());
    // Entity token: the events that mention person 1 (its token as the hub stored it).
    let token = stored[1]
        .1
        .entities
        .iter()
        .find(|e| e.id.starts_with("psn_"))
        .unwrap()
        .id
        .clone();
    let mut r = events(AuditStream::Events);
    r.entity_tokens = vec![token.clone()];
    let got = replay(&mut audit, r).await.unwrap();
    let mentioning: Vec<u64> = stored
        .iter()
        .filter(|(_, e)| e.entities.iter().any(|x| x.id == token))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(sequences(&got), mentioning);
    assert!(mentioning.contains(&1) && mentioning.contains(&2) && !mentioning.contains(&3));
    // Time: from the third record's stored time, until the fourth's.
    let mut r = events(AuditStream::Events);
    r.since = all[2].stored;
    r.until = all[3].stored;
    assert_eq!(sequences(&replay(&mut audit, r).await.unwrap()), [3]);

    // Invalid requests name their fields.
    let err = replay(&mut audit, ReplayRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("stream"), "{}", err.message());
    let mut bad = events(AuditStream::Access);
    bad.types = vec!["timpora.imigrasi.passport_interview.v1".into()];
    bad.from_sequence = 5;
    bad.to_sequence = 2;
    let err = replay(&mut audit, bad).await.unwrap_err();
    assert!(
        err.message().contains("types") && err.message().contains("to_sequence"),
        "{}",
        err.message()
    );

    // Someone without audit rights is refused.
    let mut kdi = AuditServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let err = replay(&mut kdi, events(AuditStream::Events))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Every call is on record: opened, closed with how many it returned, or refused.
    let access = replay(&mut audit, events(AuditStream::Access))
        .await
        .unwrap();
    let records: Vec<AlertAccess> = access
        .iter()
        .map(|r| AlertAccess::decode(r.payload.as_slice()).unwrap())
        .filter(|a| a.action == "replay")
        .collect();
    let refused: Vec<&AlertAccess> = records.iter().filter(|a| !a.refused.is_empty()).collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|a| a.reader == "imigrasi/kanim-kendari" && a.refused.contains("audit right"))
    );
    let closings: Vec<u64> = records
        .iter()
        .filter(|a| a.closing)
        .map(|a| a.returned)
        .collect();
    let want = [
        4,
        2,
        1,
        2,
        in_region.len() as u64,
        mentioning.len() as u64,
        1,
    ];
    assert_eq!(closings, want);
    let opened = records
        .iter()
        .filter(|a| !a.closing && a.refused.is_empty())
        .count();
    // A replay ends at the stream's end when it was called: this one's own opening record, stored
    // after that, is not in it.
    assert_eq!(opened, closings.len());
    assert!(
        records
            .iter()
            .all(|a| a.time.is_some() && !a.filter.is_empty())
    );
    let first = records
        .iter()
        .find(|a| a.reader == "audit/inspektorat")
        .unwrap();
    assert!(
        first.filter.contains("AUDIT_STREAM_EVENTS"),
        "{}",
        first.filter
    );
    // Replaying the access stream by the reader's agency.
    let mut r = events(AuditStream::Access);
    r.agencies = vec!["imigrasi".into()];
    let got = replay(&mut audit, r).await.unwrap();
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn every_kind_of_read_is_on_record_refused_ones_too() {
    use futures::StreamExt;
    use timpora_e2e::v1::alert_service_client::AlertServiceClient;
    use timpora_e2e::v1::event_bus_service_client::EventBusServiceClient;

    let hub = Hub::start().await.unwrap();
    village_warning_then_interview(&hub, 1).await.unwrap();
    let _correlating = hub.correlate();
    let mut ops = AlertServiceClient::new(hub.as_agency("ops/timpora-kendari").await.unwrap());
    // An alert to read and act on.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let id = loop {
        let list = ops
            .list_alerts(ListAlertsRequest::default())
            .await
            .unwrap()
            .into_inner();
        if let Some(r) = list.records.first() {
            break r.alert.as_ref().unwrap().id.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no alert");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // A watch that returns the open alert, then goes away.
    let mut watch = ops
        .watch_alerts(WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.next().await.unwrap().unwrap();
    drop(watch);
    ops.get_alert(GetAlertRequest {
        alert_id: id.clone(),
        operator: "Sari".into(),
    })
    .await
    .unwrap();
    ops.acknowledge_alert(AcknowledgeAlertRequest {
        action: action(&id, "Sari", "operator"),
    })
    .await
    .unwrap();
    // Refused: acknowledging again (not open any more), reading events without rights.
    let again = ops
        .acknowledge_alert(AcknowledgeAlertRequest {
            action: action(&id, "Sari", "operator"),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let mut kdi =
        EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let mut sub = kdi
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = sub.next().await.unwrap().unwrap();
    assert!(first.event.is_some());
    drop(sub);
    let mut audit_alerts =
        AlertServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let denied = audit_alerts
        .list_alert_access(ListAlertAccessRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let mut audit = AuditServiceClient::new(hub.as_agency("audit/inspektorat").await.unwrap());
    let records: Vec<AlertAccess> = replay(&mut audit, events(AuditStream::Access))
        .await
        .unwrap()
        .iter()
        .map(|r| AlertAccess::decode(r.payload.as_slice()).unwrap())
        .collect();
    let kinds = |pred: &dyn Fn(&AlertAccess) -> bool| -> Vec<String> {
        records
            .iter()
            .filter(|a| pred(a))
            .map(|a| a.action.clone())
            .collect()
    };
    let has = |action: &str, pred: &dyn Fn(&AlertAccess) -> bool| {
        records.iter().any(|a| a.action == action && pred(a))
    };
    assert!(
        has("list_alerts", &|a| a.reader == "ops/timpora-kendari"
            && a.returned >= 1),
        "{:?}",
        kinds(&|_| true)
    );
    assert!(has("watch_alerts", &|a| !a.closing));
    assert!(has("watch_alerts", &|a| a.closing && a.returned >= 1));
    // The alert read itself (its own record, as before), and the lifecycle step by whom.
    assert!(
        records
            .iter()
            .any(|a| a.alert_id == id && a.action.is_empty() && a.operator == "Sari")
    );
    assert!(has("acknowledge", &|a| a.alert_id == id
        && a.refused.is_empty()
        && a.operator == "Sari"));
    assert!(has("acknowledge", &|a| a.alert_id == id
        && a.refused.starts_with("FailedPrecondition")));
    assert!(has("subscribe", &|a| a.reader == "imigrasi/kanim-kendari"
        && !a.closing));
    assert!(has("subscribe", &|a| a.closing && a.returned >= 1));
    assert!(has("list_access", &|a| a.reader
        == "imigrasi/kanim-kendari"
        && a.refused.starts_with("PermissionDenied")));
}
