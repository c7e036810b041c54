//! Crash safety of `timpora correlator`, the real binary: a seeded scenario is loaded into a real
//! JetStream, the correlator is killed with SIGKILL at several points while it works through it
//! and restarted each time; the alerts stored in the end are exactly those of an uninterrupted
//! evaluation (the same ids and bytes), each stored once. And two independent runs over the
//! same stream, on two servers, store byte-identical alerts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use prost::Message;
use timpora_bus::{Bus, Topology};
use timpora_natsd::NatsServer;
use timpora_proto::v1::Alert;
use timpora_scenario::{Scenario, Spec};

mod common;
use common::Killed;

const LATENESS: Duration = Duration::from_secs(5);

fn correlator(url: &str, dir: &std::path::Path) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_timpora"))
            .arg("--data-dir")
            .arg(dir)
            .args(["correlator", "--nats-url", url, "--lateness", "5s"])
            .args(["--checkpoint-every", "50ms", "--tick", "1s"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start timpora correlator"),
    )
}

/// Every stored alert by id, with how many times each id was stored.
async fn stored_alerts(bus: &Bus) -> (BTreeMap<String, Alert>, usize) {
    let stream = bus
        .jetstream()
        .get_stream(&bus.topology().alerts_stream)
        .await
        .unwrap();
    let total = stream.get_info().await.unwrap().state.messages as usize;
    let mut out = BTreeMap::new();
    if total == 0 {
        return (out, 0);
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    for _ in 0..total {
        let m = messages.next().await.unwrap().unwrap();
        let alert = Alert::decode(m.payload.clone()).unwrap();
        out.insert(alert.id.clone(), alert);
    }
    (out, total)
}

/// Publish `events` straight onto the bus, in order.
async fn load(bus: &Bus, events: &[timpora_proto::v1::Event]) {
    let mut pending = Vec::new();
    for e in events {
        pending.push(bus.publish(e).await.unwrap());
        if pending.len() == 2_000 {
            for p in pending.drain(..) {
                p.ack().await.unwrap();
            }
        }
    }
    for p in pending {
        p.ack().await.unwrap();
    }
}

/// Run the correlator in process on `bus` until it has checkpointed past `last`; its alerts.
async fn correlate_to_end(bus: &Bus, last: u64) -> BTreeMap<String, Alert> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let bus = bus.clone();
        async move {
            let options = timpora_correlator::Options {
                lateness: LATENESS,
                checkpoint_every: Duration::from_millis(100),
                ..Default::default()
            };
            timpora_correlator::run(bus, None, options, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let started = Instant::now();
    loop {
        let status = bus.correlator_status().await.unwrap();
        if status.is_some_and(|s| s.checkpoint_sequence >= last) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let (alerts, total) = stored_alerts(bus).await;
    assert_eq!(total, alerts.len());
    alerts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_independent_runs_over_the_same_stream_store_byte_identical_alerts() {
    let end = SystemTime::now() - Duration::from_secs(200 * 86_400);
    let events: Vec<_> = Scenario::new(Spec::small(7, 10_000, end)).collect();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let nats = NatsServer::start().unwrap();
        let bus = Bus::connect(&nats.url(), "determinism", Topology::default())
            .await
            .unwrap();
        bus.ensure_topology().await.unwrap();
        load(&bus, &events).await;
        let last = bus.events_last_sequence().await.unwrap();
        let alerts = correlate_to_end(&bus, last).await;
        let bytes: Vec<(String, Vec<u8>)> = alerts
            .into_iter()
            .map(|(id, a)| (id, a.encode_to_vec()))
            .collect();
        runs.push(bytes);
    }
    assert!(runs[0].len() > 20, "{} alerts", runs[0].len());
    assert_eq!(runs[0], runs[1], "the two runs' alerts differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_several_points_loses_and_doubles_nothing() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::connect(&nats.url(), "crash-test", Topology::default())
        .await
        .unwrap();
    bus.ensure_topology().await.unwrap();

    // A scenario that ended 200 days ago: every window and horizon in it has closed by the
    // first clock tick, so the expected alerts do not depend on when the test runs.
    let end = SystemTime::now() - Duration::from_secs(200 * 86_400);
    let events: Vec<_> = Scenario::new(Spec::small(42, 40_000, end)).collect();
    load(&bus, &events).await;
    let last = bus.events_last_sequence().await.unwrap();
    assert_eq!(last, events.len() as u64);

    // The uninterrupted evaluation: the engine over the same events, then the clock.
    let set = timpora_rules::parse(timpora_rules::DEFAULT_RULES).unwrap();
    let mut engine = timpora_correlate::Engine::new(set, LATENESS);
    let mut expected: Vec<Alert> = events
        .iter()
        .zip(1u64..)
        .flat_map(|(e, seq)| engine.observe_at(e, seq))
        .map(|a| timpora_correlator::to_proto(&a))
        .collect();
    expected.extend(
        engine
            .tick(SystemTime::now())
            .iter()
            .map(timpora_correlator::to_proto),
    );
    let expected: BTreeMap<String, Alert> =
        expected.into_iter().map(|a| (a.id.clone(), a)).collect();
    let mut rules: Vec<&str> = expected.values().map(|a| a.rule_id.as_str()).collect();
    rules.dedup();
    rules.sort_unstable();
    rules.dedup();
    assert_eq!(rules, ["R1", "R2", "R3", "R4", "R5", "R6"]);

    // Kill it at a quarter, half and three quarters of the alerts, and once more right after a
    // start (before its first checkpoint is likely written); restart each time.
    let n = expected.len();
    let mut kills = Vec::new();
    for target in [n / 4, n / 2, 3 * n / 4, usize::MAX] {
        let mut child = correlator(&nats.url(), dir.path());
        let started = Instant::now();
        if target == usize::MAX {
            tokio::time::sleep(Duration::from_millis(30)).await;
        } else {
            loop {
                assert!(child.0.try_wait().unwrap().is_none(), "correlator exited");
                let (_, count) = stored_alerts(&bus).await;
                if count >= target {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "stuck at {count} of {n} alerts"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        kills.push((target, stored_alerts(&bus).await.1));
    }
    eprintln!("killed at (target, stored) {kills:?} of {n}");

    // The last run: until everything is processed and checkpointed.
    let _child = correlator(&nats.url(), dir.path());
    let started = Instant::now();
    loop {
        let status = bus.correlator_status().await.unwrap();
        if status.is_some_and(|s| s.checkpoint_sequence >= last) && stored_alerts(&bus).await.1 >= n
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (stored, total) = stored_alerts(&bus).await;
    assert_eq!(total, stored.len(), "an alert was stored twice");
    assert_same_alerts(&stored, &expected);
}

/// `timpora correlator` sharing the work in `parts` parts, holds lasting `lease`.
fn sharing_correlator(url: &str, dir: &std::path::Path, parts: u32, lease: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_timpora"));
    c.arg("--data-dir")
        .arg(dir)
        .args(["correlator", "--nats-url", url, "--lateness", "5s"])
        .args(["--checkpoint-every", "200ms", "--tick", "1s"])
        .args(["--partitions", &parts.to_string(), "--lease", lease])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    c
}

/// The series of `name` on the metrics endpoint at `addr`, by their `part` label.
async fn by_part(addr: std::net::SocketAddr, name: &str) -> BTreeMap<String, f64> {
    let (status, text) = timpora_testkit::sandbox::http_get(addr, "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let prefix = format!("{name}{{part=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (part, value) = l.split_once("\"} ")?;
            Some((part.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Each part's last status: part → (member, checkpoint sequence, position).
async fn part_statuses(bus: &Bus) -> BTreeMap<String, (String, u64, u64)> {
    bus.shared_entries("status.>")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| timpora_bus::CorrelatorStatus::from_json(&e.value))
        .map(|s| (s.part, (s.member, s.checkpoint_sequence, s.position)))
        .collect()
}

/// Wait until `done` holds of the parts' statuses.
async fn until_parts(
    bus: &Bus,
    what: &str,
    done: impl Fn(&BTreeMap<String, (String, u64, u64)>) -> bool,
) -> BTreeMap<String, (String, u64, u64)> {
    let started = Instant::now();
    loop {
        let s = part_statuses(bus).await;
        if done(&s) {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The alerts one correlator raises from the events stream as stored up to `last` (agency
/// events and the clock ticks the correlators recorded, in stream order).
async fn one_correlator_over(bus: &Bus, last: u64) -> BTreeMap<String, Alert> {
    let set = timpora_rules::parse(timpora_rules::DEFAULT_RULES).unwrap();
    let mut engine = timpora_correlate::Engine::new(set, LATENESS);
    let mut out = BTreeMap::new();
    let mut events = bus
        .replay(bus.topology().filter_subject(&[]), timpora_bus::Start::All)
        .await
        .unwrap();
    while let Some(d) = events.next().await {
        let d = d.unwrap();
        for a in engine.observe_at(&d.event, d.sequence) {
            let a = timpora_correlator::to_proto(&a);
            out.insert(a.id.clone(), a);
        }
        if d.sequence >= last {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_correlators_share_the_work_and_one_takes_over_when_the_other_is_killed() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::connect(&nats.url(), "sharing-test", Topology::default())
        .await
        .unwrap();
    bus.ensure_topology().await.unwrap();
    let end = SystemTime::now() - Duration::from_secs(200 * 86_400);
    let events: Vec<_> = Scenario::new(Spec::small(42, 30_000, end)).collect();
    let (first, second) = events.split_at(events.len() / 2);
    load(&bus, first).await;
    let loaded = bus.events_last_sequence().await.unwrap();

    // Two correlators, two parts: each ends up holding one, and both work through the stream.
    let lease = Duration::from_secs(2);
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], timpora_natsd::free_port().unwrap()));
    let _a = Killed(
        sharing_correlator(&nats.url(), &dir.path().join("a"), 2, "2s")
            .args(["--metrics", &metrics.to_string()])
            .spawn()
            .expect("start timpora correlator"),
    );
    let mut b = Killed(
        sharing_correlator(&nats.url(), &dir.path().join("b"), 2, "2s")
            .spawn()
            .expect("start timpora correlator"),
    );
    let shared = until_parts(&bus, "the parts were not shared", |s| {
        s.len() == 2
            && s.values().all(|(_, checkpoint, _)| *checkpoint >= loaded)
            && s.values()
                .map(|(m, ..)| m)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == 2
    })
    .await;
    eprintln!("shared: {shared:?}");

    // The second half of the scenario arrives, and one correlator is killed in the middle of
    // it (SIGKILL: its holds are not given back, its work since its last checkpoint is lost);
    // the rest arrives while its part has nobody.
    let loading = tokio::spawn({
        let (bus, second) = (bus.clone(), second.to_vec());
        async move { load(&bus, &second).await }
    });
    while bus.events_last_sequence().await.unwrap() < loaded + 3_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.0.kill().unwrap();
    b.0.wait().unwrap();
    let killed = Instant::now();
    loading.await.unwrap();
    let last_event = bus.events_last_sequence().await.unwrap();
    // The survivor takes the orphaned part over from its checkpoint.
    until_parts(
        &bus,
        "the killed correlator's part was not taken over",
        |s| {
            s.values()
                .map(|(m, ..)| m)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == 1
        },
    )
    .await;
    let takeover = killed.elapsed();
    eprintln!("part taken over {takeover:?} after the kill (lease {lease:?})");
    assert!(
        takeover < lease + Duration::from_secs(5),
        "takeover took {takeover:?}"
    );
    until_parts(&bus, "the survivor did not finish", |s| {
        s.values()
            .all(|(_, checkpoint, _)| *checkpoint >= last_event)
    })
    .await;
    // The survivor's metrics endpoint reports both parts it now holds, each caught up, and it
    // is ready.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lag = by_part(metrics, "timpora_correlator_lag_events").await;
        let events = by_part(metrics, "timpora_correlator_events_total").await;
        let parts: Vec<&str> = lag.keys().map(String::as_str).collect();
        if parts == ["0-of-2", "1-of-2"] && lag.values().all(|l| *l == 0.0) {
            assert!(
                events.len() == 2 && events.values().all(|n| *n > 0.0),
                "{events:?}"
            );
            let entries = by_part(metrics, "timpora_correlator_state_entries").await;
            assert_eq!(entries.len(), 2, "{entries:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "parts on the metrics endpoint: {lag:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Readiness follows every second.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ready, why) = timpora_testkit::sandbox::http_get(metrics, "/readyz")
            .await
            .unwrap();
        if ready == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Settled: nothing more is raised.
    let mut count = stored_alerts(&bus).await.1;
    let settling = Instant::now();
    loop {
        assert!(
            settling.elapsed() < Duration::from_secs(60),
            "alerts never stopped coming"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = stored_alerts(&bus).await.1;
        if now == count {
            break;
        }
        count = now;
    }
    let statuses = part_statuses(&bus).await;
    let (stored, total) = stored_alerts(&bus).await;
    assert_eq!(total, stored.len(), "an alert was stored twice");

    // Exactly what one correlator raises from the same stream.
    let positions: Vec<u64> = statuses.values().map(|(_, _, p)| *p).collect();
    let (low, high) = (
        *positions.iter().min().unwrap(),
        *positions.iter().max().unwrap(),
    );
    let expected = one_correlator_over(&bus, low).await;
    assert_eq!(
        one_correlator_over(&bus, high).await.len(),
        expected.len(),
        "the clock ticks between the parts' positions decide nothing more"
    );
    let mut rules: Vec<&str> = expected.values().map(|a| a.rule_id.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    assert_eq!(rules, ["R1", "R2", "R3", "R4", "R5", "R6"]);
    assert_same_alerts(&stored, &expected);
}

/// The alerts stored are exactly those expected, byte for byte.
fn assert_same_alerts(stored: &BTreeMap<String, Alert>, expected: &BTreeMap<String, Alert>) {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !stored.contains_key(*k))
        .collect();
    let extra: Vec<&String> = stored
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "lost alerts: {missing:?}");
    assert!(extra.is_empty(), "unexpected alerts: {extra:?}");
    for (id, alert) in expected {
        assert_eq!(
            stored[id].encode_to_vec(),
            alert.encode_to_vec(),
            "alert {id} differs"
        );
    }
}
