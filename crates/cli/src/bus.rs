//! `timpora bus init|status` and what every command that talks to NATS directly shares: the
//! `--nats-url` flag and the connection.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use timpora_bus::Identity;
use timpora_hub::Config;

#[derive(Debug, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated (overrides the config).
    #[arg(long, env = "TIMPORA_NATS_URL")]
    pub nats_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Print the `nats-server` `authorization` block that gives each component's NATS user
    /// (admin, gateway, correlator, sealer, witness, auditor) exactly its permissions on this
    /// topology: with the public keys of the credentials in `nats.credentials_dir`, or with
    /// `$TIMPORA_NKEY_<IDENTITY>` variables the server resolves from its environment.
    Authorization {
        /// Name each user's public nkey by an environment variable instead.
        #[arg(long)]
        variables: bool,
    },
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

/// Use `--nats-url` when given.
pub fn apply_nats(cfg: &mut Config, args: &NatsArgs) {
    if let Some(url) = &args.nats_url {
        cfg.nats.url = url.clone();
    }
}

/// Connect to NATS for a command-line tool as `identity` (no waiting: the server is expected
/// to run). The identity's credentials come from `nats.credentials_dir`.
pub async fn connect(cfg: &Config, identity: Identity) -> anyhow::Result<timpora_bus::Bus> {
    timpora_bus::Bus::connect(
        cfg.nats.options(identity),
        &format!("timpora-cli-{identity}"),
        cfg.bus.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "is nats-server running at {}, and does it know the {identity} credentials?",
            timpora_bus::redact(&cfg.nats.url)
        )
    })
}

/// Run a `bus` subcommand.
pub async fn run(cfg: &mut Config, cmd: BusCommand) -> anyhow::Result<()> {
    match cmd {
        BusCommand::Authorization { variables } => {
            let users = match (variables, &cfg.nats.credentials_dir) {
                (true, _) => timpora_bus::auth::variables(),
                (false, Some(dir)) => timpora_bus::auth::public_keys(dir)?
                    .into_iter()
                    .map(|(id, key)| (id, format!("\"{key}\"")))
                    .collect(),
                (false, None) => anyhow::bail!(
                    "no nats.credentials_dir in the config: pass --variables, or generate \
                     credentials with `timpora dev init`"
                ),
            };
            print!("{}", timpora_bus::auth::authorization(&cfg.bus, &users));
        }
        BusCommand::Init(nats) => {
            apply_nats(cfg, &nats);
            let bus = connect(cfg, Identity::Admin).await?;
            bus.ensure_topology().await?;
            println!(
                "stream {} ready on {} (subjects {}.>)",
                cfg.bus.events_stream,
                timpora_bus::redact(&cfg.nats.url),
                cfg.bus.subject_prefix
            );
        }
        BusCommand::Status { nats, json } => {
            apply_nats(cfg, &nats);
            let status = connect(cfg, Identity::Auditor).await?.status().await?;
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                print_status(&status);
            }
        }
    }
    Ok(())
}

fn print_status(status: &timpora_bus::Status) {
    println!("server: {}", status.server);
    if let Some(cluster) = &status.cluster {
        println!("cluster: {cluster} (members {})", status.members.join(", "));
    }
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
        if let (Some(events), Some(ticks)) = (s.agency_events, s.clock_ticks) {
            println!("  of which {events} agency events and {ticks} hub clock ticks");
        }
        if let Some(p) = &s.placement
            && (status.cluster.is_some() || !p.followers.is_empty())
        {
            let followers: Vec<String> = p
                .followers
                .iter()
                .map(|f| {
                    let state = match (f.offline, f.current) {
                        (true, _) => "offline".to_owned(),
                        (false, true) => "in sync".to_owned(),
                        (false, false) => format!("{} behind", f.lag),
                    };
                    format!("{} ({state})", f.name)
                })
                .collect();
            println!(
                "  leader {}  followers {}",
                p.leader.as_deref().unwrap_or("none (electing)"),
                if followers.is_empty() {
                    "none".to_owned()
                } else {
                    followers.join(", ")
                }
            );
        }
        let heard = |src: &timpora_bus::SourceStatus| match src.active_ms {
            Some(ms) => format!("heard from {:.1} s ago", ms as f64 / 1000.0),
            None => "never heard from".to_owned(),
        };
        if let Some(m) = &s.mirror {
            println!("  mirror of {}  behind {}  {}", m.name, m.lag, heard(m));
        }
        for src in &s.sources {
            println!("  source {}  behind {}  {}", src.name, src.lag, heard(src));
        }
        for c in &s.consumers {
            println!(
                "  consumer {:<24} lag {:>10}  ack pending {:>6}  delivered seq {}",
                c.name, c.pending, c.ack_pending, c.delivered_sequence
            );
        }
    }
}
