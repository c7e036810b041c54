//! One correlator engine on the stream: reading it in order from its checkpoint, storing each
//! alert once, checkpointing, switching rule sets; and the clock ticks it records.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use timpora_bus::{AlertOutcome, Bus, CorrelatorStatus, Delivered, Start};
use timpora_correlate::Stats;
use timpora_correlate::{Alert, Engine, Partition, Snapshot};
use timpora_proto::v1;
use timpora_rules::{DEFAULT_RULES, RuleSet, Severity};
use timpora_telemetry::traces;

/// Name of the correlator's checkpoint in the checkpoint store.
pub const CHECKPOINT_NAME: &str = "correlator";
/// Leading bytes of a checkpoint: layout tag, then the stream position (big-endian u64).
const CHECKPOINT_TAG: &[u8; 4] = b"TPC1";

/// The acknowledgement of an alert sent, awaited in a task of its own.
type Acked = tokio::task::JoinHandle<Result<AlertOutcome, timpora_bus::Error>>;

/// Alerts sent and not yet acknowledged, at most.
const MAX_ALERTS_IN_FLIGHT: usize = 1024;
/// Events taken in one go when they are ready.
const BATCH: usize = 256;

fn log_outcome(alert: &v1::Alert, outcome: AlertOutcome) {
    match outcome {
        AlertOutcome::Stored(seq) if !alert.corrects.is_empty() => tracing::info!(
            correction = %alert.id, alert = %alert.corrects, rule = %alert.rule_id, sequence = seq,
            withdrawn = alert.withdrawn, "alert corrected by a late report"
        ),
        AlertOutcome::Stored(seq) => tracing::info!(
            alert = %alert.id, rule = %alert.rule_id, sequence = seq,
            evidence = alert.evidence.len(), "alert raised"
        ),
        AlertOutcome::Duplicate => tracing::debug!(alert = %alert.id, "alert already stored"),
    }
}

/// Errors of the correlation service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] timpora_bus::Error),
    /// The rule set given at start is invalid.
    #[error("rule set invalid: {0}")]
    Rules(#[from] timpora_rules::Errors),
    /// The engine's state could not be written.
    #[error(transparent)]
    Engine(#[from] timpora_correlate::Error),
    /// The checkpoint thread failed.
    #[error("checkpoint thread: {0}")]
    Thread(String),
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How far out of event-time order events may arrive and still be handled exactly.
    pub lateness: Duration,
    /// How often a clock tick is recorded into the stream.
    pub tick_every: Duration,
    /// How often (wall clock) the state and position are checkpointed.
    pub checkpoint_every: Duration,
    /// Most entries of state held (see [`Engine::with_cap`]).
    pub state_cap: usize,
    /// Receives the last stream sequence processed (its alerts sent), after every batch.
    pub progress: Option<tokio::sync::watch::Sender<u64>>,
    /// Receives each status report (at start, at each checkpoint and rule-set switch).
    pub status: Option<tokio::sync::watch::Sender<CorrelatorStatus>>,
    /// Where a correlator sharing the work reports each part it holds, as `progress` and
    /// `status` report the whole work of one that does not.
    pub parts: Option<PartReports>,
    /// Into how many parts the group keys are cut, for correlators that share the work (see
    /// the `sharing` module); 1: this correlator decides every group alone.
    pub partitions: u32,
    /// How long a correlator's hold on a part lasts unless renewed: after a crash, another
    /// takes the part over within about this long.
    pub lease: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lateness: Duration::from_secs(5),
            tick_every: Duration::from_secs(1),
            checkpoint_every: Duration::from_secs(10),
            state_cap: 5_000_000,
            progress: None,
            status: None,
            parts: None,
            partitions: 1,
            lease: Duration::from_secs(5),
        }
    }
}

/// The parts a correlator sharing the work holds now, each with its status reports and its
/// progress; a part leaves when it is handed over. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct PartReports(Arc<std::sync::Mutex<BTreeMap<String, PartReport>>>);

