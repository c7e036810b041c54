//! `timpora demo`: the scenario simulator. It acts as the agencies — each act sent through the
//! gateway's own gRPC service for that agency, with that agency's development identity — at a
//! steady rate, so that alerts appear within seconds of starting.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;
use tonic::Code;

use timpora_proto::v1::bp3mi_service_client::Bp3miServiceClient;
use timpora_proto::v1::desa_service_client::DesaServiceClient;
use timpora_proto::v1::disnaker_service_client::DisnakerServiceClient;
use timpora_proto::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_proto::v1::polri_service_client::PolriServiceClient;
use timpora_scenario::demo::{Act, Call, Demo};

use crate::Config;
use crate::client::{self, Conn, ConnectArgs};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Scenario seed: the same seed gives the same scenario.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Acts (agency calls) per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// One set of R1-R6 storylines at the start and then every this many acts (0: only at the
    /// start).
    #[arg(long, default_value_t = 150)]
    pub storyline_every: u64,
    /// Stop after this many acts (default: until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    /// Gateway URL (default: the configured listen address).
    #[arg(long, env = "TIMPORA_GATEWAY")]
    pub gateway: Option<String>,
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub sent: u64,
    pub duplicates: u64,
    pub refused: u64,
}

/// Run the simulator until `count` acts are sent or `shutdown` completes.
pub async fn run(
    cfg: &Config,
    data_dir: &Path,
    a: &DemoArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Tally> {
    anyhow::ensure!(
        a.rate > 0.0 && a.rate <= 10_000.0,
        "--rate must be between 0 and 10000 acts per second"
    );
    let start = SystemTime::now();
    let mut demo = Demo::new(a.seed, start, a.rate, a.storyline_every);
    let mut conns: HashMap<&'static str, Conn> = HashMap::new();
    let mut tally = Tally::default();
    let mut shutdown = std::pin::pin!(shutdown);
    let began = tokio::time::Instant::now();
    tracing::info!(seed = a.seed, rate = a.rate, "demo simulator started");
    let mut i = 0u64;
    while a.count.is_none_or(|c| i < c) {
        let due = began
            + demo
                .time_of(i)
                .duration_since(start)
                .unwrap_or(Duration::ZERO);
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(due) => {}
        }
        let Some(act) = demo.next() else { break };
        let conn = match conns.get(act.identity) {
            Some(c) => c.clone(),
            None => {
                let args = ConnectArgs::as_identity(a.gateway.clone(), act.identity);
                let c = client::connect(cfg, data_dir, &args)
                    .await
                    .with_context(|| {
                        format!("cannot connect to the gateway as {}", act.identity)
                    })?;
                conns.insert(act.identity, c.clone());
                c
            }
        };
        // A gateway that is briefly away (restart, NATS outage) gets the same act again:
        // acknowledged acts are never lost, and a retried id is stored once.
        let mut backoff = Duration::from_millis(200);
        loop {
            match send(conn.clone(), &act).await {
                Ok(duplicate) => {
                    tally.sent += 1;
                    tally.duplicates += u64::from(duplicate);
                    break;
                }
                Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                    tracing::warn!(identity = act.identity, error = %s.message(), "gateway unavailable; retrying");
                    tokio::select! {
                        () = &mut shutdown => return Ok(tally),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(s) => {
                    tally.refused += 1;
                    tracing::error!(identity = act.identity, code = ?s.code(), error = %s.message(), "the gateway refused a demo act");
                    break;
                }
            }
        }
        i += 1;
        if i.is_multiple_of(500) {
            tracing::info!(
                acts = tally.sent,
                refused = tally.refused,
                "demo simulator progress"
            );
        }
    }
    tracing::info!(
        acts = tally.sent,
        duplicates = tally.duplicates,
        refused = tally.refused,
        "demo simulator stopped"
    );
    Ok(tally)
}

/// Send one act through its agency's service; whether the gateway had it already.
async fn send(conn: Conn, act: &Act) -> Result<bool, tonic::Status> {
    let ack = match act.call.clone() {
        Call::Interview(r) => {
            ImigrasiServiceClient::new(conn)
                .record_passport_interview(r)
                .await?
                .into_inner()
                .ack
        }
        Call::Departure(r) => {
            ImigrasiServiceClient::new(conn)
                .record_departure_check(r)
                .await?
                .into_inner()
                .ack
        }
        Call::Cpmi(r) => {
            Bp3miServiceClient::new(conn)
                .update_cpmi_status(r)
                .await?
                .into_inner()
                .ack
        }
        Call::Repatriation(r) => {
            Bp3miServiceClient::new(conn)
                .record_repatriation(r)
                .await?
                .into_inner()
                .ack
        }
        Call::Licence(r) => {
            DisnakerServiceClient::new(conn)
                .update_company_licence(r)
                .await?
                .into_inner()
                .ack
        }
        Call::Village(r) => {
            DesaServiceClient::new(conn)
                .submit_community_report(r)
                .await?
                .into_inner()
                .ack
        }
        Call::Recruiter(r) => {
            PolriServiceClient::new(conn)
                .report_recruiter(r)
                .await?
                .into_inner()
                .ack
        }
    };
    Ok(ack.is_some_and(|a| a.duplicate))
}
