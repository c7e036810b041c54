//! Every agency service over a real socket into a real JetStream: the event is stored with
//! pseudonymised entities, the source from the caller's identity and the agency's subject; a
//! reader with the right to read receives it and one without does not; a village reads back its
//! own reports and no other's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use futures::StreamExt;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::event::Payload;
use timpora_e2e::v1::*;
use timpora_e2e::{Authed, Hub};

use bp3mi_service_client::Bp3miServiceClient;
use desa_service_client::DesaServiceClient;
use dinsos_service_client::DinsosServiceClient;
use disnaker_service_client::DisnakerServiceClient;
use event_bus_service_client::EventBusServiceClient;
use imigrasi_service_client::ImigrasiServiceClient;
use kejaksaan_service_client::KejaksaanServiceClient;
use polri_service_client::PolriServiceClient;

/// Read events from `Subscribe` until `n` arrived or the stream goes quiet.
async fn read_as(
    hub: &Hub,
    identity: &str,
    req: SubscribeRequest,
    n: usize,
) -> Vec<SubscribeResponse> {
    let mut client = EventBusServiceClient::new(hub.as_agency(identity).await.unwrap());
    let mut stream = client.subscribe(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while out.len() < n {
        // The first event may wait on the consumer being created (slow on a loaded machine);
        // after it, a quiet second means the stream has nothing more that matches.
        let wait = Duration::from_secs(if out.is_empty() { 5 } else { 1 });
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(Some(r)) => out.push(r.unwrap()),
            _ => break,
        }
    }
    out
}

fn ack(a: Option<PublishAck>) -> PublishAck {
    let a = a.expect("ack");
    assert!(!a.duplicate);
    assert!(a.sequence > 0);
    a
}