/// One held part's reports.
#[derive(Debug)]
struct PartReport {
    status: tokio::sync::watch::Sender<CorrelatorStatus>,
    progress: tokio::sync::watch::Sender<u64>,
}

impl PartReports {
    /// Where part `part` (`0-of-4`) reports while this correlator holds it.
    pub(crate) fn open(
        &self,
        part: &str,
    ) -> (
        tokio::sync::watch::Sender<CorrelatorStatus>,
        tokio::sync::watch::Sender<u64>,
    ) {
        let report = PartReport {
            status: tokio::sync::watch::channel(CorrelatorStatus::default()).0,
            progress: tokio::sync::watch::channel(0).0,
        };
        let senders = (report.status.clone(), report.progress.clone());
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(part.to_owned(), report);
        senders
    }

    /// Part `part` is no longer held here.
    pub(crate) fn close(&self, part: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(part);
    }

    /// Each part held, in order: its name, its last status report and its progress (the last
    /// stream sequence processed).
    pub fn held(&self) -> Vec<(String, CorrelatorStatus, u64)> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, r)| (p.clone(), r.status.borrow().clone(), *r.progress.borrow()))
            .collect()
    }
}

/// The contract's form of an engine alert.
pub fn to_proto(a: &Alert) -> v1::Alert {
    v1::Alert {
        id: a.id.clone(),
        rule_id: a.rule_id.clone(),
        rule_version: a.rule_version.clone(),
        severity: match a.severity {
            Severity::Low => v1::Severity::Low,
            Severity::Medium => v1::Severity::Medium,
            Severity::High => v1::Severity::High,
            Severity::Critical => v1::Severity::Critical,
        } as i32,
        group_key: a.group_key.clone(),
        summary: a.summary.clone(),
        evidence: a.evidence.clone(),
        time: Some(a.time.into()),
        region: a.region.clone(),
        evidence_sequences: a.evidence_sequences.clone(),
        evidence_classifications: a.evidence_classifications.clone(),
        classification: a.classification(),
        extends: a.extends.clone().unwrap_or_default(),
        late: a.late,
        corrects: a
            .correction
            .as_ref()
            .map(|c| c.of.clone())
            .unwrap_or_default(),
        withdrawn: a.correction.as_ref().is_some_and(|c| c.withdrawn),
    }
}

/// Checkpoint bytes: tag, position (the last stream sequence the state covers), engine state.
pub fn encode_checkpoint(position: u64, snapshot: &Snapshot) -> Result<Vec<u8>, Error> {
    write_checkpoint(Vec::new(), position, snapshot)
}

/// A checkpoint's bytes, in pieces, as the encoder produces them.
type Chunks = tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>;
type EncodeJob = (
    u64,
    Snapshot,
    tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    tokio::sync::oneshot::Sender<usize>,
);

/// Size of the pieces a checkpoint is handed over in (the object store's chunk size).
const CHUNK: usize = 128 * 1024;

