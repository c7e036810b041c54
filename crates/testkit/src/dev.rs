//! A complete local development set-up, generated at run time into a data directory: a CA, the
//! gateway's server certificate, a client certificate and a token for every pilot unit, a
//! pseudonymisation key, console accounts with fresh passwords, and the config that names them
//! (`timpora dev init`, and `timpora up` on first use).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use timpora_client::dev::{
    ca_path, client_paths, config_path, console_accounts_path, server_paths,
};
use timpora_client::random_hex;
use timpora_console::{Account, Role};
use timpora_gateway::{KeyConfig, PseudonymConfig, TlsConfig, TokenConfig};
use timpora_hub::Config;
use timpora_scenario::pilot;

use crate::pki::DevCa;

fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Write a new Ed25519 key named `name` to `path` (owner-only), or read the one already there:
/// a sealer's or a witness's key is never replaced, since every checkpoint it signed or cosigned
/// is checked with it.
pub fn signing_key(path: &Path, name: &str) -> anyhow::Result<timpora_tlog::Key> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return timpora_tlog::Key::from_secret(&text)
            .with_context(|| format!("{} holds no signing key", path.display()));
    }
    let key = timpora_tlog::Key::generate(name)?;
    write(path, &format!("{}\n", key.to_secret()), true)?;
    Ok(key)
}

/// Name of the development witness (standing for the prosecutors' service).
pub const DEV_WITNESS: &str = "kejaksaan.dev-witness";

/// The development transparency log in `dir`: the sealer's key, one witness with its own key
/// and state that witnesses the sealer's three logs, and the sealer asking it to cosign.
/// Settings already made are kept.
pub fn transparency(cfg: &mut Config, dir: &Path) -> anyhow::Result<()> {
    let sealer_file = cfg
        .sealer
        .key
        .clone()
        .unwrap_or_else(|| dir.join("sealer.key"));
    let sealer = signing_key(&sealer_file, "timpora-sealer")?;
    cfg.sealer.key = Some(sealer_file);
    let witness_file = cfg
        .witness
        .key
        .clone()
        .unwrap_or_else(|| dir.join("witness.key"));
    let witness = signing_key(&witness_file, DEV_WITNESS)?;
    cfg.witness.key = Some(witness_file);
    if cfg.witness.state_dir.is_none() {
        cfg.witness.state_dir = Some(dir.join("witness"));
    }
    if cfg.witness.logs.is_empty() {
        for (log, _) in cfg.bus.sealed_streams() {
            let origin = timpora_sealer::origin(&cfg.sealer.deployment, log);
            cfg.witness
                .logs
                .push(sealer.renamed(&origin)?.log_verifier());
        }
    }
    if cfg.sealer.witnesses.is_empty() {
        cfg.sealer.witnesses.push(witness.witness_verifier());
    }
    // What an auditor would be handed: each log's key, the witness, one cosignature needed.
    let policy_file = dir.join("audit-policy.toml");
    if !policy_file.exists() {
        let mut policy = timpora_audit::AuditPolicy {
            quorum: 1,
            witnesses: vec![witness.witness_verifier()],
            ..Default::default()
        };
        for (log, _) in cfg.bus.sealed_streams() {
            let origin = timpora_sealer::origin(&cfg.sealer.deployment, log);
            let key = sealer.renamed(&origin)?.log_verifier();
            policy.logs.insert(log.to_owned(), key);
        }
        let text = format!(
            "# What an auditor trusts: each log's key, the witnesses, how many must cosign.\n{}",
            policy.to_toml()?
        );
        write(&policy_file, &text, false)?;
    }
    Ok(())
}

