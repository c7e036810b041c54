//! The Python client in `examples/python`, from the .proto files alone, against a real hub
//! (`timpora up`, real nats-server, mutual TLS with the development certificates): it publishes
//! an immigration office's interviews, reads a refusal's field details, subscribes as the police
//! and lists the alert the two interviews raise.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{hub_ports, interrupt, up_quiet};
use serde_json::Value;
use timpora_client::dev::{ca_path, client_paths};

/// Run the example as `identity`; its exit status and JSON lines.
fn example(dir: &Path, port: u16, identity: &str, args: &[&str]) -> (bool, Vec<Value>) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python/timpora_example.py");
    let (cert, key) = client_paths(dir, identity);
    let out = Command::new("python3")
        .arg(script)
        .args(["--target", &format!("localhost:{port}")])
        .arg("--ca")
        .arg(ca_path(dir))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args(args)
        .output()
        .expect("python3");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "the example failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), lines)
}

#[test]
fn the_python_example_publishes_reads_refusals_subscribes_and_lists_alerts() {
    let ready = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, grpc_status"])
        .status()
        .unwrap();
    assert!(
        ready.success(),
        "the Python example needs its packages: pip install -r examples/python/requirements.txt \
         (scripts/test.sh installs them)"
    );
    let dir = tempfile::tempdir().unwrap();
    let ports = hub_ports();
    let gw = ports.0;
    let mut hub = up_quiet(dir.path(), ports);
    let d = dir.path();

    // Deferred at Kendari, then tried at Palu: two offices, each with its own certificate.
    let nik = "7402054107900001";
    let (ok, acks) = example(
        d,
        gw,
        "imigrasi/kanim-kendari",
        &["interview", "--id", "py-kdi-1", "--nik", nik],
    );
    assert!(ok, "{acks:?}");
    assert_eq!(acks[0]["source"], "imigrasi/kanim-kendari");
    assert_eq!(acks[0]["type"], "timpora.imigrasi.passport_interview.v1");
    let (ok, acks) = example(
        d,
        gw,
        "imigrasi/kanim-palu",
        &["interview", "--id", "py-plw-1", "--nik", nik],
    );
    assert!(ok, "{acks:?}");

    // A refusal names its field, read from google.rpc.BadRequest.
    let (ok, refused) = example(
        d,
        gw,
        "imigrasi/kanim-kendari",
        &["interview", "--id", "py-bad", "--nik", "12345"],
    );
    assert!(!ok);
    assert_eq!(refused[0]["code"], "INVALID_ARGUMENT");
    assert_eq!(refused[0]["fields"][0]["field"], "interview.applicant.nik");

    // The police read the interview: a token, never the NIK.
    let (ok, events) = example(d, gw, "polri/polda-sultra", &["subscribe", "--count", "2"]);
    assert!(ok, "{events:?}");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"]["id"], "py-kdi-1");
    let text = serde_json::to_string(&events).unwrap();
    assert!(text.contains("psn_") && !text.contains(nik), "{text}");

    // The two interviews raise R3, which the example lists.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, listed) = example(d, gw, "imigrasi/kanim-kendari", &["alerts"]);
        assert!(ok, "{listed:?}");
        if listed.iter().any(|r| r["alert"]["ruleId"] == "R3") {
            break;
        }
        assert!(Instant::now() < deadline, "no R3 alert listed: {listed:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    interrupt(&mut hub, "the hub");
}
