//! The audit benchmark (`timpora bench audit`), in one run over one stream of at least a
//! million events: (a) a raw ordered-consumer read of the events stream; (b) the same stream
//! replayed through the gateway's `AuditService` as an auditor, records counted as they arrive;
//! (c) the sealer sealing it (with one witness cosigning); (d) `verify` recomputing every leaf
//! against the witnessed checkpoint; (e) the sealer's lag behind ingest at a steady rate: for
//! every event published at that rate, from its acknowledgement to the arrival of the first
//! checkpoint that covers it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use serde::Serialize;
use timpora_client::random_hex;
use timpora_proto::v1::audit_service_client::AuditServiceClient;
use timpora_proto::v1::{AuditStream, ReplayRequest};
use timpora_scenario::{Scenario, Spec};
use timpora_tlog::Key;

use crate::bench_correlate::{load, raw_read, scenario};
use crate::bench_ingest::{bench_topology, nats_for_bench, remove_topology};
use crate::sandbox::Sandbox;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Use this NATS server instead of starting one.
    pub nats_url: Option<String>,
    /// Events in the stream replayed, sealed and verified.
    pub events: usize,
    /// Events per second while the seal lag is measured.
    pub rate: u64,
    /// How long the seal lag is measured.
    pub lag_secs: u64,
    pub seed: u64,
    pub verbose: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            nats_url: None,
            events: 1_000_000,
            rate: 5_000,
            lag_secs: 30,
            seed: 1,
            verbose: false,
        }
    }
}

/// What was measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub events: u64,
    pub raw_read_per_s: f64,
    pub replay_events_per_s: f64,
    pub replay_ratio: f64,
    pub seal_events_per_s: f64,
    pub verify_events_per_s: f64,
    pub verify_ratio: f64,
    /// The rate reached while the lag was measured, and how many events that was.
    pub lag_rate_per_s: f64,
    pub lag_events: u64,
    pub seal_lag_p50_ms: u64,
    pub seal_lag_p99_ms: u64,
    pub seal_lag_max_ms: u64,
    /// Checkpoints published for the events log over the whole run.
    pub checkpoints: u64,
}

/// The size in the second line of a checkpoint note.
fn size_of(note: &[u8]) -> Option<u64> {
    std::str::from_utf8(note).ok()?.lines().nth(1)?.parse().ok()
}

