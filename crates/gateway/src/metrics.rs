//! The gateway's metrics: every event it answered, by the unit that sent it and how it ended
//! (stored, duplicate, or refused and why — the first field a validation refused, permission,
//! rate limit, bus unavailable); how long a publish took to answer; how long JetStream took to
//! acknowledge. Labels carry agency and unit codes, outcomes and field paths only: never an
//! identifier from an event, never a token.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use timpora_proto::v1::PublishAck;

use crate::book::AlertBook;
use crate::error::Error;
use crate::identity::Identity;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    agency: String,
    unit: String,
    /// `stored`, `duplicate`, `invalid`, `denied`, `rate_limited`, `unavailable`, `failed`.
    outcome: &'static str,
    /// For `invalid`: the first field refused (list positions dropped: `persons[].nik`).
    field: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgencyLabels {
    agency: String,
}

type Histograms = Family<AgencyLabels, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.1 ms to about 6.5 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// The gateway's metrics; unregistered ones count into nothing.
#[derive(Clone, Debug)]
pub struct Metrics {
    events: Family<EventLabels, Counter>,
    publish: Histograms,
    ack: Histogram,
    /// The alert book, once the gateway follows the alerts stream.
    pub(crate) book: Arc<OnceLock<AlertBook>>,
    /// At the centre: how each provincial office's mirror stands, as last read.
    pub(crate) offices: Offices,
}

pub(crate) type Offices = Arc<std::sync::Mutex<Vec<timpora_bus::offices::OfficeLink>>>;

impl Default for Metrics {
    fn default() -> Self {
        Self {
            events: Family::default(),
            publish: Family::new_with_constructor(latency),
            ack: latency(),
            book: Arc::default(),
            offices: Offices::default(),
        }
    }
}

/// `timpora_office_…{office}`: each provincial office's mirror at the centre.
#[derive(Debug)]
struct OfficeLinks(Offices);

impl Collector for OfficeLinks {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let links = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if links.is_empty() {
            return Ok(());
        }
        let messages = Unit::Other("messages".into());
        let mut metric = encoder.encode_descriptor(
            "office_mirror_lag",
            "Messages of a provincial office's events stream the centre's mirror does not hold yet",
            Some(&messages),
            MetricType::Gauge,
        )?;
        for l in &links {
            let labels = [("office", l.office.as_str())];
            ConstGauge::new(l.lag as i64).encode(metric.encode_family(&labels)?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "office_since_contact",
            "Time since the centre's mirror last heard from a provincial office (absent while \
             it never has)",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for l in &links {
            if let Some(d) = l.since_contact {
                let labels = [("office", l.office.as_str())];
                ConstGauge::new(d.as_secs_f64()).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Every five seconds, at the centre: read each provincial office's mirror into `offices`.
pub(crate) async fn watch_offices(bus: timpora_bus::Bus, offices: Offices) {
    loop {
        match bus.office_links().await {
            Ok(links) => *offices.lock().unwrap_or_else(|e| e.into_inner()) = links,
            Err(e) => tracing::debug!(error = %e, "office mirrors not read"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// `timpora_alerts{rule, status}`: the alerts the gateway's book holds, read at each scrape.
#[derive(Debug)]
struct AlertCounts(Arc<OnceLock<AlertBook>>);

impl Collector for AlertCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(book) = self.0.get() else {
            return Ok(());
        };
        let mut metric = encoder.encode_descriptor(
            "alerts",
            "Alerts by rule and status (OPEN, ACKNOWLEDGED, ASSIGNED, ESCALATED, RESOLVED, \
             WITHDRAWN), as the gateway's alert book holds them",
            None,
            MetricType::Gauge,
        )?;
        for ((rule, status), n) in book.counts() {
            let labels = [("rule", rule.as_str()), ("status", status)];
            ConstGauge::new(n as i64).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A field path with list positions dropped, so that labels stay few.
fn field_label(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            c => out.push(c),
        }
    }
    out
}

impl Metrics {
    /// New metrics registered in `registry` (under `gateway_`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("gateway");
        r.register(
            "events",
            "Events answered, by sending unit and outcome (stored, duplicate, invalid with the \
             first field refused, denied, rate_limited, unavailable, failed)",
            m.events.clone(),
        );
        r.register_with_unit(
            "publish",
            "Time from an event's arrival to its answer (stored or duplicate), by agency",
            Unit::Seconds,
            m.publish.clone(),
        );
        r.register_with_unit(
            "jetstream_ack",
            "Time from sending an event to JetStream to its acknowledgement",
            Unit::Seconds,
            m.ack.clone(),
        );
        registry.register_collector(Box::new(AlertCounts(m.book.clone())));
        registry.register_collector(Box::new(OfficeLinks(m.offices.clone())));
        m
    }

    /// Count how an event from `who` ended, answered `elapsed` after it arrived.
    pub(crate) fn answered(
        &self,
        who: &Identity,
        result: &Result<PublishAck, Error>,
        elapsed: Duration,
    ) {
        let (outcome, field) = match result {
            Ok(ack) if ack.duplicate => ("duplicate", String::new()),
            Ok(_) => ("stored", String::new()),
            Err(Error::Invalid(vs)) => (
                "invalid",
                vs.iter()
                    .next()
                    .map(|(f, _)| field_label(f))
                    .unwrap_or_default(),
            ),
            Err(Error::PermissionDenied(_)) => ("denied", String::new()),
            Err(Error::RateLimited(_)) => ("rate_limited", String::new()),
            Err(Error::Bus(e)) if e.is_transient() => ("unavailable", String::new()),
            Err(Error::Unavailable(_)) => ("unavailable", String::new()),
            Err(_) => ("failed", String::new()),
        };
        self.events
            .get_or_create(&EventLabels {
                agency: who.agency.clone(),
                unit: who.unit.clone(),
                outcome,
                field,
            })
            .inc();
        if result.is_ok() {
            self.publish
                .get_or_create(&AgencyLabels {
                    agency: who.agency.clone(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// JetStream acknowledged an event `elapsed` after it was sent.
    pub(crate) fn acknowledged(&self, elapsed: Duration) {
        self.ack.observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_positions_are_dropped_from_field_labels() {
        assert_eq!(
            field_label("event.community_report.persons[3].nik"),
            "event.community_report.persons[].nik"
        );
        assert_eq!(field_label("meta.region"), "meta.region");
    }

    #[test]
    fn outcomes_are_counted_by_unit_and_the_text_names_them() {
        let mut registry = Registry::with_prefix("timpora");
        let m = Metrics::register(&mut registry);
        let who = Identity {
            agency: "imigrasi".into(),
            unit: "kanim-kendari".into(),
        };
        let ack = PublishAck::default();
        m.answered(&who, &Ok(ack.clone()), Duration::from_millis(2));
        m.answered(
            &who,
            &Ok(PublishAck {
                duplicate: true,
                ..ack
            }),
            Duration::from_millis(1),
        );
        m.answered(&who, &Err(Error::required("meta.region")), Duration::ZERO);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"timpora_gateway_events_total{agency="imigrasi",unit="kanim-kendari",outcome="stored",field=""} 1"#,
            r#"timpora_gateway_events_total{agency="imigrasi",unit="kanim-kendari",outcome="duplicate",field=""} 1"#,
            r#"timpora_gateway_events_total{agency="imigrasi",unit="kanim-kendari",outcome="invalid",field="meta.region"} 1"#,
            r#"timpora_gateway_publish_seconds_count{agency="imigrasi"} 2"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
