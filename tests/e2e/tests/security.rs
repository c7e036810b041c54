//! Identity and authorisation: unauthenticated calls, other agencies' event types, mutual TLS
//! with the right CA, without a certificate, and with another CA's certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::bp3mi_service_client::Bp3miServiceClient;
use timpora_e2e::v1::event_bus_service_client::EventBusServiceClient;
use timpora_e2e::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_e2e::v1::*;
use timpora_testkit::pki::DevCa;
use tonic::Code;

#[tokio::test]
async fn calls_without_identity_are_unauthenticated() {
    let hub = Hub::start().await.unwrap();
    let mut anon = ImigrasiServiceClient::new(hub.channel().await.unwrap());
    let err = anon
        .record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(meta("anon-1")),
            interview: Some(interview(1)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut forged = ImigrasiServiceClient::with_interceptor(
        hub.channel().await.unwrap(),
        |mut r: tonic::Request<()>| {
            r.metadata_mut().insert(
                "authorization",
                "Bearer not-a-real-token-at-all".parse().unwrap(),
            );
            Ok(r)
        },
    );
    let err = forged
        .record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(meta("anon-2")),
            interview: Some(interview(1)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(hub.last_sequence().await.unwrap(), 0);
}

#[tokio::test]
async fn an_agency_cannot_publish_another_agencys_event_type() {
    let hub = Hub::start().await.unwrap();
    // A village calling the migrant-worker agency's service.
    let mut c = Bp3miServiceClient::new(hub.as_agency("desa/74.02.05.2001").await.unwrap());
    let err = c
        .update_cpmi_status(UpdateCpmiStatusRequest {
            meta: Some(meta("cpmi-1")),
            status: Some(CpmiStatus {
                person: Some(person(1)),
                worker_id: "CPMI-1".into(),
                p3mi_licence: "KEP-1".into(),
                destination_country: "TW".into(),
                job: "x".into(),
                stage: CpmiStage::Registered as i32,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("desa/74.02.05.2001"));
    // Immigration publishing a police report through the generic bus.
    let mut bus =
        EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let mut ev = interview_event("x-1", 1);
    ev.payload = Some(event::Payload::RecruiterReport(RecruiterReport {
        recruiter: Some(recruiter(1)),
        channel: ReportChannel::Hotline as i32,
        ..Default::default()
    }));
    let err = bus
        .publish(PublishRequest { event: Some(ev) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A type that disagrees with the payload is named.
    let mut ev = interview_event("x-2", 1);
    ev.r#type = "timpora.bp3mi.cpmi_status.v1".into();
    let err = bus
        .publish(PublishRequest { event: Some(ev) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // A forged source is replaced by the caller's identity.
    let mut ev = interview_event("x-3", 1);
    ev.source = "polri/mabes".into();
    bus.publish(PublishRequest { event: Some(ev) })
        .await
        .unwrap();
    let stored = hub.stored().await.unwrap();
    assert_eq!(stored.len(), 1, "nothing refused was stored");
    assert_eq!(stored[0].1.source, "imigrasi/kanim-kendari");
}

#[tokio::test]
async fn mutual_tls_takes_the_identity_from_the_certificate_and_refuses_strangers() {
    let hub = Hub::builder().tls().start().await.unwrap();
    let ca = hub.ca().unwrap();
    let good = ca.client("imigrasi/tpi-cgk").unwrap();

    let channel = hub
        .tls_channel(Some((&good.cert_pem, &good.key_pem)))
        .await
        .unwrap();
    let mut c = ImigrasiServiceClient::new(channel);
    let ack = c
        .record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(meta("tls-1")),
            interview: Some(interview(1)),
        })
        .await
        .unwrap()
        .into_inner()
        .ack
        .unwrap();
    assert_eq!(ack.source, "imigrasi/tpi-cgk");

    // No client certificate: the handshake (or the first call) is refused.
    let refused = match hub.tls_channel(None).await {
        Err(_) => true,
        Ok(ch) => {
            let mut c = ImigrasiServiceClient::new(ch);
            let r = c
                .record_passport_interview(RecordPassportInterviewRequest {
                    meta: Some(meta("tls-2")),
                    interview: Some(interview(1)),
                })
                .await;
            matches!(r, Err(ref s) if s.code() == Code::Unavailable || s.code() == Code::Unauthenticated || s.code() == Code::Unknown)
        }
    };
    assert!(refused, "a client without a certificate must be refused");

    // A certificate from another CA: refused.
    let other = DevCa::generate("somebody else's ca").unwrap();
    let stranger = other.client("imigrasi/tpi-cgk").unwrap();
    let refused = match hub
        .tls_channel(Some((&stranger.cert_pem, &stranger.key_pem)))
        .await
    {
        Err(_) => true,
        Ok(ch) => ImigrasiServiceClient::new(ch)
            .record_passport_interview(RecordPassportInterviewRequest {
                meta: Some(meta("tls-3")),
                interview: Some(interview(1)),
            })
            .await
            .is_err(),
    };
    assert!(refused, "a certificate from another CA must be refused");
    assert_eq!(
        hub.stored().await.unwrap().len(),
        1,
        "only the authenticated call stored"
    );
}
