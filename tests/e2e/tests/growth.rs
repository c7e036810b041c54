//! Alerts grow instead of multiplying (issue 11): a further match for the same rule and person
//! within the rule's window extends the open alert — one record, its evidence growing, each
//! extension on the bus — and once that alert is resolved, a further match stands on its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::alert_service_client::AlertServiceClient;
use timpora_e2e::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_e2e::v1::*;

/// A deferred passport interview of person 7 at `office`.
async fn attempt(hub: &Hub, office: &str, id: &str) {
    let mut c = ImigrasiServiceClient::new(hub.as_agency(office).await.unwrap());
    c.record_passport_interview(RecordPassportInterviewRequest {
        meta: Some(meta(id)),
        interview: Some(interview(7)),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// The R3 records listed, once `pred` holds of them (or fail after 20 s).
async fn r3_records(
    c: &mut AlertServiceClient<timpora_e2e::Authed>,
    pred: impl Fn(&[AlertRecord]) -> bool,
) -> Vec<AlertRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let records: Vec<AlertRecord> = c
            .list_alerts(ListAlertsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .records
            .into_iter()
            .filter(|r| r.alert.as_ref().is_some_and(|a| a.rule_id == "R3"))
            .collect();
        if pred(&records) {
            return records;
        }
        assert!(tokio::time::Instant::now() < deadline, "{records:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_repeat_attempt_extends_the_open_alert_and_after_resolution_raises_anew() {
    let hub = Hub::start().await.unwrap();
    let _correlator = hub.correlate();
    let mut ops = AlertServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());

    attempt(&hub, "imigrasi/kanim-kendari", "kdi-g1").await;
    attempt(&hub, "imigrasi/kanim-palu", "plw-g1").await;
    let first = r3_records(&mut ops, |r| r.len() == 1).await.remove(0);
    let root = first.alert.clone().unwrap();
    assert_eq!(root.evidence.len(), 2);

    // A third office: the same finding, grown — one record, three pieces of evidence.
    attempt(&hub, "imigrasi/tpi-cgk", "cgk-g1").await;
    let grown = r3_records(&mut ops, |r| {
        r.len() == 1 && r[0].alert.as_ref().unwrap().evidence.len() == 3
    })
    .await
    .remove(0);
    let alert = grown.alert.clone().unwrap();
    assert_eq!(alert.id, root.id, "listed under the first id");
    assert!(!grown.extensions.is_empty());
    assert_eq!(alert.evidence_sequences.len(), 3);
    // Each extension is on the bus, naming the alert it extends.
    let stored = hub.alerts().await.unwrap();
    let r3: Vec<&Alert> = stored.iter().filter(|a| a.rule_id == "R3").collect();
    assert!(r3.len() >= 2, "{r3:#?}");
    assert!(r3[1..].iter().all(|a| a.extends == root.id), "{r3:#?}");
    // Why: the replay reproduces the finding, and says what the third office's report changed.
    let why = timpora_audit::explain(&hub.bus, &root.id, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(why.reproduced, "{why:#?}");
    assert_eq!(why.contributions.len(), 2);
    assert_eq!(why.later.len(), 1, "{why:#?}");
    assert_eq!(why.later[0].change, "extended");
    assert_eq!(why.later[0].evidence, ["imigrasi/tpi-cgk/cgk-g1"]);
    // An extension's id leads to the alert it grew, for reading and for acting.
    let ext = grown.extensions.last().unwrap().clone();
    let got = ops
        .get_alert(GetAlertRequest {
            alert_id: ext.clone(),
            operator: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.record.unwrap().alert.unwrap().id, root.id);
    assert_eq!(got.events.len(), 3);
    let acked = ops
        .acknowledge_alert(AcknowledgeAlertRequest {
            action: action(&ext, "", ""),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(acked.alert.unwrap().id, root.id);
    assert_eq!(acked.status, AlertStatus::Acknowledged as i32);

    // Resolved: the next attempt is a finding of its own, not a silent change to a closed one.
    ops.resolve_alert(ResolveAlertRequest {
        action: action(&root.id, "", ""),
        resolution: Resolution::Confirmed as i32,
    })
    .await
    .unwrap();
    attempt(&hub, "imigrasi/tpi-kdi", "tkd-g1").await;
    let records = r3_records(&mut ops, |r| r.len() == 2).await;
    let resolved = records
        .iter()
        .find(|r| r.alert.as_ref().unwrap().id == root.id)
        .unwrap();
    assert_eq!(resolved.status, AlertStatus::Resolved as i32);
    assert_eq!(
        resolved.alert.as_ref().unwrap().evidence.len(),
        3,
        "closed as it was"
    );
    let anew = records
        .iter()
        .find(|r| r.alert.as_ref().unwrap().id != root.id)
        .unwrap();
    assert_eq!(anew.status, AlertStatus::Open as i32);
    assert_eq!(
        anew.alert.as_ref().unwrap().extends,
        root.id,
        "continues the finding"
    );
    assert_eq!(anew.alert.as_ref().unwrap().evidence.len(), 4);
}