/// Hands encoded bytes over in [`CHUNK`]s, waiting while the upload is behind.
struct ChunkWriter {
    buf: Vec<u8>,
    out: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.out
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("checkpoint upload stopped"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

/// Tag, position, state into `w`: the layout [`decode_checkpoint`] reads.
fn write_checkpoint<W: std::io::Write>(
    mut w: W,
    position: u64,
    snapshot: &Snapshot,
) -> Result<W, Error> {
    let io = |e: std::io::Error| Error::Thread(e.to_string());
    w.write_all(CHECKPOINT_TAG).map_err(io)?;
    w.write_all(&position.to_be_bytes()).map_err(io)?;
    let mut w = snapshot.encode_to(w)?;
    w.flush().map_err(io)?;
    Ok(w)
}

/// One long-lived thread that encodes checkpoints beside the engine, streaming them out in
/// chunks: no copy of the whole checkpoint is ever held, and the same thread (and so the same
/// allocator heap) serves every checkpoint.
#[derive(Clone)]
struct Encoder(std::sync::mpsc::Sender<EncodeJob>);

impl Encoder {
    fn start() -> Result<Self, Error> {
        let (tx, rx) = std::sync::mpsc::channel::<EncodeJob>();
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while let Ok((position, snapshot, out, reply)) = rx.recv() {
                    let w = ChunkWriter {
                        buf: Vec::with_capacity(CHUNK),
                        out: out.clone(),
                    };
                    match write_checkpoint(w, position, &snapshot) {
                        // Dropping the sender ends the upload's input: the checkpoint is whole.
                        Ok(_) => {
                            let _ = reply.send(snapshot.entities());
                        }
                        // An error as the last piece makes the upload fail: the previous
                        // checkpoint stays.
                        Err(e) => {
                            let _ = out.blocking_send(Err(std::io::Error::other(e.to_string())));
                        }
                    }
                }
            })
            .map_err(|e| Error::Thread(e.to_string()))?;
        Ok(Self(tx))
    }

    /// Start encoding `snapshot`: its chunks, and the distinct entities in it once done.
    fn encode(
        &self,
        position: u64,
        snapshot: Snapshot,
    ) -> Result<(Chunks, tokio::sync::oneshot::Receiver<usize>), Error> {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let (reply, entities) = tokio::sync::oneshot::channel();
        self.0
            .send((position, snapshot, tx, reply))
            .map_err(|_| Error::Thread("checkpoint thread is gone".into()))?;
        Ok((rx, entities))
    }
}

/// The position and engine state of checkpoint bytes, if they have the expected layout.
fn decode_checkpoint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let rest = bytes.strip_prefix(CHECKPOINT_TAG)?;
    let (pos, state) = rest.split_at_checked(8)?;
    Some((u64::from_be_bytes(pos.try_into().ok()?), state))
}

/// The running service: engine, position and what it reports.
struct Service {
    bus: Bus,
    /// A connection of its own for checkpoints (tens of megabytes).
    bulk: Bus,
    encoder: Encoder,
    options: Options,
    engine: Engine,
    /// Last stream sequence processed.
    position: u64,
    /// Stream sequence after which the current rule set decides.
    since: u64,
    /// Last position covered by a stored checkpoint; `None` when one must be written.
    checkpointed: Option<u64>,
    /// When this process last wrote a checkpoint.
    checkpointed_at: Option<SystemTime>,
    /// Alerts sent, oldest first, each with the task awaiting its acknowledgement (so it can be
    /// logged as stored as soon as it is, not only at the next checkpoint).
    inflight: VecDeque<(v1::Alert, Acked)>,
    /// The checkpoint being written in the background: the position it covers.
    upload: Option<tokio::task::JoinHandle<Result<(u64, usize), String>>>,
    /// Distinct entities in state at the last checkpoint (counted beside the engine).
    entities: usize,
    /// The part of the group keys it decides.
    partition: Partition,
    /// Who runs it, as the correlators bucket knows it (empty when alone).
    member: String,
}

impl Service {
    fn fresh_engine(&self, set: RuleSet) -> Engine {
        Engine::new(set, self.options.lateness)
            .with_cap(self.options.state_cap)
            .with_partition(self.partition)
    }

    /// Its checkpoint's name: one per part.
    fn checkpoint_name(&self) -> String {
        checkpoint_name(self.partition)
    }

    /// What it last reported.
    async fn last_status(&self) -> Result<Option<CorrelatorStatus>, timpora_bus::Error> {
        if self.partition == Partition::WHOLE {
            return self.bus.correlator_status().await;
        }
        let key = status_key(self.partition);
        Ok(self
            .bus
            .shared_entries(&key)
            .await?
            .into_iter()
            .find(|e| e.key == key)
            .and_then(|e| CorrelatorStatus::from_json(&e.value)))
    }

