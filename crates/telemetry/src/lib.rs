//! What the hub tells an operator about itself, one endpoint per process: `/metrics` in the
//! Prometheus text format, from one registry every component of the process registers its
//! metrics into (`prometheus-client`, re-exported so that every crate uses the same one);
//! `/healthz`, liveness: the process answers; and `/readyz`, readiness: every component of the
//! process says it can do its job now (200), or which cannot and why (503) — NATS unreachable
//! is told apart from still catching up. And traces ([`traces`]): spans exported over OTLP,
//! and the W3C trace context that joins one component's spans to the next one's.

pub mod traces;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
pub use prometheus_client;
use prometheus_client::registry::Registry;

/// What telemetry cannot do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Traces cannot be exported as configured.
    #[error("cannot export traces to {endpoint}: {message}")]
    Traces { endpoint: String, message: String },
}

/// The metrics registry and the readiness of a process's components, until served.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    health: Health,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            registry: Registry::with_prefix("timpora"),
            health: Health::default(),
        }
    }
}

impl Telemetry {
    /// The registry, to register a component's metrics in (names get the `timpora_` prefix).
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The readiness of the components.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Serve `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(
            addr = ?listener.local_addr().ok(),
            "telemetry on /metrics, /healthz, /readyz"
        );
        let state = Arc::new(Served {
            registry: self.registry,
            health: self.health,
        });
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "alive\n" }))
            .route("/readyz", get(readyz))
            .with_state(state);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

struct Served {
    registry: Registry,
    health: Health,
}

async fn metrics(
    State(s): State<Arc<Served>>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(e) => {
            tracing::error!(error = %e, "metrics not encoded");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "text/plain")],
                "metrics not encoded\n".into(),
            )
        }
    }
}

async fn readyz(State(s): State<Arc<Served>>) -> (StatusCode, String) {
    let states = s.health.states();
    // A process whose components report nothing (a witness, a sealer) is ready once it serves.
    let ready = states.values().all(|(ok, _)| *ok);
    let text: String = states
        .iter()
        .map(|(name, (ok, why))| match ok {
            true => format!("{name}: ready\n"),
            false => format!("{name}: not ready: {why}\n"),
        })
        .collect();
    match ready {
        true => (StatusCode::OK, text),
        false => (StatusCode::SERVICE_UNAVAILABLE, text),
    }
}

/// Whether each component of the process can do its job now.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, (bool, String)>>>);

impl Health {
    /// A component's readiness, not ready ("starting") until it says otherwise.
    pub fn component(&self, name: &str) -> Readiness {
        self.set(name, false, "starting".into());
        Readiness {
            name: name.to_owned(),
            health: self.clone(),
        }
    }

    fn set(&self, name: &str, ready: bool, why: String) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(name.to_owned(), (ready, why));
    }

    /// Every component: ready, or not and why.
    pub fn states(&self) -> BTreeMap<String, (bool, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether every component is ready.
    pub fn ready(&self) -> bool {
        self.states().values().all(|(ok, _)| *ok)
    }
}

/// One component's say in `/readyz`.
#[derive(Debug, Clone)]
pub struct Readiness {
    name: String,
    health: Health,
}

impl Readiness {
    /// Ready: it can do its job now.
    pub fn ready(&self) {
        self.health.set(&self.name, true, String::new());
    }

    /// Not ready, and why (`nats unreachable`, `catching up: 1200 events behind`).
    pub fn not_ready(&self, why: impl Into<String>) {
        self.health.set(&self.name, false, why.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is() {
        let h = Health::default();
        let gw = h.component("gateway");
        let co = h.component("correlator");
        assert!(!h.ready());
        gw.ready();
        co.not_ready("catching up: 12 events behind");
        assert!(!h.ready());
        assert_eq!(
            h.states()["correlator"],
            (false, "catching up: 12 events behind".to_owned())
        );
        co.ready();
        assert!(h.ready());
    }
}
