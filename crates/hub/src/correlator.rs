//! The correlator as a hub component: the service on the events stream, its metrics and
//! readiness, and its rule file re-read on SIGHUP.

use std::path::PathBuf;

use timpora_bus::Bus;

use crate::config::CorrelatorConfig;
use crate::error::Error;
use crate::metrics;
use crate::stop::Stop;

/// What the component runs with, checked at build time.
pub(crate) struct Prepared {
    pub options: timpora_correlator::Options,
    /// The rule file's text (checked), or `None` for the built-in set.
    pub rules: Option<String>,
    pub file: Option<PathBuf>,
}

/// Check the section, read the rule file and bind the metrics address.
pub(crate) async fn prepare(c: &CorrelatorConfig) -> Result<Prepared, Error> {
    let options = c.options()?;
    let rules = match &c.rules {
        Some(file) => Some(timpora_rules::load(Some(file))?.0),
        None => None,
    };
    Ok(Prepared {
        options,
        rules,
        file: c.rules.clone(),
    })
}

/// Register the correlator's metrics and its say in readiness (by part when `sharing`).
pub(crate) fn observe(t: &mut timpora_telemetry::Telemetry, sharing: bool) -> metrics::Observed {
    metrics::Observed::register(t, sharing)
}

/// Run until `stop`, reporting to `observed` (when telemetry is on); the SIGHUP reload lives as
/// long as the service.
pub(crate) async fn run(
    bus: Bus,
    mut p: Prepared,
    stop: Stop,
    observed: Option<metrics::Observed>,
) -> Result<(), Error> {
    let mut watcher = None;
    if let Some(o) = observed {
        p.options.status = Some(o.status());
        p.options.progress = Some(o.progress());
        p.options.parts = o.parts();
        watcher = Some(tokio::spawn(metrics::watch(bus.clone(), o)));
    }
    let reloader = tokio::spawn(reload_on_hangup(bus.clone(), p.file.clone()));
    let result = timpora_correlator::run(bus, p.rules.as_deref(), p.options, stop.stopped()).await;
    reloader.abort();
    if let Some(w) = watcher {
        w.abort();
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