    /// Feed `engine` the stream up to `until` with its alerts held back.
    async fn warm(&self, engine: &mut Engine, until: u64) -> Result<(), Error> {
        if until == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let mut events = self
            .bus
            .replay(self.bus.topology().filter_subject(&[]), Start::All)
            .await?;
        let mut fed = 0u64;
        while let Some(item) = events.next().await {
            let d = match item {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream interrupted during warm-up");
                    continue;
                }
            };
            if d.sequence > until {
                break;
            }
            engine.observe_at(&d.event, d.sequence);
            fed += 1;
            if d.sequence == until {
                break;
            }
        }
        // Its alerts were held back, so none of them may grow: what it finds next is new.
        engine.forget_open();
        tracing::info!(
            rule_set = %engine.version(), until, events = fed,
            elapsed_ms = started.elapsed().as_millis() as u64, "rule set warmed up"
        );
        Ok(())
    }

    /// Store an alert now; waits for NATS rather than drop it. A failure that is not passing
    /// (the alerts stream is missing, JetStream refuses) is said loudly and tried less often:
    /// the alert is still never skipped, and a stop request ends the wait (the hub's drain
    /// deadline), its events being decided again from the last checkpoint.
    async fn store(&self, alert: &v1::Alert) {
        loop {
            match self.bus.publish_alert(alert).await {
                Ok(outcome) => return log_outcome(alert, outcome),
                Err(e) if e.is_transient() => {
                    tracing::warn!(alert = %alert.id, error = %e, "cannot store alert; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    tracing::error!(alert = %alert.id, error = %e, "alert refused by the bus; retrying until it is fixed");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Send an alert without waiting for its acknowledgement (see [`Service::settle`]); its
    /// headers name `span` (the alert's own, when traced).
    async fn send(&mut self, alert: &Alert, span: &tracing::Span) {
        let alert = to_proto(alert);
        let tp = traces::traceparent(span).unwrap_or_default();
        match self.bus.send_alert(&alert, &tp).await {
            Ok(pending) => self
                .inflight
                .push_back((alert, tokio::spawn(pending.outcome()))),
            Err(e) => {
                tracing::warn!(alert = %alert.id, error = %e, "cannot send alert; retrying");
                self.store(&alert).await;
            }
        }
        while self.inflight.len() > MAX_ALERTS_IN_FLIGHT {
            self.settle_one().await;
        }
    }

    async fn settle_one(&mut self) {
        if let Some((alert, acked)) = self.inflight.pop_front() {
            let outcome = match acked.await {
                Ok(outcome) => outcome.map_err(|e| e.to_string()),
                Err(e) => Err(format!("acknowledgement task: {e}")),
            };
            match outcome {
                Ok(outcome) => log_outcome(&alert, outcome),
                Err(e) => {
                    tracing::warn!(alert = %alert.id, error = %e, "alert not acknowledged; retrying");
                    self.store(&alert).await;
                }
            }
        }
    }

    /// Settle, in order, the alerts whose acknowledgement has already come.
    async fn settle_ready(&mut self) {
        while self.inflight.front().is_some_and(|(_, a)| a.is_finished()) {
            self.settle_one().await;
        }
    }

    /// Wait until every alert sent is stored (before a checkpoint covers its events).
    async fn settle(&mut self) {
        while !self.inflight.is_empty() {
            self.settle_one().await;
        }
    }

    /// Feed one delivered event; its alerts are sent.
    async fn handle(&mut self, item: Result<Delivered, timpora_bus::Error>) {
        let delivered = match item {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "event stream interrupted");
                return;
            }
        };
        // A span per event only while traces are exported and the event's trace is kept.
        let tp = &delivered.event.traceparent;
        let traced = traces::exporting() && traces::sampled(tp);
        let evaluating = match traced {
            true => tracing::info_span!(
                "correlator.evaluate",
                otel.kind = "consumer",
                "event.type" = %delivered.event.r#type,
                sequence = delivered.sequence,
                alerts = tracing::field::Empty,
            ),
            false => tracing::Span::none(),
        };
        if traced {
            traces::continue_trace(&evaluating, tp);
        }
        let alerts =
            evaluating.in_scope(|| self.engine.observe_at(&delivered.event, delivered.sequence));
        evaluating.record("alerts", alerts.len());
        for alert in alerts {
            if !traced {
                self.send(&alert, &tracing::Span::none()).await;
                continue;
            }
            let raising = tracing::info_span!(
                parent: &evaluating,
                "correlator.alert",
                "alert.id" = %alert.id,
                "alert.rule" = %alert.rule_id,
                "alert.severity" = ?alert.severity,
                "alert.evidence" = alert.evidence.len(),
            );
            self.send(&alert, &raising).await;
            // A link to each event of the evidence: this one's now, the others' once read.
            traces::link(&raising, tp);
            let others: Vec<u64> = alert
                .evidence_sequences
                .iter()
                .copied()
                .filter(|s| *s != delivered.sequence)
                .collect();
            let bus = self.bus.clone();
            tokio::spawn(async move {
                if let Ok(events) = bus.events_at(&others).await {
                    for event in events.into_iter().flatten() {
                        traces::link(&raising, &event.traceparent);
                    }
                }
                drop(raising);
            });
        }
        self.position = delivered.sequence;
    }

    /// Start a checkpoint of the state and position in the background, unless the last one is
    /// still being written. Every alert up to the position is stored first. The engine only
    /// pauses for a copy of its state (shared, copy-on-write), not for encoding or upload.
    async fn checkpoint(&mut self) {
        self.settle().await;
        if self.upload.as_ref().is_some_and(|u| !u.is_finished()) {
            return;
        }
        self.harvest().await;
        if self.checkpointed == Some(self.position) {
            return;
        }
        let t = Instant::now();
        let snapshot = self.engine.snapshot();
        tracing::debug!(
            elapsed_us = t.elapsed().as_micros() as u64,
            "state copied for a checkpoint"
        );
        let (position, bus, encoder) = (self.position, self.bulk.clone(), self.encoder.clone());
        let name = self.checkpoint_name();
        self.upload = Some(tokio::spawn(async move {
            let started = Instant::now();
            let (chunks, entities) = encoder
                .encode(position, snapshot)
                .map_err(|e| e.to_string())?;
            let mut reader = tokio_util::io::StreamReader::new(
                tokio_stream::wrappers::ReceiverStream::new(chunks),
            );
            bus.save_checkpoint_from(&name, &mut reader)
                .await
                .map_err(|e| e.to_string())?;
            let entities = entities.await.map_err(|e| e.to_string())?;
            tracing::debug!(
                position,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "checkpoint written"
            );
            Ok((position, entities))
        }));
    }

    /// Take note of a finished background checkpoint.
    async fn harvest(&mut self) {
        let Some(upload) = self.upload.take() else {
            return;
        };
        match upload.await {
            Ok(Ok((position, entities))) => {
                self.checkpointed = Some(position);
                self.checkpointed_at = Some(SystemTime::now());
                self.entities = entities;
                self.report().await;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint not written; will retry"),
            Err(e) => tracing::warn!(error = %e, "checkpoint task failed; will retry"),
        }
    }

    /// Checkpoint now and wait until it is written (at a switch and at shutdown).
    async fn checkpoint_now(&mut self) {
        self.settle().await;
        self.harvest().await;
        self.checkpoint().await;
        self.harvest().await;
    }

    async fn report(&self) {
        let stats = self.engine.stats();
        let status = CorrelatorStatus {
            version: self.engine.version().to_owned(),
            digest: self.engine.digest().to_owned(),
            since_sequence: self.since,
            checkpoint_sequence: self.checkpointed.unwrap_or_default(),
            position: self.position,
            events: stats.events,
            late_events: stats.late_events,
            alerts: stats.alerts,
            tracked: self.engine.tracked() as u64,
            entities: self.entities as u64,
            state_cap: self.engine.cap() as u64,
            shed_groups: stats.shed_groups,
            reported_at: prost_types::Timestamp::from(SystemTime::now()).to_string(),
            part: match self.partition {
                Partition::WHOLE => String::new(),
                p => p.to_string(),
            },
            member: self.member.clone(),
            checkpoint_at: self
                .checkpointed_at
                .map(|t| prost_types::Timestamp::from(t).to_string())
                .unwrap_or_default(),
        };
        if let Some(tx) = &self.options.status {
            tx.send_replace(status.clone());
        }
        let reported = match self.partition {
            Partition::WHOLE => self.bus.put_correlator_status(&status).await,
            p => match status.to_json() {
                Ok(json) => self.bus.shared_put(&status_key(p), json).await.map(|_| ()),
                Err(e) => {
                    tracing::debug!(error = %e, "status not encoded");
                    return;
                }
            },
        };
        if let Err(e) = reported {
            tracing::debug!(error = %e, "status not reported");
        }
    }

    /// Switch to the rule file `text` if it is valid and differs; the old set keeps running
    /// otherwise.
    async fn switch(&mut self, text: &str) {
        let set = match timpora_rules::parse(text) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "applied rule set is invalid; keeping the running one");
                return;
            }
        };
        if set.digest == self.engine.digest() {
            tracing::debug!(rule_set = %set.version, "rule set unchanged");
            return;
        }
        // A checkpoint of the old set still being written must land before the new set's.
        self.harvest().await;
        let mut engine = self.fresh_engine(set);
        if let Err(e) = self.warm(&mut engine, self.position).await {
            tracing::error!(error = %e, "cannot warm up the new rule set; keeping the running one");
            return;
        }
        tracing::info!(
            from = %self.engine.version(), to = %engine.version(), since = self.position,
            "rule set switched"
        );
        self.engine = engine;
        self.since = self.position;
        self.checkpointed = None;
        self.checkpoint_now().await;
    }

    async fn live(
        &self,
    ) -> Result<BoxStream<'static, Result<Delivered, timpora_bus::Error>>, Error> {
        Ok(self
            .bus
            .replay(
                self.bus.topology().filter_subject(&[]),
                Start::Sequence(self.position + 1),
            )
            .await?)
    }
}

