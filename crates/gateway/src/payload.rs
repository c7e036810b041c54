//! The checks of each payload's fields (enums, lengths, countries, identifiers, the people and
//! recruiters it names), next to the field validators of `validate`; collected under the
//! payload's field path so one answer names every offending field.

use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;

use crate::slots::{Field, RESIDENT, Slot, indexed};
use crate::validate::{self as v, Limits, Violations};

/// Collects the payload's violations under the payload's field path.
pub(crate) struct Check<'a> {
    pub vs: &'a mut Violations,
    pub parent: &'static str,
    pub payload: &'static str,
    pub limits: &'a Limits,
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
    pub fn payload(&mut self, payload: &Payload) {
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
    pub fn slot(&mut self, slot: Slot<'_>) {
        match slot {
            Slot::Person(field, role, p) => self.person(field, p, role == RESIDENT),
            Slot::Recruiter(field, _, r) => self.recruiter(field, r),
            Slot::Company(field, id) if !id.is_empty() => match v::normalise_licence(id) {
                Ok(one_form) => *id = one_form,
                Err(e) => self.add(field, e),
            },
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

    /// A person's checks; a village's `resident` may be known by name alone.
    fn person(&mut self, field: Field, p: &Person, resident: bool) {
        let raw = !p.nik.is_empty() || !p.passport_number.is_empty();
        if resident && !raw && p.token.is_empty() && p.name.trim().is_empty() {
            self.add(field, "a resident needs a nik or a name");
        } else if !resident && !raw && p.token.is_empty() {
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
            if raw || (resident && !p.name.is_empty()) {
                self.add(
                    format!("{field}.token"),
                    "set by the hub when nik, passport_number or a resident's name is given",
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
