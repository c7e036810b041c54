//! The topology as code: stream names, subject naming, retention, the duplicate window and
//! the dedup key. Subject naming lives here and nowhere else.

use std::time::Duration;

use async_nats::jetstream::stream;
use serde::{Deserialize, Serialize};
use timpora_proto::EventTypeInfo;

/// Default prefix of every event subject.
pub const EVENTS_SUBJECT_PREFIX: &str = "timpora.events";

/// Where JetStream keeps a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// On disk (production and development).
    #[default]
    File,
    /// In memory (throw-away experiments only).
    Memory,
}

/// A provincial office (see the `offices` module): its name (also its JetStream domain) and the regions it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Office {
    /// Lowercase letters and digits (`sultra`): the office's JetStream domain and the suffix of
    /// its streams' names.
    pub name: String,
    /// Region codes (`74`, `74.02`) whose events the office stores; others are not its own.
    pub regions: Vec<String>,
}

/// The hub's streams and their settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topology {
    /// Name of the events stream.
    pub events_stream: String,
    /// JetStream replicas (1 for a single server, 3 for a production cluster).
    pub replicas: usize,
    /// Window within which JetStream itself recognises a repeated event id as a duplicate, in
    /// seconds (default 120, NATS's own). Each gateway indexes every stored id, so a retry is a
    /// duplicate however late it comes; this window covers two gateways receiving the same
    /// retry at once. `nats-server` holds every id of the window in memory: at 2,000 events/s
    /// a ten-minute window is 1.2 million ids.
    pub duplicate_window_secs: u64,
    /// How long events are kept, in days; 0 keeps them forever. Events under a legal hold are
    /// copied to the holds stream before retention can remove them.
    pub max_age_days: u64,
    /// How long alerts and their handling are kept, in days; 0 keeps them forever.
    pub alerts_max_age_days: u64,
    /// How long access records are kept, in days; 0 keeps them forever.
    pub access_max_age_days: u64,
    /// Largest stored event in bytes.
    pub max_event_bytes: i32,
    /// Storage of the streams.
    pub storage: Storage,
    /// Prefix of every event subject (`timpora.events`).
    pub subject_prefix: String,
    /// Name of the alerts stream.
    pub alerts_stream: String,
    /// Prefix of alert subjects (`timpora.alerts`); an alert is stored once, on
    /// `<prefix>.raised.<alert id>`.
    pub alerts_subject_prefix: String,
    /// Name of the access stream: who read which alert, when.
    pub access_stream: String,
    /// Prefix of access-record subjects (`timpora.access`).
    pub access_subject_prefix: String,
    /// Key-value bucket of the rule sets: `active` is the one the correlator runs, with history.
    pub rules_bucket: String,
    /// Object store of service checkpoints (the correlator's state and position).
    pub checkpoint_bucket: String,
    /// Stream of the transparency log's signed checkpoints, every one kept.
    pub tlog_stream: String,
    /// Prefix of checkpoint subjects: `<prefix>.<log>.checkpoint`.
    pub tlog_subject_prefix: String,
    /// Key-value bucket holding each log's latest signed checkpoint under the log's name.
    pub tlog_bucket: String,
    /// Key-value bucket of legal holds (each under its id), kept with their release.
    pub holds_bucket: String,
    /// Stream of the held events' copies, kept whatever the events stream's retention.
    pub holds_stream: String,
    /// Prefix of held copies' subjects: `<prefix>.<events sequence>`.
    pub holds_subject_prefix: String,
    /// Object store of each log's tiles (`<log>/tile/<L>/<N>[.p/<W>]`, C2SP `tlog-tiles`).
    pub tiles_bucket: String,
    /// Key-value bucket where correlators that share the work say who is alive and who holds
    /// which part of the group keys (`member.<id>`, `part.<i>-of-<n>`, `status.<i>-of-<n>`).
    pub correlators_bucket: String,
    /// At the centre: the provincial offices whose events this hub gathers (see
    /// the `offices` module): each office's events stream is mirrored here and the events stream
    /// sources the mirrors.
    pub offices: Vec<String>,
    /// At a provincial office: which office this is. Its streams, buckets and subject prefixes
    /// are then named after it, and its events stream takes only its regions' events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub office: Option<Office>,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            events_stream: "TIMPORA_EVENTS".into(),
            replicas: 1,
            duplicate_window_secs: 120,
            max_age_days: 0,
            alerts_max_age_days: 0,
            access_max_age_days: 0,
            max_event_bytes: 256 * 1024,
            storage: Storage::File,
            subject_prefix: EVENTS_SUBJECT_PREFIX.into(),
            alerts_stream: "TIMPORA_ALERTS".into(),
            alerts_subject_prefix: "timpora.alerts".into(),
            access_stream: "TIMPORA_ACCESS".into(),
            access_subject_prefix: "timpora.access".into(),
            rules_bucket: "TIMPORA_RULES".into(),
            checkpoint_bucket: "TIMPORA_CHECKPOINTS".into(),
            tlog_stream: "TIMPORA_TLOG".into(),
            tlog_subject_prefix: "timpora.tlog".into(),
            tlog_bucket: "TIMPORA_TLOG".into(),
            holds_bucket: "TIMPORA_HOLDS".into(),
            holds_stream: "TIMPORA_HOLDS".into(),
            holds_subject_prefix: "timpora.holds".into(),
            tiles_bucket: "TIMPORA_TLOG_TILES".into(),
            correlators_bucket: "TIMPORA_CORRELATORS".into(),
            offices: Vec::new(),
            office: None,
        }
    }
}

