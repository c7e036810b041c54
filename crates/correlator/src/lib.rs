//! The correlation service: reads the events stream in order (clock ticks included), feeds the
//! engine, and stores each alert once in the alerts stream. It records clock ticks into the
//! events stream itself, so event time moves on while no agency sends anything, and a replay
//! sees the same clock.
//!
//! This first version rebuilds its state by replaying the stream from the beginning at every
//! start; alerts already stored are recognised by id and not stored again.

use std::future::Future;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use timpora_bus::{AlertOutcome, Bus, Start};
pub use timpora_correlate::Stats;
use timpora_correlate::{Alert, Engine};
use timpora_proto::v1;
use timpora_rules::{RuleSet, Severity};

/// Errors of the correlation service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] timpora_bus::Error),
}

/// How the service runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How far out of event-time order events may arrive and still be handled exactly.
    pub lateness: Duration,
    /// How often a clock tick is recorded into the stream.
    pub tick_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lateness: Duration::from_secs(5),
            tick_every: Duration::from_secs(1),
        }
    }
}

/// The contract's form of an engine alert.
pub fn to_proto(a: &Alert) -> v1::Alert {
    v1::Alert {
        id: a.id.clone(),
        rule_id: a.rule_id.clone(),
        rule_version: a.rule_version.clone(),
        severity: match a.severity {
            Severity::Low => v1::Severity::Low,
            Severity::Medium => v1::Severity::Medium,
            Severity::High => v1::Severity::High,
            Severity::Critical => v1::Severity::Critical,
        } as i32,
        group_key: a.group_key.clone(),
        summary: a.summary.clone(),
        evidence: a.evidence.clone(),
        time: Some(a.time.into()),
        region: a.region.clone(),
    }
}

/// Run until `shutdown` completes; the engine's counters at the end.
pub async fn run(
    bus: Bus,
    rules: RuleSet,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats, Error> {
    let version = rules.version.clone();
    let mut engine = Engine::new(rules, options.lateness);
    let ticker = tokio::spawn(record_ticks(bus.clone(), options.tick_every));
    let mut events = bus
        .replay(bus.topology().filter_subject(&[]), Start::All)
        .await?;
    tracing::info!(rule_set = %version, "correlator started");
    tokio::pin!(shutdown);
    loop {
        let item = tokio::select! {
            _ = &mut shutdown => break,
            item = events.next() => item,
        };
        let Some(item) = item else { break };
        let delivered = match item {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "event stream interrupted");
                continue;
            }
        };
        for alert in engine.observe(&delivered.event) {
            let alert = to_proto(&alert);
            // An alert is never lost: wait for NATS rather than drop it.
            loop {
                match bus.publish_alert(&alert).await {
                    Ok(AlertOutcome::Stored(seq)) => {
                        tracing::info!(
                            alert = %alert.id, rule = %alert.rule_id, sequence = seq,
                            evidence = alert.evidence.len(), "alert raised"
                        );
                        break;
                    }
                    Ok(AlertOutcome::Duplicate) => {
                        tracing::debug!(alert = %alert.id, "alert already stored");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(alert = %alert.id, error = %e, "cannot store alert; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }
    ticker.abort();
    let stats = engine.stats();
    tracing::info!(
        events = stats.events,
        late = stats.late_events,
        alerts = stats.alerts,
        "correlator stopped"
    );
    Ok(stats)
}

async fn record_ticks(bus: Bus, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        match bus.record_tick(SystemTime::now()).await {
            Ok(pending) => {
                if let Err(e) = pending.ack().await {
                    tracing::debug!(error = %e, "clock tick not acknowledged");
                }
            }
            Err(e) => tracing::debug!(error = %e, "clock tick not recorded"),
        }
    }
}
