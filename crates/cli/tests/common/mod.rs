//! Helpers the binary tests share: child processes that do not outlive a test, ports, a
//! graceful stop, and which rules the hub has raised alerts for.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // not every test uses every helper

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child process killed when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until something listens on `port` of 127.0.0.1.
pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Send SIGINT (Ctrl-C) and wait for a clean exit.
pub fn interrupt(child: &mut Killed, what: &str) {
    let ok = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            return;
        }
        assert!(Instant::now() < deadline, "Ctrl-C did not stop {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The rules (sorted, once each) of the alerts `timpora alerts list` shows with nothing but the
/// data directory.
pub fn fired_rules(dir: &Path) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_timpora"))
        .arg("--data-dir")
        .arg(dir)
        .args(["alerts", "list", "--json", "--limit", "1000"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let mut rules: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["alert"]["ruleId"].as_str().map(str::to_owned))
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

/// Wait until alerts of every rule R1-R6 are listed.
pub fn wait_every_rule(dir: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let rules = fired_rules(dir);
        if rules == ["R1", "R2", "R3", "R4", "R5", "R6"] {
            return;
        }
        assert!(Instant::now() < deadline, "rules fired: {rules:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
