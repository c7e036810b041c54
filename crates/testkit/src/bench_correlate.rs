//! The correlator benchmark (`timpora bench correlate`): the correlation service measured against raw async-nats consumption
//! of the same stream, in the same run.
//!
//! A seeded scenario (background traffic across many persons, recruiters and villages, with the
//! storylines of R1-R6) is loaded into a fresh events stream. Then: (b) a raw ordered pull
//! consumer reads the whole stream; (a) the correlator (in process, checkpointing on) works
//! through it from the start, and its throughput is taken from start to the last sequence;
//! (c) its resident memory growth is divided by the entities it holds state about; (d) events
//! then arrive at a fixed rate, with sequence storylines (R2, R3, R6: decided the moment their
//! second event arrives) among them, and each such alert's delay is taken from the publish of
//! the event that completed it to the alert's arrival on the alerts subject. Absence, state and
//! count rules (R1, R4, R5) are decided only once event time has passed their horizon plus the
//! allowed lateness, so their delay is that lateness by design and is not part of (d).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use prost::Message as _;
use serde::Serialize;
use tokio::sync::watch;

use timpora_bus::Bus;
use timpora_proto::v1::Alert;
use timpora_scenario::{Scenario, Spec};

use timpora_client::random_hex;

use crate::bench_ingest::{bench_topology, nats_for_bench, remove_topology};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Progress on standard error as it goes.
    pub verbose: bool,
    /// Use this NATS server instead of starting one (the benchmark uses streams of its own and
    /// removes them afterwards).
    pub nats_url: Option<String>,
    /// Background events loaded before the measurement (storyline events come on top).
    pub events: u64,
    /// Distinct persons in the scenario.
    pub persons: u32,
    /// Scenario seed.
    pub seed: u64,
    /// Events per second in the latency phase.
    pub rate: u64,
    /// Seconds of the latency phase (several checkpoint intervals, so that their cost shows).
    pub live_secs: u64,
    /// Checkpoint interval of the correlator under test.
    pub checkpoint_every: Duration,
    /// Allowed lateness of the correlator under test.
    pub lateness: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            verbose: false,
            nats_url: None,
            events: 1_000_000,
            persons: 120_000,
            seed: 1,
            rate: 5_000,
            live_secs: 30,
            checkpoint_every: Duration::from_secs(10),
            lateness: Duration::from_secs(5),
        }
    }
}

/// What was measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub events: u64,
    pub persons: u32,
    pub recruiters: u32,
    pub villages: u32,
    pub seed: u64,
    pub correlator_events_per_s: f64,
    pub raw_consume_per_s: f64,
    pub ratio: f64,
    /// Distinct entities holding state after the load, and the entries of state.
    pub entities: u64,
    pub state_entries: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    /// Highest resident set size during the load (includes checkpoint copies and buffers).
    pub rss_peak_bytes: u64,
    pub bytes_per_entity: f64,
    pub alerts_from_load: u64,
    pub checkpoint_every_ms: u64,
    pub checkpoint_bytes: u64,
    pub lateness_ms: u64,
    pub live_rate_per_s: u64,
    pub live_events: u64,
    /// Sequence-rule alerts measured in the live phase.
    pub alert_samples: u64,
    pub alert_p50_ms: f64,
    pub alert_p99_ms: f64,
    pub alert_max_ms: f64,
}

/// Highest resident set size of this process so far.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resident set size of this process.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Record the delay of a sequence-rule alert that `arrived`: from the publish of the latest of
/// its evidence events (other alerts, and alerts of events not published live, are skipped).
fn record_latency(
    latency: &mut Histogram<u64>,
    sent: &std::sync::Mutex<HashMap<String, Instant>>,
    payload: &[u8],
    arrived: Instant,
) -> anyhow::Result<()> {
    let Ok(alert) = Alert::decode(payload) else {
        return Ok(());
    };
    if !matches!(alert.rule_id.as_str(), "R2" | "R3" | "R6") {
        return Ok(());
    }
    let sent = sent.lock().map_err(|_| anyhow::anyhow!("lock"))?;
    if let Some(at) = alert.evidence.iter().filter_map(|k| sent.get(k)).max() {
        latency.record(u64::try_from(arrived.duration_since(*at).as_micros())?.max(1))?;
    }
    Ok(())
}

/// Publish `events` with up to 4096 acknowledgements in flight.
pub(crate) async fn load(
    bus: &Bus,
    events: impl Iterator<Item = timpora_proto::v1::Event>,
) -> anyhow::Result<u64> {
    let mut inflight = FuturesUnordered::new();
    let mut n = 0u64;
    for e in events {
        inflight.push(bus.publish(&e).await?.ack());
        n += 1;
        if inflight.len() >= 4096
            && let Some(r) = inflight.next().await
        {
            r?;
        }
    }
    while let Some(r) = inflight.next().await {
        r?;
    }
    Ok(n)
}

