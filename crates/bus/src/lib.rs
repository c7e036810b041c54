//! The hub's NATS JetStream topology as code: stream names, subject naming, retention and the
//! duplicate window, created or updated idempotently; publishing events with their dedup key and
//! trace context in NATS headers; ordered replay with filters; and a status report.
//!
//! Subject naming lives here and nowhere else: `timpora.events.<domain>.<type>.<region…>`, where
//! the region code's own dots make it hierarchical (`timpora.events.imigrasi.departure_check.74.>`
//! is every departure check in Southeast Sulawesi).

use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use timpora_proto::v1::{Classification, Event};
use timpora_proto::{EventTypeInfo, type_by_name};

mod alerts;
mod state;
pub use alerts::{AlertDelivered, AlertMessage, TransitionError};
pub use state::{CORRELATOR_STATUS, CorrelatorStatus, RULES_ACTIVE};

/// Default prefix of every event subject.
pub const EVENTS_SUBJECT_PREFIX: &str = "timpora.events";
/// Header carrying the W3C trace context.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Header carrying the CloudEvents type.
pub const HEADER_TYPE: &str = "Timpora-Type";
/// Header carrying the source (`agency/unit`).
pub const HEADER_SOURCE: &str = "Timpora-Source";
/// Header carrying the classification name.
pub const HEADER_CLASSIFICATION: &str = "Timpora-Classification";

mod error;
use error::err;
pub use error::{Error, ErrorKind};

type Result<T, E = Error> = std::result::Result<T, E>;

/// A JetStream error whose kind async-nats does not give in a form [`Classify`] knows (key-value
/// and object stores): transient while the connection is down, refused otherwise.
pub(crate) fn js_err<E: std::error::Error + Send + Sync + 'static>(
    bus: &Bus,
    op: &'static str,
) -> impl FnOnce(E) -> Error {
    let kind = if bus.is_connected() {
        ErrorKind::Refused
    } else {
        ErrorKind::Unavailable
    };
    move |e| Error::new(kind, op, e)
}

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

/// The hub's streams and their settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topology {
    /// Name of the events stream.
    pub events_stream: String,
    /// JetStream replicas (1 for a single server, 3 for a production cluster).
    pub replicas: usize,
    /// Window within which a repeated event id is recognised as a duplicate, in seconds.
    pub duplicate_window_secs: u64,
    /// How long events are kept, in days; 0 keeps them forever.
    pub max_age_days: u64,
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
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            events_stream: "TIMPORA_EVENTS".into(),
            replicas: 1,
            duplicate_window_secs: 600,
            max_age_days: 0,
            max_event_bytes: 256 * 1024,
            storage: Storage::File,
            subject_prefix: EVENTS_SUBJECT_PREFIX.into(),
            alerts_stream: "TIMPORA_ALERTS".into(),
            alerts_subject_prefix: "timpora.alerts".into(),
            access_stream: "TIMPORA_ACCESS".into(),
            access_subject_prefix: "timpora.access".into(),
            rules_bucket: "TIMPORA_RULES".into(),
            checkpoint_bucket: "TIMPORA_CHECKPOINTS".into(),
        }
    }
}

impl Topology {
    /// The events stream's JetStream configuration.
    pub fn events_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.events_stream.clone(),
            description: Some("TIMPORA inter-agency events (pseudonymised)".into()),
            subjects: vec![format!("{}.>", self.subject_prefix)],
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

    /// The alerts stream's JetStream configuration: like the events stream, nothing is deleted.
    pub fn alerts_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.alerts_stream.clone(),
            description: Some("TIMPORA correlated alerts".into()),
            subjects: vec![format!("{}.>", self.alerts_subject_prefix)],
            ..self.events_stream_config()
        }
    }

    /// The access stream's JetStream configuration: a record of reads, kept like the events.
    pub fn access_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.access_stream.clone(),
            description: Some("TIMPORA access records: who read what, when".into()),
            subjects: vec![format!("{}.>", self.access_subject_prefix)],
            ..self.events_stream_config()
        }
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

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first message in the stream.
    All,
    /// Messages stored from now on.
    New,
    /// This stream sequence.
    Sequence(u64),
    /// The first message stored at or after this time.
    Time(time::OffsetDateTime),
}

