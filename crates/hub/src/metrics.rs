//! The correlator's metrics (from its status reports, read at each scrape) and its say in
//! readiness: not ready while NATS is unreachable, or while it is more than
//! [`CAUGHT_UP_WITHIN`] events behind the end of the stream. A correlator sharing the work
//! reports each part it holds, under a `part` label (`0-of-4`), and is behind as far as its
//! furthest part.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use timpora_bus::{Bus, CorrelatorStatus};
use timpora_correlator::PartReports;
use timpora_telemetry::prometheus_client::collector::Collector;
use timpora_telemetry::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use timpora_telemetry::prometheus_client::metrics::counter::ConstCounter;
use timpora_telemetry::prometheus_client::metrics::gauge::ConstGauge;
use timpora_telemetry::prometheus_client::registry::Unit;
use timpora_telemetry::{Readiness, Telemetry};
use tokio::sync::watch;

/// Events behind the end of the stream within which the correlator counts as caught up.
pub const CAUGHT_UP_WITHIN: u64 = 10_000;

/// What the correlator component reports to.
pub struct Observed {
    status: watch::Sender<CorrelatorStatus>,
    /// The position after each batch of events (the status only at checkpoints).
    progress: watch::Sender<u64>,
    /// The parts held, when correlators share the work.
    parts: Option<PartReports>,
    /// The events stream's last sequence, as last read.
    last: Arc<AtomicU64>,
    readiness: Readiness,
}

impl Observed {
    /// Register the correlator's metrics in `t`'s registry and its readiness; `sharing`: the
    /// correlator shares the work with others (it reports by part).
    pub fn register(t: &mut Telemetry, sharing: bool) -> Self {
        let (status, rx) = watch::channel(CorrelatorStatus::default());
        let last = Arc::new(AtomicU64::new(0));
        let progress = watch::channel(0).0;
        let parts = sharing.then(PartReports::default);
        t.registry().register_collector(Box::new(CorrelatorMetrics {
            status: rx,
            progress: progress.subscribe(),
            parts: parts.clone(),
            last: last.clone(),
        }));
        Self {
            status,
            progress,
            parts,
            last,
            readiness: t.health().component("correlator"),
        }
    }

    /// Where the service sends its status reports.
    pub fn status(&self) -> watch::Sender<CorrelatorStatus> {
        self.status.clone()
    }

    /// Where the service sends its position as it goes.
    pub fn progress(&self) -> watch::Sender<u64> {
        self.progress.clone()
    }

    /// Where a correlator sharing the work reports its parts.
    pub fn parts(&self) -> Option<PartReports> {
        self.parts.clone()
    }
}

/// Where the correlator is: its progress after each batch, or its last status report if that
/// is further (a restart reports its checkpoint before the first batch).
fn position(status: &CorrelatorStatus, progress: u64) -> u64 {
    status.position.max(progress)
}

/// What the metrics show: the whole work (`part` `None`), or each part held, with where it is.
fn views(
    whole: (&watch::Receiver<CorrelatorStatus>, &watch::Receiver<u64>),
    parts: Option<&PartReports>,
) -> Vec<(Option<String>, CorrelatorStatus)> {
    match parts {
        None => {
            let mut s = whole.0.borrow().clone();
            s.position = position(&s, *whole.1.borrow());
            vec![(None, s)]
        }
        Some(parts) => parts
            .held()
            .into_iter()
            .map(|(p, mut s, progress)| {
                s.position = position(&s, progress);
                (Some(p), s)
            })
            .collect(),
    }
}

