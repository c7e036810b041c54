//! `timpora bench ingest|correlate|lateness|audit|soak`: the benchmarks of `timpora-testkit`
//! (each throughput measured against raw async-nats in the same run; the soak runs the whole
//! hub for a long time), printed for people or as one JSON object.

use timpora_testkit::{bench_correlate, bench_ingest};

use crate::rules::duration;

/// `timpora bench ingest` options.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Use this NATS server instead of starting one (the benchmark uses streams of its own and
    /// removes them afterwards).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Events in each throughput run.
    #[arg(long, default_value_t = 50_000)]
    pub events: usize,
    /// Alternating hub/raw throughput rounds; the report gives each side's median.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Sequential calls in each latency run.
    #[arg(long, default_value_t = 2_000)]
    pub samples: usize,
    /// Serve the gateway with mutual TLS (client certificate) rather than plaintext with a token.
    #[arg(long)]
    pub tls: bool,
}

/// `timpora bench correlate` options.
#[derive(Debug, clap::Args)]
pub struct CorrelateArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Use this NATS server instead of starting one (the benchmark uses streams of its own and
    /// removes them afterwards).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Background events loaded before the measurement (storyline events come on top).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Distinct persons in the scenario.
    #[arg(long, default_value_t = 120_000)]
    pub persons: u32,
    /// Scenario seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Events per second in the latency phase.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Seconds of the latency phase (several checkpoint intervals, so that their cost shows).
    #[arg(long, default_value_t = 30)]
    pub live_secs: u64,
    /// Checkpoint interval of the correlator under test.
    #[arg(long, default_value = "10s")]
    pub checkpoint_every: String,
    /// Allowed lateness of the correlator under test.
    #[arg(long, default_value = "5s")]
    pub lateness: String,
}

/// Run a benchmark until it is done or the first SIGINT/SIGTERM: then what it started (its
/// `nats-server`, its streams' server, its gateway) is stopped as the benchmark is dropped, and
/// the process exits with status 130 without a report.
async fn interruptible<T>(bench: impl std::future::Future<Output = T>) -> T {
    let mut bench = Box::pin(bench);
    tokio::select! {
        done = &mut bench => return done,
        () = crate::signal::shutdown() => {}
    }
    // Dropping the benchmark stops what it started (servers stop on drop) before the exit.
    drop(bench);
    eprintln!("benchmark interrupted; nothing measured");
    std::process::exit(130);
}

fn print(json: bool, report: &(impl serde::Serialize + std::fmt::Display)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// `timpora bench ingest`.
pub async fn ingest(a: IngestArgs) -> anyhow::Result<()> {
    let report = interruptible(bench_ingest::run(bench_ingest::Settings {
        nats_url: a.nats_url,
        events: a.events,
        rounds: a.rounds,
        samples: a.samples,
        tls: a.tls,
    }))
    .await?;
    print(a.json, &report)
}

/// `timpora bench correlate`.
pub async fn correlate(a: CorrelateArgs) -> anyhow::Result<()> {
    let report = interruptible(bench_correlate::run(bench_correlate::Settings {
        verbose: !a.json,
        nats_url: a.nats_url,
        events: a.events,
        persons: a.persons,
        seed: a.seed,
        rate: a.rate,
        live_secs: a.live_secs,
        checkpoint_every: duration("checkpoint-every", &a.checkpoint_every)?,
        lateness: duration("lateness", &a.lateness)?,
    }))
    .await?;
    print(a.json, &report)
}

/// `timpora bench audit` options.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Use this NATS server instead of starting one (the benchmark uses streams of its own).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Events in the stream replayed, sealed and verified (storyline events come on top).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Events per second while the seal lag is measured.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Seconds of the seal-lag phase.
    #[arg(long, default_value_t = 30)]
    pub lag_secs: u64,
    /// Scenario seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `timpora bench audit`.
pub async fn audit(a: AuditArgs) -> anyhow::Result<()> {
    let report = interruptible(timpora_testkit::bench_audit::run(
        timpora_testkit::bench_audit::Settings {
            nats_url: a.nats_url,
            events: a.events,
            rate: a.rate,
            lag_secs: a.lag_secs,
            seed: a.seed,
            verbose: !a.json,
        },
    ))
    .await?;
    print(a.json, &report)
}

/// `timpora bench lateness` options.
#[derive(Debug, clap::Args)]
pub struct LatenessArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Background events of the scenario (storyline events come on top).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Scenario seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Allowed lateness of the engine.
    #[arg(long, default_value = "5s")]
    pub lateness: String,
}

/// What the lateness policy adds to R1, R4 and R5 and what it spares (no NATS: the engine
/// alone, in the hub's recorded time).
pub async fn lateness(a: LatenessArgs) -> anyhow::Result<()> {
    let set = timpora_rules::parse(timpora_rules::DEFAULT_RULES)?;
    let settings = timpora_testkit::bench_lateness::Settings {
        events: a.events,
        seed: a.seed,
        lateness: duration("lateness", &a.lateness)?,
    };
    let report = interruptible(async move {
        tokio::task::spawn_blocking(move || timpora_testkit::bench_lateness::run(&settings, &set))
            .await
    })
    .await?;
    print(a.json, &report)
}

/// `timpora bench soak` options.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// How long to publish (`90s`, `10m`).
    #[arg(long, default_value = "10m")]
    pub duration: String,
    /// Acts per second, spread over the demo scenario's units.
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// Scenario seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of traces exported to the benchmark's OTLP receiver (0-1).
    #[arg(long, default_value_t = 0.01)]
    pub trace_sampling: f64,
    /// The correlator's rule file (default: the built-in set).
    #[arg(long)]
    pub rules: Option<std::path::PathBuf>,
}

/// `timpora bench soak`: soaks `timpora up` of this very binary.
pub async fn soak(a: SoakArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let report = interruptible(timpora_testkit::bench_soak::run(
        timpora_testkit::bench_soak::Settings {
            exe,
            duration: duration("duration", &a.duration)?,
            rate: a.rate,
            seed: a.seed,
            sampling: a.trace_sampling,
            rules: a.rules.map(std::path::absolute).transpose()?,
            verbose: !a.json,
        },
    ))
    .await?;
    print(a.json, &report)
}
