//! `timpora audit`: what an auditor checks alone, with the policy file they were given (each
//! log's verifier key, the trusted witnesses, how many must have cosigned) and read access to
//! the streams — or, for a proof file, nothing but the file and the policy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use timpora_audit::{AuditPolicy, Finding, Report};
use timpora_hub::Config;

use crate::bus::{NatsArgs, apply_nats, connect};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify streams against their signed, witnessed logs: every message of the range
    /// recomputed into its leaf. Says the range is intact (up to which checkpoint, cosigned by
    /// whom) or names the first altered, removed or inserted message by sequence; exit status 1
    /// on any finding.
    Verify(VerifyArgs),
    /// Write an offline proof file for the record at SEQUENCE: the record, its inclusion proof
    /// and the cosigned checkpoint.
    Prove(ProveArgs),
    /// Check a proof file with no network at all; exit status 1 if it does not hold.
    VerifyProof {
        /// The proof file.
        file: PathBuf,
        /// The audit policy (default: the data directory's `audit-policy.toml`).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The log: events, alerts, access, or all.
    #[arg(long, default_value = "all")]
    pub log: String,
    /// The audit policy (default: the data directory's `audit-policy.toml`).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// First sequence to check.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Last sequence to check (default: the latest checkpoint's size).
    #[arg(long)]
    pub to: Option<u64>,
    /// One JSON report per line instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The record's stream sequence.
    pub sequence: u64,
    /// The log: events, alerts or access.
    #[arg(long, default_value = "events")]
    pub log: String,
    /// The audit policy (default: the data directory's `audit-policy.toml`).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Where to write the proof file.
    #[arg(long, short)]
    pub out: PathBuf,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// The auditor's policy file.
fn policy(given: Option<PathBuf>, data_dir: &Path) -> anyhow::Result<AuditPolicy> {
    let path = given.unwrap_or_else(|| data_dir.join("audit-policy.toml"));
    Ok(AuditPolicy::load(&path)?)
}

fn say(f: &Finding) -> String {
    match f {
        Finding::NoCheckpoint => "the log has no checkpoint yet".into(),
        Finding::CheckpointRefused { size, why } => {
            format!("checkpoint at size {size} does not meet the policy: {why}")
        }
        Finding::NotExtended { size } => {
            format!(
                "the signed checkpoint at size {size} is not a prefix of the latest: the log was rewritten"
            )
        }
        Finding::TilesAltered => "the kept hashes do not give the checkpoint's root".into(),
        Finding::Unlocated => {
            "the stream does not give the checkpoint's root, and the kept hashes cannot say where"
                .into()
        }
        Finding::Altered { sequence } => {
            format!("sequence {sequence}: altered (not the message sealed)")
        }
        Finding::Removed { sequence } => {
            format!("sequence {sequence}: removed (sealed, no longer stored)")
        }
        Finding::Inserted { sequence } => {
            format!("sequence {sequence}: inserted (stored where the log sealed none)")
        }
    }
}

fn print(r: &Report) {
    if r.intact() {
        let by = match r.cosigned_by.is_empty() {
            true => "no witness".to_owned(),
            false => r.cosigned_by.join(", "),
        };
        println!(
            "{}: intact, sequences {}-{} ({} checked, {} sealed as missing, {} before the retention cut) \
             against the checkpoint at size {} cosigned by {by}; {} stored since, not yet sealed",
            r.log, r.from, r.to, r.checked, r.gaps, r.retention_cut, r.checkpoint_size, r.unsealed
        );
    } else {
        for f in &r.findings {
            println!("{}: {}", r.log, say(f));
        }
    }
}

/// Run an `audit` subcommand.
pub async fn run(cfg: &mut Config, data_dir: &Path, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(a) => {
            apply_nats(cfg, &a.nats);
            let policy = policy(a.policy, data_dir)?;
            let bus = connect(cfg).await?;
            let logs: Vec<&str> = match a.log.as_str() {
                "all" => vec!["events", "alerts", "access"],
                one => vec![one],
            };
            let mut ok = true;
            for log in logs {
                let r = timpora_audit::verify_log(&bus, &policy, log, a.from, a.to, &mut |_, _| {})
                    .await
                    .with_context(|| format!("cannot verify {log}"))?;
                ok &= r.intact();
                match a.json {
                    true => println!("{}", serde_json::to_string(&r)?),
                    false => print(&r),
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Prove(a) => {
            apply_nats(cfg, &a.nats);
            let policy = policy(a.policy, data_dir)?;
            let bus = connect(cfg).await?;
            let file = timpora_audit::prove(&bus, &policy, &a.log, a.sequence).await?;
            std::fs::write(&a.out, file)
                .with_context(|| format!("cannot write {}", a.out.display()))?;
            println!(
                "proof of {} sequence {} written to {}",
                a.log,
                a.sequence,
                a.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::VerifyProof { file, policy: p } => {
            let policy = policy(p, data_dir)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            match timpora_audit::verify_proof(&bytes, &policy) {
                Ok(p) => {
                    let by = match p.cosigned_by.is_empty() {
                        true => "no witness".to_owned(),
                        false => p.cosigned_by.join(", "),
                    };
                    println!(
                        "valid: {} sequence {} (subject {}) is in {} at size {}, cosigned by {by}",
                        p.record.stream, p.record.sequence, p.record.subject, p.origin, p.tree_size
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("invalid: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
