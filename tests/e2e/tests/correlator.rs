//! The correlation service on a real JetStream: events published through the gateway raise
//! alerts in the alerts stream; a restart replays the stream and stores no alert twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::HashSet;
use std::time::Duration;

use timpora_correlator::Stats;
use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::desa_service_client::DesaServiceClient;
use timpora_e2e::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_e2e::v1::*;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn start(hub: &Hub) -> (oneshot::Sender<()>, JoinHandle<Stats>) {
    let (tx, rx) = oneshot::channel::<()>();
    let rules = timpora_rules::parse(timpora_rules::DEFAULT_RULES).unwrap();
    let options = timpora_correlator::Options {
        lateness: Duration::from_secs(1),
        tick_every: Duration::from_millis(200),
    };
    let bus = hub.bus.clone();
    let task = tokio::spawn(async move {
        timpora_correlator::run(bus, rules, options, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    (tx, task)
}

/// Wait until the alerts stream holds `n` alerts (or fail after 20 s).
async fn wait_for(hub: &Hub, n: usize) -> Vec<Alert> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = hub.alerts().await.unwrap();
        if alerts.len() >= n {
            return alerts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} alerts",
            alerts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn alerts_are_raised_from_the_stream_and_a_restart_stores_none_twice() {
    let hub = Hub::start().await.unwrap();
    // Village warning about person 1, then a deferred passport interview with indicators at
    // Kendari (R2), then a departure check of the same person at Soekarno-Hatta (R3).
    let mut desa = DesaServiceClient::new(hub.as_agency("desa/74.02.05.2001").await.unwrap());
    desa.submit_community_report(SubmitCommunityReportRequest {
        meta: Some(meta("desa-1")),
        report: Some(CommunityReport {
            village_code: "74.02.05.2001".into(),
            reporter_role: ReporterRole::Pimpasa as i32,
            kind: CommunityReportKind::ResidentPlanningDeparture as i32,
            persons: vec![person(1)],
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut kdi =
        ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    kdi.record_passport_interview(RecordPassportInterviewRequest {
        meta: Some(meta("kdi-1")),
        interview: Some(interview(1)),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut cgk = ImigrasiServiceClient::new(hub.as_agency("imigrasi/tpi-cgk").await.unwrap());
    let check = |id: &str, checkpoint: &str| RecordDepartureCheckRequest {
        meta: Some(meta(id)),
        check: Some(DepartureCheck {
            traveller: Some(person(1)),
            checkpoint_code: checkpoint.into(),
            destination_country: "MY".into(),
            outcome: DepartureOutcome::Cleared as i32,
            ..Default::default()
        }),
    };
    cgk.record_departure_check(check("cgk-1", "TPI-CGK"))
        .await
        .unwrap();

    let (stop, task) = start(&hub);
    let alerts = wait_for(&hub, 2).await;
    let rules: HashSet<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(rules, HashSet::from(["R2", "R3"]), "{alerts:?}");
    let r2 = alerts.iter().find(|a| a.rule_id == "R2").unwrap();
    assert_eq!(
        r2.evidence,
        ["desa/74.02.05.2001/desa-1", "imigrasi/kanim-kendari/kdi-1"]
    );
    assert_eq!(r2.severity, Severity::High as i32);
    assert!(r2.group_key.starts_with("psn_"));
    assert!(r2.id.starts_with("alr_"));
    let stored = hub.stored().await.unwrap();
    assert!(
        stored
            .iter()
            .any(|(_, e)| e.r#type == "timpora.hub.clock_tick.v1"),
        "the correlator records clock ticks into the stream"
    );
    let _ = stop.send(());
    let stats = task.await.unwrap();
    assert!(stats.events >= 3);

    // Restart: the whole stream is replayed, every alert recognised, nothing stored again; the
    // restarted service is live (a new attempt at another checkpoint raises one new R3).
    let (stop, task) = start(&hub);
    cgk.record_departure_check(check("kdi-2", "TPI-KDI"))
        .await
        .unwrap();
    wait_for(&hub, 3).await;
    // Give the restarted service time to store anything extra it (wrongly) would.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = hub.alerts().await.unwrap();
    let ids: HashSet<&str> = after.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), after.len(), "no alert stored twice");
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(after[..2], alerts[..], "earlier alerts untouched");
    assert_eq!(after[2].rule_id, "R3");
    let _ = stop.send(());
    task.await.unwrap();
}
