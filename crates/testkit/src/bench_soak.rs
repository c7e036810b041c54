//! The soak benchmark (`timpora bench soak`): the whole hub as `timpora up` runs it (its own
//! `nats-server` child, gateway, correlator, sealer, witness and console in one process) with
//! telemetry on — metrics served, traces exported at a sampling share to an OTLP receiver run
//! here — fed for a fixed time at a fixed rate with the demo scenario's traffic (every act
//! through its agency's own gRPC service, as its own unit), while the hub's metrics and the
//! memory of both processes are watched.
//!
//! Publishing is open-loop: act `i` is due at `i / rate` seconds, sent then whatever the
//! previous ones are doing, and its latency is from its send to its acknowledgement. Lag is the
//! hub's own metrics, read every 250 ms: `timpora_correlator_lag_events` (refreshed every
//! second), and for the events log `timpora_sealer_consumer_lag_messages` (not yet appended)
//! and `timpora_sealer_lag_messages` (not yet under a signed checkpoint; checkpoints come every
//! `sealer.every_messages` or `sealer.every`), both refreshed every two seconds: the worst of
//! each, its value once publishing ended, and how long after the last acknowledgement it first
//! read zero.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use timpora_client::Conn;
use timpora_scenario::demo::Demo;
use tokio::sync::Mutex;

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `timpora` binary whose `up` is soaked.
    pub exe: PathBuf,
    /// How long to publish.
    pub duration: Duration,
    /// Acts per second.
    pub rate: f64,
    /// Scenario seed.
    pub seed: u64,
    /// Share of traces exported.
    pub sampling: f64,
    /// The correlator's rule file (the default set otherwise).
    pub rules: Option<PathBuf>,
    /// Say what is happening on stderr.
    pub verbose: bool,
}

/// Resident memory of one process, MiB.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Rss {
    pub start_mib: f64,
    pub middle_mib: f64,
    pub end_mib: f64,
    /// `end / middle` (target ≤ 1.2).
    pub end_over_middle: f64,
}

/// What the hub keeps for as long as it runs, or for as long as the rules' windows (days).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Held {
    /// Events in the stream: the gateway keeps a 16-byte digest and a sequence of each id (a
    /// retry is a duplicate however late), and up to 500 sequences per subject; the sealer
    /// keeps every hash of the events log's Merkle tree.
    pub events: u64,
    /// The correlator's state entries (the events within its rules' windows).
    pub state_entries: u64,
    /// Alerts in the gateway's alert book.
    pub alerts: u64,
}

fn held(text: &str) -> Held {
    let read = |name: &str, labels: &str| metric(text, name, labels).unwrap_or(0.0) as u64;
    Held {
        events: read("timpora_sealer_checkpoint_size", "log=\"events\"")
            + read("timpora_sealer_lag_messages", "log=\"events\""),
        state_entries: read("timpora_correlator_state_entries", ""),
        alerts: read("timpora_alerts", ""),
    }
}

/// One lag, as the hub's metrics showed it.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Lag {
    /// The most it read while publishing.
    pub worst: u64,
    /// `worst` in seconds of traffic at the rate.
    pub worst_s: f64,
    /// What it read once the last act was acknowledged.
    pub at_end: u64,
    /// `at_end` in seconds of traffic at the rate (target ≤ 1).
    pub at_end_s: f64,
    /// Seconds from the last acknowledgement until it first read 0 (includes the metric's
    /// refresh interval); `None` if not within two minutes.
    pub zero_after_s: Option<f64>,
}

