//! The `timpora` command line: argument parsing, layered configuration (defaults → file →
//! `TIMPORA_` environment → flags), and the subcommands. Every command that runs services
//! (`up`, `gateway`, `correlator`, `console`) builds them through `timpora-hub`; the rest are
//! clients and printing.

mod alerts;
mod audit;
mod backtest;
mod bench;
mod bus;
mod client;
mod logging;
mod rules;
mod signal;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use timpora_hub::{Components, Config, Options};

use bus::{NatsArgs, apply_nats};
pub use logging::{LogFormat, init as init_tracing};

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole hub in one process: NATS (as a child), gateway, correlator and console, with
    /// development credentials in the data directory; `--demo` adds the simulated agencies.
    Up(up::UpArgs),
    /// The scenario simulator: acts as the agencies through the gateway (each with its own
    /// identity), ordinary traffic with the storylines of R1-R6 woven in.
    Demo(DemoArgs),
    /// The operations console (web): live alerts, evidence, actions, region overview. Serves it
    /// (a client of the gateway, as each account's configured identity) unless a subcommand is
    /// given.
    Console(ConsoleArgs),
    /// Run the gRPC gateway (every agency service, the event bus, health, reflection).
    Gateway(GatewayArgs),
    /// Administer the NATS JetStream topology.
    #[command(subcommand)]
    Bus(bus::BusCommand),
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
    /// Run the sealer: a signed Merkle log over the events, alerts and access streams, with
    /// checkpoints every `sealer.every_messages` messages or `sealer.every`. `key FILE` writes a
    /// new sealer key instead.
    Sealer(SealerArgs),
    /// Run a witness (as another agency would): cosign the hub's checkpoints only when each
    /// extends the last one cosigned. `key FILE --name NAME` writes a new witness key instead.
    Witness(WitnessArgs),
    /// What an auditor checks alone: the streams against their signed, witnessed logs, and
    /// offline proofs of single records.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
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

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Scenario seed: the same seed gives the same scenario (default: `demo.seed`, 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Acts (agency calls) per second (default: `demo.rate`, 5).
    #[arg(long)]
    pub rate: Option<f64>,
    /// One set of R1-R6 storylines at the start and then every this many acts (0: only at the
    /// start; default: `demo.storyline_every`, 150).
    #[arg(long)]
    pub storyline_every: Option<u64>,
    /// Stop after this many acts (default: until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    /// Gateway URL (default: the configured listen address).
    #[arg(long, env = "TIMPORA_GATEWAY")]
    pub gateway: Option<String>,
}

#[derive(Debug, Args)]
pub struct CorrelatorArgs {
    /// Rule file (TOML); the built-in rule set R1-R6 when absent (default: `correlator.rules`).
    #[arg(long, env = "TIMPORA_RULES")]
    pub rules: Option<PathBuf>,
    /// How far out of event-time order events may arrive and still be handled exactly
    /// (default: `correlator.lateness`, 5s).
    #[arg(long)]
    pub lateness: Option<String>,
    /// How often a clock tick is recorded into the stream (default 1s).
    #[arg(long)]
    pub tick: Option<String>,
    /// How often the state and stream position are checkpointed (default 10s).
    #[arg(long)]
    pub checkpoint_every: Option<String>,
    /// Most entries of state held; past it the groups idle longest are dropped (with a warning
    /// and a counter in `timpora rules status`; default 5000000).
    #[arg(long)]
    pub state_cap: Option<usize>,
    /// Serve telemetry on this address: `/metrics` (events, late events, alerts, state entries
    /// and cap, groups dropped, position, lag), `/healthz` and `/readyz` (the same as
    /// `[telemetry] listen`).
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Share the work with the other correlators started with the same number: the group keys
    /// are cut into this many parts, divided among the correlators running, and taken over from
    /// one that stops (default: `correlator.partitions`, 1).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// How long a hold on a part lasts unless renewed: the takeover time after a crash
    /// (default: `correlator.lease`, 5s).
    #[arg(long)]
    pub lease: Option<String>,
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

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SealerArgs {
    #[command(subcommand)]
    pub command: Option<SealerCommand>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Debug, Subcommand)]
