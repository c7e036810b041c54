//! The correlator as a hub component: the service on the events stream, its metrics endpoint,
//! and its rule file re-read on SIGHUP.

use std::path::PathBuf;

use timpora_bus::{Bus, CorrelatorStatus};
use tokio::sync::watch;

use crate::config::CorrelatorConfig;
use crate::error::Error;
use crate::metrics;
use crate::stop::{Stop, bind};

/// What the component runs with, checked at build time.
pub(crate) struct Prepared {
    pub options: timpora_correlator::Options,
    /// The rule file's text (checked), or `None` for the built-in set.
    pub rules: Option<String>,
    pub file: Option<PathBuf>,
    pub metrics: Option<tokio::net::TcpListener>,
}

/// Check the section, read the rule file and bind the metrics address.
pub(crate) async fn prepare(c: &CorrelatorConfig) -> Result<Prepared, Error> {
    let options = c.options()?;
    let rules = match &c.rules {
        Some(file) => Some(timpora_rules::load(Some(file))?.0),
        None => None,
    };
    let metrics = match c.metrics {
        Some(addr) => Some(bind(addr, "correlator metrics").await?),
        None => None,
    };
    Ok(Prepared {
        options,
        rules,
        file: c.rules.clone(),
        metrics,
    })
}

/// Run until `stop`; the metrics endpoint and the SIGHUP reload live as long as the service.
pub(crate) async fn run(bus: Bus, mut p: Prepared, stop: Stop) -> Result<(), Error> {
    let mut metrics_server = None;
    if let Some(listener) = p.metrics.take() {
        let (tx, rx) = watch::channel(CorrelatorStatus::default());
        p.options.status = Some(tx);
        metrics_server = Some(tokio::spawn(metrics::serve(
            listener,
            rx,
            stop.clone().stopped(),
        )));
    }
    let reloader = tokio::spawn(reload_on_hangup(bus.clone(), p.file.clone()));
    let result = timpora_correlator::run(bus, p.rules.as_deref(), p.options, stop.stopped()).await;
    reloader.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    result?;
    Ok(())
}

/// On each SIGHUP, check the rule file again and make it the active set when valid; an invalid
/// file changes nothing.
async fn reload_on_hangup(bus: Bus, file: Option<PathBuf>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use `timpora rules apply`");
            return;
        };
        while hangups.recv().await.is_some() {
            let Some(path) = &file else {
                tracing::warn!("SIGHUP without a rule file; use `timpora rules apply FILE`");
                continue;
            };
            match timpora_rules::load(Some(path)) {
                Ok((text, set)) => match bus.put_rules(&text).await {
                    Ok(_) => tracing::info!(
                        file = %path.display(), version = %set.version, "rule file re-read on SIGHUP"
                    ),
                    Err(e) => tracing::error!(error = %e, "cannot store the re-read rule set"),
                },
                Err(e) => tracing::error!(
                    file = %path.display(), error = %e, "rule file not applied on SIGHUP; keeping the running set"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (bus, file);
    }
}