/// What was measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub duration_s: f64,
    pub rate_target: f64,
    /// The rule file, when not the default set.
    pub rules: Option<PathBuf>,
    /// Acts acknowledged per second of publishing.
    pub rate_sustained: f64,
    pub sent: u64,
    pub stored: u64,
    pub duplicates: u64,
    /// Acts refused or failed, and the first of each kind.
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub publish_p50_us: u64,
    pub publish_p99_us: u64,
    pub publish_max_us: u64,
    /// How far behind its due time the latest send went, ms (the client keeping up).
    pub behind_schedule_max_ms: f64,
    /// Where the time of the slowest goes, from the hub's own histograms (bucket bounds, so
    /// "at most"): the gateway's answer from arrival (`timpora_gateway_publish_seconds`), and
    /// of it JetStream's acknowledgement (`timpora_gateway_jetstream_ack_seconds`), p99, ms.
    pub gateway_p99_ms_at_most: f64,
    pub jetstream_ack_p99_ms_at_most: f64,
    /// `timpora_correlator_lag_events`.
    pub correlator_lag: Lag,
    /// `timpora_sealer_consumer_lag_messages{log="events"}`.
    pub sealer_lag: Lag,
    /// `timpora_sealer_lag_messages{log="events"}`.
    pub sealer_checkpoint_lag: Lag,
    /// Alerts the hub holds at the end (`timpora_alerts`).
    pub alerts: u64,
    pub trace_sampling: f64,
    /// Spans the OTLP receiver got.
    pub spans_received: usize,
    /// What the hub holds in memory by design, at the middle and at the end: what its growth
    /// is made of.
    pub held_middle: Held,
    pub held_end: Held,
    /// The hub's resident memory growth from the middle to the end, per event stored then.
    pub hub_rss_bytes_per_event: f64,
    /// The `timpora up` process (gateway, correlator, sealer, witness, console).
    pub hub_rss: Rss,
    /// Its `nats-server` child.
    pub nats_rss: Rss,
    /// Lines the hub logged at ERROR and WARN from the start of publishing, and how many of
    /// each message (the demo's storylines backdate some acts on purpose: the correlator
    /// warns about those late events).
    pub hub_log_errors: usize,
    pub hub_log_warnings: usize,
    pub hub_log_kinds: BTreeMap<String, u64>,
}

/// The hub under test: killed (with its `nats-server`) if the benchmark stops early.
struct Hub {
    child: tokio::process::Child,
    pid: u32,
}

impl Hub {
    async fn stop(mut self) {
        let _ = tokio::process::Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(timpora_natsd::free_port()?)
}

/// GET `path` from the hub's telemetry endpoint on 127.0.0.1:`port`; the body of a 200.
async fn get(port: u16, path: &str) -> anyhow::Result<String> {
    let (code, body) = crate::sandbox::http_get(([127, 0, 0, 1], port).into(), path).await?;
    anyhow::ensure!(code == 200, "{path}: {code} {body}");
    Ok(body)
}

/// The sum of every sample of metric `name` whose labels contain `labels`.
fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labelled, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        if !labelled.contains(labels) {
            continue;
        }
        if let Ok(v) = value.trim().parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// The upper bound of the bucket holding quantile `q` of histogram `name` (every label set
/// summed), in the histogram's unit.
fn bucket_quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(le) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("le=\""))
            .map(|l| l.trim_end_matches('"'))
        else {
            continue;
        };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().ok()?
        };
        let count: f64 = value.split_whitespace().next()?.parse().ok()?;
        let e = buckets.entry(bound.to_bits()).or_insert((bound, 0.0));
        e.1 += count;
    }
    let mut sorted: Vec<(f64, f64)> = buckets.into_values().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = sorted.last()?.1;
    sorted
        .into_iter()
        .find(|(_, cumulative)| *cumulative >= q * total)
        .map(|(bound, _)| bound)
}

/// The correlator's lag, and the sealer's (appended, and under a signed checkpoint) of the
/// events log.
fn lags(text: &str) -> (u64, u64, u64) {
    let events = "log=\"events\"";
    let read = |name: &str, labels: &str| metric(text, name, labels).unwrap_or(0.0) as u64;
    (
        read("timpora_correlator_lag_events", ""),
        read("timpora_sealer_consumer_lag_messages", events),
        read("timpora_sealer_lag_messages", events),
    )
}

/// Resident memory of `pid`, MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or_default()
}

/// The `nats-server` child of `parent`.
fn nats_child(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = stat.split_once(") ")?;
        let ppid: u32 = rest.split(' ').nth(1)?.parse().ok()?;
        (ppid == parent && comm.ends_with("(nats-server")).then_some(pid)
    })
}

/// What the watcher saw.
#[derive(Default)]
struct Watched {
    correlator_worst: u64,
    sealer_worst: u64,
    checkpoint_worst: u64,
    last_text: String,
}

async fn wait_ready(metrics: u16, hub: &mut Hub) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(status)) = hub.child.try_wait() {
            anyhow::bail!("the hub exited before it was ready: {status}");
        }
        if get(metrics, "/readyz").await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the hub was not ready within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// ERROR and WARN lines of a JSON log: how many of each, by level and message.
fn log_lines(text: &str) -> (usize, usize, BTreeMap<String, u64>) {
    let (mut errors, mut warnings, mut kinds) = (0, 0, BTreeMap::new());
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v["level"].as_str() {
            Some("ERROR") => errors += 1,
            Some("WARN") => warnings += 1,
            _ => continue,
        }
        let kind = format!(
            "{} {}: {}",
            v["level"].as_str().unwrap_or_default(),
            v["target"].as_str().unwrap_or_default(),
            v["fields"]["message"].as_str().unwrap_or_default()
        );
        *kinds.entry(kind).or_default() += 1;
    }
    (errors, warnings, kinds)
}

