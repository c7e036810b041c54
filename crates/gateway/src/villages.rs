//! What the hub tells of villages' reports: to a village, its own reports as the hub stored them
//! (its receipts); to operations, how many reports each village sent lately (counts only).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use timpora_proto::v1::event::Payload;
use timpora_proto::v1::{
    CommunityReportReceipt, CountCommunityReportsResponse, ListCommunityReportsResponse,
    VillageReportCount,
};
use timpora_proto::{EventTypeInfo, type_by_name};
use tokio::sync::Mutex;
use tonic::Status;

use crate::error::Error;
use crate::identity::Identity;
use crate::validate::Violations;

/// The period a village's receipts cover.
const RECEIPT_DAYS: u64 = 30;
/// Receipts returned when the request names no number.
const DEFAULT_RECEIPTS: u32 = 20;
const MAX_RECEIPTS: u32 = 100;
/// The period of the counts when the request names none, and the longest.
const DEFAULT_DAYS: u32 = 30;
const MAX_DAYS: u32 = 90;
/// How long a count is answered again without reading the stream (the overview refreshes).
const COUNTS_FRESH: Duration = Duration::from_secs(15);

fn community_report() -> Result<&'static EventTypeInfo, Status> {
    type_by_name("timpora.desa.community_report.v1")
        .ok_or_else(|| Status::internal("the contract has no community report type"))
}

/// `value` of request field `field`: 1 to `max`, with 0 meaning `default`.
fn bounded(field: &str, value: u32, default: u32, max: u32) -> Result<u32, Status> {
    match value {
        0 => Ok(default),
        n if n <= max => Ok(n),
        _ => {
            let mut vs = Violations::default();
            vs.add(field, format!("1 to {max}, or 0 for {default}"));
            Err(Error::Invalid(vs).into())
        }
    }
}

fn days_ago(days: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from(SystemTime::now() - Duration::from_secs(days * 86_400))
}

fn timestamp(t: time::OffsetDateTime) -> prost_types::Timestamp {
    SystemTime::from(t).into()
}

/// `who`'s own reports of the last 30 days, newest first: only a village asks, and it reads its
/// own village's subject and, of that, what its own identity sent.
pub(crate) async fn receipts(
    bus: &timpora_bus::Bus,
    who: &Identity,
    page_size: u32,
) -> Result<ListCommunityReportsResponse, Status> {
    if who.agency != "desa" {
        tracing::warn!(caller = %who, "village receipts refused");
        return Err(Status::permission_denied(format!(
            "{who} is not a village: only a village reads its own reports"
        )));
    }
    let limit = bounded("page_size", page_size, DEFAULT_RECEIPTS, MAX_RECEIPTS)? as usize;
    let subject = bus.topology().subject_for(community_report()?, &who.unit);
    let source = who.source();
    let mut newest = VecDeque::with_capacity(limit);
    bus.stored_since(&subject, days_ago(RECEIPT_DAYS), false, |s| {
        let Some(e) = s.event.filter(|e| e.source == source) else {
            return;
        };
        let Some(Payload::CommunityReport(r)) = e.payload else {
            return;
        };
        if newest.len() == limit {
            newest.pop_back();
        }
        newest.push_front(CommunityReportReceipt {
            event_id: e.id,
            sequence: s.sequence,
            time: e.time,
            received: Some(timestamp(s.stored)),
            kind: r.kind,
            reporter_role: r.reporter_role,
            persons: u32::try_from(r.persons.len()).unwrap_or(u32::MAX),
            recruiters: u32::try_from(r.recruiters.len()).unwrap_or(u32::MAX),
            summary: r.summary,
        });
    })
    .await
    .map_err(Error::from)?;
    tracing::info!(caller = %who, receipts = newest.len(), "village receipts read");
    Ok(ListCommunityReportsResponse {
        receipts: newest.into(),
    })
}

/// Reports per village, read from the stream's headers (never the reports themselves) and
/// kept for a moment, since every overview asks.
#[derive(Default, Clone)]
pub(crate) struct Counts {
    last: std::sync::Arc<Mutex<Option<(Instant, u32, CountCommunityReportsResponse)>>>,
}

impl Counts {
    /// How many reports each village sent over the last `days` (0: 30).
    pub(crate) async fn count(
        &self,
        bus: &timpora_bus::Bus,
        days: u32,
    ) -> Result<CountCommunityReportsResponse, Status> {
        let days = bounded("days", days, DEFAULT_DAYS, MAX_DAYS)?;
        let mut last = self.last.lock().await;
        if let Some((at, d, answer)) = last.as_ref()
            && *d == days
            && at.elapsed() < COUNTS_FRESH
        {
            return Ok(answer.clone());
        }
        let info = community_report()?;
        let t = bus.topology();
        let filter = t.filter_subject(&[info]);
        // The subject's last tokens are the village code.
        let prefix = t.subject_for(info, "");
        let since = days_ago(u64::from(days));
        let mut villages: BTreeMap<String, (u64, time::OffsetDateTime)> = BTreeMap::new();
        bus.stored_since(&filter, since, true, |s| {
            if let Some(code) = s.subject.strip_prefix(&prefix) {
                let v = villages.entry(code.to_owned()).or_insert((0, s.stored));
                v.0 += 1;
                v.1 = v.1.max(s.stored);
            }
        })
        .await
        .map_err(Error::from)?;
        let answer = CountCommunityReportsResponse {
            villages: villages
                .into_iter()
                .map(|(village_code, (reports, at))| VillageReportCount {
                    village_code,
                    reports,
                    last_received: Some(timestamp(at)),
                })
                .collect(),
            since: Some(timestamp(since)),
        };
        *last = Some((Instant::now(), days, answer.clone()));
        Ok(answer)
    }
}