pub enum SealerCommand {
    /// Write a new Ed25519 sealer key to FILE (readable only by its owner; never replaced) and
    /// print the verifier key of each log, which auditors and witnesses are given.
    Key {
        /// Where to write the key.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WitnessArgs {
    #[command(subcommand)]
    pub command: Option<WitnessCommand>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Write a new Ed25519 witness key to FILE (owner-only; never replaced) and print its
    /// cosignature verifier key, which the sealer (`sealer.witnesses`) and auditors are given.
    Key {
        /// Where to write the key.
        file: PathBuf,
        /// The witness's name (e.g. `kejaksaan.go.id/witness`).
        #[arg(long)]
        name: String,
    },
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
    Correlate(bench::CorrelateArgs),
    /// What waiting for late reports adds to R1, R4 and R5, and what it spares.
    Lateness(bench::LatenessArgs),
    /// Audit replay and verify against a raw ordered read, and the sealer's lag at a steady rate.
    Audit(bench::AuditArgs),
    /// The whole hub (`timpora up`, telemetry on) under a fixed rate of scenario traffic for a
    /// long time: latency, lag, memory and every error.
    Soak(bench::SoakArgs),
}

impl Command {
    /// The `service.name` of a command that runs services, for its traces: the component, or
    /// `timpora` for `up`, which runs them all in one process.
    pub fn service_name(&self) -> Option<&'static str> {
        match self {
            Command::Up(_) => Some("timpora"),
            Command::Gateway(_) => Some("timpora-gateway"),
            Command::Correlator(_) => Some("timpora-correlator"),
            Command::Sealer(SealerArgs { command: None, .. }) => Some("timpora-sealer"),
            Command::Witness(WitnessArgs { command: None, .. }) => Some("timpora-witness"),
            Command::Console(ConsoleArgs { command: None, .. }) => Some("timpora-console"),
            Command::Demo(_) => Some("timpora-demo"),
            _ => None,
        }
    }

    /// Log filter when `RUST_LOG` is unset: services log their life at `info`; command-line
    /// clients only say something when it goes wrong.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Gateway(_)
            | Command::Correlator(_)
            | Command::Sealer(SealerArgs { command: None, .. })
            | Command::Witness(WitnessArgs { command: None, .. })
            | Command::Up(_)
            | Command::Demo(_)
            | Command::Console(ConsoleArgs { command: None, .. }) => "info,async_nats=warn",
            // Late events are what it plays: the engine's warnings about them are its input.
            Command::Bench(BenchCommand::Lateness(_)) => "warn,timpora_correlate=error",
            _ => "warn",
        }
    }
}

/// Run a parsed command line: load the configuration, start logging (and the export of traces
/// for a command that runs services, when `[telemetry.traces]` names an endpoint), run the
/// command, and export the last spans.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.config.clone().or_else(|| {
        let p = timpora_client::dev::config_path(&cli.data_dir);
        p.exists().then_some(p)
    });
    let filter = cli.command.default_log_filter();
    let cfg = match Config::load(config_path.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            init_tracing(cli.log_format, filter, None);
            return Err(e.into());
        }
    };
    let traces = match (cli.command.service_name(), &cfg.telemetry.traces.endpoint) {
        (Some(service), Some(endpoint)) => {
            let export = timpora_telemetry::traces::Export {
                endpoint: endpoint.clone(),
                sampling: cfg.telemetry.traces.sampling,
                service: service.to_owned(),
                attributes: vec![(
                    "service.instance.id".to_owned(),
                    format!("{}-{}", hostname(), std::process::id()),
                )],
            };
            match timpora_telemetry::traces::Exporter::start(&export) {
                Ok(exporter) => Some(exporter),
                Err(e) => {
                    init_tracing(cli.log_format, filter, None);
                    return Err(e.into());
                }
            }
        }
        _ => None,
    };
    init_tracing(cli.log_format, filter, traces.as_ref());
    if traces.is_some() {
        tracing::info!(
            endpoint = ?cfg.telemetry.traces.endpoint,
            sampling = cfg.telemetry.traces.sampling,
            "exporting traces"
        );
    }
    let result = command(cli, cfg).await;
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    result
}

/// This machine's name, for the traces' `service.instance.id`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