/// Run the benchmark.
pub async fn run(a: Settings) -> anyhow::Result<Report> {
    anyhow::ensure!(
        a.rate > 0.0 && a.rate <= 10_000.0,
        "--rate must be between 0 and 10000 acts per second"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.sampling),
        "--trace-sampling must be between 0 and 1"
    );
    let say = |what: &str| {
        if a.verbose {
            eprintln!("soak: {what}");
        }
    };
    let dir = tempfile::tempdir()?;
    let (gateway, nats, console, metrics) =
        (free_port()?, free_port()?, free_port()?, free_port()?);
    let (spans, otlp) = crate::otlp::receiver()?;
    let log = dir.path().join("hub.log");
    let mut command = tokio::process::Command::new(&a.exe);
    if let Some(rules) = &a.rules {
        command.env("TIMPORA_CORRELATOR__RULES", rules);
    }
    let child = command
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--log-format", "json", "up"])
        .args(["--listen", &format!("127.0.0.1:{gateway}")])
        .args(["--nats-port", &nats.to_string()])
        .args(["--console-listen", &format!("127.0.0.1:{console}")])
        .args(["--metrics", &format!("127.0.0.1:{metrics}")])
        .env_remove("RUST_LOG")
        .env(
            "TIMPORA_TELEMETRY__TRACES__ENDPOINT",
            format!("http://127.0.0.1:{otlp}"),
        )
        .env(
            "TIMPORA_TELEMETRY__TRACES__SAMPLING",
            a.sampling.to_string(),
        )
        // Every unit sends at most its share of the rate; the default per-unit limit is for
        // real offices, not for a soak.
        .env("TIMPORA_GATEWAY__LIMITS__EVENTS_PER_SECOND", "100000")
        .env("TIMPORA_GATEWAY__LIMITS__BURST", "100000")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", a.exe.display()))?;
    let pid = child.id().context("the hub has no pid")?;
    let mut hub = Hub { child, pid };
    say("starting the hub");
    wait_ready(metrics, &mut hub).await?;
    let nats_pid = nats_child(pid).context("the hub's nats-server child not found")?;
    let cfg = timpora_hub::Config::load(Some(&timpora_client::dev::config_path(dir.path())))?;
    let (target, keyring) = cfg.gateway_client(None, Some(dir.path()));

    let ready_log = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let watched = Arc::new(Mutex::new(Watched::default()));
    let stop_watch = Arc::new(tokio::sync::Notify::new());
    let watcher = {
        let (watched, stop) = (watched.clone(), stop_watch.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(text) = get(metrics, "/metrics").await {
                    let mut w = watched.lock().await;
                    let (c, s, k) = lags(&text);
                    w.correlator_worst = w.correlator_worst.max(c);
                    w.sealer_worst = w.sealer_worst.max(s);
                    w.checkpoint_worst = w.checkpoint_worst.max(k);
                    w.last_text = text;
                }
                tokio::select! {
                    () = stop.notified() => return,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        })
    };

    let mut rss = [(Rss::default(), pid), (Rss::default(), nats_pid)];
    for (r, p) in &mut rss {
        r.start_mib = rss_mib(*p);
    }
    say(&format!(
        "publishing {} acts/s for {} s",
        a.rate,
        a.duration.as_secs()
    ));
    let start = SystemTime::now();
    let mut demo = Demo::new(a.seed, start, a.rate, 150);
    let mut conns: HashMap<&'static str, Conn> = HashMap::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Result<bool, String>)>();
    let began = tokio::time::Instant::now();
    let end = began + a.duration;
    let middle = began + a.duration / 2;
    let mut middle_done = false;
    let mut held_middle = Held::default();
    let mut behind = Duration::ZERO;
    let mut sent = 0u64;
    let step = Duration::from_secs_f64(1.0 / a.rate);
    let mut last_progress = began;
    loop {
        let due = began + step.mul_f64(sent as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let now = tokio::time::Instant::now();
        behind = behind.max(now - due);
        if !middle_done && now >= middle {
            middle_done = true;
            for (r, p) in &mut rss {
                r.middle_mib = rss_mib(*p);
            }
            held_middle = held(&watched.lock().await.last_text);
        }
        let Some(act) = demo.next() else { break };
        let conn = match conns.get(act.identity) {
            Some(c) => c.clone(),
            None => {
                let credentials = keyring.credentials(act.identity)?;
                let c = timpora_client::connect(&target, &credentials).await?;
                conns.insert(act.identity, c.clone());
                c
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let result = timpora_hub::demo::send(conn, &act)
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()));
            let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
            let _ = tx.send((us.max(1), result));
        });
        sent += 1;
        if a.verbose && now - last_progress >= Duration::from_secs(60) {
            last_progress = now;
            eprintln!("soak: {} s, {sent} acts sent", (now - began).as_secs());
        }
    }
    drop(tx);
    let mut latency = Histogram::<u64>::new(3)?;
    let (mut stored, mut duplicates, mut errors) = (0u64, 0u64, 0u64);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    while let Some((us, result)) = rx.recv().await {
        match result {
            Ok(duplicate) => {
                latency.record(us)?;
                stored += 1;
                duplicates += u64::from(duplicate);
            }
            Err(e) => {
                errors += 1;
                *kinds.entry(e.chars().take(200).collect()).or_default() += 1;
            }
        }
    }
    let acked = tokio::time::Instant::now();
    let publishing = (acked - began).as_secs_f64();
    for (r, p) in &mut rss {
        r.end_mib = rss_mib(*p);
        r.end_over_middle = if r.middle_mib > 0.0 {
            (r.end_mib / r.middle_mib * 1000.0).round() / 1000.0
        } else {
            0.0
        };
    }

    // Lag once publishing ended, and how long until each reads zero.
    let at_end = lags(&get(metrics, "/metrics").await?);
    let (mut correlator_zero, mut sealer_zero, mut checkpoint_zero) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    let text = loop {
        let text = get(metrics, "/metrics").await?;
        let (c, s, k) = lags(&text);
        let t = acked.elapsed().as_secs_f64();
        for (lag, zero) in [
            (c, &mut correlator_zero),
            (s, &mut sealer_zero),
            (k, &mut checkpoint_zero),
        ] {
            if lag == 0 && zero.is_none() {
                *zero = Some(t);
            }
        }
        let all = correlator_zero.is_some() && sealer_zero.is_some() && checkpoint_zero.is_some();
        if all || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop_watch.notify_one();
    let _ = watcher.await;
    let w = watched.lock().await;
    let (hub_log_errors, hub_log_warnings, hub_log_kinds) = {
        // What the hub logged from the start of publishing on.
        let all = std::fs::read(&log).unwrap_or_default();
        let from = usize::try_from(ready_log).unwrap_or(0).min(all.len());
        log_lines(&String::from_utf8_lossy(&all[from..]))
    };
    let lag = |worst: u64, end: u64, zero: Option<f64>| Lag {
        worst,
        worst_s: (worst as f64 / a.rate * 1000.0).round() / 1000.0,
        at_end: end,
        at_end_s: (end as f64 / a.rate * 1000.0).round() / 1000.0,
        zero_after_s: zero.map(|z| (z * 100.0).round() / 100.0),
    };
    let held_end = held(&text);
    let report = Report {
        duration_s: a.duration.as_secs_f64(),
        rate_target: a.rate,
        rules: a.rules.clone(),
        rate_sustained: (stored as f64 / publishing).round(),
        sent,
        stored,
        duplicates,
        errors,
        error_kinds: kinds,
        publish_p50_us: latency.value_at_quantile(0.5),
        publish_p99_us: latency.value_at_quantile(0.99),
        publish_max_us: latency.max(),
        behind_schedule_max_ms: (behind.as_secs_f64() * 1e5).round() / 100.0,
        gateway_p99_ms_at_most: bucket_quantile(&text, "timpora_gateway_publish_seconds", 0.99)
            .map_or(0.0, |s| (s * 1e5).round() / 100.0),
        jetstream_ack_p99_ms_at_most: bucket_quantile(
            &text,
            "timpora_gateway_jetstream_ack_seconds",
            0.99,
        )
        .map_or(0.0, |s| (s * 1e5).round() / 100.0),
        correlator_lag: lag(w.correlator_worst.max(at_end.0), at_end.0, correlator_zero),
        sealer_lag: lag(w.sealer_worst.max(at_end.1), at_end.1, sealer_zero),
        sealer_checkpoint_lag: lag(w.checkpoint_worst.max(at_end.2), at_end.2, checkpoint_zero),
        alerts: metric(&text, "timpora_alerts", "").unwrap_or(0.0) as u64,
        trace_sampling: a.sampling,
        spans_received: spans.count(),
        held_middle,
        held_end,
        hub_rss_bytes_per_event: {
            let events = held_end.events.saturating_sub(held_middle.events).max(1);
            ((rss[0].0.end_mib - rss[0].0.middle_mib) * 1_048_576.0 / events as f64).round()
        },
        hub_rss: rss[0].0,
        nats_rss: rss[1].0,
        hub_log_errors,
        hub_log_warnings,
        hub_log_kinds,
    };
    say("stopping the hub");
    hub.stop().await;
    Ok(report)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "soak ({} s at {} acts/s, demo scenario traffic through the agencies' services; traces sampled at {})",
            self.duration_s, self.rate_target, self.trace_sampling
        )?;
        writeln!(
            f,
            "  sustained  {} acts/s   sent {}  stored {}  duplicates {}  errors {} (target 0){}",
            self.rate_sustained,
            self.sent,
            self.stored,
            self.duplicates,
            self.errors,
            if self.error_kinds.is_empty() {
                String::new()
            } else {
                format!("  {:?}", self.error_kinds)
            }
        )?;
        writeln!(
            f,
            "  publish    p50 {} us  p99 {} us (target <= 10000)  max {} us   sender behind schedule at most {} ms",
            self.publish_p50_us,
            self.publish_p99_us,
            self.publish_max_us,
            self.behind_schedule_max_ms
        )?;
        for (name, l) in [
            ("correlator", &self.correlator_lag),
            ("sealer", &self.sealer_lag),
            ("checkpoint", &self.sealer_checkpoint_lag),
        ] {
            writeln!(
                f,
                "  {name:<10} lag worst {} ({} s)  at end {} ({} s, target <= 1 s)  zero {} after the last ack",
                l.worst,
                l.worst_s,
                l.at_end,
                l.at_end_s,
                l.zero_after_s
                    .map_or("not within 120 s".to_owned(), |z| format!("{z} s"))
            )?;
        }
        writeln!(
            f,
            "  held       middle: {} events, {} state entries, {} alerts   end: {} events, {} state entries, {} alerts   hub rss growth {} bytes per event",
            self.held_middle.events,
            self.held_middle.state_entries,
            self.held_middle.alerts,
            self.held_end.events,
            self.held_end.state_entries,
            self.held_end.alerts,
            self.hub_rss_bytes_per_event
        )?;
        for (name, r) in [("hub", &self.hub_rss), ("nats-server", &self.nats_rss)] {
            writeln!(
                f,
                "  rss {name:<11} start {} MiB  middle {} MiB  end {} MiB  end/middle {} (target <= 1.2)",
                r.start_mib, r.middle_mib, r.end_mib, r.end_over_middle
            )?;
        }
        write!(
            f,
            "  alerts {}   spans received {}   hub log: {} errors, {} warnings",
            self.alerts, self.spans_received, self.hub_log_errors, self.hub_log_warnings
        )?;
        for (kind, n) in &self.hub_log_kinds {
            write!(f, "\n    {n} x {kind}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bucket_of_a_quantile_across_label_sets() {
        let text = "x_seconds_bucket{agency=\"a\",le=\"0.001\"} 50\n\
                    x_seconds_bucket{agency=\"a\",le=\"0.002\"} 98\n\
                    x_seconds_bucket{agency=\"a\",le=\"+Inf\"} 100\n\
                    x_seconds_bucket{agency=\"b\",le=\"0.001\"} 0\n\
                    x_seconds_bucket{agency=\"b\",le=\"0.002\"} 0\n\
                    x_seconds_bucket{agency=\"b\",le=\"+Inf\"} 100\n";
        assert_eq!(bucket_quantile(text, "x_seconds", 0.4), Some(0.002));
        assert_eq!(
            bucket_quantile(text, "x_seconds", 0.99),
            Some(f64::INFINITY)
        );
        assert_eq!(bucket_quantile(text, "y_seconds", 0.5), None);
    }

    #[test]
    fn reads_a_metric_by_name_and_labels() {
        let text = "# TYPE timpora_sealer_lag_messages gauge\n\
                    timpora_sealer_lag_messages{log=\"events\"} 12\n\
                    timpora_sealer_lag_messages{log=\"alerts\"} 3\n\
                    timpora_correlator_lag_events 7\n\
                    timpora_correlator_lag_events_other 9\n";
        assert_eq!(
            metric(text, "timpora_sealer_lag_messages", "log=\"events\""),
            Some(12.0)
        );
        assert_eq!(metric(text, "timpora_sealer_lag_messages", ""), Some(15.0));
        assert_eq!(metric(text, "timpora_correlator_lag_events", ""), Some(7.0));
        assert_eq!(metric(text, "timpora_alerts", ""), None);
    }
}
