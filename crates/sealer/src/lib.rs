//! The sealer: appends every stored message of the events, alerts and access streams, in
//! sequence order, as a leaf of an append-only Merkle tree per stream (one transparency log
//! each, origin `timpora.<deployment>/<log>`), and publishes signed checkpoints — every so many
//! messages or so many seconds, whichever comes first — to the checkpoints stream, with each
//! log's latest in a key-value bucket and the tree's hashes as C2SP tiles in an object store, so
//! that proofs outlive the messages they cover.
//!
//! A sequence missing when it is sealed (deleted, or aged out before the sealer saw it) becomes
//! an explicit gap leaf, never a silent skip: leaf `i` is always sequence `i + 1`.
//!
//! Legal holds: the events the active holds cover are copied, exactly as stored, to the holds
//! stream as they are sealed (and, when a hold is placed, from the start of the stream), so that
//! the events stream's retention cannot take them.
//!
//! Crash safety: tiles are stored before the checkpoint that covers them, and the checkpoint
//! is the position: a restart rebuilds the tree from the tiles, checks that it gives the latest
//! checkpoint's root (refusing to go on if the kept hashes were altered), and seals on from the
//! next sequence.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use timpora_bus::{Bus, LegalHold, StoredMessage};
use timpora_tlog::{Key, Leaf, Policy, Stored, Tree};
use tokio::sync::watch;
use tokio::time::Instant;

/// Errors of the sealer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] timpora_bus::Error),
    /// A checkpoint or key was refused.
    #[error(transparent)]
    Log(#[from] timpora_tlog::Error),
    /// What the bus keeps of a log does not agree with its latest checkpoint.
    #[error("the transparency log {log} cannot be continued: {detail}")]
    Tampered {
        /// The log.
        log: String,
        /// What does not agree.
        detail: String,
    },
}

/// How the sealer runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The deployment's name, in each log's origin (`timpora.<deployment>/events`).
    pub deployment: String,
    /// The sealer's signing key (its name is replaced by each log's origin).
    pub key: Key,
    /// A checkpoint after this many new messages…
    pub every_messages: u64,
    /// …or after this long with any new message, whichever comes first.
    pub every: Duration,
    /// The witnesses asked to cosign each checkpoint: their cosignature verifier keys
    /// (`<name>+<id>+<key>`); a witness that does not answer in time is skipped, loudly.
    pub witnesses: Vec<String>,
    /// Leaves behind the newest checkpoint whose lower hashes stay in memory for a witness that
    /// is behind ([`WITNESS_MEMORY`]); a witness further behind gets its proof from the stored
    /// tiles.
    pub witness_memory: u64,
}

impl Options {
    /// The origin of `log`.
    pub fn origin(&self, log: &str) -> String {
        origin(&self.deployment, log)
    }
}

/// The origin of `log` in `deployment`.
pub fn origin(deployment: &str, log: &str) -> String {
    format!("timpora.{deployment}/{log}")
}

/// The tree of `log` up to `size` leaves as its kept tiles hold it; `None` when a tile is
/// missing or they do not hold that many leaves.
pub async fn kept_tree(
    bus: &Bus,
    log: &str,
    size: u64,
) -> Result<Option<Tree>, timpora_bus::Error> {
    let mut data = Vec::new();
    for path in timpora_tlog::leaf_tiles(size) {
        match bus.get_tile(log, &path).await? {
            Some(tile) => data.extend(tile),
            None => return Ok(None),
        }
    }
    Ok(Tree::from_leaf_tiles(&data)
        .ok()
        .filter(|t| t.size() == size))
}

/// The leaf of a message as its stream stored it.
pub fn leaf(m: &StoredMessage) -> Leaf {
    let headers: Vec<(&str, &str)> = m
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    Leaf::of(&Stored {
        stream: &m.stream,
        sequence: m.sequence,
        stored_nanos: m.stored_nanos,
        subject: &m.subject,
        headers: &headers,
        payload: &m.payload,
    })
}

/// What one log's sealing reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sealed {
    /// Leaves in the tree (the last sequence sealed).
    pub size: u64,
    /// Of them, gap leaves for sequences found missing.
    pub gaps: u64,
    /// Size of the last checkpoint published.
    pub checkpoint: u64,
}