#[tokio::test]
async fn every_agency_service_stores_a_pseudonymised_event() {
    let hub = Hub::start().await.unwrap();
    let imigrasi = hub.as_agency("imigrasi/kanim-kendari").await.unwrap();
    let tpi = hub.as_agency("imigrasi/tpi-cgk").await.unwrap();
    let polri = hub.as_agency("polri/polda-sultra").await.unwrap();
    let bp3mi = hub.as_agency("bp3mi/bp3mi-sultra").await.unwrap();
    let disnaker = hub.as_agency("disnaker/disnaker-konawe").await.unwrap();
    let desa = hub.as_agency("desa/74.02.05.2001").await.unwrap();
    let dinsos = hub.as_agency("dinsos/dinsos-sultra").await.unwrap();
    let kejaksaan = hub.as_agency("kejaksaan/kejati-sultra").await.unwrap();

    let mut acks: Vec<(PublishAck, &str, &str)> = Vec::new();
    let mut c = ImigrasiServiceClient::<Authed>::new(imigrasi);
    let r = c
        .record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(meta("kdi-2026-0001")),
            interview: Some(interview(1)),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "imigrasi/kanim-kendari",
        "timpora.imigrasi.passport_interview.v1",
    ));

    let mut c = ImigrasiServiceClient::new(tpi);
    let r = c
        .record_departure_check(RecordDepartureCheckRequest {
            meta: Some(EventMeta {
                region: "36.03".into(),
                ..meta("cgk-2026-0001")
            }),
            check: Some(DepartureCheck {
                traveller: Some(person(2)),
                checkpoint_code: "TPI-CGK".into(),
                carrier: "Garuda".into(),
                flight_or_voyage: "GA-820".into(),
                destination_country: "MY".into(),
                outcome: DepartureOutcome::Deferred as i32,
                indicators: vec![Indicator::NoReturnTicket as i32],
                companions: vec![person(3)],
                recruiters: vec![recruiter(2)],
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "imigrasi/tpi-cgk",
        "timpora.imigrasi.departure_check.v1",
    ));

    let mut c = PolriServiceClient::new(polri);
    let r = c
        .report_recruiter(ReportRecruiterRequest {
            meta: Some(meta("sultra-lp-0001")),
            report: Some(RecruiterReport {
                recruiter: Some(Recruiter {
                    name: "Calo Sintetis".into(),
                    village_code: "74.02.05.2001".into(),
                    ..Default::default()
                }),
                persons: vec![person(4)],
                channel: ReportChannel::VillageOfficer as i32,
                summary: "calo menawarkan kerja di luar negeri".into(),
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "polri/polda-sultra",
        "timpora.polri.recruiter_report.v1",
    ));
    let r = c
        .update_investigation(UpdateInvestigationRequest {
            meta: Some(meta("sultra-lp-0002")),
            investigation: Some(Investigation {
                case_number: "LP-B-12-2026".into(),
                status: InvestigationStatus::Opened as i32,
                persons: vec![person(4)],
                recruiters: vec![recruiter(9)],
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "polri/polda-sultra",
        "timpora.polri.investigation.v1",
    ));

    let mut c = Bp3miServiceClient::new(bp3mi);
    let r = c
        .update_cpmi_status(UpdateCpmiStatusRequest {
            meta: Some(meta("cpmi-0001")),
            status: Some(CpmiStatus {
                person: Some(person(5)),
                worker_id: "CPMI-7402-0001".into(),
                p3mi_licence: "KEP-123-2024".into(),
                destination_country: "TW".into(),
                job: "caregiver".into(),
                stage: CpmiStage::Registered as i32,
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "bp3mi/bp3mi-sultra",
        "timpora.bp3mi.cpmi_status.v1",
    ));
    let r = c
        .record_repatriation(RecordRepatriationRequest {
            meta: Some(meta("rep-0001")),
            repatriation: Some(Repatriation {
                person: Some(person(6)),
                country: "KH".into(),
                reason: RepatriationReason::Victim as i32,
                home_village: "74.02.05.2001".into(),
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "bp3mi/bp3mi-sultra",
        "timpora.bp3mi.repatriation.v1",
    ));

    let mut c = DisnakerServiceClient::new(disnaker);
    let r = c
        .record_recommendation(RecordRecommendationRequest {
            meta: Some(meta("rek-0001")),
            recommendation: Some(Recommendation {
                person: Some(person(7)),
                kind: RecommendationKind::PassportRecommendation as i32,
                status: RecommendationStatus::Issued as i32,
                p3mi_licence: "KEP-123-2024".into(),
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "disnaker/disnaker-konawe",
        "timpora.disnaker.recommendation.v1",
    ));
    let r = c
        .update_company_licence(UpdateCompanyLicenceRequest {
            meta: Some(meta("lic-0001")),
            licence: Some(CompanyLicence {
                p3mi_licence: "KEP-123-2024".into(),
                status: LicenceStatus::Suspended as i32,
                company_name: "PT Contoh Penempatan".into(),
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "disnaker/disnaker-konawe",
        "timpora.disnaker.company_licence.v1",
    ));

    let mut c = DesaServiceClient::new(desa);
    let r = c
        .submit_community_report(SubmitCommunityReportRequest {
            meta: Some(meta("desa-0001")),
            report: Some(CommunityReport {
                village_code: "74.02.05.2001".into(),
                reporter_role: ReporterRole::Pimpasa as i32,
                kind: CommunityReportKind::RecruiterActivity as i32,
                persons: vec![person(8)],
                recruiters: vec![recruiter(2)],
                summary: "orang asing menawarkan pekerjaan".into(),
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "desa/74.02.05.2001",
        "timpora.desa.community_report.v1",
    ));

    let mut c = DinsosServiceClient::new(dinsos);
    let r = c
        .record_victim_service(RecordVictimServiceRequest {
            meta: Some(meta("dinsos-0001")),
            service: Some(VictimService {
                person: Some(person(6)),
                service: VictimServiceKind::ShelterIntake as i32,
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "dinsos/dinsos-sultra",
        "timpora.dinsos.victim_service.v1",
    ));

    let mut c = KejaksaanServiceClient::new(kejaksaan);
    let r = c
        .update_prosecution(UpdateProsecutionRequest {
            meta: Some(meta("kejati-0001")),
            prosecution: Some(Prosecution {
                case_number: "PDM-7-2026".into(),
                status: ProsecutionStatus::Indicted as i32,
            }),
        })
        .await
        .unwrap();
    acks.push((
        ack(r.into_inner().ack),
        "kejaksaan/kejati-sultra",
        "timpora.kejaksaan.prosecution.v1",
    ));

    let stored = hub.stored().await.unwrap();
    assert_eq!(stored.len(), acks.len());
    for ((seq, ev), (ack, source, ty)) in stored.iter().zip(&acks) {
        assert_eq!(*seq, ack.sequence);
        assert_eq!(ev.source, *source, "source comes from the identity");
        assert_eq!(ev.r#type, *ty);
        assert_eq!(ack.r#type, *ty);
        assert_eq!(ev.spec_version, "1.0");
        assert!(ev.recorded_at.is_some());
        assert_eq!(ev.key_version, 1);
        assert!(ev.traceparent.starts_with("00-"), "{}", ev.traceparent);
        assert!(ev.subject.is_some(), "{ty} has a subject");
        for e in &ev.entities {
            match EntityKind::try_from(e.kind).unwrap() {
                EntityKind::Person => {
                    assert!(e.id.starts_with("psn_") && e.id.len() == 36, "{e:?}")
                }
                EntityKind::Recruiter => assert!(e.id.starts_with("rec_"), "{e:?}"),
                EntityKind::Document => assert!(e.id.starts_with("doc_"), "{e:?}"),
                _ => {}
            }
        }
        // The message is on the agency's own subject.
        let raw = hub
            .bus
            .jetstream()
            .get_stream(&hub.bus.topology().events_stream)
            .await
            .unwrap()
            .get_raw_message(*seq)
            .await
            .unwrap();
        let info = timpora_proto::type_by_name(ty).unwrap();
        assert_eq!(
            raw.subject.as_str(),
            hub.bus.topology().subject_for(info, &ev.region),
            "{ty}"
        );
    }

    // Same person, same token, whichever agency saw them: person 6 at BP3MI and at Dinsos.
    let token_of = |ty: &str| {
        let (_, ev) = stored.iter().find(|(_, e)| e.r#type == ty).unwrap();
        ev.subject.clone().unwrap().id
    };
    assert_eq!(
        token_of("timpora.bp3mi.repatriation.v1"),
        token_of("timpora.dinsos.victim_service.v1")
    );
    // Raw identifiers are gone from the payloads.
    match &stored[0].1.payload {
        Some(Payload::PassportInterview(p)) => {
            let a = p.applicant.as_ref().unwrap();
            assert!(a.nik.is_empty() && a.passport_number.is_empty());
            assert!(a.token.starts_with("psn_") && a.passport_token.starts_with("doc_"));
            assert!(p.recruiters[0].phone.is_empty() && p.recruiters[0].token.starts_with("rec_"));
        }
        other => panic!("unexpected payload {other:?}"),
    }

    // Readers: police read law-enforcement and sensitive events; immigration reads neither the
    // victim service record nor the repatriation of a victim (sensitive by default, issue 10);
    // a village reads nothing.
    let all = SubscribeRequest::default();
    let polri_sees = read_as(&hub, "polri/polda-sultra", all.clone(), acks.len()).await;
    assert_eq!(
        polri_sees.len(),
        acks.len(),
        "police may read every classification used"
    );
    let imigrasi_sees = read_as(&hub, "imigrasi/kanim-kendari", all.clone(), acks.len()).await;
    let types: Vec<_> = imigrasi_sees
        .iter()
        .map(|r| r.event.as_ref().unwrap().r#type.clone())
        .collect();
    assert_eq!(imigrasi_sees.len(), acks.len() - 2, "{types:?}");
    assert!(!types.contains(&"timpora.dinsos.victim_service.v1".to_owned()));
    assert!(!types.contains(&"timpora.bp3mi.repatriation.v1".to_owned()));
    let disnaker_sees = read_as(&hub, "disnaker/disnaker-konawe", all.clone(), acks.len()).await;
    assert!(
        disnaker_sees
            .iter()
            .all(|r| r.event.as_ref().unwrap().classification
                == Classification::OpenToMembers as i32)
    );
    assert!(!disnaker_sees.iter().any(|r| {
        r.event
            .as_ref()
            .unwrap()
            .r#type
            .starts_with("timpora.polri.")
    }));
    let mut desa = EventBusServiceClient::new(hub.as_agency("desa/74.02.05.2001").await.unwrap());
    let denied = desa.subscribe(all).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn subscribe_filters_and_resumes_from_its_cursor() {
    let hub = Hub::start().await.unwrap();
    let mut bus =
        EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    for i in 1..=4u32 {
        let mut ev = interview_event(&format!("ev-{i}"), i);
        if i % 2 == 0 {
            ev.region = "72.09".into(); // Tojo Una-Una
        }
        bus.publish(PublishRequest { event: Some(ev) })
            .await
            .unwrap();
    }
    let reader = "polri/polda-sultra";
    let konawe = read_as(
        &hub,
        reader,
        SubscribeRequest {
            regions: vec!["74.02".into()],
            ..Default::default()
        },
        4,
    )
    .await;
    assert_eq!(
        konawe
            .iter()
            .map(|r| r.event.as_ref().unwrap().id.as_str())
            .collect::<Vec<_>>(),
        ["ev-1", "ev-3"]
    );
    let prov72 = read_as(
        &hub,
        reader,
        SubscribeRequest {
            regions: vec!["72".into()],
            ..Default::default()
        },
        4,
    )
    .await;
    assert_eq!(prov72.len(), 2);
    let none = read_as(
        &hub,
        reader,
        SubscribeRequest {
            agencies: vec!["bp3mi".into()],
            ..Default::default()
        },
        4,
    )
    .await;
    assert!(none.is_empty());

    // Entity filter: the token of person 3.
    let first = read_as(&hub, reader, SubscribeRequest::default(), 4).await;
    let token3 = first[2]
        .event
        .as_ref()
        .unwrap()
        .subject
        .as_ref()
        .unwrap()
        .id
        .clone();
    let by_entity = read_as(
        &hub,
        reader,
        SubscribeRequest {
            entity_tokens: vec![token3],
            ..Default::default()
        },
        4,
    )
    .await;
    assert_eq!(by_entity.len(), 1);
    assert_eq!(by_entity[0].event.as_ref().unwrap().id, "ev-3");

    // Resume after the second event with its cursor; and from a sequence.
    let resumed = read_as(
        &hub,
        reader,
        SubscribeRequest {
            start: Some(subscribe_request::Start::Cursor(first[1].cursor.clone())),
            ..Default::default()
        },
        4,
    )
    .await;
    assert_eq!(
        resumed.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [3, 4]
    );
    let from4 = read_as(
        &hub,
        reader,
        SubscribeRequest {
            start: Some(subscribe_request::Start::StartSequence(4)),
            ..Default::default()
        },
        4,
    )
    .await;
    assert_eq!(from4.len(), 1);

    // From a time: the first event recorded at or after the third event's recorded time.
    let third_at = first[2].event.as_ref().unwrap().recorded_at.unwrap();
    let since = read_as(
        &hub,
        reader,
        SubscribeRequest {
            start: Some(subscribe_request::Start::StartTime(third_at)),
            ..Default::default()
        },
        4,
    )
    .await;
    assert_eq!(
        since.first().map(|r| r.sequence),
        Some(3),
        "{:?}",
        since.iter().map(|r| r.sequence).collect::<Vec<_>>()
    );

    // Only new events: nothing old, then the next one published.
    let mut client = EventBusServiceClient::new(hub.as_agency(reader).await.unwrap());
    let mut live = client
        .subscribe(SubscribeRequest {
            start: Some(subscribe_request::Start::OnlyNew(true)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(200)).await;
    bus.publish(PublishRequest {
        event: Some(interview_event("ev-5", 5)),
    })
    .await
    .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.event.unwrap().id, "ev-5");

    // Bad filters are named.
    let mut c = EventBusServiceClient::new(hub.as_agency(reader).await.unwrap());
    let err = c
        .subscribe(SubscribeRequest {
            types: vec!["timpora.nope.v1".into()],
            regions: vec!["7".into()],
            start: Some(subscribe_request::Start::Cursor("garbage".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_reader_that_leaves_releases_its_consumer_without_further_events() {
    let hub = Hub::start().await.unwrap();
    let mut bus =
        EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    bus.publish(PublishRequest {
        event: Some(interview_event("leave-1", 1)),
    })
    .await
    .unwrap();
    let consumers = async || -> Vec<String> {
        let status = hub.bus.status().await.unwrap();
        let events = status
            .streams
            .iter()
            .find(|s| s.name == "TIMPORA_EVENTS")
            .unwrap();
        events.consumers.iter().map(|c| c.name.clone()).collect()
    };
    // The gateway's own reader (the subject index follows the stream for good) is there first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while consumers().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no subject index");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = consumers().await;
    let got = read_as(&hub, "polri/polda-sultra", SubscribeRequest::default(), 1).await;
    assert_eq!(got.len(), 1);
    // `read_as` dropped its stream. No event follows; the gateway must still let go of the
    // reader's consumer (the server removes it once nobody pulls for 30 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while consumers().await.iter().any(|c| !before.contains(c)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer outlived its reader"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_village_reports_for_its_own_village_only() {
    let hub = Hub::start().await.unwrap();
    let mut desa = DesaServiceClient::new(hub.as_agency("desa/74.02.05.2001").await.unwrap());
    let report = |id: &str, region: &str| {
        let mut m = meta(id);
        m.region = region.into();
        SubmitCommunityReportRequest {
            meta: Some(m),
            report: Some(CommunityReport {
                village_code: region.into(),
                reporter_role: ReporterRole::Pimpasa as i32,
                kind: CommunityReportKind::RecruiterActivity as i32,
                ..Default::default()
            }),
        }
    };
    // A village in Palu is not this village's to report for.
    let refused = desa
        .submit_community_report(report("palu-1", "72.71.01.1007"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("own village"), "{refused:?}");
    assert_eq!(hub.last_sequence().await.unwrap(), 0, "nothing stored");
    // Its own village: stored.
    let ack = desa
        .submit_community_report(report("own-1", "74.02.05.2001"))
        .await
        .unwrap()
        .into_inner()
        .ack;
    let sequence = ack.map(|a| a.sequence).unwrap_or_default();
    assert!(sequence > 0);

    // Its receipts: its own report, as stored.
    let receipts = desa
        .list_community_reports(ListCommunityReportsRequest { page_size: 0 })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0].event_id, "own-1");
    assert_eq!(receipts[0].sequence, sequence);
    assert_eq!(receipts[0].kind(), CommunityReportKind::RecruiterActivity);
    assert!(receipts[0].received.is_some() && receipts[0].time.is_some());
    let too_many = desa
        .list_community_reports(ListCommunityReportsRequest { page_size: 101 })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    // Another village reads none of them; an agency is not a village and reads no receipts.
    let mut other = DesaServiceClient::new(hub.as_agency("desa/74.02.01.2007").await.unwrap());
    let theirs = other
        .list_community_reports(ListCommunityReportsRequest { page_size: 0 })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert!(theirs.is_empty(), "{theirs:?}");
    let mut agency = DesaServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let refused = agency
        .list_community_reports(ListCommunityReportsRequest { page_size: 0 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Operations count the reports per village; a village, which reads nothing, may not.
    let mut alerts = alert_service_client::AlertServiceClient::new(
        hub.as_agency("imigrasi/kanim-kendari").await.unwrap(),
    );
    let counts = alerts
        .count_community_reports(CountCommunityReportsRequest { days: 0 })
        .await
        .unwrap()
        .into_inner();
    let by_village: Vec<(&str, u64)> = counts
        .villages
        .iter()
        .map(|v| (v.village_code.as_str(), v.reports))
        .collect();
    assert_eq!(by_village, [("74.02.05.2001", 1)]);
    assert!(counts.since.is_some());
    let bad = alerts
        .count_community_reports(CountCommunityReportsRequest { days: 91 })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let mut village_alerts = alert_service_client::AlertServiceClient::new(
        hub.as_agency("desa/74.02.05.2001").await.unwrap(),
    );
    let denied = village_alerts
        .count_community_reports(CountCommunityReportsRequest { days: 0 })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
}

#[tokio::test]
async fn an_unreadable_record_is_skipped_and_said_not_the_end_of_every_reading() {
    let hub = Hub::start().await.unwrap();
    let mut c = EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let publish = async |c: &mut EventBusServiceClient<Authed>, id: &str, n: u32| {
        c.publish(PublishRequest {
            event: Some(interview_event(id, n)),
        })
        .await
        .unwrap()
    };
    publish(&mut c, "before-junk", 1).await;
    // A record that is not an event lands in the stream (the stream refuses deletes: it stays).
    let subject = format!(
        "{}.imigrasi.passport_interview.74.02.05.2001",
        hub.bus.topology().subject_prefix
    );
    hub.bus
        .jetstream()
        .publish(subject, bytes::Bytes::from_static(b"\xff\xfe not protobuf"))
        .await
        .unwrap()
        .await
        .unwrap();
    publish(&mut c, "after-junk", 2).await;
    let got = read_as(&hub, "polri/polda-sultra", SubscribeRequest::default(), 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].event.as_ref().unwrap().id, "before-junk");
    assert!(got[1].event.is_none());
    assert_eq!(got[1].sequence, 2);
    let reason = &got[1].skipped.as_ref().unwrap().reason;
    assert!(reason.contains("sequence 2"), "{reason}");
    assert_eq!(got[2].event.as_ref().unwrap().id, "after-junk");
    // Resuming from the skipped record's cursor goes on after it.
    let resumed = read_as(
        &hub,
        "polri/polda-sultra",
        SubscribeRequest {
            start: Some(subscribe_request::Start::Cursor(got[1].cursor.clone())),
            ..Default::default()
        },
        1,
    )
    .await;
    assert_eq!(resumed[0].event.as_ref().unwrap().id, "after-junk");
}
