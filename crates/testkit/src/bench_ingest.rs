//! The ingest benchmark (`timpora bench ingest`): the gateway's ingest path measured against raw async-nats JetStream
//! publishing on the same NATS server, in the same run, with messages of the same size.
//!
//! (a) events/s through `PublishStream` (validation, pseudonymisation, JetStream ack);
//! (b) raw pipelined JetStream publish of the same number of same-sized messages, with the same
//!     window of acknowledgements in flight; (c) unary `Publish` latency p50/p99;
//! (d) raw synchronous JetStream publish round trip p50/p99.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use async_nats::jetstream::message::PublishMessage;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use hdrhistogram::Histogram;
use serde::Serialize;
use timpora_bus::{Bus, Topology};
use timpora_client::{Conn, Credentials, Target, random_hex};
use timpora_gateway::STREAM_WINDOW;
use timpora_natsd::NatsServer;
use timpora_proto::v1::event_bus_service_client::EventBusServiceClient;
use timpora_proto::v1::*;

use crate::sandbox::Sandbox;

/// The unit the benchmark publishes as.
const UNIT: &str = "imigrasi/tpi-kdi";

/// What to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Use this NATS server instead of starting one (the benchmark uses streams of its own and
    /// removes them afterwards).
    pub nats_url: Option<String>,
    /// Events in each throughput run.
    pub events: usize,
    /// Alternating hub/raw throughput rounds; the report gives each side's median.
    pub rounds: usize,
    /// Sequential calls in each latency run.
    pub samples: usize,
    /// Serve the gateway with mutual TLS (client certificate) rather than plaintext with a token.
    pub tls: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            nats_url: None,
            events: 50_000,
            rounds: 3,
            samples: 2_000,
            tls: false,
        }
    }
}

/// What was measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub events: usize,
    pub rounds: usize,
    pub samples: usize,
    pub event_bytes: usize,
    pub tls: bool,
    pub hub_events_per_s: f64,
    pub raw_events_per_s: f64,
    pub ratio: f64,
    /// Every round's rate, in run order.
    pub hub_rounds: Vec<f64>,
    pub raw_rounds: Vec<f64>,
    pub unary_p50_us: u64,
    pub unary_p99_us: u64,
    pub raw_sync_p50_us: u64,
    pub raw_sync_p99_us: u64,
    pub latency_ratio: f64,
    /// An empty gRPC round trip (health check) on the same channel: the transport's floor.
    pub grpc_floor_p50_us: u64,
    /// `unary_p50_us / (grpc_floor_p50_us + raw_sync_p50_us)`: a unary publish against the
    /// floor of an empty gRPC round trip plus a raw JetStream round trip (target ≤ 1.25).
    pub unary_floor_ratio: f64,
}

