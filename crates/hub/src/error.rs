//! The hub's one error type.

use std::net::SocketAddr;

/// Errors of the hub.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be run.
    #[error("{0}")]
    Config(String),
    /// An address could not be bound.
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// NATS: connection or topology.
    #[error(transparent)]
    Bus(#[from] timpora_bus::Error),
    /// The `nats-server` child could not be started.
    #[error(transparent)]
    Nats(#[from] timpora_natsd::Error),
    /// The rule file cannot be used.
    #[error(transparent)]
    Rules(#[from] timpora_rules::LoadError),
    /// The gateway failed.
    #[error(transparent)]
    Gateway(#[from] timpora_gateway::Error),
    /// The correlator failed.
    #[error(transparent)]
    Correlator(#[from] timpora_correlator::Error),
    /// The sealer failed.
    #[error(transparent)]
    Sealer(#[from] timpora_sealer::Error),
    /// The witness failed.
    #[error(transparent)]
    Witness(#[from] timpora_witness::Error),
    /// The console failed.
    #[error(transparent)]
    Console(#[from] timpora_console::Error),
    /// Reaching the gateway as a client (console, demo) failed.
    #[error(transparent)]
    Client(#[from] timpora_client::Error),
    /// A component stopped by itself, and so the hub stopped.
    #[error("{component} stopped: {reason}")]
    Stopped {
        component: &'static str,
        reason: String,
    },
}
