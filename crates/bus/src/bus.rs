//! A connection to the bus: provisioning, publishing events and alerts with their dedup key and
//! trace context, ordered replay, status.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use prost::Message as _;
use serde::Serialize;
use timpora_proto::type_by_name;
use timpora_proto::v1::{Classification, Event};

use crate::error::{Classify, Error, ErrorKind, Result, err, js_err};
use crate::options::{NatsOptions, redact};
use crate::topology::{Topology, dedup_key};

/// Header carrying the W3C trace context.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Header carrying the CloudEvents type.
pub const HEADER_TYPE: &str = "Timpora-Type";
/// Header carrying the source (`agency/unit`).
pub const HEADER_SOURCE: &str = "Timpora-Source";
/// Header carrying the classification name.
pub const HEADER_CLASSIFICATION: &str = "Timpora-Classification";

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

impl Start {
    /// The consumer's deliver policy for this start.
    pub(crate) fn deliver_policy(self) -> consumer::DeliverPolicy {
        match self {
            Start::All => consumer::DeliverPolicy::All,
            Start::New => consumer::DeliverPolicy::New,
            Start::Sequence(start_sequence) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start_sequence.max(1),
            },
            Start::Time(start_time) => consumer::DeliverPolicy::ByStartTime { start_time },
        }
    }
}

/// An event read back from the stream.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Its stream sequence.
    pub sequence: u64,
    /// The stored event.
    pub event: Event,
}

/// An event as stored, with when and where: what [`Bus::stored_since`] reads.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its stream sequence.
    pub sequence: u64,
    /// When the stream stored it.
    pub stored: time::OffsetDateTime,
    /// The subject it was stored on.
    pub subject: String,
    /// The event; `None` when only headers were read.
    pub event: Option<Event>,
}

/// What `timpora bus status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The server this connection is on.
    pub server: String,
    /// The JetStream cluster's name, when the server is part of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Every server that holds a replica of one of the streams (leaders and followers).
    pub members: Vec<String>,
    pub streams: Vec<StreamStatus>,
}

/// Where a stream's replicas are: its leader and how far each follower is behind.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementStatus {
    /// The server leading the stream (none while it elects one).
    pub leader: Option<String>,
    /// The followers.
    pub followers: Vec<ReplicaStatus>,
}

/// One follower of a stream.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub name: String,
    /// Whether it is in sync with the leader.
    pub current: bool,
    /// Whether the group considers it offline.
    pub offline: bool,
    /// Operations it is behind the leader.
    pub lag: u64,
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
    /// For the events stream: the hub's clock ticks among its messages (the rest are the
    /// agencies' events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_ticks: Option<u64>,
    /// For the events stream: the agencies' events, ticks not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agency_events: Option<u64>,
    /// Its leader and followers, on a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementStatus>,
    /// For an office's mirror: the office's stream it copies, how far behind, when last heard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<SourceStatus>,
    /// For the events stream at the centre: each office's mirror it gathers from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceStatus>,
    pub consumers: Vec<ConsumerStatus>,
}

/// A stream another one copies (a mirror's origin) or gathers from (a source).
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub name: String,
    /// Messages of it not copied yet, as last known.
    pub lag: u64,
    /// How long ago it was last heard from; `None` when it never was (or the link is down).
    pub active_ms: Option<u64>,
}

impl SourceStatus {
    fn of(s: &jetstream::stream::SourceInfo) -> Self {
        Self {
            name: s.name.clone(),
            lag: s.lag,
            active_ms: s.active.map(|d| d.as_millis() as u64),
        }
    }
}

/// One consumer's state.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStatus {
    pub name: String,
    /// Its lag: messages in the stream it has not been delivered yet.
    pub pending: u64,
    pub ack_pending: usize,
    pub delivered_sequence: u64,
}

/// A connection to the bus.
#[derive(Debug, Clone)]
pub struct Bus {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) topology: Topology,
    /// The settings it was connected with, for [`Bus::second_connection`].
    pub(crate) options: Option<NatsOptions>,
    /// The events and alerts streams, named once for every publish's acknowledgement.
    events_target: Arc<PublishedTo>,
    alerts_target: Arc<PublishedTo>,
}

