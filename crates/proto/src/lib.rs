//! The TIMPORA contract: generated protobuf and gRPC code for `timpora.v1`, its descriptor set,
//! and the catalogue of event types (name, owning agency, default classification).

pub mod codec;
pub mod regions;

/// Generated code for the `timpora.v1` package.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("timpora.v1");
}

use v1::Classification;
use v1::event::Payload;

/// Encoded `FileDescriptorSet` of every `timpora.v1` file, for reflection and proto JSON.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/timpora_descriptor.bin"));

/// HTTP/2 stream flow-control window the gateway and its clients advertise: large enough for a
/// `PublishStream` to keep hundreds of events in flight.
pub const H2_STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 connection flow-control window of the gateway and its clients.
pub const H2_CONNECTION_WINDOW: u32 = 8 << 20;

/// CloudEvents spec version the envelope follows.
pub const SPEC_VERSION: &str = "1.0";

/// Static facts about one event type of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTypeInfo {
    /// Full CloudEvents type, e.g. `timpora.imigrasi.passport_interview.v1`.
    pub name: &'static str,
    /// The namespace of the type: the agency that owns it, or `case` for case events that any
    /// member agency may publish.
    pub domain: &'static str,
    /// The short name inside the domain, e.g. `passport_interview`.
    pub short: &'static str,
    /// Classification used when the publisher leaves it unspecified.
    pub default_classification: Classification,
}

macro_rules! catalogue {
    ($($variant:ident => $domain:literal, $short:literal, $class:ident;)*) => {
        /// Every event type the hub accepts.
        pub const EVENT_TYPES: &[EventTypeInfo] = &[$(EventTypeInfo {
            name: concat!("timpora.", $domain, ".", $short, ".v1"),
            domain: $domain,
            short: $short,
            default_classification: Classification::$class,
        }),*];

        /// The catalogue entry of a payload.
        pub fn type_of(payload: &Payload) -> &'static EventTypeInfo {
            let mut i = 0usize;
            $(
                if matches!(payload, Payload::$variant(_)) {
                    return &EVENT_TYPES[i];
                }
                i += 1;
            )*
            let _ = i;
            unreachable!("every payload variant is in the catalogue")
        }
    };
}

catalogue! {
    PassportInterview => "imigrasi", "passport_interview", OpenToMembers;
    DepartureCheck => "imigrasi", "departure_check", OpenToMembers;
    CpmiStatus => "bp3mi", "cpmi_status", OpenToMembers;
    Repatriation => "bp3mi", "repatriation", OpenToMembers;
    Recommendation => "disnaker", "recommendation", OpenToMembers;
    CompanyLicence => "disnaker", "company_licence", OpenToMembers;
    CommunityReport => "desa", "community_report", OpenToMembers;
    RecruiterReport => "polri", "recruiter_report", LawEnforcement;
    Investigation => "polri", "investigation", LawEnforcement;
    VictimService => "dinsos", "victim_service", Sensitive;
    Prosecution => "kejaksaan", "prosecution", LawEnforcement;
    CaseStatusChanged => "case", "status_changed", LawEnforcement;
    ClockTick => "hub", "clock_tick", OpenToMembers;
}

/// The catalogue entry for a full type name.
pub fn type_by_name(name: &str) -> Option<&'static EventTypeInfo> {
    EVENT_TYPES.iter().find(|t| t.name == name)
}

/// Agencies that publish events through their own gRPC service.
pub const PUBLISHING_AGENCIES: &[&str] = &[
    "imigrasi",
    "polri",
    "bp3mi",
    "disnaker",
    "desa",
    "dinsos",
    "kejaksaan",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_follow_the_pattern_and_are_unique() {
        let mut names: Vec<_> = EVENT_TYPES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENT_TYPES.len());
        assert_eq!(
            type_of(&Payload::DepartureCheck(Default::default())).name,
            "timpora.imigrasi.departure_check.v1"
        );
        assert_eq!(
            type_of(&Payload::CaseStatusChanged(Default::default())).domain,
            "case"
        );
        assert_eq!(
            type_by_name("timpora.dinsos.victim_service.v1").map(|t| t.default_classification),
            Some(Classification::Sensitive)
        );
    }
}
