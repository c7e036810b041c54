//! The TIMPORA gateway: one tonic server hosting a gRPC service per agency (typed methods in the
//! agency's own terms) and the generic `EventBusService`, with gRPC health and reflection.
//! Callers are identified by client certificate (or a development token), authorised by policy,
//! validated field by field, pseudonymised at the edge, and answered only once JetStream has
//! stored their event.

mod access;
pub mod alerts;
mod audit;
pub mod book;
#[cfg(test)]
mod contract_tests;
mod error;
pub mod identity;
pub mod ids;
pub mod ingest;
mod metrics;
mod payload;
pub mod policy;
pub mod pseudo;
mod rate;
mod services;
mod slots;
pub mod subjects;
pub use services::STREAM_WINDOW;
mod trace;
pub mod validate;
mod villages;
mod wording;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, Identity as TlsIdentity, Server, ServerTlsConfig};

use timpora_bus::Bus;
use timpora_proto::v1;

pub use error::{Error, rejection};
pub use identity::{Authenticator, Identity, TokenConfig};
pub use metrics::Metrics;
pub use policy::{Action, AlertRules, Policy};
pub use pseudo::{KeyConfig, PseudonymConfig, Pseudonymiser};
pub use validate::{Limits, Violations};

/// Server certificate and the CA that issues agencies' client certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA certificate(s) that client certificates must chain to (PEM).
    pub client_ca: PathBuf,
}

/// The gateway's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Mutual TLS; without it the gateway serves plaintext and accepts tokens only
    /// (development).
    pub tls: Option<TlsConfig>,
    /// Development bearer tokens.
    pub tokens: Vec<TokenConfig>,
    /// Who may publish and read what.
    pub policy: Policy,
    /// Where units may report for (a village: its own village, always).
    pub places: policy::Places,
    /// Who acts for people, what each role may do with alerts, and the units alerts may be
    /// assigned to.
    pub alerts: policy::AlertRules,
    /// Pseudonymisation keys.
    pub pseudonym: PseudonymConfig,
    /// Input limits.
    pub limits: Limits,
    /// How often (seconds) the gateway checks that its streams exist, re-creating them when it
    /// can and reporting not serving when it cannot (0: never).
    pub topology_check_secs: u64,
    /// The correlator's allowed lateness, for `AuditService.Explain`'s scratch replay (the hub
    /// sets it from `correlator.lateness`).
    pub correlator_lateness: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tls: None,
            tokens: Vec::new(),
            policy: Policy::default(),
            places: policy::Places::default(),
            alerts: policy::AlertRules::default(),
            pseudonym: PseudonymConfig::default(),
            limits: Limits::default(),
            topology_check_secs: 5,
            correlator_lateness: "5s".into(),
        }
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

pub use timpora_proto::{H2_CONNECTION_WINDOW, H2_STREAM_WINDOW};

/// What the gateway tells an operator: its metrics, and its say in the process's readiness.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub metrics: Metrics,
    /// Ready while NATS is reachable and the streams exist.
    pub readiness: Option<timpora_telemetry::Readiness>,
}

