//! `timpora correlator` and the rule-set commands: check, apply (hot reload), status.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use timpora_rules::RuleSet;

use crate::config::Config;
use crate::{CorrelatorArgs, NatsArgs, connect, connect_waiting, signal};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The rule file (TOML).
    pub file: std::path::PathBuf,
    /// How long to wait for the correlator to report the new set running (0: do not wait).
    #[arg(long, default_value = "30s")]
    pub wait: String,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Read and check a rule file (the built-in set when `file` is `None`): its text and the set.
/// An invalid file has its errors printed (`NAME:LINE: rule ID: what`) and yields `None`: it is
/// never used.
pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Option<(String, RuleSet)>> {
    let (name, text) = match file {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        None => (
            "built-in rules".to_owned(),
            timpora_rules::DEFAULT_RULES.to_owned(),
        ),
    };
    match timpora_rules::parse(&text) {
        Ok(set) => Ok(Some((text, set))),
        Err(errors) => {
            for e in &errors.0 {
                let rule = e
                    .rule
                    .as_ref()
                    .map(|r| format!(" rule {r}:"))
                    .unwrap_or_default();
                eprintln!("{name}:{}:{rule} {}", e.line, e.message);
            }
            eprintln!(
                "{name}: {} errors; the rule set is not valid",
                errors.0.len()
            );
            Ok(None)
        }
    }
}

/// A duration flag's value (`250ms`, `5s`, `1m`, `12h`, `30d`), or an error naming the flag.
pub(crate) fn duration(flag: &str, v: &str) -> anyhow::Result<Duration> {
    timpora_rules::parse_duration(v)
        .with_context(|| format!("--{flag} {v:?} is not a duration; write e.g. 250ms, 5s, 1m"))
}

/// `timpora rules check FILE`.
pub(crate) fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let Some((_, set)) = load(Some(file))? else {
        return Ok(ExitCode::FAILURE);
    };
    let rules: Vec<String> = set
        .rules
        .iter()
        .map(|r| format!("{} ({})", r.id, r.severity.as_str()))
        .collect();
    println!(
        "{}: rule set {} is valid: {} rules: {}",
        file.display(),
        set.version,
        set.rules.len(),
        rules.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `timpora correlator`: runs until SIGINT/SIGTERM; SIGHUP re-reads `--rules` and applies it
/// when valid.
pub(crate) async fn correlator(cfg: Config, args: CorrelatorArgs) -> anyhow::Result<ExitCode> {
    let (status, metrics) = match args.metrics {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics: cannot listen on {addr}"))?;
            let (tx, rx) = tokio::sync::watch::channel(timpora_bus::CorrelatorStatus::default());
            let server = tokio::spawn(crate::metrics::serve(listener, rx));
            (Some(tx), Some(server))
        }
        None => (None, None),
    };
    let options = timpora_correlator::Options {
        lateness: duration("lateness", &args.lateness)?,
        tick_every: duration("tick", &args.tick)?,
        checkpoint_every: duration("checkpoint-every", &args.checkpoint_every)?,
        state_cap: args.state_cap,
        progress: None,
        status,
    };
    anyhow::ensure!(!options.tick_every.is_zero(), "--tick must be positive");
    anyhow::ensure!(
        !options.checkpoint_every.is_zero(),
        "--checkpoint-every must be positive"
    );
    let text = match &args.rules {
        Some(file) => match load(Some(file))? {
            Some((text, _)) => Some(text),
            None => return Ok(ExitCode::FAILURE),
        },
        None => None,
    };
    let shutdown = signal::shutdown();
    let bus = connect_waiting(&cfg, "timpora-correlator").await?;
    let reloader = tokio::spawn(reload_on_hangup(bus.clone(), args.rules.clone()));
    let result = timpora_correlator::run(bus, text.as_deref(), options, shutdown).await;
    reloader.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// On each SIGHUP, check the rule file again and make it the active set when valid.
async fn reload_on_hangup(bus: timpora_bus::Bus, file: Option<std::path::PathBuf>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use `timpora rules apply`");
            return;
        };
        while hangups.recv().await.is_some() {
            let Some(path) = &file else {
                tracing::warn!("SIGHUP without --rules; use `timpora rules apply FILE`");
                continue;
            };
            match load(Some(path)) {
                Ok(Some((text, set))) => match bus.put_rules(&text).await {
                    Ok(_) => tracing::info!(
                        file = %path.display(), version = %set.version, "rule file re-read on SIGHUP"
                    ),
                    Err(e) => tracing::error!(error = %e, "cannot store the re-read rule set"),
                },
                Ok(None) => tracing::error!(
                    file = %path.display(), "rule file invalid on SIGHUP; keeping the running set"
                ),
                Err(e) => tracing::error!(error = %e, "cannot re-read the rule file"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (bus, file);
    }
}

/// `timpora rules apply FILE`.
pub(crate) async fn apply(cfg: &Config, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let wait = duration("wait", &args.wait)?;
    let Some((text, set)) = load(Some(&args.file))? else {
        return Ok(ExitCode::FAILURE);
    };
    let bus = connect(cfg).await?;
    bus.ensure_topology().await?;
    bus.put_rules(&text).await?;
    println!(
        "rule set {} ({} rules, sha256 {}) is now the active set",
        set.version,
        set.rules.len(),
        &set.digest[..12]
    );
    if wait.is_zero() {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some(s) = bus.correlator_status().await?
            && s.digest == set.digest
        {
            println!(
                "the correlator runs it: alerts of events after stream sequence {} are decided by it",
                s.since_sequence
            );
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "no correlator reported running it within {}; it takes effect when `timpora correlator` (re)starts",
        args.wait
    );
    Ok(ExitCode::FAILURE)
}

/// `timpora rules status`.
pub(crate) async fn status(cfg: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let bus = connect(cfg).await?;
    bus.ensure_topology().await?;
    let active = bus
        .active_rules()
        .await?
        .map(|t| timpora_rules::parse(&t).map(|s| (s.version, s.digest)));
    let status = bus.correlator_status().await?;
    if json {
        let (version, digest) = match &active {
            Some(Ok((v, d))) => (Some(v.as_str()), Some(d.as_str())),
            _ => (None, None),
        };
        let out = serde_json::json!({
            "active": { "version": version, "digest": digest },
            "correlator": status,
        });
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    match &active {
        Some(Ok((v, d))) => println!("active rule set: {v} (sha256 {})", &d[..12]),
        Some(Err(e)) => println!("active rule set: invalid ({e})"),
        None => println!("active rule set: none applied yet (the correlator starts with R1-R6)"),
    }
    match status {
        None => println!("correlator: has not reported"),
        Some(s) => {
            println!(
                "correlator: runs {} (sha256 {}) since stream sequence {}; reported {}",
                s.version,
                s.digest.get(..12).unwrap_or(&s.digest),
                s.since_sequence,
                s.reported_at
            );
            println!(
                "  checkpoint at sequence {}; events {}, late {}, alerts {}",
                s.checkpoint_sequence, s.events, s.late_events, s.alerts
            );
            println!(
                "  state entries {} of cap {}; groups dropped at the cap {}",
                s.tracked, s.state_cap, s.shed_groups
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
