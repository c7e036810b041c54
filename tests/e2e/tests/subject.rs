//! A subject's page through the API (issue 11): everything about one token — its alerts, open
//! and past, and the events that mention it from every agency — as the caller may read it, and
//! recorded in the access records.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::alert_service_client::AlertServiceClient;
use timpora_e2e::v1::*;
use tonic::Code;

async fn client(hub: &Hub, identity: &str) -> AlertServiceClient<timpora_e2e::Authed> {
    AlertServiceClient::new(hub.as_agency(identity).await.unwrap())
}

async fn page(
    c: &mut AlertServiceClient<timpora_e2e::Authed>,
    subject: &str,
) -> GetSubjectResponse {
    c.get_subject(GetSubjectRequest {
        subject: subject.into(),
        operator: "Operator A (synthetic)".into(),
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn a_subjects_page_shows_what_the_caller_may_read_and_is_on_record() {
    let hub = Hub::start().await.unwrap();
    let _correlator = hub.correlate();
    // Person 61 comes home as a trafficking victim (sensitive) and soon applies for a passport
    // (open): R6. Person 61 is also named by a village (open): R2 once the interview follows.
    victim_repatriated_then_interview(&hub, 61).await.unwrap();
    let mut police = client(&hub, "polri/polda-sultra").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let r6 = loop {
        let listed = police
            .list_alerts(ListAlertsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .records;
        if let Some(r) = listed
            .into_iter()
            .find(|r| r.alert.as_ref().is_some_and(|a| a.rule_id == "R6"))
        {
            break r.alert.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no R6");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token = r6.group_key.clone();
    assert!(token.starts_with("psn_"), "{token}");

    // The police may read both events and the alert: one timeline, oldest first.
    let got = page(&mut police, &token).await;
    assert_eq!(got.subject, token);
    assert_eq!(got.alerts.len(), 1);
    assert_eq!(got.alerts[0].alert.as_ref().unwrap().id, r6.id);
    let kinds: Vec<&str> = got.events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "timpora.bp3mi.repatriation.v1",
            "timpora.imigrasi.passport_interview.v1"
        ]
    );
    assert_eq!((got.withheld, got.truncated), (0, false));
    // Every event there mentions the subject, by token only.
    for e in &got.events {
        assert!(e.entities.iter().any(|x| x.id == token), "{e:?}");
    }

    // Immigration may not read the victim's repatriation: it sees its own interview, is told one
    // event was withheld, and does not see the alert (whose evidence it may not read).
    let mut imigrasi = client(&hub, "imigrasi/kanim-kendari").await;
    let got = page(&mut imigrasi, &token).await;
    assert!(got.alerts.is_empty(), "{:?}", got.alerts);
    assert_eq!(got.events.len(), 1);
    assert_eq!(
        got.events[0].r#type,
        "timpora.imigrasi.passport_interview.v1"
    );
    assert_eq!(got.withheld, 1);

    // A village sees no single alerts or events at all.
    let mut village = client(&hub, "desa/74.02.05.2001").await;
    let refused = village
        .get_subject(GetSubjectRequest {
            subject: token.clone(),
            operator: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // What is not a subject is refused, naming the field; an unknown one is an empty page.
    for bad in ["", "psn_a.b", "psn a", &"x".repeat(129)] {
        let err = police
            .get_subject(GetSubjectRequest {
                subject: bad.into(),
                operator: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
        assert!(err.message().contains("subject"), "{err:?}");
    }
    let empty = page(&mut police, "psn_unknown").await;
    assert!(empty.alerts.is_empty() && empty.events.is_empty());

    // Both reads are on record, with who read how much.
    let mut audit = client(&hub, "audit/inspektorat").await;
    let records = audit
        .list_alert_access(ListAlertAccessRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    let reads: Vec<(&str, u32, u32)> = records
        .iter()
        .filter(|r| r.subject == token)
        .map(|r| (r.reader.as_str(), r.events, r.withheld))
        .collect();
    assert_eq!(
        reads,
        [
            ("imigrasi/kanim-kendari", 1, 1),
            ("polri/polda-sultra", 2, 0)
        ],
        "newest first"
    );
}
