//! The correlators bucket: a key-value bucket, one value per key, where correlators that share
//! the work say who is alive and who holds which part of the group keys. Writes that must not
//! cross another's are compare-and-swap on the key's revision, so two correlators cannot both
//! think they took the same part.

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::TryStreamExt;

use crate::bus::Bus;
use crate::error::{Result, js_err};

/// One key of the correlators bucket as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedEntry {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision a [`Bus::shared_swap`] of this key must name.
    pub revision: u64,
}

impl Bus {
    /// The correlators bucket, created when missing.
    pub(crate) async fn correlators_store(&self) -> Result<kv::Store> {
        let name = self.topology.correlators_bucket.clone();
        self.bucket(
            &name,
            "TIMPORA correlators: members and the parts they hold",
            1,
            8 * 1024,
        )
        .await
    }

    /// Every key of the correlators bucket that `filter` matches (a subject filter within the
    /// bucket: `>`, `status.>`, or one key), with its value. The keys are listed from the
    /// bucket's stream (its subjects), not with a key-value watch, which would not end while
    /// other correlators keep writing.
    pub async fn shared_entries(&self, filter: &str) -> Result<Vec<SharedEntry>> {
        let store = self.correlators_store().await?;
        let prefix = store.prefix.clone();
        let subjects: Vec<String> = store
            .stream
            .info_with_subjects(format!("{prefix}{filter}"))
            .await
            .map_err(js_err(self.is_connected(), "list shared keys"))?
            .map_ok(|(subject, _)| subject)
            .try_collect()
            .await
            .map_err(js_err(self.is_connected(), "list shared keys"))?;
        let mut out = Vec::new();
        for key in subjects.iter().filter_map(|s| s.strip_prefix(&prefix)) {
            let entry = store
                .entry(key)
                .await
                .map_err(js_err(self.is_connected(), "read shared key"))?;
            if let Some(e) = entry.filter(|e| e.operation == kv::Operation::Put) {
                out.push(SharedEntry {
                    key: key.to_owned(),
                    value: e.value.to_vec(),
                    revision: e.revision,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Set `key` whatever it held.
    pub async fn shared_put(&self, key: &str, value: Vec<u8>) -> Result<u64> {
        self.correlators_store()
            .await?
            .put(key, Bytes::from(value))
            .await
            .map_err(js_err(self.is_connected(), "put shared key"))
    }

    /// Set `key` only if it is still at `revision` (`None`: only if it has no value): the new
    /// revision, or `None` when another wrote it first.
    pub async fn shared_swap(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: Option<u64>,
    ) -> Result<Option<u64>> {
        let store = self.correlators_store().await?;
        let value = Bytes::from(value);
        match revision {
            None => match store.create(key, value).await {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(js_err(self.is_connected(), "claim shared key")(e)),
            },
            Some(rev) => match store.update(key, value, rev).await {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(e) => Err(js_err(self.is_connected(), "swap shared key")(e)),
            },
        }
    }

    /// Remove `key` (a member gone long ago).
    pub async fn shared_delete(&self, key: &str) -> Result<()> {
        self.correlators_store()
            .await?
            .delete(key)
            .await
            .map_err(js_err(self.is_connected(), "delete shared key"))
    }
}
