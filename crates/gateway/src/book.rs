//! The alert book: every alert with its status and handling history, kept up to date from the
//! alerts stream, and the lifecycle rules of its transitions. Apart from the gRPC handlers and
//! from NATS, so the rules are unit-tested alone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use tonic::Status;

use timpora_bus::{AlertMessage, Bus};
use timpora_proto::v1::*;

use crate::error::Error;
use crate::validate::Violations;

/// What the book holds: records by id, and ids in the order they were raised.
#[derive(Default)]
struct Inner {
    records: HashMap<String, AlertRecord>,
    order: Vec<String>,
    /// Extensions by their own id: the record they grew.
    extended: HashMap<String, String>,
    /// Where the growth of a finding goes once its first record was resolved: the record of
    /// the extension that then stood on its own.
    continued: HashMap<String, String>,
    /// The correlator's corrections taken in, by id.
    corrections: std::collections::HashSet<String>,
}

/// `base` (a finding as shown) with the evidence `extension` adds: its id stays `base`'s; time
/// and region become the extension's (the event that completed it); the classification the most
/// sensitive of all.
fn merged(mut base: Alert, extension: Alert) -> Alert {
    for (i, key) in extension.evidence.iter().enumerate() {
        if base.evidence.contains(key) {
            continue;
        }
        base.evidence.push(key.clone());
        base.evidence_sequences.push(
            extension
                .evidence_sequences
                .get(i)
                .copied()
                .unwrap_or_default(),
        );
        base.evidence_classifications.push(
            extension
                .evidence_classifications
                .get(i)
                .copied()
                .unwrap_or_default(),
        );
    }
    base.classification = base
        .evidence_classifications
        .iter()
        .copied()
        .max()
        .unwrap_or_default();
    base.time = extension.time;
    base.region = extension.region;
    base.extends = String::new();
    base
}

/// The identity the correlator's own transitions are recorded under.
pub const CORRELATOR: &str = "hub/correlator";

/// Whether nobody acts on a record any more (resolved, or withdrawn by the correlator).
fn closed(status: i32) -> bool {
    status == AlertStatus::Resolved as i32 || status == AlertStatus::Withdrawn as i32
}

impl Inner {
    /// The record a finding's id (or an extension's) stands for now.
    fn target(&self, id: &str) -> String {
        let mut target = self
            .extended
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_owned());
        while let Some(next) = self.continued.get(&target) {
            target = next.clone();
        }
        target
    }

    /// The correlator's correction of a finding: a transition by `hub/correlator` with the late
    /// evidence, withdrawing it unless it still stands. (It is not on the finding's lifecycle
    /// subject, so its `version` — for people's actions — stays.)
    fn correct(&mut self, c: Alert) -> Option<AlertRecord> {
        if !self.corrections.insert(c.id.clone()) {
            return None;
        }
        let target = self.target(&c.corrects);
        let r = self.records.get_mut(&target)?;
        let from = r.status;
        let to = if c.withdrawn {
            AlertStatus::Withdrawn as i32
        } else {
            from
        };
        r.history.push(AlertTransition {
            alert_id: target,
            from_status: from,
            to_status: to,
            actor: CORRELATOR.into(),
            time: c.time,
            note: c.summary,
            evidence: c.evidence,
            ..Default::default()
        });
        r.status = to;
        Some(r.clone())
    }

    /// Take a raised alert in: a new record, or growth of the open record it extends.
    fn raise(&mut self, mut alert: Alert) -> Option<AlertRecord> {
        if self.records.contains_key(&alert.id) || self.extended.contains_key(&alert.id) {
            return None;
        }
        if !alert.extends.is_empty() {
            let target = self.target(&alert.extends);
            match self.records.get_mut(&target) {
                Some(r) if !closed(r.status) => {
                    r.extensions.push(alert.id.clone());
                    self.extended.insert(alert.id.clone(), target.clone());
                    let grown = merged(r.alert.take().unwrap_or_default(), alert);
                    r.alert = Some(grown);
                    return Some(r.clone());
                }
                // Resolved meanwhile: the new evidence, with the earlier, is a finding of its
                // own, and the next growth goes to it.
                Some(r) => {
                    let earlier = r.alert.clone().unwrap_or_default();
                    self.continued.insert(target, alert.id.clone());
                    let id = alert.id.clone();
                    let extends = alert.extends.clone();
                    alert = Alert {
                        id,
                        extends,
                        ..merged(earlier, alert)
                    };
                }
                None => {
                    self.continued.insert(target, alert.id.clone());
                }
            }
        }
        let record = AlertRecord {
            status: AlertStatus::Open as i32,
            alert: Some(alert.clone()),
            ..Default::default()
        };
        self.order.push(alert.id.clone());
        self.records.insert(alert.id, record.clone());
        Some(record)
    }
}

