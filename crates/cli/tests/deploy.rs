//! Every file in `deploy/` checked: each NATS configuration is one the real `nats-server`
//! accepts (`nats-server -t`, with TLS files and nkeys generated here in place of the ones a
//! deployment supplies), the authorization block is exactly the one the code generates, the
//! example configuration loads, and every systemd unit runs a command the binary has.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use timpora_bus::{Identity, Topology, auth};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `nats-server -t` on `conf` with `env`: `Ok` or the server's complaint.
fn nats_check(conf: &Path, env: &[(String, String)]) -> Result<(), String> {
    let out = Command::new(timpora_natsd::find_binary().unwrap())
        .args(["-t", "-c"])
        .arg(conf)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

#[test]
fn every_nats_config_in_deploy_is_valid_for_nats_server() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = tmp.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = timpora_testkit::pki::DevCa::generate("deploy test CA").unwrap();
    std::fs::write(tls.join("ca.pem"), ca.cert_pem()).unwrap();
    for (name, issued) in [
        ("server", ca.server(&["nats-1.timpora.internal"]).unwrap()),
        ("route", ca.server(&["nats-1.timpora.internal"]).unwrap()),
        ("leaf", ca.client("leaf-sultra").unwrap()),
    ] {
        std::fs::write(tls.join(format!("{name}.pem")), &issued.cert_pem).unwrap();
        std::fs::write(tls.join(format!("{name}.key")), &issued.key_pem).unwrap();
    }
    // The deployment's public keys, as its environment would give them.
    let keys = auth::generate(&tmp.path().join("creds")).unwrap();
    let env: Vec<(String, String)> = auth::variables()
        .into_iter()
        .zip(&keys)
        .map(|((_, var), (_, key))| (var.trim_start_matches('$').to_owned(), key.clone()))
        .collect();

    let mut checked = Vec::new();
    for entry in std::fs::read_dir(deploy().join("nats")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let local = text
            .replace("/etc/nats/tls/", &format!("{}/", tls.display()))
            .replace(
                "/var/lib/nats",
                &tmp.path().join("store").display().to_string(),
            );
        let copy = tmp.path().join(path.file_name().unwrap());
        std::fs::write(&copy, local).unwrap();
        checked.push(copy);
    }
    checked.sort();
    let names: Vec<_> = checked
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "authorization.conf",
            "cluster-node.conf",
            "dev-node.conf",
            "leaf-province.conf"
        ]
    );
    for conf in &checked {
        if let Err(e) = nats_check(conf, &env) {
            panic!("{}: {e}", conf.display());
        }
    }
    // The check can fail: without the keys in the environment the users are not valid.
    assert!(nats_check(&tmp.path().join("dev-node.conf"), &[]).is_err());
}

#[test]
fn the_deployed_authorization_is_the_one_the_code_generates() {
    let text = std::fs::read_to_string(deploy().join("nats/authorization.conf")).unwrap();
    let expected = auth::authorization(&Topology::default(), &auth::variables());
    assert!(
        text == expected,
        "deploy/nats/authorization.conf is out of date: regenerate it with \
         `timpora bus authorization --variables > deploy/nats/authorization.conf`"
    );
    // Each identity is a user; nobody else is.
    for id in Identity::ALL {
        let var = format!("$TIMPORA_NKEY_{}", id.name().to_uppercase());
        assert_eq!(text.matches(&var).count(), 1, "{var}");
    }
    assert_eq!(text.matches("nkey:").count(), Identity::ALL.len());
}

#[test]
fn the_example_config_loads_and_systemd_units_run_real_commands() {
    let example = deploy().join("timpora.example.toml");
    let cfg = timpora_hub::Config::load(Some(&example)).unwrap();
    assert_eq!(cfg.bus.replicas, 3);
    let mut units = 0;
    for entry in std::fs::read_dir(deploy().join("systemd")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{}: no ExecStart", path.display()));
        let mut args = exec.split_whitespace();
        assert!(args.next().unwrap().ends_with("/timpora"), "{exec}");
        // Global options with their values, then the command and its own arguments.
        let mut rest: Vec<&str> = Vec::new();
        while let Some(a) = args.next() {
            match a {
                "--config" | "--log-format" | "--data-dir" => {
                    args.next();
                }
                _ => rest.push(a),
            }
        }
        let out = Command::new(env!("CARGO_BIN_EXE_timpora"))
            .args(&rest)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: `timpora {}` is not a command: {}",
            path.display(),
            rest.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        units += 1;
    }
    assert!(units >= 4, "{units} units");
}