/// The benchmarks' scenario: `events` background events over 90 days ending an hour ago,
/// among `persons` persons, with one storyline of each rule per 200 events.
pub(crate) fn scenario(seed: u64, events: u64, persons: u32) -> Spec {
    let span = Duration::from_secs(90 * 86_400);
    Spec {
        seed,
        events,
        persons,
        recruiters: (events / 300).clamp(10, 5_000) as u32,
        villages: (events / 300).clamp(10, 3_000) as u32,
        companies: 400,
        start: SystemTime::now() - span - Duration::from_secs(3_600),
        span,
        storyline_every: 200,
    }
}

/// Seconds for a raw ordered pull consumer to read `stream`'s first `last` messages, counted,
/// not decoded: the baseline the benchmarks compare with.
pub(crate) async fn raw_read(bus: &Bus, stream: &str, last: u64) -> anyhow::Result<f64> {
    let stream = bus.jetstream().get_stream(stream).await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await?;
    let t = Instant::now();
    let mut messages = consumer.messages().await?;
    let mut seen = 0u64;
    while seen < last {
        let m = messages
            .next()
            .await
            .context("raw consumer ended early")??;
        seen += 1;
        std::hint::black_box(m.payload.len());
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Run the benchmark.
pub async fn run(a: Settings) -> anyhow::Result<Report> {
    anyhow::ensure!(
        a.events > 0 && a.persons > 0,
        "--events and --persons must be positive"
    );
    let (checkpoint_every, lateness) = (a.checkpoint_every, a.lateness);
    let say = |m: &str| {
        if a.verbose {
            eprintln!("{m}");
        }
    };
    let tag = random_hex(4)?.to_uppercase();
    let topology = bench_topology(&tag);
    // Authorisation and TLS on, as in production: the events are loaded and the live traffic
    // sent as the admin; the correlator and the raw baseline read as the correlator's user.
    let nats = nats_for_bench(a.nats_url.as_deref(), &topology)?;
    let admin = nats
        .connect(timpora_bus::Identity::Admin, "bench-admin", &topology)
        .await?;
    admin.ensure_topology().await?;
    let bus = nats
        .connect(
            timpora_bus::Identity::Correlator,
            "bench-correlate",
            &topology,
        )
        .await?;

    let spec = scenario(a.seed, a.events, a.persons);
    say(&format!("loading {} events (seed {}) …", a.events, a.seed));
    let t = Instant::now();
    let loaded = load(&admin, Scenario::new(spec.clone())).await?;
    let last = bus.events_last_sequence().await?;
    say(&format!(
        "loaded {loaded} events in {:.1}s; measuring raw consumption …",
        t.elapsed().as_secs_f64()
    ));

    // (b) raw: an ordered pull consumer over the same stream, messages counted, not decoded.
    let raw_secs = raw_read(&bus, &topology.events_stream, last).await?;

    // (a) the correlator from the start of the stream to its end, checkpointing.
    say("running the correlator over the stream …");
    let rss_before = rss_bytes();
    let (progress_tx, mut progress) = watch::channel(0u64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = timpora_correlator::Options {
        lateness,
        tick_every: Duration::from_secs(1),
        checkpoint_every,
        state_cap: 50_000_000,
        progress: Some(progress_tx),
        status: None,
        ..Default::default()
    };
    let t = Instant::now();
    let service = tokio::spawn({
        let bus = bus.clone();
        async move {
            timpora_correlator::run(bus, None, options, async {
                let _ = stop_rx.await;
            })
            .await
        }
    });
    progress.wait_for(|p| *p >= last).await?;
    let correlator_secs = t.elapsed().as_secs_f64();
    // The state after the load, as the correlator reports it at its next checkpoint.
    let status_deadline = Instant::now() + checkpoint_every + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = bus.correlator_status().await?
            && s.checkpoint_sequence >= last
        {
            break s;
        }
        anyhow::ensure!(
            Instant::now() < status_deadline,
            "the correlator wrote no checkpoint covering the load in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Between checkpoints (the one covering the load is written, the next is seconds away):
    // the state, without a checkpoint's copy and buffer, which add about the checkpoint's size
    // while one is being written (see `rss_peak_bytes`).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_bytes();
    let rss_peak = peak_rss_bytes();
    let checkpoint_bytes = bus
        .checkpoint_size(timpora_correlator::CHECKPOINT_NAME)
        .await?;

    // (d) live: sequence storylines among ordinary events, at a fixed rate.
    say(&format!(
        "live phase: {} events/s for {}s …",
        a.rate, a.live_secs
    ));
    let mut alerts = admin
        .client()
        .subscribe(format!("{}.raised.>", topology.alerts_subject_prefix))
        .await?;
    let sent: std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let live_events = a.rate * a.live_secs;
    let publisher = tokio::spawn({
        let bus = admin.clone();
        let sent = sent.clone();
        let rate = a.rate.max(1);
        let mut live = Scenario::new(Spec {
            seed: a.seed ^ 0x5eed,
            events: 0,
            storyline_every: 0,
            ..spec.clone()
        });
        async move {
            let started = Instant::now();
            let mut inflight = FuturesUnordered::new();
            let mut queued: std::collections::VecDeque<timpora_proto::v1::Event> =
                Default::default();
            for i in 0..live_events {
                // Keep to the rate: event i goes out at i / rate seconds.
                let due = started + Duration::from_nanos(i * 1_000_000_000 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                let now = SystemTime::now();
                if i % 50 == 0 {
                    queued.extend(live.sequence_pairs(now, Duration::ZERO));
                }
                let mut e = queued.pop_front().unwrap_or_else(|| live.ordinary(now));
                e.time = Some(now.into());
                let key = format!("{}/{}", e.source, e.id);
                let ack = bus.publish(&e).await?;
                sent.lock()
                    .map_err(|_| anyhow::anyhow!("lock"))?
                    .insert(key, Instant::now());
                inflight.push(ack.ack());
                while inflight.len() > 1024 {
                    if let Some(r) = inflight.next().await {
                        r?;
                    }
                }
            }
            while let Some(r) = inflight.next().await {
                r?;
            }
            anyhow::Ok(started.elapsed())
        }
    });
    let mut latency = Histogram::<u64>::new(3)?;
    let deadline = Instant::now() + Duration::from_secs(a.live_secs + 10);
    let mut publisher = publisher;
    // Once every event is out, the last alerts get two seconds to arrive.
    let mut grace_until: Option<Instant> = None;
    while grace_until.is_none_or(|g| Instant::now() < g) {
        if grace_until.is_none() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the live phase did not finish in time"
            );
        }
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), alerts.next()).await {
            record_latency(&mut latency, &sent, &m.payload, Instant::now())?;
        }
        if grace_until.is_none() && publisher.is_finished() {
            (&mut publisher).await??;
            grace_until = Some(Instant::now() + Duration::from_secs(2));
        }
    }
    let _ = stop_tx.send(());
    let stats = service.await??;
    remove_topology(&admin).await;
    drop(nats);

    let ms = |q: f64| (latency.value_at_quantile(q) as f64 / 10.0).round() / 100.0;
    let correlator_rate = last as f64 / correlator_secs;
    let raw_rate = last as f64 / raw_secs;
    let report = Report {
        events: last,
        persons: spec.persons,
        recruiters: spec.recruiters,
        villages: spec.villages,
        seed: a.seed,
        correlator_events_per_s: correlator_rate.round(),
        raw_consume_per_s: raw_rate.round(),
        ratio: (correlator_rate / raw_rate * 1000.0).round() / 1000.0,
        entities: status.entities,
        state_entries: status.tracked,
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        rss_peak_bytes: rss_peak,
        bytes_per_entity: (rss_after.saturating_sub(rss_before) as f64
            / status.entities.max(1) as f64)
            .round(),
        alerts_from_load: status.alerts,
        checkpoint_every_ms: u64::try_from(checkpoint_every.as_millis())?,
        checkpoint_bytes,
        lateness_ms: u64::try_from(lateness.as_millis())?,
        live_rate_per_s: a.rate,
        live_events,
        alert_samples: latency.len(),
        alert_p50_ms: ms(0.5),
        alert_p99_ms: ms(0.99),
        alert_max_ms: (latency.max() as f64 / 10.0).round() / 100.0,
    };
    tracing::debug!(?stats, "correlator under test stopped");
    Ok(report)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "correlate benchmark: {} events, {} persons, {} recruiters, {} villages (seed {})",
            self.events, self.persons, self.recruiters, self.villages, self.seed
        )?;
        writeln!(
            f,
            "  throughput  correlator {:>10.0} events/s   raw pull-consume {:>10.0} msgs/s   ratio {:.3} (target >= 0.5; checkpoint every {} ms)",
            self.correlator_events_per_s,
            self.raw_consume_per_s,
            self.ratio,
            self.checkpoint_every_ms
        )?;
        writeln!(
            f,
            "  memory      {} entities, {} entries of state, {:.0} bytes per entity (target <= 2048); checkpoint {} bytes",
            self.entities, self.state_entries, self.bytes_per_entity, self.checkpoint_bytes
        )?;
        write!(
            f,
            "  latency     publish -> alert at {} events/s: p50 {} ms  p99 {} ms  max {} ms over {} sequence-rule alerts (target p99 <= 20)",
            self.live_rate_per_s,
            self.alert_p50_ms,
            self.alert_p99_ms,
            self.alert_max_ms,
            self.alert_samples
        )
    }
}