/// The alerts and their handling, kept up to date from the alerts stream.
#[derive(Clone)]
pub struct AlertBook {
    inner: Arc<RwLock<Inner>>,
    pub(crate) changes: broadcast::Sender<AlertRecord>,
    /// Whether the book follows the stream (the gateway reaches NATS): a watcher is told when
    /// it stops being current, rather than left looking at a list that no longer changes.
    current: watch::Sender<bool>,
}

impl std::fmt::Debug for AlertBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertBook").finish_non_exhaustive()
    }
}

impl Default for AlertBook {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            changes: broadcast::channel(4096).0,
            current: watch::channel(true).0,
        }
    }
}

/// The status a transition leads to from `from`, if allowed.
pub fn allowed(from: AlertStatus, to: AlertStatus) -> bool {
    use AlertStatus::*;
    match to {
        Acknowledged => from == Open,
        Assigned => matches!(from, Open | Acknowledged | Assigned),
        Escalated => matches!(from, Open | Acknowledged | Assigned),
        Resolved => matches!(from, Open | Acknowledged | Assigned | Escalated),
        // Only the correlator withdraws, through a correction in the alerts stream.
        Open | Withdrawn | Unspecified => false,
    }
}

pub(crate) fn status_name(s: AlertStatus) -> &'static str {
    s.as_str_name().trim_start_matches("ALERT_STATUS_")
}

impl AlertBook {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Say whether the book is current (the gateway reaches NATS).
    pub fn set_current(&self, current: bool) {
        self.current
            .send_if_modified(|c| std::mem::replace(c, current) != current);
    }

    /// Whether the book is current.
    pub fn is_current(&self) -> bool {
        *self.current.borrow()
    }

    /// Follows whether the book is current.
    pub fn currency(&self) -> watch::Receiver<bool> {
        self.current.subscribe()
    }

    /// How many alerts there are by rule and status (`OPEN`, `ACKNOWLEDGED`…).
    pub fn counts(&self) -> std::collections::BTreeMap<(String, &'static str), u64> {
        let mut out = std::collections::BTreeMap::new();
        for r in self.read().records.values() {
            let rule = r
                .alert
                .as_ref()
                .map(|a| a.rule_id.clone())
                .unwrap_or_default();
            let status = status_name(AlertStatus::try_from(r.status).unwrap_or_default());
            *out.entry((rule, status)).or_default() += 1;
        }
        out
    }

    /// Take one alerts-stream message into the book (idempotent by sequence).
    pub fn apply(&self, sequence: u64, message: AlertMessage) {
        let changed = {
            let mut inner = self.write();
            match message {
                AlertMessage::Raised(alert) if !alert.corrects.is_empty() => inner.correct(alert),
                AlertMessage::Raised(alert) => inner.raise(alert),
                AlertMessage::Transition(t) => match inner.records.get_mut(&t.alert_id) {
                    Some(r) if sequence > r.version => {
                        r.status = t.to_status;
                        if !t.assignee.is_empty() {
                            r.assignee = t.assignee.clone();
                        }
                        if !t.case_id.is_empty() {
                            r.case_id = t.case_id.clone();
                        }
                        if t.resolution != 0 {
                            r.resolution = t.resolution;
                        }
                        r.history.push(t);
                        r.version = sequence;
                        Some(r.clone())
                    }
                    _ => None,
                },
            }
        };
        if let Some(r) = changed {
            let _ = self.changes.send(r);
        }
    }

