//! Authorisation: which event types each agency may publish, which classifications it may read,
//! which actions on alerts it may take, and what people acting through a front end (the console)
//! may do in their role. Loaded from config; the built-in default follows the agencies' roles in
//! the domain brief.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use timpora_proto::v1::{Alert, Classification};

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
    /// Actions it may take on the alerts it may see (`acknowledge`, `assign`, `escalate`,
    /// `resolve`); none when not given.
    pub act: Vec<Action>,
}

/// An action on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Acknowledge,
    Assign,
    Escalate,
    Resolve,
}

impl Action {
    /// Every action, in the order of an alert's handling.
    pub const ALL: [Action; 4] = [
        Action::Acknowledge,
        Action::Assign,
        Action::Escalate,
        Action::Resolve,
    ];
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Acknowledge => "acknowledge",
            Action::Assign => "assign",
            Action::Escalate => "escalate",
            Action::Resolve => "resolve",
        })
    }
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

fn rights(publish: &[&str], read: &[&str], act: &[Action]) -> AgencyPolicy {
    AgencyPolicy {
        publish: publish.iter().map(|s| (*s).to_owned()).collect(),
        read: read.iter().map(|s| (*s).to_owned()).collect(),
        audit: false,
        act: act.to_vec(),
    }
}

impl Default for Policy {
    fn default() -> Self {
        use Action::*;
        let case = "timpora.case.*";
        // Agencies that follow alerts up may take every step; those that only contribute
        // signals may say they have seen one.
        let all = &Action::ALL;
        let seen = &[Acknowledge];
        let agencies = [
            (
                "imigrasi",
                rights(&["timpora.imigrasi.*", case], &[OPEN, LAW], all),
            ),
            (
                "polri",
                rights(&["timpora.polri.*", case], &[OPEN, LAW, SENSITIVE], all),
            ),
            (
                "bp3mi",
                rights(&["timpora.bp3mi.*", case], &[OPEN, SENSITIVE], all),
            ),
            ("disnaker", rights(&["timpora.disnaker.*"], &[OPEN], seen)),
            // Villages report; they do not receive other agencies' records.
            ("desa", rights(&["timpora.desa.*"], &[], &[])),
            (
                "dinsos",
                rights(
                    &["timpora.dinsos.*"],
                    &[OPEN, SENSITIVE],
                    &[Acknowledge, Assign],
                ),
            ),
            (
                "kejaksaan",
                rights(&["timpora.kejaksaan.*", case], &[OPEN, LAW], all),
            ),
            // TIMPORA secretariat and operations staff (through the console, in their roles).
            ("ops", rights(&[case], &[OPEN, LAW], all)),
            ("tni", rights(&[], &[OPEN], seen)),
            ("bnn", rights(&[], &[OPEN], seen)),
            ("bin", rights(&[], &[OPEN, LAW], seen)),
            // Statistics only ever sees aggregates, never single events.
            ("bps", rights(&[], &[], &[])),
            // Auditors replay everything and change nothing; their reads are recorded.
            (
                "audit",
                AgencyPolicy {
                    audit: true,
                    ..rights(&[], &[OPEN, LAW, SENSITIVE, AGGREGATE], &[])
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

    /// The first classification of `alert`'s evidence that `agency` may not read, if any: an
    /// agency sees an alert only when it may read all of its evidence.
    pub fn hidden_from(&self, agency: &str, alert: &Alert) -> Option<Classification> {
        alert_classifications(alert)
            .into_iter()
            .find(|c| !self.may_read(agency, *c))
    }

    /// Whether `agency` may see `alert` at all.
    pub fn may_see(&self, agency: &str, alert: &Alert) -> bool {
        self.hidden_from(agency, alert).is_none()
    }

    /// Whether `agency` may take `action` on the alerts it sees.
    pub fn may_act(&self, agency: &str, action: Action) -> bool {
        self.agencies
            .get(agency)
            .is_some_and(|p| p.act.contains(&action))
    }
}

/// The classifications of an alert's evidence. An alert that does not say (raised before alerts
/// carried them, or naming an unknown one) counts as holding every classification of single
/// events: only an agency that may read all of them sees it.
pub fn alert_classifications(alert: &Alert) -> Vec<Classification> {
    let known: Option<Vec<Classification>> = (alert.evidence_classifications.len()
        == alert.evidence.len())
    .then(|| {
        alert
            .evidence_classifications
            .iter()
            .map(|c| Classification::try_from(*c).unwrap_or_default())
            .collect::<Vec<_>>()
    })
    .filter(|cs| !cs.is_empty() && !cs.contains(&Classification::Unspecified));
    let mut cs = known.unwrap_or_else(|| {
        vec![
            Classification::OpenToMembers,
            Classification::LawEnforcement,
            Classification::Sensitive,
        ]
    });
    cs.sort_unstable();
    cs.dedup();
    cs
}

/// Name of a classification without its prefix (`SENSITIVE`).
pub fn classification_name(c: Classification) -> &'static str {
    c.as_str_name().trim_start_matches("CLASSIFICATION_")
}

/// What callers acting for people may do, and where alerts may go (`[gateway.alerts]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// Callers that act for people (agency codes, or whole identities `agency/unit`): every
    /// action they take must name the operator and the operator's role.
    pub fronts: Vec<String>,
    /// What each role may do. A role given by any caller narrows what its agency may do; a
    /// role not named here is refused.
    pub roles: BTreeMap<String, Vec<Action>>,
    /// Units (`agency/unit`) alerts may be assigned to; none when empty.
    pub units: Vec<String>,
}

impl Default for AlertRules {
    fn default() -> Self {
        use Action::*;
        let roles = [
            ("operator", vec![Acknowledge, Assign, Escalate]),
            ("supervisor", Action::ALL.to_vec()),
            ("auditor", vec![]),
        ];
        Self {
            fronts: vec!["ops".into()],
            roles: roles.into_iter().map(|(r, a)| (r.to_owned(), a)).collect(),
            units: Vec::new(),
        }
    }
}

/// Why an action is refused: the caller may not (`PERMISSION_DENIED`) or its request is wrong
/// (`INVALID_ARGUMENT` on a field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Denied(String),
    Invalid(&'static str, String),
}

/// One action as asked for: who, in which role, on which alert.
pub struct Ask<'a> {
    pub who: &'a Identity,
    pub operator: &'a str,
    pub role: &'a str,
    pub action: Action,
    pub alert: &'a Alert,
}

impl AlertRules {
    /// Refuse rules naming a unit that is not `agency/unit` or an empty front.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(u) = self.units.iter().find(|u| Identity::parse(u).is_none()) {
            return Err(Error::Config(format!(
                "gateway.alerts.units: {u:?} is not agency/unit"
            )));
        }
        if self.fronts.iter().any(|f| f.is_empty()) {
            return Err(Error::Config(
                "gateway.alerts.fronts: an empty name; give agency codes or agency/unit".into(),
            ));
        }
        Ok(())
    }

    /// Whether `who` acts for people.
    pub fn is_front(&self, who: &Identity) -> bool {
        let whole = who.to_string();
        self.fronts.iter().any(|f| *f == who.agency || *f == whole)
    }

    /// Why `ask` is refused under `policy`, if it is.
    pub fn refusal(&self, policy: &Policy, ask: &Ask<'_>) -> Option<Refusal> {
        let Ask {
            who,
            operator,
            role,
            action,
            alert,
        } = *ask;
        if let Some(c) = policy.hidden_from(&who.agency, alert) {
            return Some(Refusal::Denied(format!(
                "{who} may not act on alert {}: its evidence includes {} records, which {} may                  not read",
                alert.id,
                classification_name(c),
                who.agency
            )));
        }
        if !policy.may_act(&who.agency, action) {
            return Some(Refusal::Denied(format!(
                "{who} may not {action} alerts (its policy's act list does not include it)"
            )));
        }
        if self.is_front(who) {
            if operator.is_empty() {
                return Some(Refusal::Invalid(
                    "action.operator",
                    format!("required: {who} acts for people and must say who acts"),
                ));
            }
            if role.is_empty() {
                return Some(Refusal::Invalid(
                    "action.role",
                    format!("required: {who} acts for people and must say in which role"),
                ));
            }
        }
        if !role.is_empty() {
            match self.roles.get(role) {
                None => {
                    return Some(Refusal::Denied(format!(
                        "no role {role:?} in the gateway's alert rules (known: {})",
                        self.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                Some(actions) if !actions.contains(&action) => {
                    return Some(Refusal::Denied(format!(
                        "the {role} role may not {action} alerts"
                    )));
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Why `alert` may not be assigned to `assignee`, if it may not.
    pub fn assignment_refusal(
        &self,
        policy: &Policy,
        assignee: &str,
        alert: &Alert,
    ) -> Option<String> {
        let Some(unit) = Identity::parse(assignee) else {
            return Some("must be agency/unit, e.g. polri/polda-sultra".into());
        };
        if !self.units.iter().any(|u| u == assignee) {
            return Some(if self.units.is_empty() {
                "no unit may be assigned alerts: the gateway's config names none \
                 (gateway.alerts.units)"
                    .into()
            } else {
                format!("{assignee} is not a unit alerts may be assigned to (gateway.alerts.units)")
            });
        }
        policy.hidden_from(&unit.agency, alert).map(|c| {
            format!(
                "{assignee} could not read this alert: its evidence includes {} records",
                classification_name(c)
            )
        })
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
    fn an_alert_without_classifications_counts_as_holding_every_one() {
        let p = Policy::default();
        let legacy = Alert {
            evidence: vec!["a/1".into(), "b/2".into()],
            ..Default::default()
        };
        assert!(!p.may_see("ops", &legacy) && !p.may_see("bp3mi", &legacy));
        assert!(p.may_see("polri", &legacy) && p.may_see("audit", &legacy));
        let open = Alert {
            evidence_classifications: vec![Classification::OpenToMembers as i32; 2],
            ..legacy.clone()
        };
        assert!(p.may_see("disnaker", &open) && !p.may_see("desa", &open));
        let short = Alert {
            evidence_classifications: vec![Classification::OpenToMembers as i32],
            ..legacy
        };
        assert!(
            !p.may_see("ops", &short),
            "one classification for two events"
        );
    }

    #[test]
    fn roles_narrow_and_fronts_must_say_who_and_in_which_role() {
        let p = Policy::default();
        let rules = AlertRules::default();
        let alert = Alert {
            evidence: vec!["a/1".into()],
            evidence_classifications: vec![Classification::OpenToMembers as i32],
            ..Default::default()
        };
        let ops = Identity::parse("ops/timpora-kendari").unwrap();
        let polri = Identity::parse("polri/polda-sultra").unwrap();
        let ask = |who, operator, role, action| Ask {
            who,
            operator,
            role,
            action,
            alert: &alert,
        };
        let r = |a: Ask<'_>| rules.refusal(&p, &a);
        assert!(r(ask(&ops, "a", "supervisor", Action::Resolve)).is_none());
        assert!(matches!(
            r(ask(&ops, "a", "operator", Action::Resolve)),
            Some(Refusal::Denied(_))
        ));
        assert!(matches!(
            r(ask(&ops, "", "operator", Action::Acknowledge)),
            Some(Refusal::Invalid("action.operator", _))
        ));
        assert!(matches!(
            r(ask(&ops, "a", "", Action::Acknowledge)),
            Some(Refusal::Invalid("action.role", _))
        ));
        assert!(r(ask(&polri, "", "", Action::Resolve)).is_none());
        assert!(matches!(
            r(ask(&polri, "", "auditor", Action::Acknowledge)),
            Some(Refusal::Denied(_))
        ));
        let whole = AlertRules {
            fronts: vec!["polri/polda-sultra".into()],
            ..AlertRules::default()
        };
        assert!(whole.is_front(&polri) && !whole.is_front(&ops));
    }

    #[test]
    fn unknown_classification_is_refused() {
        let mut p = Policy::default();
        p.agencies.insert("x".into(), rights(&[], &["SECRET"], &[]));
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
