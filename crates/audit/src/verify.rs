//! Verifying a stream against its log: the latest checkpoint checked against the policy, every
//! earlier one checked as a prefix of it, the kept hashes checked against its root, and every
//! message of the range recomputed into its leaf and compared with the one sealed.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use timpora_bus::{Bus, StoredMessage};
use timpora_tlog::{Hash, Leaf, Tree};

use crate::error::Error;
use crate::policy::AuditPolicy;

/// What did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The log has no checkpoint to check against.
    NoCheckpoint,
    /// A checkpoint does not meet the policy (a signature, or too few cosignatures).
    CheckpointRefused {
        /// Its tree size (0 when it cannot be read).
        size: u64,
        /// Why.
        why: String,
    },
    /// A signed checkpoint that the latest does not extend: the log was rewritten after it.
    NotExtended {
        /// Its tree size.
        size: u64,
    },
    /// The kept hashes (tiles) do not give the checkpoint's root.
    TilesAltered,
    /// The stream does not give the checkpoint's root and the kept hashes cannot say where.
    Unlocated,
    /// The stored message at this sequence is not the one sealed.
    Altered {
        /// The stream sequence.
        sequence: u64,
    },
    /// The message sealed at this sequence is no longer in the stream.
    Removed {
        /// The stream sequence.
        sequence: u64,
    },
    /// A message is in the stream at this sequence where the log sealed a gap.
    Inserted {
        /// The stream sequence.
        sequence: u64,
    },
}

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The log (`events`, `alerts`, `access`).
    pub log: String,
    /// The stream it seals.
    pub stream: String,
    /// Whether a checkpoint that meets the policy was found to check against.
    pub checkpointed: bool,
    /// Size of the checkpoint the range was checked against.
    pub checkpoint_size: u64,
    /// The trusted witnesses that cosigned it.
    pub cosigned_by: Vec<String>,
    /// Signed checkpoints of the log checked.
    pub checkpoints: usize,
    /// The range of sequences checked.
    pub from: u64,
    /// Last sequence checked.
    pub to: u64,
    /// Sequences checked.
    pub checked: u64,
    /// Of them, sequences the log sealed as missing (gap leaves).
    pub gaps: u64,
    /// Sequences before the stream's first, gone by its retention limits and covered by the log.
    pub retention_cut: u64,
    /// Sequences no longer in the stream but kept under a legal hold, their copies checked
    /// against the log.
    pub held: u64,
    /// Messages stored after the checkpoint, not yet covered.
    pub unsealed: u64,
    /// What did not hold; empty when the range is intact.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether the range is intact up to a checkpoint that meets the policy.
    pub fn intact(&self) -> bool {
        self.findings.is_empty() && self.checkpointed
    }
}

/// The stream name of `log`.
pub(crate) fn stream_of(bus: &Bus, log: &str) -> Result<String, Error> {
    bus.topology()
        .sealed_streams()
        .iter()
        .find(|(l, _)| *l == log)
        .map(|(_, s)| (*s).to_owned())
        .ok_or_else(|| {
            Error::Policy(format!(
                "{log} is not a sealed stream (events, alerts, access)"
            ))
        })
}

/// Records in sequence order, from the stream or from a replay.
pub type Records = BoxStream<'static, Result<StoredMessage, Error>>;

fn from_bus(s: BoxStream<'static, Result<StoredMessage, timpora_bus::Error>>) -> Records {
    s.map(|m| m.map_err(Error::from)).boxed()
}

/// Reads a stream's messages in order, up to its end when the reading began.
struct Reader {
    messages: Option<Records>,
    /// The stream's last sequence when the reading began.
    last: u64,
    ended: bool,
}

/// How long a stored message may take to arrive: they are all stored already, so a longer
/// silence means the stream has nothing more to give (a record dropped by the store).
const READ_IDLE: Duration = Duration::from_secs(2);

impl Reader {
    async fn next(&mut self) -> Result<Option<StoredMessage>, Error> {
        let Some(messages) = &mut self.messages else {
            return Ok(None);
        };
        if self.ended {
            return Ok(None);
        }
        match tokio::time::timeout(READ_IDLE, messages.next()).await {
            Ok(Some(m)) => {
                let m = m?;
                self.ended = m.pending == 0 || m.sequence >= self.last;
                Ok(Some(m))
            }
            Ok(None) | Err(_) => {
                self.ended = true;
                Ok(None)
            }
        }
    }
}

