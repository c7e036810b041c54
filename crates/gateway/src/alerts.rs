//! `AlertService`: the alerts and their handling, as operations staff see them.
//!
//! The gateway follows the alerts stream from its start into an in-memory book (each alert with
//! its status and history), and serves lists, a live watch and single alerts from it. Every
//! action is a transition stored on the alert's own lifecycle subject with "expected last
//! subject sequence": two operators acting on the same alert at once cannot both succeed, and an
//! action that the alert's status does not allow is refused with `FAILED_PRECONDITION`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use timpora_bus::{AlertMessage, Bus, TransitionError};
use timpora_proto::v1::alert_service_server::AlertService;
use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;

use crate::identity::{Identity, caller};
use crate::ingest::{Ingest, Paths};
use crate::validate::Violations;
use crate::{Error, trace};

/// What the book holds: records by id, and ids in the order they were raised.
#[derive(Default)]
struct Inner {
    records: HashMap<String, AlertRecord>,
    order: Vec<String>,
}

/// The alerts and their handling, kept up to date from the alerts stream.
#[derive(Clone)]
pub struct AlertBook {
    inner: Arc<RwLock<Inner>>,
    changes: broadcast::Sender<AlertRecord>,
}

impl Default for AlertBook {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            changes: broadcast::channel(4096).0,
        }
    }
}

/// The status a transition leads to from `from`, if allowed.
fn allowed(from: AlertStatus, to: AlertStatus) -> bool {
    use AlertStatus::*;
    match to {
        Acknowledged => from == Open,
        Assigned => matches!(from, Open | Acknowledged | Assigned),
        Escalated => matches!(from, Open | Acknowledged | Assigned),
        Resolved => matches!(from, Open | Acknowledged | Assigned | Escalated),
        Open | Unspecified => false,
    }
}

fn status_name(s: AlertStatus) -> &'static str {
    s.as_str_name().trim_start_matches("ALERT_STATUS_")
}

