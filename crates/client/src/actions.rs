//! The vocabulary of alerts that the command line and the console share: names of statuses,
//! severities, case kinds and resolutions, and one way to apply a step to an alert.

use timpora_proto::v1::alert_service_client::AlertServiceClient;
use timpora_proto::v1::*;

use crate::connect::Conn;

/// A step in an alert's handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Someone has seen it.
    Acknowledge,
    /// A unit (`agency/unit`) follows it up.
    Assign { to: String },
    /// A case is opened from it.
    Escalate(CaseKind),
    /// It is closed as confirmed or as a false positive.
    Resolve(Resolution),
}

impl Step {
    /// The step `name` (`acknowledge`, `assign`, `escalate`, `resolve`) with its argument:
    /// the assignee, the case kind or the resolution.
    pub fn parse(name: &str, argument: &str) -> Result<Self, String> {
        match name {
            "acknowledge" | "ack" => Ok(Step::Acknowledge),
            "assign" if argument.is_empty() => Err("assign needs a unit (agency/unit)".into()),
            "assign" => Ok(Step::Assign {
                to: argument.to_owned(),
            }),
            "escalate" => case_kind(argument)
                .map(Step::Escalate)
                .ok_or_else(|| format!("case kind must be one of {}", CASE_KINDS.join(", "))),
            "resolve" => resolution(argument)
                .map(Step::Resolve)
                .ok_or_else(|| format!("resolution must be one of {}", RESOLUTIONS.join(", "))),
            other => Err(format!("no action {other}")),
        }
    }

    /// The step's name.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Acknowledge => "acknowledge",
            Step::Assign { .. } => "assign",
            Step::Escalate(_) => "escalate",
            Step::Resolve(_) => "resolve",
        }
    }

    /// Apply the step through the gateway's `AlertService`; the record as it is afterwards.
    pub async fn apply(
        self,
        client: &mut AlertServiceClient<Conn>,
        action: AlertAction,
    ) -> Result<AlertRecord, tonic::Status> {
        let action = Some(action);
        let record = match self {
            Step::Acknowledge => {
                client
                    .acknowledge_alert(AcknowledgeAlertRequest { action })
                    .await?
                    .into_inner()
                    .record
            }
            Step::Assign { to } => {
                client
                    .assign_alert(AssignAlertRequest {
                        action,
                        assignee: to,
                    })
                    .await?
                    .into_inner()
                    .record
            }
            Step::Escalate(kind) => {
                client
                    .escalate_alert(EscalateAlertRequest {
                        action,
                        kind: kind as i32,
                    })
                    .await?
                    .into_inner()
                    .record
            }
            Step::Resolve(resolution) => {
                client
                    .resolve_alert(ResolveAlertRequest {
                        action,
                        resolution: resolution as i32,
                    })
                    .await?
                    .into_inner()
                    .record
            }
        };
        Ok(record.unwrap_or_default())
    }
}

/// The operator and role a caller claimed for a step, as people should read them: the gateway
/// vouches for the caller's identity (`actor`), not for these.
pub fn claimed(operator: &str, role: &str) -> Option<String> {
    match (operator.is_empty(), role.is_empty()) {
        (true, true) => None,
        (false, true) => Some(format!("operator {operator}, as the caller states")),
        (true, false) => Some(format!("role {role}, as the caller states")),
        (false, false) => Some(format!("operator {operator}, {role}, as the caller states")),
    }
}

/// Names of the case kinds an escalation opens.
pub const CASE_KINDS: &[&str] = &["tppo", "non-procedural"];
/// Names of the resolutions.
pub const RESOLUTIONS: &[&str] = &["confirmed", "false-positive"];
/// Names of the statuses.
pub const STATUSES: &[&str] = &["open", "acknowledged", "assigned", "escalated", "resolved"];
/// Names of the severities, lowest first.
pub const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];

/// `s` in lower case with `_` as `-`: `false_positive` and `false-positive` are one name.
fn normal(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace('_', "-")
}

