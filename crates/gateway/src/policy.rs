//! Authorisation: which event types each agency may publish, and which classifications it may
//! read. Loaded from config; the built-in default follows the agencies' roles in the domain brief.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use timpora_proto::v1::Classification;

use crate::error::Error;
use crate::identity::Identity;

/// One agency's rights.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgencyPolicy {
    /// Event types it may publish: full names, or a prefix ending in `*`
    /// (`timpora.imigrasi.*`).
    pub publish: Vec<String>,
    /// Classifications it may read, e.g. `OPEN_TO_MEMBERS`, `LAW_ENFORCEMENT`.
    pub read: Vec<String>,
    /// Whether it may read the access records (who read which alert).
    pub audit: bool,
}

/// Rights of every agency; an agency not listed may do nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Policy {
    /// Rights by agency code.
    pub agencies: BTreeMap<String, AgencyPolicy>,
}

const OPEN: &str = "OPEN_TO_MEMBERS";
const LAW: &str = "LAW_ENFORCEMENT";
const SENSITIVE: &str = "SENSITIVE";
const AGGREGATE: &str = "AGGREGATE_ONLY";

fn rights(publish: &[&str], read: &[&str]) -> AgencyPolicy {
    AgencyPolicy {
        publish: publish.iter().map(|s| (*s).to_owned()).collect(),
        read: read.iter().map(|s| (*s).to_owned()).collect(),
        audit: false,
    }
}

impl Default for Policy {
    fn default() -> Self {
        let case = "timpora.case.*";
        let agencies = [
            (
                "imigrasi",
                rights(&["timpora.imigrasi.*", case], &[OPEN, LAW]),
            ),
            (
                "polri",
                rights(&["timpora.polri.*", case], &[OPEN, LAW, SENSITIVE]),
            ),
            (
                "bp3mi",
                rights(&["timpora.bp3mi.*", case], &[OPEN, SENSITIVE]),
            ),
            ("disnaker", rights(&["timpora.disnaker.*"], &[OPEN])),
            // Villages report; they do not receive other agencies' records.
            ("desa", rights(&["timpora.desa.*"], &[])),
            ("dinsos", rights(&["timpora.dinsos.*"], &[OPEN, SENSITIVE])),
            (
                "kejaksaan",
                rights(&["timpora.kejaksaan.*", case], &[OPEN, LAW]),
            ),
            // TIMPORA secretariat and operations staff.
            ("ops", rights(&[case], &[OPEN, LAW])),
            ("tni", rights(&[], &[OPEN])),
            ("bnn", rights(&[], &[OPEN])),
            ("bin", rights(&[], &[OPEN, LAW])),
            // Statistics only ever sees aggregates, never single events.
            ("bps", rights(&[], &[])),
            // Auditors replay everything; their reads are recorded.
            (
                "audit",
                AgencyPolicy {
                    audit: true,
                    ..rights(&[], &[OPEN, LAW, SENSITIVE, AGGREGATE])
                },
            ),
        ];
        Self {
            agencies: agencies
                .into_iter()
                .map(|(a, p)| (a.to_owned(), p))
                .collect(),
        }
    }
}

impl Policy {
    /// Refuse a policy naming an unknown classification or an empty pattern.
    pub fn validate(&self) -> Result<(), Error> {
        for (agency, p) in &self.agencies {
            for c in &p.read {
                if parse_classification(c).is_none() {
                    return Err(Error::Config(format!(
                        "policy for {agency}: unknown classification {c:?} \
                         (expected OPEN_TO_MEMBERS, LAW_ENFORCEMENT, SENSITIVE or AGGREGATE_ONLY)"
                    )));
                }
            }
            if p.publish.iter().any(|t| t.is_empty() || t == "*") {
                return Err(Error::Config(format!(
                    "policy for {agency}: publish patterns must name a type or a type prefix"
                )));
            }
        }
        Ok(())
    }

    /// Whether `agency` may publish events of type `type_name`.
    pub fn may_publish(&self, agency: &str, type_name: &str) -> bool {
        self.agencies.get(agency).is_some_and(|p| {
            p.publish.iter().any(|pat| match pat.strip_suffix('*') {
                Some(prefix) => type_name.starts_with(prefix),
                None => pat == type_name,
            })
        })
    }

    /// Whether `agency` may read events classified `c`.
    pub fn may_read(&self, agency: &str, c: Classification) -> bool {
        let name = c.as_str_name().trim_start_matches("CLASSIFICATION_");
        c != Classification::Unspecified
            && self
                .agencies
                .get(agency)
                .is_some_and(|p| p.read.iter().any(|r| r == name))
    }

    /// Whether `agency` may read the access records.
    pub fn audits(&self, agency: &str) -> bool {
        self.agencies.get(agency).is_some_and(|p| p.audit)
    }

    /// Whether `agency` may read anything at all.
    pub fn reads_anything(&self, agency: &str) -> bool {
        self.agencies
            .get(agency)
            .is_some_and(|p| !p.read.is_empty())
    }
}

/// Parse `OPEN_TO_MEMBERS` (or `CLASSIFICATION_OPEN_TO_MEMBERS`).
pub fn parse_classification(s: &str) -> Option<Classification> {
    let full = if s.starts_with("CLASSIFICATION_") {
        s.to_owned()
    } else {
        format!("CLASSIFICATION_{s}")
    };
    Classification::from_str_name(&full).filter(|c| *c != Classification::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_keeps_agencies_to_their_own_types() {
        let p = Policy::default();
        p.validate().unwrap();
        assert!(p.may_publish("imigrasi", "timpora.imigrasi.departure_check.v1"));
        assert!(!p.may_publish("imigrasi", "timpora.bp3mi.cpmi_status.v1"));
        assert!(p.may_publish("polri", "timpora.case.status_changed.v1"));
        assert!(!p.may_publish("desa", "timpora.case.status_changed.v1"));
        assert!(!p.may_publish("unknown", "timpora.desa.community_report.v1"));
        assert!(p.may_read("polri", Classification::Sensitive));
        assert!(!p.may_read("imigrasi", Classification::Sensitive));
        assert!(!p.may_read("desa", Classification::OpenToMembers));
        assert!(!p.may_read("audit", Classification::Unspecified));
        assert!(p.audits("audit") && !p.audits("ops") && !p.audits("polri"));
    }

    #[test]
    fn unknown_classification_is_refused() {
        let mut p = Policy::default();
        p.agencies.insert("x".into(), rights(&[], &["SECRET"]));
        assert!(p.validate().unwrap_err().to_string().contains("SECRET"));
    }
}

/// Where units may report for (`[gateway.places]`: `"agency/unit" = ["74.02", …]`, area-code
/// prefixes). A village (`desa/<village code>`) reports for its own village only, whatever this
/// says; a unit not named here may report for any place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Places(pub std::collections::BTreeMap<String, Vec<String>>);

impl Places {
    /// Why `who` may not report an event in `region`, if it may not.
    pub fn refusal(&self, who: &Identity, region: &str) -> Option<String> {
        use timpora_proto::regions::within;
        if who.agency == "desa" {
            return (region != who.unit).then(|| {
                format!(
                    "{who} reports for its own village ({}) only, not {region}",
                    who.unit
                )
            });
        }
        if self.0.is_empty() {
            return None;
        }
        let prefixes = self.0.get(&who.source())?;
        (!prefixes.iter().any(|p| within(region, p))).then(|| {
            format!(
                "{who} may report for {} only, not {region}",
                prefixes.join(", ")
            )
        })
    }
}