impl Topology {
    /// The events stream's JetStream configuration.
    pub fn events_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.events_stream.clone(),
            description: Some("TIMPORA inter-agency events (pseudonymised)".into()),
            subjects: self.event_subjects(),
            sources: self.event_sources(),
            retention: stream::RetentionPolicy::Limits,
            storage: match self.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            num_replicas: self.replicas,
            duplicate_window: Duration::from_secs(self.duplicate_window_secs),
            max_age: Duration::from_secs(self.max_age_days * 86_400),
            max_message_size: self.max_event_bytes,
            // The record is evidence: nothing is deleted or purged through the API.
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            ..Default::default()
        }
    }

    /// The settings every record stream shares with the events stream (storage, replicas,
    /// nothing deleted or purged), without the events stream's subjects and sources.
    fn record_stream_config(&self) -> stream::Config {
        stream::Config {
            sources: None,
            ..self.events_stream_config()
        }
    }

    /// The alerts stream's JetStream configuration: like the events stream, nothing is deleted.
    pub fn alerts_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.alerts_stream.clone(),
            description: Some("TIMPORA correlated alerts".into()),
            subjects: vec![format!("{}.>", self.alerts_subject_prefix)],
            max_age: Duration::from_secs(self.alerts_max_age_days * 86_400),
            ..self.record_stream_config()
        }
    }

    /// The access stream's JetStream configuration: a record of reads, kept like the events.
    pub fn access_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.access_stream.clone(),
            description: Some("TIMPORA access records: who read what, when".into()),
            subjects: vec![format!("{}.>", self.access_subject_prefix)],
            max_age: Duration::from_secs(self.access_max_age_days * 86_400),
            ..self.record_stream_config()
        }
    }

    /// The transparency log's checkpoints stream: like the events stream, nothing is deleted.
    pub fn tlog_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.tlog_stream.clone(),
            description: Some("TIMPORA transparency log: signed, cosigned checkpoints".into()),
            subjects: vec![format!("{}.>", self.tlog_subject_prefix)],
            max_message_size: 64 * 1024,
            ..self.record_stream_config()
        }
    }

    /// The holds stream's configuration: copies of held events, never removed by limits.
    pub fn holds_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.holds_stream.clone(),
            description: Some("TIMPORA events under a legal hold, kept past retention".into()),
            subjects: vec![format!("{}.>", self.holds_subject_prefix)],
            max_age: Duration::ZERO,
            ..self.record_stream_config()
        }
    }

    /// The sealed streams, each with the name of its log: `events`, `alerts`, `access`.
    pub fn sealed_streams(&self) -> [(&'static str, &str); 3] {
        [
            ("events", &self.events_stream),
            ("alerts", &self.alerts_stream),
            ("access", &self.access_stream),
        ]
    }

    /// The subject a log's checkpoints are published on.
    pub fn checkpoint_subject(&self, log: &str) -> String {
        format!("{}.{log}.checkpoint", self.tlog_subject_prefix)
    }

    /// The subject an alert is raised on: one per alert id, so it is stored at most once.
    pub fn alert_subject(&self, alert_id: &str) -> String {
        format!("{}.raised.{alert_id}", self.alerts_subject_prefix)
    }

    /// The subject an event of `info`'s type from `region` is published on.
    pub fn subject_for(&self, info: &EventTypeInfo, region: &str) -> String {
        format!(
            "{}.{}.{}.{region}",
            self.subject_prefix, info.domain, info.short
        )
    }

    /// The single subject filter that covers `types` (NATS 2.9 consumers take one filter).
    /// Regions are filtered after delivery: a region code may end at any depth, and no single
    /// subject filter matches both `…74.02` and `…74.02.05`.
    pub fn filter_subject(&self, types: &[&EventTypeInfo]) -> String {
        let p = &self.subject_prefix;
        match types {
            [one] => format!("{p}.{}.{}.>", one.domain, one.short),
            [first, rest @ ..] if rest.iter().all(|t| t.domain == first.domain) => {
                format!("{p}.{}.>", first.domain)
            }
            _ => format!("{p}.>"),
        }
    }
}

/// The JetStream dedup key of an event: ids are unique per source.
pub fn dedup_key(source: &str, id: &str) -> String {
    format!("{source}/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use timpora_proto::{EVENT_TYPES, type_by_name};

    #[test]
    fn subjects_carry_domain_type_and_hierarchical_region() {
        let t = type_by_name("timpora.imigrasi.departure_check.v1").expect("type");
        assert_eq!(
            Topology::default().subject_for(t, "74.02.05.2001"),
            "timpora.events.imigrasi.departure_check.74.02.05.2001"
        );
    }

    #[test]
    fn one_filter_subject_narrows_as_far_as_it_can() {
        let t = &EVENT_TYPES[0];
        let topo = Topology::default();
        let filter_subject = |types: &[&EventTypeInfo]| topo.filter_subject(types);
        assert_eq!(filter_subject(&[]), "timpora.events.>");
        assert_eq!(
            filter_subject(&[t]),
            "timpora.events.imigrasi.passport_interview.>"
        );
        assert_eq!(
            filter_subject(&[t, &EVENT_TYPES[1]]),
            "timpora.events.imigrasi.>"
        );
        assert_eq!(filter_subject(&[t, &EVENT_TYPES[2]]), "timpora.events.>");
    }

    #[test]
    fn events_stream_refuses_deletion_and_keeps_the_duplicate_window() {
        let c = Topology::default().events_stream_config();
        assert!(c.deny_delete && c.deny_purge);
        assert_eq!(c.duplicate_window, Duration::from_secs(120));
        assert_eq!(c.subjects, vec!["timpora.events.>".to_owned()]);
    }
}
