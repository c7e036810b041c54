//! Late and batched reports (issue 11), through the gateway to a real correlator on a real
//! nats-server: a day of reports sent at once, in any order, gives the alerts of sending it in
//! order; a registration sent after its deferral's R1 was raised withdraws that alert, visibly,
//! with the registration as evidence.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::alert_service_client::AlertServiceClient;
use timpora_e2e::v1::bp3mi_service_client::Bp3miServiceClient;
use timpora_e2e::v1::disnaker_service_client::DisnakerServiceClient;
use timpora_e2e::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_e2e::v1::*;

const DAY: u64 = 86_400;

/// The built-in rules for a test: a grace of 3 s, and a unit silent for 3 s no longer waited
/// for (the default waits 36 h for an office that sent 40-day-old reports).
fn rules() -> String {
    timpora_testkit::sandbox::quick_rules("3s").replacen("idle = \"36h\"", "idle = \"3s\"", 1)
}

/// One report of the day: who sends it, when it happened (seconds into the day, 41 days ago).
#[derive(Clone)]
enum Report {
    Deferral(&'static str, u32, u64),
    Registration(&'static str, u32, &'static str, u64),
    Revocation(&'static str, &'static str, u64),
}

impl Report {
    fn at(&self) -> u64 {
        match self {
            Report::Deferral(_, _, t)
            | Report::Registration(_, _, _, t)
            | Report::Revocation(_, _, t) => *t,
        }
    }
}

fn meta_at(id: &str, secs: u64, base: SystemTime) -> Option<EventMeta> {
    let mut m = meta(id);
    m.time = Some((base + Duration::from_secs(secs)).into());
    Some(m)
}

async fn send(hub: &Hub, r: &Report, base: SystemTime) {
    match r.clone() {
        Report::Deferral(id, n, t) => {
            let mut c =
                ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
            c.record_passport_interview(RecordPassportInterviewRequest {
                meta: meta_at(id, t, base),
                interview: Some(interview(n)),
            })
            .await
            .unwrap();
        }
        Report::Registration(id, n, licence, t) => {
            let mut c = Bp3miServiceClient::new(hub.as_agency("bp3mi/bp3mi-sultra").await.unwrap());
            c.update_cpmi_status(UpdateCpmiStatusRequest {
                meta: meta_at(id, t, base),
                status: Some(CpmiStatus {
                    person: Some(person(n)),
                    worker_id: format!("CPMI-7402-{n:04}"),
                    p3mi_licence: licence.into(),
                    destination_country: "MY".into(),
                    job: "plantation".into(),
                    stage: CpmiStage::Registered as i32,
                }),
            })
            .await
            .unwrap();
        }
        Report::Revocation(id, licence, t) => {
            let mut c = DisnakerServiceClient::new(
                hub.as_agency("disnaker/disnaker-konawe").await.unwrap(),
            );
            c.update_company_licence(UpdateCompanyLicenceRequest {
                meta: meta_at(id, t, base),
                licence: Some(CompanyLicence {
                    p3mi_licence: licence.into(),
                    status: LicenceStatus::Revoked as i32,
                    company_name: "PT Contoh Penempatan".into(),
                }),
            })
            .await
            .unwrap();
        }
    }
}

/// The day: person 41 deferred at 08:00 and registered at 11:00 (no R1); person 42 deferred at
/// 09:00 and never registered (R1); licence KEP.77/PPTKIS/I/2024 revoked at 09:00 and then named
/// in person 43's registration at 11:00 (R5); KEP.78 named at 10:00 and revoked at 14:00 (no R5).
fn the_day() -> Vec<Report> {
    let h = 3_600;
    vec![
        Report::Deferral("d41", 41, 8 * h),
        Report::Deferral("d42", 42, 9 * h),
        Report::Revocation("l77", "KEP.77/PPTKIS/I/2024", 9 * h),
        Report::Registration("r44", 44, "KEP.78/PPTKIS/I/2024", 10 * h),
        Report::Registration("r41", 41, "KEP.12/PPTKIS/I/2024", 11 * h),
        Report::Registration("r43", 43, "KEP.77/PPTKIS/I/2024", 11 * h + 60),
        Report::Revocation("l78", "KEP.78/PPTKIS/I/2024", 14 * h),
    ]
}

/// The findings of sending `reports` at once to a fresh hub: (rule, evidence, late), sorted.
async fn findings(reports: &[Report]) -> Vec<(String, Vec<String>, bool)> {
    let hub = Hub::start().await.unwrap();
    let _correlator = hub.correlate_rules(&rules());
    let base = SystemTime::now() - Duration::from_secs(41 * DAY);
    for r in reports {
        send(&hub, r, base).await;
    }
    // Decided once the batch has settled and the offices that sent it went quiet (3 s each here).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut out: Vec<(String, Vec<String>, bool)> = hub
        .alerts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            assert!(
                a.corrects.is_empty(),
                "nothing to correct in a settled batch: {a:?}"
            );
            let mut ev = a.evidence.clone();
            ev.sort();
            (a.rule_id, ev, a.late)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_day_sent_at_once_in_any_order_gives_the_alerts_of_sending_it_in_order() {
    let day = the_day();
    let in_order = findings(&day).await;
    let rules: Vec<&str> = in_order.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(rules, ["R1", "R5"], "{in_order:#?}");
    assert_eq!(in_order[0].1, ["imigrasi/kanim-kendari/d42"]);
    assert_eq!(
        in_order[1].1,
        ["bp3mi/bp3mi-sultra/r43", "disnaker/disnaker-konawe/l77"]
    );
    assert!(in_order.iter().all(|f| f.2), "raised on late evidence");

    let mut reversed = day.clone();
    reversed.sort_by_key(|r| std::cmp::Reverse(r.at()));
    assert_eq!(findings(&reversed).await, in_order, "reverse time order");

    // Two offices' uploads interleaved: the Kanim's and Disnaker's, BP3MI's, each newest first.
    let (mut a, mut b): (Vec<Report>, Vec<Report>) = reversed
        .iter()
        .cloned()
        .partition(|r| !matches!(r, Report::Registration(..)));
    a.reverse();
    b.reverse();
    let mut interleaved = Vec::new();
    while !a.is_empty() || !b.is_empty() {
        interleaved.extend(a.pop());
        interleaved.extend(b.pop());
    }
    assert_eq!(findings(&interleaved).await, in_order, "interleaved");
}

#[tokio::test]
async fn a_registration_sent_after_its_r1_withdraws_it_visibly_with_the_evidence() {
    let hub = Hub::start().await.unwrap();
    let _correlator = hub.correlate_rules(&rules());
    let mut ops = AlertServiceClient::new(hub.as_agency("ops/timpora-kendari").await.unwrap());
    let mut watch = ops
        .watch_alerts(WatchAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let base = SystemTime::now() - Duration::from_secs(41 * DAY);
    // The Kanim enters a deferral from 41 days ago: nobody registered the person, R1.
    send(&hub, &Report::Deferral("d45", 45, 0), base).await;
    let raised = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("R1 within 20 s")
        .unwrap()
        .unwrap()
        .record
        .unwrap();
    let alert = raised.alert.clone().unwrap();
    assert_eq!(alert.rule_id, "R1");
    assert!(alert.late, "raised on late evidence: {alert:?}");
    // BP3MI's export brings the person's registration 5 days after the deferral.
    send(
        &hub,
        &Report::Registration("r45", 45, "KEP.12/PPTKIS/I/2024", 5 * DAY),
        base,
    )
    .await;
    let changed = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("the withdrawal within 20 s")
        .unwrap()
        .unwrap();
    assert!(changed.live);
    let record = changed.record.unwrap();
    assert_eq!(record.alert.as_ref().unwrap().id, alert.id);
    assert_eq!(record.status, AlertStatus::Withdrawn as i32, "{record:#?}");
    let t = record.history.last().unwrap();
    assert_eq!(t.actor, "hub/correlator");
    assert_eq!(t.from_status, AlertStatus::Open as i32);
    assert_eq!(t.evidence, ["bp3mi/bp3mi-sultra/r45"]);
    assert!(t.note.starts_with("withdrawn: "), "{}", t.note);
    // Not deleted: it is still there to read, with its evidence and history.
    let got = ops
        .get_alert(GetAlertRequest {
            alert_id: alert.id.clone(),
            operator: "Operator A (synthetic)".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.record.unwrap().status, AlertStatus::Withdrawn as i32);
    // Nobody acts on it any more.
    let refused = ops
        .acknowledge_alert(AcknowledgeAlertRequest {
            action: action(&alert.id, "budi", "operator"),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    // Listed when asked for withdrawn alerts, not among the open ones.
    let listed = |statuses: Vec<i32>| {
        let mut ops = ops.clone();
        async move {
            ops.list_alerts(ListAlertsRequest {
                filter: Some(AlertFilter {
                    statuses,
                    ..Default::default()
                }),
                limit: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .records
            .len()
        }
    };
    assert_eq!(listed(vec![AlertStatus::Withdrawn as i32]).await, 1);
    assert_eq!(listed(vec![AlertStatus::Open as i32]).await, 0);
    // The correction is stored once in the alerts stream, naming the finding.
    let stored = hub.alerts().await.unwrap();
    let corrections: Vec<&Alert> = stored.iter().filter(|a| !a.corrects.is_empty()).collect();
    assert_eq!(corrections.len(), 1);
    // Why it was raised, and why withdrawn: with the late registration as the evidence.
    let why = timpora_audit::explain(&hub.bus, &alert.id, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(why.reproduced, "{why:#?}");
    assert_eq!(why.later.len(), 1, "{why:#?}");
    assert_eq!(why.later[0].change, "withdrawn");
    assert_eq!(why.later[0].evidence, ["bp3mi/bp3mi-sultra/r45"]);
    assert_eq!(corrections[0].corrects, alert.id);
    assert!(corrections[0].withdrawn);
}

#[tokio::test]
async fn a_quiet_office_holds_decisions_back_no_longer_than_its_idle_time() {
    let hub = Hub::start().await.unwrap();
    // Idle 6 s here: BP3MI's office is waited for until it has been silent that long.
    let rules =
        timpora_testkit::sandbox::quick_rules("1s").replacen("idle = \"36h\"", "idle = \"6s\"", 1);
    let _correlator = hub.correlate_rules(&rules);
    let base = SystemTime::now() - Duration::from_secs(41 * DAY);
    // BP3MI sends a backlog a month old (somebody else's registration), then goes quiet: by its
    // delay it may still have more from that time.
    send(
        &hub,
        &Report::Registration("r71", 71, "KEP.12/PPTKIS/I/2024", 0),
        base,
    )
    .await;
    let sent = tokio::time::Instant::now();
    // A Kanim enters a deferral of person 72 from 41 days ago: R1, once BP3MI is no longer
    // waited for.
    send(&hub, &Report::Deferral("d72", 72, 3_600), base).await;
    let mut raised_at = None;
    let deadline = sent + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if hub
            .alerts()
            .await
            .unwrap()
            .iter()
            .any(|a| a.rule_id == "R1")
        {
            raised_at = Some(sent.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let raised_at = raised_at.expect("R1 once BP3MI has been quiet for its idle time");
    // Not before the office's idle time had passed (it could still have reported).
    assert!(
        raised_at >= Duration::from_secs(5),
        "raised after {raised_at:?}"
    );
}
