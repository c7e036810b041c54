//! The hub's own state next to the streams: the rule sets (a key-value bucket with history, so
//! which set ran when stays on record) and service checkpoints (an object store, since a
//! correlator's state outgrows a key-value entry).

use std::time::Duration;

use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{kv, object_store};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::bus::Bus;
use crate::error::{Result, js_err};
use crate::topology::Storage;

/// Key of the rule set the correlator is to run (the rule file's text).
pub const RULES_ACTIVE: &str = "active";
/// Key where the correlator reports what it runs ([`CorrelatorStatus`] as JSON).
pub const CORRELATOR_STATUS: &str = "status";

/// What the correlator reports under [`CORRELATOR_STATUS`], at start, at each rule-set switch
/// and at each checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelatorStatus {
    /// The rule set running.
    pub version: String,
    /// SHA-256 of its file's text.
    pub digest: String,
    /// Events stream sequence after which this set decides (alerts of earlier events were the
    /// previous set's to raise).
    pub since_sequence: u64,
    /// Last events stream sequence covered by the checkpoint.
    pub checkpoint_sequence: u64,
    /// Last events stream sequence processed at the time of this report.
    #[serde(default)]
    pub position: u64,
    pub events: u64,
    pub late_events: u64,
    pub alerts: u64,
    /// Entries of state held, and the cap on them.
    pub tracked: u64,
    /// Distinct entities (persons, recruiters, companies) those entries are about.
    pub entities: u64,
    pub state_cap: u64,
    /// Groups dropped because the cap was reached.
    pub shed_groups: u64,
    /// RFC 3339 wall-clock time of this report.
    pub reported_at: String,
    /// The part of the group keys it decides (`0-of-2`), when correlators share the work.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub part: String,
    /// Which correlator reported it, when correlators share the work.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub member: String,
    /// RFC 3339 wall-clock time its last checkpoint was written (empty before its first).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checkpoint_at: String,
}

impl CorrelatorStatus {
    /// As stored: JSON.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    /// From its stored JSON; `None` when it is not one.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

fn storage(s: Storage) -> StorageType {
    match s {
        Storage::File => StorageType::File,
        Storage::Memory => StorageType::Memory,
    }
}

impl Bus {
    /// The rule-set bucket, created when missing.
    pub(crate) async fn rules_store(&self) -> Result<kv::Store> {
        let t = &self.topology;
        self.bucket(
            &t.rules_bucket,
            "TIMPORA correlation rule sets",
            64,
            1024 * 1024,
        )
        .await
    }

