//! Who sees an alert and who acts on it is decided at the gateway (issue 10, finding 1 and the
//! victims' part of finding 6; and assignment to unknown units, finding 11): alerts carry the
//! classification of their evidence and reach only agencies that may read all of it; actions
//! follow the agencies' `act` rights and, for callers that act for people, the claimed role's;
//! every refusal is `PERMISSION_DENIED` (or `INVALID_ARGUMENT` on the field) and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::alert_service_client::AlertServiceClient;
use timpora_e2e::v1::*;
use tonic::Code;

type Client = AlertServiceClient<timpora_e2e::Authed>;

async fn client(hub: &Hub, identity: &str) -> Client {
    AlertServiceClient::new(hub.as_agency(identity).await.unwrap())
}

/// The rules of the alerts `c` lists.
async fn listed(c: &mut Client) -> BTreeSet<String> {
    c.list_alerts(ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records
        .into_iter()
        .filter_map(|r| r.alert.map(|a| a.rule_id))
        .collect()
}

async fn ack(c: &mut Client, id: &str, operator: &str, role: &str) -> Result<AlertRecord, Code> {
    c.acknowledge_alert(AcknowledgeAlertRequest {
        action: action(id, operator, role),
    })
    .await
    .map(|r| r.into_inner().record.unwrap())
    .map_err(|s| s.code())
}

async fn resolve(
    c: &mut Client,
    id: &str,
    operator: &str,
    role: &str,
) -> Result<AlertRecord, tonic::Status> {
    c.resolve_alert(ResolveAlertRequest {
        action: action(id, operator, role),
        resolution: Resolution::FalsePositive as i32,
    })
    .await
    .map(|r| r.into_inner().record.unwrap())
}

async fn assign(c: &mut Client, id: &str, to: &str) -> Result<AlertRecord, tonic::Status> {
    c.assign_alert(AssignAlertRequest {
        action: action(id, "", ""),
        assignee: to.into(),
    })
    .await
    .map(|r| r.into_inner().record.unwrap())
}

#[tokio::test]
async fn who_sees_and_who_acts_on_an_alert_is_decided_at_the_gateway() {
    let hub = Hub::start().await.unwrap();
    let _correlator = hub.correlate();
    // R2 from open records; R6 from a victim's repatriation (sensitive) and an interview.
    village_warning_then_interview(&hub, 1).await.unwrap();
    victim_repatriated_then_interview(&hub, 2).await.unwrap();
    let mut audit = client(&hub, "audit/inspektorat").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while listed(&mut audit).await != BTreeSet::from(["R2".into(), "R6".into()]) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "R2 and R6 not raised"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let records = audit
        .list_alerts(ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    let alert_of = |rule: &str| {
        records
            .iter()
            .filter_map(|r| r.alert.clone())
            .find(|a| a.rule_id == rule)
            .unwrap()
    };
    let (r2, r6) = (alert_of("R2"), alert_of("R6"));

    // Alerts carry the classification of their evidence, and of the most sensitive of it.
    let open = Classification::OpenToMembers as i32;
    let sensitive = Classification::Sensitive as i32;
    assert_eq!(r2.evidence_classifications, [open, open]);
    assert_eq!(r2.classification, open);
    assert_eq!(r6.evidence_classifications, [sensitive, open]);
    assert_eq!(r6.classification, sensitive);

    // Listed only to agencies that may read all of an alert's evidence.
    let both = BTreeSet::from(["R2".to_owned(), "R6".to_owned()]);
    let r2_only = BTreeSet::from(["R2".to_owned()]);
    for (identity, expected) in [
        ("ops/timpora-kendari", &r2_only),
        ("imigrasi/kanim-kendari", &r2_only),
        ("disnaker/disnaker-konawe", &r2_only),
        ("polri/polda-sultra", &both),
        ("bp3mi/bp3mi-sultra", &both),
        ("dinsos/dinsos-sultra", &both),
    ] {
        let mut c = client(&hub, identity).await;
        assert_eq!(&listed(&mut c).await, expected, "{identity}");
    }

    // Watched likewise: neither the replay nor a live change of R6 reaches immigration.
    let mut imigrasi = client(&hub, "imigrasi/kanim-kendari").await;
    let mut watch = imigrasi
        .watch_alerts(WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.record.unwrap().alert.unwrap().rule_id, "R2");
    // Nor read one by one; the refusal is not an access record of a read.
    let denied = imigrasi
        .get_alert(GetAlertRequest {
            alert_id: r6.id.clone(),
            operator: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("SENSITIVE"), "{denied:?}");

    // Acting: a manpower office may see R2 but only say it has seen it.
    let mut disnaker = client(&hub, "disnaker/disnaker-konawe").await;
    let refused = resolve(&mut disnaker, &r2.id, "someone", "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("resolve"), "{refused:?}");
    // Nobody acts on an alert it may not see, whatever its rights otherwise.
    assert_eq!(
        ack(&mut imigrasi, &r6.id, "", "").await.unwrap_err(),
        Code::PermissionDenied
    );
    assert_eq!(
        ack(&mut disnaker, &r6.id, "", "").await.unwrap_err(),
        Code::PermissionDenied
    );
    // Auditors change nothing.
    assert_eq!(
        ack(&mut audit, &r2.id, "", "").await.unwrap_err(),
        Code::PermissionDenied
    );

    // Operations staff act for people: they must say who, in which role, and the role limits.
    let mut ops = client(&hub, "ops/timpora-kendari").await;
    assert_eq!(
        ack(&mut ops, &r2.id, "", "").await.unwrap_err(),
        Code::InvalidArgument
    );
    assert_eq!(
        ack(&mut ops, &r2.id, "Operator A (synthetic)", "")
            .await
            .unwrap_err(),
        Code::InvalidArgument
    );
    assert_eq!(
        ack(&mut ops, &r2.id, "Operator A (synthetic)", "admin")
            .await
            .unwrap_err(),
        Code::PermissionDenied,
        "a role the gateway does not know"
    );
    let refused = resolve(&mut ops, &r2.id, "Operator A (synthetic)", "operator")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("operator role may not resolve"),
        "{refused:?}"
    );
    assert_eq!(
        ack(&mut ops, &r2.id, "Auditor E (synthetic)", "auditor")
            .await
            .unwrap_err(),
        Code::PermissionDenied
    );

    // Assignment only to units the gateway knows, and only to one that may read the alert.
    let mut bp3mi = client(&hub, "bp3mi/bp3mi-sultra").await;
    let unknown = assign(&mut bp3mi, &r6.id, "bin/secret-unit")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");
    assert!(unknown.message().contains("assignee"), "{unknown:?}");
    let blind = assign(&mut bp3mi, &r6.id, "imigrasi/kanim-kendari")
        .await
        .unwrap_err();
    assert_eq!(blind.code(), Code::InvalidArgument, "{blind:?}");

    // Every refusal left both alerts as they were: open, with no step on the bus.
    for r in audit
        .list_alerts(ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records
    {
        assert_eq!(r.status, AlertStatus::Open as i32, "{r:?}");
        assert!(r.history.is_empty(), "{r:?}");
    }

    // Those who may, can: BP3MI handles the victim's alert and hands it to the police, who
    // resolve it; a supervisor at the secretariat resolves R2, recorded as claimed.
    let acked = ack(&mut bp3mi, &r6.id, "", "").await.unwrap();
    assert_eq!(acked.status, AlertStatus::Acknowledged as i32);
    let assigned = assign(&mut bp3mi, &r6.id, "polri/polda-sultra")
        .await
        .unwrap();
    assert_eq!(assigned.assignee, "polri/polda-sultra");
    let mut polri = client(&hub, "polri/polda-sultra").await;
    let done = resolve(&mut polri, &r6.id, "", "").await.unwrap();
    assert_eq!(done.status, AlertStatus::Resolved as i32);
    ack(&mut disnaker, &r2.id, "", "").await.unwrap();
    let done = resolve(&mut ops, &r2.id, "Supervisor D (synthetic)", "supervisor")
        .await
        .unwrap();
    assert_eq!(done.status, AlertStatus::Resolved as i32);
    let last = done.history.last().unwrap();
    assert_eq!(last.actor, "ops/timpora-kendari");
    assert_eq!(
        (last.operator.as_str(), last.role.as_str()),
        ("Supervisor D (synthetic)", "supervisor")
    );
    // The victim's alert changed while immigration watched: it was never sent.
    let next = tokio::time::timeout(Duration::from_secs(2), watch.next()).await;
    let mut seen = Vec::new();
    if let Ok(Some(Ok(m))) = next {
        seen.push(m.record.unwrap().alert.unwrap().rule_id);
    }
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(500), watch.next()).await
    {
        seen.push(m.record.unwrap().alert.unwrap().rule_id);
    }
    assert!(seen.iter().all(|r| r == "R2"), "{seen:?}");
    assert!(!seen.is_empty(), "R2's changes reach immigration's watch");
}