/// Every second: the end of the stream, how far behind it the correlator (or its furthest
/// part) is, and whether it is ready.
pub async fn watch(bus: Bus, o: Observed) {
    let status = o.status.subscribe();
    let progress = o.progress.subscribe();
    loop {
        if !bus.is_connected() {
            o.readiness.not_ready("nats unreachable");
        } else if let Ok(last) = bus.events_last_sequence().await {
            o.last.store(last, Ordering::Relaxed);
            // Sharing and holding no part: nothing of this correlator's is behind.
            let lag = views((&status, &progress), o.parts.as_ref())
                .iter()
                .map(|(_, s)| last.saturating_sub(s.position))
                .max()
                .unwrap_or(0);
            if lag > CAUGHT_UP_WITHIN {
                o.readiness
                    .not_ready(format!("catching up: {lag} events behind"));
            } else {
                o.readiness.ready();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[derive(Debug)]
struct CorrelatorMetrics {
    status: watch::Receiver<CorrelatorStatus>,
    progress: watch::Receiver<u64>,
    parts: Option<PartReports>,
    last: Arc<AtomicU64>,
}

/// One metric family with a series per view, labelled by part when there are parts.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    views: &[(Option<String>, CorrelatorStatus)],
    value: impl Fn(&CorrelatorStatus) -> Option<M>,
) -> Result<(), std::fmt::Error> {
    let series: Vec<_> = views
        .iter()
        .filter_map(|(p, s)| value(s).map(|m| (p, m)))
        .collect();
    let Some((_, first)) = series.first() else {
        return Ok(());
    };
    let mut metric = encoder.encode_descriptor(name, help, unit, first.metric_type())?;
    for (part, m) in &series {
        match part {
            Some(p) => m.encode(metric.encode_family(&[("part", p.as_str())])?)?,
            None => return m.encode(metric),
        }
    }
    Ok(())
}

impl Collector for CorrelatorMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let views = views((&self.status, &self.progress), self.parts.as_ref());
        let last = self.last.load(Ordering::Relaxed);
        let e = &mut encoder;
        type Field = fn(&CorrelatorStatus) -> u64;
        let counters: [(&str, &str, Field); 4] = [
            ("correlator_events", "Events evaluated.", |s| s.events),
            (
                "correlator_late_events",
                "Events later than the allowed lateness (counted, still used).",
                |s| s.late_events,
            ),
            ("correlator_alerts", "Alerts raised.", |s| s.alerts),
            (
                "correlator_shed_groups",
                "Groups dropped because the state cap was reached.",
                |s| s.shed_groups,
            ),
        ];
        for (name, help, f) in counters {
            family(e, (name, help, None), &views, |s| {
                Some(ConstCounter::new(f(s)))
            })?;
        }
        let gauges: [(&str, &str, Field); 5] = [
            ("correlator_state_entries", "Entries of state held.", |s| {
                s.tracked
            }),
            (
                "correlator_state_cap",
                "Most entries of state held before the groups idle longest are dropped.",
                |s| s.state_cap,
            ),
            (
                "correlator_state_entities",
                "Distinct entities with state, at the last checkpoint.",
                |s| s.entities,
            ),
            (
                "correlator_position",
                "Last events-stream sequence processed.",
                |s| s.position,
            ),
            (
                "correlator_checkpoint_sequence",
                "Last events-stream sequence covered by a checkpoint.",
                |s| s.checkpoint_sequence,
            ),
        ];
        for (name, help, f) in gauges {
            family(e, (name, help, None), &views, |s| {
                Some(ConstGauge::new(f(s) as i64))
            })?;
        }
        family(
            e,
            (
                "correlator_lag_events",
                "Events in the stream the correlator has not processed yet.",
                None,
            ),
            &views,
            |s| Some(ConstGauge::new(last.saturating_sub(s.position) as i64)),
        )?;
        family(
            e,
            (
                "correlator_checkpoint_age",
                "Time since the correlator last wrote a checkpoint.",
                Some(&Unit::Seconds),
            ),
            &views,
            |s| {
                let at = s.checkpoint_at.parse::<prost_types::Timestamp>().ok()?;
                let at = std::time::SystemTime::try_from(at).ok()?;
                let age = std::time::SystemTime::now()
                    .duration_since(at)
                    .unwrap_or_default();
                Some(ConstGauge::new(age.as_secs_f64()))
            },
        )?;
        // The running rule set (the same for every part, once they have all switched).
        let mut sets: Vec<(String, String)> = views
            .iter()
            .map(|(_, s)| (s.version.replace(['"', '\\', '\n'], "_"), s.digest.clone()))
            .collect();
        sets.sort();
        sets.dedup();
        let info = ConstGauge::new(1i64);
        let mut metric = encoder.encode_descriptor(
            "correlator_rule_set",
            "Running rule set.",
            None,
            info.metric_type(),
        )?;
        for (version, digest) in &sets {
            let labels = [("version", version.as_str()), ("sha256", digest.as_str())];
            info.encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Messages behind the end of a sealed stream within which the sealer counts as caught up.
pub const SEALED_WITHIN: u64 = 10_000;

/// One log as the sealer's watcher last saw it.
#[derive(Debug, Clone, Default)]
struct LogSeen {
    /// Size of its latest checkpoint.
    checkpoint: u64,
    /// Leaves the sealer has appended (when it runs in this process).
    appended: Option<u64>,
    /// Last sequence of its stream.
    last: u64,
    /// Its last verification (`timpora audit verify`): intact, and the size checked.
    verified: Option<(bool, u64)>,
}

type Logs = Arc<std::sync::Mutex<std::collections::BTreeMap<String, LogSeen>>>;

/// What the sealer component reports to.
pub struct SealerObserved {
    logs: Logs,
    readiness: Readiness,
    /// The sealer's leaves per log, as it appends them.
    pub appended: timpora_sealer::Appended,
}

impl SealerObserved {
    /// Register the sealer's metrics in `t`'s registry and its readiness.
    pub fn register(t: &mut Telemetry) -> Self {
        let logs = Logs::default();
        t.registry()
            .register_collector(Box::new(SealerMetrics { logs: logs.clone() }));
        Self {
            logs,
            readiness: t.health().component("sealer"),
            appended: timpora_sealer::Appended::default(),
        }
    }
}

/// The size a checkpoint (a C2SP signed note: origin, size, root…) covers; 0 when it names none.
pub fn checkpoint_size(note: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(note);
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

/// Every two seconds: how far each log's latest checkpoint is behind its stream, and its last
/// verification; not ready while NATS is unreachable or a log is more than [`SEALED_WITHIN`]
/// messages behind.
pub async fn watch_sealer(bus: Bus, o: SealerObserved) {
    let logs: Vec<(String, String)> = bus
        .topology()
        .sealed_streams()
        .iter()
        .map(|(log, stream)| ((*log).to_owned(), (*stream).to_owned()))
        .collect();
    loop {
        if !bus.is_connected() {
            o.readiness.not_ready("nats unreachable");
        } else {
            let mut behind = Vec::new();
            for (log, stream) in &logs {
                let (Ok(bounds), Ok(note), Ok(verified)) = (
                    bus.stream_bounds(stream).await,
                    bus.latest_checkpoint(log).await,
                    bus.verification(log).await,
                ) else {
                    continue;
                };
                let appended = o
                    .appended
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(log)
                    .copied();
                let seen = LogSeen {
                    checkpoint: note.as_deref().map_or(0, checkpoint_size),
                    appended,
                    last: bounds.last,
                    verified: verified.map(|v| (v.intact, v.size)),
                };
                let lag = seen.last.saturating_sub(seen.checkpoint);
                if lag > SEALED_WITHIN {
                    behind.push(format!("{log} {lag} messages behind"));
                }
                o.logs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(log.clone(), seen);
            }
            match behind.is_empty() {
                true => o.readiness.ready(),
                false => o
                    .readiness
                    .not_ready(format!("catching up: {}", behind.join(", "))),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[derive(Debug)]
struct SealerMetrics {
    logs: Logs,
}

impl Collector for SealerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut per_log = |name: &str,
                           help: &str,
                           value: &dyn Fn(&LogSeen) -> Option<u64>|
         -> Result<(), std::fmt::Error> {
            let kind = ConstGauge::new(0i64).metric_type();
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for (log, seen) in &logs {
                if let Some(v) = value(seen) {
                    let labels = [("log", log.as_str())];
                    ConstGauge::new(v as i64).encode(metric.encode_family(&labels)?)?;
                }
            }
            Ok(())
        };
        per_log(
            "sealer_checkpoint_size",
            "Messages the log's latest signed checkpoint covers.",
            &|s| Some(s.checkpoint),
        )?;
        per_log(
            "sealer_lag_messages",
            "Messages of the stream its log's latest checkpoint does not cover yet.",
            &|s| Some(s.last.saturating_sub(s.checkpoint)),
        )?;
        per_log(
            "sealer_consumer_lag_messages",
            "Messages of the stream the sealer has not appended to its log yet.",
            &|s| s.appended.map(|a| s.last.saturating_sub(a)),
        )?;
        per_log(
            "audit_last_verification_intact",
            "Whether the last `timpora audit verify` of the log found it intact (1) or not (0).",
            &|s| s.verified.map(|(ok, _)| u64::from(ok)),
        )?;
        per_log(
            "audit_last_verification_size",
            "The checkpoint size the last verification of the log checked.",
            &|s| s.verified.map(|(_, size)| size),
        )
    }
}