/// Seal the three streams until `shutdown`, publishing a last checkpoint of what was sealed.
/// A log that cannot be sealed stops the others and is the error returned.
pub async fn run(
    bus: Bus,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<Vec<Sealed>, Error> {
    run_reporting(bus, options, None, shutdown).await
}

/// How many leaves each log (by name) has so far, as sealing goes: its consumer position.
pub type Appended = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>;

/// [`run`], keeping `appended` up to date with every message appended.
pub async fn run_reporting(
    bus: Bus,
    options: Options,
    appended: Option<Appended>,
    shutdown: impl Future<Output = ()>,
) -> Result<Vec<Sealed>, Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let streams = bus.topology().sealed_streams();
    let mut tasks: FuturesUnordered<_> = streams
        .iter()
        .enumerate()
        .map(|(i, (log, stream))| {
            let (bus, options, stop) = (bus.clone(), options.clone(), stop_rx.clone());
            let (log, stream) = ((*log).to_owned(), (*stream).to_owned());
            let task = tokio::spawn(seal(
                bus,
                options,
                log.clone(),
                stream,
                appended.clone(),
                stop,
            ));
            async move {
                let r = task.await.unwrap_or_else(|e| {
                    Err(Error::Tampered {
                        log,
                        detail: format!("its sealing task ended: {e}"),
                    })
                });
                (i, r)
            }
        })
        .collect();
    let mut shutdown = pin!(shutdown);
    let mut sealed = vec![Sealed::default(); streams.len()];
    let mut failed = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            next = tasks.next() => match next {
                Some((i, Ok(s))) => sealed[i] = s,
                Some((_, Err(e))) => {
                    tracing::error!(error = %e, "sealing stopped");
                    failed.get_or_insert(e);
                    let _ = stop_tx.send(true);
                }
                None => break,
            },
            () = &mut shutdown, if !stopping => {
                stopping = true;
                let _ = stop_tx.send(true);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(sealed),
    }
}

/// One log being sealed.
struct Log {
    bus: Bus,
    name: String,
    stream: String,
    key: Key,
    tree: Tree,
    sealed: Sealed,
    /// Each witness: its name, a policy that checks its cosignature, and the size it was last
    /// known to have cosigned.
    witnesses: Vec<(String, Policy, u64)>,
    /// Leaves kept in memory for a witness that is behind (`Options::witness_memory`).
    witness_memory: u64,
    /// Whether the log has a checkpoint (an empty log gets one of size 0 at the start, so that
    /// every log always has a signed statement of what it holds).
    published: bool,
}

/// How long a witness has to answer.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Leaves behind the newest checkpoint whose lower hashes the sealer keeps, by default, for a
/// witness that is behind (64 MiB at most).
pub const WITNESS_MEMORY: u64 = 1 << 20;

impl Log {
    /// The log as its latest checkpoint and tiles left it, checked against each other.
    async fn restore(
        bus: Bus,
        options: &Options,
        name: String,
        stream: String,
    ) -> Result<Self, Error> {
        let key = options.key.renamed(&options.origin(&name))?;
        let mut witnesses = Vec::new();
        for w in &options.witnesses {
            let policy = Policy::new(&key.log_verifier(), std::slice::from_ref(w), 1)?;
            let name = w.split('+').next().unwrap_or_default().to_owned();
            witnesses.push((name, policy, 0));
        }
        let mut log = Self {
            bus,
            name,
            stream,
            key,
            tree: Tree::new(),
            sealed: Sealed::default(),
            witnesses,
            witness_memory: options.witness_memory,
            published: false,
        };
        let Some(note) = log.bus.latest_checkpoint(&log.name).await? else {
            return Ok(log);
        };
        let tampered = |detail: String| Error::Tampered {
            log: log.name.clone(),
            detail,
        };
        let own = Policy::new(&log.key.log_verifier(), &[], 0)?;
        let cp = own
            .verify(&note)
            .map_err(|e| tampered(format!("its latest checkpoint: {e}")))?
            .checkpoint;
        log.tree = kept_tree(&log.bus, &log.name, cp.size())
            .await?
            .filter(|t| t.root() == *cp.hash())
            .ok_or_else(|| {
                tampered(format!(
                    "its tiles are missing or do not give the root of its checkpoint at size {}",
                    cp.size()
                ))
            })?;
        log.sealed.size = cp.size();
        log.sealed.checkpoint = cp.size();
        log.published = true;
        tracing::info!(log = %log.name, size = cp.size(), "transparency log restored");
        Ok(log)
    }

    fn push(&mut self, m: &StoredMessage) -> Result<(), Error> {
        while self.tree.size() + 1 < m.sequence {
            let missing = self.tree.size() + 1;
            tracing::warn!(log = %self.name, sequence = missing, "sequence missing when sealed: gap leaf");
            self.tree.push(Leaf::gap(&self.stream, missing).hash())?;
            self.sealed.gaps += 1;
        }
        if m.sequence != self.tree.size() + 1 {
            // Already sealed (a redelivery after a reconnect).
            return Ok(());
        }
        let leaf = leaf(m);
        self.tree.push(leaf.hash())?;
        self.sealed.size = self.tree.size();
        Ok(())
    }