/// Run the benchmark.
pub async fn run(a: Settings) -> anyhow::Result<Report> {
    anyhow::ensure!(
        a.events > 0 && a.rate > 0 && a.lag_secs > 0,
        "--events, --rate and --lag-secs must be positive"
    );
    let say = |m: &str| {
        if a.verbose {
            eprintln!("{m}");
        }
    };
    let tag = random_hex(4)?.to_uppercase();
    let topology = bench_topology(&tag);
    let nats = nats_for_bench(a.nats_url.as_deref(), &topology)?;
    let hub = Sandbox::builder()
        .nats(nats.settings.clone())
        .topology(topology.clone())
        .start()
        .await?;
    let bus = hub.bus.clone();

    let spec = scenario(a.seed, a.events as u64, (a.events / 4).max(1) as u32);
    say(&format!("loading {} events …", a.events));
    let t = Instant::now();
    load(&bus, Scenario::new(spec.clone())).await?;
    let last = bus.events_last_sequence().await?;
    say(&format!(
        "loaded {last} in {:.1}s; raw read …",
        t.elapsed().as_secs_f64()
    ));

    // (a) raw: an ordered pull consumer, messages counted, not decoded.
    let raw_secs = raw_read(&bus, &topology.events_stream, last).await?;

    // (b) replay through the gateway as an auditor.
    say("replay through AuditService …");
    let replay_secs = {
        let mut client = AuditServiceClient::new(hub.as_agency("audit/inspektorat").await?)
            .max_decoding_message_size(8 * 1024 * 1024);
        let t = Instant::now();
        let mut records = client
            .replay(ReplayRequest {
                stream: AuditStream::Events.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut n = 0u64;
        while let Some(m) = records.message().await? {
            std::hint::black_box(m.record.map(|r| r.payload.len()));
            n += 1;
        }
        anyhow::ensure!(n == last, "replay returned {n} of {last}");
        t.elapsed().as_secs_f64()
    };

    // (c) the sealer, with one witness, over the whole stream.
    say("sealing …");
    let state = tempfile::tempdir()?;
    let sealer = Key::generate("bench-sealer")?;
    let witness = Key::generate("bench-witness")?;
    let mut logs = BTreeMap::new();
    for (log, _) in topology.sealed_streams() {
        let origin = timpora_sealer::origin("bench", log);
        logs.insert(log.to_owned(), sealer.renamed(&origin)?.log_verifier());
    }
    let w = timpora_witness::Witness::open(
        witness.clone(),
        &logs.values().cloned().collect::<Vec<_>>(),
        state.path(),
    )?;
    let (wstop, wrx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(timpora_witness::serve(bus.client().clone(), w, async {
        let _ = wrx.await;
    }));
    // Checkpoints arrive on their subject: the lag is measured from them.
    let mut checkpoints = bus
        .client()
        .subscribe(topology.checkpoint_subject("events"))
        .await?;
    let options = timpora_sealer::Options {
        deployment: "bench".into(),
        key: sealer.clone(),
        every_messages: 1000,
        every: Duration::from_secs(1),
        witnesses: vec![witness.witness_verifier()],
        witness_memory: timpora_sealer::WITNESS_MEMORY,
    };
    let (sstop, srx) = tokio::sync::oneshot::channel::<()>();
    let t = Instant::now();
    let sealing = tokio::spawn(timpora_sealer::run(bus.clone(), options, async {
        let _ = srx.await;
    }));
    let mut count = 0u64;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(120), checkpoints.next())
            .await
            .context("no checkpoint for 120 s")?
            .context("checkpoint subscription ended")?;
        count += 1;
        if size_of(&m.payload) >= Some(last) {
            break;
        }
    }
    let seal_secs = t.elapsed().as_secs_f64();

    // (d) verify against the witnessed checkpoint.
    say("verifying …");
    let policy = timpora_audit::AuditPolicy {
        quorum: 1,
        witnesses: vec![witness.witness_verifier()],
        logs,
    };
    let t = Instant::now();
    let report =
        timpora_audit::verify_log(&bus, &policy, "events", 1, None, &mut |_, _| {}).await?;
    let verify_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.intact() && report.checked == last,
        "verify: {report:?}"
    );

    // (e) the seal lag at a steady rate, the sealer still running.
    say(&format!(
        "seal lag at {} events/s for {} s …",
        a.rate, a.lag_secs
    ));
    let mut lag = Histogram::<u64>::new_with_bounds(1, 600_000, 3)?;
    // One loop publishes on schedule, collects acknowledgements and reads checkpoints, so an
    // acknowledgement and the checkpoint that covers it are never measured out of order.
    let mut events = Scenario::new(Spec {
        seed: a.seed + 1,
        events: a.rate * a.lag_secs,
        ..spec
    });
    let mut acked = BTreeMap::<u64, Instant>::new();
    let mut inflight = FuturesUnordered::new();
    let mut covered = last;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let start = Instant::now();
    let mut publishing = true;
    let mut published_secs = a.lag_secs as f64;
    loop {
        tokio::select! {
            _ = tick.tick(), if publishing => {
                let due = (start.elapsed().as_secs_f64() * a.rate as f64) as u64;
                while sent < due {
                    let Some(e) = events.next() else { break };
                    inflight.push(bus.publish(&e).await?.ack());
                    sent += 1;
                }
                if start.elapsed() >= Duration::from_secs(a.lag_secs) {
                    publishing = false;
                    published_secs = start.elapsed().as_secs_f64();
                }
            }
            Some(r) = inflight.next(), if !inflight.is_empty() => {
                let ack = r?;
                if ack.sequence <= covered {
                    // Its checkpoint came before its acknowledgement was seen.
                    lag.record(1)?;
                } else {
                    acked.insert(ack.sequence, Instant::now());
                }
            }
            m = checkpoints.next() => {
                let m = m.context("checkpoint subscription ended")?;
                let arrived = Instant::now();
                count += 1;
                let Some(size) = size_of(&m.payload) else { continue };
                let later = acked.split_off(&(size + 1));
                for at in acked.values() {
                    lag.record(u64::try_from(arrived.duration_since(*at).as_millis())?.max(1))?;
                }
                acked = later;
                covered = covered.max(size);
            }
            () = tokio::time::sleep(Duration::from_secs(30)) => {
                anyhow::bail!("no progress for 30 s: {} acknowledged events not sealed", acked.len());
            }
        }
        if !publishing && inflight.is_empty() && acked.is_empty() {
            break;
        }
    }
    let _ = sstop.send(());
    sealing.await??;
    let _ = wstop.send(());
    served.await??;
    remove_topology(&bus).await;
    let raw = last as f64 / raw_secs;
    let replay = last as f64 / replay_secs;
    let verify = last as f64 / verify_secs;
    Ok(Report {
        events: last,
        raw_read_per_s: raw,
        replay_events_per_s: replay,
        replay_ratio: replay / raw,
        seal_events_per_s: last as f64 / seal_secs,
        verify_events_per_s: verify,
        verify_ratio: verify / raw,
        lag_rate_per_s: sent as f64 / published_secs.max(f64::EPSILON),
        lag_events: sent,
        seal_lag_p50_ms: lag.value_at_quantile(0.5),
        seal_lag_p99_ms: lag.value_at_quantile(0.99),
        seal_lag_max_ms: lag.max(),
        checkpoints: count,
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "audit over {} events ({} checkpoints of the events log)",
            self.events, self.checkpoints
        )?;
        writeln!(
            f,
            "  raw ordered read     {:>10.0} events/s",
            self.raw_read_per_s
        )?;
        writeln!(
            f,
            "  replay (AuditService) {:>9.0} events/s  ratio {:.3} (target >= 0.5)",
            self.replay_events_per_s, self.replay_ratio
        )?;
        writeln!(
            f,
            "  seal                 {:>10.0} events/s",
            self.seal_events_per_s
        )?;
        writeln!(
            f,
            "  verify               {:>10.0} events/s  ratio {:.3} (target >= 0.3)",
            self.verify_events_per_s, self.verify_ratio
        )?;
        write!(
            f,
            "  seal lag at {:.0} events/s ({} events): p50 {} ms, p99 {} ms (target <= 2000), max {} ms",
            self.lag_rate_per_s,
            self.lag_events,
            self.seal_lag_p50_ms,
            self.seal_lag_p99_ms,
            self.seal_lag_max_ms
        )
    }
}
