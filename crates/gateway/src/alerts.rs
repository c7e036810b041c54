//! `AlertService`: the alerts and their handling, as operations staff see them.
//!
//! The gateway follows the alerts stream from its start into an in-memory book (each alert with
//! its status and history), and serves lists, a live watch and single alerts from it. Every
//! action is a transition stored on the alert's own lifecycle subject with "expected last
//! subject sequence": two operators acting on the same alert at once cannot both succeed, and an
//! action that the alert's status does not allow is refused with `FAILED_PRECONDITION`.
//!
//! Who sees and who acts is decided here, not by the calling system: an agency sees an alert
//! only when it may read every classification of its evidence, acts on it only as its policy's
//! `act` list allows, and a caller acting for people (the console) must name the operator and
//! the role, whose rights narrow its own. Refusals are `PERMISSION_DENIED` and change nothing.

use std::pin::Pin;
use std::time::SystemTime;

use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use timpora_bus::{AlertMessage, TransitionError};
use timpora_proto::v1::alert_service_server::AlertService;
use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;

use crate::access::Read;
pub use crate::book::{AlertBook, follow};
use crate::book::{matches, status_name};
use crate::error::Error;
use crate::identity::{Identity, caller};
use crate::ingest::{Ingest, Paths};
use crate::policy::{Action, AlertRules, Ask, Policy, Refusal};
use crate::trace;
use crate::validate::Violations;

/// The service.
#[derive(Clone)]
pub struct Alerts {
    pub book: AlertBook,
    pub ingest: Ingest,
    pub bus: timpora_bus::Bus,
    pub policy: std::sync::Arc<Policy>,
    pub rules: std::sync::Arc<AlertRules>,
    /// Which events mention which subject (for subjects' pages).
    pub subjects: crate::subjects::SubjectIndex,
    /// Villages' reports counted (for the overview).
    pub(crate) villages: crate::villages::Counts,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchAlertsResponse, Status>> + Send>>;

/// The alerts cannot be followed: the gateway does not reach NATS.
fn not_current() -> Status {
    Status::unavailable("alerts are not current: the gateway cannot reach NATS; try again")
}

pub(crate) fn required(field: &str) -> Status {
    Error::required(field).into()
}

impl Alerts {
    /// Alerts are about single persons: only agencies that may read events see them.
    /// The caller, once found allowed to see alerts at all; a refusal of `action` is on record.
    async fn admit<T>(&self, req: &Request<T>, action: &'static str) -> Result<Identity, Status> {
        let who = caller(req)?;
        if self.policy.reads_anything(&who.agency) {
            Ok(who)
        } else {
            let s = Status::permission_denied(format!(
                "{who} may not see alerts (its policy reads no events)"
            ));
            Err(read(action, &who, "", "").refused(&self.bus, s).await)
        }
    }

    /// Whether `who` may see `record`.
    fn visible(&self, who: &Identity, record: &AlertRecord) -> bool {
        record
            .alert
            .as_ref()
            .is_some_and(|a| self.policy.may_see(&who.agency, a))
    }

    /// The alert `action` names, once `who` is found allowed to take step `what` on it, before
    /// anything about the alert's handling is looked at: a caller that may not act learns
    /// nothing about its status.
    fn authorise(
        &self,
        who: &Identity,
        action: &AlertAction,
        what: Action,
    ) -> Result<AlertRecord, Status> {
        if action.alert_id.is_empty() {
            return Err(required("action.alert_id"));
        }
        let mut vs = Violations::default();
        if let Some(why) = crate::validate::check_text(&action.operator, 128) {
            vs.add("action.operator", why);
        }
        let role_ok = action.role.len() <= 32
            && action
                .role
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !role_ok {
            vs.add(
                "action.role",
                "a role name: at most 32 of a-z, 0-9, - and _",
            );
        }
        if !vs.is_empty() {
            return Err(Error::Invalid(vs).into());
        }
        let record = self
            .book
            .get(&action.alert_id)
            .ok_or_else(|| Status::not_found(format!("no alert {}", action.alert_id)))?;
        let alert = record.alert.clone().unwrap_or_default();
        let ask = Ask {
            who,
            operator: &action.operator,
            role: &action.role,
            action: what,
            alert: &alert,
        };
        match self.rules.refusal(&self.policy, &ask) {
            None => Ok(record),
            Some(refusal) => {
                tracing::warn!(
                    alert = %action.alert_id, actor = %who, role = ?action.role, action = %what,
                    "alert action refused"
                );
                Err(match refusal {
                    Refusal::Denied(why) => Status::permission_denied(why),
                    Refusal::Invalid(field, why) => {
                        let mut vs = Violations::default();
                        vs.add(field, why);
                        Error::Invalid(vs).into()
                    }
                })
            }
        }
    }

