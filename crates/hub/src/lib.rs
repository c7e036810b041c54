//! The one composition layer of the TIMPORA hub. A [`Config`] has one section per component;
//! [`Config::build`] checks it, binds every address, connects to NATS and provisions the
//! topology, returning a [`Hub`]; [`Hub::spawn`] starts the chosen components and returns a
//! [`Running`] hub, which runs until it is told to stop or until a component stops by itself,
//! and then drains every component within a deadline.
//!
//! Components: the gateway, the correlator (with its metrics endpoint and SIGHUP rule reload),
//! the sealer (the transparency log over the streams), a witness, the operations console, the demo simulator, and — for `timpora up` — the `nats-server` child
//! it looks after. Every command that runs services (`timpora up`, `gateway`, `correlator`,
//! `sealer`, `witness`, `console`) goes through here, choosing which components run.
//!
//! A component that stops by itself (an error, or an unexpected end) stops the hub: the others
//! are drained and [`Running::run_until`] returns [`Error::Stopped`] naming it and why, so a
//! process never goes on as half a hub that looks healthy. The demo simulator is the one
//! component that may end normally (after a given number of acts).

mod config;
mod correlator;
pub mod demo;
mod error;
pub mod metrics;
pub mod nats;
mod stop;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use timpora_bus::{Bus, Identity};
use timpora_client::{Keyring, Target};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    Config, CorrelatorConfig, DemoConfig, NatsConfig, SealerConfig, ShutdownConfig,
    TelemetryConfig, TracesConfig, WitnessConfig, duration,
};
pub use error::Error;
use stop::{Stop, bind};

/// Which components run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Components {
    pub gateway: bool,
    pub correlator: bool,
    pub console: bool,
    pub sealer: bool,
    pub witness: bool,
    pub demo: bool,
}

impl Components {
    /// Only the gateway.
    pub fn gateway() -> Self {
        Self {
            gateway: true,
            ..Self::default()
        }
    }

    /// Only the correlator.
    pub fn correlator() -> Self {
        Self {
            correlator: true,
            ..Self::default()
        }
    }

    /// Only the sealer.
    pub fn sealer() -> Self {
        Self {
            sealer: true,
            ..Self::default()
        }
    }

    /// Only a witness.
    pub fn witness() -> Self {
        Self {
            witness: true,
            ..Self::default()
        }
    }

    /// Only the console.
    pub fn console() -> Self {
        Self {
            console: true,
            ..Self::default()
        }
    }
}

/// What a build needs besides the config.
#[derive(Debug, Default)]
pub struct Options {
    /// The components to run.
    pub components: Components,
    /// A data directory whose development credentials the console and the demo may use.
    pub data_dir: Option<PathBuf>,
    /// The gateway the console and the demo talk to (default: the configured one).
    pub gateway_url: Option<String>,
    /// A `nats-server` to start and look after (`timpora up`); the hub then uses it.
    pub nats_child: Option<timpora_natsd::Builder>,
}

