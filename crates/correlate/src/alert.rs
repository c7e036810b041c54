//! The engine's alerts: a rule's conclusion about one entity with its evidence, and its
//! deterministic id.

use std::time::SystemTime;

use sha2::{Digest, Sha256};
use timpora_rules::{Rule, Severity};

use crate::state::{Occ, Open};

/// An alert: a rule's conclusion about one entity, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Deterministic: the same rule, version, group key and evidence give the same id.
    pub id: String,
    pub rule_id: String,
    pub rule_version: String,
    pub severity: Severity,
    /// The entity the rule grouped by (a `psn_`/`rec_` token or a licence number).
    pub group_key: String,
    pub summary: String,
    /// Contributing events (`source/id`), in event-time order.
    pub evidence: Vec<String>,
    /// Event time of the event that completed the evidence.
    pub time: SystemTime,
    /// Area code of that event.
    pub region: String,
    /// Events-stream sequences of the evidence, in the same order (0 where unknown).
    pub evidence_sequences: Vec<u64>,
    /// Classifications of the evidence (`timpora.v1.Classification` numbers), in the same order.
    pub evidence_classifications: Vec<i32>,
    /// Event times of the evidence, in the same order.
    pub evidence_times: Vec<SystemTime>,
    /// The id of the alert this one extends (its evidence grew), if any.
    pub extends: Option<String>,
    /// Raised on late evidence: an event of it arrived later than the allowed lateness, or it
    /// was raised when a late report changed a decision already taken.
    pub late: bool,
    /// Set when this is not a finding but the correlator's correction of one: a report that
    /// arrived late (the evidence here) contradicts it.
    pub correction: Option<Correction>,
}

/// The correlator's correction of a finding, on a late report that contradicts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// The finding corrected (its first alert's id).
    pub of: String,
    /// Whether the finding no longer stands (withdrawn); otherwise it still stands on the rest
    /// of its evidence, less what the late report cleared.
    pub withdrawn: bool,
}

impl Alert {
    /// The most sensitive classification of the evidence (the enum's numbers rise with
    /// sensitivity).
    pub fn classification(&self) -> i32 {
        self.evidence_classifications
            .iter()
            .copied()
            .max()
            .unwrap_or_default()
    }
}

pub(crate) fn alert_id(rule: &Rule, version: &str, group: &str, evidence: &[String]) -> String {
    let mut h = Sha256::new();
    for part in [rule.id.as_str(), version, group] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for e in evidence {
        h.update(e.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut id = String::from("alr_");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Build the alert of `rule` for `group` from its evidence; `last` completed it.
pub(crate) fn make_alert(
    rule: &Rule,
    version: &str,
    group: &str,
    mut evidence: Vec<&Occ>,
    last: &Occ,
) -> Alert {
    evidence.sort_by(|a, b| a.order().cmp(&b.order()));
    let keys: Vec<String> = evidence.iter().map(|o| o.key.clone()).collect();
    let evidence_sequences = evidence.iter().map(|o| o.seq).collect();
    let evidence_classifications = evidence.iter().map(|o| o.classification).collect();
    let evidence_times = evidence.iter().map(|o| o.time).collect();
    let late = evidence.iter().any(|o| o.late());
    Alert {
        id: alert_id(rule, version, group, &keys),
        rule_id: rule.id.clone(),
        rule_version: version.to_owned(),
        severity: rule.severity,
        group_key: group.to_owned(),
        summary: rule.summary.clone(),
        evidence: keys,
        time: last.time,
        region: last.region.clone(),
        evidence_sequences,
        evidence_classifications,
        evidence_times,
        extends: None,
        late,
        correction: None,
    }
}

/// The correction of `finding` (of `rule`, for `group`) by the late report `report`: `why` in
/// words; deterministic like an alert's id (the same finding and report, the same id).
pub(crate) fn correction(
    rule: &Rule,
    version: &str,
    group: &str,
    finding: &str,
    withdrawn: bool,
    why: String,
    report: &Occ,
) -> Alert {
    let keys = [format!("correction:{finding}"), report.key.clone()];
    Alert {
        id: alert_id(rule, version, group, &keys),
        summary: why,
        late: true,
        correction: Some(Correction {
            of: finding.to_owned(),
            withdrawn,
        }),
        ..make_alert(rule, version, group, vec![report], report)
    }
}

/// What becomes of `alert` given the open alert of its rule and group (`open`, updated here):
/// a new finding (and the open alert from now on), an extension of the open one carrying the
/// evidence it adds (its id hashes the whole evidence so far), or nothing when it adds none.
pub(crate) fn grow(
    rule: &Rule,
    version: &str,
    open: &mut Option<std::sync::Arc<Open>>,
    alert: Alert,
) -> Option<Alert> {
    let window = rule.shape.span();
    let current = open.as_mut().filter(|o| alert.time <= o.latest() + window);
    let Some(o) = current else {
        *open = Some(std::sync::Arc::new(open_of(&alert)));
        return Some(alert);
    };
    let new: Vec<_> = open_of(&alert)
        .evidence
        .into_iter()
        .filter(|e| !o.evidence.iter().any(|x| x.1 == e.1))
        .collect();
    if new.is_empty() {
        return None;
    }
    // Copied only if a snapshot (a checkpoint being written) still shares it.
    let o = std::sync::Arc::make_mut(o);
    o.evidence.extend(new.iter().cloned());
    o.evidence.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    // The id hashes the whole evidence so far; the extension carries only what it adds.
    let all: Vec<String> = o.evidence.iter().map(|e| e.1.clone()).collect();
    Some(Alert {
        id: alert_id(rule, version, &alert.group_key, &all),
        evidence: new.iter().map(|e| e.1.clone()).collect(),
        evidence_sequences: new.iter().map(|e| e.2).collect(),
        evidence_classifications: new.iter().map(|e| e.3).collect(),
        evidence_times: new.iter().map(|e| e.0).collect(),
        extends: Some(o.id.clone()),
        ..alert
    })
}

/// The open form of a newly raised alert.
fn open_of(a: &Alert) -> Open {
    Open {
        id: a.id.clone(),
        evidence: (0..a.evidence.len())
            .map(|i| {
                (
                    a.evidence_times[i],
                    a.evidence[i].clone(),
                    a.evidence_sequences[i],
                    a.evidence_classifications[i],
                )
            })
            .collect(),
    }
}
