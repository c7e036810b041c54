//! The alerts stream beyond raising: lifecycle transitions (one subject per alert, written with
//! optimistic concurrency), reading the whole stream in order, and fetching evidence events by
//! their events-stream sequence.

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use prost::Message as _;
use timpora_proto::v1::{Alert, AlertAccess, AlertTransition, Event};

use crate::bus::{Bus, ordered};
use crate::error::{Error, ErrorKind, Result, err};

/// One message of the alerts stream.
#[derive(Debug, Clone)]
pub enum AlertMessage {
    Raised(Alert),
    Transition(AlertTransition),
}

/// An alerts-stream message with its stream sequence.
#[derive(Debug, Clone)]
pub struct AlertDelivered {
    pub sequence: u64,
    pub message: AlertMessage,
}

/// Why a transition was not stored.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// Someone else changed the alert since `expected` (its lifecycle subject moved on).
    #[error("the alert changed meanwhile")]
    Conflict,
    #[error(transparent)]
    Bus(#[from] Error),
}

impl Bus {
    /// The subject an alert's transitions are stored on.
    pub fn lifecycle_subject(&self, alert_id: &str) -> String {
        format!(
            "{}.lifecycle.{alert_id}",
            self.topology.alerts_subject_prefix
        )
    }

    /// Store a transition if the alert's last transition is still at `expected` (0: none yet);
    /// its stream sequence.
    pub async fn publish_transition(
        &self,
        t: &AlertTransition,
        expected: u64,
    ) -> std::result::Result<u64, TransitionError> {
        let msg = PublishMessage::build()
            .payload(Bytes::from(t.encode_to_vec()))
            .expected_last_subject_sequence(expected);
        let ack = self
            .js
            .send_publish(self.lifecycle_subject(&t.alert_id), msg)
            .await
            .map_err(err("publish transition"))?
            .await;
        match ack {
            Ok(a) => Ok(a.sequence),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Err(TransitionError::Conflict)
            }
            Err(e) => Err(err("publish transition")(e).into()),
        }
    }

    /// The alerts stream from its start, in order, then live.
    pub async fn alert_feed(&self) -> Result<BoxStream<'static, Result<AlertDelivered>>> {
        let stream = self
            .js
            .get_stream(&self.topology.alerts_stream)
            .await
            .map_err(err("get alerts stream"))?;
        let messages = ordered(&stream, consumer::pull::OrderedConfig::default()).await?;
        let lifecycle = format!("{}.lifecycle.", self.topology.alerts_subject_prefix);
        Ok(messages
            .map(move |m| {
                let m = m.map_err(err("read alerts"))?;
                let sequence = m
                    .info()
                    .map_err(|e| Error::msg(ErrorKind::Malformed, "read alerts", e.to_string()))?
                    .stream_sequence;
                let malformed = |e: prost::DecodeError| Error::malformed(sequence, e);
                let message = if m.subject.starts_with(&lifecycle) {
                    AlertMessage::Transition(
                        AlertTransition::decode(m.payload.clone()).map_err(malformed)?,
                    )
                } else {
                    AlertMessage::Raised(Alert::decode(m.payload.clone()).map_err(malformed)?)
                };
                Ok(AlertDelivered { sequence, message })
            })
            .boxed())
    }

    /// Record a read; returns once JetStream has stored it. Reads of an alert are stored on
    /// `<prefix>.alert.<id>`, of a subject's page on `<prefix>.subject.<subject>`, and other
    /// reads on `<prefix>.<action>.<reader's agency>`.
    pub async fn record_access(&self, a: &AlertAccess) -> Result<u64> {
        let subject = if !a.action.is_empty() {
            let agency = a.reader.split('/').next().unwrap_or_default();
            let token = |s: &str| {
                s.chars()
                    .map(
                        |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                            true => c,
                            false => '_',
                        },
                    )
                    .collect::<String>()
            };
            format!(
                "{}.{}.{}",
                self.topology.access_subject_prefix,
                token(&a.action),
                match agency.is_empty() {
                    true => "_".to_owned(),
                    false => token(agency),
                }
            )
        } else if a.alert_id.is_empty() && !a.subject.is_empty() {
            format!(
                "{}.subject.{}",
                self.topology.access_subject_prefix, a.subject
            )
        } else {
            format!(
                "{}.alert.{}",
                self.topology.access_subject_prefix, a.alert_id
            )
        };
        let ack = self
            .js
            .publish(subject, Bytes::from(a.encode_to_vec()))
            .await
            .map_err(err("record access"))?
            .await
            .map_err(err("record access"))?;
        Ok(ack.sequence)
    }

    /// The newest `limit` access records (of one alert, or all), newest first.
    pub async fn access_records(
        &self,
        alert_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlertAccess>> {
        let mut stream = self
            .js
            .get_stream(&self.topology.access_stream)
            .await
            .map_err(err("get access stream"))?;
        let info = stream.info().await.map_err(err("access stream info"))?;
        if info.state.messages == 0 {
            return Ok(Vec::new());
        }
        let prefix = &self.topology.access_subject_prefix;
        let filter = alert_id.map_or_else(
            || format!("{prefix}.>"),
            |id| format!("{prefix}.alert.{id}"),
        );
        let last = match alert_id {
            None => info.state.last_sequence,
            Some(_) => match stream.get_last_raw_message_by_subject(&filter).await {
                Ok(m) => m.sequence,
                // Nobody has read this alert.
                Err(_) => return Ok(Vec::new()),
            },
        };
        let mut messages = ordered(
            &stream,
            consumer::pull::OrderedConfig {
                filter_subject: filter,
                ..Default::default()
            },
        )
        .await?;
        let mut out = std::collections::VecDeque::with_capacity(limit.min(1024));
        while let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_secs(2), messages.next()).await
        {
            let m = m.map_err(err("read access records"))?;
            let meta = m.info().map_err(|e| {
                Error::msg(ErrorKind::Malformed, "read access records", e.to_string())
            })?;
            let (sequence, pending) = (meta.stream_sequence, meta.pending);
            let a = AlertAccess::decode(m.payload.clone())
                .map_err(|e| Error::malformed(sequence, e))?;
            if out.len() == limit {
                out.pop_front();
            }
            out.push_back(a);
            if pending == 0 || sequence >= last {
                break;
            }
        }
        Ok(out.into_iter().rev().collect())
    }

    /// The events stored at `sequences` of the events stream, in the same order; `None` for
    /// 0 (unknown) and for a sequence that holds no readable event.
    pub async fn events_at(&self, sequences: &[u64]) -> Result<Vec<Option<Event>>> {
        let stream = self
            .js
            .get_stream(&self.topology.events_stream)
            .await
            .map_err(err("get events stream"))?;
        let mut out = Vec::with_capacity(sequences.len());
        for &sequence in sequences {
            let event = match sequence {
                0 => None,
                s => match stream.direct_get(s).await {
                    Ok(m) => Event::decode(m.payload).ok(),
                    Err(_) => None,
                },
            };
            out.push(event);
        }
        Ok(out)
    }
}
