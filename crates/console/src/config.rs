//! The console's configuration section (`[console]`) and its checks.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use timpora_client::Keyring;

use crate::auth::Account;
use crate::error::Error;

/// The console's configuration (`[console]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve the console on.
    pub listen: SocketAddr,
    /// A session ends after this many minutes without use.
    pub idle_minutes: u64,
    /// A session ends this many hours after login, used or not (one shift).
    pub max_hours: u64,
    /// Units (`agency/unit`) the console offers for assignment (default: every unit the
    /// gateway's `alerts.units` names; the gateway refuses any other).
    pub units: Vec<String>,
    /// Who may log in.
    pub accounts: Vec<Account>,
    /// Client certificates the console presents to the gateway, one per identity its accounts
    /// act as. Without one, the development credentials in the data directory are used.
    pub clients: Vec<ClientCert>,
    /// CA that issued the gateway's certificate (default: the development CA, if any).
    pub gateway_ca: Option<PathBuf>,
    /// The console's own certificate: served over HTTPS, with a `Secure` session cookie and
    /// HSTS. Without it the console serves plain HTTP (behind a TLS-terminating proxy, or on
    /// the loopback address in development).
    pub tls: Option<crate::tls::TlsConfig>,
}

/// A client certificate for one gateway identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCert {
    pub identity: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            idle_minutes: 30,
            max_hours: 12,
            units: Vec::new(),
            accounts: Vec::new(),
            clients: Vec::new(),
            gateway_ca: None,
            tls: None,
        }
    }
}

fn invalid(what: String) -> Result<(), Error> {
    Err(Error::Config(what))
}

impl Config {
    /// Refuse a configuration the console cannot serve: no accounts, an account twice, a
    /// password hash that is not an argon2 PHC string, an identity that is not `agency/unit`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.accounts.is_empty() {
            return invalid(
                "no console accounts configured: add [[console.accounts]] (see `timpora console \
                 hash-password`) or run `timpora dev init` for development accounts"
                    .into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.accounts {
            if !seen.insert(a.username.as_str()) {
                return invalid(format!(
                    "console account {} is configured twice",
                    a.username
                ));
            }
            if argon2::password_hash::PasswordHash::new(&a.password_hash).is_err() {
                return invalid(format!(
                    "console account {}: password_hash is not an argon2 PHC string",
                    a.username
                ));
            }
            let agency_unit = a
                .identity
                .split_once('/')
                .is_some_and(|(g, u)| !g.is_empty() && !u.is_empty());
            if !agency_unit {
                return invalid(format!(
                    "console account {}: identity must be agency/unit, e.g. ops/timpora-kendari",
                    a.username
                ));
            }
            // A village account reports as its village, and only a village account does.
            let village = a.identity.starts_with("desa/");
            if (a.role == crate::auth::Role::Village) != village {
                return invalid(format!(
                    "console account {}: the village role goes with a village identity \
                     (desa/<village code>, e.g. desa/74.02.05.2001), and only with one",
                    a.username
                ));
            }
        }
        Ok(())
    }

    /// The gateway identities the console acts as, with the client certificates configured
    /// for them added to `keyring`.
    pub fn keyring(&self, keyring: Keyring) -> Keyring {
        self.clients.iter().fold(keyring, |k, c| {
            k.certificate(&c.identity, c.cert.clone(), c.key.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn with(role: Role, identity: &str) -> Config {
        Config {
            accounts: vec![Account {
                username: "u".into(),
                display_name: "U".into(),
                role,
                identity: identity.into(),
                password_hash: crate::auth::hash_password("pw").unwrap(),
            }],
            ..Config::default()
        }
    }

    #[test]
    fn the_village_role_goes_with_a_village_identity_and_only_with_one() {
        with(Role::Village, "desa/74.02.05.2001")
            .validate()
            .unwrap();
        with(Role::Operator, "ops/timpora-kendari")
            .validate()
            .unwrap();
        for (role, identity) in [
            (Role::Village, "ops/timpora-kendari"),
            (Role::Operator, "desa/74.02.05.2001"),
            (Role::Auditor, "desa/74.02.05.2001"),
        ] {
            let e = with(role, identity).validate().unwrap_err().to_string();
            assert!(e.contains("village role"), "{e}");
        }
    }
}