/// The bus's development security in `dir`: an nkey for every component's NATS identity (in
/// `nats-credentials/`, owner-only) and TLS to NATS with the development CA. Settings already
/// made are kept; a data directory set up before the bus required credentials gets them now.
pub fn nats_security(cfg: &mut Config, dir: &Path) -> anyhow::Result<()> {
    let creds = cfg
        .nats
        .credentials_dir
        .clone()
        .unwrap_or_else(|| dir.join("nats-credentials"));
    timpora_bus::auth::generate(&creds)?;
    cfg.nats.credentials_dir = Some(creds);
    if cfg.nats.tls.is_none() && ca_path(dir).exists() {
        cfg.nats.tls = Some(timpora_bus::NatsTls {
            ca: ca_path(dir),
            cert: None,
            key: None,
        });
    }
    Ok(())
}

/// The `nats-server` configuration that serves `cfg`'s hub from development data directory
/// `dir`: every identity with credentials in `nats.credentials_dir` as a user with its
/// permissions, anonymous connections refused, and TLS with the development server
/// certificate when `nats.tls` is set.
pub fn nats_server_config(cfg: &Config, dir: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if let Some(creds) = &cfg.nats.credentials_dir {
        let users = timpora_bus::auth::public_keys(creds)?;
        anyhow::ensure!(
            !users.is_empty(),
            "no NATS credentials in {}",
            creds.display()
        );
        let users: Vec<_> = users
            .into_iter()
            .map(|(id, k)| (id, format!("\"{k}\"")))
            .collect();
        text.push_str(&timpora_bus::auth::authorization(&cfg.bus, &users));
    }
    if cfg.nats.tls.is_some() {
        let (cert, key) = server_paths(dir);
        text.push_str(&format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  timeout: 5\n}}\n",
            cert.display(),
            key.display()
        ));
    }
    Ok(text)
}

/// A `nats-server` (JetStream, random port unless `port`) that serves development data
/// directory `dir` as [`nats_server_config`] says: the server `timpora up` would start, for
/// tests of separate processes.
pub fn nats_server(dir: &Path, port: Option<u16>) -> anyhow::Result<timpora_natsd::NatsServer> {
    let cfg = Config::load(Some(&config_path(dir)))?;
    let mut b = timpora_natsd::NatsServer::builder().config(nats_server_config(&cfg, dir)?);
    if let Some(p) = port {
        b = b.port(p);
    }
    Ok(b.start()?)
}

/// A `nats-server` secured as `timpora up` secures its own — one user per identity, anonymous
/// connections refused, TLS with a CA made for it — with the credentials and certificates in
/// `dir`; and the NATS settings that reach it.
pub fn secured_nats(
    dir: &Path,
    topology: &timpora_bus::Topology,
) -> anyhow::Result<(timpora_natsd::NatsServer, timpora_hub::NatsConfig)> {
    let (mut nats, server_config, _) = secure(dir, topology)?;
    let server = timpora_natsd::NatsServer::builder()
        .config(server_config)
        .start()?;
    nats.url = server.url();
    Ok((server, nats))
}

/// [`secured_nats`] as a three-node JetStream cluster, every node secured alike.
pub fn secured_cluster(
    dir: &Path,
    topology: &timpora_bus::Topology,
) -> anyhow::Result<(timpora_natsd::Cluster, timpora_hub::NatsConfig)> {
    let (mut nats, server_config, _) = secure(dir, topology)?;
    let cluster = timpora_natsd::Cluster::start_with(&server_config)?;
    nats.url = cluster.urls();
    Ok((cluster, nats))
}

/// Credentials, a CA and a server certificate in `dir`: the client settings (without a URL),
/// the servers' configuration, and the CA (to issue more certificates).
pub(crate) fn secure(
    dir: &Path,
    topology: &timpora_bus::Topology,
) -> anyhow::Result<(timpora_hub::NatsConfig, String, DevCa)> {
    std::fs::create_dir_all(dir.join("pki"))?;
    let ca = DevCa::generate("TIMPORA test NATS CA")?;
    write(&ca_path(dir), ca.cert_pem(), false)?;
    let server = ca.server(&["localhost", "127.0.0.1"])?;
    let (cert, key) = server_paths(dir);
    write(&cert, &server.cert_pem, false)?;
    write(&key, &server.key_pem, true)?;
    let mut cfg = Config {
        bus: topology.clone(),
        ..Config::default()
    };
    nats_security(&mut cfg, dir)?;
    let text = nats_server_config(&cfg, dir)?;
    Ok((cfg.nats, text, ca))
}