    /// Key-value bucket `name`, created when missing, keeping `history` values per key of at
    /// most `max_bytes` each; nothing in it is deleted through the API.
    pub(crate) async fn bucket(
        &self,
        name: &str,
        description: &str,
        history: i64,
        max_bytes: i32,
    ) -> Result<kv::Store> {
        let t = &self.topology;
        if let Ok(store) = self.js.get_key_value(name).await {
            return Ok(store);
        }
        // The stream a key-value bucket is made of, created directly: `create_key_value` first
        // asks for account limits in a form NATS 2.9 does not answer.
        self.js
            .create_or_update_stream(stream::Config {
                name: format!("KV_{name}"),
                description: Some(description.into()),
                subjects: vec![format!("$KV.{name}.>")],
                max_messages_per_subject: history,
                max_message_size: max_bytes,
                storage: storage(t.storage),
                num_replicas: t.replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: match history {
                    1 => stream::DiscardPolicy::Old,
                    _ => stream::DiscardPolicy::New,
                },
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(js_err(self.is_connected(), "create bucket"))?;
        self.js
            .get_key_value(name)
            .await
            .map_err(js_err(self.is_connected(), "open bucket"))
    }

    /// The checkpoint object store, created when missing.
    pub(crate) async fn checkpoint_store(&self) -> Result<object_store::ObjectStore> {
        let name = &self.topology.checkpoint_bucket;
        self.objects(name, "TIMPORA service checkpoints").await
    }

    /// Object store `name`, created when missing.
    pub(crate) async fn objects(
        &self,
        name: &str,
        description: &str,
    ) -> Result<object_store::ObjectStore> {
        let t = &self.topology;
        if let Ok(store) = self.js.get_object_store(name).await {
            return Ok(store);
        }
        self.js
            .create_object_store(object_store::Config {
                bucket: name.to_owned(),
                description: Some(description.into()),
                storage: storage(t.storage),
                num_replicas: t.replicas,
                ..Default::default()
            })
            .await
            .map_err(js_err(self.is_connected(), "create object store"))
    }

    /// Make `text` (a checked rule file) the active rule set; its bucket revision.
    pub async fn put_rules(&self, text: &str) -> Result<u64> {
        self.rules_store()
            .await?
            .put(RULES_ACTIVE, Bytes::copy_from_slice(text.as_bytes()))
            .await
            .map_err(js_err(self.is_connected(), "put rules"))
    }

    /// The active rule file's text, if one was ever applied.
    pub async fn active_rules(&self) -> Result<Option<String>> {
        let value = self
            .rules_store()
            .await?
            .get(RULES_ACTIVE)
            .await
            .map_err(js_err(self.is_connected(), "get rules"))?;
        Ok(value.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Every rule set made active that the bucket still keeps, oldest first, with its revision.
    pub async fn rules_history(&self) -> Result<Vec<(u64, String)>> {
        let mut history = self
            .rules_store()
            .await?
            .history(RULES_ACTIVE)
            .await
            .map_err(js_err(self.is_connected(), "rules history"))?;
        let mut out = Vec::new();
        while let Some(entry) = tokio::time::timeout(Duration::from_secs(5), history.next())
            .await
            .ok()
            .flatten()
        {
            let e = entry.map_err(js_err(self.is_connected(), "rules history"))?;
            if e.operation == kv::Operation::Put {
                out.push((e.revision, String::from_utf8_lossy(&e.value).into_owned()));
            }
        }
        Ok(out)
    }

    /// Every later change of the active rule set (its text).
    pub async fn watch_rules(&self) -> Result<impl Stream<Item = String> + Send + 'static> {
        let watch = self
            .rules_store()
            .await?
            .watch(RULES_ACTIVE)
            .await
            .map_err(js_err(self.is_connected(), "watch rules"))?;
        Ok(watch.filter_map(|entry| async move {
            match entry {
                Ok(e) if e.operation == kv::Operation::Put => {
                    Some(String::from_utf8_lossy(&e.value).into_owned())
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "rule set watch interrupted");
                    None
                }
            }
        }))
    }

    /// Report what the correlator runs.
    pub async fn put_correlator_status(&self, status: &CorrelatorStatus) -> Result<()> {
        let json = serde_json::to_vec(status)
            .map_err(js_err(self.is_connected(), "encode correlator status"))?;
        self.rules_store()
            .await?
            .put(CORRELATOR_STATUS, json.into())
            .await
            .map_err(js_err(self.is_connected(), "put correlator status"))?;
        Ok(())
    }

    /// What the correlator last reported.
    pub async fn correlator_status(&self) -> Result<Option<CorrelatorStatus>> {
        let value = self
            .rules_store()
            .await?
            .get(CORRELATOR_STATUS)
            .await
            .map_err(js_err(self.is_connected(), "get correlator status"))?;
        Ok(value.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// What every correlator last reported: the one that decides alone (if one ever did), then
    /// each part's, for correlators that share the work.
    pub async fn correlator_statuses(&self) -> Result<Vec<CorrelatorStatus>> {
        let mut out: Vec<CorrelatorStatus> = self.correlator_status().await?.into_iter().collect();
        out.extend(
            self.shared_entries("status.>")
                .await?
                .iter()
                .filter_map(|e| CorrelatorStatus::from_json(&e.value)),
        );
        Ok(out)
    }

    /// Store a checkpoint under `name`, replacing the previous one only once it is complete.
    pub async fn save_checkpoint(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut reader = bytes;
        self.save_checkpoint_from(name, &mut reader).await
    }

    /// [`Bus::save_checkpoint`] from a reader: a read error aborts it and the previous
    /// checkpoint stays.
    pub async fn save_checkpoint_from(
        &self,
        name: &str,
        reader: &mut (impl tokio::io::AsyncRead + Unpin),
    ) -> Result<()> {
        let store = self.checkpoint_store().await?;
        store
            .put(name, reader)
            .await
            .map_err(js_err(self.is_connected(), "save checkpoint"))?;
        Ok(())
    }

    /// Size in bytes of the checkpoint stored under `name` (0 if none).
    pub async fn checkpoint_size(&self, name: &str) -> Result<u64> {
        let store = self.checkpoint_store().await?;
        match store.info(name).await {
            Ok(info) => Ok(info.size as u64),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(0),
            Err(e) => Err(js_err(self.is_connected(), "checkpoint info")(e)),
        }
    }

    /// The checkpoint stored under `name`, if any.
    pub async fn load_checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let store = self.checkpoint_store().await?;
        self.read_object(&store, name, "load checkpoint").await
    }

    /// The whole object `name` of `store`, if there is one.
    pub(crate) async fn read_object(
        &self,
        store: &object_store::ObjectStore,
        name: &str,
        op: &'static str,
    ) -> Result<Option<Vec<u8>>> {
        let mut object = match store.get(name).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(js_err(self.is_connected(), op)(e)),
        };
        let mut bytes = Vec::new();
        tokio::time::timeout(Duration::from_secs(120), object.read_to_end(&mut bytes))
            .await
            .map_err(js_err(self.is_connected(), op))?
            .map_err(js_err(self.is_connected(), op))?;
        Ok(Some(bytes))
    }
}
