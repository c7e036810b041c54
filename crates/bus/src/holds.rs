//! Legal holds: a hold on an entity token or a case keeps the events that mention it from being
//! removed by the events stream's retention. Holds live in a key-value bucket (a released hold
//! stays there, with its release); the events they cover are copied, exactly as stored, to the
//! holds stream (`<prefix>.<events sequence>`), which no limit removes. A copy carries the
//! original's headers and, in `Timpora-Held-*` headers, its stream, sequence, stored time and
//! subject, so that its transparency-log leaf can be recomputed after the original is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{consumer, kv};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, ordered};
use crate::error::{Error, ErrorKind, Result, err, js_err};
use crate::tlog::StoredMessage;

const HELD_STREAM: &str = "Timpora-Held-Stream";
const HELD_SEQUENCE: &str = "Timpora-Held-Sequence";
const HELD_STORED: &str = "Timpora-Held-Stored";
const HELD_SUBJECT: &str = "Timpora-Held-Subject";

/// A legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHold {
    /// Its id (`hold_…`).
    pub id: String,
    /// The entity token (`psn_…`, `rec_…`, a licence number) or case id it holds.
    pub token: String,
    /// Why (the order, the case file).
    pub reason: String,
    /// Who placed it.
    pub by: String,
    /// When (RFC 3339).
    pub placed_at: String,
    /// When it was released, if it was.
    #[serde(default)]
    pub released_at: Option<String>,
}

impl LegalHold {
    /// Whether it holds anything now.
    pub fn active(&self) -> bool {
        self.released_at.is_none()
    }
}

impl Bus {
    /// The bucket of legal holds, created when missing.
    pub(crate) async fn holds_store(&self) -> Result<kv::Store> {
        let t = &self.topology;
        self.bucket(&t.holds_bucket, "TIMPORA legal holds", 16, 64 * 1024)
            .await
    }

    /// Place or update a hold.
    pub async fn put_hold(&self, hold: &LegalHold) -> Result<()> {
        let json = serde_json::to_vec(hold).map_err(js_err(self.is_connected(), "encode hold"))?;
        self.holds_store()
            .await?
            .put(&hold.id, json.into())
            .await
            .map_err(js_err(self.is_connected(), "put hold"))?;
        Ok(())
    }

    /// Every hold, released ones too, by id.
    pub async fn holds(&self) -> Result<Vec<LegalHold>> {
        let store = self.holds_store().await?;
        let mut keys = match store.keys().await {
            Ok(k) => k.boxed(),
            Err(e) => return Err(js_err(self.is_connected(), "list holds")(e)),
        };
        let mut out = Vec::new();
        while let Some(key) = tokio::time::timeout(Duration::from_secs(5), keys.next())
            .await
            .ok()
            .flatten()
        {
            let key = key.map_err(js_err(self.is_connected(), "list holds"))?;
            if let Some(v) = store
                .get(&key)
                .await
                .map_err(js_err(self.is_connected(), "get hold"))?
                && let Ok(h) = serde_json::from_slice::<LegalHold>(&v)
            {
                out.push(h);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Every later change of a hold.
    pub async fn watch_holds(&self) -> Result<futures::stream::BoxStream<'static, LegalHold>> {
        let watch = self
            .holds_store()
            .await?
            .watch_all()
            .await
            .map_err(js_err(self.is_connected(), "watch holds"))?;
        Ok(watch
            .filter_map(|e| async move {
                let e = e.ok()?;
                (e.operation == kv::Operation::Put)
                    .then(|| serde_json::from_slice::<LegalHold>(&e.value).ok())
                    .flatten()
            })
            .boxed())
    }

    /// Copy a held event to the holds stream, exactly as stored, unless a copy is there.
    pub async fn hold_copy(&self, m: &StoredMessage) -> Result<bool> {
        let subject = format!("{}.{}", self.topology.holds_subject_prefix, m.sequence);
        let stream = self
            .js
            .get_stream(&self.topology.holds_stream)
            .await
            .map_err(err("get holds stream"))?;
        if stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .is_ok()
        {
            return Ok(false);
        }
        let mut headers = HeaderMap::new();
        for (n, v) in &m.headers {
            headers.append(n.as_str(), v.as_str());
        }
        headers.insert(HELD_STREAM, m.stream.as_str());
        headers.insert(HELD_SEQUENCE, m.sequence.to_string().as_str());
        headers.insert(HELD_STORED, m.stored_nanos.to_string().as_str());
        headers.insert(HELD_SUBJECT, m.subject.as_str());
        self.js
            .publish_with_headers(subject, headers, m.payload.clone())
            .await
            .map_err(err("copy held event"))?
            .await
            .map_err(err("copy held event"))?;
        Ok(true)
    }

    /// The held copies, as the originals were stored, by their events sequence.
    pub async fn held(&self) -> Result<BTreeMap<u64, StoredMessage>> {
        let stream = self
            .js
            .get_stream(&self.topology.holds_stream)
            .await
            .map_err(err("get holds stream"))?;
        let last = stream.cached_info().state.last_sequence;
        let mut out = BTreeMap::new();
        if last == 0 {
            return Ok(out);
        }
        let name = self.topology.holds_stream.clone();
        let mut messages = ordered(&stream, consumer::pull::OrderedConfig::default()).await?;
        while let Some(m) = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .ok()
            .flatten()
        {
            let m = m.map_err(err("read holds"))?;
            let info = m
                .info()
                .map_err(|e| Error::msg(ErrorKind::Malformed, "read holds", e.to_string()))?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            let mut original = StoredMessage {
                stream: String::new(),
                sequence: 0,
                stored_nanos: 0,
                subject: String::new(),
                headers: Vec::new(),
                payload: m.payload.clone(),
                pending: 0,
            };
            for (n, vs) in m.headers.iter().flat_map(|h| h.iter()) {
                for v in vs {
                    let v = v.as_str();
                    match n.as_ref() {
                        HELD_STREAM => original.stream = v.to_owned(),
                        HELD_SEQUENCE => original.sequence = v.parse().unwrap_or_default(),
                        HELD_STORED => original.stored_nanos = v.parse().unwrap_or_default(),
                        HELD_SUBJECT => original.subject = v.to_owned(),
                        other => original.headers.push((other.to_owned(), v.to_owned())),
                    }
                }
            }
            if original.sequence == 0 || original.stream != self.topology.events_stream {
                return Err(Error::malformed(
                    seq,
                    format!("held copy at {name}:{seq} names no event"),
                ));
            }
            out.insert(original.sequence, original);
            if pending == 0 || seq >= last {
                break;
            }
        }
        Ok(out)
    }
}
