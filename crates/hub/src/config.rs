//! The hub's configuration, one section per component, layered: defaults → TOML file →
//! `TIMPORA_<SECTION>__<KEY>` environment variables (the command line adds its flags on top).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use timpora_client::{Keyring, Target};

use crate::error::Error;

/// Where NATS is, and how `timpora up` looks after the server it starts itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// A `nats-server` the hub started itself that exits is started again on the same store;
    /// if it is not back within this many seconds the hub stops (non-zero).
    pub restart_within_secs: u64,
    /// Directory of the components' NATS credentials: `<identity>.nk` (an nkey seed) or
    /// `<identity>.creds` (a JWT credentials file) for admin, gateway, correlator, sealer,
    /// witness and auditor. Each component connects as its own identity; one whose file is
    /// missing connects without credentials (and a server with authorisation refuses it). When
    /// unset, every connection is anonymous (a development server without authorisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_dir: Option<PathBuf>,
    /// TLS to NATS (required when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<timpora_bus::NatsTls>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            restart_within_secs: 30,
            credentials_dir: None,
            tls: None,
        }
    }
}

impl NatsConfig {
    /// How `identity` connects.
    pub fn options(&self, identity: timpora_bus::Identity) -> timpora_bus::NatsOptions {
        timpora_bus::NatsOptions {
            url: self.url.clone(),
            identity: Some(identity),
            credentials: self
                .credentials_dir
                .as_deref()
                .map(|d| identity.credentials_in(d))
                .filter(|p| p.exists()),
            tls: self.tls.clone(),
        }
    }

    /// Whether `identity` connects with credentials, or the connections are anonymous anyway
    /// (no credentials directory): whether it can act as that identity at all.
    pub fn can_act_as(&self, identity: timpora_bus::Identity) -> bool {
        match &self.credentials_dir {
            None => true,
            Some(d) => identity.credentials_in(d).exists(),
        }
    }
}

/// The correlation service (`[correlator]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelatorConfig {
    /// Rule file (TOML); the built-in rule set R1-R6 when absent. SIGHUP re-reads it.
    pub rules: Option<PathBuf>,
    /// How far out of event-time order events may arrive and still be handled exactly.
    pub lateness: String,
    /// How often a clock tick is recorded into the stream.
    pub tick: String,
    /// How often the state and stream position are checkpointed.
    pub checkpoint_every: String,
    /// Most entries of state held; past it the groups idle longest are dropped.
    pub state_cap: usize,
    /// The telemetry endpoint's address, as older configurations give it: the same as
    /// `[telemetry] listen`, which wins when both are set.
    pub metrics: Option<SocketAddr>,
    /// Into how many parts the group keys are cut for correlators that share the work: run as
    /// many correlators as you like with the same value, and they divide the parts among
    /// themselves. 1: one correlator decides everything. Changing it starts every part afresh
    /// from the start of the stream (each part has its own checkpoint).
    pub partitions: u32,
    /// How long a correlator's hold on a part lasts unless renewed (a third of it apart): after
    /// a crash, the others take its parts over within about this long.
    pub lease: String,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        Self {
            rules: None,
            lateness: "5s".into(),
            tick: "1s".into(),
            checkpoint_every: "10s".into(),
            state_cap: 5_000_000,
            metrics: None,
            partitions: 1,
            lease: "5s".into(),
        }
    }
}

/// A duration setting's value (`250ms`, `5s`, `1m`), or an error naming the setting.
pub fn duration(setting: &str, value: &str) -> Result<Duration, Error> {
    timpora_rules::parse_duration(value).ok_or_else(|| {
        Error::Config(format!(
            "{setting} {value:?} is not a duration; write e.g. 250ms, 5s, 1m"
        ))
    })
}

impl CorrelatorConfig {
    /// The service's options, checked.
    pub fn options(&self) -> Result<timpora_correlator::Options, Error> {
        let options = timpora_correlator::Options {
            lateness: duration("correlator.lateness", &self.lateness)?,
            tick_every: duration("correlator.tick", &self.tick)?,
            checkpoint_every: duration("correlator.checkpoint_every", &self.checkpoint_every)?,
            state_cap: self.state_cap,
            progress: None,
            status: None,
            parts: None,
            partitions: self.partitions,
            lease: duration("correlator.lease", &self.lease)?,
        };
        if options.tick_every.is_zero() || options.checkpoint_every.is_zero() {
            return Err(Error::Config(
                "correlator.tick and correlator.checkpoint_every must be positive".into(),
            ));
        }
        if !(1..=1024).contains(&self.partitions) {
            return Err(Error::Config(format!(
                "correlator.partitions {} must be from 1 to 1024",
                self.partitions
            )));
        }
        if options.lease < Duration::from_millis(300) {
            return Err(Error::Config(format!(
                "correlator.lease {:?} is too short to renew: give at least 300ms",
                self.lease
            )));
        }
        Ok(options)
    }
}

