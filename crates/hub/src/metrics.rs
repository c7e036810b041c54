//! The correlator's metrics (from its status reports, read at each scrape) and its say in
//! readiness: not ready while NATS is unreachable, or while it is more than
//! [`CAUGHT_UP_WITHIN`] events behind the end of the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use timpora_bus::{Bus, CorrelatorStatus};
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
    lag: Arc<AtomicU64>,
    readiness: Readiness,
}

impl Observed {
    /// Register the correlator's metrics in `t`'s registry and its readiness.
    pub fn register(t: &mut Telemetry) -> Self {
        let (status, rx) = watch::channel(CorrelatorStatus::default());
        let lag = Arc::new(AtomicU64::new(0));
        let progress = watch::channel(0).0;
        t.registry().register_collector(Box::new(CorrelatorMetrics {
            status: rx,
            progress: progress.subscribe(),
            lag: lag.clone(),
        }));
        Self {
            status,
            progress,
            lag,
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
}

/// Where the correlator is: its progress after each batch, or its last status report if that
/// is further (a restart reports its checkpoint before the first batch).
fn position(status: &CorrelatorStatus, progress: u64) -> u64 {
    status.position.max(progress)
}

/// Every second: how far behind the end of the stream the correlator is, and whether it is
/// ready.
pub async fn watch(bus: Bus, o: Observed) {
    let status = o.status.subscribe();
    let progress = o.progress.subscribe();
    loop {
        if !bus.is_connected() {
            o.readiness.not_ready("nats unreachable");
        } else if let Ok(last) = bus.events_last_sequence().await {
            let position = position(&status.borrow(), *progress.borrow());
            let lag = last.saturating_sub(position);
            o.lag.store(lag, Ordering::Relaxed);
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
    lag: Arc<AtomicU64>,
}

impl Collector for CorrelatorMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut s = self.status.borrow().clone();
        s.position = position(&s, *self.progress.borrow());
        let mut counter = |name: &str, help: &str, value: u64| -> Result<(), std::fmt::Error> {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
        };
        counter("correlator_events", "Events evaluated.", s.events)?;
        counter(
            "correlator_late_events",
            "Events later than the allowed lateness (counted, still used).",
            s.late_events,
        )?;
        counter("correlator_alerts", "Alerts raised.", s.alerts)?;
        counter(
            "correlator_shed_groups",
            "Groups dropped because the state cap was reached.",
            s.shed_groups,
        )?;
        let mut gauge = |name: &str, help: &str, value: u64| -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(value as i64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        gauge(
            "correlator_state_entries",
            "Entries of state held.",
            s.tracked,
        )?;
        gauge(
            "correlator_state_cap",
            "Most entries of state held before the groups idle longest are dropped.",
            s.state_cap,
        )?;
        gauge(
            "correlator_state_entities",
            "Distinct entities with state, at the last checkpoint.",
            s.entities,
        )?;
        gauge(
            "correlator_position",
            "Last events-stream sequence processed.",
            s.position,
        )?;
        gauge(
            "correlator_checkpoint_sequence",
            "Last events-stream sequence covered by a checkpoint.",
            s.checkpoint_sequence,
        )?;
        gauge(
            "correlator_lag_events",
            "Events in the stream the correlator has not processed yet.",
            self.lag.load(Ordering::Relaxed),
        )?;
        if let Ok(at) = s.checkpoint_at.parse::<prost_types::Timestamp>()
            && let Ok(at) = std::time::SystemTime::try_from(at)
        {
            let age = std::time::SystemTime::now()
                .duration_since(at)
                .unwrap_or_default();
            let g = ConstGauge::new(age.as_secs_f64());
            g.encode(encoder.encode_descriptor(
                "correlator_checkpoint_age",
                "Time since the correlator last wrote a checkpoint.",
                Some(&Unit::Seconds),
                g.metric_type(),
            )?)?;
        }
        let info = ConstGauge::new(1i64);
        let version = s.version.replace(['"', '\\', '\n'], "_");
        let labels = [("version", version.as_str()), ("sha256", s.digest.as_str())];
        let mut metric = encoder.encode_descriptor(
            "correlator_rule_set",
            "Running rule set.",
            None,
            info.metric_type(),
        )?;
        info.encode(metric.encode_family(&labels)?)
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
