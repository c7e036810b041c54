//! The engine's alerts: a rule's conclusion about one entity with its evidence, and its
//! deterministic id.

use std::time::SystemTime;

use sha2::{Digest, Sha256};
use timpora_rules::{Rule, Severity};

use crate::state::Occ;

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
    }
}
