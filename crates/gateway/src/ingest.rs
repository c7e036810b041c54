//! The ingest pipeline shared by every publishing call: check the payload and its type against
//! the caller's rights, validate every field, replace raw identifiers by tokens, derive the
//! entities and subject, stamp what the hub owns (source, type, recorded time, trace context,
//! key version), publish, and answer only after JetStream stored it.

use std::sync::Arc;
use std::time::Instant;
use std::time::SystemTime;

use tracing::Instrument;

use timpora_bus::Bus;
use timpora_proto::v1::{Classification, EntityKind, EntityRef, Event, PublishAck};
use timpora_proto::{SPEC_VERSION, type_of};

use crate::error::Error;
use crate::identity::Identity;
use crate::payload::Check;
use crate::policy::{Places, Policy};
use crate::pseudo::Pseudonymiser;
use crate::rate::Rates;
use crate::slots::{Slot, walk};
use crate::validate::{self as v, Limits, Violations};

/// How fields are named in errors: `event.` and `event.passport_interview.` for the generic
/// bus, `meta.` and `interview.` for a typed agency call.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Prefix of envelope fields (`event.` or `meta.`).
    pub meta: &'static str,
    /// Where the payload sits (`event.` for the generic bus, empty for a typed call).
    pub payload_parent: &'static str,
    /// The payload's field name (`passport_interview`, `interview`).
    pub payload: &'static str,
}

/// The shared pipeline.
#[derive(Debug, Clone)]
pub struct Ingest {
    bus: Bus,
    preparer: Preparer,
    rates: Arc<Rates>,
    /// The ids already stored: a retry is answered as a duplicate however late.
    ids: Option<crate::ids::StoredIds>,
    /// How long a publish waits for `ids` to know every id stored before the gateway started.
    index_wait: std::time::Duration,
    metrics: crate::metrics::Metrics,
}

/// What happens to an event before it goes to the bus: the caller's rights, every field,
/// pseudonymisation, the hub's own envelope fields. No NATS involved.
#[derive(Debug, Clone)]
pub struct Preparer {
    policy: Arc<Policy>,
    places: Arc<Places>,
    pseudo: Arc<Pseudonymiser>,
    limits: Limits,
    /// At a provincial office: the office, whose stream takes its regions' events only.
    office: Option<Arc<timpora_bus::Office>>,
}

impl Ingest {
    /// Take one of `who`'s tokens for something other than a publish (a read that costs the
    /// bus work), or `RateLimited` with the time to wait.
    pub(crate) fn take_token(&self, who: &Identity) -> Result<(), Error> {
        self.rates.take(&who.source()).map_err(Error::RateLimited)
    }

