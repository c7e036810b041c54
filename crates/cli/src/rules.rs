//! The rule-set commands: check, apply (hot reload), status.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use timpora_rules::RuleSet;

use timpora_hub::Config;

use crate::bus::{NatsArgs, connect};
use timpora_bus::Identity;

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

/// Read and check a rule file: `None`, with every error printed (`NAME:LINE: rule ID: what`),
/// when it does not check; it is then never used.
pub(crate) fn load(file: &Path) -> anyhow::Result<Option<(String, RuleSet)>> {
    match timpora_rules::load(Some(file)) {
        Ok(loaded) => Ok(Some(loaded)),
        Err(e @ timpora_rules::LoadError::Invalid { .. }) => {
            eprintln!("{e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// A duration flag's value (`250ms`, `5s`, `1m`, `12h`, `30d`), or an error naming the flag.
pub(crate) fn duration(flag: &str, v: &str) -> anyhow::Result<Duration> {
    Ok(timpora_hub::duration(&format!("--{flag}"), v)?)
}

/// `timpora rules check FILE`.
pub(crate) fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let Some((_, set)) = load(file)? else {
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

/// `timpora rules apply FILE`.
pub(crate) async fn apply(cfg: &Config, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let wait = duration("wait", &args.wait)?;
    let Some((text, set)) = load(&args.file)? else {
        return Ok(ExitCode::FAILURE);
    };
    let bus = connect(cfg, Identity::Admin).await?;
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
        // Every correlator running (or every part, when they share the work) runs it.
        let statuses = bus.correlator_statuses().await?;
        let running: Vec<_> = statuses.iter().filter(|s| s.part.is_empty()).collect();
        let parts: Vec<_> = statuses.iter().filter(|s| !s.part.is_empty()).collect();
        let current = if parts.is_empty() { running } else { parts };
        if !current.is_empty() && current.iter().all(|s| s.digest == set.digest) {
            let since = current.iter().map(|s| s.since_sequence).max().unwrap_or(0);
            println!(
                "the correlator runs it: alerts of events after stream sequence {since} are decided by it"
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
    let bus = connect(cfg, Identity::Auditor).await?;
    let active = bus
        .active_rules()
        .await?
        .map(|t| timpora_rules::parse(&t).map(|s| (s.version, s.digest)));
    let statuses = bus.correlator_statuses().await?;
    if json {
        let (version, digest) = match &active {
            Some(Ok((v, d))) => (Some(v.as_str()), Some(d.as_str())),
            _ => (None, None),
        };
        let out = serde_json::json!({
            "active": { "version": version, "digest": digest },
            "correlator": statuses.iter().find(|s| s.part.is_empty()),
            "parts": statuses.iter().filter(|s| !s.part.is_empty()).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    match &active {
        Some(Ok((v, d))) => println!("active rule set: {v} (sha256 {})", &d[..12]),
        Some(Err(e)) => println!("active rule set: invalid ({e})"),
        None => println!("active rule set: none applied yet (the correlator starts with R1-R6)"),
    }
    if statuses.is_empty() {
        println!("correlator: has not reported");
    }
    for s in &statuses {
        let who = match s.part.as_str() {
            "" => "correlator".to_owned(),
            part => format!("part {part} (correlator {})", s.member),
        };
        println!(
            "{who}: runs {} (sha256 {}) since stream sequence {}; reported {}",
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
    Ok(ExitCode::SUCCESS)
}