    /// One record.
    pub fn get(&self, id: &str) -> Option<AlertRecord> {
        let inner = self.read();
        let id = inner.extended.get(id).map_or(id, String::as_str);
        inner.records.get(id).cloned()
    }

    /// Check `action` against the book: a valid request, a known alert, a transition its
    /// status allows, the expected version. The record as it stands.
    pub fn check(&self, action: &AlertAction, to: AlertStatus) -> Result<AlertRecord, Status> {
        if action.alert_id.is_empty() {
            return Err(Error::required("action.alert_id").into());
        }
        // A note is free text like any other: no identifiers, nothing invisible.
        if let Some(why) = crate::validate::check_text(&action.note, 2000) {
            let mut vs = Violations::default();
            vs.add("action.note", why);
            return Err(Error::Invalid(vs).into());
        }
        let record = self
            .get(&action.alert_id)
            .ok_or_else(|| Status::not_found(format!("no alert {}", action.alert_id)))?;
        let from = AlertStatus::try_from(record.status).unwrap_or_default();
        if !allowed(from, to) {
            return Err(Status::failed_precondition(format!(
                "alert {} is {}; it cannot become {}",
                action.alert_id,
                status_name(from),
                status_name(to)
            )));
        }
        if action.expected_version != 0 && action.expected_version != record.version {
            return Err(Status::aborted(format!(
                "alert {} changed meanwhile (version {}, not {}); reload it",
                action.alert_id, record.version, action.expected_version
            )));
        }
        Ok(record)
    }

    /// Records whose alert is about `group_key` and that `visible` lets through, newest first
    /// (only those are copied).
    pub fn about(&self, group_key: &str, visible: impl Fn(&Alert) -> bool) -> Vec<AlertRecord> {
        let inner = self.read();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.records.get(id))
            .filter(|r| {
                r.alert
                    .as_ref()
                    .is_some_and(|a| a.group_key == group_key && visible(a))
            })
            .cloned()
            .collect()
    }

    /// Records matching `filter`, newest first.
    pub fn matching(&self, filter: &AlertFilter, open_only: bool) -> Vec<AlertRecord> {
        let inner = self.read();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.records.get(id))
            .filter(|r| matches(filter, r))
            .filter(|r| !open_only || !closed(r.status))
            .cloned()
            .collect()
    }
}

pub(crate) fn matches(f: &AlertFilter, r: &AlertRecord) -> bool {
    let Some(a) = &r.alert else { return false };
    let region_ok = f.regions.is_empty()
        || f.regions
            .iter()
            .any(|p| timpora_proto::regions::within(&a.region, p));
    region_ok
        && a.severity >= f.min_severity
        && (f.rule_ids.is_empty() || f.rule_ids.contains(&a.rule_id))
        && (f.statuses.is_empty() || f.statuses.contains(&r.status))
}

