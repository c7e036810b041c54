//! `timpora up`: the whole hub in one process for development and evaluation. It adds only two
//! things to the hub every other command runs: the development set-up of the data directory on
//! first use (local CA, agency certificates, tokens, key, console accounts, config), and a
//! `nats-server` child with its store in the data directory (unless `--nats-url` names one).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use timpora_hub::{Components, Config, Options};
use timpora_scenario::pilot;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Use this NATS server (URL list) instead of starting one.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Gateway address, written into the config on first use.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Client port of the NATS server started here, written into the config on first use.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    /// Console address (default: `console.listen` from the config, 127.0.0.1:8080).
    #[arg(long)]
    pub console_listen: Option<SocketAddr>,
    /// Serve telemetry on this address: `/metrics` of every component, `/healthz`, `/readyz`
    /// (default: `telemetry.listen`, or `correlator.metrics`).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// The correlator's rule file, re-read on SIGHUP (default: `correlator.rules`, else R1-R6).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Also run the scenario simulator: the agencies' activity through the gateway, with the
    /// storylines of R1-R6, so alerts appear within seconds.
    #[arg(long)]
    pub demo: bool,
    /// The simulator's seed (with --demo).
    #[arg(long, requires = "demo")]
    pub seed: Option<u64>,
    /// The simulator's acts per second (with --demo).
    #[arg(long, requires = "demo")]
    pub rate: Option<f64>,
}

/// The port of a `nats://host:port` URL.
fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

pub async fn run(
    data_dir: &Path,
    a: UpArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let config_path = timpora_client::dev::config_path(data_dir);
    if !config_path.exists() {
        let url = a
            .nats_url
            .clone()
            .unwrap_or_else(|| format!("nats://127.0.0.1:{}", a.nats_port));
        println!(
            "{}",
            timpora_testkit::dev::init(data_dir, false, a.listen, &url)?
        );
    }
    let mut cfg = Config::load(Some(&config_path))?;
    let nats_child = match &a.nats_url {
        Some(url) => {
            cfg.nats.url.clone_from(url);
            None
        }
        None => {
            let port = port_of(&cfg.nats.url).with_context(|| {
                format!(
                    "no port in the configured NATS URL {}",
                    timpora_bus::redact(&cfg.nats.url)
                )
            })?;
            // The server started here requires each component's credentials (and TLS), as a
            // production one does; a data directory set up before that gets them now.
            timpora_testkit::dev::nats_security(&mut cfg, data_dir)?;
            Some(
                timpora_natsd::NatsServer::builder()
                    .port(port)
                    .store_dir(data_dir.join("nats"))
                    .config(timpora_testkit::dev::nats_server_config(&cfg, data_dir)?),
            )
        }
    };
    // A data directory set up before the transparency log existed gets its keys now.
    timpora_testkit::dev::transparency(&mut cfg, data_dir)?;
    cfg.console.listen = a.console_listen.unwrap_or(cfg.console.listen);
    cfg.correlator.metrics = a.metrics.or(cfg.correlator.metrics);
    cfg.correlator.rules = a.rules.or(cfg.correlator.rules.take());
    cfg.demo.seed = a.seed.unwrap_or(cfg.demo.seed);
    cfg.demo.rate = a.rate.unwrap_or(cfg.demo.rate);
    let console = !cfg.console.accounts.is_empty();
    if !console {
        tracing::warn!(
            "no console accounts in the config: the console is not started (add \
             [[console.accounts]] or set the data directory up again with `timpora dev init --force`)"
        );
    }
    let port = port_of(&cfg.nats.url).unwrap_or_default();
    let hub = cfg
        .build(Options {
            components: Components {
                gateway: true,
                correlator: true,
                sealer: true,
                witness: true,
                console,
                demo: a.demo,
            },
            data_dir: Some(data_dir.to_path_buf()),
            gateway_url: None,
            nats_child,
        })
        .await
        .map_err(|e| match e {
            timpora_hub::Error::Nats(e) => anyhow::anyhow!(
                "cannot start nats-server on port {port} (is another `timpora up` or \
                 nats-server running? pass --nats-url to use it): {e}"
            ),
            other => other.into(),
        })?;
    banner(&hub, data_dir, a.demo);
    match hub.spawn().run_until(shutdown).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What is running, where, and how to log in.
fn banner(hub: &timpora_hub::Hub, data_dir: &Path, demo: bool) {
    let cfg = hub.config();
    let tls = cfg.gateway.tls.is_some();
    let dir = data_dir.display();
    println!("TIMPORA hub is up");
    println!(
        "  gateway    {}://{} ({})",
        if tls { "https" } else { "http" },
        cfg.gateway.listen,
        if tls {
            "mutual TLS with the agency certificates, or development tokens"
        } else {
            "development tokens"
        }
    );
    if let Some(url) = hub.console_url() {
        match cfg.console.tls {
            Some(_) => println!(
                "  console    {url}  (open it in a browser; its certificate is from the \
                 development CA {dir}/pki/ca.pem: trust that CA, or accept the warning)"
            ),
            None => println!("  console    {url}  (open it in a browser)"),
        }
        for (user, password) in timpora_client::dev::console_passwords(data_dir) {
            println!("             log in as {user:<10} password {password}");
        }
    }
    if let Some(addr) = hub.metrics_addr() {
        println!("  telemetry  http://{addr}/metrics, /healthz, /readyz");
    }
    let secured = match (&cfg.nats.credentials_dir, &cfg.nats.tls) {
        (Some(dir), Some(_)) => format!(
            "TLS, one user per component (credentials in {})",
            dir.display()
        ),
        (Some(dir), None) => format!("one user per component (credentials in {})", dir.display()),
        (None, Some(_)) => "TLS, anonymous".to_owned(),
        (None, None) => "anonymous".to_owned(),
    };
    println!(
        "  nats       {} ({secured})",
        timpora_bus::redact(&cfg.nats.url)
    );
    println!(
        "  data       {dir} (CA and agency certificates in {dir}/pki, tokens in {dir}/timpora.toml)"
    );
    println!("  identities {}", pilot::IDENTITIES.join(", "));
    println!("  try        timpora --data-dir {dir} alerts tail");
    if demo {
        println!(
            "  demo       the agencies' simulated activity (seed {}, {} acts/s); alerts appear within seconds",
            cfg.demo.seed, cfg.demo.rate
        );
    }
    println!("Ctrl-C stops it (a second Ctrl-C at once).");
}
