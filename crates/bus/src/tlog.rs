//! The transparency log's place on the bus: reading a sealed stream exactly as stored (sequence,
//! stored time, subject, headers, payload), the stream of signed checkpoints with each log's
//! latest in a key-value bucket, and the object store of each log's tiles.

use async_nats::jetstream::consumer;
use async_nats::jetstream::{kv, object_store};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::bus::{Bus, Start, ordered};
use crate::error::{Error, ErrorKind, Result, err, js_err};

/// One message of a stream as JetStream stored it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The stream's name.
    pub stream: String,
    /// Its stream sequence.
    pub sequence: u64,
    /// When the stream stored it, nanoseconds since the Unix epoch.
    pub stored_nanos: u64,
    /// Its subject.
    pub subject: String,
    /// Its headers as stored, (name, value), a repeated name once per value.
    pub headers: Vec<(String, String)>,
    /// Its payload.
    pub payload: Bytes,
    /// Messages of the stream after this one when it was read (0 at the end).
    pub pending: u64,
}

/// The outcome of the last verification of a log, as `timpora audit verify` records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verification {
    /// When (RFC 3339).
    pub at: String,
    pub intact: bool,
    /// The checkpoint size it was checked against.
    pub size: u64,
    /// What it said.
    pub summary: String,
    /// Who ran it.
    pub by: String,
}

/// Where a stream begins and ends, and whether its limits remove old messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamBounds {
    /// Its first stored sequence.
    pub first: u64,
    /// Its last stored sequence (0 when nothing was ever stored).
    pub last: u64,
    /// Whether an age, count or size limit removes its oldest messages (retention).
    pub retention: bool,
}

impl Bus {
    /// Where `stream` begins and ends now.
    pub async fn stream_bounds(&self, stream: &str) -> Result<StreamBounds> {
        let mut s = self
            .js
            .get_stream(stream)
            .await
            .map_err(err("get stream"))?;
        let info = s.info().await.map_err(err("stream info"))?;
        let c = &info.config;
        Ok(StreamBounds {
            first: info.state.first_sequence,
            last: info.state.last_sequence,
            retention: !c.max_age.is_zero()
                || c.max_messages > 0
                || c.max_bytes > 0
                || c.max_messages_per_subject > 0,
        })
    }

    /// The bucket of each log's latest checkpoint, created when missing.
    pub(crate) async fn tlog_store(&self) -> Result<kv::Store> {
        let t = &self.topology;
        let about = "TIMPORA transparency log: each log's latest checkpoint";
        self.bucket(&t.tlog_bucket, about, 1, 64 * 1024).await
    }

    /// The object store of the logs' tiles, created when missing.
    pub(crate) async fn tiles_store(&self) -> Result<object_store::ObjectStore> {
        let name = &self.topology.tiles_bucket;
        self.objects(name, "TIMPORA transparency log tiles").await
    }

