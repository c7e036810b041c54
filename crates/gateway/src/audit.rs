//! `AuditService`: auditors replay the events, alerts and access streams exactly as stored.
//! Only identities whose policy grants audit may call it; every call — refused ones too — is in
//! the access stream before any record is returned, and a replay is closed there with how many
//! records it returned.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use timpora_bus::{Bus, Start, StoredMessage};
use timpora_proto::v1::audit_service_server::AuditService;
use timpora_proto::v1::*;

use crate::access::Read;
use crate::error::Error;
use crate::identity::caller;
use crate::policy::Policy;
use crate::services::{BoxStream, Filter};
use crate::validate::Violations;

/// The audit service.
pub(crate) struct Audit {
    pub bus: Bus,
    pub policy: Arc<Policy>,
    /// The correlator's allowed lateness, for explanations.
    pub lateness: std::time::Duration,
}

/// The signers named on a signed note's signature lines.
fn signers(note: &str) -> Vec<String> {
    note.split_once("\n\n")
        .map(|(_, sigs)| {
            sigs.lines()
                .filter_map(|l| l.strip_prefix("— "))
                .filter_map(|l| l.split(' ').next())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn timestamp(rfc3339: &str) -> Option<prost_types::Timestamp> {
    rfc3339.parse().ok()
}

impl Audit {
    /// `who`, once found allowed to audit; a refusal of `action` is on record.
    async fn auditor(&self, read: &Read) -> Result<(), Status> {
        if self.policy.audits(&read.who.agency) {
            return Ok(());
        }
        let why = format!("{} may not audit (its policy has no audit right)", read.who);
        Err(read
            .refused(&self.bus, Status::permission_denied(why))
            .await)
    }
}

/// What a replay selects beyond the stream and the sequence range.
struct Selection {
    stream: AuditStream,
    since: Option<u128>,
    until: Option<u128>,
    filter: Filter,
    agencies: HashSet<String>,
    regions: Vec<String>,
    entities: Vec<String>,
    /// Alerts matched so far (their later transitions go with them).
    alerts: HashSet<String>,
}

fn nanos(t: &prost_types::Timestamp) -> Option<u128> {
    (t.seconds >= 0 && (0..1_000_000_000).contains(&t.nanos)).then(|| {
        u128::from(t.seconds.unsigned_abs()) * 1_000_000_000 + t.nanos.unsigned_abs() as u128
    })
}

fn in_region(region: &str, prefixes: &[String]) -> bool {
    prefixes.is_empty()
        || prefixes.iter().any(|r| {
            region == r
                || region
                    .strip_prefix(r.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
}

impl Selection {
    fn parse(r: &ReplayRequest) -> Result<Self, Violations> {
        let mut vs = Violations::default();
        let stream = match AuditStream::try_from(r.stream) {
            Ok(AuditStream::Unspecified) | Err(_) => {
                vs.add(
                    "stream",
                    "required: AUDIT_STREAM_EVENTS, _ALERTS or _ACCESS",
                );
                AuditStream::Unspecified
            }
            Ok(s) => s,
        };
        if r.to_sequence != 0 && r.to_sequence < r.from_sequence {
            vs.add("to_sequence", "must not be before from_sequence");
        }
        let since = r.since.as_ref().map(|t| (nanos(t), "since"));
        let until = r.until.as_ref().map(|t| (nanos(t), "until"));
        for (n, field) in [since, until].into_iter().flatten() {
            if n.is_none() {
                vs.add(field, "not a valid timestamp");
            }
        }
        let since = since.and_then(|(n, _)| n);
        let until = until.and_then(|(n, _)| n);
        if let (Some(s), Some(u)) = (since, until)
            && u <= s
        {
            vs.add("until", "must be after since");
        }
        if stream != AuditStream::Events && !r.types.is_empty() {
            vs.add("types", "only the events stream has event types");
        }
        if stream == AuditStream::Access && !(r.regions.is_empty() && r.entity_tokens.is_empty()) {
            vs.add("regions", "the access stream has no regions or entities");
        }
        let filter = Filter::check(&SubscribeRequest {
            types: r.types.clone(),
            agencies: r.agencies.clone(),
            regions: r.regions.clone(),
            entity_tokens: r.entity_tokens.clone(),
            start: None,
        });
        if r.operator.chars().count() > 128 {
            vs.add("operator", "at most 128 characters");
        }
        let filter = match filter {
            Ok(f) => f,
            Err(more) => {
                vs.extend(more);
                return Err(vs);
            }
        };
        if !vs.is_empty() {
            return Err(vs);
        }
        Ok(Self {
            stream,
            since,
            until,
            filter,
            agencies: r.agencies.iter().cloned().collect(),
            regions: r.regions.clone(),
            entities: r.entity_tokens.clone(),
            alerts: HashSet::new(),
        })
    }

    fn selects(&mut self, m: &StoredMessage, alerts_prefix: &str) -> bool {
        let t = u128::from(m.stored_nanos);
        if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
            return false;
        }
        match self.stream {
            AuditStream::Events => {
                // Unfiltered, a replay is the whole record: clock ticks and any record that is
                // not an event included, so that it can be checked against the log.
                self.filter.is_empty()
                    || Event::decode(m.payload.clone()).is_ok_and(|ev| self.filter.matches(&ev))
            }
            AuditStream::Alerts => {
                if self.regions.is_empty() && self.entities.is_empty() {
                    return true;
                }
                let raised = format!("{alerts_prefix}.raised.");
                if m.subject.starts_with(&raised) {
                    let Ok(a) = Alert::decode(m.payload.clone()) else {
                        return false;
                    };
                    let ok = in_region(&a.region, &self.regions)
                        && (self.entities.is_empty()
                            || self
                                .entities
                                .iter()
                                .any(|e| a.group_key.contains(e.as_str())));
                    if ok {
                        self.alerts.insert(a.id);
                    }
                    ok
                } else {
                    // A transition goes with its alert.
                    AlertTransition::decode(m.payload.clone())
                        .is_ok_and(|tr| self.alerts.contains(&tr.alert_id))
                }
            }
            AuditStream::Access => {
                self.agencies.is_empty()
                    || AlertAccess::decode(m.payload.clone()).is_ok_and(|a| {
                        let agency = a.reader.split('/').next().unwrap_or_default();
                        self.agencies.contains(agency)
                    })
            }
            AuditStream::Unspecified => false,
        }
    }
}

/// The request's filter as text, for the access record.
fn describe(r: &ReplayRequest) -> String {
    let stream = AuditStream::try_from(r.stream)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_default();
    let time =
        |t: &Option<prost_types::Timestamp>| t.map(|t| format!("{}.{:09}", t.seconds, t.nanos));
    serde_json::json!({
        "stream": stream,
        "from_sequence": r.from_sequence,
        "to_sequence": r.to_sequence,
        "since": time(&r.since),
        "until": time(&r.until),
        "agencies": r.agencies,
        "types": r.types,
        "entity_tokens": r.entity_tokens,
        "regions": r.regions,
    })
    .to_string()
}

#[tonic::async_trait]
impl AuditService for Audit {
    async fn list_logs(
        &self,
        req: Request<ListLogsRequest>,
    ) -> Result<Response<ListLogsResponse>, Status> {
        let who = caller(&req)?;
        let read = Read {
            action: "list_logs",
            who,
            operator: String::new(),
            filter: String::new(),
            alert_id: String::new(),
        };
        self.auditor(&read).await?;
        let mut logs = Vec::new();
        for (log, _) in self.bus.topology().sealed_streams() {
            let mut status = LogStatus {
                log: log.to_owned(),
                ..Default::default()
            };
            if let Some(note) = self.bus.latest_checkpoint(log).await.map_err(Error::from)? {
                let text = String::from_utf8_lossy(&note).into_owned();
                let mut lines = text.lines();
                status.origin = lines.next().unwrap_or_default().to_owned();
                status.size = lines
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default();
                status.root = lines.next().unwrap_or_default().to_owned();
                status.cosigners = signers(&text)
                    .into_iter()
                    .filter(|n| *n != status.origin)
                    .collect();
                status.checkpoint = text;
            }
            if let Some(v) = self.bus.verification(log).await.map_err(Error::from)? {
                status.verified_at = timestamp(&v.at);
                status.intact = v.intact;
                status.verification = v.summary;
                status.verified_by = v.by;
            }
            logs.push(status);
        }
        read.once(&self.bus, logs.len() as u64).await?;
        Ok(Response::new(ListLogsResponse { logs }))
    }

    async fn explain(
        &self,
        req: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let read = Read {
            action: "explain",
            who,
            operator: r.operator.clone(),
            filter: String::new(),
            alert_id: r.alert_id.clone(),
        };
        self.auditor(&read).await?;
        if r.alert_id.is_empty() || r.alert_id.len() > 128 {
            let mut vs = Violations::default();
            vs.add(
                "alert_id",
                "required: an alert's id (at most 128 characters)",
            );
            return Err(read.refused(&self.bus, Error::Invalid(vs).into()).await);
        }
        let e = match timpora_audit::explain(&self.bus, &r.alert_id, self.lateness).await {
            Ok(e) => e,
            Err(timpora_audit::Error::Proof(why)) => {
                return Err(read.refused(&self.bus, Status::not_found(why)).await);
            }
            Err(e) => return Err(Status::internal(e.to_string())),
        };
        read.once(&self.bus, e.contributions.len() as u64).await?;
        Ok(Response::new(ExplainResponse {
            alert_id: e.alert_id,
            rule_id: e.rule_id,
            rule_name: e.rule_name,
            rule_version: e.rule_version,
            rule_source: e.rule_source,
            rule: e.rule,
            group_key: e.group_key,
            region: e.region,
            events: e
                .contributions
                .into_iter()
                .map(|c| ExplainedEvent {
                    sequence: c.sequence,
                    key: c.key,
                    r#type: c.r#type,
                    time: timestamp(&c.time),
                    clause: c.clause,
                    conditions: c
                        .conditions
                        .into_iter()
                        .map(|k| ExplainedCondition {
                            asks: k.asks,
                            had: k.had,
                            met: k.met,
                        })
                        .collect(),
                })
                .collect(),
            reproduced: e.reproduced,
            replayed: e.replayed,
            later: e
                .later
                .into_iter()
                .map(|l| ExplainedChange {
                    alert_id: l.id,
                    change: l.change,
                    evidence: l.evidence,
                    why: l.why,
                })
                .collect(),
        }))
    }

    type ReplayStream = BoxStream<ReplayResponse>;

    async fn replay(
        &self,
        req: Request<ReplayRequest>,
    ) -> Result<Response<Self::ReplayStream>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let read = Read {
            action: "replay",
            who: who.clone(),
            operator: r.operator.clone(),
            filter: describe(&r),
            alert_id: String::new(),
        };
        if !self.policy.audits(&who.agency) {
            let why = format!("{who} may not replay the record (its policy has no audit right)");
            tracing::warn!(reader = %who, "replay refused");
            return Err(read
                .refused(&self.bus, Status::permission_denied(why))
                .await);
        }
        let mut selection = match Selection::parse(&r) {
            Ok(s) => s,
            Err(vs) => return Err(read.refused(&self.bus, Error::Invalid(vs).into()).await),
        };
        let t = self.bus.topology();
        let stream = match selection.stream {
            AuditStream::Events => t.events_stream.clone(),
            AuditStream::Alerts => t.alerts_stream.clone(),
            _ => t.access_stream.clone(),
        };
        let alerts_prefix = t.alerts_subject_prefix.clone();
        // The replay's end is the stream's end now: the opening record is after it.
        let bounds = self.bus.stream_bounds(&stream).await.map_err(Error::from)?;
        let to = match r.to_sequence {
            0 => bounds.last,
            n => n.min(bounds.last),
        };
        let from = r.from_sequence.max(1);
        let mut closing = read.open(&self.bus).await?;
        tracing::info!(reader = %who, stream = %stream, from, to, "replay opened");
        let start = match selection.since {
            Some(s) if r.from_sequence == 0 => {
                let nanos = i128::try_from(s).unwrap_or(i128::MAX);
                time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
                    .map_or(Start::Sequence(from), Start::Time)
            }
            _ => Start::Sequence(from),
        };
        let mut messages = match from <= to {
            true => Some(
                self.bus
                    .read_stored_from(&stream, start)
                    .await
                    .map_err(Error::from)?,
            ),
            false => None,
        };
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut returned = 0u64;
            while let Some(ms) = messages.as_mut() {
                let item = tokio::select! {
                    _ = tx.closed() => break,
                    item = ms.next() => item,
                };
                let Some(item) = item else { break };
                let m = match item {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(Error::from(e)))).await;
                        break;
                    }
                };
                let (sequence, pending) = (m.sequence, m.pending);
                if sequence > to {
                    break;
                }
                if selection.selects(&m, &alerts_prefix) {
                    if tx
                        .send(Ok(ReplayResponse {
                            record: Some(timpora_audit::stored_record(m)),
                            to_sequence: to,
                        }))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    returned += 1;
                    closing.returned(1);
                }
                if sequence >= to || pending == 0 {
                    break;
                }
            }
            tracing::info!(reader = %who, returned, "replay closed");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
