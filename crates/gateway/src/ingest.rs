//! The ingest pipeline shared by every publishing call: check the payload and its type against
//! the caller's rights, validate every field, replace raw identifiers by tokens, derive the
//! entities and subject, stamp what the hub owns (source, type, recorded time, trace context,
//! key version), publish, and answer only after JetStream stored it.

use std::sync::Arc;
use std::time::SystemTime;

use timpora_bus::Bus;
use timpora_proto::v1::event::Payload;
use timpora_proto::v1::{
    CaseKind, CaseStatus, Classification, CommunityReportKind, CpmiStage, DepartureOutcome,
    EntityKind, EntityRef, Event, Indicator, InterviewOutcome, InvestigationStatus, LicenceStatus,
    Person, ProsecutionStatus, PublishAck, Recommendation, RecommendationKind,
    RecommendationStatus, Recruiter, RepatriationReason, ReportChannel, ReporterRole,
    TravelPurpose, VictimServiceKind,
};
use timpora_proto::{SPEC_VERSION, type_of};

use crate::Error;
use crate::identity::Identity;
use crate::policy::Policy;
use crate::pseudo::Pseudonymiser;
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
    policy: Arc<Policy>,
    pseudo: Arc<Pseudonymiser>,
    limits: Limits,
}

impl Ingest {
    /// Assemble the pipeline.
    pub fn new(bus: Bus, policy: Arc<Policy>, pseudo: Arc<Pseudonymiser>, limits: Limits) -> Self {
        Self {
            bus,
            policy,
            pseudo,
            limits,
        }
    }

    /// The bus events are published to.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The authorisation policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
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
        let Some(payload) = ev.payload.as_mut() else {
            vs.add(
                format!("{}payload", paths.meta),
                "required: one of the typed events",
            );
            return Err(Error::Invalid(vs));
        };
        let info = type_of(payload);
        if !self.policy.may_publish(&who.agency, info.name) {
            return Err(Error::PermissionDenied(format!(
                "{who} may not publish {}",
                info.name
            )));
        }
        let m = paths.meta;
        if !ev.r#type.is_empty() && ev.r#type != info.name {
            vs.add(
                format!("{m}type"),
                format!(
                    "{:?} disagrees with the payload, which is {}",
                    ev.r#type, info.name
                ),
            );
        }
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
        let classification = match Classification::try_from(ev.classification) {
            Ok(Classification::Unspecified) => info.default_classification,
            Ok(c) => c,
            Err(_) => {
                vs.add(format!("{m}classification"), "unknown value");
                Classification::Unspecified
            }
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

        let mut entities = Vec::new();
        walk(payload, &mut |slot| {
            pseudonymise(slot, &self.pseudo, &mut entities);
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

    /// Publish a prepared event and wait for JetStream's acknowledgement.
    pub async fn publish(&self, ev: &Event) -> Result<PublishAck, Error> {
        let ack = self.bus.publish(ev).await?.ack().await?;
        Ok(ack_of(ev, ack))
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

/// A payload field's name, made into text only when it is reported.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    index: Option<usize>,
}

impl Field {
    fn new(name: &'static str) -> Self {
        Self { name, index: None }
    }
}

impl From<&'static str> for Field {
    fn from(name: &'static str) -> Self {
        Self::new(name)
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}[{i}]", self.name),
            None => f.write_str(self.name),
        }
    }
}