async fn command(cli: Cli, mut cfg: Config) -> anyhow::Result<ExitCode> {
    let dir = &cli.data_dir;
    match cli.command {
        Command::Gateway(args) => {
            cfg.gateway.listen = args.listen.unwrap_or(cfg.gateway.listen);
            apply_nats(&mut cfg, &args.nats);
            return serve(cfg, Components::gateway(), dir, None).await;
        }
        Command::Correlator(args) => {
            apply_nats(&mut cfg, &args.nats);
            let c = &mut cfg.correlator;
            c.rules = args.rules.or(c.rules.take());
            c.lateness = args.lateness.unwrap_or(c.lateness.clone());
            c.tick = args.tick.unwrap_or(c.tick.clone());
            c.checkpoint_every = args.checkpoint_every.unwrap_or(c.checkpoint_every.clone());
            c.state_cap = args.state_cap.unwrap_or(c.state_cap);
            c.metrics = args.metrics.or(c.metrics);
            c.partitions = args.partitions.unwrap_or(c.partitions);
            c.lease = args.lease.unwrap_or(c.lease.clone());
            if let Some(file) = &c.rules
                && rules::load(file)?.is_none()
            {
                return Ok(ExitCode::FAILURE);
            }
            return serve(cfg, Components::correlator(), dir, None).await;
        }
        Command::Console(ConsoleArgs {
            command: None,
            listen,
            gateway,
        }) => {
            cfg.console.listen = listen.unwrap_or(cfg.console.listen);
            return serve(cfg, Components::console(), dir, gateway).await;
        }
        Command::Up(args) => return up::run(dir, args, signal::shutdown()).await,
        Command::Bus(cmd) => bus::run(&mut cfg, cmd).await?,
        Command::Publish(args) => return client::publish(&cfg, dir, args).await,
        Command::Subscribe(args) => client::subscribe(&cfg, dir, args).await?,
        Command::Dev(DevCommand::Init {
            force,
            listen,
            nats_url,
        }) => println!(
            "{}",
            timpora_testkit::dev::init(dir, force, listen, &nats_url)?
        ),
        Command::Config(ConfigCommand::Print) => print!("{}", toml::to_string_pretty(&cfg)?),
        Command::Sealer(SealerArgs {
            command: None,
            nats,
        }) => {
            apply_nats(&mut cfg, &nats);
            return serve(cfg, Components::sealer(), dir, None).await;
        }
        Command::Sealer(SealerArgs {
            command: Some(SealerCommand::Key { file }),
            ..
        }) => {
            let key = timpora_testkit::dev::signing_key(&file, "timpora-sealer")?;
            for (log, _) in cfg.bus.sealed_streams() {
                let origin = timpora_sealer::origin(&cfg.sealer.deployment, log);
                println!("{}", key.renamed(&origin)?.log_verifier());
            }
        }
        Command::Witness(WitnessArgs {
            command: None,
            nats,
        }) => {
            apply_nats(&mut cfg, &nats);
            return serve(cfg, Components::witness(), dir, None).await;
        }
        Command::Witness(WitnessArgs {
            command: Some(WitnessCommand::Key { file, name }),
            ..
        }) => {
            let key = timpora_testkit::dev::signing_key(&file, &name)?;
            println!("{}", key.witness_verifier());
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
            println!("{}", timpora_console::auth::hash_password(password)?);
        }
        Command::Demo(args) => return demo(cfg, dir, args).await,
        Command::Alerts(cmd) => alerts::run(&cfg, dir, cmd).await?,
        Command::Audit(cmd) => return audit::run(&mut cfg, dir, cmd).await,
        Command::Bench(BenchCommand::Ingest(args)) => bench::ingest(args).await?,
        Command::Bench(BenchCommand::Correlate(args)) => bench::correlate(args).await?,
        Command::Bench(BenchCommand::Lateness(args)) => bench::lateness(args).await?,
        Command::Bench(BenchCommand::Audit(args)) => bench::audit(args).await?,
        Command::Bench(BenchCommand::Soak(args)) => bench::soak(args).await?,
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

/// Run `components` of the hub until SIGINT/SIGTERM, or until one of them stops by itself.
async fn serve(
    cfg: Config,
    components: Components,
    data_dir: &std::path::Path,
    gateway_url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let shutdown = signal::shutdown();
    let hub = cfg
        .build(Options {
            components,
            data_dir: Some(data_dir.to_path_buf()),
            gateway_url,
            nats_child: None,
        })
        .await?;
    if let Some(url) = hub.console_url() {
        println!("console on {url}");
    }
    hub.spawn().run_until(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// `timpora demo`: the simulator alone, against a running gateway.
async fn demo(
    mut cfg: Config,
    data_dir: &std::path::Path,
    a: DemoArgs,
) -> anyhow::Result<ExitCode> {
    let d = &mut cfg.demo;
    d.seed = a.seed.unwrap_or(d.seed);
    d.rate = a.rate.unwrap_or(d.rate);
    d.storyline_every = a.storyline_every.unwrap_or(d.storyline_every);
    timpora_hub::demo::check(&cfg.demo)?;
    let (target, keyring) = cfg.gateway_client(a.gateway.clone(), Some(data_dir));
    let t =
        timpora_hub::demo::run(&target, &keyring, &cfg.demo, a.count, signal::shutdown()).await?;
    println!(
        "demo: {} acts sent ({} already stored), {} refused",
        t.sent, t.duplicates, t.refused
    );
    Ok(if t.refused > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
