//! `timpora alerts …`: watch, list, read and act on alerts through the gateway's AlertService.
//! Text for people; `--json` prints one JSON object per line (the contract's proto3 JSON).

use std::path::Path;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use timpora_client::actions::{self, Step};
use timpora_client::{Conn, json};
use timpora_hub::Config;
use timpora_proto::v1::alert_service_client::AlertServiceClient;
use timpora_proto::v1::*;
use timpora_scenario::pilot;

use crate::client::{ConnectArgs, next_or_idle};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// The open alerts matching the filter, then every change as it happens.
    Tail {
        #[command(flatten)]
        filter: FilterArgs,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Stop when nothing arrives for this many seconds.
        #[arg(long)]
        idle_exit: Option<f64>,
        #[command(flatten)]
        out: Out,
    },
    /// Alerts matching the filter, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many (up to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        out: Out,
    },
    /// One alert: its handling so far and its evidence (the events you may read).
    Show {
        id: String,
        #[command(flatten)]
        out: Out,
    },
    /// Acknowledge an open alert.
    Ack(ActArgs),
    /// Hand an alert to a unit to follow up.
    Assign {
        #[command(flatten)]
        act: ActArgs,
        /// The unit (`agency/unit`).
        #[arg(long)]
        to: String,
    },
    /// Open a case from an alert (a `case.status_changed` event on the bus).
    Escalate {
        #[command(flatten)]
        act: ActArgs,
        /// The kind of case.
        #[arg(long, default_value = "tppo", value_parser = clap::builder::PossibleValuesParser::new(actions::CASE_KINDS))]
        kind: String,
    },
    /// Close an alert as confirmed or as a false positive.
    Resolve {
        #[command(flatten)]
        act: ActArgs,
        /// The outcome.
        #[arg(long = "as", value_parser = clap::builder::PossibleValuesParser::new(actions::RESOLUTIONS))]
        resolution: String,
    },
}

#[derive(Debug, Args)]
pub struct Out {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Area-code prefix (`74` a province, `74.02` a regency); repeatable.
    #[arg(long = "region")]
    regions: Vec<String>,
    /// At least this severity.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(actions::SEVERITIES))]
    severity: Option<String>,
    /// Rule id; repeatable.
    #[arg(long = "rule")]
    rules: Vec<String>,
    /// Status; repeatable.
    #[arg(long = "status", value_parser = clap::builder::PossibleValuesParser::new(actions::STATUSES))]
    statuses: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ActArgs {
    /// The alert id (`alr_…`).
    id: String,
    /// A note kept with the step.
    #[arg(long, default_value = "")]
    note: String,
    /// Your name, recorded with the step next to the identity you act as.
    #[arg(long, env = "TIMPORA_OPERATOR", default_value = "")]
    operator: String,
    /// Your role (`operator`, `supervisor`): required, with `--operator`, when the identity
    /// acts for people (the gateway's `alerts.fronts`, by default every `ops/…` identity).
    #[arg(long, env = "TIMPORA_ROLE", default_value = "")]
    role: String,
    /// Act only if the alert is still at this version (from `show`).
    #[arg(long, default_value_t = 0)]
    expect_version: u64,
    #[command(flatten)]
    out: Out,
}

impl FilterArgs {
    fn filter(&self) -> AlertFilter {
        AlertFilter {
            regions: self.regions.clone(),
            min_severity: self
                .severity
                .as_deref()
                .and_then(actions::severity)
                .map_or(0, |s| s as i32),
            rule_ids: self.rules.clone(),
            statuses: self
                .statuses
                .iter()
                .filter_map(|s| actions::status(s))
                .map(|s| s as i32)
                .collect(),
        }
    }
}

/// One line about a record, for people.
fn line(r: &AlertRecord) -> String {
    let a = r.alert.clone().unwrap_or_default();
    let severity = Severity::try_from(a.severity).unwrap_or_default();
    let status = AlertStatus::try_from(r.status).unwrap_or_default();
    let region = match timpora_proto::regions::describe(&a.region) {
        Some(name) => format!("{} ({name})", a.region),
        None => a.region.clone(),
    };
    let mut s = format!(
        "{}  {}  {:<8}  {:<12}  {}  {}  {}  {}",
        a.id,
        a.rule_id,
        actions::short_name(severity.as_str_name()),
        actions::short_name(status.as_str_name()),
        region,
        a.time.map(|t| t.to_string()).unwrap_or_default(),
        a.group_key,
        a.summary
    );
    if !r.assignee.is_empty() {
        s.push_str(&format!("  [assigned to {}]", r.assignee));
    }
    if !r.case_id.is_empty() {
        s.push_str(&format!("  [case {}]", r.case_id));
    }
    if !r.extensions.is_empty() {
        s.push_str(&format!(
            "  [grown {}×, {} pieces of evidence]",
            r.extensions.len(),
            a.evidence.len()
        ));
    }
    if !a.extends.is_empty() {
        s.push_str(&format!("  [continues {}]", a.extends));
    }
    if a.late {
        s.push_str("  [raised on late evidence]");
    }
    if let Some(t) = r.history.iter().rev().find(|t| t.actor == "hub/correlator") {
        s.push_str(&format!(
            "  [{} by the correlator: {}; late evidence {}]",
            if r.status == AlertStatus::Withdrawn as i32 {
                "withdrawn"
            } else {
                "corrected"
            },
            t.note.trim_start_matches("withdrawn: "),
            t.evidence.join(", ")
        ));
    }
    s
}

fn print_record(r: &AlertRecord, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", json::to_value("timpora.v1.AlertRecord", r)?);
    } else {
        println!("{}", line(r));
    }
    Ok(())
}

