//! The gRPC services: one per agency, in its own terms, and the generic event bus.

use std::collections::HashSet;
use std::pin::Pin;

use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use timpora_bus::Start;
use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;
use timpora_proto::{EventTypeInfo, type_by_name};

use crate::access::Read;
use crate::error::{Error, rejection};
use crate::identity::{Authenticator, Identity, caller};
use crate::ingest::{Ingest, Paths};
use crate::policy::Policy;
use crate::trace;
use crate::validate::{self, Violations};

/// What the services share: the send path, the bus, the policy.
pub(crate) struct Shared {
    pub ingest: Ingest,
    pub bus: timpora_bus::Bus,
    pub policy: std::sync::Arc<Policy>,
}

/// Fully qualified names of the event services (for health).
pub const NAMES: &[&str] = &[
    "timpora.v1.ImigrasiService",
    "timpora.v1.PolriService",
    "timpora.v1.Bp3miService",
    "timpora.v1.DisnakerService",
    "timpora.v1.DesaService",
    "timpora.v1.DinsosService",
    "timpora.v1.KejaksaanService",
    "timpora.v1.EventBusService",
    "timpora.v1.AlertService",
];

/// Add every event service, behind the authenticator and the request size limit.
pub fn add_all(router: Router, shared: &Shared, auth: &Authenticator, max_bytes: usize) -> Router {
    let ingest = &shared.ingest;
    let a = Agencies {
        ingest: ingest.clone(),
        bus: shared.bus.clone(),
    };
    macro_rules! svc {
        ($server:ident, $inner:expr) => {
            InterceptedService::new(
                $server::new($inner).max_decoding_message_size(max_bytes),
                auth.clone(),
            )
        };
    }
    use bp3mi_service_server::Bp3miServiceServer;
    use desa_service_server::DesaServiceServer;
    use dinsos_service_server::DinsosServiceServer;
    use disnaker_service_server::DisnakerServiceServer;
    use event_bus_service_server::EventBusServiceServer;
    use imigrasi_service_server::ImigrasiServiceServer;
    use kejaksaan_service_server::KejaksaanServiceServer;
    use polri_service_server::PolriServiceServer;
    router
        .add_service(svc!(ImigrasiServiceServer, a.clone()))
        .add_service(svc!(PolriServiceServer, a.clone()))
        .add_service(svc!(Bp3miServiceServer, a.clone()))
        .add_service(svc!(DisnakerServiceServer, a.clone()))
        .add_service(svc!(DesaServiceServer, a.clone()))
        .add_service(svc!(DinsosServiceServer, a.clone()))
        .add_service(svc!(KejaksaanServiceServer, a.clone()))
        .add_service(svc!(
            EventBusServiceServer,
            EventBus {
                ingest: ingest.clone(),
                bus: shared.bus.clone(),
                policy: shared.policy.clone(),
            }
        ))
}

#[derive(Clone)]
struct Agencies {
    ingest: Ingest,
    /// For what an agency reads back of its own reports.
    bus: timpora_bus::Bus,
}

/// One agency service: each typed method wraps its payload in the envelope and runs the
/// shared pipeline; the service's other methods follow as they are.
macro_rules! agency_service {
    ($service:path { $($method:ident($req:ty) -> $resp:ident { $field:ident => $variant:ident })* } $($other:tt)*) => {
        #[tonic::async_trait]
        impl $service for Agencies {
            $(
            async fn $method(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                let who = caller(&req)?;
                let tp = trace::traceparent(&req);
                let r = req.into_inner();
                // Without the payload, an empty one is checked all the same, so that the
                // answer names every missing field at once, not only the first.
                let missing = r.$field.is_none();
                let payload = r.$field.unwrap_or_default();
                let meta = r.meta.unwrap_or_default();
                let ev = Event {
                    id: meta.id,
                    time: meta.time,
                    region: meta.region,
                    classification: meta.classification,
                    payload: Some(Payload::$variant(payload)),
                    ..Default::default()
                };
                let paths = Paths {
                    meta: "meta.",
                    payload_parent: "",
                    payload: stringify!($field),
                };
                if missing {
                    let mut vs = Violations::default();
                    vs.add(stringify!($field), "required");
                    match self.ingest.prepare(&who, ev, &paths, tp) {
                        Err(Error::Invalid(more)) => vs.extend(more),
                        Err(e) => return Err(e.into()),
                        Ok(_) => {}
                    }
                    return Err(Error::Invalid(vs).into());
                }
                let ack = self.ingest.send(&who, ev, &paths, tp).await.await?;
                Ok(Response::new($resp { ack: Some(ack) }))
            }
            )*
            $($other)*
        }
    };
}

