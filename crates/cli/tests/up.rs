//! `timpora up` as a hub that looks after itself: the correlator's metrics and SIGHUP reload are
//! wired as in `timpora correlator`; a `nats-server` child that dies is started again on the same
//! store, or, if it cannot come back, the hub stops with a message naming it; and no
//! `nats-server` outlives a `timpora up` that was killed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use timpora_natsd::free_port;

mod common;
use common::*;

/// `timpora up` on free ports in `dir`, with extra arguments and environment.
struct Up {
    hub: Killed,
    gateway: u16,
    nats: u16,
    console: u16,
}

fn nats_url(port: u16) -> String {
    format!("nats://127.0.0.1:{port}")
}

fn up(dir: &Path, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Up {
    let (gateway, nats, console) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let mut cmd = timpora(dir);
    cmd.args(["up", "--listen", &format!("127.0.0.1:{gateway}")])
        .args(["--nats-port", &nats.to_string()])
        .args(["--console-listen", &format!("127.0.0.1:{console}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let hub = Killed(cmd.spawn().unwrap());
    wait_port(gateway, "the hub");
    Up {
        hub,
        gateway,
        nats,
        console,
    }
}

#[test]
fn up_serves_the_correlators_metrics_and_applies_its_rule_file_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let default = include_str!("../../../rules/default.toml");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, default).unwrap();
    let metrics = free_port().unwrap();
    let metrics_addr = format!("127.0.0.1:{metrics}");
    let mut hub = up(
        dir.path(),
        &[
            "--metrics",
            &metrics_addr,
            "--rules",
            rules.to_str().unwrap(),
        ],
        &[],
        Stdio::null(),
    );
    wait_status(dir.path(), &nats_url(hub.nats), |v| {
        v["correlator"]["version"] == "2026.12-1"
    });
    wait_port(metrics, "the correlator's metrics");
    let text = scrape(metrics);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(
        text.contains("timpora_correlator_state_cap 5000000"),
        "{text}"
    );
    assert!(text.contains("version=\"2026.12-1\""), "{text}");
    // One endpoint for the process: the gateway's metrics too, and every component ready.
    assert!(
        text.contains("# TYPE timpora_gateway_jetstream_ack_seconds histogram"),
        "{text}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let r = get(metrics, "/readyz");
        if r.starts_with("HTTP/1.0 200") || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    assert!(
        ready.contains("correlator: ready")
            && ready.contains("gateway: ready")
            && ready.contains("sealer: ready"),
        "{ready}"
    );
    // Every metric the deployed dashboard queries is one the hub exports (with an office's
    // events in, so that the gateway's families have samples, and an alert raised).
    publish_deferred_at(dir.path(), "imigrasi/kanim-kendari", "dash-1");
    publish_deferred_at(dir.path(), "imigrasi/kanim-palu", "dash-2");
    let alerts = wait_alerts(dir.path(), 1);
    let rule = alerts[0]["alert"]["ruleId"].as_str().unwrap().to_owned();
    // The console's logins, by outcome, and its open sessions; no username in the text.
    let pw: std::collections::HashMap<String, String> =
        timpora_client::dev::console_passwords(dir.path())
            .into_iter()
            .collect();
    let wrong = console_post(
        dir.path(),
        hub.console,
        "/api/login",
        r#"{"username":"operator","password":"not-the-password"}"#,
    );
    assert!(wrong.starts_with("HTTP/1.0 401"), "{wrong}");
    let right = console_post(
        dir.path(),
        hub.console,
        "/api/login",
        &serde_json::json!({"username": "operator", "password": pw["operator"]}).to_string(),
    );
    assert!(right.starts_with("HTTP/1.0 200"), "{right}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(metrics);
        if text.contains(&format!(
            "timpora_alerts{{rule=\"{rule}\",status=\"OPEN\"}} 1"
        )) && text.contains("timpora_correlator_checkpoint_age_seconds ")
        {
            break text;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        text.contains("timpora_console_logins_total{outcome=\"failed\"} 1")
            && text.contains("timpora_console_logins_total{outcome=\"ok\"} 1")
            && text.contains("timpora_console_sessions_open 1"),
        "{text}"
    );
    assert!(!text.contains("operator"), "{text}");
    let text = scrape(metrics);
    let dashboard = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/timpora.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("timpora_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                queried.push(name);
            }
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    assert!(
        text.contains("timpora_sealer_lag_messages{log=\"events\"}"),
        "{text}"
    );
    // An auditor's verification shows on the dashboard's host too.
    let out = run(timpora(dir.path()).args(["audit", "verify", "--log", "events"]));
    assert!(out.status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(metrics);
        if text.contains("timpora_audit_last_verification_intact{log=\"events\"} 1") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for name in &queried {
        // Exported at a centre with provincial offices only (checked in tests/e2e offices.rs).
        if name.starts_with("timpora_office_") {
            continue;
        }
        let exported = text.lines().any(|l| {
            l.strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        });
        assert!(
            exported,
            "the dashboard queries {name}, which is not exported:\n{text}"
        );
    }

    // SIGHUP: an invalid file changes nothing, a valid one becomes the running set.
    std::fs::write(&rules, "version = \"x\"\n[[rule]]\nid = 1\n").unwrap();
    signal(hub.hub.0.id(), "-HUP");
    std::thread::sleep(Duration::from_millis(500));
    let v = wait_status(dir.path(), &nats_url(hub.nats), |_| true);
    assert_eq!(v["correlator"]["version"], "2026.12-1", "{v}");
    std::fs::write(&rules, default.replacen("2026.12-1", "2026.11-7", 1)).unwrap();
    signal(hub.hub.0.id(), "-HUP");
    wait_status(dir.path(), &nats_url(hub.nats), |v| {
        v["correlator"]["version"] == "2026.11-7"
    });
    // The metrics follow the running set.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !scrape(metrics).contains("version=\"2026.11-7\"") {
        assert!(
            Instant::now() < deadline,
            "metrics never showed the new set"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    interrupt(&mut hub.hub, "the hub");
}

#[test]
fn a_nats_server_child_that_dies_is_started_again_on_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = up(dir.path(), &[], &[], Stdio::null());
    publish_deferred_then_another_office(dir.path());
    let before = wait_alerts(dir.path(), 1);
    let first = nats_child(hub.hub.0.id());
    signal(first, "-KILL");
    wait_gone(first, "the killed nats-server", 10);
    // A new server on the same port and store: the alert is still there, the hub still serves.
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        if let [pid] = nats_children(hub.hub.0.id())[..] {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "nats-server was not started again"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(first, second);
    wait_port(hub.nats, "the restarted nats-server");
    let after = wait_alerts(dir.path(), 1);
    assert_eq!(after[0]["alert"]["id"], before[0]["alert"]["id"]);
    assert!(hub.hub.0.try_wait().unwrap().is_none(), "the hub stopped");
    interrupt(&mut hub.hub, "the hub");
    assert!(!alive(second), "nats-server left running");
    let _ = hub.gateway;
}

#[test]
fn a_nats_server_that_cannot_come_back_stops_the_hub_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // The hub runs a copy of nats-server that is then removed: it cannot be started again.
    let bin = dir.path().join("nats-server");
    std::fs::copy(timpora_natsd::find_binary().unwrap(), &bin).unwrap();
    // To a file: a pipe nobody reads would fill and stall the hub's logging.
    let log = dir.path().join("stderr.txt");
    let mut hub = up(
        dir.path(),
        &[],
        &[
            ("TIMPORA_NATS__RESTART_WITHIN_SECS", "2"),
            ("TIMPORA_SHUTDOWN__DRAIN_SECS", "3"),
            ("NATS_SERVER_BIN", bin.to_str().unwrap()),
        ],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    // Up and running (not still starting): the correlator reports.
    wait_status(dir.path(), &nats_url(hub.nats), |v| {
        v["correlator"]["version"].is_string()
    });
    let child = nats_child(hub.hub.0.id());
    std::fs::remove_file(&bin).unwrap();
    signal(child, "-KILL");
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = hub.hub.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the hub went on without NATS");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "{status:?}");
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("error: nats-server stopped: nats-server exited")
            && stderr.contains("did not come back within 2s"),
        "{stderr}"
    );
    // What cannot drain without NATS is abandoned at the deadline, and said so.
    assert!(
        !stderr.contains("did not drain in time") || stderr.contains("correlator"),
        "{stderr}"
    );
    assert!(nats_children(hub.hub.0.id()).is_empty());
    assert!(!alive(child));
}

#[test]
fn a_killed_up_leaves_no_nats_server_running() {
    let dir = tempfile::tempdir().unwrap();
    let hub = up(dir.path(), &["--demo"], &[], Stdio::null());
    let child = nats_child(hub.hub.0.id());
    signal(hub.hub.0.id(), "-KILL");
    wait_gone(child, "nats-server after its parent was killed", 10);
    assert!(TcpStream::connect(("127.0.0.1", hub.nats)).is_err());
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_takes_the_nats_server_along() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = up(dir.path(), &["--demo"], &[], Stdio::null());
    wait_status(dir.path(), &nats_url(hub.nats), |v| {
        v["correlator"]["version"].is_string()
    });
    let child = nats_child(hub.hub.0.id());
    signal(hub.hub.0.id(), "-INT");
    signal(hub.hub.0.id(), "-INT");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = hub.hub.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the hub did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Either the drain finished first (0) or the second signal cut it short (130).
    assert!(matches!(status.code(), Some(0 | 130)), "{status:?}");
    wait_gone(child, "nats-server after a second Ctrl-C", 10);
    assert!(TcpStream::connect(("127.0.0.1", hub.nats)).is_err());
}
