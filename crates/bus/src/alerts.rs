//! The alerts stream beyond raising: lifecycle transitions (one subject per alert, written with
//! optimistic concurrency), reading the whole stream in order, and fetching evidence events by
//! their events-stream sequence.

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use prost::Message as _;
use timpora_proto::v1::{Alert, AlertTransition, Event};

use crate::{Bus, Error, Result};

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
            .map_err(|e| Error::Unavailable(e.to_string()))?
            .await;
        match ack {
            Ok(a) => Ok(a.sequence),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Err(TransitionError::Conflict)
            }
            Err(e) => Err(Error::Unavailable(e.to_string()).into()),
        }
    }

    /// The alerts stream from its start, in order, then live.
    pub async fn alert_feed(&self) -> Result<BoxStream<'static, Result<AlertDelivered>>> {
        let stream = self
            .js
            .get_stream(&self.topology.alerts_stream)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let messages = crate::ordered(&stream, consumer::pull::OrderedConfig::default()).await?;
        let lifecycle = format!("{}.lifecycle.", self.topology.alerts_subject_prefix);
        Ok(messages
            .map(move |m| {
                let m = m.map_err(|e| Error::Unavailable(e.to_string()))?;
                let sequence = m
                    .info()
                    .map_err(|e| Error::Unavailable(e.to_string()))?
                    .stream_sequence;
                let malformed = |e: prost::DecodeError| Error::Malformed {
                    sequence,
                    message: e.to_string(),
                };
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

    /// The events stored at `sequences` of the events stream, in the same order; `None` for
    /// 0 (unknown) and for a sequence that holds no readable event.
    pub async fn events_at(&self, sequences: &[u64]) -> Result<Vec<Option<Event>>> {
        let stream = self
            .js
            .get_stream(&self.topology.events_stream)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
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
