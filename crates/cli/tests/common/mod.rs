//! Helpers the binary tests share: child processes that do not outlive a test, ports, a
//! graceful stop, and which rules the hub has raised alerts for.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // not every test uses every helper

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// A child process killed when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child killed when the test ends whose standard error goes to a file, printed if the test
/// fails: what a gateway or correlator said is there to read when CI fails.
pub struct Logged {
    child: Killed,
    log: std::path::PathBuf,
}

impl Logged {
    /// Spawn `cmd` with its standard error in `<dir>/<name>.log`.
    pub fn spawn(cmd: &mut Command, dir: &Path, name: &str) -> Logged {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Killed(cmd.stderr(file).spawn().unwrap());
        Logged { child, log }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // (The child is killed as `child` drops, after this.)
        if std::thread::panicking() {
            let said = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {} ---\n{said}", self.log.display());
        }
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
        // The auditor sees every alert; operations staff do not see those about victims.
        .args(["--identity", "audit/inspektorat"])
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

pub fn timpora(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_timpora"));
    c.arg("--data-dir").arg(dir).env_remove("RUST_LOG");
    c
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run timpora");
    eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
    .to_string()
}

pub fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Through the binary, with the data directory's credentials: the same person deferred at
/// Kendari, then interviewed at Palu (R3's input).
pub fn publish_deferred_then_another_office(dir: &Path) {
    publish_deferred_at(dir, "imigrasi/kanim-kendari", "kdi-1");
    publish_deferred_at(dir, "imigrasi/kanim-palu", "plw-1");
}

/// Publish, through the binary as `identity`, a deferred interview (`id`) of the same synthetic
/// person every time.
pub fn publish_deferred_at(dir: &Path, identity: &str, id: &str) {
    let now = rfc3339_now();
    let line = format!(
        r#"{{"event":{{"id":"{id}","time":"{now}","region":"74.02.05.2001","passport_interview":{{"applicant":{{"nik":"7402054107900001"}},"declared_purpose":"TRAVEL_PURPOSE_TOURISM","destination_country":"KH","outcome":"INTERVIEW_OUTCOME_DEFERRED"}}}}}}"#
    );
    let file = dir.join(format!("{id}.ndjson"));
    std::fs::write(&file, line).unwrap();
    let out = run(timpora(dir)
        .arg("publish")
        .arg(&file)
        .args(["--identity", identity]));
    assert!(out.status.success());
}

pub fn wait_alerts(dir: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run(timpora(dir).args([
            "alerts",
            "list",
            "--json",
            "--identity",
            "ops/timpora-kendari",
        ]));
        if out.status.success() {
            let listed = lines(&out);
            if listed.len() >= n {
                return listed;
            }
        }
        assert!(Instant::now() < deadline, "{n} alerts never listed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `nats-server` processes whose parent is `pid`.
pub fn nats_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid && head.ends_with("(nats-server") && state != "Z" {
            out.push(child);
        }
    }
    out
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Wait until `pid` is gone, or fail after `secs` seconds.
pub fn wait_gone(pid: u32, what: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while alive(pid) {
        assert!(Instant::now() < deadline, "{what} ({pid}) is still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one `nats-server` child of `pid`, waiting for it to appear.
pub fn nats_child(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let [one] = nats_children(pid)[..] {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "no single nats-server child of {pid}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Send `signal` (e.g. `-KILL`, `-HUP`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {signal} {pid}");
}

/// Poll `rules status --json` until `pred` holds (or fail after 30 s).
pub fn wait_status(dir: &Path, url: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run(timpora(dir).args(["rules", "status", "--json", "--nats-url", url]));
        let seen = if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            if pred(&v) {
                return v;
            }
            v.to_string()
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        assert!(Instant::now() < deadline, "status never matched: {seen}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `/metrics` on `port`: the whole HTTP response.
pub fn scrape(port: u16) -> String {
    get(port, "/metrics")
}

/// POST JSON `body` to the console's `path` on `port` over HTTPS, trusting the development CA
/// of `dir` (as its page does): the whole response.
pub fn console_post(dir: &Path, port: u16, path: &str, body: &str) -> String {
    timpora_testkit::https::request(
        dir,
        port,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: localhost\r\nx-timpora-console: 1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .unwrap()
}

/// GET `path` on `port`: the whole HTTP response.
pub fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text
}

/// Three free ports: gateway, NATS, console.
pub fn hub_ports() -> (u16, u16, u16) {
    (
        timpora_natsd::free_port().unwrap(),
        timpora_natsd::free_port().unwrap(),
        timpora_natsd::free_port().unwrap(),
    )
}

/// `timpora up` in `dir` on the given gateway, NATS and console ports, once its gateway
/// accepts connections.
pub fn up_quiet(dir: &Path, ports: (u16, u16, u16)) -> Killed {
    up_quiet_with(dir, ports, &[])
}

/// [`up_quiet`] with environment variables (`TIMPORA_<SECTION>__<KEY>` settings).
///
/// A port found free can be taken by another test's connection before `up` binds it: `up` then
/// exits at once, and is started again (three tries, a second apart). What it said is printed
/// when it does not come up.
pub fn up_quiet_with(dir: &Path, ports: (u16, u16, u16), env: &[(&str, &Path)]) -> Killed {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.to_str().unwrap())).collect();
    up_args(dir, ports, &[], &env)
}

/// `timpora up` in `dir` on the given gateway, NATS and console ports with `extra` arguments
/// and `env`, once its gateway accepts connections; see [`up_quiet_with`] for the retries.
pub fn up_args(
    dir: &Path,
    (gw, np, cp): (u16, u16, u16),
    extra: &[&str],
    env: &[(&str, &str)],
) -> Killed {
    let log = dir.join("up.log");
    for attempt in 1..=3 {
        let mut child = timpora(dir)
            .envs(env.iter().copied())
            .args(["up", "--listen", &format!("127.0.0.1:{gw}")])
            .args(["--nats-port", &np.to_string()])
            .args(["--console-listen", &format!("127.0.0.1:{cp}")])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", gw)).is_ok() {
                return Killed(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                eprintln!("timpora up exited ({status}) before listening, try {attempt}:\n{said}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("the hub did not come up in 60 s:\n{said}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("the hub did not come up in 3 tries");
}

/// The bus of the hub in data directory `dir`, as its auditor (reads every stream), and the
/// hub's configuration.
pub async fn auditor_bus(dir: &Path) -> (timpora_bus::Bus, timpora_hub::Config) {
    let cfg = timpora_hub::Config::load(Some(&dir.join("timpora.toml"))).unwrap();
    let bus = timpora_bus::Bus::connect(
        cfg.nats.options(timpora_bus::Identity::Auditor),
        "test",
        cfg.bus.clone(),
    )
    .await
    .unwrap();
    (bus, cfg)
}

/// The events stored on the bus of the hub in `dir` on subjects starting with `prefix`, with
/// their sequences, read as the auditor.
pub async fn stored_events(dir: &Path, prefix: &str) -> Vec<(u64, timpora_proto::v1::Event)> {
    use prost::Message as _;
    let (bus, cfg) = auditor_bus(dir).await;
    let last = bus.events_last_sequence().await.unwrap();
    let stream = bus
        .jetstream()
        .get_stream(&cfg.bus.events_stream)
        .await
        .unwrap();
    let mut out = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await
            && m.subject.starts_with(prefix)
        {
            out.push((seq, timpora_proto::v1::Event::decode(m.payload).unwrap()));
        }
    }
    out
}