    /// Read `stream` as stored, from `sequence` on, in order; the stream of messages follows
    /// new ones as they are stored.
    pub async fn read_stored(
        &self,
        stream: &str,
        sequence: u64,
    ) -> Result<BoxStream<'static, Result<StoredMessage>>> {
        self.read_stored_from(stream, Start::Sequence(sequence))
            .await
    }

    /// [`Bus::read_stored`] from any start.
    pub async fn read_stored_from(
        &self,
        stream: &str,
        start: Start,
    ) -> Result<BoxStream<'static, Result<StoredMessage>>> {
        let s = self
            .js
            .get_stream(stream)
            .await
            .map_err(err("get stream"))?;
        let messages = ordered(
            &s,
            consumer::pull::OrderedConfig {
                deliver_policy: start.deliver_policy(),
                ..Default::default()
            },
        )
        .await?;
        let name = stream.to_owned();
        Ok(messages
            .map(move |m| {
                let m = m.map_err(err("read stream"))?;
                let info = m
                    .info()
                    .map_err(|e| Error::msg(ErrorKind::Malformed, "read stream", e.to_string()))?;
                let stored_nanos = u64::try_from(info.published.unix_timestamp_nanos())
                    .map_err(|e| Error::malformed(info.stream_sequence, e))?;
                let headers = m
                    .headers
                    .iter()
                    .flat_map(|h| h.iter())
                    .flat_map(|(n, vs)| {
                        vs.iter()
                            .map(move |v| (n.to_string(), v.as_str().to_owned()))
                    })
                    .collect();
                Ok(StoredMessage {
                    stream: name.clone(),
                    sequence: info.stream_sequence,
                    stored_nanos,
                    subject: m.subject.to_string(),
                    headers,
                    payload: m.payload.clone(),
                    pending: info.pending,
                })
            })
            .boxed())
    }

    /// Publish a log's signed checkpoint to the checkpoints stream and make it the latest.
    /// Returns its sequence in the checkpoints stream.
    pub async fn publish_checkpoint(&self, log: &str, note: &[u8]) -> Result<u64> {
        let ack = self
            .js
            .publish(
                self.topology.checkpoint_subject(log),
                Bytes::copy_from_slice(note),
            )
            .await
            .map_err(err("publish checkpoint"))?
            .await
            .map_err(err("publish checkpoint"))?;
        self.tlog_store()
            .await?
            .put(log, Bytes::copy_from_slice(note))
            .await
            .map_err(js_err(self.is_connected(), "put latest checkpoint"))?;
        Ok(ack.sequence)
    }

    /// Record the outcome of verifying `log`.
    pub async fn put_verification(&self, log: &str, v: &Verification) -> Result<()> {
        let json =
            serde_json::to_vec(v).map_err(js_err(self.is_connected(), "encode verification"))?;
        self.tlog_store()
            .await?
            .put(format!("verified-{log}"), json.into())
            .await
            .map_err(js_err(self.is_connected(), "put verification"))?;
        Ok(())
    }

    /// The outcome of the last verification of `log`, if any.
    pub async fn verification(&self, log: &str) -> Result<Option<Verification>> {
        let value = self
            .tlog_store()
            .await?
            .get(format!("verified-{log}"))
            .await
            .map_err(js_err(self.is_connected(), "get verification"))?;
        Ok(value.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// A log's latest signed checkpoint, if it has one.
    pub async fn latest_checkpoint(&self, log: &str) -> Result<Option<Vec<u8>>> {
        let value = self
            .tlog_store()
            .await?
            .get(log)
            .await
            .map_err(js_err(self.is_connected(), "get latest checkpoint"))?;
        Ok(value.map(|b| b.to_vec()))
    }

    /// Every signed checkpoint of `log` published, oldest first.
    pub async fn checkpoints(&self, log: &str) -> Result<Vec<Vec<u8>>> {
        let s = self
            .js
            .get_stream(&self.topology.tlog_stream)
            .await
            .map_err(err("get checkpoints stream"))?;
        let last = s.cached_info().state.last_sequence;
        let mut out = Vec::new();
        if last == 0 {
            return Ok(out);
        }
        let mut messages = ordered(
            &s,
            consumer::pull::OrderedConfig {
                filter_subject: self.topology.checkpoint_subject(log),
                ..Default::default()
            },
        )
        .await?;
        while let Some(m) = messages.next().await {
            let m = m.map_err(err("read checkpoints"))?;
            let info = m
                .info()
                .map_err(|e| Error::msg(ErrorKind::Malformed, "read checkpoints", e.to_string()))?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            out.push(m.payload.to_vec());
            if pending == 0 || seq >= last {
                break;
            }
        }
        Ok(out)
    }

    /// Store one of a log's tiles (replacing a partial one).
    pub async fn put_tile(&self, log: &str, path: &str, data: &[u8]) -> Result<()> {
        let mut reader = data;
        self.tiles_store()
            .await?
            .put(format!("{log}/{path}").as_str(), &mut reader)
            .await
            .map_err(js_err(self.is_connected(), "put tile"))?;
        Ok(())
    }

    /// One of a log's tiles, if stored.
    pub async fn get_tile(&self, log: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let store = self.tiles_store().await?;
        self.read_object(&store, &format!("{log}/{path}"), "get tile")
            .await
    }
}
