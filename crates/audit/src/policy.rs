//! The auditor's policy file: whose signatures each log's checkpoints need.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use timpora_tlog::Policy;

use crate::error::Error;

/// What an auditor trusts, in TOML:
///
/// ```toml
/// quorum = 1
/// witnesses = ["kejaksaan.dev-witness+1a2b3c4d+BF…"]
/// [logs]
/// events = "timpora.dev/events+5e6f7a8b+AQ…"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPolicy {
    /// How many of the witnesses must have cosigned a checkpoint.
    pub quorum: usize,
    /// The trusted witnesses' cosignature verifier keys.
    #[serde(default)]
    pub witnesses: Vec<String>,
    /// Each log's verifier key, by log name (`events`, `alerts`, `access`).
    pub logs: BTreeMap<String, String>,
}

impl AuditPolicy {
    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Policy(format!("{}: {e}", path.display())))?;
        let p: Self =
            toml::from_str(&text).map_err(|e| Error::Policy(format!("{}: {e}", path.display())))?;
        for log in p.logs.keys() {
            p.policy(log)?;
        }
        Ok(p)
    }

    /// The policy file's text.
    pub fn to_toml(&self) -> Result<String, Error> {
        toml::to_string_pretty(self).map_err(|e| Error::Policy(e.to_string()))
    }

    /// The signature policy of `log`.
    pub fn policy(&self, log: &str) -> Result<Policy, Error> {
        let key = self
            .logs
            .get(log)
            .ok_or_else(|| Error::Policy(format!("no key for the log {log}")))?;
        Policy::new(key, &self.witnesses, self.quorum).map_err(|e| Error::Policy(e.to_string()))
    }

    /// The log whose key names `origin`.
    pub fn log_of(&self, origin: &str) -> Option<&str> {
        self.logs
            .iter()
            .find(|(_, k)| k.split('+').next() == Some(origin))
            .map(|(l, _)| l.as_str())
    }
}
