//! `/metrics` in the Prometheus text format, from the correlator's status reports.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use timpora_bus::CorrelatorStatus;
use tokio::sync::watch;

/// The Prometheus text of one status report.
pub fn render(s: &CorrelatorStatus) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "timpora_correlator_events_total",
        "counter",
        "Events evaluated.",
        s.events,
    );
    metric(
        "timpora_correlator_late_events_total",
        "counter",
        "Events later than the allowed lateness (counted, still used).",
        s.late_events,
    );
    metric(
        "timpora_correlator_alerts_total",
        "counter",
        "Alerts raised.",
        s.alerts,
    );
    metric(
        "timpora_correlator_state_entries",
        "gauge",
        "Entries of state held.",
        s.tracked,
    );
    metric(
        "timpora_correlator_state_cap",
        "gauge",
        "Most entries of state held before the groups idle longest are dropped.",
        s.state_cap,
    );
    metric(
        "timpora_correlator_state_entities",
        "gauge",
        "Distinct entities with state, at the last checkpoint.",
        s.entities,
    );
    metric(
        "timpora_correlator_shed_groups_total",
        "counter",
        "Groups dropped because the state cap was reached.",
        s.shed_groups,
    );
    metric(
        "timpora_correlator_position",
        "gauge",
        "Last events-stream sequence processed.",
        s.position,
    );
    metric(
        "timpora_correlator_checkpoint_sequence",
        "gauge",
        "Last events-stream sequence covered by a checkpoint.",
        s.checkpoint_sequence,
    );
    out.push_str(&format!(
        "# HELP timpora_correlator_rule_set Running rule set.\n# TYPE timpora_correlator_rule_set gauge\ntimpora_correlator_rule_set{{version=\"{}\",sha256=\"{}\"}} 1\n",
        s.version.replace(['"', '\\', '\n'], "_"),
        s.digest
    ));
    out
}

async fn metrics(State(rx): State<watch::Receiver<CorrelatorStatus>>) -> String {
    render(&rx.borrow())
}

/// Serve `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rx: watch::Receiver<CorrelatorStatus>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "metrics on /metrics");
    let app = Router::new().route("/metrics", get(metrics)).with_state(rx);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