/// The sealer (`[sealer]`): the transparency log over the events, alerts and access streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealerConfig {
    /// The deployment's name in each log's origin (`timpora.<deployment>/events`).
    pub deployment: String,
    /// File holding the sealer's Ed25519 key (a signed-note private key, readable only by the
    /// sealer); `timpora dev init` writes a development one.
    pub key: Option<PathBuf>,
    /// A checkpoint after this many new messages of a stream…
    pub every_messages: u64,
    /// …or after this long, whichever comes first.
    pub every: String,
    /// Witnesses asked to cosign each checkpoint: their cosignature verifier keys
    /// (`<name>+<id>+<key>`, as `timpora witness key` prints them).
    pub witnesses: Vec<String>,
}

impl Default for SealerConfig {
    fn default() -> Self {
        Self {
            deployment: "dev".into(),
            key: None,
            every_messages: 1000,
            every: "5s".into(),
            witnesses: Vec::new(),
        }
    }
}

impl SealerConfig {
    /// The sealer's options, its key read from its file.
    pub fn options(&self) -> Result<timpora_sealer::Options, Error> {
        let Some(file) = &self.key else {
            return Err(Error::Config(
                "sealer.key names no key file (`timpora dev init` writes a development one; \
                 `timpora sealer keygen FILE` a production one)"
                    .into(),
            ));
        };
        let key = read_key(file, "sealer.key")?;
        let every = duration("sealer.every", &self.every)?;
        if every.is_zero() || self.every_messages == 0 {
            return Err(Error::Config(
                "sealer.every and sealer.every_messages must be positive".into(),
            ));
        }
        // The origin must make a valid key name.
        key.renamed(&timpora_sealer::origin(&self.deployment, "events"))
            .map_err(|e| Error::Config(format!("sealer.deployment: {e}")))?;
        Ok(timpora_sealer::Options {
            deployment: self.deployment.clone(),
            key,
            every_messages: self.every_messages,
            every,
            witnesses: self.witnesses.clone(),
            witness_memory: timpora_sealer::WITNESS_MEMORY,
        })
    }
}

/// A witness (`[witness]`): run by another agency, cosigning the hub's checkpoints only when
/// each extends the last it cosigned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessConfig {
    /// File holding the witness's Ed25519 key (its name is the witness's name).
    pub key: Option<PathBuf>,
    /// Directory where it keeps the last checkpoint it cosigned per log, and evidence of forks.
    pub state_dir: Option<PathBuf>,
    /// The logs it witnesses: their verifier keys (`timpora sealer key` prints them).
    pub logs: Vec<String>,
}

impl WitnessConfig {
    /// The witness, its key read and its state opened.
    pub fn open(&self) -> Result<timpora_witness::Witness, Error> {
        let (Some(file), Some(dir)) = (&self.key, &self.state_dir) else {
            return Err(Error::Config(
                "witness.key and witness.state_dir must both be set".into(),
            ));
        };
        let key = read_key(file, "witness.key")?;
        if self.logs.is_empty() {
            return Err(Error::Config("witness.logs names no log to witness".into()));
        }
        timpora_witness::Witness::open(key, &self.logs, dir)
            .map_err(|e| Error::Config(format!("witness: {e}")))
    }
}

/// The Ed25519 key in `file`, for the `setting` that names it.
fn read_key(file: &Path, setting: &str) -> Result<timpora_tlog::Key, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Config(format!("{setting} {}: cannot be read: {e}", file.display())))?;
    timpora_tlog::Key::from_secret(&text)
        .map_err(|e| Error::Config(format!("{setting} {}: {e}", file.display())))
}

/// The demo simulator (`[demo]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Scenario seed: the same seed gives the same scenario.
    pub seed: u64,
    /// Acts (agency calls) per second.
    pub rate: f64,
    /// One set of R1-R6 storylines at the start and then every this many acts (0: only at
    /// the start).
    pub storyline_every: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            rate: 5.0,
            storyline_every: 150,
        }
    }
}

/// What each process tells an operator (`[telemetry]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Serve `/metrics` (every component of the process), `/healthz` (liveness) and `/readyz`
    /// (readiness: NATS reachable, streams present, the correlator caught up) on this address.
    pub listen: Option<SocketAddr>,
    /// Export traces (`[telemetry.traces]`).
    pub traces: TracesConfig,
}