agency_service!(imigrasi_service_server::ImigrasiService {
    record_passport_interview(RecordPassportInterviewRequest) -> RecordPassportInterviewResponse {
        interview => PassportInterview
    }
    record_departure_check(RecordDepartureCheckRequest) -> RecordDepartureCheckResponse {
        check => DepartureCheck
    }
});

agency_service!(polri_service_server::PolriService {
    report_recruiter(ReportRecruiterRequest) -> ReportRecruiterResponse {
        report => RecruiterReport
    }
    update_investigation(UpdateInvestigationRequest) -> UpdateInvestigationResponse {
        investigation => Investigation
    }
});

agency_service!(bp3mi_service_server::Bp3miService {
    update_cpmi_status(UpdateCpmiStatusRequest) -> UpdateCpmiStatusResponse {
        status => CpmiStatus
    }
    record_repatriation(RecordRepatriationRequest) -> RecordRepatriationResponse {
        repatriation => Repatriation
    }
});

agency_service!(disnaker_service_server::DisnakerService {
    record_recommendation(RecordRecommendationRequest) -> RecordRecommendationResponse {
        recommendation => Recommendation
    }
    update_company_licence(UpdateCompanyLicenceRequest) -> UpdateCompanyLicenceResponse {
        licence => CompanyLicence
    }
});

agency_service!(desa_service_server::DesaService {
    submit_community_report(SubmitCommunityReportRequest) -> SubmitCommunityReportResponse {
        report => CommunityReport
    }
}
    async fn list_community_reports(
        &self,
        req: Request<ListCommunityReportsRequest>,
    ) -> Result<Response<ListCommunityReportsResponse>, Status> {
        let who = caller(&req)?;
        // A read of the receipts costs the bus a consumer: it takes one of the caller's tokens.
        self.ingest.take_token(&who)?;
        let page_size = req.into_inner().page_size;
        crate::villages::receipts(&self.bus, &who, page_size)
            .await
            .map(Response::new)
    }
);

agency_service!(dinsos_service_server::DinsosService {
    record_victim_service(RecordVictimServiceRequest) -> RecordVictimServiceResponse {
        service => VictimService
    }
});

agency_service!(kejaksaan_service_server::KejaksaanService {
    update_prosecution(UpdateProsecutionRequest) -> UpdateProsecutionResponse {
        prosecution => Prosecution
    }
});

struct EventBus {
    ingest: Ingest,
    bus: timpora_bus::Bus,
    policy: std::sync::Arc<Policy>,
}

/// Events of one `PublishStream` in flight at once (pipelined JetStream acknowledgements).
pub const STREAM_WINDOW: usize = 512;

fn bus_paths(ev: &Event) -> Paths {
    Paths {
        meta: "event.",
        payload_parent: "event.",
        payload: ev.payload.as_ref().map_or("payload", payload_field),
    }
}

/// The proto field name of a payload variant in `Event`.
fn payload_field(p: &Payload) -> &'static str {
    let info = timpora_proto::type_of(p);
    if info.domain == "case" {
        "case_status_changed"
    } else {
        info.short
    }
}

pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
type Pending = Pin<Box<dyn std::future::Future<Output = PublishStreamResponse> + Send>>;

#[tonic::async_trait]
impl event_bus_service_server::EventBusService for EventBus {
    async fn publish(
        &self,
        req: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let who = caller(&req)?;
        let tp = trace::traceparent(&req);
        let Some(ev) = req.into_inner().event else {
            // And what an empty event lacks, so the answer names every required field.
            let mut vs = Violations::default();
            vs.add("event", "required");
            let empty = Event::default();
            let paths = bus_paths(&empty);
            if let Err(Error::Invalid(more)) = self.ingest.prepare(&who, empty, &paths, tp) {
                vs.extend(more);
            }
            return Err(Error::Invalid(vs).into());
        };
        let paths = bus_paths(&ev);
        let ack = self.ingest.send(&who, ev, &paths, tp).await.await?;
        Ok(Response::new(PublishResponse { ack: Some(ack) }))
    }

