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
use timpora_telemetry::{Readiness, Telemetry};
use tokio::sync::watch;

/// Events behind the end of the stream within which the correlator counts as caught up.
pub const CAUGHT_UP_WITHIN: u64 = 10_000;

/// What the correlator component reports to.
pub struct Observed {
    status: watch::Sender<CorrelatorStatus>,
    lag: Arc<AtomicU64>,
    readiness: Readiness,
}

impl Observed {
    /// Register the correlator's metrics in `t`'s registry and its readiness.
    pub fn register(t: &mut Telemetry) -> Self {
        let (status, rx) = watch::channel(CorrelatorStatus::default());
        let lag = Arc::new(AtomicU64::new(0));
        t.registry().register_collector(Box::new(CorrelatorMetrics {
            status: rx,
            lag: lag.clone(),
        }));
        Self {
            status,
            lag,
            readiness: t.health().component("correlator"),
        }
    }

    /// Where the service sends its status reports.
    pub fn status(&self) -> watch::Sender<CorrelatorStatus> {
        self.status.clone()
    }
}

/// Every second: how far behind the end of the stream the correlator is, and whether it is
/// ready.
pub async fn watch(bus: Bus, o: Observed) {
    let status = o.status.subscribe();
    loop {
        if !bus.is_connected() {
            o.readiness.not_ready("nats unreachable");
        } else if let Ok(last) = bus.events_last_sequence().await {
            let position = status.borrow().position;
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
    lag: Arc<AtomicU64>,
}

impl Collector for CorrelatorMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.status.borrow().clone();
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