/// A case kind by name (`tppo`, `non-procedural`; `non_procedural_departure` too).
pub fn case_kind(s: &str) -> Option<CaseKind> {
    match normal(s).as_str() {
        "tppo" => Some(CaseKind::Tppo),
        "non-procedural" | "non-procedural-departure" => Some(CaseKind::NonProceduralDeparture),
        _ => None,
    }
}

/// A resolution by name (`confirmed`, `false-positive`).
pub fn resolution(s: &str) -> Option<Resolution> {
    match normal(s).as_str() {
        "confirmed" => Some(Resolution::Confirmed),
        "false-positive" => Some(Resolution::FalsePositive),
        _ => None,
    }
}

/// A status by name (`open` … `resolved`).
pub fn status(s: &str) -> Option<AlertStatus> {
    match normal(s).as_str() {
        "open" => Some(AlertStatus::Open),
        "acknowledged" => Some(AlertStatus::Acknowledged),
        "assigned" => Some(AlertStatus::Assigned),
        "escalated" => Some(AlertStatus::Escalated),
        "resolved" => Some(AlertStatus::Resolved),
        _ => None,
    }
}

/// A severity by name (`low` … `critical`).
pub fn severity(s: &str) -> Option<Severity> {
    match normal(s).as_str() {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// Every status but resolved: what a duty officer still has to handle.
pub fn unresolved() -> AlertFilter {
    AlertFilter {
        statuses: [
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::Assigned,
            AlertStatus::Escalated,
        ]
        .iter()
        .map(|s| *s as i32)
        .collect(),
        ..Default::default()
    }
}

/// The short name of a status (`acknowledged`) or severity (`high`) for people.
pub fn short_name(proto_name: &str) -> String {
    proto_name
        .trim_start_matches("ALERT_STATUS_")
        .trim_start_matches("SEVERITY_")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_and_both_spellings_are_one() {
        for n in CASE_KINDS {
            assert!(case_kind(n).is_some(), "{n}");
        }
        for n in RESOLUTIONS {
            assert!(resolution(n).is_some(), "{n}");
        }
        for n in STATUSES {
            assert!(status(n).is_some(), "{n}");
        }
        for n in SEVERITIES {
            assert!(severity(n).is_some(), "{n}");
        }
        assert_eq!(
            case_kind("non_procedural_departure"),
            Some(CaseKind::NonProceduralDeparture)
        );
        assert_eq!(
            resolution("false_positive"),
            Some(Resolution::FalsePositive)
        );
        assert_eq!(case_kind("smuggling"), None);
        assert_eq!(resolution(""), None);
    }

    #[test]
    fn steps_parse_with_their_argument_or_say_what_is_missing() {
        assert_eq!(Step::parse("acknowledge", ""), Ok(Step::Acknowledge));
        assert_eq!(
            Step::parse("assign", "polri/polda-sultra"),
            Ok(Step::Assign {
                to: "polri/polda-sultra".into()
            })
        );
        assert!(Step::parse("assign", "").unwrap_err().contains("unit"));
        assert_eq!(
            Step::parse("escalate", "tppo"),
            Ok(Step::Escalate(CaseKind::Tppo))
        );
        assert!(Step::parse("escalate", "x").unwrap_err().contains("tppo"));
        assert_eq!(
            Step::parse("resolve", "confirmed"),
            Ok(Step::Resolve(Resolution::Confirmed))
        );
        assert!(
            Step::parse("resolve", "maybe")
                .unwrap_err()
                .contains("false-positive")
        );
        assert!(Step::parse("delete", "").unwrap_err().contains("no action"));
        for s in [
            Step::Acknowledge,
            Step::Assign { to: "a/b".into() },
            Step::Escalate(CaseKind::Tppo),
            Step::Resolve(Resolution::Confirmed),
        ] {
            let arg = match &s {
                Step::Assign { to } => to.clone(),
                Step::Escalate(_) => "tppo".into(),
                Step::Resolve(_) => "confirmed".into(),
                Step::Acknowledge => String::new(),
            };
            assert_eq!(Step::parse(s.name(), &arg), Ok(s));
        }
    }
}
