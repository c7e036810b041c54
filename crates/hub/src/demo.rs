//! The demo simulator: it acts as the agencies — each act sent through the gateway's own gRPC
//! service for that agency, as that agency's unit — at a steady rate, so that alerts appear
//! within seconds of starting.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tonic::Code;

use timpora_proto::v1::bp3mi_service_client::Bp3miServiceClient;
use timpora_proto::v1::desa_service_client::DesaServiceClient;
use timpora_proto::v1::disnaker_service_client::DisnakerServiceClient;
use timpora_proto::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_proto::v1::polri_service_client::PolriServiceClient;
use timpora_scenario::demo::{Act, Call, Demo};

use timpora_client::{Conn, Keyring, Target};

use crate::config::DemoConfig;
use crate::error::Error;

/// What a run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Acts the gateway acknowledged.
    pub sent: u64,
    /// Of those, acts it had already stored.
    pub duplicates: u64,
    /// Acts the gateway refused (a defect of the simulator or of the gateway).
    pub refused: u64,
}

/// Refuse settings the simulator cannot run with.
pub fn check(a: &DemoConfig) -> Result<(), Error> {
    if a.rate > 0.0 && a.rate <= 10_000.0 {
        Ok(())
    } else {
        Err(Error::Config(
            "the demo rate (--rate) must be between 0 and 10000 acts per second".into(),
        ))
    }
}

/// Run the simulator against the gateway at `gateway`, each act with its unit's credentials
/// from `keyring`, until `count` acts are sent (if given) or `shutdown` completes.
pub async fn run(
    gateway: &Target,
    keyring: &Keyring,
    a: &DemoConfig,
    count: Option<u64>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Tally, Error> {
    check(a)?;
    let start = SystemTime::now();
    let mut demo = Demo::new(a.seed, start, a.rate, a.storyline_every);
    let mut conns: HashMap<&'static str, Conn> = HashMap::new();
    let mut tally = Tally::default();
    let mut shutdown = std::pin::pin!(shutdown);
    let began = tokio::time::Instant::now();
    tracing::info!(seed = a.seed, rate = a.rate, "demo simulator started");
    let mut i = 0u64;
    while count.is_none_or(|c| i < c) {
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
                let credentials = keyring.credentials(act.identity)?;
                let c = timpora_client::connect(gateway, &credentials).await?;
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
pub async fn send(conn: Conn, act: &Act) -> Result<bool, tonic::Status> {
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
