//! Where a development data directory (`timpora dev init`, `timpora up`) keeps its credentials.

use std::path::{Path, PathBuf};

/// Certificate and key of a development identity (`agency/unit`), named after the whole
/// identity (`desa__74.02.05.2001.pem`: a unit's dots are not an extension).
pub fn client_paths(data_dir: &Path, identity: &str) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("pki/clients");
    let name = identity.replace('/', "__");
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_villages_of_one_district_have_files_of_their_own() {
        let dir = Path::new("/data");
        let (a, ak) = client_paths(dir, "desa/74.02.05.2001");
        let (b, _) = client_paths(dir, "desa/74.02.05.2002");
        assert_ne!(a, b);
        assert_eq!(a, Path::new("/data/pki/clients/desa__74.02.05.2001.pem"));
        assert_eq!(ak, Path::new("/data/pki/clients/desa__74.02.05.2001.key"));
        let (o, _) = client_paths(dir, "imigrasi/kanim-kendari");
        assert_eq!(
            o,
            Path::new("/data/pki/clients/imigrasi__kanim-kendari.pem")
        );
    }
}
