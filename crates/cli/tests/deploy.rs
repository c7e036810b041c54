//! Every file in `deploy/` checked: each NATS configuration is one the real `nats-server`
//! accepts (`nats-server -t`, with TLS files and nkeys generated here in place of the ones a
//! deployment supplies), the authorization block is exactly the one the code generates, the
//! example configuration loads, and every systemd unit runs a command the binary has.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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
        ("leaf", ca.client(&auth::leaf_user("sultra")).unwrap()),
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
            "leaf-province.conf",
            "office-authorization.conf"
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

/// `timpora --config <config> bus authorization --variables`, as the deployed files say they
/// were made.
fn generated_authorization(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_timpora"))
        .arg("--config")
        .arg(config)
        .args(["bus", "authorization", "--variables"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_deployed_authorization_is_the_one_the_code_generates() {
    let example = deploy().join("timpora.example.toml");
    let cfg = timpora_hub::Config::load(Some(&example)).unwrap();
    assert_eq!(cfg.bus.offices, ["sultra"]);
    let text = std::fs::read_to_string(deploy().join("nats/authorization.conf")).unwrap();
    let expected = auth::authorization(&cfg.bus, &auth::variables());
    assert!(
        text == expected,
        "deploy/nats/authorization.conf is out of date: regenerate it with \
         `timpora --config deploy/timpora.example.toml bus authorization --variables > deploy/nats/authorization.conf`"
    );
    // Each identity is a user, and each office's leaf node (by its certificate); nobody else.
    for id in Identity::ALL {
        let var = format!("$TIMPORA_NKEY_{}", id.name().to_uppercase());
        assert_eq!(text.matches(&var).count(), 1, "{var}");
    }
    assert_eq!(text.matches("nkey:").count(), Identity::ALL.len());
    assert_eq!(text.matches("user: \"CN=office-sultra\"").count(), 1);
    assert_eq!(text.matches("user:").count(), 1);
    assert!(!text.contains("password"));
    // The command that regenerates it prints exactly this.
    assert_eq!(generated_authorization(&example), text);
    assert_eq!(
        generated_authorization(&example),
        auth::authorization(
            &Topology {
                offices: vec!["sultra".into()],
                ..Topology::default()
            },
            &auth::variables()
        )
    );

    // The office's own users, with its stream names.
    let office = deploy().join("timpora.office.example.toml");
    let office_cfg = timpora_hub::Config::load(Some(&office)).unwrap();
    assert_eq!(office_cfg.bus.events_stream, "TIMPORA_EVENTS_SULTRA");
    let text = std::fs::read_to_string(deploy().join("nats/office-authorization.conf")).unwrap();
    assert!(
        text == generated_authorization(&office),
        "deploy/nats/office-authorization.conf is out of date: regenerate it with \
         `timpora --config deploy/timpora.office.example.toml bus authorization --variables > deploy/nats/office-authorization.conf`"
    );
    assert!(text.contains("TIMPORA_EVENTS_SULTRA") && !text.contains("TIMPORA_EVENTS."));
    // The leaf node refuses to carry any record subject over its link, whatever the centre
    // allows, and links with the certificate the centre knows it by.
    let leaf = std::fs::read_to_string(deploy().join("nats/leaf-province.conf")).unwrap();
    let denies = cfg.bus.leaf_remote_denies();
    let list = denies
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        leaf.contains(&format!("deny_imports: [{list}]")),
        "deny_imports: [{list}]"
    );
    assert!(
        leaf.contains(&format!("deny_exports: [{list}]")),
        "deny_exports: [{list}]"
    );
    assert!(
        leaf.contains("domain: sultra") && leaf.contains("include ./office-authorization.conf")
    );
    let cluster = std::fs::read_to_string(deploy().join("nats/cluster-node.conf")).unwrap();
    assert!(cluster.contains("verify_and_map: true"));
}

#[test]
fn the_example_config_loads_and_systemd_units_run_real_commands() {
    let example = deploy().join("timpora.example.toml");
    let cfg = timpora_hub::Config::load(Some(&example)).unwrap();
    assert_eq!(cfg.bus.replicas, 3);
    let mut units = 0;
    let mut telemetry_ports: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(deploy().join("systemd")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{}: no ExecStart", path.display()));
        let mut args = exec.split_whitespace();
        assert!(args.next().unwrap().ends_with("/timpora"), "{exec}");
        let args: Vec<String> = args.map(str::to_owned).collect();
        if let Err(e) = timpora_command(&args) {
            panic!("{}: {e}", path.display());
        }
        // Units on one host share timpora.toml: each serves telemetry on a port of its own.
        let port = text
            .lines()
            .find_map(|l| l.strip_prefix("Environment=TIMPORA_TELEMETRY__LISTEN="))
            .unwrap_or_else(|| panic!("{}: no telemetry address", path.display()));
        assert!(port.parse::<std::net::SocketAddr>().is_ok(), "{port}");
        assert!(!telemetry_ports.contains(&port.to_owned()), "{port} twice");
        telemetry_ports.push(port.to_owned());
        units += 1;
    }
    assert!(units >= 4, "{units} units");
}

/// Whether `args` (as a unit, a compose file or a manifest gives them, global options included)
/// run a command the binary has: `timpora <command> --help` succeeds.
fn timpora_command(args: &[String]) -> Result<(), String> {
    let mut rest: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "--log-format" | "--data-dir" => {
                it.next();
            }
            other => rest.push(other),
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_timpora"))
        .args(&rest)
        .arg("--help")
        .output()
        .unwrap();
    match out.status.success() && !rest.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "`timpora {}` is not a command: {}",
            rest.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// The YAML documents in `path`, as JSON (parsed by PyYAML, a YAML 1.1 parser as Docker Compose
/// and Kubernetes tooling use).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The nats-server release the suite also runs against (scripts/ensure-nats-current.sh).
fn current_nats() -> String {
    let script =
        std::fs::read_to_string(deploy().join("../scripts/ensure-nats-current.sh")).unwrap();
    script
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .unwrap()
        .to_owned()
}

/// The port of an `ip:port` listen address in the example config.
fn port_of(addr: std::net::SocketAddr) -> u64 {
    u64::from(addr.port())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_file_names_only_real_images_ports_files_and_commands() {
    let cfg = timpora_hub::Config::load(Some(&deploy().join("timpora.example.toml"))).unwrap();
    let listening = [port_of(cfg.gateway.listen), port_of(cfg.console.listen)];
    let compose_dir = deploy().join("compose");
    let doc = &yaml_docs(&compose_dir.join("compose.yaml"))[0];
    let timpora_image = format!("timpora:{}", env!("CARGO_PKG_VERSION"));
    let nats_image = format!("nats:{}-alpine", current_nats());
    let cluster_conf = std::fs::read_to_string(deploy().join("nats/cluster-node.conf")).unwrap();
    let services = doc["services"].as_object().unwrap();
    for (name, s) in services {
        let image = s["image"].as_str().unwrap_or_default();
        let command = strings(&s["command"]);
        if image == timpora_image {
            if let Err(e) = timpora_command(&command) {
                panic!("service {name}: {e}");
            }
            for p in strings(&s["ports"]) {
                let inside: u64 = p.rsplit(':').next().unwrap().parse().unwrap();
                assert!(listening.contains(&inside), "service {name}: port {p}");
            }
        } else {
            assert_eq!(image, nats_image, "service {name}: unknown image");
            // The config it starts with is one of deploy/nats, mounted from there; its name
            // is one the routes reach.
            assert!(
                command.contains(&"/etc/nats/cluster-node.conf".to_owned()),
                "{name}"
            );
            for v in strings(&s["volumes"]) {
                let host = v.split(':').next().unwrap();
                if host.starts_with("../") {
                    assert!(compose_dir.join(host).exists(), "service {name}: {host}");
                }
            }
            for alias in strings(&s["networks"]["bus"]["aliases"]) {
                assert!(cluster_conf.contains(&alias), "{alias} is not a route");
            }
        }
    }
    assert!(services.len() >= 7, "{}", services.len());
}

#[test]
fn the_kubernetes_manifests_name_only_real_images_ports_and_commands() {
    let cfg = timpora_hub::Config::load(Some(&deploy().join("timpora.example.toml"))).unwrap();
    let telemetry = cfg.telemetry.listen.expect("the example serves telemetry");
    let listening = [
        port_of(cfg.gateway.listen),
        port_of(cfg.console.listen),
        port_of(telemetry),
    ];
    let timpora_image = format!("timpora:{}", env!("CARGO_PKG_VERSION"));
    let docs = yaml_docs(&deploy().join("k8s/timpora.yaml"));
    let mut container_ports = Vec::new();
    let mut kinds = Vec::new();
    for d in &docs {
        kinds.push(d["kind"].as_str().unwrap().to_owned());
        let containers = &d["spec"]["template"]["spec"]["containers"];
        for c in containers.as_array().into_iter().flatten() {
            assert_eq!(c["image"], timpora_image, "{}", c["name"]);
            if let Err(e) = timpora_command(&strings(&c["args"])) {
                panic!("{}: {e}", c["name"]);
            }
            for p in c["ports"].as_array().into_iter().flatten() {
                let port = p["containerPort"].as_u64().unwrap();
                assert!(listening.contains(&port), "{}: port {port}", c["name"]);
                container_ports.push(port);
            }
            // Probes ask the telemetry endpoint's real paths on its port.
            for probe in ["readinessProbe", "livenessProbe"] {
                let get = &c[probe]["httpGet"];
                if get.is_null() {
                    continue;
                }
                assert_eq!(
                    get["port"].as_u64(),
                    Some(port_of(telemetry)),
                    "{}",
                    c["name"]
                );
                let path = get["path"].as_str().unwrap();
                assert!(["/readyz", "/healthz"].contains(&path), "{path}");
            }
        }
    }
    for d in docs.iter().filter(|d| d["kind"] == "Service") {
        for p in d["spec"]["ports"].as_array().unwrap() {
            let target = p["targetPort"].as_u64().unwrap();
            assert!(container_ports.contains(&target), "service port {target}");
        }
    }
    for kind in ["Namespace", "Job", "Deployment", "Service"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind}");
    }
    // The NATS chart's values: the tested server, and every identity's public key.
    let values = &yaml_docs(&deploy().join("k8s/nats-values.yaml"))[0];
    assert_eq!(
        values["container"]["image"]["tag"],
        format!("{}-alpine", current_nats())
    );
    let mut env: Vec<&String> = values["container"]["env"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    env.sort();
    let mut expected: Vec<String> = auth::variables()
        .into_iter()
        .map(|(_, v)| v.trim_start_matches('$').to_owned())
        .collect();
    expected.sort();
    assert_eq!(env, expected.iter().collect::<Vec<_>>());
}

#[test]
fn the_container_image_builds_the_binary_the_manifests_run() {
    let text = std::fs::read_to_string(deploy().join("container/Containerfile")).unwrap();
    let manifest = std::fs::read_to_string(deploy().join("../Cargo.toml")).unwrap();
    // The build image's Rust is the workspace's.
    let rust = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .unwrap()
        .trim_end_matches('"');
    assert!(text.contains(&format!("FROM rust:{rust}-")), "rust {rust}");
    assert!(text.contains("-p timpora-cli"));
    assert!(text.contains("COPY --from=build /src/target/release/timpora /usr/local/bin/timpora"));
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/timpora\"]"));
    assert!(text.contains("USER timpora"), "not as root");
}
