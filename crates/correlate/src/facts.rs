//! The facts the rules speak of, read off one event.

use std::sync::Arc;
use std::time::SystemTime;

use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;
use timpora_rules::{Fact, GroupBy, Matcher};

/// An entity's group key (a `psn_`/`rec_` token or a licence number), shared, not copied.
pub type Key = Arc<str>;

/// One event, as the engine sees it.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Unique across sources: `source/id` (the dedup key).
    pub key: String,
    pub type_name: String,
    pub time: SystemTime,
    pub region: String,
    pub location: String,
    pub persons: Vec<Key>,
    /// The persons' home areas where the event carries them: their villages (a repatriation's
    /// home village, a village report's village) or, without those, their NIKs' districts.
    pub homes: Vec<String>,
    pub recruiters: Vec<Key>,
    pub companies: Vec<Key>,
    /// Events-stream sequence, when known (0 otherwise).
    pub sequence: u64,
    /// The event's classification (`timpora.v1.Classification` as its number).
    pub classification: i32,
    /// The reporting unit (`agency/unit`).
    pub source: String,
    /// When the hub recorded it (`recorded_at`), if it says.
    pub recorded: Option<SystemTime>,
    values: Vec<(Fact, String)>,
}

fn name<E>(v: i32, prefix: &str, f: impl Fn(&E) -> &'static str) -> Option<String>
where
    E: TryFrom<i32>,
{
    E::try_from(v)
        .ok()
        .map(|e| f(&e).trim_start_matches(prefix).to_owned())
}

impl Facts {
    /// Read the facts of `ev`; `None` for an event without time or payload.
    pub fn of(ev: &Event) -> Option<Self> {
        let time = SystemTime::try_from(ev.time?).ok()?;
        let mut values = Vec::new();
        let mut push = |fact: Fact, v: Option<String>| {
            if let Some(v) = v {
                values.push((fact, v));
            }
        };
        let unit = ev.source.split_once('/').map_or("", |(_, u)| u).to_owned();
        let mut location = unit;
        match ev.payload.as_ref()? {
            Payload::PassportInterview(x) => {
                push(
                    Fact::Outcome,
                    name(
                        x.outcome,
                        "INTERVIEW_OUTCOME_",
                        InterviewOutcome::as_str_name,
                    ),
                );
                push(
                    Fact::Purpose,
                    name(
                        x.declared_purpose,
                        "TRAVEL_PURPOSE_",
                        TravelPurpose::as_str_name,
                    ),
                );
                push(Fact::Destination, Some(x.destination_country.clone()));
                for i in &x.indicators {
                    push(
                        Fact::Indicators,
                        name(*i, "INDICATOR_", Indicator::as_str_name),
                    );
                }
            }
            Payload::DepartureCheck(x) => {
                push(
                    Fact::Outcome,
                    name(
                        x.outcome,
                        "DEPARTURE_OUTCOME_",
                        DepartureOutcome::as_str_name,
                    ),
                );
                push(Fact::Destination, Some(x.destination_country.clone()));
                for i in &x.indicators {
                    push(
                        Fact::Indicators,
                        name(*i, "INDICATOR_", Indicator::as_str_name),
                    );
                }
                location = x.checkpoint_code.clone();
            }
            Payload::CpmiStatus(x) => {
                push(
                    Fact::Stage,
                    name(x.stage, "CPMI_STAGE_", CpmiStage::as_str_name),
                );
                push(Fact::Destination, Some(x.destination_country.clone()));
            }
            Payload::Repatriation(x) => {
                push(
                    Fact::Reason,
                    name(
                        x.reason,
                        "REPATRIATION_REASON_",
                        RepatriationReason::as_str_name,
                    ),
                );
                push(Fact::Destination, Some(x.country.clone()));
            }
            Payload::Recommendation(x) => {
                push(
                    Fact::Kind,
                    name(
                        x.kind,
                        "RECOMMENDATION_KIND_",
                        RecommendationKind::as_str_name,
                    ),
                );
                push(
                    Fact::Status,
                    name(
                        x.status,
                        "RECOMMENDATION_STATUS_",
                        RecommendationStatus::as_str_name,
                    ),
                );
            }
            Payload::CompanyLicence(x) => {
                push(
                    Fact::LicenceStatus,
                    name(x.status, "LICENCE_STATUS_", LicenceStatus::as_str_name),
                );
            }
            Payload::CommunityReport(x) => {
                push(
                    Fact::Kind,
                    name(
                        x.kind,
                        "COMMUNITY_REPORT_KIND_",
                        CommunityReportKind::as_str_name,
                    ),
                );
                push(
                    Fact::Reporter,
                    name(x.reporter_role, "REPORTER_ROLE_", ReporterRole::as_str_name),
                );
            }
            Payload::RecruiterReport(x) => {
                push(
                    Fact::Channel,
                    name(x.channel, "REPORT_CHANNEL_", ReportChannel::as_str_name),
                );
            }
            Payload::Investigation(x) => {
                push(
                    Fact::Status,
                    name(
                        x.status,
                        "INVESTIGATION_STATUS_",
                        InvestigationStatus::as_str_name,
                    ),
                );
            }
            Payload::VictimService(x) => {
                push(
                    Fact::Service,
                    name(
                        x.service,
                        "VICTIM_SERVICE_KIND_",
                        VictimServiceKind::as_str_name,
                    ),
                );
            }
            Payload::Prosecution(x) => {
                push(
                    Fact::Status,
                    name(
                        x.status,
                        "PROSECUTION_STATUS_",
                        ProsecutionStatus::as_str_name,
                    ),
                );
            }
            Payload::CaseStatusChanged(x) => {
                push(
                    Fact::Kind,
                    name(x.kind, "CASE_KIND_", CaseKind::as_str_name),
                );
                push(
                    Fact::Status,
                    name(x.status, "CASE_STATUS_", CaseStatus::as_str_name),
                );
            }
            // A clock tick is time, not a fact about anyone.
            Payload::ClockTick(_) => return None,
        }
        let ids = |kind: EntityKind| -> Vec<Key> {
            let mut v: Vec<Key> = ev
                .entities
                .iter()
                .filter(|e| e.kind == kind as i32 && !e.id.is_empty())
                .map(|e| Key::from(e.id.as_str()))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let places = |roles: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = ev
                .entities
                .iter()
                .filter(|e| e.kind == EntityKind::Place as i32 && roles.contains(&e.role.as_str()))
                .map(|e| e.id.clone())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let mut homes = places(&["home_village", "village"]);
        if homes.is_empty() {
            homes = places(&["home_area"]);
        }
        Some(Self {
            homes,
            key: format!("{}/{}", ev.source, ev.id),
            type_name: ev.r#type.clone(),
            time,
            region: ev.region.clone(),
            location,
            persons: ids(EntityKind::Person),
            recruiters: ids(EntityKind::Recruiter),
            companies: ids(EntityKind::Company),
            sequence: 0,
            classification: ev.classification,
            source: ev.source.clone(),
            recorded: ev.recorded_at.and_then(|t| SystemTime::try_from(t).ok()),
            values,
        })
    }

    /// The values of a fact (several for lists and multi-entity facts).
    pub fn get(&self, fact: Fact) -> Vec<&str> {
        match fact {
            Fact::Location => vec![self.location.as_str()],
            // Whose village: the persons' home areas where the event carries them, else where it
            // happened.
            Fact::Village if !self.homes.is_empty() => {
                self.homes.iter().map(String::as_str).collect()
            }
            Fact::Village => vec![self.region.as_str()],
            Fact::Person => self.persons.iter().map(|p| &**p).collect(),
            other => self
                .values
                .iter()
                .filter(|(f, _)| *f == other)
                .map(|(_, v)| v.as_str())
                .collect(),
        }
    }

    /// The group keys this event has for entities of `kind`.
    pub fn keys(&self, kind: GroupBy) -> &[Key] {
        match kind {
            GroupBy::Person => &self.persons,
            GroupBy::Recruiter => &self.recruiters,
            GroupBy::Company => &self.companies,
        }
    }

    /// Whether this event matches a rule clause.
    pub fn matches(&self, m: &Matcher) -> bool {
        (m.types.is_empty() || m.types.iter().any(|t| t.name == self.type_name))
            && m.conditions.iter().all(|(fact, wanted)| {
                self.get(*fact)
                    .iter()
                    .any(|v| wanted.iter().any(|w| w == v))
            })
            && m.has.iter().all(|fact| !self.get(*fact).is_empty())
    }
}