/// Verify `log` against the `audit` policy, from sequence `from` to `to` (default: the whole
/// log up to its latest checkpoint). `progress` is told (done, total) as it goes.
pub async fn verify_log(
    bus: &Bus,
    audit: &AuditPolicy,
    log: &str,
    from: u64,
    to: Option<u64>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Report, Error> {
    verify_from(bus, audit, log, from, to, None, progress).await
}

/// [`verify_log`] with the records of a replay (`timpora audit replay` output, in sequence
/// order) instead of the stream: what the replay shows is checked against the log. The
/// checkpoints and the kept hashes still come from the bus.
pub async fn verify_replay(
    bus: &Bus,
    audit: &AuditPolicy,
    log: &str,
    from: u64,
    to: Option<u64>,
    records: Records,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Report, Error> {
    verify_from(bus, audit, log, from, to, Some(records), progress).await
}

async fn verify_from(
    bus: &Bus,
    audit: &AuditPolicy,
    log: &str,
    from: u64,
    to: Option<u64>,
    records: Option<Records>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Report, Error> {
    let replayed = records.is_some();
    let policy = audit.policy(log)?;
    let stream = stream_of(bus, log)?;
    let mut report = Report {
        log: log.to_owned(),
        stream: stream.clone(),
        ..Report::default()
    };
    let notes = bus.checkpoints(log).await?;
    report.checkpoints = notes.len();
    // The anchor: the latest checkpoint, which must meet the policy; else the latest that does.
    let mut anchor = None;
    for (i, note) in notes.iter().enumerate().rev() {
        match policy.verify(note) {
            Ok(v) => {
                anchor = Some(v);
                break;
            }
            Err(e) if i + 1 == notes.len() => {
                let size = policy
                    .with_quorum(0)
                    .verify(note)
                    .map_or(0, |v| v.checkpoint.size());
                report.findings.push(Finding::CheckpointRefused {
                    size,
                    why: e.to_string(),
                });
            }
            Err(_) => {}
        }
    }
    let Some(anchor) = anchor else {
        if notes.is_empty() {
            report.findings.push(Finding::NoCheckpoint);
        }
        return Ok(report);
    };
    let size = anchor.checkpoint.size();
    let root = *anchor.checkpoint.hash();
    report.checkpointed = true;
    report.checkpoint_size = size;
    report.cosigned_by = anchor
        .cosignatures
        .iter()
        .map(|c| c.witness.clone())
        .collect();

    let tree = timpora_sealer::kept_tree(bus, log, size)
        .await?
        .filter(|t| t.root() == root);
    let bounds = bus.stream_bounds(&stream).await?;
    report.unsealed = bounds.last.saturating_sub(size);
    // Every earlier checkpoint the log signed must be a prefix of the anchor.
    let signed = policy.with_quorum(0);
    for note in &notes {
        match signed.verify(note) {
            Ok(v) if v.checkpoint.size() > size => {}
            Ok(v) => {
                if let Some(t) = &tree
                    && t.root_at(v.checkpoint.size()).ok() != Some(*v.checkpoint.hash())
                {
                    report.findings.push(Finding::NotExtended {
                        size: v.checkpoint.size(),
                    });
                }
            }
            Err(e) => report.findings.push(Finding::CheckpointRefused {
                size: 0,
                why: e.to_string(),
            }),
        }
    }
    let from = from.max(1);
    let to = to.unwrap_or(size).min(size);
    report.from = from;
    report.to = to;
    let Some(tree) = tree else {
        report.findings.push(Finding::TilesAltered);
        // Without the kept hashes, only the whole stream against the root can be said.
        if replayed || recompute(bus, &stream, size, &bounds).await? != root {
            report.findings.push(Finding::Unlocated);
        }
        return Ok(report);
    };
    if from > to {
        return Ok(report);
    }

    let start = from.max(bounds.first);
    let mut reader = Reader {
        messages: match start <= to.min(bounds.last) {
            true => Some(match records {
                Some(r) => r,
                None => from_bus(bus.read_stored(&stream, start).await?),
            }),
            false => None,
        },
        last: bounds.last,
        ended: false,
    };
    let mut next = reader.next().await?;
    // Copies of held events, for what the stream no longer has.
    let held = match stream == bus.topology().events_stream {
        true => bus.held().await?,
        false => Default::default(),
    };
    let total = to - from + 1;
    for sequence in from..=to {
        let sealed = tree.leaf(sequence - 1)?;
        let gap = Leaf::gap(&stream, sequence).hash();
        report.checked += 1;
        if report.checked.is_multiple_of(4096) {
            progress(report.checked, total);
        }
        while next.as_ref().is_some_and(|m| m.sequence < sequence) {
            next = reader.next().await?;
        }
        let here = next.as_ref().filter(|m| m.sequence == sequence);
        let finding = match here {
            Some(m) => {
                let h = timpora_sealer::leaf(m).hash();
                let f = if h == sealed {
                    None
                } else if sealed == gap {
                    Some(Finding::Inserted { sequence })
                } else {
                    Some(Finding::Altered { sequence })
                };
                next = reader.next().await?;
                f
            }
            None if sealed == gap => {
                report.gaps += 1;
                None
            }
            None if held.contains_key(&sequence) => {
                let copy = &held[&sequence];
                report.held += 1;
                (timpora_sealer::leaf(copy).hash() != sealed)
                    .then_some(Finding::Altered { sequence })
            }
            None if sequence < bounds.first && bounds.retention => {
                report.retention_cut += 1;
                None
            }
            None => Some(Finding::Removed { sequence }),
        };
        if let Some(f) = finding {
            report.findings.push(f);
            break;
        }
    }
    progress(report.checked, total);
    Ok(report)
}

/// The root of the stream's first `size` sequences recomputed from the messages alone, with
/// gap leaves for the missing ones.
async fn recompute(
    bus: &Bus,
    stream: &str,
    size: u64,
    bounds: &timpora_bus::StreamBounds,
) -> Result<Hash, Error> {
    let mut tree = Tree::new();
    let mut reader = Reader {
        messages: match bounds.last > 0 {
            true => Some(from_bus(bus.read_stored(stream, 1).await?)),
            false => None,
        },
        last: bounds.last,
        ended: false,
    };
    while tree.size() < size {
        let Some(m) = reader.next().await? else { break };
        while tree.size() + 1 < m.sequence.min(size + 1) {
            tree.push(Leaf::gap(stream, tree.size() + 1).hash())?;
        }
        if m.sequence <= size {
            tree.push(timpora_sealer::leaf(&m).hash())?;
        }
    }
    while tree.size() < size {
        tree.push(Leaf::gap(stream, tree.size() + 1).hash())?;
    }
    Ok(tree.root())
}

/// Verify a replay with no network at all: the log's signed checkpoint `note` (as the checkpoints
/// stream, the bucket or a witness hands it over) against the policy, and the root recomputed
/// from the replay's records — every sequence from 1 to the checkpoint's size, gap leaves for
/// those the replay does not hold — against the checkpoint's root. Without the kept hashes a
/// difference cannot be located: it is said as `Unlocated`.
pub async fn verify_offline(
    audit: &AuditPolicy,
    log: &str,
    note: &[u8],
    mut records: Records,
) -> Result<Report, Error> {
    let policy = audit.policy(log)?;
    let mut report = Report {
        log: log.to_owned(),
        checkpoints: 1,
        ..Report::default()
    };
    let v = match policy.verify(note) {
        Ok(v) => v,
        Err(e) => {
            report.findings.push(Finding::CheckpointRefused {
                size: 0,
                why: e.to_string(),
            });
            return Ok(report);
        }
    };
    let size = v.checkpoint.size();
    report.checkpointed = true;
    report.checkpoint_size = size;
    report.cosigned_by = v.cosignatures.iter().map(|c| c.witness.clone()).collect();
    report.from = 1;
    report.to = size;
    let mut tree = Tree::new();
    let mut stream = String::new();
    while tree.size() < size {
        let Some(m) = records.next().await.transpose()? else {
            break;
        };
        if m.sequence <= tree.size() {
            // A sequence again, or out of order: the replay is not the log.
            report.findings.push(Finding::Inserted {
                sequence: m.sequence,
            });
            return Ok(report);
        }
        stream.clone_from(&m.stream);
        while tree.size() + 1 < m.sequence.min(size + 1) {
            tree.push(Leaf::gap(&m.stream, tree.size() + 1).hash())?;
            report.gaps += 1;
        }
        if m.sequence <= size {
            tree.push(timpora_sealer::leaf(&m).hash())?;
        }
    }
    while tree.size() < size {
        tree.push(Leaf::gap(&stream, tree.size() + 1).hash())?;
        report.gaps += 1;
    }
    report.stream = stream;
    report.checked = size;
    if tree.root() != *v.checkpoint.hash() {
        report.findings.push(Finding::Unlocated);
    }
    Ok(report)
}