/// A username and its password.
pub type Credential = (String, String);

/// Development console accounts, one per role, with fresh random passwords: the config entries
/// and the (username, password) pairs to hand out.
pub fn console_accounts() -> anyhow::Result<(Vec<Account>, Vec<Credential>)> {
    let mut accounts = Vec::new();
    let mut passwords = Vec::new();
    for (username, display, role, identity) in [
        (
            "operator",
            "Operator Piket (dev)",
            Role::Operator,
            pilot::SECRETARIAT,
        ),
        (
            "supervisor",
            "Supervisor (dev)",
            Role::Supervisor,
            pilot::SECRETARIAT,
        ),
        ("auditor", "Auditor (dev)", Role::Auditor, pilot::AUDITOR),
    ]
    .into_iter()
    .map(|(u, d, r, i)| (u.to_owned(), d.to_owned(), r, i))
    // One account per demo village, reporting as that village: `desa-74.02.05.2001`.
    .chain(pilot::IDENTITIES.iter().filter_map(|id| {
        let code = id.strip_prefix("desa/")?;
        Some((
            format!("desa-{code}"),
            format!("Desa {code} (dev)"),
            Role::Village,
            *id,
        ))
    })) {
        let password = random_hex(8)?;
        accounts.push(Account {
            username: username.clone(),
            display_name: display,
            role,
            identity: identity.into(),
            password_hash: timpora_console::auth::hash_password(&password)?,
        });
        passwords.push((username, password));
    }
    Ok((accounts, passwords))
}