/// A gRPC refusal as a clear message.
fn refused(what: &str) -> impl FnOnce(tonic::Status) -> anyhow::Error + '_ {
    move |s| anyhow::anyhow!("{what} refused ({:?}): {}", s.code(), s.message())
}

fn action(a: &ActArgs) -> AlertAction {
    AlertAction {
        alert_id: a.id.clone(),
        expected_version: a.expect_version,
        note: a.note.clone(),
        operator: a.operator.clone(),
        role: a.role.clone(),
    }
}

async fn client(
    cfg: &Config,
    data_dir: &Path,
    c: &ConnectArgs,
) -> anyhow::Result<AlertServiceClient<Conn>> {
    Ok(AlertServiceClient::new(
        c.connect(cfg, data_dir, pilot::SECRETARIAT).await?,
    ))
}

/// Apply `step` as `a` says and print the record as it is afterwards.
async fn act(cfg: &Config, data_dir: &Path, a: &ActArgs, step: Step) -> anyhow::Result<()> {
    let mut c = client(cfg, data_dir, &a.out.connect).await?;
    let name = step.name();
    let r = step.apply(&mut c, action(a)).await.map_err(refused(name))?;
    print_record(&r, a.out.json)
}

/// Run an `alerts` subcommand.
pub async fn run(cfg: &Config, data_dir: &Path, cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::Tail {
            filter,
            limit,
            idle_exit,
            out,
        } => {
            let mut c = client(cfg, data_dir, &out.connect).await?;
            let mut stream = c
                .watch_alerts(WatchAlertsRequest {
                    filter: Some(filter.filter()),
                })
                .await
                .map_err(refused("watch"))?
                .into_inner();
            let mut n = 0u64;
            while limit.is_none_or(|l| n < l) {
                let next = next_or_idle(&mut stream, idle_exit).await;
                let Some(m) = next.map_err(refused("watch"))? else {
                    break;
                };
                if let Some(r) = &m.record {
                    if out.json {
                        println!("{}", json::to_value("timpora.v1.WatchAlertsResponse", &m)?);
                    } else {
                        println!("{}", line(r));
                    }
                }
                n += 1;
            }
        }
        AlertsCommand::List { filter, limit, out } => {
            let mut c = client(cfg, data_dir, &out.connect).await?;
            let records = c
                .list_alerts(ListAlertsRequest {
                    filter: Some(filter.filter()),
                    limit,
                })
                .await
                .map_err(refused("list"))?
                .into_inner()
                .records;
            for r in &records {
                print_record(r, out.json)?;
            }
            if !out.json && records.is_empty() {
                eprintln!("no alerts match");
            }
        }
        AlertsCommand::Show { id, out } => {
            let mut c = client(cfg, data_dir, &out.connect).await?;
            let got = c
                .get_alert(GetAlertRequest {
                    alert_id: id,
                    // Recorded in the access records with the identity.
                    operator: std::env::var("TIMPORA_OPERATOR").unwrap_or_default(),
                })
                .await
                .map_err(refused("show"))?
                .into_inner();
            if out.json {
                println!("{}", json::to_value("timpora.v1.GetAlertResponse", &got)?);
                return Ok(());
            }
            let r = got.record.context("no record in the answer")?;
            println!("{}", line(&r));
            println!("version {}", r.version);
            for t in &r.history {
                let to = AlertStatus::try_from(t.to_status).unwrap_or_default();
                println!(
                    "  {}  {:<12}  by {}{}{}",
                    t.time.map(|x| x.to_string()).unwrap_or_default(),
                    actions::short_name(to.as_str_name()),
                    t.actor,
                    actions::claimed(&t.operator, &t.role)
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default(),
                    if t.note.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", t.note)
                    }
                );
                if !t.evidence.is_empty() {
                    println!("      late evidence: {}", t.evidence.join(", "));
                }
            }
            println!("evidence:");
            for e in &got.events {
                println!(
                    "  {}  {}/{}  {}  region {}",
                    e.time.map(|x| x.to_string()).unwrap_or_default(),
                    e.source,
                    e.id,
                    e.r#type,
                    e.region
                );
            }
            for w in &got.withheld {
                println!("  {w}  (withheld: not readable with your rights)");
            }
        }
        AlertsCommand::Ack(a) => act(cfg, data_dir, &a, Step::Acknowledge).await?,
        AlertsCommand::Assign { act: a, to } => {
            act(cfg, data_dir, &a, Step::Assign { to }).await?;
        }
        AlertsCommand::Escalate { act: a, kind } => {
            let kind = actions::case_kind(&kind).context("unknown case kind")?;
            act(cfg, data_dir, &a, Step::Escalate(kind)).await?;
        }
        AlertsCommand::Resolve { act: a, resolution } => {
            let r = actions::resolution(&resolution).context("unknown resolution")?;
            act(cfg, data_dir, &a, Step::Resolve(r)).await?;
        }
    }
    Ok(())
}