    /// Assemble the pipeline.
    pub fn new(bus: Bus, preparer: Preparer, rates: Rates) -> Self {
        Self {
            bus,
            preparer,
            rates: Arc::new(rates),
            ids: None,
            index_wait: std::time::Duration::from_secs(10),
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// Count every answer in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Answer a retry of an id already stored as a duplicate, whenever it comes.
    pub fn with_stored_ids(mut self, ids: crate::ids::StoredIds) -> Self {
        self.ids = Some(ids);
        self
    }

    /// Where `ev`'s id was stored already, waiting (a little) for the index to know every id
    /// stored before the gateway started. Still reading after that: unavailable (the caller
    /// retries), since JetStream's own duplicate window is minutes long and a retry of an
    /// older event would otherwise be stored a second time.
    async fn stored_before(&self, ev: &Event) -> Result<Option<u64>, Error> {
        let Some(ids) = self.ids.as_ref() else {
            return Ok(None);
        };
        let deadline = tokio::time::Instant::now() + self.index_wait;
        while !ids.complete() {
            if tokio::time::Instant::now() >= deadline {
                let (read, of) = ids.progress();
                return Err(Error::Unavailable(format!(
                    "the gateway is still reading the ids stored before it started ({read} of {of}); try again shortly"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(ids.stored(&ev.source, &ev.id))
    }

    /// Check, validate and pseudonymise `ev` from `who`; the result is what will be stored.
    pub fn prepare(
        &self,
        who: &Identity,
        ev: Event,
        paths: &Paths,
        traceparent: String,
    ) -> Result<Event, Error> {
        self.preparer.prepare(who, ev, paths, traceparent)
    }
}

impl Preparer {
    /// The envelope's own fields (`m` their path prefix): id, time, region.
    fn check_envelope(&self, ev: &Event, m: &str, now: SystemTime, vs: &mut Violations) {
        if let Some(e) = v::check_ident(&ev.id, 128) {
            vs.add(format!("{m}id"), e);
        }
        if let Some(e) = v::check_time(ev.time.as_ref(), now, &self.limits) {
            vs.add(format!("{m}time"), e);
        }
        if ev.region.is_empty() {
            vs.add(format!("{m}region"), "required");
        } else if let Some(e) = v::check_area(&ev.region) {
            vs.add(format!("{m}region"), e);
        }
    }

    /// The preparation under `policy`, with `pseudo`'s keys and `limits`.
    pub fn new(policy: Arc<Policy>, pseudo: Arc<Pseudonymiser>, limits: Limits) -> Self {
        Self {
            policy,
            places: Arc::default(),
            pseudo,
            limits,
            office: None,
        }
    }

    /// Serve provincial office `office`: events of other regions are refused, with where to
    /// send them, rather than left for no stream to store.
    pub fn at_office(mut self, office: Option<timpora_bus::Office>) -> Self {
        self.office = office.map(Arc::new);
        self
    }

    /// Bind units to the places they may report for.
    pub fn with_places(mut self, places: Places) -> Self {
        self.places = Arc::new(places);
        self
    }

    /// Check, validate and pseudonymise `ev` from `who`; the result is what will be stored.
    pub fn prepare(
        &self,
        who: &Identity,
        mut ev: Event,
        paths: &Paths,
        traceparent: String,
    ) -> Result<Event, Error> {
        let now = SystemTime::now();
        let mut vs = Violations::default();
        let m = paths.meta;
        let mut envelope = Violations::default();
        self.check_envelope(&ev, m, now, &mut envelope);
        let Some(payload) = ev.payload.as_mut() else {
            // Every other missing field is named too, not only the first found.
            vs.add(format!("{m}payload"), "required: one of the typed events");
            vs.extend(envelope);
            return Err(Error::Invalid(vs));
        };
        let info = type_of(payload);
        if !self.policy.may_publish(&who.agency, info.name) {
            return Err(Error::PermissionDenied(format!(
                "{who} may not publish {}",
                info.name
            )));
        }
        if !ev.r#type.is_empty() && ev.r#type != info.name {
            vs.add(
                format!("{m}type"),
                format!(
                    "{:?} disagrees with the payload, which is {}",
                    ev.r#type, info.name
                ),
            );
        }
        vs.extend(envelope);
        let classification = match Classification::try_from(ev.classification) {
            Ok(Classification::Unspecified) => info.default_classification,
            Ok(c) => c,
            Err(_) => {
                vs.add(format!("{m}classification"), "unknown value");
                Classification::Unspecified
            }
        };
        // Being a victim is specific personal data (UU 27/2022): such an event is never open
        // to every member, whatever the sender chose.
        let classification = match classification {
            Classification::OpenToMembers if concerns_a_victim(payload) => {
                Classification::Sensitive
            }
            c => c,
        };
        let mut c = Check {
            vs: &mut vs,
            parent: paths.payload_parent,
            payload: paths.payload,
            limits: &self.limits,
        };
        c.payload(payload);
        walk(payload, &mut |slot| c.slot(slot));
        if !vs.is_empty() {
            return Err(Error::Invalid(vs));
        }
        // Well-formed: now whether this unit may report for this place.
        if let Some(why) = self.places.refusal(who, &ev.region) {
            return Err(Error::PermissionDenied(why));
        }
        if let Some(office) = &self.office
            && !office
                .regions
                .iter()
                .any(|r| timpora_proto::regions::within(&ev.region, r))
        {
            return Err(Error::PermissionDenied(format!(
                "this is the {} provincial office's gateway, which takes events of region {} only; \
                 send events of {} to the centre's gateway",
                office.name,
                office.regions.join(", "),
                ev.region
            )));
        }
        // A village's own report names its own village.
        if let timpora_proto::v1::event::Payload::CommunityReport(r) = &*payload
            && who.agency == "desa"
            && !r.village_code.is_empty()
            && r.village_code != who.unit
        {
            return Err(Error::PermissionDenied(format!(
                "{who} reports for its own village ({}) only, not {}",
                who.unit, r.village_code
            )));
        }

        let mut entities = Vec::new();
        walk(payload, &mut |slot| {
            pseudonymise(slot, &self.pseudo, &ev.region, &mut entities);
        });
        entities.push(entity(EntityKind::Place, &ev.region, "region"));
        let subject = [
            EntityKind::Person,
            EntityKind::Recruiter,
            EntityKind::Company,
            EntityKind::Case,
            EntityKind::Place,
        ]
        .iter()
        .find_map(|k| entities.iter().find(|e| e.kind == *k as i32).cloned());
        ev.source = who.source();
        ev.r#type = info.name.to_owned();
        ev.spec_version = SPEC_VERSION.to_owned();
        ev.recorded_at = Some(now.into());
        ev.subject = subject;
        ev.entities = entities;
        ev.classification = classification as i32;
        ev.traceparent = traceparent;
        ev.key_version = self.pseudo.version();
        Ok(ev)
    }
}

impl Ingest {
    /// The one send path of every publishing call (agency methods, `Publish`,
    /// `PublishStream`, escalation): prepare `ev` from `who`, publish it, and return the
    /// acknowledgement still pending, so a stream can keep many in flight. The pending answer
    /// resolves only after JetStream stored the event, and logs the outcome.
    pub async fn send(
        &self,
        who: &Identity,
        ev: Event,
        paths: &Paths,
        traceparent: String,
    ) -> Sent {
        let started = Instant::now();
        let id = ev.id.clone();
        if let Err(wait) = self.rates.take(&who.source()) {
            return self.settled(who, id, started, Err(Error::RateLimited(wait)));
        }
        // Spans of their own only while traces are exported: the call's span carries the
        // trace id of every log line already, and a stream publishes thousands a second.
        let validating = match timpora_telemetry::traces::exporting() {
            true => tracing::info_span!("gateway.validate", agency = %who.agency),
            false => tracing::Span::none(),
        };
        match validating.in_scope(|| self.prepare(who, ev, paths, traceparent)) {
            Ok(prepared) => self.send_prepared_since(who, prepared, started).await,
            Err(e) => self.settled(who, id, started, Err(e)),
        }
    }

    /// Publish an event [`Ingest::prepare`] returned (and the caller may have added to);
    /// the acknowledgement, pending.
    pub async fn send_prepared(&self, who: &Identity, prepared: Event) -> Sent {
        self.send_prepared_since(who, prepared, Instant::now())
            .await
    }

    async fn send_prepared_since(
        &self,
        who: &Identity,
        mut prepared: Event,
        started: Instant,
    ) -> Sent {
        let id = prepared.id.clone();
        let stored = match self.stored_before(&prepared).await {
            Ok(stored) => stored,
            Err(e) => return self.settled(who, id, started, Err(e)),
        };
        if let Some(sequence) = stored {
            // A retry of an event stored earlier, past JetStream's duplicate window or not.
            let ack = PublishAck {
                event_id: prepared.id.clone(),
                sequence,
                duplicate: true,
                stream: self.bus.topology().events_stream.clone(),
                r#type: prepared.r#type.clone(),
                source: prepared.source.clone(),
            };
            return self.settled(who, id, started, Ok(ack));
        }
        let sent = Instant::now();
        // From the agency's call to JetStream's acknowledgement; the correlator's and the
        // sealer's spans of this event are its children.
        let publishing = match timpora_telemetry::traces::exporting() {
            true => tracing::info_span!(
                "gateway.publish",
                otel.kind = "producer",
                messaging.system = "nats",
                messaging.destination.name = %self.bus.topology().events_stream,
                "event.type" = %prepared.r#type,
                agency = %who.agency,
            ),
            false => tracing::Span::none(),
        };
        if let Some(tp) = timpora_telemetry::traces::traceparent(&publishing) {
            prepared.traceparent = tp;
        }
        match self
            .bus
            .publish(&prepared)
            .instrument(publishing.clone())
            .await
        {
            Ok(pending) => {
                let who = who.clone();
                let ids = self.ids.clone();
                let metrics = self.metrics.clone();
                Box::pin(
                    async move {
                        let result = pending
                            .ack()
                            .await
                            .map(|ack| ack_of(&prepared, ack))
                            .map_err(Error::from);
                        if let Ok(ack) = &result {
                            metrics.acknowledged(sent.elapsed());
                            if let Some(ids) = &ids {
                                ids.stored_now(ack.sequence, &prepared.source, &prepared.id);
                            }
                        }
                        log_outcome(&who, &id, &result);
                        metrics.answered(&who, &result, started.elapsed());
                        result
                    }
                    .instrument(publishing),
                )
            }
            Err(e) => self.settled(who, id, started, Err(e.into())),
        }
    }

    /// An outcome known at once, logged and counted now.
    fn settled(
        &self,
        who: &Identity,
        id: String,
        started: Instant,
        result: Result<PublishAck, Error>,
    ) -> Sent {
        log_outcome(who, &id, &result);
        self.metrics.answered(who, &result, started.elapsed());
        Box::pin(std::future::ready(result))
    }
}

/// An acknowledgement on its way: resolves once JetStream stored the event (or refused it).
pub type Sent =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<PublishAck, Error>> + Send>>;

fn log_outcome(who: &Identity, id: &str, result: &Result<PublishAck, Error>) {
    match result {
        Ok(ack) => tracing::debug!(
            source = %who, event_id = %id, event_type = %ack.r#type,
            sequence = ack.sequence, duplicate = ack.duplicate, "event stored"
        ),
        Err(Error::Invalid(vs)) => {
            let fields: Vec<&str> = vs.iter().map(|(f, _)| f.as_str()).collect();
            tracing::warn!(source = %who, event_id = %id, fields = ?fields, "event rejected")
        }
        Err(e) => tracing::warn!(source = %who, event_id = %id, error = %e, "event not stored"),
    }
}

/// Whether the event says that someone is a victim (a repatriation as a victim; every victim
/// service is `SENSITIVE` by its type already).
fn concerns_a_victim(payload: &timpora_proto::v1::event::Payload) -> bool {
    use timpora_proto::v1::RepatriationReason;
    use timpora_proto::v1::event::Payload;
    match payload {
        Payload::Repatriation(r) => r.reason == RepatriationReason::Victim as i32,
        Payload::VictimService(_) => true,
        _ => false,
    }
}

/// The hub's acknowledgement of a stored event.
pub fn ack_of(ev: &Event, ack: async_nats::jetstream::publish::PublishAck) -> PublishAck {
    PublishAck {
        event_id: ev.id.clone(),
        sequence: ack.sequence,
        duplicate: ack.duplicate,
        stream: ack.stream,
        r#type: ev.r#type.clone(),
        source: ev.source.clone(),
    }
}

fn entity(kind: EntityKind, id: &str, role: &str) -> EntityRef {
    EntityRef {
        kind: kind as i32,
        id: id.to_owned(),
        role: role.to_owned(),
    }
}

/// Replace `slot`'s raw identifiers by tokens (`region`: the event's area, a village's code for
/// its reports) and list the entities it names in `out`.
fn pseudonymise(slot: Slot<'_>, ps: &Pseudonymiser, region: &str, out: &mut Vec<EntityRef>) {
    match slot {
        Slot::Person(_, role, p) => {
            // The person's home district (kecamatan), from the NIK's area digits: what R4
            // counts as the persons' home areas. Coarse, and already a region on the bus.
            let home = (p.nik.len() == 16 && p.nik.bytes().all(|b| b.is_ascii_digit()))
                .then(|| format!("{}.{}.{}", &p.nik[0..2], &p.nik[2..4], &p.nik[4..6]));
            if !p.nik.is_empty() {
                p.token = ps.person_by_nik(&p.nik);
            } else if !p.passport_number.is_empty() {
                p.token = ps.person_by_passport(&p.passport_number);
            } else if role == crate::slots::RESIDENT && !p.name.trim().is_empty() {
                p.token = ps.resident_by_name(&p.name, region);
            }
            if !p.passport_number.is_empty() {
                p.passport_token = ps.document(&p.passport_number);
            }
            if !p.name.is_empty() {
                p.name_token = ps.name(&p.name);
            }
            p.nik.clear();
            p.passport_number.clear();
            p.name.clear();
            out.push(entity(EntityKind::Person, &p.token, role));
            if !p.passport_token.is_empty() {
                out.push(entity(EntityKind::Document, &p.passport_token, "passport"));
            }
            if let Some(home) = home
                && !out
                    .iter()
                    .any(|e| e.kind == EntityKind::Place as i32 && e.id == home)
            {
                out.push(entity(EntityKind::Place, &home, "home_area"));
            }
        }
        Slot::Recruiter(_, role, r) => {
            if !r.phone.is_empty() {
                r.token = ps.recruiter_by_phone(&r.phone);
            } else if !r.name.is_empty() {
                r.token = ps.recruiter_by_name(&r.name, &r.village_code);
            }
            r.phone.clear();
            r.name.clear();
            out.push(entity(EntityKind::Recruiter, &r.token, role));
        }
        Slot::Company(_, id) if !id.is_empty() => {
            out.push(entity(EntityKind::Company, id, "p3mi"));
        }
        Slot::Village(_, role, id) if !id.is_empty() => {
            out.push(entity(EntityKind::Place, id, role));
        }
        Slot::Checkpoint(_, id) if !id.is_empty() => {
            out.push(entity(EntityKind::Place, id, "checkpoint"));
        }
        Slot::Case(_, id) if !id.is_empty() => out.push(entity(EntityKind::Case, id, "case")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudo::{KeyConfig, PseudonymConfig};
    use prost::Message as _;
    use timpora_proto::v1::event::Payload;
    use timpora_proto::v1::{
        DepartureCheck, DepartureOutcome, Indicator, InterviewOutcome, PassportInterview,
        TravelPurpose,
    };
    use timpora_proto::v1::{Person, Recruiter};

    const NIK: &str = "7402054107900001";

    fn preparer() -> Preparer {
        let pseudo = Pseudonymiser::from_config(&PseudonymConfig {
            active_version: None,
            keys: vec![KeyConfig {
                version: 1,
                key_file: None,
                key_hex: Some("ab".repeat(32)),
            }],
        })
        .unwrap();
        Preparer::new(
            Arc::new(Policy::default()),
            Arc::new(pseudo),
            Limits::default(),
        )
    }

    fn who(s: &str) -> Identity {
        Identity::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_publish_before_the_stored_ids_are_read_is_unavailable_and_stores_nothing() {
        let nats = timpora_natsd::NatsServer::start().unwrap();
        let bus = Bus::connect(&nats.url(), "t", timpora_bus::Topology::default())
            .await
            .unwrap();
        bus.ensure_topology().await.unwrap();
        // An index that must read up to sequence 5 before it knows every stored id, and that
        // nothing feeds.
        let ids = crate::ids::StoredIds::until(5);
        let mut ingest =
            Ingest::new(bus.clone(), preparer(), Rates::new(100, 100)).with_stored_ids(ids.clone());
        ingest.index_wait = std::time::Duration::from_millis(200);
        let kdi = who("imigrasi/kanim-kendari");
        let ev = ingest
            .prepare(&kdi, departure(NIK, "MY"), &BUS, String::new())
            .unwrap();
        let refused = ingest
            .send_prepared(&kdi, ev.clone())
            .await
            .await
            .unwrap_err();
        let status = tonic::Status::from(refused);
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("0 of 5"), "{status:?}");
        assert_eq!(
            bus.events_last_sequence().await.unwrap(),
            0,
            "nothing stored"
        );
        // Once the index has read that far, the same call is stored.
        ids.follow(5, "x", "y");
        let ack = ingest.send_prepared(&kdi, ev).await.await.unwrap();
        assert!(!ack.duplicate);
        assert_eq!(ack.sequence, 1);
    }

    const BUS: Paths = Paths {
        meta: "event.",
        payload_parent: "event.",
        payload: "departure_check",
    };
    const REPORT: Paths = Paths {
        meta: "event.",
        payload_parent: "event.",
        payload: "community_report",
    };

    /// A village's report of a resident planning to leave, from `region`, about `village`.
    fn village_report(region: &str, village: &str, persons: Vec<Person>) -> Event {
        use timpora_proto::v1::{CommunityReport, CommunityReportKind, ReporterRole};
        Event {
            id: format!("r-{region}-{village}-{}", persons.len()),
            time: Some(SystemTime::now().into()),
            region: region.into(),
            payload: Some(Payload::CommunityReport(CommunityReport {
                village_code: village.into(),
                reporter_role: ReporterRole::Pimpasa as i32,
                kind: CommunityReportKind::ResidentPlanningDeparture as i32,
                persons,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn departure(nik: &str, country: &str) -> Event {
        Event {
            id: "tpi-1".into(),
            time: Some(SystemTime::now().into()),
            region: "74.05".into(),
            payload: Some(Payload::DepartureCheck(DepartureCheck {
                traveller: Some(Person {
                    nik: nik.into(),
                    passport_number: "X1234567".into(),
                    ..Default::default()
                }),
                checkpoint_code: "TPI-KDI".into(),
                destination_country: country.into(),
                outcome: DepartureOutcome::Deferred as i32,
                indicators: vec![Indicator::NoReturnTicket as i32],
                recruiters: vec![Recruiter {
                    phone: "+6281299990001".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_event_is_pseudonymised_and_stamped_without_a_bus() {
        let ev = preparer()
            .prepare(
                &who("imigrasi/tpi-kdi"),
                departure(NIK, "MY"),
                &BUS,
                String::new(),
            )
            .unwrap();
        assert_eq!(ev.source, "imigrasi/tpi-kdi");
        assert_eq!(ev.r#type, "timpora.imigrasi.departure_check.v1");
        assert_eq!(ev.key_version, 1);
        assert!(ev.entities.iter().any(|e| e.id.starts_with("psn_")));
        assert!(ev.entities.iter().any(|e| e.id.starts_with("rec_")));
        assert!(ev.subject.as_ref().unwrap().id.starts_with("psn_"));
        // The traveller's home district, from the NIK's area digits (what R4 counts).
        assert!(
            ev.entities
                .iter()
                .any(|e| e.role == "home_area" && e.id == "74.02.05"),
            "{:?}",
            ev.entities
        );
        let bytes = ev.encode_to_vec();
        for raw in [NIK, "X1234567", "+6281299990001"] {
            assert!(
                !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
                "{raw} left in the prepared event"
            );
        }
    }

    #[test]
    fn every_bad_field_is_named_and_nothing_is_prepared() {
        let mut ev = departure("1234", "XX");
        ev.region = String::new();
        let Err(Error::Invalid(vs)) =
            preparer().prepare(&who("imigrasi/tpi-kdi"), ev, &BUS, String::new())
        else {
            panic!("not refused as invalid");
        };
        let fields: Vec<&str> = vs.iter().map(|(f, _)| f.as_str()).collect();
        for f in [
            "event.region",
            "event.departure_check.traveller.nik",
            "event.departure_check.destination_country",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
    }

    #[test]
    fn the_policy_decides_who_may_publish_what() {
        let p = preparer();
        let interview = Event {
            id: "x-1".into(),
            time: Some(SystemTime::now().into()),
            region: "74.02".into(),
            payload: Some(Payload::PassportInterview(PassportInterview {
                applicant: Some(Person {
                    nik: NIK.into(),
                    ..Default::default()
                }),
                declared_purpose: TravelPurpose::Tourism as i32,
                destination_country: "MY".into(),
                outcome: InterviewOutcome::Deferred as i32,
                ..Default::default()
            })),
            ..Default::default()
        };
        let paths = Paths {
            meta: "event.",
            payload_parent: "event.",
            payload: "passport_interview",
        };
        for (identity, allowed) in [
            ("imigrasi/kanim-kendari", true),
            ("disnaker/disnaker-konawe", false),
            ("desa/74.02.05.2001", false),
            ("audit/inspektorat", false),
        ] {
            let r = p.prepare(&who(identity), interview.clone(), &paths, String::new());
            match (allowed, r) {
                (true, Ok(_)) => {}
                (false, Err(Error::PermissionDenied(m))) => assert!(m.contains(identity)),
                (_, other) => panic!("{identity}: {other:?}"),
            }
        }
    }

    #[test]
    fn victims_are_sensitive_whatever_the_sender_chose() {
        use timpora_proto::v1::{Repatriation, RepatriationReason};
        let p = preparer();
        let repatriation = |reason: RepatriationReason, class: Classification| Event {
            id: format!("rep-{}", reason as i32),
            time: Some(SystemTime::now().into()),
            region: "74.02".into(),
            classification: class as i32,
            payload: Some(Payload::Repatriation(Repatriation {
                person: Some(Person {
                    nik: NIK.into(),
                    ..Default::default()
                }),
                country: "MY".into(),
                reason: reason as i32,
                home_village: "74.02.05.2001".into(),
            })),
            ..Default::default()
        };
        let paths = Paths {
            meta: "event.",
            payload_parent: "event.",
            payload: "repatriation",
        };
        let class_of = |ev: Event| {
            let ev = p
                .prepare(&who("bp3mi/bp3mi-sultra"), ev, &paths, String::new())
                .unwrap();
            Classification::try_from(ev.classification).unwrap()
        };
        use Classification as C;
        use RepatriationReason as R;
        assert_eq!(
            class_of(repatriation(R::Victim, C::Unspecified)),
            C::Sensitive
        );
        assert_eq!(
            class_of(repatriation(R::Victim, C::OpenToMembers)),
            C::Sensitive
        );
        assert_eq!(
            class_of(repatriation(R::Deported, C::Unspecified)),
            C::OpenToMembers
        );
        assert_eq!(
            class_of(repatriation(R::Victim, C::LawEnforcement)),
            C::LawEnforcement
        );
    }

    #[test]
    fn units_report_for_their_own_place() {
        let mut places = Places::default();
        places
            .0
            .insert("imigrasi/kanim-kendari".into(), vec!["74".into()]);
        let p = preparer().with_places(places);
        let report = |region: &str, village: &str| village_report(region, village, Vec::new());
        let paths = REPORT;
        let village = who("desa/74.02.05.2001");
        // Its own village: stored.
        p.prepare(
            &village,
            report("74.02.05.2001", "74.02.05.2001"),
            &paths,
            String::new(),
        )
        .unwrap();
        // Another village, in the envelope or in the report: refused.
        for ev in [
            report("72.71.01.1007", "72.71.01.1007"),
            report("74.02.05.2001", "72.71.01.1007"),
            report("74.02", "74.02.05.2001"),
        ] {
            match p.prepare(&village, ev, &paths, String::new()) {
                Err(Error::PermissionDenied(m)) => assert!(m.contains("own village"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        // An office bound to Southeast Sulawesi: inside yes, outside no; an office not named
        // in the config anywhere.
        let interview = |region: &str| {
            let mut ev = departure(NIK, "MY");
            ev.region = region.into();
            ev
        };
        let kendari = who("imigrasi/kanim-kendari");
        p.prepare(&kendari, interview("74.71"), &BUS, String::new())
            .unwrap();
        assert!(matches!(
            p.prepare(&kendari, interview("72.71"), &BUS, String::new()),
            Err(Error::PermissionDenied(_))
        ));
        p.prepare(
            &who("imigrasi/tpi-cgk"),
            interview("36.03"),
            &BUS,
            String::new(),
        )
        .unwrap();
    }

    #[test]
    fn a_village_may_name_a_resident_by_name_alone_and_nobody_else_may() {
        let p = preparer();
        let report = |village: &str, name: &str| {
            let resident = Person {
                name: name.into(),
                ..Default::default()
            };
            village_report(village, village, vec![resident])
        };
        let paths = REPORT;
        let token = |village: &str, name: &str| {
            let ev = p
                .prepare(
                    &who(&format!("desa/{village}")),
                    report(village, name),
                    &paths,
                    String::new(),
                )
                .unwrap();
            let Some(Payload::CommunityReport(r)) = ev.payload else {
                panic!("not a report")
            };
            assert!(r.persons[0].name.is_empty(), "the name left the edge");
            assert!(r.persons[0].name_token.starts_with("nam_"));
            r.persons[0].token.clone()
        };
        let siti = token("74.02.05.2001", "Siti  Aminah");
        assert!(siti.starts_with("psn_"), "{siti}");
        // The same name in the same village is the same resident; in another village, another.
        assert_eq!(token("74.02.05.2001", "siti aminah"), siti);
        assert_ne!(token("74.02.01.2007", "Siti Aminah"), siti);
        // Neither a NIK nor a name: refused under the person's field.
        match p.prepare(
            &who("desa/74.02.05.2001"),
            report("74.02.05.2001", " "),
            &paths,
            String::new(),
        ) {
            Err(Error::Invalid(vs)) => assert!(
                vs.iter()
                    .any(|(f, d)| f == "event.community_report.persons[0]"
                        && d == "a resident needs a nik or a name"),
                "{vs:?}"
            ),
            other => panic!("{other:?}"),
        }
        // A traveller at a departure check is not known by name alone.
        let mut check = departure(NIK, "MY");
        if let Some(Payload::DepartureCheck(c)) = &mut check.payload {
            c.traveller = Some(Person {
                name: "Siti Aminah".into(),
                ..Default::default()
            });
        }
        match p.prepare(&who("imigrasi/tpi-kdi"), check, &BUS, String::new()) {
            Err(Error::Invalid(vs)) => assert!(
                vs.iter().any(|(_, d)| d.starts_with("a person needs")),
                "{vs:?}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