/// Serve the gateway on `listener` until `shutdown` completes, then drain in-flight calls.
pub async fn serve(
    config: Config,
    bus: Bus,
    admin: Option<Bus>,
    listener: tokio::net::TcpListener,
    observed: Observed,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    config.policy.validate()?;
    config.alerts.validate()?;
    let auth = Authenticator::new(&config.tokens)?;
    let pseudo = Arc::new(Pseudonymiser::from_config(&config.pseudonym)?);
    let policy = Arc::new(config.policy.clone());
    // Every id stored before now, known before a retry can be answered (see `ids`).
    let stored_ids = ids::StoredIds::until(bus.events_last_sequence().await.unwrap_or(0));
    let ingest = ingest::Ingest::new(
        bus.clone(),
        ingest::Preparer::new(policy.clone(), pseudo, config.limits.clone())
            .with_places(config.places.clone())
            .at_office(bus.topology().office.clone()),
        rate::Rates::new(config.limits.events_per_second, config.limits.burst),
    )
    .with_stored_ids(stored_ids.clone())
    .with_metrics(observed.metrics.clone());
    let shared = services::Shared {
        ingest: ingest.clone(),
        bus: bus.clone(),
        policy: policy.clone(),
    };

    let mut builder = Server::builder()
        .trace_fn(trace::call_span)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // Large flow-control windows let a PublishStream keep hundreds of events in flight.
        .initial_stream_window_size(Some(H2_STREAM_WINDOW))
        .initial_connection_window_size(Some(H2_CONNECTION_WINDOW));
    if let Some(tls) = &config.tls {
        let identity = TlsIdentity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        let ca = Certificate::from_pem(read(&tls.client_ca)?);
        builder = builder.tls_config(
            ServerTlsConfig::new()
                .identity(identity)
                .client_ca_root(ca)
                // Without tokens every caller must present a certificate at the handshake.
                .client_auth_optional(!config.tokens.is_empty()),
        )?;
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(timpora_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Config(format!("reflection: {e}")))?;
    let book = book::AlertBook::default();
    let _ = observed.metrics.book.set(book.clone());
    let offices = (!bus.topology().offices.is_empty()).then(|| {
        tokio::spawn(metrics::watch_offices(
            bus.clone(),
            observed.metrics.offices.clone(),
        ))
    });
    book.set_current(bus.is_connected());
    let follower = tokio::spawn(alerts::follow(bus.clone(), book.clone()));
    let subjects = subjects::SubjectIndex::default();
    let indexer = tokio::spawn(subjects::follow(
        bus.clone(),
        subjects.clone(),
        stored_ids.clone(),
    ));
    let alert_service = tonic::service::interceptor::InterceptedService::new(
        v1::alert_service_server::AlertServiceServer::new(alerts::Alerts {
            book: book.clone(),
            ingest: ingest.clone(),
            bus: bus.clone(),
            policy: policy.clone(),
            rules: Arc::new(config.alerts.clone()),
            subjects,
            villages: Default::default(),
        })
        .max_decoding_message_size(config.limits.max_request_bytes),
        auth.clone(),
    );
    let audit_service = tonic::service::interceptor::InterceptedService::new(
        v1::audit_service_server::AuditServiceServer::new(audit::Audit {
            bus: bus.clone(),
            policy: policy.clone(),
            lateness: timpora_rules::parse_duration(&config.correlator_lateness).ok_or_else(
                || {
                    Error::Config(format!(
                        "correlator_lateness {:?} is not a duration",
                        config.correlator_lateness
                    ))
                },
            )?,
        })
        .max_decoding_message_size(config.limits.max_request_bytes),
        auth.clone(),
    );
    let router = services::add_all(
        builder
            .add_service(health_service)
            .add_service(reflection)
            .add_service(alert_service)
            .add_service(audit_service),
        &shared,
        &auth,
        config.limits.max_request_bytes,
    );
    let check_every = Duration::from_secs(config.topology_check_secs);
    let watcher = tokio::spawn(watch_bus(
        bus,
        admin,
        health,
        observed.readiness.map(|r| (r, stored_ids)),
        book.clone(),
        check_every,
    ));
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, tls = config.tls.is_some(), "gateway listening");
    // `serve_with_incoming` ignores the builder's TCP settings, so they are set on the incoming
    // stream: without TCP_NODELAY every response waits on Nagle's algorithm.
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let result = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    watcher.abort();
    if let Some(o) = offices {
        o.abort();
    }
    follower.abort();
    indexer.abort();
    tracing::info!("gateway stopped");
    Ok(result?)
}

/// Report the services as not serving, and the alert book as not current, while NATS is
/// unreachable or a stream is missing and cannot be re-created; every `check_every` (when not
/// zero) make sure the streams exist, re-creating them when they do not and `admin` (a
/// connection as the admin identity, which only an all-in-one hub has) can. Readiness is also
/// withheld while the index of stored ids reads the events stream (publishes are refused
/// then, see `ingest`).
async fn watch_bus(
    bus: Bus,
    admin: Option<Bus>,
    health: tonic_health::server::HealthReporter,
    readiness: Option<(timpora_telemetry::Readiness, ids::StoredIds)>,
    book: book::AlertBook,
    check_every: Duration,
) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let names = services::NAMES;
    let mut last = None;
    let mut topology_ok = true;
    let mut checked = tokio::time::Instant::now();
    loop {
        let connected = bus.is_connected();
        if connected && !check_every.is_zero() && checked.elapsed() >= check_every {
            checked = tokio::time::Instant::now();
            topology_ok = match bus.check_topology().await {
                Ok(()) => true,
                Err(e) if e.is_transient() => topology_ok,
                Err(e) => match &admin {
                    Some(admin) => {
                        tracing::error!(error = %e, "a stream is missing; re-creating the topology");
                        match admin.ensure_topology().await {
                            Ok(()) => {
                                tracing::warn!("topology re-created");
                                true
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "cannot re-create the topology; reporting not serving");
                                false
                            }
                        }
                    }
                    None => {
                        tracing::error!(error = %e, "a stream is missing; reporting not serving until an administrator runs `timpora bus init`");
                        false
                    }
                },
            };
        }
        let up = connected && topology_ok;
        if last != Some(up) {
            let status = if up { Serving } else { NotServing };
            for name in names.iter().copied().chain([""]) {
                health.set_service_status(name, status).await;
            }
            book.set_current(up);
            match (up, connected) {
                (true, _) => tracing::info!("nats connected and streams present; serving"),
                (false, false) => tracing::warn!("nats unreachable; reporting not serving"),
                (false, true) => tracing::warn!("streams missing; reporting not serving"),
            }
            last = Some(up);
        }
        if let Some((r, ids)) = &readiness {
            let (read, of) = ids.progress();
            match (up, connected) {
                (false, false) => r.not_ready("nats unreachable"),
                (false, true) => r.not_ready("streams missing: run `timpora bus init`"),
                (true, _) if read < of => {
                    r.not_ready(format!("reading stored event ids: {read} of {of}"))
                }
                (true, _) => r.ready(),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