    /// Take a lifecycle step; the step, or its refusal, is on record in the access stream.
    async fn act(
        &self,
        who: &Identity,
        action: Option<AlertAction>,
        to: AlertStatus,
        fill: impl FnOnce(&mut AlertTransition),
    ) -> Result<AlertRecord, Status> {
        let (operator, id) = action
            .as_ref()
            .map(|a| (a.operator.clone(), a.alert_id.clone()))
            .unwrap_or_default();
        let read = read(step_name(to), who, &operator, &id);
        match self.step(who, action, to, fill).await {
            Ok(record) => {
                if let Err(e) = read.once(&self.bus, 1).await {
                    tracing::warn!(alert = %id, error = %e, "lifecycle step not in the access records");
                }
                Ok(record)
            }
            Err(s) => Err(read.refused(&self.bus, s).await),
        }
    }

    async fn step(
        &self,
        who: &Identity,
        action: Option<AlertAction>,
        to: AlertStatus,
        fill: impl FnOnce(&mut AlertTransition),
    ) -> Result<AlertRecord, Status> {
        let mut action = action.ok_or_else(|| required("action"))?;
        let what = match to {
            AlertStatus::Assigned => Action::Assign,
            AlertStatus::Escalated => Action::Escalate,
            AlertStatus::Resolved => Action::Resolve,
            _ => Action::Acknowledge,
        };
        let found = self.authorise(who, &action, what)?;
        // An extension's id names the alert it grew: the step is that alert's.
        if let Some(a) = &found.alert {
            action.alert_id.clone_from(&a.id);
        }
        let record = self.book.check(&action, to)?;
        let from = AlertStatus::try_from(record.status).unwrap_or_default();
        let mut t = AlertTransition {
            alert_id: action.alert_id.clone(),
            from_status: from as i32,
            to_status: to as i32,
            actor: who.to_string(),
            operator: action.operator,
            role: action.role,
            time: Some(SystemTime::now().into()),
            note: action.note,
            ..Default::default()
        };
        fill(&mut t);
        let seq = match self.bus.publish_transition(&t, record.version).await {
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

/// A read of `action` by `who`, for the access records.
fn read(action: &'static str, who: &Identity, operator: &str, alert_id: &str) -> Read {
    Read {
        action,
        who: who.clone(),
        operator: operator.to_owned(),
        filter: String::new(),
        alert_id: alert_id.to_owned(),
    }
}

/// The access-record name of a lifecycle step.
fn step_name(to: AlertStatus) -> &'static str {
    match to {
        AlertStatus::Assigned => "assign",
        AlertStatus::Escalated => "escalate",
        AlertStatus::Resolved => "resolve",
        _ => "acknowledge",
    }
}

#[tonic::async_trait]
impl AlertService for Alerts {
    type WatchAlertsStream = WatchStream;

    async fn watch_alerts(
        &self,
        req: Request<WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        let who = self.admit(&req, "watch_alerts").await?;
        let filter = req.into_inner().filter.unwrap_or_default();
        let mut read = read("watch_alerts", &who, "", "");
        read.filter = format!("{filter:?}");
        let mut currency = self.book.currency();
        if !*currency.borrow_and_update() {
            return Err(read.refused(&self.bus, not_current()).await);
        }
        let mut closing = read.open(&self.bus).await?;
        // Subscribe before the snapshot, so nothing falls between the two.
        let mut changes = self.book.changes.subscribe();
        let open_only = filter.statuses.is_empty();
        let mut initial = self.book.matching(&filter, open_only);
        initial.retain(|r| self.visible(&who, r));
        initial.reverse(); // oldest first
        closing.returned(initial.len() as u64);
        let book = self.book.clone();
        let this = self.clone();
        let stream = async_stream(initial, move |tx| async move {
            // Closed (on record, with the count) however the watch ends.
            let mut closing = closing;
            loop {
                let change = tokio::select! {
                    c = changes.recv() => c,
                    // The watcher is told, rather than left with a list that no longer changes.
                    () = async { let _ = currency.wait_for(|current| !current).await; } => {
                        let _ = tx.send(Err(not_current())).await;
                        return;
                    }
                };
                match change {
                    Ok(r) if matches(&filter, &r) && this.visible(&who, &r) => {
                        let msg = WatchAlertsResponse {
                            record: Some(r),
                            live: true,
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                        closing.returned(1);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Too slow a reader: send what matches now, then go on.
                        tracing::warn!(missed = n, "alert watcher lagged; resending");
                        for r in book.matching(&filter, false) {
                            if !this.visible(&who, &r) {
                                continue;
                            }
                            let msg = WatchAlertsResponse {
                                record: Some(r),
                                live: true,
                            };
                            if tx.send(Ok(msg)).await.is_err() {
                                return;
                            }
                            closing.returned(1);
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
        let who = self.admit(&req, "list_alerts").await?;
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 100,
            n => n.min(1000),
        } as usize;
        let mut read = read("list_alerts", &who, "", "");
        read.filter = format!("{r:?}");
        let mut records = self.book.matching(&r.filter.unwrap_or_default(), false);
        records.retain(|r| self.visible(&who, r));
        records.truncate(limit);
        read.once(&self.bus, records.len() as u64).await?;
        Ok(Response::new(ListAlertsResponse { records }))
    }

    async fn get_alert(
        &self,
        req: Request<GetAlertRequest>,
    ) -> Result<Response<GetAlertResponse>, Status> {
        let who = self.admit(&req, "get_alert").await?;
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
        let policy = &self.policy;
        if let Some(c) = policy.hidden_from(&who.agency, &alert) {
            tracing::warn!(alert = %id, reader = %who, "alert read refused");
            let s = Status::permission_denied(format!(
                "{who} may not read alert {id}: its evidence includes {} records",
                crate::policy::classification_name(c)
            ));
            return Err(read("get_alert", &who, &operator, &id)
                .refused(&self.bus, s)
                .await);
        }
        let mut events = Vec::new();
        let mut withheld = Vec::new();
        let mut sequences = alert.evidence_sequences.clone();
        sequences.resize(alert.evidence.len(), 0);
        let stored = self.bus.events_at(&sequences).await.map_err(Error::from)?;
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
            ..Default::default()
        };
        self.bus.record_access(&access).await.map_err(Error::from)?;
        tracing::info!(alert = %id, reader = %who, events = events.len(), withheld = withheld.len(), "alert read");
        Ok(Response::new(GetAlertResponse {
            record: Some(record),
            events,
            withheld,
        }))
    }

    async fn count_community_reports(
        &self,
        req: Request<CountCommunityReportsRequest>,
    ) -> Result<Response<CountCommunityReportsResponse>, Status> {
        self.admit(&req, "count_community_reports").await?;
        let days = req.into_inner().days;
        self.villages
            .count(&self.bus, days)
            .await
            .map(Response::new)
    }

    async fn get_subject(
        &self,
        req: Request<GetSubjectRequest>,
    ) -> Result<Response<GetSubjectResponse>, Status> {
        let who = self.admit(&req, "get_subject").await?;
        let GetSubjectRequest { subject, operator } = req.into_inner();
        let mut vs = Violations::default();
        if subject.is_empty() {
            vs.add("subject", "required: a psn_/rec_ token or a licence number");
        } else if subject.len() > 128
            || !subject
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            vs.add(
                "subject",
                "a psn_/rec_ token or a licence number as stored: 1-128 of letters, digits, _ and -",
            );
        }
        if operator.chars().count() > 128 {
            vs.add("operator", "at most 128 characters");
        }
        if !vs.is_empty() {
            return Err(Error::Invalid(vs).into());
        }
        let policy = &self.policy;
        // Its alerts the caller may see, newest first.
        let alerts = self
            .book
            .about(&subject, |a| policy.hidden_from(&who.agency, a).is_none());
        // Everything stored before the read is on the page: the index catches up first (for a
        // moment at most; it follows the stream as it is written).
        let last = self.bus.events_last_sequence().await.map_err(Error::from)?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.subjects.position() < last && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if self.subjects.position() < last {
            tracing::warn!(
                position = self.subjects.position(),
                last,
                "subject index behind the events stream; the page may miss the newest events"
            );
        }
        let (sequences, truncated) = self.subjects.sequences(&subject);
        let stored = self.bus.events_at(&sequences).await.map_err(Error::from)?;
        let mut events = Vec::new();
        let mut withheld = 0u32;
        for e in stored.into_iter().flatten() {
            let readable = policy.may_read(
                &who.agency,
                Classification::try_from(e.classification).unwrap_or_default(),
            );
            if readable {
                events.push(e);
            } else {
                withheld += 1;
            }
        }
        events.sort_by_key(|e| e.time.map(|t| (t.seconds, t.nanos)));
        // The read is on record before anything is returned.
        let access = AlertAccess {
            subject: subject.clone(),
            reader: who.to_string(),
            operator,
            time: Some(SystemTime::now().into()),
            events: events.len() as u32,
            withheld,
            ..Default::default()
        };
        self.bus.record_access(&access).await.map_err(Error::from)?;
        tracing::info!(reader = %who, alerts = alerts.len(), events = events.len(), withheld, "subject read");
        Ok(Response::new(GetSubjectResponse {
            subject,
            alerts,
            events,
            withheld,
            truncated,
        }))
    }

    async fn list_alert_access(
        &self,
        req: Request<ListAlertAccessRequest>,
    ) -> Result<Response<ListAlertAccessResponse>, Status> {
        let who = caller(&req)?;
        let mut read = read("list_access", &who, "", "");
        read.filter = format!("{:?}", req.get_ref());
        if !self.policy.audits(&who.agency) {
            let s = Status::permission_denied(format!(
                "{who} may not read the access records (its policy has no audit right)"
            ));
            return Err(read.refused(&self.bus, s).await);
        }
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 100,
            n => n.min(1000),
        } as usize;
        let records = self
            .bus
            .access_records(
                (!r.alert_id.is_empty()).then_some(r.alert_id.as_str()),
                limit,
            )
            .await
            .map_err(Error::from)?;
        read.once(&self.bus, records.len() as u64).await?;
        tracing::info!(reader = %who, records = records.len(), "access records read");
        Ok(Response::new(ListAlertAccessResponse { records }))
    }

    async fn acknowledge_alert(
        &self,
        req: Request<AcknowledgeAlertRequest>,
    ) -> Result<Response<AcknowledgeAlertResponse>, Status> {
        let who = self.admit(&req, "acknowledge").await?;
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
        let who = self.admit(&req, "assign").await?;
        let r = req.into_inner();
        let action = r.action.ok_or_else(|| required("action"))?;
        let record = self.authorise(&who, &action, Action::Assign)?;
        let alert = record.alert.unwrap_or_default();
        if let Some(why) = self
            .rules
            .assignment_refusal(&self.policy, &r.assignee, &alert)
        {
            let mut vs = Violations::default();
            vs.add("assignee", why);
            return Err(Error::Invalid(vs).into());
        }
        let assignee = r.assignee;
        let record = self
            .act(&who, Some(action), AlertStatus::Assigned, |t| {
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
        let who = self.admit(&req, "escalate").await?;
        let tp = trace::traceparent(&req);
        let r = req.into_inner();
        let action = r.action.ok_or_else(|| required("action"))?;
        // Checked before the case is opened, so a refused escalation opens none.
        self.authorise(&who, &action, Action::Escalate)?;
        let record = self.book.check(&action, AlertStatus::Escalated)?;
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
        self.ingest.send_prepared(&who, prepared).await.await?;
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
        let who = self.admit(&req, "resolve").await?;
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