    /// Store the new tiles, then sign and publish a checkpoint of the whole tree.
    async fn checkpoint(&mut self) -> Result<(), Error> {
        let size = self.tree.size();
        if size == self.sealed.checkpoint && self.published {
            return Ok(());
        }
        for (path, data) in self.tree.tiles(self.sealed.checkpoint, size)? {
            self.bus.put_tile(&self.name, &path, &data).await?;
        }
        let cp = timpora_tlog::checkpoint(self.key.name(), size, self.tree.root())?;
        let note = timpora_tlog::sign(&cp, &self.key)?;
        let note = self.witnessed(note).await;
        self.bus.publish_checkpoint(&self.name, &note).await?;
        self.sealed.checkpoint = size;
        self.published = true;
        // The lower hashes of the tiles just stored are on the bus now; those a witness that
        // is behind still needs for its proof stay, up to `witness_memory` leaves.
        let behind = self
            .witnesses
            .iter()
            .map(|(_, _, known)| *known)
            .min()
            .unwrap_or(size);
        self.tree.forget(
            behind
                .max(size.saturating_sub(self.witness_memory))
                .min(size),
        );
        tracing::info!(log = %self.name, size, gaps = self.sealed.gaps, "checkpoint published");
        Ok(())
    }

    /// The note with the cosignatures of every witness that gave one.
    async fn witnessed(&mut self, note: Vec<u8>) -> Vec<u8> {
        let size = self.tree.size();
        let mut cosigned = note.clone();
        // The whole tree, read back from the stored tiles, if a witness's proof needs hashes
        // this one forgot (read once per checkpoint).
        let mut whole: Option<Tree> = None;
        for (name, policy, known) in &mut self.witnesses {
            // Whether the witness said its size this round (409).
            let mut answered = false;
            // At most twice: a witness that has another size says which (409).
            for _ in 0..2 {
                let old = (*known).min(size);
                let (old, proof) = match self.tree.consistency(old, size) {
                    Ok(proof) => (old, proof),
                    // Forgotten here: first a request from the new size, which needs no proof
                    // and which a witness elsewhere answers with its size, so that the tiles
                    // are read back only for a witness that answers, not at every checkpoint
                    // while one is away.
                    Err(_) if !answered => (size, Vec::new()),
                    Err(_) => {
                        if whole.is_none() {
                            whole = kept_tree(&self.bus, &self.name, size).await.ok().flatten();
                        }
                        match whole.as_ref().and_then(|t| t.consistency(old, size).ok()) {
                            Some(proof) => (old, proof),
                            None => {
                                tracing::warn!(log = %self.name, witness = %name, old, "no consistency proof for the witness");
                                break;
                            }
                        }
                    }
                };
                let request = timpora_witness::Request {
                    old,
                    proof,
                    note: note.clone(),
                };
                let client = self.bus.client();
                let answer = tokio::time::timeout(
                    WITNESS_TIMEOUT,
                    timpora_witness::ask(client, name, &request),
                )
                .await;
                match answer {
                    Ok(Ok(timpora_witness::Answer::Cosigned(line))) => {
                        let with = [note.as_slice(), line.as_bytes()].concat();
                        if policy.verify(&with).is_ok() {
                            cosigned.extend_from_slice(line.as_bytes());
                            *known = size;
                        } else {
                            tracing::warn!(log = %self.name, witness = %name, "witness answered with a cosignature that does not verify");
                        }
                        break;
                    }
                    Ok(Ok(timpora_witness::Answer::Refused(409, has))) => {
                        match has.parse::<u64>() {
                            Ok(has) if has <= size && has != old => {
                                *known = has;
                                answered = true;
                            }
                            _ => {
                                tracing::error!(log = %self.name, witness = %name, has = %has, "witness holds a size this log cannot prove from");
                                break;
                            }
                        }
                    }
                    Ok(Ok(timpora_witness::Answer::Refused(status, why))) => {
                        tracing::error!(log = %self.name, witness = %name, status, why = %why, "witness refused the checkpoint");
                        break;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(log = %self.name, witness = %name, error = %e, "witness not reached");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(log = %self.name, witness = %name, "witness did not answer in time");
                        break;
                    }
                }
            }
        }
        cosigned
    }
}

