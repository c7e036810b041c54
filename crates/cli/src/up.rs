//! `timpora up`: the whole hub in one process for development and evaluation. It sets up the
//! data directory on first use (local CA, agency certificates, tokens, key, config), starts
//! `nats-server` as a child with its store in the data directory (unless `--nats-url` names
//! one), provisions the topology, and runs the gateway and the correlator until Ctrl-C.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::watch;

use crate::{config, connect_waiting, console, demo, dev, signal};

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
    /// Also run the scenario simulator: the agencies' activity through the gateway, with the
    /// storylines of R1-R6, so alerts appear within seconds.
    #[arg(long)]
    pub demo: bool,
    /// The simulator's seed (with --demo).
    #[arg(long, default_value_t = 1, requires = "demo")]
    pub seed: u64,
    /// The simulator's acts per second (with --demo).
    #[arg(long, default_value_t = 5.0, requires = "demo")]
    pub rate: f64,
}

/// The port of a `nats://host:port` URL.
fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

pub async fn run(data_dir: &Path, a: UpArgs) -> anyhow::Result<ExitCode> {
    let config_path = data_dir.join("timpora.toml");
    if !config_path.exists() {
        let url = a
            .nats_url
            .clone()
            .unwrap_or_else(|| format!("nats://127.0.0.1:{}", a.nats_port));
        dev::init(data_dir, false, a.listen, &url)?;
    }
    let mut cfg = config::load(Some(&config_path))?;
    let mut nats = None;
    match &a.nats_url {
        Some(url) => cfg.nats.url = url.clone(),
        None => {
            let port = port_of(&cfg.nats.url)
                .with_context(|| format!("no port in the configured NATS URL {}", cfg.nats.url))?;
            let store = data_dir.join("nats");
            let server = timpora_natsd::NatsServer::builder()
                .port(port)
                .store_dir(&store)
                .start()
                .with_context(|| {
                    format!(
                        "cannot start nats-server on port {port} (is another `timpora up` or \
                         nats-server running? pass --nats-url to use it)"
                    )
                })?;
            cfg.nats.url = server.url();
            nats = Some(server);
        }
    }
    let shutdown = signal::shutdown();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let bus = connect_waiting(&cfg, "timpora-up").await?;
    let listener = tokio::net::TcpListener::bind(cfg.gateway.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.gateway.listen))?;
    let tls = cfg.gateway.tls.is_some();
    let gateway = tokio::spawn(timpora_gateway::serve(
        cfg.gateway.clone(),
        bus.clone(),
        listener,
        stopped(),
    ));
    let correlator = tokio::spawn(timpora_correlator::run(
        bus.clone(),
        None,
        timpora_correlator::Options::default(),
        stopped(),
    ));
    let console_addr = a.console_listen.unwrap_or(cfg.console.listen);
    let console = if cfg.console.accounts.is_empty() {
        tracing::warn!(
            "no console accounts in the config: the console is not started (add \
             [[console.accounts]] or set the data directory up again with `timpora dev init --force`)"
        );
        None
    } else {
        console::validate(&cfg.console)?;
        let listener = tokio::net::TcpListener::bind(console_addr)
            .await
            .with_context(|| format!("cannot serve the console on {console_addr}"))?;
        let (cfg, dir, stop) = (cfg.clone(), data_dir.to_path_buf(), stopped());
        Some(tokio::spawn(async move {
            console::serve(&cfg, &dir, None, listener, stop).await
        }))
    };
    let demo = a.demo.then(|| {
        let args = demo::DemoArgs {
            seed: a.seed,
            rate: a.rate,
            storyline_every: 150,
            count: None,
            gateway: None,
        };
        let (cfg, dir, stop) = (cfg.clone(), data_dir.to_path_buf(), stopped());
        tokio::spawn(async move { demo::run(&cfg, &dir, &args, stop).await })
    });
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
    if console.is_some() {
        println!("  console    http://{console_addr}  (open it in a browser)");
        for (user, password) in dev::console_passwords(data_dir) {
            println!("             log in as {user:<10} password {password}");
        }
    }
    println!("  nats       {}", cfg.nats.url);
    println!(
        "  data       {dir} (CA and agency certificates in {dir}/pki, tokens in {dir}/timpora.toml)"
    );
    println!(
        "  identities {}",
        timpora_gateway::pki::DEV_IDENTITIES.join(", ")
    );
    println!("  try        timpora --data-dir {dir} alerts tail");
    if a.demo {
        println!(
            "  demo       the agencies' simulated activity (seed {}, {} acts/s); alerts appear within seconds",
            a.seed, a.rate
        );
    }
    println!("Ctrl-C stops it (a second Ctrl-C at once).");
    shutdown.await;
    let _ = stop_tx.send(true);
    if let Some(d) = demo {
        match d.await? {
            Ok(t) => tracing::info!(acts = t.sent, refused = t.refused, "demo stopped"),
            Err(e) => tracing::error!(error = %e, "demo stopped with an error"),
        }
    }
    if let Some(c) = console
        && let Err(e) = c.await?
    {
        tracing::error!(error = %format!("{e:#}"), "console stopped with an error");
    }
    let (g, c) = tokio::join!(gateway, correlator);
    if let Err(e) = g? {
        tracing::error!(error = %e, "gateway stopped with an error");
    }
    if let Err(e) = c? {
        tracing::error!(error = %e, "correlator stopped with an error");
    }
    drop(bus);
    if let Some(mut server) = nats {
        server.shutdown(Duration::from_secs(10));
    }
    Ok(ExitCode::SUCCESS)
}
