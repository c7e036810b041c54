//! The console's metrics: logins by outcome and the sessions open. Never a username, address
//! or token as a label.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    outcome: &'static str,
}

/// How a login attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A session was opened.
    Ok,
    /// Wrong username or password.
    Failed,
    /// Refused unchecked: too many attempts for the username or from the address.
    Locked,
    /// Refused unchecked: username or password too long.
    TooLong,
    /// Refused unchecked: every password hasher busy.
    Busy,
}

/// The console's metrics; unregistered ones count into nothing.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    logins: Family<LoginLabels, Counter>,
    pub(crate) sessions: Gauge,
}

impl Metrics {
    /// Register in `registry` (as `timpora_console_…`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("console");
        r.register(
            "logins",
            "Console login attempts by outcome (ok, failed, locked, too_long, busy)",
            m.logins.clone(),
        );
        r.register(
            "sessions_open",
            "Console sessions open (not expired, not logged out)",
            m.sessions.clone(),
        );
        m
    }

    pub(crate) fn login(&self, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Locked => "locked",
            Outcome::TooLong => "too_long",
            Outcome::Busy => "busy",
        };
        self.logins.get_or_create(&LoginLabels { outcome }).inc();
    }
}