/// A valid, synthetic departure check: every `i` a different traveller, companion and recruiter.
fn event(phase: &str, i: usize) -> Event {
    let nik = |i: usize| {
        format!(
            "74{:02}{:02}{:02}{:02}{:02}{:04}",
            1 + (i / 9999) % 20,
            1 + (i / 199_980) % 30,
            1 + i % 28,
            1 + i % 12,
            60 + i % 40,
            1 + i % 9999
        )
    };
    Event {
        id: format!("{phase}-{i}"),
        time: Some(SystemTime::now().into()),
        region: "74.71.01.1001".into(),
        payload: Some(event::Payload::DepartureCheck(DepartureCheck {
            traveller: Some(Person {
                nik: nik(i),
                passport_number: format!("C{:07}", i % 10_000_000),
                ..Default::default()
            }),
            checkpoint_code: "TPI-KDI".into(),
            carrier: "Lion Air".into(),
            flight_or_voyage: "JT-1234".into(),
            destination_country: "MY".into(),
            outcome: DepartureOutcome::Deferred as i32,
            indicators: vec![
                Indicator::PurposeInconsistent as i32,
                Indicator::NoReturnTicket as i32,
            ],
            companions: vec![Person {
                nik: nik(i + 1),
                ..Default::default()
            }],
            recruiters: vec![Recruiter {
                phone: format!("+62812{:08}", i % 100_000_000),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Run the benchmark.
pub async fn run(a: Settings) -> anyhow::Result<Report> {
    anyhow::ensure!(
        a.events > 0 && a.samples > 0,
        "--events and --samples must be positive"
    );
    let tag = random_hex(4)?;
    let topo = |kind: &str| bench_topology(&format!("{}_{tag}", kind.to_uppercase()));
    // Authorisation and TLS on, as in production: the gateway as its own user; the raw
    // baseline as the admin (who may publish anywhere) over the same TLS.
    let nats = nats_for_bench(a.nats_url.as_deref(), &topo("hub"))?;
    let raw_bus = nats
        .connect(timpora_bus::Identity::Admin, "bench-raw", &topo("raw"))
        .await?;
    raw_bus.ensure_topology().await?;

    // The gateway, in process, on a random port: the sandbox every end-to-end test uses.
    // The per-identity rate limit is checked on every event, set high enough not to throttle
    // what is measured here: the gateway's own cost.
    let mut sandbox = Sandbox::builder()
        .nats(nats.settings.clone())
        .topology(topo("hub"))
        .configure(|c| {
            c.limits.events_per_second = 100_000_000;
            c.limits.burst = 100_000_000;
        });
    if a.tls {
        sandbox = sandbox.tls();
    }
    let mut sandbox = sandbox.start().await?;
    let hub_bus = sandbox.bus.clone();
    let port = sandbox.addr.port();
    let dir = tempfile::tempdir()?;
    let (target, credentials) = match (sandbox.ca(), &sandbox.config.tls) {
        (Some(ca), Some(tls)) if a.tls => {
            let issued = ca.client(UNIT)?;
            let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
            std::fs::write(&cert, &issued.cert_pem)?;
            std::fs::write(&key, &issued.key_pem)?;
            let mut target = Target::new(format!("https://localhost:{port}"));
            target.ca = Some(tls.client_ca.clone());
            (target, Credentials::Certificate { cert, key })
        }
        _ => (
            Target::new(format!("http://127.0.0.1:{port}")),
            Credentials::Token(sandbox.token(UNIT)),
        ),
    };
    let conn = timpora_client::connect(&target, &credentials)
        .await
        .context("bench gateway")?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(conn.clone());
    let mut client = EventBusServiceClient::new(conn);

    // Warm up both paths.
    hub_stream(&mut client, "warm", 1_000).await?;
    let sample = last_message(&hub_bus).await?;
    raw_pipelined(&raw_bus, &sample, "warm", 1_000).await?;

    // (a) and (b): throughput, alternating so that drift on the machine favours neither side.
    let mut hub_rounds = Vec::new();
    let mut raw_rounds = Vec::new();
    for r in 0..a.rounds {
        let phase = format!("tput{r}");
        let secs = hub_stream(&mut client, &phase, a.events).await?;
        hub_rounds.push((a.events as f64 / secs).round());
        let secs = raw_pipelined(&raw_bus, &sample, &phase, a.events).await?;
        raw_rounds.push((a.events as f64 / secs).round());
    }

    // (c) and (d): latency of one call at a time.
    let mut unary = Histogram::<u64>::new(3)?;
    let mut raw_sync = Histogram::<u64>::new(3)?;
    for i in 0..a.samples + 200 {
        let t = Instant::now();
        let r = client
            .publish(PublishRequest {
                event: Some(event("lat", i)),
            })
            .await?;
        let us = micros(t.elapsed());
        anyhow::ensure!(r.into_inner().ack.is_some(), "unary publish without ack");
        if i >= 200 {
            unary.record(us)?;
        }
    }
    for i in 0..a.samples + 200 {
        let msg = raw_message(&sample, "lat", i);
        let t = Instant::now();
        raw_bus
            .jetstream()
            .send_publish(sample.subject.clone(), msg)
            .await?
            .await?;
        if i >= 200 {
            raw_sync.record(micros(t.elapsed()))?;
        }
    }

    let mut floor = Histogram::<u64>::new(3)?;
    for i in 0..a.samples + 200 {
        let t = Instant::now();
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await?;
        if i >= 200 {
            floor.record(micros(t.elapsed()))?;
        }
    }

    sandbox.stop_gateway().await?;
    for bus in [&hub_bus, &raw_bus] {
        remove_topology(bus).await;
    }
    drop(nats);

    let hub_rate = median(&hub_rounds);
    let raw_rate = median(&raw_rounds);
    let report = Report {
        events: a.events,
        rounds: a.rounds,
        hub_rounds,
        raw_rounds,
        samples: a.samples,
        event_bytes: sample.payload.len(),
        tls: a.tls,
        hub_events_per_s: hub_rate.round(),
        raw_events_per_s: raw_rate.round(),
        ratio: (hub_rate / raw_rate * 1000.0).round() / 1000.0,
        unary_p50_us: unary.value_at_quantile(0.5),
        unary_p99_us: unary.value_at_quantile(0.99),
        raw_sync_p50_us: raw_sync.value_at_quantile(0.5),
        raw_sync_p99_us: raw_sync.value_at_quantile(0.99),
        latency_ratio: (unary.value_at_quantile(0.5) as f64
            / raw_sync.value_at_quantile(0.5) as f64
            * 1000.0)
            .round()
            / 1000.0,
        grpc_floor_p50_us: floor.value_at_quantile(0.5),
        unary_floor_ratio: (unary.value_at_quantile(0.5) as f64
            / (floor.value_at_quantile(0.5) + raw_sync.value_at_quantile(0.5)) as f64
            * 1000.0)
            .round()
            / 1000.0,
    };
    Ok(report)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "ingest benchmark ({} rounds of {} events of {} bytes, {} latency samples, {})",
            self.rounds,
            self.events,
            self.event_bytes,
            self.samples,
            if self.tls {
                "mutual TLS"
            } else {
                "plaintext + token"
            }
        )?;
        writeln!(
            f,
            "  throughput  hub PublishStream {:>10.0} events/s   raw JetStream {:>10.0} msgs/s   ratio {:.3} (target >= 0.5; medians)",
            self.hub_events_per_s, self.raw_events_per_s, self.ratio
        )?;
        writeln!(
            f,
            "  latency     hub unary p50 {} us  p99 {} us   raw sync p50 {} us  p99 {} us   p50 ratio {:.3} (target <= 2)",
            self.unary_p50_us,
            self.unary_p99_us,
            self.raw_sync_p50_us,
            self.raw_sync_p99_us,
            self.latency_ratio
        )?;
        write!(
            f,
            "  floor       empty gRPC round trip (health check) p50 {} us   unary p50 / (gRPC floor + raw sync) {:.3} (target <= 1.25)",
            self.grpc_floor_p50_us, self.unary_floor_ratio
        )
    }
}

/// The NATS server a benchmark runs against: `url`, or one started for it (kept running while
/// the returned guard lives).
/// The hub's topology with every stream, bucket and subject prefix of its own, tagged with `tag`
/// (letters, digits, `_`), so that a benchmark on a shared server touches nothing else.
pub fn bench_topology(tag: &str) -> Topology {
    Topology {
        events_stream: format!("BENCH_EVENTS_{tag}"),
        subject_prefix: format!("timpora.bench.{tag}"),
        alerts_stream: format!("BENCH_ALERTS_{tag}"),
        alerts_subject_prefix: format!("timpora.benchalerts.{tag}"),
        access_stream: format!("BENCH_ACCESS_{tag}"),
        access_subject_prefix: format!("timpora.benchaccess.{tag}"),
        rules_bucket: format!("BENCH_RULES_{tag}"),
        checkpoint_bucket: format!("BENCH_CHECKPOINTS_{tag}"),
        tlog_stream: format!("BENCH_TLOG_{tag}"),
        tlog_subject_prefix: format!("timpora.benchtlog.{tag}"),
        tlog_bucket: format!("BENCH_TLOG_{tag}"),
        tiles_bucket: format!("BENCH_TILES_{tag}"),
        holds_bucket: format!("BENCH_HOLDS_{tag}"),
        holds_stream: format!("BENCH_HOLDS_{tag}"),
        holds_subject_prefix: format!("timpora.benchholds.{tag}"),
        correlators_bucket: format!("BENCH_CORRELATORS_{tag}"),
        ..Default::default()
    }
}

/// Remove every stream, bucket and object store `ensure_topology` made for a benchmark.
pub async fn remove_topology(bus: &Bus) {
    let t = bus.topology();
    for name in [
        t.events_stream.clone(),
        t.alerts_stream.clone(),
        t.access_stream.clone(),
        t.tlog_stream.clone(),
        t.holds_stream.clone(),
        format!("KV_{}", t.rules_bucket),
        format!("KV_{}", t.tlog_bucket),
        format!("KV_{}", t.holds_bucket),
        format!("KV_{}", t.correlators_bucket),
        format!("OBJ_{}", t.checkpoint_bucket),
        format!("OBJ_{}", t.tiles_bucket),
    ] {
        let _ = bus.jetstream().delete_stream(name).await;
    }
}

/// The NATS a benchmark runs on: its own server, secured as `timpora up` secures one (one user
/// per component with the permissions of `topology`, TLS), or the one at a given URL as it is.
pub struct BenchNats {
    /// How to reach it; connect as an identity with `settings.options(identity)`.
    pub settings: timpora_hub::NatsConfig,
    _server: Option<NatsServer>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchNats {
    /// A connection as `identity`.
    pub async fn connect(
        &self,
        identity: timpora_bus::Identity,
        name: &str,
        topology: &timpora_bus::Topology,
    ) -> anyhow::Result<Bus> {
        Ok(Bus::connect(self.settings.options(identity), name, topology.clone()).await?)
    }
}

pub fn nats_for_bench(
    url: Option<&str>,
    topology: &timpora_bus::Topology,
) -> anyhow::Result<BenchNats> {
    Ok(match url {
        Some(u) => BenchNats {
            settings: timpora_hub::NatsConfig {
                url: u.to_owned(),
                ..Default::default()
            },
            _server: None,
            _dir: None,
        },
        None => {
            let dir = tempfile::tempdir()?;
            let (server, settings) = crate::dev::secured_nats(dir.path(), topology)?;
            BenchNats {
                settings,
                _server: Some(server),
                _dir: Some(dir),
            }
        }
    })
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Publish `n` events through one `PublishStream`; seconds until the last acknowledgement.
async fn hub_stream(
    client: &mut EventBusServiceClient<Conn>,
    phase: &str,
    n: usize,
) -> anyhow::Result<f64> {
    let requests: Vec<PublishStreamRequest> = (0..n)
        .map(|i| PublishStreamRequest {
            event: Some(event(phase, i)),
        })
        .collect();
    let t = Instant::now();
    let mut responses = client
        .publish_stream(futures::stream::iter(requests))
        .await?
        .into_inner();
    let mut stored = 0usize;
    while let Some(r) = responses.message().await? {
        match r.result {
            Some(publish_stream_response::Result::Ack(a)) if !a.duplicate => stored += 1,
            other => anyhow::bail!("benchmark event {} not stored: {other:?}", r.index),
        }
    }
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(stored == n, "{stored} of {n} benchmark events stored");
    Ok(secs)
}

/// What the gateway stored, to publish raw messages of the same size and headers.
struct Sample {
    /// The subject in the raw stream that mirrors the gateway's.
    subject: String,
    headers: async_nats::HeaderMap,
    payload: bytes::Bytes,
}

async fn last_message(bus: &Bus) -> anyhow::Result<Sample> {
    let mut stream = bus
        .jetstream()
        .get_stream(&bus.topology().events_stream)
        .await?;
    let last = stream.info().await?.state.last_sequence;
    let m = stream.get_raw_message(last).await?;
    Ok(Sample {
        subject: m.subject.replacen(".hub.", ".raw.", 1),
        headers: m.headers,
        payload: m.payload,
    })
}

fn raw_message(sample: &Sample, phase: &str, i: usize) -> PublishMessage {
    PublishMessage::build()
        .payload(sample.payload.clone())
        .headers(sample.headers.clone())
        .message_id(format!("raw-{phase}-{i}"))
}

/// Publish `n` raw messages with `STREAM_WINDOW` acknowledgements in flight; seconds taken.
async fn raw_pipelined(bus: &Bus, sample: &Sample, phase: &str, n: usize) -> anyhow::Result<f64> {
    let subject = sample.subject.clone();
    let js = bus.jetstream();
    let t = Instant::now();
    let mut inflight = FuturesOrdered::new();
    for i in 0..n {
        let ack = js
            .send_publish(subject.clone(), raw_message(sample, phase, i))
            .await?;
        inflight.push_back(ack.into_future());
        if inflight.len() >= STREAM_WINDOW
            && let Some(r) = inflight.next().await
        {
            anyhow::ensure!(!r?.duplicate, "raw message stored twice");
        }
    }
    while let Some(r) = inflight.next().await {
        anyhow::ensure!(!r?.duplicate, "raw message stored twice");
    }
    Ok(t.elapsed().as_secs_f64())
}
