//! `timpora audit`: what an auditor checks alone, with the policy file they were given (each
//! log's verifier key, the trusted witnesses, how many must have cosigned) and read access to
//! the streams — or, for a proof file, nothing but the file and the policy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use timpora_audit::{AuditPolicy, Finding, Report};
use timpora_client::json;
use timpora_hub::Config;
use timpora_proto::v1::audit_service_client::AuditServiceClient;
use timpora_proto::v1::*;

use crate::bus::{NatsArgs, apply_nats, connect};
use timpora_bus::Identity;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Replay a stream through the gateway's AuditService, exactly as stored, in stream order:
    /// one JSON object per line (the record with its sequence, stored time, subject, headers and
    /// payload, and the payload decoded), or CloudEvents 1.0 (structured, one per line). A
    /// progress bar on a terminal's standard error; none when it is not a terminal.
    Replay(Box<ReplayArgs>),
    /// The access records — who read what, when, refused reads too — through the gateway (a
    /// replay of the access stream, itself on record).
    Access(AccessArgs),
    /// Verify streams against their signed, witnessed logs: every message of the range
    /// recomputed into its leaf. Says the range is intact (up to which checkpoint, cosigned by
    /// whom) or names the first altered, removed or inserted message by sequence; exit status 1
    /// on any finding.
    Verify(VerifyArgs),
    /// Write an offline proof file for the record at SEQUENCE: the record, its inclusion proof
    /// and the cosigned checkpoint.
    Prove(ProveArgs),
    /// Why an alert was raised: its rule as the rule set of its version states it, the
    /// contributing events in event time with each condition as the event met it, whether a
    /// replay of the events stream into a scratch engine reproduces the same alert id (exit
    /// status 1 if not), and what each later piece of evidence changed.
    Explain {
        /// The alert's id.
        alert_id: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Legal holds: the events that mention a token or case are kept past the events stream's
    /// retention (copied, as stored, to the holds stream by the sealer).
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Print a log's latest signed checkpoint (the note, as witnesses cosigned it).
    Checkpoint {
        /// The log: events, alerts or access.
        #[arg(long, default_value = "events")]
        log: String,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Check a proof file with no network at all; exit status 1 if it does not hold.
    VerifyProof {
        /// The proof file.
        file: PathBuf,
        /// The audit policy (default: the data directory's `audit-policy.toml`).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Place a hold on an entity token (`psn_…`, `rec_…`, a licence number) or a case id.
    Add {
        /// What to hold.
        token: String,
        /// Why: the order or case file it comes from.
        #[arg(long)]
        reason: String,
        /// Who places it.
        #[arg(long, env = "USER", default_value = "")]
        by: String,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Every hold, released ones too.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Release a hold (it stays on record, with its release).
    Release {
        /// The hold's id.
        id: String,
        #[command(flatten)]
        nats: NatsArgs,
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
    /// Check the records of this replay file (`timpora audit replay` output, NDJSON or
    /// CloudEvents, one log's records in sequence order) instead of the stream.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// With --replay: check it with no network at all against this signed checkpoint (a file
    /// holding the note, e.g. from `timpora audit checkpoint` or a witness); the replay must then
    /// hold the log from its first sequence.
    #[arg(long, requires = "replay")]
    pub checkpoint: Option<PathBuf>,
    /// The person verifying, recorded in the access records.
    #[arg(long, env = "USER", default_value = "")]
    pub operator: String,
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// CloudEvents 1.0 JSON, structured mode, one event per line.
    Cloudevents,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The stream: events, alerts or access.
    #[arg(long, default_value = "events", value_parser = ["events", "alerts", "access"])]
    pub stream: String,
    /// First stream sequence.
    #[arg(long)]
    pub from_seq: Option<u64>,
    /// Last stream sequence.
    #[arg(long)]
    pub to_seq: Option<u64>,
    /// Only records stored at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records stored before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Source agency (events) or reader's agency (access); repeatable.
    #[arg(long = "agency")]
    pub agencies: Vec<String>,
    /// Event type (events only); repeatable.
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Entity token (events, alerts); repeatable.
    #[arg(long = "entity")]
    pub entities: Vec<String>,
    /// Area-code prefix (events, alerts); repeatable.
    #[arg(long = "region")]
    pub regions: Vec<String>,
    /// The person auditing, recorded with the identity in the access records.
    #[arg(long, default_value = "")]
    pub operator: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: Format,
    #[command(flatten)]
    pub connect: crate::client::ConnectArgs,
}

#[derive(Debug, Args)]
pub struct AccessArgs {
    /// Only the reads of this identity (`agency/unit`) or agency.
    #[arg(long)]
    pub who: Option<String>,
    /// Only reads at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only reads before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: crate::client::ConnectArgs,
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

/// The records of a replay file, read as they are needed; a line that is not a record is an
/// error naming the file and line.
fn replay_records(file: &Path) -> anyhow::Result<timpora_audit::Records> {
    use futures::StreamExt as _;
    use std::io::BufRead as _;
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let lines = std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .filter_map(move |(i, line)| {
            let n = i + 1;
            let parsed = match line {
                Err(e) => Err(format!("{name}:{n}: {e}")),
                Ok(l) if l.trim().is_empty() => return None,
                Ok(l) => serde_json::from_str::<serde_json::Value>(&l)
                    .map_err(|e| format!("{name}:{n}: not JSON: {e}"))
                    .and_then(|v| {
                        timpora_audit::record_from_json(&v).map_err(|e| format!("{name}:{n}: {e}"))
                    }),
            };
            Some(parsed.map_err(timpora_audit::Error::Proof))
        });
    Ok(futures::stream::iter(lines).boxed())
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
            "{}: intact, sequences {}-{} ({} checked, {} sealed as missing, {} before the retention cut, \
             {} kept under legal hold) against the checkpoint at size {} cosigned by {by}; {} stored \
             since, not yet sealed",
            r.log,
            r.from,
            r.to,
            r.checked,
            r.gaps,
            r.retention_cut,
            r.held,
            r.checkpoint_size,
            r.unsealed
        );
    } else {
        for f in &r.findings {
            println!("{}: {}", r.log, say(f));
        }
    }
}

fn timestamp(text: &Option<String>, flag: &str) -> anyhow::Result<Option<prost_types::Timestamp>> {
    text.as_deref()
        .map(|t| {
            t.parse::<prost_types::Timestamp>().map_err(|_| {
                anyhow::anyhow!("--{flag} {t:?} is not an RFC 3339 time (2026-12-01T00:00:00Z)")
            })
        })
        .transpose()
}

/// The payload decoded, by what the stream holds.
fn decoded(stream: AuditStream, r: &StoredRecord) -> Option<(&'static str, serde_json::Value)> {
    use prost::Message as _;
    let p = r.payload.as_slice();
    let (key, v) = match stream {
        AuditStream::Events => (
            "event",
            json::to_value("timpora.v1.Event", &Event::decode(p).ok()?),
        ),
        AuditStream::Alerts if r.subject.contains(".raised.") => (
            "alert",
            json::to_value("timpora.v1.Alert", &Alert::decode(p).ok()?),
        ),
        AuditStream::Alerts => (
            "transition",
            json::to_value(
                "timpora.v1.AlertTransition",
                &AlertTransition::decode(p).ok()?,
            ),
        ),
        _ => (
            "access",
            json::to_value("timpora.v1.AlertAccess", &AlertAccess::decode(p).ok()?),
        ),
    };
    v.ok().map(|v| (key, v))
}

/// One output line for a record.
fn line(stream: AuditStream, r: &StoredRecord, format: Format) -> anyhow::Result<String> {
    let m = timpora_audit::stored_message(r.clone());
    let v = match format {
        Format::Ndjson => {
            let mut v = timpora_audit::record_json(&m);
            if let (Some((key, value)), Some(o)) = (decoded(stream, r), v.as_object_mut()) {
                o.insert(key.into(), value);
            }
            v
        }
        Format::Cloudevents => {
            let log = match stream {
                AuditStream::Events => "events",
                AuditStream::Alerts => "alerts",
                _ => "access",
            };
            timpora_audit::cloudevent_json(&m, log)
        }
    };
    Ok(serde_json::to_string(&v)?)
}

async fn replay(cfg: &Config, data_dir: &Path, a: ReplayArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let stream = match a.stream.as_str() {
        "events" => AuditStream::Events,
        "alerts" => AuditStream::Alerts,
        _ => AuditStream::Access,
    };
    let request = ReplayRequest {
        stream: stream.into(),
        from_sequence: a.from_seq.unwrap_or_default(),
        to_sequence: a.to_seq.unwrap_or_default(),
        since: timestamp(&a.since, "since")?,
        until: timestamp(&a.until, "until")?,
        agencies: a.agencies,
        types: a.types,
        entity_tokens: a.entities,
        regions: a.regions,
        operator: a.operator,
    };
    let conn = a
        .connect
        .connect(cfg, data_dir, timpora_scenario::pilot::AUDITOR)
        .await?;
    let mut client = AuditServiceClient::new(conn).max_decoding_message_size(8 * 1024 * 1024);
    let mut records = match client.replay(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            eprintln!("replay refused ({:?}): {}", s.code(), s.message());
            return Ok(ExitCode::FAILURE);
        }
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} sequence {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    while let Some(m) = records
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("replay: {}: {}", s.code(), s.message()))?
    {
        let Some(r) = m.record else { continue };
        if bar.length() != Some(m.to_sequence) {
            bar.set_length(m.to_sequence);
        }
        bar.set_position(r.sequence);
        writeln!(out, "{}", line(stream, &r, a.format)?)?;
        n += 1;
    }
    out.flush()?;
    bar.finish_and_clear();
    eprintln!("{n} records replayed");
    Ok(ExitCode::SUCCESS)
}

/// One access record, for people.
fn say_access(a: &AlertAccess) -> String {
    let when = a.time.map(|t| t.to_string()).unwrap_or_default();
    let who = match a.operator.is_empty() {
        true => a.reader.clone(),
        false => format!("{} ({})", a.reader, a.operator),
    };
    let what = match (a.action.as_str(), a.alert_id.is_empty()) {
        ("", false) => format!("get_alert {}", a.alert_id),
        ("", true) => format!("get_subject {}", a.subject),
        (action, false) => format!("{action} {}", a.alert_id),
        (action, true) => action.to_owned(),
    };
    let how = if !a.refused.is_empty() {
        format!("refused: {}", a.refused)
    } else if a.closing {
        format!("closed, {} returned", a.returned)
    } else if a.action.is_empty() {
        format!("{} events, {} withheld", a.events, a.withheld)
    } else {
        format!("returned {}", a.returned)
    };
    let filter = match a.filter.is_empty() {
        true => String::new(),
        false => format!("  {}", a.filter),
    };
    format!("{when}  {who}  {what}  {how}{filter}")
}

async fn access(cfg: &Config, data_dir: &Path, a: AccessArgs) -> anyhow::Result<ExitCode> {
    use prost::Message as _;
    let agency = a
        .who
        .as_deref()
        .map(|w| w.split('/').next().unwrap_or(w).to_owned());
    let request = ReplayRequest {
        stream: AuditStream::Access.into(),
        since: timestamp(&a.since, "since")?,
        until: timestamp(&a.until, "until")?,
        agencies: agency.into_iter().collect(),
        ..Default::default()
    };
    let conn = a
        .connect
        .connect(cfg, data_dir, timpora_scenario::pilot::AUDITOR)
        .await?;
    let mut client = AuditServiceClient::new(conn);
    let mut records = client
        .replay(request)
        .await
        .map_err(|s| anyhow::anyhow!("access records refused ({:?}): {}", s.code(), s.message()))?
        .into_inner();
    while let Some(m) = records
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("access records: {:?}: {}", s.code(), s.message()))?
    {
        let Some(r) = m.record else { continue };
        let Ok(access) = AlertAccess::decode(r.payload.as_slice()) else {
            continue;
        };
        if let Some(who) = &a.who
            && who.contains('/')
            && access.reader != *who
        {
            continue;
        }
        match a.json {
            true => {
                let mut v = json::to_value("timpora.v1.AlertAccess", &access)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("sequence".into(), r.sequence.into());
                }
                println!("{v}");
            }
            false => println!("{}", say_access(&access)),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_explanation(e: &timpora_audit::Explanation) {
    println!(
        "alert {} — rule {} \"{}\" (version {}, from {})",
        e.alert_id, e.rule_id, e.rule_name, e.rule_version, e.rule_source
    );
    println!("  {}", e.rule);
    println!("  group {}, region {}", e.group_key, e.region);
    println!("contributing events, in event time:");
    for c in &e.contributions {
        println!(
            "  {}  {}  {}  (sequence {})",
            c.time, c.key, c.r#type, c.sequence
        );
        for k in &c.conditions {
            let mark = if k.met { "met" } else { "NOT met" };
            println!(
                "      {}: {} — had {} ({mark})",
                c.clause,
                k.asks,
                if k.had.is_empty() { "nothing" } else { &k.had }
            );
        }
    }
    for l in &e.later {
        println!(
            "later: {} by {}: {} [{}]",
            l.change,
            l.id,
            l.why,
            l.evidence.join(", ")
        );
    }
    println!(
        "replayed {} events into a scratch engine with that rule set: {}",
        e.replayed,
        if e.reproduced {
            "reproduces the same alert id"
        } else {
            "does NOT reproduce the alert id"
        }
    );
}

async fn holds(cfg: &mut Config, cmd: HoldCommand) -> anyhow::Result<ExitCode> {
    let now = || prost_types::Timestamp::from(std::time::SystemTime::now()).to_string();
    match cmd {
        HoldCommand::Add {
            token,
            reason,
            by,
            nats,
        } => {
            apply_nats(cfg, &nats);
            anyhow::ensure!(
                !token.is_empty() && token.len() <= 128 && !token.contains(char::is_whitespace),
                "the token must be 1-128 characters without spaces"
            );
            anyhow::ensure!(
                !reason.trim().is_empty(),
                "--reason must say why (the order or case file)"
            );
            let hold = timpora_bus::LegalHold {
                id: format!("hold_{}", timpora_client::random_hex(6)?),
                token,
                reason,
                by,
                placed_at: now(),
                released_at: None,
            };
            connect(cfg, Identity::Admin).await?.put_hold(&hold).await?;
            println!("{} placed on {}", hold.id, hold.token);
        }
        HoldCommand::List { json, nats } => {
            apply_nats(cfg, &nats);
            for h in connect(cfg, Identity::Auditor).await?.holds().await? {
                match json {
                    true => println!("{}", serde_json::to_string(&h)?),
                    false => println!(
                        "{}  {}  {}  by {} at {}{}",
                        h.id,
                        h.token,
                        h.reason,
                        h.by,
                        h.placed_at,
                        h.released_at
                            .as_deref()
                            .map(|r| format!(", released {r}"))
                            .unwrap_or_default()
                    ),
                }
            }
        }
        HoldCommand::Release { id, nats } => {
            apply_nats(cfg, &nats);
            let bus = connect(cfg, Identity::Admin).await?;
            let Some(mut hold) = bus.holds().await?.into_iter().find(|h| h.id == id) else {
                eprintln!("no hold {id}");
                return Ok(ExitCode::FAILURE);
            };
            if hold.released_at.is_none() {
                hold.released_at = Some(now());
                bus.put_hold(&hold).await?;
            }
            println!("{id} released");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run an `audit` subcommand.
pub async fn run(cfg: &mut Config, data_dir: &Path, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Replay(a) => replay(cfg, data_dir, *a).await,
        AuditCommand::Access(a) => access(cfg, data_dir, a).await,
        AuditCommand::Hold(cmd) => holds(cfg, cmd).await,
        AuditCommand::Checkpoint { log, nats } => {
            apply_nats(cfg, &nats);
            match connect(cfg, Identity::Auditor)
                .await?
                .latest_checkpoint(&log)
                .await?
            {
                Some(note) => {
                    print!("{}", String::from_utf8_lossy(&note));
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("the log {log} has no checkpoint");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Explain {
            alert_id,
            json,
            nats,
        } => {
            apply_nats(cfg, &nats);
            let bus = connect(cfg, Identity::Auditor).await?;
            let lateness = timpora_hub::duration("correlator.lateness", &cfg.correlator.lateness)?;
            let e = timpora_audit::explain(&bus, &alert_id, lateness).await?;
            // The explanation is a read like any other: on record before it is shown.
            let record = AlertAccess {
                reader: "audit/timpora-cli".into(),
                time: Some(std::time::SystemTime::now().into()),
                action: "explain".into(),
                alert_id: alert_id.clone(),
                returned: e.contributions.len() as u64,
                ..Default::default()
            };
            bus.record_access(&record)
                .await
                .context("the explanation could not be put on record in the access stream")?;
            match json {
                true => println!("{}", serde_json::to_string(&e)?),
                false => print_explanation(&e),
            }
            Ok(if e.reproduced {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Verify(a) => {
            apply_nats(cfg, &a.nats);
            let policy = policy(a.policy, data_dir)?;
            if let (Some(note), Some(replay)) = (&a.checkpoint, &a.replay) {
                anyhow::ensure!(
                    a.log != "all",
                    "--checkpoint checks one log: name it with --log"
                );
                let note = std::fs::read(note)
                    .with_context(|| format!("cannot read {}", note.display()))?;
                let r =
                    timpora_audit::verify_offline(&policy, &a.log, &note, replay_records(replay)?)
                        .await?;
                match a.json {
                    true => println!("{}", serde_json::to_string(&r)?),
                    false => print(&r),
                }
                return Ok(if r.intact() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            let bus = connect(cfg, Identity::Auditor).await?;
            let logs: Vec<&str> = match a.log.as_str() {
                "all" => vec!["events", "alerts", "access"],
                one => vec![one],
            };
            let mut ok = true;
            if a.replay.is_some() && logs.len() != 1 {
                anyhow::bail!("--replay checks one log: name it with --log events|alerts|access");
            }
            for log in logs {
                let r = match &a.replay {
                    None => {
                        timpora_audit::verify_log(&bus, &policy, log, a.from, a.to, &mut |_, _| {})
                            .await
                    }
                    Some(file) => {
                        let records = replay_records(file)?;
                        timpora_audit::verify_replay(
                            &bus,
                            &policy,
                            log,
                            a.from,
                            a.to,
                            records,
                            &mut |_, _| {},
                        )
                        .await
                    }
                }
                .with_context(|| format!("cannot verify {log}"))?;
                ok &= r.intact();
                // The verification is on record, as every read is.
                let record = AlertAccess {
                    reader: "audit/timpora-cli".into(),
                    operator: a.operator.chars().take(128).collect(),
                    time: Some(std::time::SystemTime::now().into()),
                    action: "verify".into(),
                    filter: format!("log={log} from={} to={}", r.from, r.to),
                    returned: r.checked,
                    ..Default::default()
                };
                bus.record_access(&record)
                    .await
                    .context("the verification could not be put on record in the access stream")?;
                // The outcome, for the console's auditor page.
                let summary = match r.intact() {
                    true => format!(
                        "intact, sequences {}-{} against the checkpoint at size {}",
                        r.from, r.to, r.checkpoint_size
                    ),
                    false => r.findings.iter().map(say).collect::<Vec<_>>().join("; "),
                };
                let outcome = timpora_bus::Verification {
                    at: prost_types::Timestamp::from(std::time::SystemTime::now()).to_string(),
                    intact: r.intact(),
                    size: r.checkpoint_size,
                    summary,
                    by: match a.operator.is_empty() {
                        true => "timpora audit verify".into(),
                        false => a.operator.clone(),
                    },
                };
                bus.put_verification(log, &outcome).await?;
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
            let bus = connect(cfg, Identity::Auditor).await?;
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
