//! The operations console: a web page for duty officers and auditors, served by axum with its
//! assets embedded in the binary (no CDN: the offices it runs in may have no internet).
//!
//! The console is a client of the gateway: every read and every action goes through the
//! gateway's `AlertService` as the gateway identity of the logged-in account, so the gateway's
//! read rights apply unchanged, actions carry the operator's name next to that identity, and
//! every page view of an alert is stored in the access records before the alert is shown.

mod api;
pub mod auth;
mod config;
mod desa;
mod error;
mod metrics;
mod tls;
mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use timpora_client::{Keyring, Target};
use tokio::sync::Mutex;

use auth::Sessions;
pub use auth::{Account, Role};
pub use config::{ClientCert, Config};
pub use error::Error;
pub use metrics::Metrics;
pub use tls::TlsConfig;

/// Serve the console on `listener` until `shutdown` completes: every read and action goes to
/// the gateway at `gateway`, as each account's identity with its credentials from `keyring`;
/// logins and sessions are counted in `metrics`.
pub async fn serve(
    config: Config,
    gateway: Target,
    keyring: Keyring,
    metrics: Metrics,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let acceptor = config.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
    let keyring = config.keyring(keyring);
    let gateway = Target {
        ca: config.gateway_ca.clone().or(gateway.ca),
        ..gateway
    };
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let state = Arc::new(api::Shared {
        hashers: Arc::new(tokio::sync::Semaphore::new(HASHERS)),
        accounts: config.accounts,
        units: config.units,
        sessions: Sessions::new(
            Duration::from_secs(config.idle_minutes.max(1) * 60),
            Duration::from_secs(config.max_hours.max(1) * 3600),
        ),
        gateway,
        keyring,
        conns: Mutex::default(),
        stopping,
        secure: acceptor.is_some(),
        metrics,
    });
    // Sessions also end by expiring: the gauge follows them.
    let expiring = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                state.metrics.sessions.set(state.sessions.live() as i64);
            }
        })
    };
    let secure = state.secure;
    let app = router(state).into_make_service_with_connect_info::<tls::Peer>();
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tracing::info!(addr = %listener.local_addr()?, tls = secure, "console listening");
    match acceptor {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    expiring.abort();
    Ok(())
}

/// Password hashes computed at once (argon2, ~19 MiB each): one per core of the machine it was
/// sized for.
const HASHERS: usize = 2;
/// The largest request body the console reads (a login, an action with its note).
const MAX_BODY_BYTES: usize = 16 * 1024;

fn router(state: api::App) -> Router {
    desa::routes(api::routes(ui::assets(Router::new())))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response_with_state(
            state.secure,
            ui::security_headers,
        ))
        .with_state(state)
}
