//! The correlation service on a real JetStream: events published through the gateway raise
//! alerts in the alerts stream; a restart continues from the checkpoint and stores no alert
//! twice; rule sets change without a restart, and an invalid one changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::HashSet;
use std::time::Duration;

use timpora_correlator::Stats;
use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_e2e::v1::*;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn options() -> timpora_correlator::Options {
    timpora_correlator::Options {
        lateness: Duration::from_secs(1),
        tick_every: Duration::from_millis(200),
        checkpoint_every: Duration::from_millis(300),
        state_cap: 100_000,
        ..Default::default()
    }
}

fn start(hub: &Hub) -> (oneshot::Sender<()>, JoinHandle<Stats>) {
    let (tx, rx) = oneshot::channel::<()>();
    let bus = hub.bus.clone();
    let task = tokio::spawn(async move {
        timpora_correlator::run(bus, None, options(), async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    (tx, task)
}

/// Wait until the alerts stream holds `n` alerts (or fail after 20 s).
async fn wait_for(hub: &Hub, n: usize) -> Vec<Alert> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = hub.alerts().await.unwrap();
        if alerts.len() >= n {
            return alerts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} alerts",
            alerts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn alerts_are_raised_from_the_stream_and_a_restart_stores_none_twice() {
    let hub = Hub::start().await.unwrap();
    // Village warning about person 1, then a deferred passport interview with indicators at
    // Kendari (R2), then a departure check of the same person at Soekarno-Hatta (R3).
    village_warning_then_interview(&hub, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut cgk = ImigrasiServiceClient::new(hub.as_agency("imigrasi/tpi-cgk").await.unwrap());
    let check = |id: &str, checkpoint: &str| RecordDepartureCheckRequest {
        meta: Some(meta(id)),
        check: Some(DepartureCheck {
            traveller: Some(person(1)),
            checkpoint_code: checkpoint.into(),
            destination_country: "MY".into(),
            outcome: DepartureOutcome::Cleared as i32,
            ..Default::default()
        }),
    };
    cgk.record_departure_check(check("cgk-1", "TPI-CGK"))
        .await
        .unwrap();

    let (stop, task) = start(&hub);
    let alerts = wait_for(&hub, 2).await;
    let rules: HashSet<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(rules, HashSet::from(["R2", "R3"]), "{alerts:?}");
    let r2 = alerts.iter().find(|a| a.rule_id == "R2").unwrap();
    assert_eq!(
        r2.evidence,
        ["desa/74.02.05.2001/desa-1", "imigrasi/kanim-kendari/kdi-1"]
    );
    assert_eq!(r2.severity, Severity::High as i32);
    assert!(r2.group_key.starts_with("psn_"));
    assert!(r2.id.starts_with("alr_"));
    let stored = hub.stored().await.unwrap();
    assert!(
        stored
            .iter()
            .any(|(_, e)| e.r#type == "timpora.hub.clock_tick.v1"),
        "the correlator records clock ticks into the stream"
    );
    let _ = stop.send(());
    let stats = task.await.unwrap();
    assert!(stats.events >= 3);

    let status = hub.bus.correlator_status().await.unwrap().unwrap();
    assert!(status.checkpoint_sequence >= 3, "{status:?}");
    assert_eq!(status.version, "2026.12-1");

    // Restart: continues from the checkpoint, nothing stored again; the restarted service is
    // live (a new attempt at another checkpoint raises one new R3).
    let (stop, task) = start(&hub);
    cgk.record_departure_check(check("kdi-2", "TPI-KDI"))
        .await
        .unwrap();
    wait_for(&hub, 3).await;
    // Give the restarted service time to store anything extra it (wrongly) would.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = hub.alerts().await.unwrap();
    let ids: HashSet<&str> = after.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), after.len(), "no alert stored twice");
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(after[..2], alerts[..], "earlier alerts untouched");
    assert_eq!(after[2].rule_id, "R3");
    let _ = stop.send(());
    task.await.unwrap();
}

/// A stored-form event straight onto the bus (the correlator's input; no gateway involved).
fn stored_event(id: &str, payload: event::Payload, person: &str) -> Event {
    let info = timpora_proto::type_of(&payload);
    Event {
        id: id.into(),
        source: "desa/74.02.05.2001".into(),
        r#type: info.name.into(),
        spec_version: timpora_proto::SPEC_VERSION.into(),
        time: Some(std::time::SystemTime::now().into()),
        region: "74.02.05.2001".into(),
        entities: vec![EntityRef {
            kind: EntityKind::Person as i32,
            id: person.into(),
            role: String::new(),
        }],
        payload: Some(payload),
        ..Default::default()
    }
}

fn warning(id: &str, person: &str) -> Event {
    stored_event(
        id,
        event::Payload::CommunityReport(CommunityReport {
            village_code: "74.02.05.2001".into(),
            reporter_role: ReporterRole::Pimpasa as i32,
            kind: CommunityReportKind::ResidentPlanningDeparture as i32,
            ..Default::default()
        }),
        person,
    )
}

fn deferred(id: &str, person: &str) -> Event {
    let mut e = stored_event(
        id,
        event::Payload::PassportInterview(PassportInterview {
            destination_country: "KH".into(),
            outcome: InterviewOutcome::Deferred as i32,
            indicators: vec![Indicator::PurposeInconsistent as i32],
            ..Default::default()
        }),
        person,
    );
    e.source = "imigrasi/kanim-kendari".into();
    e
}

async fn publish(hub: &Hub, e: &Event) {
    hub.bus.publish(e).await.unwrap().ack().await.unwrap();
}

#[tokio::test]
async fn a_restart_resumes_from_the_checkpoint_rather_than_the_start() {
    let hub = Hub::start().await.unwrap();
    publish(&hub, &warning("w-in-stream", "psn_a")).await;
    // A checkpoint whose state knows a village warning that is NOT in the stream, covering the
    // stream so far. Only a correlator that resumes from it (rather than replaying the stream)
    // can pair the interview below with that warning.
    let mut engine = timpora_correlate::Engine::new(
        timpora_rules::parse(timpora_rules::DEFAULT_RULES).unwrap(),
        options().lateness,
    );
    engine.observe(&warning("w-only-in-checkpoint", "psn_b"));
    let position = hub.last_sequence().await.unwrap();
    let bytes = timpora_correlator::encode_checkpoint(position, &engine.snapshot()).unwrap();
    hub.bus
        .save_checkpoint(timpora_correlator::CHECKPOINT_NAME, &bytes)
        .await
        .unwrap();

    let (stop, task) = start(&hub);
    publish(&hub, &deferred("i-b", "psn_b")).await;
    publish(&hub, &deferred("i-a", "psn_a")).await;
    let alerts = wait_for(&hub, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts_after = hub.alerts().await.unwrap();
    assert_eq!(alerts_after, alerts, "exactly one alert: {alerts_after:?}");
    assert_eq!(alerts[0].rule_id, "R2");
    assert_eq!(
        alerts[0].evidence,
        [
            "desa/74.02.05.2001/w-only-in-checkpoint",
            "imigrasi/kanim-kendari/i-b"
        ],
        "the state came from the checkpoint; the warning before it in the stream was not replayed"
    );
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test]
async fn a_new_rule_set_applies_without_restart_and_an_invalid_one_changes_nothing() {
    let hub = Hub::start().await.unwrap();
    let (stop, task) = start(&hub);
    publish(&hub, &warning("w1", "psn_1")).await;
    publish(&hub, &deferred("i1", "psn_1")).await;
    let first = wait_for(&hub, 1).await;
    assert_eq!(first[0].rule_version, "2026.12-1");

    // An invalid rule set in the bucket (bypassing `rules apply`'s check) is refused.
    hub.bus
        .put_rules("version = \"broken\"\n[[rule]]\nid = 3\n")
        .await
        .unwrap();
    // A valid new version: the same rules under a new name.
    let text = timpora_rules::DEFAULT_RULES.replacen("2026.12-1", "2026.11-2", 1);
    let digest = timpora_rules::parse(&text).unwrap().digest;
    hub.bus.put_rules(&text).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = hub.bus.correlator_status().await.unwrap().unwrap();
        if s.digest == digest {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not switched: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.version, "2026.11-2");
    assert!(status.since_sequence >= 2, "{status:?}");

    // The warning is still known to the new set (warmed up on the stream), the old alert is
    // not raised again under the new version, and a new interview raises one new alert.
    publish(&hub, &deferred("i2", "psn_1")).await;
    let alerts = wait_for(&hub, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts = {
        let again = hub.alerts().await.unwrap();
        assert_eq!(again, alerts, "no further alerts");
        again
    };
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[0], first[0]);
    assert_eq!(alerts[1].rule_id, "R2");
    assert_eq!(alerts[1].rule_version, "2026.11-2");
    assert_eq!(
        alerts[1].evidence,
        ["desa/74.02.05.2001/w1", "imigrasi/kanim-kendari/i2"]
    );
    let _ = stop.send(());
    task.await.unwrap();

    // A restart keeps running the applied set.
    let (stop, task) = start(&hub);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = hub.bus.correlator_status().await.unwrap().unwrap();
    assert_eq!(s.version, "2026.11-2");
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_the_bus_refuses_is_kept_until_the_stream_is_back_never_skipped() {
    let hub = Hub::start().await.unwrap();
    let alerts_stream = hub.bus.topology().alerts_stream.clone();
    let (stop, task) = start(&hub);
    // The alerts stream disappears (a misprovisioned cluster), then R2's input arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    hub.bus
        .jetstream()
        .delete_stream(&alerts_stream)
        .await
        .unwrap();
    village_warning_then_interview(&hub, 7).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!task.is_finished(), "the correlator gave up");
    // Provisioned again: the waiting alert is stored, not lost.
    hub.bus.ensure_topology().await.unwrap();
    let alerts = wait_for(&hub, 1).await;
    assert_eq!(alerts[0].rule_id, "R2");
    let _ = stop.send(());
    task.await.unwrap();
}

/// A log that tests can read: every line the subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_logged_as_raised_once_stored_not_at_the_next_checkpoint() {
    let log = Captured::default();
    let writer = log.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter("timpora_correlator=info")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();
    let hub = Hub::start().await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let bus = hub.bus.clone();
    // No checkpoint for an hour: only the alert's own acknowledgement can bring the log line.
    let options = timpora_correlator::Options {
        checkpoint_every: Duration::from_secs(3600),
        ..options()
    };
    let task = tokio::spawn(async move {
        timpora_correlator::run(bus, None, options, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    village_warning_then_interview(&hub, 1).await.unwrap();
    let alert = wait_for(&hub, 1).await.remove(0);
    let stored_at = tokio::time::Instant::now();
    while !log.text().contains("alert raised") {
        assert!(
            stored_at.elapsed() < Duration::from_secs(3),
            "no \"alert raised\" within 3 s of the alert being stored: {}",
            log.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = log
        .text()
        .lines()
        .find(|l| l.contains("alert raised"))
        .unwrap()
        .to_owned();
    assert!(
        line.contains(&alert.id) && line.contains("sequence=1"),
        "{line}"
    );
    tx.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_correlators_as_their_own_nats_user_share_the_parts_and_raise_each_alert_once() {
    let hub = Hub::start().await.unwrap();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for name in ["correlator-a", "correlator-b"] {
        let bus = timpora_bus::Bus::connect(
            hub.nats_config.options(timpora_bus::Identity::Correlator),
            name,
            hub.bus.topology().clone(),
        )
        .await
        .unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        stops.push(tx);
        tasks.push(tokio::spawn(async move {
            let options = timpora_correlator::Options {
                partitions: 2,
                lease: Duration::from_secs(1),
                ..options()
            };
            timpora_correlator::run(
                bus,
                Some(&timpora_testkit::sandbox::quick_rules("1s")),
                options,
                async {
                    let _ = rx.await;
                },
            )
            .await
            .unwrap()
        }));
    }
    // Both parts taken, by two correlators.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let members: HashSet<String> = hub
            .bus
            .shared_entries("status.>")
            .await
            .unwrap()
            .iter()
            .filter_map(|e| timpora_bus::CorrelatorStatus::from_json(&e.value))
            .map(|s| s.member)
            .collect();
        if members.len() == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{members:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    village_warning_then_interview(&hub, 1).await.unwrap();
    victim_repatriated_then_interview(&hub, 2).await.unwrap();
    let alerts = wait_for(&hub, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts_after = hub.alerts().await.unwrap();
    assert_eq!(alerts_after.len(), alerts.len(), "{alerts_after:?}");
    let rules: Vec<&str> = alerts_after.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules.contains(&"R2") && rules.contains(&"R6"), "{rules:?}");
    for stop in stops {
        stop.send(()).unwrap();
    }
    let mut alerts_raised = 0;
    for t in tasks {
        alerts_raised += t.await.unwrap().alerts;
    }
    assert_eq!(alerts_raised, 2, "each alert raised by one of the two");
    // Each left: its parts freed and checkpointed, its membership gone.
    let left = hub.bus.shared_entries("member.>").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