/// An event read back from the stream.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Its stream sequence.
    pub sequence: u64,
    /// The stored event.
    pub event: Event,
}

/// What `timpora bus status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub server: String,
    pub streams: Vec<StreamStatus>,
}

/// One stream's state.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub name: String,
    pub subjects: Vec<String>,
    pub messages: u64,
    pub bytes: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub replicas: usize,
    pub duplicate_window_secs: u64,
    pub consumers: Vec<ConsumerStatus>,
}

/// One consumer's state.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStatus {
    pub name: String,
    pub pending: u64,
    pub ack_pending: usize,
    pub delivered_sequence: u64,
}

/// A connection to the bus.
#[derive(Debug, Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    topology: Topology,
    /// The URL list it was connected with, for [`Bus::second_connection`].
    url: Option<String>,
}

/// How long a JetStream call (including a publish acknowledgement) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Bus {
    /// Connect to NATS at `url` (comma-separated for a cluster). Fails if no server answers.
    pub async fn connect(url: &str, name: &str, topology: Topology) -> Result<Self> {
        let servers = url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::new(ErrorKind::Refused, "parse the NATS URL list", e))?;
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(3))
            .max_reconnects(None)
            .connect(servers)
            .await
            .map_err(|e| {
                let kind = match e.kind() {
                    async_nats::ConnectErrorKind::Authentication
                    | async_nats::ConnectErrorKind::AuthorizationViolation
                    | async_nats::ConnectErrorKind::Tls
                    | async_nats::ConnectErrorKind::ServerParse => ErrorKind::Refused,
                    _ => ErrorKind::Unavailable,
                };
                Error::msg(kind, "connect", format!("cannot connect to {url}: {e}"))
            })?;
        Ok(Self {
            url: Some(url.to_owned()),
            ..Self::new(client, topology, DEFAULT_TIMEOUT)
        })
    }

    /// Another connection to the same servers, so that bulk transfers on it (checkpoints) do
    /// not queue ahead of this one's messages. The same connection when the URL is unknown.
    pub async fn second_connection(&self, name: &str) -> Result<Self> {
        match &self.url {
            Some(url) => Self::connect(url, name, self.topology.clone()).await,
            None => Ok(self.clone()),
        }
    }

    /// Wrap an existing client.
    pub fn new(client: async_nats::Client, topology: Topology, timeout: Duration) -> Self {
        let js = jetstream::ContextBuilder::new()
            .timeout(timeout)
            .max_ack_inflight(4096)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Self {
            client,
            js,
            topology,
            url: None,
        }
    }

    /// The underlying NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The topology this bus was opened with.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether the client is connected right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Create the streams, or bring their configuration up to date. Idempotent.
    pub async fn ensure_topology(&self) -> Result<()> {
        for config in [
            self.topology.events_stream_config(),
            self.topology.alerts_stream_config(),
            self.topology.access_stream_config(),
        ] {
            self.js
                .create_or_update_stream(config)
                .await
                .map_err(err("create or update stream"))?;
        }
        self.rules_store().await?;
        self.checkpoint_store().await?;
        tracing::info!(
            events = %self.topology.events_stream,
            alerts = %self.topology.alerts_stream,
            "topology ensured"
        );
        Ok(())
    }

    /// Publish a complete (validated, pseudonymised) event. Returns once the message is sent;
    /// the returned [`PendingAck`] resolves when JetStream has stored it.
    pub async fn publish(&self, event: &Event) -> Result<PendingAck> {
        if !self.is_connected() {
            return Err(Error::msg(
                ErrorKind::Unavailable,
                "publish",
                "not connected to nats",
            ));
        }
        let info = type_by_name(&event.r#type).ok_or_else(|| {
            Error::msg(
                ErrorKind::UnknownType,
                "publish",
                format!("unknown event type {:?}", event.r#type),
            )
        })?;
        let subject = self.topology.subject_for(info, &event.region);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HEADER_TYPE, event.r#type.as_str());
        headers.insert(HEADER_SOURCE, event.source.as_str());
        headers.insert(
            HEADER_CLASSIFICATION,
            Classification::try_from(event.classification)
                .unwrap_or_default()
                .as_str_name(),
        );
        if !event.traceparent.is_empty() {
            headers.insert(HEADER_TRACEPARENT, event.traceparent.as_str());
        }
        let msg = PublishMessage::build()
            .payload(Bytes::from(event.encode_to_vec()))
            .headers(headers)
            .message_id(dedup_key(&event.source, &event.id));
        let fut = self
            .js
            .send_publish(subject, msg)
            .await
            .map_err(err("publish"))?;
        Ok(PendingAck(fut))
    }

    /// Store an alert once: a second publish of the same alert id, however much later (a
    /// restart, a replay), is answered [`AlertOutcome::Duplicate`] and stores nothing.
    pub async fn publish_alert(&self, alert: &timpora_proto::v1::Alert) -> Result<AlertOutcome> {
        self.send_alert(alert).await?.outcome().await
    }

    /// [`Bus::publish_alert`] in two steps: returns once the alert is sent; the returned
    /// [`PendingAlert`] resolves when JetStream has stored it (or recognised it).
    pub async fn send_alert(&self, alert: &timpora_proto::v1::Alert) -> Result<PendingAlert> {
        let msg = PublishMessage::build()
            .payload(Bytes::from(alert.encode_to_vec()))
            .message_id(&alert.id)
            .expected_last_subject_sequence(0);
        let pending = self
            .js
            .send_publish(self.topology.alert_subject(&alert.id), msg)
            .await
            .map_err(err("publish alert"))?;
        Ok(PendingAlert(pending))
    }

    /// Record a clock tick at `at` into the events stream (one per second at most: ticks from
    /// several correlators share their dedup key).
    pub async fn record_tick(&self, at: std::time::SystemTime) -> Result<PendingAck> {
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let tick = Event {
            id: format!("tick-{secs}"),
            source: "hub/clock".into(),
            r#type: "timpora.hub.clock_tick.v1".into(),
            spec_version: timpora_proto::SPEC_VERSION.into(),
            time: Some(prost_types::Timestamp {
                seconds: i64::try_from(secs).unwrap_or(i64::MAX),
                nanos: 0,
            }),
            region: "0".into(),
            classification: Classification::OpenToMembers as i32,
            payload: Some(timpora_proto::v1::event::Payload::ClockTick(
                timpora_proto::v1::ClockTick {},
            )),
            ..Default::default()
        };
        self.publish(&tick).await
    }

    /// Replay the events stream from `start`, restricted to `filter` subjects, in order.
    pub async fn replay(
        &self,
        filter: String,
        start: Start,
    ) -> Result<BoxStream<'static, Result<Delivered>>> {
        let stream = self
            .js
            .get_stream(&self.topology.events_stream)
            .await
            .map_err(err("get events stream"))?;
        let deliver_policy = match start {
            Start::All => consumer::DeliverPolicy::All,
            Start::New => consumer::DeliverPolicy::New,
            Start::Sequence(start_sequence) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start_sequence.max(1),
            },
            Start::Time(start_time) => consumer::DeliverPolicy::ByStartTime { start_time },
        };
        let messages = ordered(
            &stream,
            consumer::pull::OrderedConfig {
                filter_subject: filter,
                deliver_policy,
                ..Default::default()
            },
        )
        .await?;
        Ok(messages
            .map(|m| {
                let m = m.map_err(err("read events"))?;
                let sequence = m
                    .info()
                    .map_err(|e| Error::msg(ErrorKind::Malformed, "read events", e.to_string()))?
                    .stream_sequence;
                let event =
                    Event::decode(m.payload.clone()).map_err(|e| Error::malformed(sequence, e))?;
                Ok(Delivered { sequence, event })
            })
            .boxed())
    }

    /// The events stream's last sequence (0 when empty).
    pub async fn events_last_sequence(&self) -> Result<u64> {
        let mut stream = self
            .js
            .get_stream(&self.topology.events_stream)
            .await
            .map_err(err("get events stream"))?;
        let info = stream.info().await.map_err(err("stream info"))?;
        Ok(info.state.last_sequence)
    }

    /// Streams, message counts and consumers.
    pub async fn status(&self) -> Result<Status> {
        let mut streams = Vec::new();
        let names: Vec<String> = self
            .js
            .stream_names()
            .try_collect()
            .await
            .map_err(js_err(self, "list streams"))?;
        for name in names {
            let mut stream = self.js.get_stream(&name).await.map_err(err("get stream"))?;
            let info = stream.info().await.map_err(err("stream info"))?.clone();
            let consumers: Vec<consumer::Info> = stream
                .consumers()
                .try_collect()
                .await
                .map_err(js_err(self, "list consumers"))?;
            streams.push(StreamStatus {
                name: info.config.name.clone(),
                subjects: info.config.subjects.clone(),
                messages: info.state.messages,
                bytes: info.state.bytes,
                first_sequence: info.state.first_sequence,
                last_sequence: info.state.last_sequence,
                replicas: info.config.num_replicas,
                duplicate_window_secs: info.config.duplicate_window.as_secs(),
                consumers: consumers
                    .into_iter()
                    .map(|c| ConsumerStatus {
                        name: c.name,
                        pending: c.num_pending,
                        ack_pending: c.num_ack_pending,
                        delivered_sequence: c.delivered.stream_sequence,
                    })
                    .collect(),
            });
        }
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Status {
            server: self.client.server_info().server_name,
            streams,
        })
    }
}

