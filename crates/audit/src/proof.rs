//! Proof files for one record: the record as stored, its inclusion proof, and the signed,
//! cosigned checkpoint it leads to — enough to check it with no network, no hub and no trust in
//! whoever handed the file over. A file is checked exactly as `prove` wrote it: any changed
//! byte fails.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use timpora_bus::{Bus, StoredMessage};
use timpora_tlog::Hash;

use crate::error::Error;
use crate::policy::AuditPolicy;
use crate::verify::stream_of;

/// First field of every proof file.
pub const PROOF_FORMAT: &str = "timpora-proof/v1";

/// A record as its stream stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The stream.
    pub stream: String,
    /// Its sequence.
    pub sequence: u64,
    /// When it was stored, nanoseconds since the epoch.
    pub stored_nanos: u64,
    /// Its subject.
    pub subject: String,
    /// Its headers, `[name, value]`.
    pub headers: Vec<[String; 2]>,
    /// Its payload, standard base64.
    pub payload: String,
}

impl Record {
    fn of(m: &StoredMessage) -> Self {
        Self {
            stream: m.stream.clone(),
            sequence: m.sequence,
            stored_nanos: m.stored_nanos,
            subject: m.subject.clone(),
            headers: m
                .headers
                .iter()
                .map(|(n, v)| [n.clone(), v.clone()])
                .collect(),
            payload: B64.encode(&m.payload),
        }
    }

    fn message(&self) -> Result<StoredMessage, Error> {
        Ok(StoredMessage {
            stream: self.stream.clone(),
            sequence: self.sequence,
            stored_nanos: self.stored_nanos,
            subject: self.subject.clone(),
            headers: self
                .headers
                .iter()
                .map(|[n, v]| (n.clone(), v.clone()))
                .collect(),
            payload: B64
                .decode(&self.payload)
                .map_err(|_| Error::Proof("the record's payload is not base64".into()))?
                .into(),
            pending: 0,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofFile {
    format: String,
    origin: String,
    record: Record,
    leaf_index: u64,
    tree_size: u64,
    inclusion: Vec<String>,
    checkpoint: String,
}

impl ProofFile {
    fn bytes(&self) -> Result<Vec<u8>, Error> {
        let mut b = serde_json::to_vec_pretty(self).map_err(|e| Error::Proof(e.to_string()))?;
        b.push(b'\n');
        Ok(b)
    }
}

/// What a proof file proves.
#[derive(Debug, Clone)]
pub struct Proven {
    /// The log.
    pub origin: String,
    /// The record.
    pub record: Record,
    /// The size of the checkpoint that includes it.
    pub tree_size: u64,
    /// The trusted witnesses that cosigned that checkpoint.
    pub cosigned_by: Vec<String>,
}

/// A proof file for the record at `sequence` of `log`, against its latest checkpoint that
/// meets the policy and covers it.
pub async fn prove(
    bus: &Bus,
    audit: &AuditPolicy,
    log: &str,
    sequence: u64,
) -> Result<Vec<u8>, Error> {
    use futures::StreamExt;
    let policy = audit.policy(log)?;
    let stream = stream_of(bus, log)?;
    let notes = bus.checkpoints(log).await?;
    let (note, verified) = notes
        .iter()
        .rev()
        .find_map(|n| policy.verify(n).ok().map(|v| (n, v)))
        .filter(|(_, v)| v.checkpoint.size() >= sequence)
        .ok_or_else(|| {
            Error::Proof(format!(
                "no checkpoint of {log} that meets the policy covers sequence {sequence} yet"
            ))
        })?;
    let size = verified.checkpoint.size();
    let tree = timpora_sealer::kept_tree(bus, log, size)
        .await?
        .filter(|t| t.root() == *verified.checkpoint.hash())
        .ok_or_else(|| {
            Error::Proof(format!(
                "the kept hashes of {log} do not give its checkpoint's root"
            ))
        })?;
    let bounds = bus.stream_bounds(&stream).await?;
    let gone = || Error::Proof(format!("sequence {sequence} is not in {stream}"));
    if sequence == 0 || sequence > bounds.last {
        return Err(gone());
    }
    let mut stored = None;
    if sequence >= bounds.first {
        let mut messages = bus.read_stored(&stream, sequence).await?;
        stored = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
            .await
            .ok()
            .flatten()
            .transpose()?
            .filter(|m| m.sequence == sequence);
    }
    // What retention removed may still be kept under a legal hold.
    let m = match stored {
        Some(m) => m,
        None if stream == bus.topology().events_stream => {
            bus.held().await?.remove(&sequence).ok_or_else(gone)?
        }
        None => return Err(gone()),
    };
    if timpora_sealer::leaf(&m).hash() != tree.leaf(sequence - 1)? {
        return Err(Error::Proof(format!(
            "sequence {sequence} of {stream} is not the record the log sealed"
        )));
    }
    let inclusion = tree.inclusion(sequence - 1, size)?;
    ProofFile {
        format: PROOF_FORMAT.into(),
        origin: verified.checkpoint.origin().to_owned(),
        record: Record::of(&m),
        leaf_index: sequence - 1,
        tree_size: size,
        inclusion: inclusion.iter().map(|h| B64.encode(h.0)).collect(),
        checkpoint: String::from_utf8_lossy(note).into_owned(),
    }
    .bytes()
}

/// Checks a proof file with no network: it is exactly as `prove` wrote it, its checkpoint meets
/// the policy, and the record's leaf is in that checkpoint's tree at the record's place.
pub fn verify_proof(bytes: &[u8], audit: &AuditPolicy) -> Result<Proven, Error> {
    let file: ProofFile = serde_json::from_slice(bytes)
        .map_err(|e| Error::Proof(format!("not a proof file: {e}")))?;
    if file.format != PROOF_FORMAT {
        return Err(Error::Proof(format!("not a {PROOF_FORMAT} file")));
    }
    if file.bytes()? != bytes {
        return Err(Error::Proof(
            "the file is not exactly as `timpora audit prove` wrote it: a byte was changed".into(),
        ));
    }
    let log = audit.log_of(&file.origin).ok_or_else(|| {
        Error::Proof(format!("the policy has no key for the log {}", file.origin))
    })?;
    let verified = audit.policy(log)?.verify(file.checkpoint.as_bytes())?;
    let cp = &verified.checkpoint;
    if cp.size() != file.tree_size || cp.origin() != file.origin {
        return Err(Error::Proof(
            "the checkpoint is not the one the proof names".into(),
        ));
    }
    if file.leaf_index + 1 != file.record.sequence {
        return Err(Error::Proof(
            "the leaf is not the record's place in the log".into(),
        ));
    }
    let proof = file
        .inclusion
        .iter()
        .map(|h| {
            let raw = B64
                .decode(h)
                .map_err(|_| Error::Proof("a proof hash is not base64".into()))?;
            let h: [u8; 32] = raw
                .try_into()
                .map_err(|_| Error::Proof("a proof hash is not 32 bytes".into()))?;
            Ok(Hash(h))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let leaf = timpora_sealer::leaf(&file.record.message()?).hash();
    timpora_tlog::verify_inclusion(&proof, file.leaf_index, leaf, cp.size(), *cp.hash())?;
    Ok(Proven {
        origin: file.origin,
        tree_size: file.tree_size,
        cosigned_by: verified
            .cosignatures
            .into_iter()
            .map(|c| c.witness)
            .collect(),
        record: file.record,
    })
}
