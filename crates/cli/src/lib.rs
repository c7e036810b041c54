//! The `timpora` command line: argument parsing, layered configuration (defaults → file →
//! `TIMPORA_` environment → flags), and the subcommands.

mod alerts;
mod backtest;
mod bench;
mod bench_correlate;
mod client;
mod config;
mod console;
mod demo;
mod dev;
mod json;
mod metrics;
mod rules;
mod signal;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use config::Config;

/// TIMPORA integration hub: inter-agency coordination event bus.
#[derive(Debug, Parser)]
#[command(name = "timpora", version, about)]
pub struct Cli {
    /// Configuration file (TOML); default `<data-dir>/timpora.toml` when it exists.
    #[arg(long, global = true, env = "TIMPORA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the local development set-up (credentials, keys, config).
    #[arg(
        long,
        global = true,
        env = "TIMPORA_DATA_DIR",
        default_value = ".timpora"
    )]
    pub data_dir: PathBuf,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "TIMPORA_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written (to stderr).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole hub in one process: NATS (as a child), gateway, correlator and console, with
    /// development credentials in the data directory; `--demo` adds the simulated agencies.
    Up(up::UpArgs),
    /// The scenario simulator: acts as the agencies through the gateway (each with its own
    /// identity), ordinary traffic with the storylines of R1-R6 woven in.
    Demo(demo::DemoArgs),
    /// The operations console (web): live alerts, evidence, actions, region overview. Serves it
    /// (a client of the gateway, as each account's configured identity) unless a subcommand is
    /// given.
    Console(ConsoleArgs),
    /// Run the gRPC gateway (every agency service, the event bus, health, reflection).
    Gateway(GatewayArgs),
    /// Administer the NATS JetStream topology.
    #[command(subcommand)]
    Bus(BusCommand),
    /// Publish events from NDJSON (one PublishRequest or Event per line, proto3 JSON).
    Publish(client::PublishArgs),
    /// Print events as NDJSON, with Subscribe's filters and start positions.
    Subscribe(client::SubscribeArgs),
    /// Development set-up.
    #[command(subcommand)]
    Dev(DevCommand),
    /// Show configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the correlation service: rules over the events stream, alerts stored once.
    Correlator(CorrelatorArgs),
    /// Correlation rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Watch, list, read and act on alerts (through the gateway).
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Benchmarks, each measured against raw async-nats in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct CorrelatorArgs {
    /// Rule file (TOML); the built-in rule set R1-R6 when absent.
    #[arg(long, env = "TIMPORA_RULES")]
    pub rules: Option<PathBuf>,
    /// How far out of event-time order events may arrive and still be handled exactly.
    #[arg(long, default_value = "5s")]
    pub lateness: String,
    /// How often a clock tick is recorded into the stream.
    #[arg(long, default_value = "1s")]
    pub tick: String,
    /// How often the state and stream position are checkpointed.
    #[arg(long, default_value = "10s")]
    pub checkpoint_every: String,
    /// Most entries of state held; past it the groups idle longest are dropped (with a warning
    /// and a counter in `timpora rules status`).
    #[arg(long, default_value_t = 5_000_000)]
    pub state_cap: usize,
    /// Serve Prometheus metrics (`/metrics`: events, late events, alerts, state entries and
    /// cap, groups dropped, position) on this address.
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check a rule file: every error with its line and rule; exit status 1 if any.
    Check {
        /// The rule file (TOML).
        file: PathBuf,
    },
    /// Print the default rule set (R1-R6), a starting point for your own.
    Default,
    /// Backtest a rule set on recorded events against expected alerts; print the differences.
    Test(backtest::TestArgs),
    /// Check a rule file and make it the correlator's active set, without a restart; waits
    /// until the running correlator reports it runs the new set.
    Apply(rules::ApplyArgs),
    /// The active rule set and what the correlator reports (position, state, counters).
    Status {
        #[command(flatten)]
        nats: NatsArgs,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on (overrides the config).
    #[arg(long, env = "TIMPORA_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Debug, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated (overrides the config).
    #[arg(long, env = "TIMPORA_NATS_URL")]
    pub nats_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Create the streams, or bring their configuration up to date (idempotent).
    Init(NatsArgs),
    /// Show streams, message counts and consumers.
    Status {
        #[command(flatten)]
        nats: NatsArgs,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Generate a local CA, server and agency client certificates, tokens, a pseudonymisation
    /// key and a config file in the data directory (nothing is overwritten without --force).
    Init {
        /// Replace an existing set-up.
        #[arg(long)]
        force: bool,
        /// Gateway listen address to write into the config.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
        /// NATS URL to write into the config.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    pub command: Option<ConsoleCommand>,
    /// Address to serve on (overrides `console.listen`).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Gateway URL (default: the configured listen address).
    #[arg(long, env = "TIMPORA_GATEWAY")]
    pub gateway: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Hash a password (read from standard input) for a `[[console.accounts]]` entry.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (after file, environment and defaults) as TOML.
    Print,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Gateway ingest against raw JetStream publish (throughput and latency).
    Ingest(bench::IngestArgs),
    /// The correlator against raw JetStream consumption (throughput, memory, alert latency).
    Correlate(bench_correlate::CorrelateArgs),
}

impl Command {
    /// Log filter when `RUST_LOG` is unset: services log their life at `info`; command-line
    /// clients only say something when it goes wrong.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Gateway(_)
            | Command::Correlator(_)
            | Command::Up(_)
            | Command::Demo(_)
            | Command::Console(ConsoleArgs { command: None, .. }) => "info,async_nats=warn",
            _ => "warn",
        }
    }
}

/// Initialise logging to stderr; `RUST_LOG` sets the filter.
pub fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.config.clone().or_else(|| {
        let p = cli.data_dir.join("timpora.toml");
        p.exists().then_some(p)
    });
    let mut cfg = config::load(config_path.as_deref())?;
    match cli.command {
        Command::Gateway(args) => {
            if let Some(l) = args.listen {
                cfg.gateway.listen = l;
            }
            apply_nats(&mut cfg, &args.nats);
            gateway(cfg).await?;
        }
        Command::Bus(BusCommand::Init(nats)) => {
            apply_nats(&mut cfg, &nats);
            let bus = connect(&cfg).await?;
            bus.ensure_topology().await?;
            println!(
                "stream {} ready on {} (subjects {}.>)",
                cfg.bus.events_stream, cfg.nats.url, cfg.bus.subject_prefix
            );
        }
        Command::Bus(BusCommand::Status { nats, json }) => {
            apply_nats(&mut cfg, &nats);
            let status = connect(&cfg).await?.status().await?;
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                print_status(&status);
            }
        }
        Command::Publish(args) => return client::publish(&cfg, &cli.data_dir, args).await,
        Command::Subscribe(args) => client::subscribe(&cfg, &cli.data_dir, args).await?,
        Command::Dev(DevCommand::Init {
            force,
            listen,
            nats_url,
        }) => dev::init(&cli.data_dir, force, listen, &nats_url)?,
        Command::Config(ConfigCommand::Print) => print!("{}", toml::to_string_pretty(&cfg)?),
        Command::Up(args) => return up::run(&cli.data_dir, args).await,
        Command::Console(ConsoleArgs {
            command: None,
            listen,
            gateway,
        }) => {
            console::validate(&cfg.console)?;
            let addr = listen.unwrap_or(cfg.console.listen);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            println!("console on http://{addr}");
            console::serve(&cfg, &cli.data_dir, gateway, listener, signal::shutdown()).await?;
        }
        Command::Console(ConsoleArgs {
            command: Some(ConsoleCommand::HashPassword),
            ..
        }) => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(
                password.chars().count() >= 12,
                "a console password needs at least 12 characters"
            );
            println!("{}", console::auth::hash_password(password)?);
        }
        Command::Demo(args) => {
            let t = demo::run(&cfg, &cli.data_dir, &args, signal::shutdown()).await?;
            println!(
                "demo: {} acts sent ({} already stored), {} refused",
                t.sent, t.duplicates, t.refused
            );
            if t.refused > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Alerts(cmd) => alerts::run(&cfg, &cli.data_dir, cmd).await?,
        Command::Bench(BenchCommand::Ingest(args)) => bench::ingest(args).await?,
        Command::Bench(BenchCommand::Correlate(args)) => bench_correlate::correlate(args).await?,
        Command::Correlator(args) => {
            apply_nats(&mut cfg, &args.nats);
            return rules::correlator(cfg, args).await;
        }
        Command::Rules(RulesCommand::Default) => print!("{}", timpora_rules::DEFAULT_RULES),
        Command::Rules(RulesCommand::Check { file }) => return rules::check(&file),
        Command::Rules(RulesCommand::Test(args)) => return backtest::run(&args),
        Command::Rules(RulesCommand::Apply(args)) => {
            apply_nats(&mut cfg, &args.nats);
            return rules::apply(&cfg, &args).await;
        }
        Command::Rules(RulesCommand::Status { nats, json }) => {
            apply_nats(&mut cfg, &nats);
            return rules::status(&cfg, json).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn apply_nats(cfg: &mut Config, args: &NatsArgs) {
    if let Some(url) = &args.nats_url {
        cfg.nats.url = url.clone();
    }
}

async fn connect(cfg: &Config) -> anyhow::Result<timpora_bus::Bus> {
    timpora_bus::Bus::connect(&cfg.nats.url, "timpora-cli", cfg.bus.clone())
        .await
        .with_context(|| format!("is nats-server running at {}?", cfg.nats.url))
}

/// Connect to NATS, waiting for it to come up, and ensure the topology.
async fn connect_waiting(cfg: &Config, name: &str) -> anyhow::Result<timpora_bus::Bus> {
    let bus = loop {
        match timpora_bus::Bus::connect(&cfg.nats.url, name, cfg.bus.clone()).await {
            Ok(bus) => break bus,
            Err(e) => {
                tracing::warn!(error = %e, "waiting for nats");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    bus.ensure_topology().await?;
    Ok(bus)
}

async fn gateway(cfg: Config) -> anyhow::Result<()> {
    let shutdown = signal::shutdown();
    let bus = connect_waiting(&cfg, "timpora-gateway").await?;
    let listener = tokio::net::TcpListener::bind(cfg.gateway.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.gateway.listen))?;
    timpora_gateway::serve(cfg.gateway, bus, listener, shutdown).await?;
    Ok(())
}

fn print_status(status: &timpora_bus::Status) {
    println!("server: {}", status.server);
    for s in &status.streams {
        println!(
            "stream {:<20} messages {:>10}  bytes {:>12}  seq {}..{}  replicas {}  dedup window {}s  subjects {}",
            s.name,
            s.messages,
            s.bytes,
            s.first_sequence,
            s.last_sequence,
            s.replicas,
            s.duplicate_window_secs,
            s.subjects.join(",")
        );
        for c in &s.consumers {
            println!(
                "  consumer {:<24} pending {:>10}  ack pending {:>6}  delivered seq {}",
                c.name, c.pending, c.ack_pending, c.delivered_sequence
            );
        }
    }
}