/// Generate the set-up in `dir` (nothing is replaced without `force`); what was written, for
/// people.
pub fn init(dir: &Path, force: bool, listen: SocketAddr, nats_url: &str) -> anyhow::Result<String> {
    let config_file = config_path(dir);
    if config_file.exists() && !force {
        return Ok(format!(
            "{} is already set up (use --force to replace it)",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir.join("pki/clients"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let ca = DevCa::generate("TIMPORA development CA")?;
    write(&ca_path(&dir), ca.cert_pem(), false)?;
    write(&dir.join("pki/ca.key"), ca.key_pem(), true)?;
    let server = ca.server(&["localhost", "127.0.0.1", "::1"])?;
    let (server_cert, server_key) = server_paths(&dir);
    write(&server_cert, &server.cert_pem, false)?;
    write(&server_key, &server.key_pem, true)?;
    let mut tokens = Vec::new();
    for id in pilot::IDENTITIES {
        let issued = ca.client(id)?;
        let (cert, key) = client_paths(&dir, id);
        write(&cert, &issued.cert_pem, false)?;
        write(&key, &issued.key_pem, true)?;
        tokens.push(TokenConfig {
            token: format!("dev-{}", random_hex(24)?),
            identity: (*id).to_owned(),
        });
    }
    let key_file = dir.join("pseudonym-v1.key");
    write(
        &key_file,
        &timpora_gateway::pseudo::generate_hex_key()?,
        true,
    )?;

    let (accounts, passwords) = console_accounts()?;
    let mut listing = String::from(
        "# Development console accounts (username password), generated by `timpora dev init`.\n",
    );
    for (user, password) in &passwords {
        listing.push_str(&format!("{user} {password}\n"));
    }
    write(&console_accounts_path(&dir), &listing, true)?;

    let mut cfg = Config::default();
    cfg.console.accounts = accounts;
    cfg.gateway.alerts.units = pilot::ASSIGNABLE.iter().map(|u| (*u).to_owned()).collect();
    cfg.nats.url = nats_url.to_owned();
    cfg.gateway.listen = listen;
    cfg.gateway.tls = Some(TlsConfig {
        cert: server_cert.clone(),
        key: server_key.clone(),
        client_ca: ca_path(&dir),
    });
    cfg.gateway.tokens = tokens;
    // The console serves HTTPS with the same development certificate (localhost only).
    cfg.console.tls = Some(timpora_console::TlsConfig {
        cert: server_cert,
        key: server_key,
    });
    transparency(&mut cfg, &dir)?;
    nats_security(&mut cfg, &dir)?;
    cfg.gateway.pseudonym = PseudonymConfig {
        active_version: Some(1),
        keys: vec![KeyConfig {
            version: 1,
            key_file: Some(key_file),
            key_hex: None,
        }],
    };
    let text = format!(
        "# TIMPORA development configuration, generated by `timpora dev init`.\n\
         # Holds development tokens: keep it out of version control.\n{}",
        toml::to_string_pretty(&cfg)?
    );
    write(&config_file, &text, true)?;
    let users: Vec<&str> = passwords.iter().map(|(u, _)| u.as_str()).collect();
    Ok(format!(
        "development set-up written to {}\n  config:       {}\n  CA:           {}\n  nats:         one nkey user per component in {} (TLS with the CA)\n  console:      accounts {} (passwords in {})\n  identities:   {} (certificates in pki/clients, tokens in the config)",
        dir.display(),
        config_file.display(),
        ca_path(&dir).display(),
        cfg.nats
            .credentials_dir
            .as_deref()
            .unwrap_or(&dir)
            .display(),
        users.join(", "),
        console_accounts_path(&dir).display(),
        pilot::IDENTITIES.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_loadable_config_and_does_not_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        init(dir.path(), false, listen, "nats://127.0.0.1:4222").unwrap();
        let cfg = Config::load(Some(&config_path(dir.path()))).unwrap();
        assert_eq!(cfg.gateway.tokens.len(), pilot::IDENTITIES.len());
        let villages = pilot::IDENTITIES
            .iter()
            .filter(|i| i.starts_with("desa/"))
            .count();
        assert_eq!(cfg.console.accounts.len(), 3 + villages);
        assert!(
            cfg.console
                .accounts
                .iter()
                .any(|a| a.username == "desa-74.02.05.2001"
                    && a.role == Role::Village
                    && a.identity == "desa/74.02.05.2001")
        );
        assert_eq!(cfg.gateway.alerts.units.len(), pilot::ASSIGNABLE.len());
        cfg.console.validate().unwrap();
        let passwords = timpora_client::dev::console_passwords(dir.path());
        assert_eq!(passwords.len(), 3 + villages);
        for (account, (user, password)) in cfg.console.accounts.iter().zip(&passwords) {
            assert_eq!(&account.username, user);
            assert!(timpora_console::auth::verify_password(
                password,
                &account.password_hash
            ));
        }
        assert!(cfg.gateway.tls.as_ref().unwrap().cert.exists());
        timpora_gateway::Pseudonymiser::from_config(&cfg.gateway.pseudonym).unwrap();
        let sealer = cfg.sealer.options().unwrap();
        let key = signing_key(&dir.path().join("sealer.key"), "any").unwrap();
        assert_eq!(sealer.key.log_verifier(), key.log_verifier());
        assert_eq!(sealer.witnesses.len(), 1);
        assert_eq!(cfg.witness.logs.len(), 3);
        assert!(cfg.witness.logs[0].starts_with("timpora.dev/events+"));
        let policy =
            timpora_audit::AuditPolicy::load(&dir.path().join("audit-policy.toml")).unwrap();
        assert_eq!(policy.logs["events"], cfg.witness.logs[0]);
        assert_eq!(policy.witnesses, sealer.witnesses);
        let (cert, key) = client_paths(dir.path(), "imigrasi/tpi-cgk");
        assert!(cert.exists() && key.exists());
        let before = std::fs::read_to_string(config_path(dir.path())).unwrap();
        let said = init(dir.path(), false, listen, "nats://127.0.0.1:4222").unwrap();
        assert!(said.contains("already set up"));
        assert_eq!(
            before,
            std::fs::read_to_string(config_path(dir.path())).unwrap()
        );
    }
}