impl AlertBook {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Take one alerts-stream message into the book (idempotent by sequence).
    fn apply(&self, sequence: u64, message: AlertMessage) {
        let changed = {
            let mut inner = self.write();
            match message {
                AlertMessage::Raised(alert) => {
                    if inner.records.contains_key(&alert.id) {
                        None
                    } else {
                        let record = AlertRecord {
                            status: AlertStatus::Open as i32,
                            alert: Some(alert.clone()),
                            ..Default::default()
                        };
                        inner.order.push(alert.id.clone());
                        inner.records.insert(alert.id, record.clone());
                        Some(record)
                    }
                }
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

    fn get(&self, id: &str) -> Option<AlertRecord> {
        self.read().records.get(id).cloned()
    }

    /// Records matching `filter`, newest first.
    fn matching(&self, filter: &AlertFilter, open_only: bool) -> Vec<AlertRecord> {
        let inner = self.read();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.records.get(id))
            .filter(|r| matches(filter, r))
            .filter(|r| !open_only || r.status != AlertStatus::Resolved as i32)
            .cloned()
            .collect()
    }
}

fn matches(f: &AlertFilter, r: &AlertRecord) -> bool {
    let Some(a) = &r.alert else { return false };
    let region_ok = f.regions.is_empty()
        || f.regions.iter().any(|p| {
            a.region == *p
                || a.region
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        });
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
            Err(e) => tracing::debug!(error = %e, "alerts stream not readable yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The service.
#[derive(Clone)]
pub struct Alerts {
    pub book: AlertBook,
    pub ingest: Ingest,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchAlertsResponse, Status>> + Send>>;

fn required(field: &str) -> Status {
    let mut vs = Violations::default();
    vs.add(field, "required");
    Error::Invalid(vs).into()
}

impl Alerts {
    /// Alerts are about single persons: only agencies that may read events see them.
    fn admit<T>(&self, req: &Request<T>) -> Result<Identity, Status> {
        let who = caller(req)?;
        if self.ingest.policy().reads_anything(&who.agency) {
            Ok(who)
        } else {
            Err(Status::permission_denied(format!(
                "{who} may not see alerts (its policy reads no events)"
            )))
        }
    }

    /// Check and store one transition; the record after it.
    /// Check `action` against the book: a valid request, a known alert, a transition its
    /// status allows, the expected version. The record as it stands.
    fn check(&self, action: &AlertAction, to: AlertStatus) -> Result<AlertRecord, Status> {
        if action.alert_id.is_empty() {
            return Err(required("action.alert_id"));
        }
        if action.note.chars().count() > 2000 {
            let mut vs = Violations::default();
            vs.add("action.note", "at most 2000 characters");
            return Err(Error::Invalid(vs).into());
        }
        let record = self
            .book
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

    async fn act(
        &self,
        who: &Identity,
        action: Option<AlertAction>,
        to: AlertStatus,
        fill: impl FnOnce(&mut AlertTransition),
    ) -> Result<AlertRecord, Status> {
        let action = action.ok_or_else(|| required("action"))?;
        let record = self.check(&action, to)?;
        let from = AlertStatus::try_from(record.status).unwrap_or_default();
        let mut t = AlertTransition {
            alert_id: action.alert_id.clone(),
            from_status: from as i32,
            to_status: to as i32,
            actor: who.to_string(),
            operator: action.operator,
            time: Some(SystemTime::now().into()),
            note: action.note,
            ..Default::default()
        };
        fill(&mut t);
        let seq = match self
            .ingest
            .bus()
            .publish_transition(&t, record.version)
            .await
        {
            Ok(seq) => seq,
            Err(TransitionError::Conflict) => {
                return Err(Status::aborted(format!(
                    "alert {} changed meanwhile; reload it",
                    action.alert_id
                )));
            }
            Err(TransitionError::Bus(e)) => return Err(Error::from(e).into()),
        };
        tracing::info!(
            alert = %t.alert_id, actor = %t.actor, from = status_name(from), to = status_name(to),
            sequence = seq, "alert transition"
        );
        self.book.apply(seq, AlertMessage::Transition(t));
        self.book
            .get(&action.alert_id)
            .ok_or_else(|| Status::internal("alert vanished"))
    }
}

#[tonic::async_trait]
impl AlertService for Alerts {
    type WatchAlertsStream = WatchStream;

    async fn watch_alerts(
        &self,
        req: Request<WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        self.admit(&req)?;
        let filter = req.into_inner().filter.unwrap_or_default();
        // Subscribe before the snapshot, so nothing falls between the two.
        let mut changes = self.book.changes.subscribe();
        let open_only = filter.statuses.is_empty();
        let mut initial = self.book.matching(&filter, open_only);
        initial.reverse(); // oldest first
        let book = self.book.clone();
        let stream = async_stream(initial, move |tx| async move {
            loop {
                match changes.recv().await {
                    Ok(r) if matches(&filter, &r) => {
                        let msg = WatchAlertsResponse {
                            record: Some(r),
                            live: true,
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Too slow a reader: send what matches now, then go on.
                        tracing::warn!(missed = n, "alert watcher lagged; resending");
                        for r in book.matching(&filter, false) {
                            let msg = WatchAlertsResponse {
                                record: Some(r),
                                live: true,
                            };
                            if tx.send(Ok(msg)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn list_alerts(
        &self,
        req: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        self.admit(&req)?;
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 100,
            n => n.min(1000),
        } as usize;
        let mut records = self.book.matching(&r.filter.unwrap_or_default(), false);
        records.truncate(limit);
        Ok(Response::new(ListAlertsResponse { records }))
    }

    async fn get_alert(
        &self,
        req: Request<GetAlertRequest>,
    ) -> Result<Response<GetAlertResponse>, Status> {
        let who = self.admit(&req)?;
        let GetAlertRequest {
            alert_id: id,
            operator,
        } = req.into_inner();
        if id.is_empty() {
            return Err(required("alert_id"));
        }
        if operator.chars().count() > 128 {
            let mut vs = Violations::default();
            vs.add("operator", "at most 128 characters");
            return Err(Error::Invalid(vs).into());
        }
        let record = self
            .book
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("no alert {id}")))?;
        let alert = record.alert.clone().unwrap_or_default();
        let policy = self.ingest.policy();
        let mut events = Vec::new();
        let mut withheld = Vec::new();
        let mut sequences = alert.evidence_sequences.clone();
        sequences.resize(alert.evidence.len(), 0);
        let stored = self
            .ingest
            .bus()
            .events_at(&sequences)
            .await
            .map_err(Error::from)?;
        for (key, event) in alert.evidence.iter().zip(stored) {
            match event {
                Some(e)
                    if timpora_bus::dedup_key(&e.source, &e.id) == *key
                        && policy.may_read(
                            &who.agency,
                            Classification::try_from(e.classification).unwrap_or_default(),
                        ) =>
                {
                    events.push(e)
                }
                _ => withheld.push(key.clone()),
            }
        }
        // The read is on record before anything is returned.
        let access = AlertAccess {
            alert_id: id.clone(),
            reader: who.to_string(),
            operator,
            time: Some(SystemTime::now().into()),
            events: events.len() as u32,
            withheld: withheld.len() as u32,
        };
        self.ingest
            .bus()
            .record_access(&access)
            .await
            .map_err(Error::from)?;
        tracing::info!(alert = %id, reader = %who, events = events.len(), withheld = withheld.len(), "alert read");
        Ok(Response::new(GetAlertResponse {
            record: Some(record),
            events,
            withheld,
        }))
    }

    async fn list_alert_access(
        &self,
        req: Request<ListAlertAccessRequest>,
    ) -> Result<Response<ListAlertAccessResponse>, Status> {
        let who = caller(&req)?;
        if !self.ingest.policy().audits(&who.agency) {
            return Err(Status::permission_denied(format!(
                "{who} may not read the access records (its policy has no audit right)"
            )));
        }
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 100,
            n => n.min(1000),
        } as usize;
        let records = self
            .ingest
            .bus()
            .access_records(
                (!r.alert_id.is_empty()).then_some(r.alert_id.as_str()),
                limit,
            )
            .await
            .map_err(Error::from)?;
        tracing::info!(reader = %who, records = records.len(), "access records read");
        Ok(Response::new(ListAlertAccessResponse { records }))
    }

    async fn acknowledge_alert(
        &self,
        req: Request<AcknowledgeAlertRequest>,
    ) -> Result<Response<AcknowledgeAlertResponse>, Status> {
        let who = self.admit(&req)?;
        let r = req.into_inner();
        let record = self
            .act(&who, r.action, AlertStatus::Acknowledged, |_| {})
            .await?;
        Ok(Response::new(AcknowledgeAlertResponse {
            record: Some(record),
        }))
    }

    async fn assign_alert(
        &self,
        req: Request<AssignAlertRequest>,
    ) -> Result<Response<AssignAlertResponse>, Status> {
        let who = self.admit(&req)?;
        let r = req.into_inner();
        if Identity::parse(&r.assignee).is_none() {
            let mut vs = Violations::default();
            vs.add("assignee", "must be agency/unit, e.g. polri/polda-sultra");
            return Err(Error::Invalid(vs).into());
        }
        let assignee = r.assignee;
        let record = self
            .act(&who, r.action, AlertStatus::Assigned, |t| {
                t.assignee = assignee
            })
            .await?;
        Ok(Response::new(AssignAlertResponse {
            record: Some(record),
        }))
    }

    async fn escalate_alert(
        &self,
        req: Request<EscalateAlertRequest>,
    ) -> Result<Response<EscalateAlertResponse>, Status> {
        let who = self.admit(&req)?;
        let tp = trace::traceparent(&req);
        let r = req.into_inner();
        let action = r.action.ok_or_else(|| required("action"))?;
        // Checked before the case is opened, so a refused escalation opens none.
        let record = self.check(&action, AlertStatus::Escalated)?;
        let alert = record.alert.unwrap_or_default();
        // The case, opened on the bus in the caller's name: the same id for the same alert, so
        // a retried escalation opens no second case.
        let case_id = format!("case-{}", alert.id.trim_start_matches("alr_"));
        let kind = match CaseKind::try_from(r.kind).unwrap_or_default() {
            CaseKind::Unspecified => CaseKind::Tppo,
            k => k,
        };
        let ev = Event {
            id: case_id.clone(),
            time: Some(SystemTime::now().into()),
            region: alert.region.clone(),
            payload: Some(Payload::CaseStatusChanged(CaseStatusChanged {
                case_id: case_id.clone(),
                kind: kind as i32,
                status: CaseStatus::Opened as i32,
                linked_alert_ids: vec![alert.id.clone()],
                ..Default::default()
            })),
            ..Default::default()
        };
        let paths = Paths {
            meta: "",
            payload_parent: "",
            payload: "case",
        };
        let mut prepared = self.ingest.prepare(&who, ev, &paths, tp)?;
        let kind_of_group = match alert.group_key.split('_').next() {
            Some("psn") => EntityKind::Person,
            Some("rec") => EntityKind::Recruiter,
            _ => EntityKind::Company,
        };
        prepared.entities.push(EntityRef {
            kind: kind_of_group as i32,
            id: alert.group_key.clone(),
            role: "alert subject".into(),
        });
        self.ingest.publish(&prepared).await?;
        let id = case_id.clone();
        let record = self
            .act(&who, Some(action), AlertStatus::Escalated, |t| {
                t.case_id = id
            })
            .await?;
        Ok(Response::new(EscalateAlertResponse {
            record: Some(record),
            case_id,
        }))
    }

    async fn resolve_alert(
        &self,
        req: Request<ResolveAlertRequest>,
    ) -> Result<Response<ResolveAlertResponse>, Status> {
        let who = self.admit(&req)?;
        let r = req.into_inner();
        let resolution = Resolution::try_from(r.resolution).unwrap_or_default();
        if resolution == Resolution::Unspecified {
            let mut vs = Violations::default();
            vs.add("resolution", "required: CONFIRMED or FALSE_POSITIVE");
            return Err(Error::Invalid(vs).into());
        }
        let record = self
            .act(&who, r.action, AlertStatus::Resolved, |t| {
                t.resolution = resolution as i32
            })
            .await?;
        Ok(Response::new(ResolveAlertResponse {
            record: Some(record),
        }))
    }
}

/// A response stream: `initial` first (not live), then what `rest` sends.
fn async_stream<F, Fut>(initial: Vec<AlertRecord>, rest: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<WatchAlertsResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let first = futures::stream::iter(initial.into_iter().map(|r| {
        Ok(WatchAlertsResponse {
            record: Some(r),
            live: false,
        })
    }));
    tokio::spawn(rest(tx));
    Box::pin(first.chain(tokio_stream::wrappers::ReceiverStream::new(rx)))
}
