//! Layered configuration: defaults → TOML file → `TIMPORA_<SECTION>__<KEY>` environment.

use std::path::Path;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Where NATS is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
        }
    }
}

/// Everything the binary can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// NATS connection.
    pub nats: NatsConfig,
    /// JetStream topology.
    pub bus: timpora_bus::Topology,
    /// The gateway.
    pub gateway: timpora_gateway::Config,
    /// The operations console.
    pub console: crate::console::ConsoleConfig,
}

/// Load the configuration; a file that does not parse is an error naming the file.
pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(f) = file {
        anyhow::ensure!(f.exists(), "config file {} does not exist", f.display());
        fig = fig.merge(Toml::file(f));
    }
    fig = fig.merge(
        Env::prefixed("TIMPORA_")
            .filter(|k| k.as_str().contains("__"))
            .split("__"),
    );
    let what = file.map_or_else(|| "defaults".to_owned(), |f| f.display().to_string());
    fig.extract()
        .with_context(|| format!("invalid configuration ({what})"))
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
            "[nats]\nurl = \"nats://10.0.0.1:4222\"\n[bus]\nreplicas = 3\n",
        )
        .unwrap();
        let c = load(Some(&p)).unwrap();
        assert_eq!(c.nats.url, "nats://10.0.0.1:4222");
        assert_eq!(c.bus.replicas, 3);
        assert_eq!(c.bus.duplicate_window_secs, 600);
        std::fs::write(&p, "[nats]\nurll = \"x\"\n").unwrap();
        let err = format!("{:#}", load(Some(&p)).unwrap_err());
        assert!(err.contains("urll"), "{err}");
        assert!(load(Some(&dir.path().join("missing.toml"))).is_err());
    }

    #[test]
    fn the_deployment_example_is_a_valid_config() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/timpora.example.toml");
        let c = load(Some(&p)).unwrap();
        assert_eq!(c.bus.replicas, 3);
        assert!(c.gateway.tls.is_some() && c.gateway.tokens.is_empty());
        c.gateway.policy.validate().unwrap();
    }

    #[test]
    fn effective_config_round_trips_through_toml() {
        let c = Config::default();
        let text = toml::to_string_pretty(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
