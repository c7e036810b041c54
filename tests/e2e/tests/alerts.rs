//! The alert lifecycle through the gateway's `AlertService`, over real sockets and a real
//! JetStream: an alert raised by the correlator from events agencies published is listed,
//! watched live, read with its evidence (as the reader's rights allow), acknowledged, assigned,
//! escalated into a case on the bus and resolved; illegal or stale actions are refused and change
//! nothing; every step is on the alerts stream with who did it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use futures::StreamExt;
use timpora_bus::AlertMessage;
use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::alert_service_client::AlertServiceClient;
use timpora_e2e::v1::*;
use tonic::Code;

async fn raise_one_alert(hub: &Hub) -> tokio::sync::oneshot::Sender<()> {
    village_warning_then_interview(hub, 1).await.unwrap();
    hub.correlate()
}

#[tokio::test]
async fn an_alert_is_watched_read_and_handled_with_every_step_on_the_bus() {
    let hub = Hub::start().await.unwrap();
    let mut ops = AlertServiceClient::new(hub.as_agency("ops/timpora-kendari").await.unwrap());
    let mut watch = ops
        .watch_alerts(WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let _stop = raise_one_alert(&hub).await;

    // The alert arrives on the open watch, live.
    let first = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("an alert within 20 s")
        .unwrap()
        .unwrap();
    assert!(first.live);
    let record = first.record.unwrap();
    assert_eq!(record.status, AlertStatus::Open as i32);
    let alert = record.alert.clone().unwrap();
    assert_eq!(alert.rule_id, "R2");
    let id = alert.id.clone();

    // Lists and filters.
    let list = |filter: AlertFilter| {
        let mut ops = ops.clone();
        async move {
            ops.list_alerts(ListAlertsRequest {
                filter: Some(filter),
                limit: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .records
            .len()
        }
    };
    assert_eq!(list(AlertFilter::default()).await, 1);
    let region = |r: &str| AlertFilter {
        regions: vec![r.into()],
        ..Default::default()
    };
    assert_eq!(list(region("74")).await, 1);
    assert_eq!(list(region("74.02")).await, 1);
    assert_eq!(list(region("72")).await, 0);
    assert_eq!(list(region("7")).await, 0, "prefixes end at a dot");
    let severe = AlertFilter {
        min_severity: Severity::Critical as i32,
        ..Default::default()
    };
    assert_eq!(list(severe).await, 0, "R2 is high, not critical");
    let r2 = AlertFilter {
        rule_ids: vec!["R2".into()],
        statuses: vec![AlertStatus::Open as i32],
        ..Default::default()
    };
    assert_eq!(list(r2).await, 1);

    // A new watcher first gets what is open (not live).
    let mut late = ops
        .watch_alerts(WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let replayed = late.next().await.unwrap().unwrap();
    assert!(!replayed.live);
    assert_eq!(replayed.record.unwrap().alert.unwrap().id, id);

    // Read with evidence: operations staff may read both events; a village reads nothing and
    // may not see alerts at all.
    let got = ops
        .get_alert(GetAlertRequest {
            alert_id: id.clone(),
            operator: "Operator A (synthetic)".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.events.len(), 2, "{got:?}");
    // The read is on record; only auditors may see the records.
    let mut audit = AlertServiceClient::new(hub.as_agency("audit/inspektorat").await.unwrap());
    let reads = audit
        .list_alert_access(ListAlertAccessRequest {
            alert_id: id.clone(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].reader, "ops/timpora-kendari");
    assert_eq!(reads[0].operator, "Operator A (synthetic)");
    assert_eq!((reads[0].events, reads[0].withheld), (2, 0));
    let none = audit
        .list_alert_access(ListAlertAccessRequest {
            alert_id: "alr_00000000000000000000000000000000".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(none.is_empty());
    let refused = ops
        .list_alert_access(ListAlertAccessRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(got.withheld.is_empty());
    assert_eq!(got.events[0].r#type, "timpora.desa.community_report.v1");
    assert!(
        got.events
            .iter()
            .all(|e| e.entities.iter().all(|x| !x.id.contains(&nik(1))))
    );
    let mut desa = AlertServiceClient::new(hub.as_agency("desa/74.02.05.2001").await.unwrap());
    let denied = desa
        .list_alerts(ListAlertsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Acknowledge; the second watcher sees it at once.
    let acked = ops
        .acknowledge_alert(AcknowledgeAlertRequest {
            action: action(&id, "Operator A (synthetic)", "operator"),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(acked.status, AlertStatus::Acknowledged as i32);
    assert_eq!(acked.history[0].actor, "ops/timpora-kendari");
    assert_eq!(acked.history[0].operator, "Operator A (synthetic)");
    let seen = tokio::time::timeout(Duration::from_secs(5), late.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(seen.live);
    assert_eq!(
        seen.record.unwrap().status,
        AlertStatus::Acknowledged as i32
    );

    // Illegal and stale actions are refused and change nothing.
    let again = ops
        .acknowledge_alert(AcknowledgeAlertRequest {
            action: action(&id, "Operator B (synthetic)", "operator"),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(again.message().contains("ACKNOWLEDGED"));
    let stale = ops
        .assign_alert(AssignAlertRequest {
            action: Some(AlertAction {
                expected_version: 1,
                ..action(&id, "Operator A (synthetic)", "operator").unwrap()
            }),
            assignee: "polri/polda-sultra".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let bad = ops
        .assign_alert(AssignAlertRequest {
            action: action(&id, "Operator A (synthetic)", "operator"),
            assignee: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let missing = ops
        .acknowledge_alert(AcknowledgeAlertRequest {
            action: action("alr_0000", "Operator A (synthetic)", "operator"),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Assign, escalate (a case on the bus), resolve.
    let assigned = ops
        .assign_alert(AssignAlertRequest {
            action: Some(AlertAction {
                expected_version: acked.version,
                ..action(&id, "Operator A (synthetic)", "operator").unwrap()
            }),
            assignee: "polri/polda-sultra".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(assigned.assignee, "polri/polda-sultra");
    let mut polri = AlertServiceClient::new(hub.as_agency("polri/polda-sultra").await.unwrap());
    let escalated = polri
        .escalate_alert(EscalateAlertRequest {
            action: action(&id, "Investigator C (synthetic)", ""),
            kind: CaseKind::Tppo as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        escalated.record.as_ref().unwrap().status,
        AlertStatus::Escalated as i32
    );
    let stored = hub.stored().await.unwrap();
    let case = stored
        .iter()
        .map(|(_, e)| e)
        .find(|e| e.r#type == "timpora.case.status_changed.v1")
        .expect("a case event on the bus");
    assert_eq!(case.source, "polri/polda-sultra");
    assert_eq!(case.id, escalated.case_id);
    let Some(event::Payload::CaseStatusChanged(c)) = &case.payload else {
        panic!("{case:?}")
    };
    assert_eq!(c.linked_alert_ids, std::slice::from_ref(&id));
    assert!(case.entities.iter().any(|e| e.id == alert.group_key));

    let unresolved = ops
        .resolve_alert(ResolveAlertRequest {
            action: action(&id, "Supervisor D (synthetic)", "supervisor"),
            resolution: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unresolved.code(), Code::InvalidArgument);
    let resolved = ops
        .resolve_alert(ResolveAlertRequest {
            action: action(&id, "Supervisor D (synthetic)", "supervisor"),
            resolution: Resolution::Confirmed as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(resolved.status, AlertStatus::Resolved as i32);
    assert_eq!(resolved.resolution, Resolution::Confirmed as i32);
    assert_eq!(resolved.history.len(), 4);
    let after = ops
        .escalate_alert(EscalateAlertRequest {
            action: action(&id, "Supervisor D (synthetic)", "supervisor"),
            kind: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(after.code(), Code::FailedPrecondition);

    // On the bus: the raise and four transitions, each with its actor, in order.
    let mut feed = hub.bus.alert_feed().await.unwrap();
    let mut steps = Vec::new();
    for _ in 0..5 {
        let d = tokio::time::timeout(Duration::from_secs(5), feed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let AlertMessage::Transition(t) = d.message {
            steps.push((t.to_status, t.actor));
        }
    }
    assert_eq!(
        steps,
        [
            (
                AlertStatus::Acknowledged as i32,
                "ops/timpora-kendari".to_owned()
            ),
            (
                AlertStatus::Assigned as i32,
                "ops/timpora-kendari".to_owned()
            ),
            (
                AlertStatus::Escalated as i32,
                "polri/polda-sultra".to_owned()
            ),
            (
                AlertStatus::Resolved as i32,
                "ops/timpora-kendari".to_owned()
            ),
        ]
    );
}