    type PublishStreamStream = BoxStream<PublishStreamResponse>;

    async fn publish_stream(
        &self,
        req: Request<Streaming<PublishStreamRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let who = caller(&req)?;
        let tp = trace::traceparent(&req);
        let mut inbound = req.into_inner();
        let ingest = self.ingest.clone();
        let (tx, rx) = mpsc::channel(STREAM_WINDOW);
        tokio::spawn(async move {
            let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
            let mut index = 0u64;
            let mut open = true;
            loop {
                tokio::select! {
                    biased;
                    Some(resp) = pending.next(), if !pending.is_empty() => {
                        if tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                    msg = inbound.message(), if open && pending.len() < STREAM_WINDOW => {
                        match msg {
                            Ok(Some(r)) => {
                                let i = index;
                                index += 1;
                                pending.push_back(start_one(&ingest, &who, r, i, &tp).await);
                            }
                            Ok(None) => open = false,
                            Err(status) => {
                                tracing::debug!(source = %who, error = %status, "publish stream broken");
                                return;
                            }
                        }
                    }
                    else => return,
                }
            }
        }
        // Each event's spans (and log lines) belong to the call's.
        .instrument(tracing::Span::current()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type SubscribeStream = BoxStream<SubscribeResponse>;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let read = Read {
            action: "subscribe",
            who: who.clone(),
            operator: String::new(),
            filter: format!("{r:?}"),
            alert_id: String::new(),
        };
        let filter = match Filter::parse(&r) {
            Ok(f) => f,
            Err(s) => return Err(read.refused(&self.bus, s).await),
        };
        let policy = self.policy.clone();
        if !policy.reads_anything(&who.agency) {
            let s = Status::permission_denied(format!("{who} may not read events"));
            return Err(read.refused(&self.bus, s).await);
        }
        let start = match start_of(r.start) {
            Ok(s) => s,
            Err(s) => return Err(read.refused(&self.bus, s).await),
        };
        let mut events = self
            .bus
            .replay(self.bus.topology().filter_subject(&filter.types), start)
            .await
            .map_err(Error::from)?;
        let mut closing = read.open(&self.bus).await?;
        tracing::info!(reader = %who, types = ?r.types, regions = ?r.regions, "subscription opened");
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut skipped = 0u64;
            loop {
                // A reader that went away is noticed at once, not only at the next event.
                let item = tokio::select! {
                    _ = tx.closed() => break,
                    item = events.next() => item,
                };
                let Some(item) = item else { break };
                let out = match item {
                    Ok(d) => {
                        let class =
                            Classification::try_from(d.event.classification).unwrap_or_default();
                        if !policy.may_read(&who.agency, class) || !filter.matches(&d.event) {
                            continue;
                        }
                        Ok(SubscribeResponse {
                            cursor: format!("{CURSOR_PREFIX}{}", d.sequence),
                            sequence: d.sequence,
                            event: Some(d.event),
                            skipped: None,
                        })
                    }
                    // A record that is not an event is gone past, said, and counted: it must
                    // not end every reading of the stream from here on.
                    Err(e) if e.kind() == timpora_bus::ErrorKind::Malformed => {
                        let Some(sequence) = e.sequence() else {
                            continue;
                        };
                        skipped += 1;
                        tracing::warn!(reader = %who, sequence, skipped, error = %e, "unreadable record skipped");
                        Ok(SubscribeResponse {
                            cursor: format!("{CURSOR_PREFIX}{sequence}"),
                            sequence,
                            event: None,
                            skipped: Some(SkippedRecord {
                                reason: e.to_string(),
                            }),
                        })
                    }
                    Err(e) => Err(Status::from(Error::from(e))),
                };
                let failed = out.is_err();
                if tx.send(out).await.is_err() || failed {
                    break;
                }
                closing.returned(1);
            }
            tracing::info!(reader = %who, "subscription closed");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Prepare one streamed event and start its publish; the future yields its response.
async fn start_one(
    ingest: &Ingest,
    who: &Identity,
    r: PublishStreamRequest,
    index: u64,
    tp: &str,
) -> Pending {
    let Some(ev) = r.event else {
        let mut vs = Violations::default();
        vs.add("event", "required");
        let resp = response(index, String::new(), Err(Error::Invalid(vs)));
        return Box::pin(std::future::ready(resp));
    };
    let id = ev.id.clone();
    let paths = bus_paths(&ev);
    let sent = ingest.send(who, ev, &paths, tp.to_owned()).await;
    Box::pin(async move { response(index, id, sent.await) })
}

fn response(index: u64, event_id: String, r: Result<PublishAck, Error>) -> PublishStreamResponse {
    PublishStreamResponse {
        index,
        event_id,
        result: Some(match r {
            Ok(ack) => publish_stream_response::Result::Ack(ack),
            Err(e) => publish_stream_response::Result::Rejection(rejection(e)),
        }),
    }
}

const CURSOR_PREFIX: &str = "c1.";

fn start_of(start: Option<subscribe_request::Start>) -> Result<Start, Status> {
    use subscribe_request::Start as S;
    let bad = |field: &str, why: &str| {
        let mut vs = Violations::default();
        vs.add(field, why);
        Status::from(Error::Invalid(vs))
    };
    Ok(match start {
        None => Start::All,
        Some(S::OnlyNew(true)) => Start::New,
        Some(S::OnlyNew(false)) => Start::All,
        Some(S::StartSequence(s)) => Start::Sequence(s.max(1)),
        Some(S::StartTime(t)) => {
            let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
            Start::Time(
                time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
                    .map_err(|_| bad("start_time", "not a valid timestamp"))?,
            )
        }
        Some(S::Cursor(c)) => {
            let seq: u64 = c
                .strip_prefix(CURSOR_PREFIX)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("cursor", "not a cursor handed out by Subscribe"))?;
            Start::Sequence(seq + 1)
        }
    })
}

/// The filters of a subscription (or a replay) beyond what the subject expresses.
pub(crate) struct Filter {
    types: Vec<&'static EventTypeInfo>,
    agencies: HashSet<String>,
    regions: Vec<String>,
    entities: HashSet<String>,
}

impl Filter {
    fn parse(r: &SubscribeRequest) -> Result<Self, Status> {
        Self::check(r).map_err(|vs| Error::Invalid(vs).into())
    }

    /// The filter, or every field that is wrong.
    pub(crate) fn check(r: &SubscribeRequest) -> Result<Self, Violations> {
        let mut vs = Violations::default();
        let mut types = Vec::new();
        for (i, t) in r.types.iter().enumerate() {
            match type_by_name(t) {
                Some(info) => types.push(info),
                None => vs.add(format!("types[{i}]"), format!("unknown event type {t:?}")),
            }
        }
        for (i, a) in r.agencies.iter().enumerate() {
            if Identity::parse(&format!("{a}/x")).is_none() {
                vs.add(format!("agencies[{i}]"), "not an agency code");
            }
        }
        for (i, region) in r.regions.iter().enumerate() {
            if let Some(e) = validate::check_area(region) {
                vs.add(format!("regions[{i}]"), e);
            }
        }
        for (i, e) in r.entity_tokens.iter().enumerate() {
            if e.is_empty() || e.len() > 128 {
                vs.add(format!("entity_tokens[{i}]"), "must be 1-128 characters");
            }
        }
        if !vs.is_empty() {
            return Err(vs);
        }
        Ok(Self {
            types,
            agencies: r.agencies.iter().cloned().collect(),
            regions: r.regions.clone(),
            entities: r.entity_tokens.iter().cloned().collect(),
        })
    }

    /// Whether nothing narrows.
    pub(crate) fn is_empty(&self) -> bool {
        self.types.is_empty()
            && self.agencies.is_empty()
            && self.regions.is_empty()
            && self.entities.is_empty()
    }

    pub(crate) fn matches(&self, ev: &Event) -> bool {
        // The hub's own clock ticks only go to readers who ask for them by type.
        let type_ok = if self.types.is_empty() {
            !ev.r#type.starts_with("timpora.hub.")
        } else {
            self.types.iter().any(|t| t.name == ev.r#type)
        };
        let agency = ev.source.split('/').next().unwrap_or_default();
        let agency_ok = self.agencies.is_empty() || self.agencies.contains(agency);
        let region_ok = self.regions.is_empty()
            || self.regions.iter().any(|r| {
                ev.region == *r
                    || ev
                        .region
                        .strip_prefix(r.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            });
        let entity_ok =
            self.entities.is_empty() || ev.entities.iter().any(|e| self.entities.contains(&e.id));
        type_ok && agency_ok && region_ok && entity_ok
    }
}
