//! How to reach NATS: the servers, who connects (an identity's credentials) and TLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::identity::Identity;

/// TLS to NATS: the CA that signed the servers' certificates, and a client certificate when
/// the servers ask for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTls {
    /// CA certificate (PEM) the servers' certificates are checked against.
    pub ca: PathBuf,
    /// Client certificate (PEM), for servers that verify clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// One connection's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsOptions {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Who connects: its replies come to an inbox of its own.
    pub identity: Option<Identity>,
    /// Its credentials: an nkey seed file, or a JWT credentials file (`.creds`). Anonymous when
    /// absent.
    pub credentials: Option<PathBuf>,
    /// TLS, required when set.
    pub tls: Option<NatsTls>,
}

impl From<&str> for NatsOptions {
    fn from(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::default()
        }
    }
}

impl From<&String> for NatsOptions {
    fn from(url: &String) -> Self {
        url.as_str().into()
    }
}

impl From<String> for NatsOptions {
    fn from(url: String) -> Self {
        Self {
            url,
            ..Self::default()
        }
    }
}

impl From<&NatsOptions> for NatsOptions {
    fn from(o: &NatsOptions) -> Self {
        o.clone()
    }
}

impl NatsOptions {
    /// The URL list without any user or password in it, for logs and messages.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }

    /// The servers to try.
    pub(crate) fn servers(&self) -> Result<Vec<async_nats::ServerAddr>> {
        self.url
            .split(',')
            .map(|u| {
                u.trim().parse::<async_nats::ServerAddr>().map_err(|_| {
                    Error::msg(
                        ErrorKind::Refused,
                        "parse the NATS URL list",
                        format!("not a NATS URL: {}", redact(u.trim())),
                    )
                })
            })
            .collect()
    }

    /// async-nats' options for a connection named `name`.
    pub(crate) fn connect_options(&self, name: &str) -> Result<async_nats::ConnectOptions> {
        let mut o = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(3))
            .max_reconnects(None);
        if let Some(id) = self.identity {
            o = o.custom_inbox_prefix(id.inbox_prefix());
        }
        if let Some(path) = &self.credentials {
            o = with_credentials(o, path)?;
        }
        if let Some(tls) = &self.tls {
            o = o.require_tls(true).add_root_certificates(tls.ca.clone());
            match (&tls.cert, &tls.key) {
                (Some(cert), Some(key)) => {
                    o = o.add_client_certificate(cert.clone(), key.clone());
                }
                (None, None) => {}
                _ => {
                    return Err(Error::msg(
                        ErrorKind::Refused,
                        "nats tls",
                        "a client certificate needs both cert and key",
                    ));
                }
            }
        }
        Ok(o)
    }
}

/// Sign in with the credentials in `path`: a JWT credentials file, or an nkey seed. Errors name
/// the file, never its content.
fn with_credentials(
    o: async_nats::ConnectOptions,
    path: &Path,
) -> Result<async_nats::ConnectOptions> {
    let text = read_secret(path)?;
    let bad = || {
        Error::msg(
            ErrorKind::Refused,
            "read credentials",
            format!(
                "{} is neither an nkey seed nor a credentials file",
                path.display()
            ),
        )
    };
    if text.contains("BEGIN NATS USER JWT") {
        return o.credentials(&text).map_err(|_| bad());
    }
    match text.trim() {
        seed if seed.starts_with("SU") && nkeys::KeyPair::from_seed(seed).is_ok() => {
            Ok(o.nkey(seed.to_owned()))
        }
        _ => Err(bad()),
    }
}

/// Read a secret file; the error names the file, never its content.
pub(crate) fn read_secret(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::msg(
            ErrorKind::Refused,
            "read credentials",
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

/// `url` without a user or password (`nats://user:secret@host` → `nats://host`).
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}{}", &u[..scheme + 3], &u[at + 1..])
            }
            (None, Some(at)) => u[at + 1..].to_owned(),
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_leave_the_url() {
        assert_eq!(
            redact("nats://gw:s3cret@10.0.0.1:4222, tls://a@h:1,nats://h:2"),
            "nats://10.0.0.1:4222, tls://h:1,nats://h:2"
        );
        let o = NatsOptions::from("nats://u:s3cret@");
        let e = o.servers().map(|_| ()).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn a_bad_credentials_file_is_named_but_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gw.nk");
        std::fs::write(&p, "not-a-seed-but-secret\n").unwrap();
        let o = NatsOptions {
            credentials: Some(p.clone()),
            ..NatsOptions::from("nats://127.0.0.1:4222")
        };
        let e = o.connect_options("t").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("gw.nk"), "{e}");
        assert!(!e.contains("not-a-seed"), "{e}");
    }
}