/// A place in a payload where an entity is mentioned.
enum Slot<'a> {
    Person(Field, &'static str, &'a mut Person),
    Recruiter(Field, &'static str, &'a mut Recruiter),
    /// A P3MI licence number (may be empty where optional).
    Company(Field, &'a str),
    /// A village code (may be empty where optional).
    Village(Field, &'static str, &'a str),
    /// A checkpoint code.
    Checkpoint(Field, &'a str),
    /// A case number.
    Case(Field, &'a str),
}

fn indexed(name: &str, i: usize) -> String {
    format!("{name}[{i}]")
}

/// Visit every entity a payload mentions, with its field name and role.
fn walk(payload: &mut Payload, f: &mut dyn FnMut(Slot<'_>)) {
    fn persons(
        list: &mut [Person],
        name: &'static str,
        role: &'static str,
        f: &mut dyn FnMut(Slot<'_>),
    ) {
        for (i, p) in list.iter_mut().enumerate() {
            f(Slot::Person(
                Field {
                    name,
                    index: Some(i),
                },
                role,
                p,
            ));
        }
    }
    fn recruiters(list: &mut [Recruiter], name: &'static str, f: &mut dyn FnMut(Slot<'_>)) {
        for (i, r) in list.iter_mut().enumerate() {
            f(Slot::Recruiter(
                Field {
                    name,
                    index: Some(i),
                },
                "recruiter",
                r,
            ));
        }
    }
    fn one(
        p: &mut Option<Person>,
        name: &'static str,
        role: &'static str,
        f: &mut dyn FnMut(Slot<'_>),
    ) {
        if let Some(p) = p {
            f(Slot::Person(Field::new(name), role, p));
        }
    }
    match payload {
        Payload::PassportInterview(x) => {
            one(&mut x.applicant, "applicant", "applicant", f);
            recruiters(&mut x.recruiters, "recruiters", f);
        }
        Payload::DepartureCheck(x) => {
            one(&mut x.traveller, "traveller", "traveller", f);
            persons(&mut x.companions, "companions", "companion", f);
            recruiters(&mut x.recruiters, "recruiters", f);
            f(Slot::Checkpoint(
                "checkpoint_code".into(),
                &x.checkpoint_code,
            ));
        }
        Payload::CpmiStatus(x) => {
            one(&mut x.person, "person", "cpmi", f);
            f(Slot::Company(Field::new("p3mi_licence"), &x.p3mi_licence));
        }
        Payload::Repatriation(x) => {
            one(&mut x.person, "person", "returnee", f);
            f(Slot::Village(
                "home_village".into(),
                "home_village",
                &x.home_village,
            ));
        }
        Payload::Recommendation(x) => {
            one(&mut x.person, "person", "applicant", f);
            f(Slot::Company(Field::new("p3mi_licence"), &x.p3mi_licence));
        }
        Payload::CompanyLicence(x) => {
            f(Slot::Company(Field::new("p3mi_licence"), &x.p3mi_licence));
        }
        Payload::CommunityReport(x) => {
            persons(&mut x.persons, "persons", "resident", f);
            recruiters(&mut x.recruiters, "recruiters", f);
            f(Slot::Village(
                "village_code".into(),
                "village",
                &x.village_code,
            ));
        }
        Payload::RecruiterReport(x) => {
            if let Some(r) = &mut x.recruiter {
                f(Slot::Recruiter(Field::new("recruiter"), "recruiter", r));
            }
            persons(&mut x.persons, "persons", "person", f);
        }
        Payload::Investigation(x) => {
            persons(&mut x.persons, "persons", "person", f);
            recruiters(&mut x.recruiters, "recruiters", f);
            f(Slot::Case(Field::new("case_number"), &x.case_number));
        }
        Payload::VictimService(x) => {
            one(&mut x.person, "person", "victim", f);
        }
        Payload::Prosecution(x) => {
            f(Slot::Case(Field::new("case_number"), &x.case_number));
        }
        Payload::CaseStatusChanged(x) => {
            persons(&mut x.persons, "persons", "person", f);
            recruiters(&mut x.recruiters, "recruiters", f);
            f(Slot::Case(Field::new("case_id"), &x.case_id));
        }
        // Recorded by the hub itself; no agency's policy allows publishing it.
        Payload::ClockTick(_) => {}
    }
}

fn pseudonymise(slot: Slot<'_>, ps: &Pseudonymiser, out: &mut Vec<EntityRef>) {
    match slot {
        Slot::Person(_, role, p) => {
            if !p.nik.is_empty() {
                p.token = ps.person_by_nik(&p.nik);
            } else if !p.passport_number.is_empty() {
                p.token = ps.person_by_passport(&p.passport_number);
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

/// Collects the payload's violations under the payload's field path.
struct Check<'a> {
    vs: &'a mut Violations,
    parent: &'static str,
    payload: &'static str,
    limits: &'a Limits,
}

impl Check<'_> {
    fn add(&mut self, field: impl std::fmt::Display, why: impl Into<String>) {
        self.vs
            .add(format!("{}{}.{field}", self.parent, self.payload), why);
    }

    fn required(&mut self, field: &str, present: bool) {
        if !present {
            self.add(field, "required");
        }
    }

    fn enum_req<E: TryFrom<i32>>(&mut self, field: &str, value: i32) {
        if value == 0 {
            self.add(field, "required: must not be *_UNSPECIFIED");
        } else if E::try_from(value).is_err() {
            self.add(field, format!("unknown value {value}"));
        }
    }

    fn enum_list<E: TryFrom<i32>>(&mut self, field: &str, values: &[i32]) {
        for (i, &value) in values.iter().enumerate() {
            if value == 0 || E::try_from(value).is_err() {
                self.add(indexed(field, i), format!("not a valid value: {value}"));
            }
        }
    }

    fn country(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.add(field, "required");
        } else if let Some(e) = v::check_country(value) {
            self.add(field, e);
        }
    }

    fn text(&mut self, field: &str, value: &str, max: usize) {
        if let Some(e) = v::check_text(value, max) {
            self.add(field, e);
        }
    }

    fn count(&mut self, field: &str, n: usize) {
        if n > self.limits.max_entities {
            self.add(
                field,
                format!("at most {} entries", self.limits.max_entities),
            );
        }
    }

    fn ident(&mut self, field: impl std::fmt::Display, value: &str, max: usize) {
        if let Some(e) = v::check_ident(value, max) {
            self.add(field, e);
        }
    }

    /// Checks that only the payload knows: required fields, enums, countries, text.
    fn payload(&mut self, payload: &Payload) {
        let summary = self.limits.max_summary_chars;
        match payload {
            Payload::PassportInterview(x) => {
                self.required("applicant", x.applicant.is_some());
                self.enum_req::<TravelPurpose>("declared_purpose", x.declared_purpose);
                self.country("destination_country", &x.destination_country);
                self.enum_req::<InterviewOutcome>("outcome", x.outcome);
                self.enum_list::<Indicator>("indicators", &x.indicators);
                self.count("recruiters", x.recruiters.len());
            }
            Payload::DepartureCheck(x) => {
                self.required("traveller", x.traveller.is_some());
                if x.traveller
                    .as_ref()
                    .is_some_and(|t| t.passport_number.is_empty())
                {
                    self.add("traveller.passport_number", "required at a departure check");
                }
                self.required("checkpoint_code", !x.checkpoint_code.is_empty());
                self.text("carrier", &x.carrier, 64);
                if !x.flight_or_voyage.is_empty() {
                    self.ident("flight_or_voyage", &x.flight_or_voyage, 16);
                }
                self.country("destination_country", &x.destination_country);
                self.enum_req::<DepartureOutcome>("outcome", x.outcome);
                self.enum_list::<Indicator>("indicators", &x.indicators);
                self.count("companions", x.companions.len());
                self.count("recruiters", x.recruiters.len());
            }
            Payload::CpmiStatus(x) => {
                self.required("person", x.person.is_some());
                self.ident("worker_id", &x.worker_id, 64);
                self.required("p3mi_licence", !x.p3mi_licence.is_empty());
                self.country("destination_country", &x.destination_country);
                self.text("job", &x.job, 64);
                self.enum_req::<CpmiStage>("stage", x.stage);
            }
            Payload::Repatriation(x) => {
                self.required("person", x.person.is_some());
                self.country("country", &x.country);
                self.enum_req::<RepatriationReason>("reason", x.reason);
            }
            Payload::Recommendation(Recommendation {
                person,
                kind,
                status,
                ..
            }) => {
                self.required("person", person.is_some());
                self.enum_req::<RecommendationKind>("kind", *kind);
                self.enum_req::<RecommendationStatus>("status", *status);
            }
            Payload::CompanyLicence(x) => {
                self.required("p3mi_licence", !x.p3mi_licence.is_empty());
                self.enum_req::<LicenceStatus>("status", x.status);
                self.text("company_name", &x.company_name, 128);
            }
            Payload::CommunityReport(x) => {
                self.required("village_code", !x.village_code.is_empty());
                self.enum_req::<ReporterRole>("reporter_role", x.reporter_role);
                self.enum_req::<CommunityReportKind>("kind", x.kind);
                self.text("summary", &x.summary, summary);
                self.count("persons", x.persons.len());
                self.count("recruiters", x.recruiters.len());
            }
            Payload::RecruiterReport(x) => {
                self.required("recruiter", x.recruiter.is_some());
                self.enum_req::<ReportChannel>("channel", x.channel);
                self.text("summary", &x.summary, summary);
                self.count("persons", x.persons.len());
            }
            Payload::Investigation(x) => {
                self.enum_req::<InvestigationStatus>("status", x.status);
                self.count("persons", x.persons.len());
                self.count("recruiters", x.recruiters.len());
            }
            Payload::VictimService(x) => {
                self.required("person", x.person.is_some());
                self.enum_req::<VictimServiceKind>("service", x.service);
            }
            Payload::Prosecution(x) => {
                self.enum_req::<ProsecutionStatus>("status", x.status);
            }
            Payload::CaseStatusChanged(x) => {
                self.enum_req::<CaseKind>("kind", x.kind);
                self.enum_req::<CaseStatus>("status", x.status);
                for (i, id) in x.linked_alert_ids.iter().enumerate() {
                    self.ident(indexed("linked_alert_ids", i), id, 128);
                }
                self.count("persons", x.persons.len());
                self.count("recruiters", x.recruiters.len());
            }
            Payload::ClockTick(_) => {}
        }
    }

    /// Checks of one mentioned entity.
    fn slot(&mut self, slot: Slot<'_>) {
        match slot {
            Slot::Person(field, _, p) => self.person(field, p),
            Slot::Recruiter(field, _, r) => self.recruiter(field, r),
            Slot::Company(field, id) if !id.is_empty() => self.ident(field, id, 64),
            Slot::Village(field, _, id) if !id.is_empty() => {
                if let Some(e) = v::check_village(id) {
                    self.add(field, e);
                }
            }
            Slot::Checkpoint(field, id) if !id.is_empty() => {
                if let Some(e) = v::check_checkpoint(id) {
                    self.add(field, e);
                }
            }
            Slot::Case(field, id) => self.ident(field, id, 64),
            _ => {}
        }
    }

    fn person(&mut self, field: Field, p: &Person) {
        let raw = !p.nik.is_empty() || !p.passport_number.is_empty();
        if !raw && p.token.is_empty() {
            self.add(field, "a person needs a nik, a passport_number or a token");
        }
        if !p.nik.is_empty()
            && let Some(e) = v::check_nik(&p.nik)
        {
            self.add(format!("{field}.nik"), e);
        }
        if !p.passport_number.is_empty()
            && let Some(e) = v::check_passport(&p.passport_number)
        {
            self.add(format!("{field}.passport_number"), e);
        }
        if p.name.chars().count() > 128 {
            self.add(format!("{field}.name"), "at most 128 characters");
        }
        if !p.token.is_empty() {
            if raw {
                self.add(
                    format!("{field}.token"),
                    "set by the hub when nik or passport_number is given",
                );
            } else if let Some(e) = v::check_token(&p.token, "psn_") {
                self.add(format!("{field}.token"), e);
            }
        }
        if !p.passport_token.is_empty() {
            self.add(format!("{field}.passport_token"), "set by the hub");
        }
        if !p.name_token.is_empty() {
            self.add(format!("{field}.name_token"), "set by the hub");
        }
    }

    fn recruiter(&mut self, field: Field, r: &Recruiter) {
        let raw = !r.phone.is_empty() || !r.name.is_empty();
        if !raw && r.token.is_empty() {
            self.add(
                field,
                "a recruiter needs a phone, a name with village_code, or a token",
            );
        }
        if !r.phone.is_empty() {
            if let Some(e) = v::check_phone(&r.phone) {
                self.add(format!("{field}.phone"), e);
            }
        } else if !r.name.is_empty() && r.village_code.is_empty() {
            self.add(
                format!("{field}.village_code"),
                "required when the recruiter is known by name",
            );
        }
        if r.name.chars().count() > 128 {
            self.add(format!("{field}.name"), "at most 128 characters");
        }
        if !r.village_code.is_empty()
            && let Some(e) = v::check_area(&r.village_code)
        {
            self.add(format!("{field}.village_code"), e);
        }
        if !r.token.is_empty() {
            if raw {
                self.add(
                    format!("{field}.token"),
                    "set by the hub when phone or name is given",
                );
            } else if let Some(e) = v::check_token(&r.token, "rec_") {
                self.add(format!("{field}.token"), e);
            }
        }
    }
}
