//! The places in a payload where an entity is mentioned (people, recruiters, companies,
//! villages, checkpoints, cases), with their field names: what validation checks and
//! pseudonymisation replaces.

use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;

/// A payload field's name, made into text only when it is reported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    name: &'static str,
    index: Option<usize>,
}

impl Field {
    pub(crate) fn new(name: &'static str) -> Self {
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
pub(crate) enum Slot<'a> {
    Person(Field, &'static str, &'a mut Person),
    Recruiter(Field, &'static str, &'a mut Recruiter),
    /// A P3MI licence number (may be empty where optional); validation stores it normalised.
    Company(Field, &'a mut String),
    /// A village code (may be empty where optional).
    Village(Field, &'static str, &'a str),
    /// A checkpoint code.
    Checkpoint(Field, &'a str),
    /// A case number.
    Case(Field, &'a str),
}

/// The role of the residents a village's report names: the one role whose person may be known by
/// name alone.
pub(crate) const RESIDENT: &str = "resident";

pub(crate) fn indexed(name: &str, i: usize) -> String {
    format!("{name}[{i}]")
}

/// Visit every entity a payload mentions, with its field name and role.
pub(crate) fn walk(payload: &mut Payload, f: &mut dyn FnMut(Slot<'_>)) {
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
            f(Slot::Company(
                Field::new("p3mi_licence"),
                &mut x.p3mi_licence,
            ));
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
            f(Slot::Company(
                Field::new("p3mi_licence"),
                &mut x.p3mi_licence,
            ));
        }
        Payload::CompanyLicence(x) => {
            f(Slot::Company(
                Field::new("p3mi_licence"),
                &mut x.p3mi_licence,
            ));
        }
        Payload::CommunityReport(x) => {
            persons(&mut x.persons, "persons", RESIDENT, f);
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