/// Keep `book` following the alerts stream, from its start, for as long as the gateway runs.
pub async fn follow(bus: Bus, book: AlertBook) {
    loop {
        match bus.alert_feed().await {
            Ok(mut feed) => {
                while let Some(item) = feed.next().await {
                    match item {
                        Ok(d) => book.apply(d.sequence, d.message),
                        Err(e) => tracing::warn!(error = %e, "alerts stream message skipped"),
                    }
                }
                tracing::warn!("alerts stream feed ended; following again");
            }
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "alerts stream not readable yet")
            }
            // Not a passing fault: said loudly, and tried again less often.
            Err(e) => {
                tracing::error!(error = %e, "alerts stream cannot be followed");
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [AlertStatus; 7] = [
        AlertStatus::Unspecified,
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Assigned,
        AlertStatus::Escalated,
        AlertStatus::Resolved,
        AlertStatus::Withdrawn,
    ];

    fn raised(id: &str, region: &str) -> AlertMessage {
        AlertMessage::Raised(Alert {
            id: id.into(),
            rule_id: "R2".into(),
            region: region.into(),
            severity: Severity::High as i32,
            ..Default::default()
        })
    }

    fn to(id: &str, from: AlertStatus, to: AlertStatus) -> AlertMessage {
        AlertMessage::Transition(AlertTransition {
            alert_id: id.into(),
            from_status: from as i32,
            to_status: to as i32,
            ..Default::default()
        })
    }

    fn action(id: &str, version: u64) -> AlertAction {
        AlertAction {
            alert_id: id.into(),
            expected_version: version,
            ..Default::default()
        }
    }

    #[test]
    fn every_allowed_and_refused_transition() {
        use AlertStatus::*;
        let allowed_pairs = [
            (Open, Acknowledged),
            (Open, Assigned),
            (Acknowledged, Assigned),
            (Assigned, Assigned),
            (Open, Escalated),
            (Acknowledged, Escalated),
            (Assigned, Escalated),
            (Open, Resolved),
            (Acknowledged, Resolved),
            (Assigned, Resolved),
            (Escalated, Resolved),
        ];
        for from in ALL {
            for target in ALL {
                assert_eq!(
                    allowed(from, target),
                    allowed_pairs.contains(&(from, target)),
                    "{from:?} -> {target:?}"
                );
            }
        }
    }

    #[test]
    fn the_book_checks_actions_against_status_and_version() {
        let book = AlertBook::default();
        book.apply(1, raised("alr_1", "74.02.05.2001"));
        // Unknown alert, missing id, too long a note.
        assert_eq!(
            book.check(&action("alr_x", 0), AlertStatus::Acknowledged)
                .unwrap_err()
                .code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            book.check(&action("", 0), AlertStatus::Acknowledged)
                .unwrap_err()
                .code(),
            tonic::Code::InvalidArgument
        );
        let mut long = action("alr_1", 0);
        long.note = "x".repeat(2001);
        assert_eq!(
            book.check(&long, AlertStatus::Acknowledged)
                .unwrap_err()
                .code(),
            tonic::Code::InvalidArgument
        );
        // A note carrying a NIK, however spelled, is refused like any free text.
        let mut noted = action("alr_1", 0);
        noted.note = "warga 7402.0501.0190.0001 dipanggil".into();
        assert_eq!(
            book.check(&noted, AlertStatus::Acknowledged)
                .unwrap_err()
                .code(),
            tonic::Code::InvalidArgument
        );
        // Open: acknowledge is fine; the stored transition moves it on and sets the version.
        book.check(&action("alr_1", 0), AlertStatus::Acknowledged)
            .unwrap();
        book.apply(7, to("alr_1", AlertStatus::Open, AlertStatus::Acknowledged));
        let r = book.get("alr_1").unwrap();
        assert_eq!(r.status, AlertStatus::Acknowledged as i32);
        assert_eq!((r.version, r.history.len()), (7, 1));
        // A second acknowledgement is refused, naming the status.
        let refused = book
            .check(&action("alr_1", 0), AlertStatus::Acknowledged)
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(refused.message().contains("ACKNOWLEDGED"), "{refused:?}");
        // A stale expected version is refused; the current one is accepted.
        assert_eq!(
            book.check(&action("alr_1", 3), AlertStatus::Assigned)
                .unwrap_err()
                .code(),
            tonic::Code::Aborted
        );
        book.check(&action("alr_1", 7), AlertStatus::Assigned)
            .unwrap();
        // Replaying an old or the same message changes nothing.
        book.apply(7, to("alr_1", AlertStatus::Open, AlertStatus::Acknowledged));
        book.apply(1, raised("alr_1", "74.02.05.2001"));
        assert_eq!(book.get("alr_1").unwrap().history.len(), 1);
    }

    #[test]
    fn filters_select_by_region_prefix_severity_rule_and_status() {
        let book = AlertBook::default();
        book.apply(1, raised("a", "74.02.05.2001"));
        book.apply(2, raised("b", "72.71.01.1007"));
        book.apply(3, to("b", AlertStatus::Open, AlertStatus::Resolved));
        let ids = |f: AlertFilter, open_only: bool| -> Vec<String> {
            book.matching(&f, open_only)
                .into_iter()
                .map(|r| r.alert.unwrap().id)
                .collect()
        };
        assert_eq!(ids(AlertFilter::default(), false), ["b", "a"]);
        assert_eq!(ids(AlertFilter::default(), true), ["a"]);
        let region = |p: &str| AlertFilter {
            regions: vec![p.into()],
            ..Default::default()
        };
        assert_eq!(ids(region("74.02"), false), ["a"]);
        assert!(
            ids(region("74.0"), false).is_empty(),
            "a prefix stops at a dot"
        );
        let severe = AlertFilter {
            min_severity: Severity::Critical as i32,
            ..Default::default()
        };
        assert!(ids(severe, false).is_empty());
        let resolved = AlertFilter {
            statuses: vec![AlertStatus::Resolved as i32],
            ..Default::default()
        };
        assert_eq!(ids(resolved, false), ["b"]);
    }

    #[test]
    fn currency_is_reported_once_per_change() {
        let book = AlertBook::default();
        let mut rx = book.currency();
        assert!(book.is_current());
        book.set_current(true);
        assert!(!rx.has_changed().unwrap());
        book.set_current(false);
        assert!(rx.has_changed().unwrap() && !*rx.borrow_and_update());
    }

    #[test]
    fn a_correction_withdraws_the_finding_visibly_and_nobody_acts_on_it_after() {
        let book = AlertBook::default();
        book.apply(1, raised("a", "74.02"));
        let correction = |id: &str, withdrawn: bool| {
            AlertMessage::Raised(Alert {
                id: id.into(),
                rule_id: "R1".into(),
                corrects: "a".into(),
                withdrawn,
                summary: "withdrawn: a registration reported late".into(),
                evidence: vec!["bp3mi/bp3mi-sultra/c1".into()],
                ..Default::default()
            })
        };
        book.apply(2, correction("w", true));
        let r = book.get("a").unwrap();
        assert_eq!(r.status, AlertStatus::Withdrawn as i32);
        let t = r.history.last().unwrap();
        assert_eq!(
            (t.actor.as_str(), t.from_status, t.evidence.as_slice()),
            (
                CORRELATOR,
                AlertStatus::Open as i32,
                ["bp3mi/bp3mi-sultra/c1".to_owned()].as_slice()
            )
        );
        assert!(t.note.starts_with("withdrawn: "));
        assert!(
            book.get("w").is_none(),
            "a correction is not an alert of its own"
        );
        // Read again from the stream (a restart): once, not twice.
        book.apply(2, correction("w", true));
        assert_eq!(book.get("a").unwrap().history.len(), 1);
        let err = book
            .check(&action("a", 0), AlertStatus::Acknowledged)
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(book.matching(&AlertFilter::default(), true).is_empty());
        // A correction that leaves the finding standing keeps its status.
        book.apply(3, raised("b", "74.02"));
        book.apply(
            4,
            AlertMessage::Raised(Alert {
                corrects: "b".into(),
                id: "x".into(),
                ..Default::default()
            }),
        );
        assert_eq!(book.get("b").unwrap().status, AlertStatus::Open as i32);
        assert_eq!(book.get("b").unwrap().history.len(), 1);
    }
}