/// The messages of an ordered pull consumer on `stream`.
pub(crate) async fn ordered(
    stream: &jetstream::stream::Stream,
    config: consumer::pull::OrderedConfig,
) -> Result<consumer::pull::Ordered> {
    stream
        .create_consumer(config)
        .await
        .map_err(err("create consumer"))?
        .messages()
        .await
        .map_err(err("read from consumer"))
}

/// What became of a published alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOutcome {
    /// Stored now, at this sequence of the alerts stream.
    Stored(u64),
    /// Already stored earlier; nothing new was stored.
    Duplicate,
}

/// A sent alert whose JetStream acknowledgement is still to come.
#[derive(Debug)]
pub struct PendingAlert(jetstream::context::PublishAckFuture);

impl PendingAlert {
    /// Wait for JetStream: stored now, or already stored before.
    pub async fn outcome(self) -> Result<AlertOutcome> {
        match self.0.await {
            Ok(ack) if ack.duplicate => Ok(AlertOutcome::Duplicate),
            Ok(ack) => Ok(AlertOutcome::Stored(ack.sequence)),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(AlertOutcome::Duplicate)
            }
            Err(e) => Err(err("store alert")(e)),
        }
    }
}

/// A sent publish whose JetStream acknowledgement is still to come.
#[derive(Debug)]
pub struct PendingAck(jetstream::context::PublishAckFuture);

impl PendingAck {
    /// Wait for JetStream to store the message (or report it as a duplicate).
    pub async fn ack(self) -> Result<jetstream::publish::PublishAck> {
        self.0.await.map_err(err("acknowledgement"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timpora_proto::EVENT_TYPES;

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
        assert_eq!(c.duplicate_window, Duration::from_secs(600));
        assert_eq!(c.subjects, vec!["timpora.events.>".to_owned()]);
    }
}
