//! Where a development data directory (`timpora dev init`, `timpora up`) keeps its credentials.

use std::path::{Path, PathBuf};

/// Certificate and key of a development identity (`agency/unit`).
pub fn client_paths(data_dir: &Path, identity: &str) -> (PathBuf, PathBuf) {
    let base = data_dir
        .join("pki/clients")
        .join(identity.replace('/', "__"));
    (base.with_extension("pem"), base.with_extension("key"))
}

/// The development CA certificate.
pub fn ca_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pki/ca.pem")
}

/// The gateway's development server certificate and key.
pub fn server_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (
        data_dir.join("pki/server.pem"),
        data_dir.join("pki/server.key"),
    )
}

/// The development console accounts and their passwords.
pub fn console_accounts_path(data_dir: &Path) -> PathBuf {
    data_dir.join("console-accounts.txt")
}

/// The configuration file of a data directory.
pub fn config_path(data_dir: &Path) -> PathBuf {
    data_dir.join("timpora.toml")
}

/// (username, password) of the development console accounts, if the data directory has them.
pub fn console_passwords(data_dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(console_accounts_path(data_dir))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .collect()
}