/// While traces are exported: a span, in the message's own trace, saying that it is sealed
/// (its leaf index is its sequence).
fn traced(log: &str, m: &StoredMessage) {
    if !timpora_telemetry::traces::exporting() {
        return;
    }
    let Some((_, tp)) = m
        .headers
        .iter()
        .find(|(n, _)| n == timpora_bus::HEADER_TRACEPARENT)
    else {
        return;
    };
    if !timpora_telemetry::traces::sampled(tp) {
        return;
    }
    let span = tracing::info_span!("sealer.append", "tlog.log" = %log, "tlog.index" = m.sequence);
    timpora_telemetry::traces::continue_trace(&span, tp);
}

/// Whether the event in `m` mentions what one of `holds` holds.
fn held(m: &StoredMessage, holds: &[LegalHold]) -> bool {
    use prost::Message as _;
    use timpora_proto::v1::{Event, event::Payload};
    let Ok(ev) = Event::decode(m.payload.clone()) else {
        return false;
    };
    let case = match &ev.payload {
        Some(Payload::CaseStatusChanged(c)) => c.case_id.as_str(),
        _ => "",
    };
    holds.iter().any(|h| {
        ev.entities.iter().any(|e| e.id == h.token)
            || ev.subject.as_ref().is_some_and(|s| s.id == h.token)
            || (!case.is_empty() && case == h.token)
    })
}

/// Copy every event up to `until` that `hold` covers (a hold placed on events already stored).
async fn backfill(bus: Bus, stream: String, hold: LegalHold, until: u64) -> Result<u64, Error> {
    let mut copied = 0;
    if until == 0 {
        return Ok(0);
    }
    let mut messages = bus.read_stored(&stream, 1).await?;
    let holds = [hold];
    while let Some(m) = messages.next().await {
        let m = m?;
        if held(&m, &holds) && bus.hold_copy(&m).await? {
            copied += 1;
        }
        if m.sequence >= until || m.pending == 0 {
            break;
        }
    }
    Ok(copied)
}

async fn seal(
    bus: Bus,
    options: Options,
    name: String,
    stream: String,
    appended: Option<Appended>,
    mut stop: watch::Receiver<bool>,
) -> Result<Sealed, Error> {
    let mut log = Log::restore(bus.clone(), &options, name, stream).await?;
    // A new log starts with a signed checkpoint of the empty tree.
    log.checkpoint().await?;
    // The events log keeps what legal holds cover: watched first, so no hold falls between.
    let keeps = log.stream == bus.topology().events_stream;
    let mut hold_changes = match keeps {
        true => Some(bus.watch_holds().await?),
        false => None,
    };
    let mut holds: Vec<LegalHold> = match keeps {
        true => bus
            .holds()
            .await?
            .into_iter()
            .filter(LegalHold::active)
            .collect(),
        false => Vec::new(),
    };
    let mut messages = bus.read_stored(&log.stream, log.tree.size() + 1).await?;
    let mut due = Instant::now() + options.every;
    loop {
        tokio::select! {
            m = messages.next() => match m {
                Some(m) => {
                    let m = m?;
                    log.push(&m)?;
                    traced(&log.name, &m);
                    if let Some(a) = &appended {
                        let mut a = a.lock().unwrap_or_else(|e| e.into_inner());
                        match a.get_mut(&log.name) {
                            Some(size) => *size = log.tree.size(),
                            None => {
                                a.insert(log.name.clone(), log.tree.size());
                            }
                        }
                    }
                    if !holds.is_empty() && held(&m, &holds) {
                        bus.hold_copy(&m).await?;
                    }
                    if log.tree.size() - log.sealed.checkpoint >= options.every_messages {
                        log.checkpoint().await?;
                        due = Instant::now() + options.every;
                    }
                }
                None => break,
            },
            Some(h) = async {
                match hold_changes.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            } => {
                holds.retain(|x| x.id != h.id);
                if h.active() {
                    tracing::info!(hold = %h.id, "legal hold placed: keeping what it covers");
                    let (bus, stream, until) = (bus.clone(), log.stream.clone(), log.tree.size());
                    holds.push(h.clone());
                    tokio::spawn(async move {
                        match backfill(bus, stream, h.clone(), until).await {
                            Ok(n) => tracing::info!(hold = %h.id, copied = n, "held events kept"),
                            Err(e) => tracing::error!(hold = %h.id, error = %e, "held events not all kept"),
                        }
                    });
                } else {
                    tracing::info!(hold = %h.id, "legal hold released");
                }
            }
            () = tokio::time::sleep_until(due) => {
                log.checkpoint().await?;
                due = Instant::now() + options.every;
            }
            _ = stop.changed() => break,
        }
    }
    log.checkpoint().await?;
    Ok(log.sealed)
}
