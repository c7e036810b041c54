//! Bad input: every validation rule gets `INVALID_ARGUMENT` with a `google.rpc.BadRequest` naming
//! the field; nothing of the request is stored; the server keeps answering.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::{Duration, SystemTime};

use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::bp3mi_service_client::Bp3miServiceClient;
use timpora_e2e::v1::desa_service_client::DesaServiceClient;
use timpora_e2e::v1::event_bus_service_client::EventBusServiceClient;
use timpora_e2e::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_e2e::v1::*;
use tonic::Code;
use tonic_types::StatusExt;

/// A change that makes a valid request invalid.
type Mutation = Box<dyn FnOnce(&mut RecordPassportInterviewRequest)>;

/// The fields a rejected status names.
fn fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let br = details
        .bad_request()
        .expect("google.rpc.BadRequest details");
    br.field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

async fn reject(
    hub: &Hub,
    mutate: impl FnOnce(&mut RecordPassportInterviewRequest),
) -> Vec<String> {
    let mut c = ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let mut req = RecordPassportInterviewRequest {
        meta: Some(meta("bad-1")),
        interview: Some(interview(1)),
    };
    mutate(&mut req);
    let err = c.record_passport_interview(req).await.unwrap_err();
    fields(&err)
}

fn applicant(r: &mut RecordPassportInterviewRequest) -> &mut Person {
    r.interview.as_mut().unwrap().applicant.as_mut().unwrap()
}