/// The rule set to start with: `initial` (a rule file's text) when given, made the active set;
/// else the active set in the rules bucket; else the default set, made active.
async fn starting_rules(bus: &Bus, initial: Option<&str>) -> Result<RuleSet, Error> {
    if let Some(text) = initial {
        let set = timpora_rules::parse(text)?;
        if bus.active_rules().await?.as_deref() != Some(text) {
            bus.put_rules(text).await?;
        }
        return Ok(set);
    }
    if let Some(text) = bus.active_rules().await? {
        match timpora_rules::parse(&text) {
            Ok(set) => return Ok(set),
            Err(e) => tracing::error!(error = %e, "active rule set is invalid; using the default"),
        }
    }
    bus.put_rules(DEFAULT_RULES).await?;
    Ok(timpora_rules::parse(DEFAULT_RULES)?)
}

/// The name of the checkpoint of `partition`'s engine.
pub fn checkpoint_name(partition: Partition) -> String {
    match partition {
        Partition::WHOLE => CHECKPOINT_NAME.to_owned(),
        p => format!("{CHECKPOINT_NAME}-{p}"),
    }
}

/// The correlators bucket's key of `partition`'s status.
pub fn status_key(partition: Partition) -> String {
    format!("status.{partition}")
}

/// Decide `partition`'s groups until `shutdown` completes, as `member`.
pub(crate) async fn run_part(
    bus: Bus,
    initial: Option<&str>,
    options: Options,
    partition: Partition,
    member: String,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats, Error> {
    let mut reloads = pin!(bus.watch_rules().await?);
    let set = starting_rules(&bus, initial).await?;
    let mut svc = Service {
        engine: Engine::new(set.clone(), options.lateness)
            .with_cap(options.state_cap)
            .with_partition(partition),
        bus: bus.clone(),
        bulk: bus
            .second_connection("timpora-correlator-checkpoints")
            .await?,
        encoder: Encoder::start()?,
        options: options.clone(),
        position: 0,
        since: 0,
        checkpointed: Some(0),
        checkpointed_at: None,
        inflight: VecDeque::new(),
        upload: None,
        entities: 0,
        partition,
        member,
    };
    match bus.load_checkpoint(&svc.checkpoint_name()).await? {
        None => tracing::info!("no checkpoint; reading the stream from the start"),
        Some(bytes) => match decode_checkpoint(&bytes) {
            None => tracing::warn!("checkpoint unreadable; reading the stream from the start"),
            Some((position, _)) if position > bus.events_last_sequence().await? => {
                tracing::warn!(
                    position,
                    "checkpoint is ahead of the events stream (stream recreated?); reading from the start"
                );
            }
            Some((position, state)) => {
                svc.position = position;
                svc.checkpointed = Some(position);
                match Engine::restore(set.clone(), options.lateness, state) {
                    Ok(engine) => {
                        svc.engine = engine.with_cap(options.state_cap).with_partition(partition);
                        // The set that wrote the checkpoint: keep reporting its start.
                        svc.since = svc
                            .last_status()
                            .await?
                            .filter(|s| s.digest == set.digest)
                            .map_or(0, |s| s.since_sequence);
                        tracing::info!(position, "resuming from checkpoint");
                    }
                    Err(e) => {
                        tracing::info!(reason = %e, position, "rule set changed since the checkpoint; warming up");
                        let mut engine = svc.fresh_engine(set.clone());
                        svc.warm(&mut engine, position).await?;
                        svc.engine = engine;
                        svc.since = position;
                        svc.checkpointed = None;
                    }
                }
            }
        },
    }
    svc.report().await;
    let mut events = svc.live().await?;
    tracing::info!(
        rule_set = %svc.engine.version(), position = svc.position, part = %partition,
        "correlator started"
    );
    let mut shutdown = pin!(shutdown);
    let mut checkpoints = tokio::time::interval(options.checkpoint_every);
    checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            // The live stream goes on where it was: a switch warms the new set on a stream
            // of its own.
            Some(text) = reloads.next() => svc.switch(&text).await,
            _ = checkpoints.tick() => svc.checkpoint().await,
            // An alert is said to be raised once it is stored.
            () = tokio::time::sleep(Duration::from_millis(20)), if !svc.inflight.is_empty() => {
                svc.settle_ready().await
            }
            item = events.next() => {
                let Some(item) = item else { break };
                svc.handle(item).await;
                // Take what else is ready without going round the select for each event.
                for _ in 0..BATCH {
                    match events.next().now_or_never() {
                        Some(Some(item)) => svc.handle(item).await,
                        _ => break,
                    }
                }
                if let Some(p) = &svc.options.progress {
                    p.send_replace(svc.position);
                }
                if svc.upload.as_ref().is_some_and(|u| u.is_finished()) {
                    svc.harvest().await;
                }
            }
        }
    }
    svc.checkpoint_now().await;
    let stats = svc.engine.stats();
    tracing::info!(
        part = %partition,
        events = stats.events,
        late = stats.late_events,
        alerts = stats.alerts,
        position = svc.position,
        "correlator stopped"
    );
    Ok(stats)
}

pub(crate) async fn record_ticks(bus: Bus, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        match bus.record_tick(SystemTime::now()).await {
            Ok(pending) => {
                if let Err(e) = pending.ack().await {
                    tracing::debug!(error = %e, "clock tick not acknowledged");
                }
            }
            Err(e) => tracing::debug!(error = %e, "clock tick not recorded"),
        }
    }
}
