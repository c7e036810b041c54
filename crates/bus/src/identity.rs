//! The components' NATS identities: who connects to the bus (see `auth` for what each may do).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A component's NATS identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Identity {
    Admin,
    Gateway,
    Correlator,
    Sealer,
    Witness,
    Auditor,
}

impl Identity {
    /// Every identity, in the order they are listed.
    pub const ALL: [Identity; 6] = [
        Identity::Admin,
        Identity::Gateway,
        Identity::Correlator,
        Identity::Sealer,
        Identity::Witness,
        Identity::Auditor,
    ];

    /// Its name (the credential file's stem, the inbox token).
    pub fn name(self) -> &'static str {
        match self {
            Identity::Admin => "admin",
            Identity::Gateway => "gateway",
            Identity::Correlator => "correlator",
            Identity::Sealer => "sealer",
            Identity::Witness => "witness",
            Identity::Auditor => "auditor",
        }
    }

    /// The inbox prefix its replies come to.
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX.{}", self.name())
    }

    /// Its credential file in `dir`: `<name>.creds` (a JWT credentials file) when present, else
    /// `<name>.nk` (an nkey seed).
    pub fn credentials_in(self, dir: &Path) -> PathBuf {
        let creds = dir.join(format!("{}.creds", self.name()));
        match creds.exists() {
            true => creds,
            false => dir.join(format!("{}.nk", self.name())),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