/// Where spans go (`[telemetry.traces]`): nowhere unless an endpoint is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// An OTLP/gRPC receiver (an OpenTelemetry collector, Jaeger, Tempo):
    /// `http://collector:4317`.
    pub endpoint: Option<String>,
    /// The share of traces started here that are kept (0.0–1.0); a caller that sends a
    /// `traceparent` decides for its own trace.
    pub sampling: f64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            sampling: 1.0,
        }
    }
}

/// How the hub stops (`[shutdown]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Components get this many seconds to drain after a stop; what is still running then is
    /// abandoned (nothing unacknowledged is lost: it is redone from the stream at the next
    /// start).
    pub drain_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { drain_secs: 10 }
    }
}

/// Everything the hub can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// NATS connection.
    pub nats: NatsConfig,
    /// JetStream topology.
    pub bus: timpora_bus::Topology,
    /// The gateway.
    pub gateway: timpora_gateway::Config,
    /// The correlation service.
    pub correlator: CorrelatorConfig,
    /// The sealer.
    pub sealer: SealerConfig,
    /// A witness.
    pub witness: WitnessConfig,
    /// The operations console.
    pub console: timpora_console::Config,
    /// The demo simulator.
    pub demo: DemoConfig,
    /// Stopping.
    pub shutdown: ShutdownConfig,
    /// Metrics, liveness and readiness.
    pub telemetry: TelemetryConfig,
}

impl Config {
    /// How a client of this hub reaches its gateway and acts as an identity there: `url` when
    /// given (TLS when it is `https://`), else the configured listen address; trusting the
    /// development CA of `data_dir` and holding its development certificates (when given) and
    /// the configured tokens.
    pub fn gateway_client(
        &self,
        url: Option<String>,
        data_dir: Option<&Path>,
    ) -> (Target, Keyring) {
        let tls = self.gateway.tls.is_some();
        let mut target =
            url.map_or_else(|| Target::listening(self.gateway.listen, tls), Target::new);
        let mut keyring = Keyring::new(target.tls());
        if let Some(dir) = data_dir {
            target = target.or_dev_ca(dir);
            keyring = keyring.with_dev_dir(dir);
        }
        let keyring = self
            .gateway
            .tokens
            .iter()
            .fold(keyring, |k, t| k.token(&t.identity, &t.token));
        (target, keyring)
    }

    /// Load the configuration: defaults, then `file`, then `TIMPORA_<SECTION>__<KEY>`
    /// variables. A file that is missing or does not parse is an error naming it.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(Error::Config(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(
            Env::prefixed("TIMPORA_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let what = file.map_or_else(|| "defaults".to_owned(), |f| f.display().to_string());
        let mut cfg: Self = fig
            .extract()
            .map_err(|e| Error::Config(format!("invalid configuration ({what}): {e}")))?;
        // An office's streams are named after it.
        cfg.bus = cfg
            .bus
            .resolve()
            .map_err(|e| Error::Config(format!("invalid configuration ({what}): [bus] {e}")))?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.toml");
        std::fs::write(
            &p,
            "[nats]\nurl = \"nats://10.0.0.1:4222\"\n[bus]\nreplicas = 3\n[correlator]\nlateness = \"2s\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.nats.url, "nats://10.0.0.1:4222");
        assert_eq!(c.bus.replicas, 3);
        assert_eq!(c.bus.duplicate_window_secs, 120);
        assert_eq!(
            c.correlator.options().unwrap().lateness,
            Duration::from_secs(2)
        );
        std::fs::write(&p, "[nats]\nurll = \"x\"\n").unwrap();
        let err = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("urll"), "{err}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }

    #[test]
    fn bad_correlator_durations_name_the_setting() {
        let c = CorrelatorConfig {
            tick: "soon".into(),
            ..Default::default()
        };
        let err = c.options().unwrap_err().to_string();
        assert!(
            err.contains("correlator.tick") && err.contains("soon"),
            "{err}"
        );
        let c = CorrelatorConfig {
            checkpoint_every: "0s".into(),
            ..Default::default()
        };
        assert!(c.options().is_err());
    }

    #[test]
    fn the_deployment_example_is_a_valid_config() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/timpora.example.toml");
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.bus.replicas, 3);
        assert!(c.gateway.tls.is_some() && c.gateway.tokens.is_empty());
        assert!(c.console.tls.is_some(), "the console serves HTTPS");
        c.gateway.policy.validate().unwrap();
        c.gateway.alerts.validate().unwrap();
        assert_eq!(c.gateway.alerts.units.len(), 4);
        assert_eq!(c.gateway.alerts, {
            let mut d = timpora_gateway::AlertRules::default();
            d.units.clone_from(&c.gateway.alerts.units);
            d
        });
        c.correlator.options().unwrap();
    }

    #[test]
    fn effective_config_round_trips_through_toml() {
        let c = Config::default();
        let text = toml::to_string_pretty(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