/// Connect to NATS as `identity`, waiting for it to come up. A refusal (credentials, TLS,
/// permissions) is an error at once: waiting would not change it.
pub async fn connect_waiting(cfg: &Config, identity: Identity, name: &str) -> Result<Bus, Error> {
    loop {
        match Bus::connect(cfg.nats.options(identity), name, cfg.bus.clone()).await {
            Ok(bus) => return Ok(bus),
            Err(e) if e.kind() == timpora_bus::ErrorKind::Refused => return Err(e.into()),
            Err(e) => {
                tracing::warn!(url = %timpora_bus::redact(&cfg.nats.url), error = %e, "waiting for nats");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Create or update the topology as the admin identity, when this hub has its credentials (or
/// the bus is anonymous); the admin connection, for re-creating a missing topology. `None` when
/// it has not: the components then check that the topology exists.
async fn provision(cfg: &Config) -> Result<Option<Bus>, Error> {
    if !cfg.nats.can_act_as(Identity::Admin) {
        return Ok(None);
    }
    let admin = connect_waiting(cfg, Identity::Admin, "timpora-admin").await?;
    // JetStream may not answer in time while other processes provision too (a gateway and a
    // correlator started together) or its server is loaded: a passing failure is tried again,
    // for as long as `connect_waiting` waits for NATS itself.
    let mut tries = 0u32;
    loop {
        match admin.ensure_topology().await {
            Ok(()) => return Ok(Some(admin)),
            Err(e) if e.is_transient() => {
                tries += 1;
                // Said at the first failure and every tenth after: the wait is visible
                // without flooding the log.
                if tries % 10 == 1 {
                    tracing::warn!(error = %e, tries, "provisioning the topology did not finish; trying again");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Each component's own connection to the bus, as its own identity.
#[derive(Debug, Default)]
struct Buses {
    gateway: Option<Bus>,
    correlator: Option<Bus>,
    sealer: Option<Bus>,
    witness: Option<Bus>,
    /// The admin's, kept only for the gateway to re-create a missing topology.
    admin: Option<Bus>,
}

impl Buses {
    async fn connect(cfg: &Config, c: Components) -> Result<Self, Error> {
        let mut buses = Buses::default();
        if !(c.gateway || c.correlator || c.sealer || c.witness) {
            return Ok(buses);
        }
        let admin = provision(cfg).await?;
        let provisioned = admin.is_some();
        if c.gateway {
            buses.admin = admin;
        }
        for (on, id, slot) in [
            (c.gateway, Identity::Gateway, &mut buses.gateway),
            (c.correlator, Identity::Correlator, &mut buses.correlator),
            (c.sealer, Identity::Sealer, &mut buses.sealer),
            (c.witness, Identity::Witness, &mut buses.witness),
        ] {
            if !on {
                continue;
            }
            let bus = connect_waiting(cfg, id, &format!("timpora-{id}")).await?;
            if !provisioned && id != Identity::Witness {
                bus.check_topology().await?;
            }
            *slot = Some(bus);
        }
        Ok(buses)
    }
}

/// A hub built and ready to start: its configuration checked, addresses bound, NATS reached.
pub struct Hub {
    config: Config,
    components: Components,
    nats: Option<nats::Supervised>,
    buses: Buses,
    gateway: Option<tokio::net::TcpListener>,
    correlator: Option<correlator::Prepared>,
    sealer: Option<timpora_sealer::Options>,
    witness: Option<timpora_witness::Witness>,
    console: Option<tokio::net::TcpListener>,
    telemetry: Option<tokio::net::TcpListener>,
    target: Target,
    keyring: Keyring,
}

impl Config {
    /// The console offers the units the gateway assigns alerts to (`gateway.alerts.units`), or
    /// the subset of them its own `units` names.
    fn console_units(&mut self) -> Result<(), Error> {
        let known = &self.gateway.alerts.units;
        if self.console.units.is_empty() {
            self.console.units = known.clone();
        } else if let Some(u) = self.console.units.iter().find(|u| !known.contains(u)) {
            return Err(Error::Config(format!(
                "console.units names {u}, which gateway.alerts.units does not: the gateway \
                 would refuse every assignment to it"
            )));
        }
        Ok(())
    }

    /// Check the configuration of the chosen components, start the `nats-server` child if
    /// asked, bind every address, connect to NATS and provision the topology. Nothing runs
    /// yet; a failure here leaves nothing behind.
    pub async fn build(mut self, o: Options) -> Result<Hub, Error> {
        let c = o.components;
        // Explanations replay with the correlator's lateness.
        self.gateway
            .correlator_lateness
            .clone_from(&self.correlator.lateness);
        if c.gateway {
            self.gateway.policy.validate()?;
            self.gateway.alerts.validate()?;
        }
        if c.console {
            self.console.validate()?;
            self.console_units()?;
        }
        if c.demo {
            demo::check(&self.demo)?;
        }
        let correlator = match c.correlator {
            true => Some(correlator::prepare(&self.correlator).await?),
            false => None,
        };
        let sealer = match c.sealer {
            true => Some(self.sealer.options()?),
            false => None,
        };
        let witness = match c.witness {
            true => Some(self.witness.open()?),
            false => None,
        };
        let gateway = match c.gateway {
            true => Some(bind(self.gateway.listen, "gateway").await?),
            false => None,
        };
        if let Some(l) = &gateway {
            // Port 0 in the config: the console and the demo reach the port actually bound.
            self.gateway.listen = l.local_addr().map_err(|source| Error::Listen {
                what: "gateway",
                addr: self.gateway.listen,
                source,
            })?;
        }
        let console = match c.console {
            true => Some(bind(self.console.listen, "console").await?),
            false => None,
        };
        let telemetry = match self.telemetry.listen.or(self.correlator.metrics) {
            Some(addr) => Some(bind(addr, "telemetry").await?),
            None => None,
        };
        let (target, keyring) = self.gateway_client(o.gateway_url.clone(), o.data_dir.as_deref());
        let nats = match o.nats_child {
            Some(b) => {
                let restart = Duration::from_secs(self.nats.restart_within_secs);
                let s = nats::Supervised::start(b, restart)?;
                self.nats.url = s.url().to_owned();
                Some(s)
            }
            None => None,
        };
        let buses = Buses::connect(&self, c).await?;
        Ok(Hub {
            config: self,
            components: c,
            nats,
            buses,
            gateway,
            correlator,
            sealer,
            witness,
            console,
            telemetry,
            target,
            keyring,
        })
    }
}

fn local(l: &Option<tokio::net::TcpListener>) -> Option<SocketAddr> {
    l.as_ref().and_then(|l| l.local_addr().ok())
}

impl Hub {
    /// The effective configuration (with the NATS URL and ports actually used).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the gateway listens, if it runs.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        local(&self.gateway)
    }

    /// Where the console listens, if it runs.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        local(&self.console)
    }

    /// The console's address as a browser opens it (`https://` when it serves TLS).
    pub fn console_url(&self) -> Option<String> {
        let scheme = match self.config.console.tls {
            Some(_) => "https",
            None => "http",
        };
        self.console_addr().map(|a| format!("{scheme}://{a}"))
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        local(&self.telemetry)
    }

    /// Start the components.
    pub fn spawn(self) -> Running {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop = Stop(stop_rx);
        let mut tasks = Vec::new();
        let cfg = self.config;
        let buses = self.buses;
        // Every component registers what it reports before the endpoint serves it.
        let mut telemetry = self
            .telemetry
            .as_ref()
            .map(|_| timpora_telemetry::Telemetry::default());
        if let (Some(listener), Some(bus)) = (self.gateway, &buses.gateway) {
            let s = stop.clone();
            let observed = match &mut telemetry {
                Some(t) => timpora_gateway::Observed {
                    metrics: timpora_gateway::Metrics::register(t.registry()),
                    readiness: Some(t.health().component("gateway")),
                },
                None => timpora_gateway::Observed::default(),
            };
            let fut = timpora_gateway::serve(
                cfg.gateway.clone(),
                bus.clone(),
                buses.admin.clone(),
                listener,
                observed,
                s.stopped(),
            );
            tasks.push(Task::new("gateway", true, async move { Ok(fut.await?) }));
        }
        if let (Some(p), Some(bus)) = (self.correlator, &buses.correlator) {
            let sharing = p.options.partitions > 1;
            let observed = telemetry.as_mut().map(|t| correlator::observe(t, sharing));
            let fut = correlator::run(bus.clone(), p, stop.clone(), observed);
            tasks.push(Task::new("correlator", true, fut));
        }
        if let (Some(witness), Some(bus)) = (self.witness, &buses.witness) {
            let (client, s) = (bus.client().clone(), stop.clone());
            tasks.push(Task::new("witness", true, async move {
                Ok(timpora_witness::serve(client, witness, s.stopped()).await?)
            }));
        }
        if let (Some(options), Some(bus)) = (self.sealer, &buses.sealer) {
            let (bus, s) = (bus.clone(), stop.clone());
            let mut appended = None;
            let watcher = telemetry.as_mut().map(|t| {
                let o = metrics::SealerObserved::register(t);
                appended = Some(o.appended.clone());
                tokio::spawn(metrics::watch_sealer(bus.clone(), o))
            });
            tasks.push(Task::new("sealer", true, async move {
                let sealed =
                    timpora_sealer::run_reporting(bus, options, appended, s.stopped()).await;
                if let Some(w) = watcher {
                    w.abort();
                }
                let sealed = sealed?;
                for (log, s) in ["events", "alerts", "access"].iter().zip(sealed) {
                    tracing::info!(log, size = s.size, gaps = s.gaps, "sealer stopped");
                }
                Ok(())
            }));
        }
        if let Some(listener) = self.console {
            let metrics = telemetry
                .as_mut()
                .map(|t| timpora_console::Metrics::register(t.registry()))
                .unwrap_or_default();
            let fut = timpora_console::serve(
                cfg.console.clone(),
                self.target.clone(),
                self.keyring.clone(),
                metrics,
                listener,
                stop.clone().stopped(),
            );
            tasks.push(Task::new("console", true, async move { Ok(fut.await?) }));
        }
        if let (Some(t), Some(listener)) = (telemetry, self.telemetry) {
            let s = stop.clone();
            tasks.push(Task::new("telemetry", false, async move {
                t.serve(listener, s.stopped())
                    .await
                    .map_err(|e| Error::Config(format!("telemetry endpoint: {e}")))
            }));
        }
        if self.components.demo {
            let (target, keyring, settings, s) =
                (self.target, self.keyring, cfg.demo.clone(), stop.clone());
            tasks.push(Task::new("demo", false, async move {
                let t = demo::run(&target, &keyring, &settings, None, s.stopped()).await?;
                tracing::info!(acts = t.sent, refused = t.refused, "demo stopped");
                Ok(())
            }));
        }
        Running {
            stop: stop_tx,
            tasks,
            nats: self.nats,
            buses,
            drain: Duration::from_secs(cfg.shutdown.drain_secs),
        }
    }
}

/// One running component.
struct Task {
    name: &'static str,
    /// Whether its end, without a stop request, is a failure.
    essential: bool,
    handle: JoinHandle<Result<(), Error>>,
}

impl Task {
    fn new(
        name: &'static str,
        essential: bool,
        fut: impl Future<Output = Result<(), Error>> + Send + 'static,
    ) -> Self {
        Self {
            name,
            essential,
            handle: tokio::spawn(fut),
        }
    }
}

/// The reason a finished component gives.
fn outcome(r: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), String> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) if e.is_panic() => Err("it panicked".into()),
        Err(_) => Err("it was cancelled".into()),
    }
}

/// A running hub.
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<Task>,
    nats: Option<nats::Supervised>,
    buses: Buses,
    drain: Duration,
}

impl Running {
    /// Whether component `name` is still running.
    pub fn is_running(&self, name: &str) -> bool {
        self.tasks
            .iter()
            .any(|t| t.name == name && !t.handle.is_finished())
    }

    /// Run until `shutdown` completes or a component stops by itself, then drain. `Ok` when
    /// the hub was told to stop and every component drained in time; otherwise the first
    /// component that stopped or failed, and why.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let mut shutdown = std::pin::pin!(shutdown);
        let failure = loop {
            let Running { tasks, nats, .. } = &mut self;
            let first = async {
                if tasks.is_empty() {
                    return futures::future::pending().await;
                }
                let pending = tasks
                    .iter_mut()
                    .map(|t| Box::pin(async move { (t.name, t.essential, (&mut t.handle).await) }));
                futures::future::select_all(pending).await.0
            };
            let nats_ended = async {
                match nats.as_mut() {
                    Some(n) => n.ended().await,
                    None => futures::future::pending().await,
                }
            };
            let (name, essential, r) = tokio::select! {
                () = &mut shutdown => break None,
                r = nats_ended => break Some(Error::Stopped {
                    component: "nats-server",
                    reason: r.err().unwrap_or_else(|| "it stopped".into()),
                }),
                done = first => done,
            };
            // Its handle has been awaited: it is no longer one to drain.
            self.tasks.retain(|t| t.name != name);
            match outcome(r) {
                Ok(()) if !essential => tracing::info!(component = name, "component finished"),
                Ok(()) => {
                    break Some(Error::Stopped {
                        component: name,
                        reason: "it ended unexpectedly".into(),
                    });
                }
                Err(reason) => {
                    break Some(Error::Stopped {
                        component: name,
                        reason,
                    });
                }
            }
        };
        if let Some(e) = &failure {
            tracing::error!(error = %e, "a component stopped; stopping the hub");
        }
        let drained = self.drain().await;
        match failure {
            Some(e) => Err(e),
            None => drained,
        }
    }

    /// Ask every component to stop and wait for them to drain, within the configured
    /// deadline; then stop the `nats-server` child, if any. The first component that failed
    /// while draining, if one did.
    pub async fn drain(&mut self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + self.drain;
        let mut first_error = None;
        for t in self.tasks.drain(..) {
            let name = t.name;
            let mut handle = t.handle;
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(r) => {
                    if let Err(reason) = outcome(r) {
                        tracing::error!(component = name, error = %reason, "component failed while stopping");
                        first_error.get_or_insert(Error::Stopped {
                            component: name,
                            reason,
                        });
                    }
                }
                Err(_) => {
                    handle.abort();
                    tracing::warn!(
                        component = name,
                        deadline_secs = self.drain.as_secs(),
                        "component did not drain in time; abandoned (its unfinished work is redone from the stream at the next start)"
                    );
                }
            }
        }
        self.buses = Buses::default();
        if let Some(n) = self.nats.take() {
            n.shutdown().await;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_offers_only_units_the_gateway_assigns_to() {
        let mut c = Config::default();
        c.gateway.alerts.units = vec!["polri/polda-sultra".into(), "bp3mi/bp3mi-sultra".into()];
        c.console_units().unwrap();
        assert_eq!(c.console.units, c.gateway.alerts.units, "the default: all");
        c.console.units = vec!["polri/polda-sultra".into()];
        c.console_units().unwrap();
        assert_eq!(c.console.units, ["polri/polda-sultra"], "a subset is kept");
        c.console.units = vec!["bin/secret-unit".into()];
        let err = c.console_units().unwrap_err().to_string();
        assert!(err.contains("bin/secret-unit"), "{err}");
    }
}