#[tokio::test]
async fn each_rule_names_its_field_and_nothing_is_stored() {
    let hub = Hub::start().await.unwrap();
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "interview.applicant.nik",
            Box::new(|r| applicant(r).nik = "74020541079".into()),
        ),
        (
            "interview.applicant.nik",
            Box::new(|r| applicant(r).nik = "9902054107900001".into()),
        ),
        (
            "interview.applicant.passport_number",
            Box::new(|r| applicant(r).passport_number = "12-34".into()),
        ),
        (
            "interview.recruiters[0].phone",
            Box::new(|r| r.interview.as_mut().unwrap().recruiters[0].phone = "0812345678".into()),
        ),
        (
            "interview.destination_country",
            Box::new(|r| r.interview.as_mut().unwrap().destination_country = "XX".into()),
        ),
        (
            "meta.region",
            Box::new(|r| r.meta.as_mut().unwrap().region = "74.2".into()),
        ),
        (
            "meta.time",
            Box::new(|r| {
                r.meta.as_mut().unwrap().time =
                    Some((SystemTime::now() + Duration::from_secs(600)).into())
            }),
        ),
        (
            "meta.time",
            Box::new(|r| {
                r.meta.as_mut().unwrap().time =
                    Some((SystemTime::now() - Duration::from_secs(20 * 365 * 86_400)).into())
            }),
        ),
        (
            "meta.time",
            Box::new(|r| r.meta.as_mut().unwrap().time = None),
        ),
        (
            "interview.outcome",
            Box::new(|r| r.interview.as_mut().unwrap().outcome = 0),
        ),
        (
            "interview.declared_purpose",
            Box::new(|r| r.interview.as_mut().unwrap().declared_purpose = 99),
        ),
        (
            "interview.indicators[1]",
            Box::new(|r| r.interview.as_mut().unwrap().indicators[1] = 0),
        ),
        (
            "meta.id",
            Box::new(|r| r.meta.as_mut().unwrap().id = "x".repeat(129)),
        ),
        (
            "meta.id",
            Box::new(|r| r.meta.as_mut().unwrap().id = String::new()),
        ),
        (
            "interview.applicant.name",
            Box::new(|r| applicant(r).name = "n".repeat(129)),
        ),
        (
            "interview.applicant",
            Box::new(|r| *applicant(r) = Person::default()),
        ),
        (
            "interview.applicant.passport_token",
            Box::new(|r| applicant(r).passport_token = "doc_x".into()),
        ),
        ("interview", Box::new(|r| r.interview = None)),
    ];
    for (field, mutate) in cases {
        let got = reject(&hub, mutate).await;
        assert!(
            got.contains(&field.to_owned()),
            "expected {field} in {got:?}"
        );
    }
    // Several wrong fields are all named in one answer.
    let many = reject(&hub, |r| {
        applicant(r).nik = "1".into();
        r.meta.as_mut().unwrap().region = String::new();
        r.interview.as_mut().unwrap().outcome = 0;
    })
    .await;
    assert_eq!(many.len(), 3, "{many:?}");
    assert_eq!(
        hub.last_sequence().await.unwrap(),
        0,
        "nothing of a bad request is stored"
    );

    // Free text: too long, or carrying an identifier.
    let mut desa = DesaServiceClient::new(hub.as_agency("desa/74.02.05.2001").await.unwrap());
    for summary in [
        "x".repeat(281),
        "warga NIK 7402054107900001 berangkat".to_owned(),
    ] {
        let err = desa
            .submit_community_report(SubmitCommunityReportRequest {
                meta: Some(meta("desa-bad")),
                report: Some(CommunityReport {
                    village_code: "74.02".into(),
                    reporter_role: ReporterRole::VillageHead as i32,
                    kind: CommunityReportKind::ResidentDeparted as i32,
                    summary,
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        let f = fields(&err);
        assert!(f.contains(&"report.summary".to_owned()), "{f:?}");
        assert!(
            f.contains(&"report.village_code".to_owned()),
            "a regency is not a village: {f:?}"
        );
    }
    let mut bp3mi = Bp3miServiceClient::new(hub.as_agency("bp3mi/bp3mi-sultra").await.unwrap());
    let err = bp3mi
        .update_cpmi_status(UpdateCpmiStatusRequest {
            meta: Some(meta("cpmi-bad")),
            status: Some(CpmiStatus {
                person: Some(person(1)),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    let f = fields(&err);
    for expected in [
        "status.worker_id",
        "status.p3mi_licence",
        "status.destination_country",
        "status.stage",
    ] {
        assert!(f.contains(&expected.to_owned()), "{expected} in {f:?}");
    }
    assert_eq!(hub.last_sequence().await.unwrap(), 0);

    // The server still answers a good request.
    let mut c = ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let ok = c
        .record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(meta("good-1")),
            interview: Some(interview(1)),
        })
        .await
        .unwrap();
    assert_eq!(ok.into_inner().ack.unwrap().sequence, 1);
}

/// Sends raw bytes as a gRPC request body.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(hub: &Hub, body: Vec<u8>) -> tonic::Status {
    let channel = hub.as_agency("imigrasi/kanim-kendari").await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/timpora.v1.EventBusService/Publish");
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn garbage_and_oversized_requests_are_refused_and_the_server_stays_up() {
    let hub = Hub::start().await.unwrap();
    let garbage = raw_call(&hub, vec![0xff, 0xff, 0xff, 0x0f, 0x12, 0x99, 0x01]).await;
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    assert!(
        garbage.message().contains("not a valid protobuf"),
        "{garbage:?}"
    );

    // A well-formed but oversized request (a 100 KiB summary) is refused before decoding.
    let mut ev = interview_event("big-1", 1);
    ev.payload = Some(event::Payload::CommunityReport(CommunityReport {
        summary: "x".repeat(100 * 1024),
        ..Default::default()
    }));
    let big = prost::Message::encode_to_vec(&PublishRequest { event: Some(ev) });
    assert!(big.len() > hub.config.limits.max_request_bytes);
    let oversized = raw_call(&hub, big).await;
    assert_eq!(oversized.code(), Code::OutOfRange, "{oversized:?}");
    assert!(oversized.message().contains("too large"), "{oversized:?}");

    assert_eq!(hub.last_sequence().await.unwrap(), 0);
    assert!(hub.gateway_running());
    let mut c = timpora_e2e::v1::event_bus_service_client::EventBusServiceClient::new(
        hub.as_agency("imigrasi/kanim-kendari").await.unwrap(),
    );
    let ok = c
        .publish(PublishRequest {
            event: Some(interview_event("after-1", 1)),
        })
        .await
        .unwrap();
    assert_eq!(ok.into_inner().ack.unwrap().sequence, 1);
}

#[tokio::test]
async fn an_empty_request_names_every_missing_required_field() {
    let hub = Hub::start().await.unwrap();
    let mut c = ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let err = c
        .record_passport_interview(RecordPassportInterviewRequest::default())
        .await
        .unwrap_err();
    let named = fields(&err);
    for field in [
        "interview",
        "meta.id",
        "meta.time",
        "meta.region",
        "interview.applicant",
        "interview.declared_purpose",
        "interview.destination_country",
        "interview.outcome",
    ] {
        assert!(named.iter().any(|f| f == field), "{field} not in {named:?}");
    }
    // Several faults at once are all named, the envelope's and the payload's.
    let err = c
        .record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(EventMeta {
                id: "ok-1".into(),
                ..Default::default()
            }),
            interview: Some(PassportInterview {
                destination_country: "XX".into(),
                ..interview(1)
            }),
        })
        .await
        .unwrap_err();
    let named = fields(&err);
    for field in ["meta.time", "meta.region", "interview.destination_country"] {
        assert!(named.iter().any(|f| f == field), "{field} not in {named:?}");
    }
    // The generic publish likewise, for an empty request and an empty event.
    let mut bus =
        EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    for request in [
        PublishRequest::default(),
        PublishRequest {
            event: Some(Event::default()),
        },
    ] {
        let err = bus.publish(request).await.unwrap_err();
        let named = fields(&err);
        for field in ["event.payload", "event.id", "event.time", "event.region"] {
            assert!(named.iter().any(|f| f == field), "{field} not in {named:?}");
        }
    }
    assert!(hub.stored().await.unwrap().is_empty(), "nothing stored");
}