/// How long a JetStream call (including a publish acknowledgement) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Bus {
    /// Connect to NATS with `options` (a URL list, or the full settings: identity,
    /// credentials, TLS). Fails if no server answers. Neither a password in the URL nor a
    /// credential ever appears in the error.
    pub async fn connect(
        options: impl Into<NatsOptions>,
        name: &str,
        topology: Topology,
    ) -> Result<Self> {
        let options = options.into();
        let servers = options.servers()?;
        let client = options
            .connect_options(name)?
            .connect(servers)
            .await
            .map_err(|e| {
                let kind = match e.kind() {
                    async_nats::ConnectErrorKind::Authentication
                    | async_nats::ConnectErrorKind::AuthorizationViolation
                    | async_nats::ConnectErrorKind::Tls
                    | async_nats::ConnectErrorKind::ServerParse => ErrorKind::Refused,
                    // A certificate that is not trusted stays untrusted: waiting will not help.
                    async_nats::ConnectErrorKind::Io if e.to_string().contains("certificate") => {
                        ErrorKind::Refused
                    }
                    _ => ErrorKind::Unavailable,
                };
                let who = match (&options.identity, &options.credentials) {
                    (Some(id), Some(_)) => format!(" as {id}"),
                    (Some(id), None) => format!(" as {id} (no credentials configured)"),
                    (None, _) => String::new(),
                };
                Error::msg(
                    kind,
                    "connect",
                    format!(
                        "cannot connect to {}{who}: {}",
                        options.display_url(),
                        redact(&e.to_string())
                    ),
                )
            })?;
        Ok(Self {
            options: Some(options),
            ..Self::new(client, topology, DEFAULT_TIMEOUT)
        })
    }

    /// Another connection to the same servers as the same identity, so that bulk transfers on
    /// it (checkpoints) do not queue ahead of this one's messages. The same connection when
    /// the settings are unknown.
    pub async fn second_connection(&self, name: &str) -> Result<Self> {
        match &self.options {
            Some(o) => Self::connect(o, name, self.topology.clone()).await,
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
            events_target: PublishedTo::new(&js, &topology.events_stream),
            alerts_target: PublishedTo::new(&js, &topology.alerts_stream),
            client,
            js,
            topology,
            options: None,
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
        // Two processes provisioning at once (a gateway and a correlator started together, each
        // with admin credentials) can each see a stream missing and create it: JetStream then
        // refuses the second ("subjects overlap", "name already in use") although the stream
        // it wanted now exists. Looking again settles it.
        let mut tries = 0;
        loop {
            tries += 1;
            match self.ensure_topology_once().await {
                Err(e) if tries < 5 && raced(&e) => {
                    tracing::debug!(error = %e, "topology changed while provisioning; looking again");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                other => return other,
            }
        }
    }

    /// One pass of [`Bus::ensure_topology`].
    async fn ensure_topology_once(&self) -> Result<()> {
        // Each office's mirror exists before the events stream sources it.
        for office in &self.topology.offices {
            self.js
                .create_or_update_stream(self.topology.mirror_stream_config(office))
                .await
                .map_err(err("create or update mirror"))?;
        }
        for config in [
            self.topology.events_stream_config(),
            self.topology.alerts_stream_config(),
            self.topology.access_stream_config(),
            self.topology.tlog_stream_config(),
            self.topology.holds_stream_config(),
        ] {
            self.js
                .create_or_update_stream(config)
                .await
                .map_err(err("create or update stream"))?;
        }
        self.rules_store().await?;
        self.checkpoint_store().await?;
        self.tlog_store().await?;
        self.tiles_store().await?;
        self.holds_store().await?;
        self.correlators_store().await?;
        tracing::info!(
            events = %self.topology.events_stream,
            alerts = %self.topology.alerts_stream,
            "topology ensured"
        );
        Ok(())
    }

    /// Check that the streams exist: `Missing` names the first that does not.
    pub async fn check_topology(&self) -> Result<()> {
        for name in [
            &self.topology.events_stream,
            &self.topology.alerts_stream,
            &self.topology.access_stream,
        ] {
            if let Err(e) = self.js.get_stream(name).await {
                let kind = e.kind().classify();
                return Err(Error::msg(
                    kind,
                    "check topology",
                    format!("stream {name}: {e}"),
                ));
            }
        }
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
        Ok(PendingAck {
            ack: fut,
            stream: self.events_target.clone(),
        })
    }

    /// Store an alert once: a second publish of the same alert id, however much later (a
    /// restart, a replay), is answered [`AlertOutcome::Duplicate`] and stores nothing.
    pub async fn publish_alert(&self, alert: &timpora_proto::v1::Alert) -> Result<AlertOutcome> {
        self.send_alert(alert, "").await?.outcome().await
    }

    /// [`Bus::publish_alert`] in two steps: returns once the alert is sent; the returned
    /// [`PendingAlert`] resolves when JetStream has stored it (or recognised it). A
    /// `traceparent` (the span that raised the alert) goes in its headers.
    pub async fn send_alert(
        &self,
        alert: &timpora_proto::v1::Alert,
        traceparent: &str,
    ) -> Result<PendingAlert> {
        let mut headers = async_nats::HeaderMap::new();
        if !traceparent.is_empty() {
            headers.insert(HEADER_TRACEPARENT, traceparent);
        }
        let msg = PublishMessage::build()
            .payload(Bytes::from(alert.encode_to_vec()))
            .headers(headers)
            .message_id(&alert.id)
            .expected_last_subject_sequence(0);
        let pending = self
            .js
            .send_publish(self.topology.alert_subject(&alert.id), msg)
            .await
            .map_err(err("publish alert"))?;
        Ok(PendingAlert {
            ack: pending,
            stream: self.alerts_target.clone(),
        })
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
        let messages = ordered(
            &stream,
            consumer::pull::OrderedConfig {
                filter_subject: filter,
                deliver_policy: start.deliver_policy(),
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

    /// Call `each` with every event stored on subjects matching `filter` at or after `since`,
    /// oldest first; with `headers_only`, without the events (to count them). A read of what
    /// is stored now: it ends at the last one, it does not wait for more. How many were read.
    pub async fn stored_since(
        &self,
        filter: &str,
        since: time::OffsetDateTime,
        headers_only: bool,
        mut each: impl FnMut(StoredEvent),
    ) -> Result<u64> {
        let stream = self
            .js
            .get_stream(&self.topology.events_stream)
            .await
            .map_err(err("get events stream"))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: filter.to_owned(),
                deliver_policy: Start::Time(since).deliver_policy(),
                headers_only,
                ..Default::default()
            })
            .await
            .map_err(err("create consumer"))?;
        // What the consumer starts with is all there is to read; with nothing, nothing comes.
        let total = consumer.cached_info().num_pending;
        if total == 0 {
            return Ok(0);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(err("read from consumer"))?;
        let mut read = 0;
        while read < total {
            let next = tokio::time::timeout(DEFAULT_TIMEOUT, messages.next())
                .await
                .map_err(|_| {
                    Error::msg(ErrorKind::Unavailable, "read events", "timed out reading")
                })?;
            let Some(m) = next else { break };
            let m = m.map_err(err("read events"))?;
            let info = m
                .info()
                .map_err(|e| Error::msg(ErrorKind::Malformed, "read events", e.to_string()))?;
            let (sequence, stored, pending) = (info.stream_sequence, info.published, info.pending);
            let event = match headers_only {
                true => None,
                false => Some(
                    Event::decode(m.payload.clone()).map_err(|e| Error::malformed(sequence, e))?,
                ),
            };
            read += 1;
            each(StoredEvent {
                sequence,
                stored,
                subject: m.subject.to_string(),
                event,
            });
            if pending == 0 {
                break;
            }
        }
        Ok(read)
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

    /// How many of the events stream's messages are the hub's clock ticks.
    async fn clock_ticks(&self, stream: &jetstream::stream::Stream) -> Result<u64> {
        let tick = type_by_name("timpora.hub.clock_tick.v1")
            .ok_or_else(|| Error::msg(ErrorKind::UnknownType, "status", "no clock tick type"))?;
        let filter = self.topology.filter_subject(&[tick]);
        let mut subjects = stream
            .info_with_subjects(filter)
            .await
            .map_err(err("stream subjects"))?;
        let mut ticks = 0;
        while let Some((_, n)) = subjects
            .try_next()
            .await
            .map_err(js_err(self.is_connected(), "stream subjects"))?
        {
            ticks += n as u64;
        }
        Ok(ticks)
    }

    /// Streams, message counts and consumers.
    pub async fn status(&self) -> Result<Status> {
        let mut streams = Vec::new();
        let names: Vec<String> = self
            .js
            .stream_names()
            .try_collect()
            .await
            .map_err(js_err(self.is_connected(), "list streams"))?;
        for name in names {
            let mut stream = self.js.get_stream(&name).await.map_err(err("get stream"))?;
            let info = stream.info().await.map_err(err("stream info"))?.clone();
            let consumers: Vec<consumer::Info> = stream
                .consumers()
                .try_collect()
                .await
                .map_err(js_err(self.is_connected(), "list consumers"))?;
            let clock_ticks = match name == self.topology.events_stream {
                true => Some(self.clock_ticks(&stream).await?),
                false => None,
            };
            streams.push(StreamStatus {
                name: info.config.name.clone(),
                subjects: info.config.subjects.clone(),
                messages: info.state.messages,
                bytes: info.state.bytes,
                first_sequence: info.state.first_sequence,
                last_sequence: info.state.last_sequence,
                replicas: info.config.num_replicas,
                duplicate_window_secs: info.config.duplicate_window.as_secs(),
                clock_ticks,
                agency_events: clock_ticks.map(|t| info.state.messages.saturating_sub(t)),
                placement: info.cluster.as_ref().and_then(placement),
                mirror: info.mirror.as_ref().map(SourceStatus::of),
                sources: info.sources.iter().map(SourceStatus::of).collect(),
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
        let mut members: Vec<String> = streams
            .iter()
            .filter_map(|s| s.placement.as_ref())
            .flat_map(|p| {
                p.leader
                    .iter()
                    .cloned()
                    .chain(p.followers.iter().map(|f| f.name.clone()))
            })
            .collect();
        members.sort();
        members.dedup();
        let info = self.client.server_info();
        Ok(Status {
            server: info.server_name,
            cluster: info.cluster.filter(|c| !c.is_empty()),
            members,
            streams,
        })
    }
}

/// Whether JetStream refused to create a stream because another process created it meanwhile.
fn raced(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("subjects overlap") || text.contains("already in use")
}

/// A clustered stream's placement (`None` on a single server, which reports no replicas).
fn placement(c: &jetstream::stream::ClusterInfo) -> Option<PlacementStatus> {
    if c.leader.is_none() && c.replicas.is_empty() && c.name.is_none() {
        return None;
    }
    Some(PlacementStatus {
        leader: c.leader.clone(),
        followers: c
            .replicas
            .iter()
            .map(|r| ReplicaStatus {
                name: r.name.clone(),
                current: r.current,
                offline: r.offline,
                lag: r.lag.unwrap_or(0),
            })
            .collect(),
    })
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

/// The stream a publish went to, to tell "missing" from "electing a leader".
#[derive(Debug)]
struct PublishedTo {
    js: jetstream::Context,
    name: String,
}

impl PublishedTo {
    /// The error for a publish nobody answered. JetStream says "no stream for this subject"
    /// both when the stream is missing and while a cluster elects the stream's new leader
    /// (nobody answers then either): only the stream's own "not found" means missing; anything
    /// else is worth retrying.
    async fn unanswered(&self, op: &'static str, e: jetstream::context::PublishError) -> Error {
        match self.js.get_stream(&self.name).await {
            Err(ge) if ge.kind().classify() == ErrorKind::Missing => err(op)(e),
            _ => Error::msg(
                ErrorKind::Unavailable,
                op,
                format!("stream {} did not answer (electing a leader?)", self.name),
            ),
        }
    }
}

impl PublishedTo {
    fn new(js: &jetstream::Context, name: &str) -> Arc<Self> {
        Arc::new(Self {
            js: js.clone(),
            name: name.to_owned(),
        })
    }
}

/// A sent alert whose JetStream acknowledgement is still to come.
#[derive(Debug)]
pub struct PendingAlert {
    ack: jetstream::context::PublishAckFuture,
    stream: Arc<PublishedTo>,
}

impl PendingAlert {
    /// Wait for JetStream: stored now, or already stored before.
    pub async fn outcome(self) -> Result<AlertOutcome> {
        match self.ack.await {
            Ok(ack) if ack.duplicate => Ok(AlertOutcome::Duplicate),
            Ok(ack) => Ok(AlertOutcome::Stored(ack.sequence)),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(AlertOutcome::Duplicate)
            }
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                Err(self.stream.unanswered("store alert", e).await)
            }
            Err(e) => Err(err("store alert")(e)),
        }
    }
}

/// A sent publish whose JetStream acknowledgement is still to come.
#[derive(Debug)]
pub struct PendingAck {
    ack: jetstream::context::PublishAckFuture,
    stream: Arc<PublishedTo>,
}

impl PendingAck {
    /// Wait for JetStream to store the message (or report it as a duplicate).
    pub async fn ack(self) -> Result<jetstream::publish::PublishAck> {
        match self.ack.await {
            Ok(a) => Ok(a),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                Err(self.stream.unanswered("acknowledgement", e).await)
            }
            Err(e) => Err(err("acknowledgement")(e)),
        }
    }
}
