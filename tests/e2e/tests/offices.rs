//! A provincial office whose link to the centre drops: its leaf node (JetStream in its own
//! domain) keeps accepting and acknowledging its agencies' events while the link is down, and the
//! centre's events stream gathers them when it is back — mirrored, then sourced, by NATS itself.
//! Afterwards every event acknowledged at the office is in the centre's events stream exactly
//! once (cutting and restoring the link again and again does not store any twice), the
//! correlator at the centre raised the alerts they make, and the sealer sealed them. Both servers
//! run secured (users, TLS; the link with mutual TLS and the office's own user).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use timpora_bus::{Bus, Identity, Office, Topology};
use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::event_bus_service_client::EventBusServiceClient;
use timpora_e2e::v1::*;
use timpora_testkit::province::Province;

fn sultra() -> Office {
    Office {
        name: "sultra".into(),
        regions: vec!["74".into()],
    }
}

/// Every agency event stored in `stream` on `bus` (not the correlator's clock ticks):
/// (sequence, Nats-Msg-Id).
async fn stored_ids(bus: &Bus, stream: &str) -> Vec<(u64, String)> {
    let ticks = format!("{}.hub.", bus.topology().subject_prefix);
    let mut s = bus.jetstream().get_stream(stream).await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = s.get_raw_message(seq).await
            && !m.subject.starts_with(&ticks)
        {
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push((seq, id));
        }
    }
    out
}

/// Wait until `stream` on `bus` holds `n` agency events.
async fn until_holds(bus: &Bus, stream: &str, n: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let have = stored_ids(bus, stream).await.len();
        if have >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stream} holds {have} of {n} agency events"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publish an interview event with id `id` at `hub` as Kendari: its acknowledgement.
/// The centre's metrics of the sultra office's mirror: (seconds since contact, messages
/// behind), once `pred` holds of them.
async fn until_metric(centre: &Hub, what: &str, pred: impl Fn(f64, u64) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (_, text) = centre.telemetry_get("/metrics").await.unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}{{office=\"sultra\"}} ")))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        if let (Some(since), Some(lag)) = (
            value("timpora_office_since_contact_seconds"),
            value("timpora_office_mirror_lag_messages"),
        ) && pred(since, lag as u64)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the office's mirror never showed {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn publish(hub: &Hub, id: &str, n: u32) -> PublishAck {
    let mut c = EventBusServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let r = c
        .publish(PublishRequest {
            event: Some(interview_event(id, n)),
        })
        .await
        .unwrap()
        .into_inner();
    r.ack.unwrap()
}

/// Run `f` on a task of its own; its result through the handle.
fn background<F: std::future::Future + Send + 'static>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F::Output: Send,
{
    tokio::spawn(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_keeps_acknowledging_while_cut_off_and_the_centre_gets_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    // A duplicate window of one second: JetStream's own recognition of a repeated id cannot
    // hide a re-sent message, so only the design keeps each event stored once.
    let base = Topology {
        duplicate_window_secs: 1,
        ..Topology::default()
    };
    let province = Province::start(dir.path(), sultra(), base).await.unwrap();
    let centre = Hub::builder()
        .nats(province.centre_nats.clone())
        .topology(province.centre_topology.clone())
        .telemetry()
        .start()
        .await
        .unwrap();
    // The office's gateway pseudonymises with the same key as the centre's, so that the
    // correlator joins its agencies' events with everyone else's.
    let pseudonym = centre.config.pseudonym.clone();
    let office = Hub::builder()
        .nats(province.office_nats.clone())
        .topology(province.office_topology.clone())
        .configure(move |c| c.pseudonym = pseudonym)
        .start()
        .await
        .unwrap();
    let events = province.centre_topology.events_stream.clone();
    let mirror = province.centre_topology.mirror_stream("sultra");
    let office_stream = province.office_topology.events_stream.clone();

    // The centre's correlator and sealer, each as its own NATS user.
    let as_user = |id: Identity| {
        let (nats, topology) = (
            province.centre_nats.clone(),
            province.centre_topology.clone(),
        );
        async move {
            Bus::connect(nats.options(id), "test", topology)
                .await
                .unwrap()
        }
    };
    let correlator_bus = as_user(Identity::Correlator).await;
    let (stop_correlator, correlator_stopped) = tokio::sync::oneshot::channel::<()>();
    let correlator = background(async move {
        let options = timpora_correlator::Options {
            lateness: Duration::from_secs(1),
            tick_every: Duration::from_millis(200),
            ..Default::default()
        };
        timpora_correlator::run(
            correlator_bus,
            Some(&timpora_testkit::sandbox::quick_rules("1s")),
            options,
            async {
                let _ = correlator_stopped.await;
            },
        )
        .await
    });
    let sealer_bus = as_user(Identity::Sealer).await;
    let key = timpora_tlog::Key::generate("sealer").unwrap();
    let (stop_sealer, sealer_stopped) = tokio::sync::oneshot::channel::<()>();
    let sealer = background(async move {
        let options = timpora_sealer::Options {
            deployment: "test".into(),
            key,
            every_messages: 16,
            every: Duration::from_millis(200),
            witnesses: Vec::new(),
            witness_memory: timpora_sealer::WITNESS_MEMORY,
        };
        timpora_sealer::run(sealer_bus, options, async {
            let _ = sealer_stopped.await;
        })
        .await
    });

    let mut office_ids = Vec::new();
    let mut publish_at_office = async |id: String, n: u32| {
        let ack = publish(&office, &id, n).await;
        assert!(!ack.duplicate, "{id}");
        assert_eq!(ack.stream, office_stream, "{id} acknowledged by the office");
        office_ids.push(format!("imigrasi/kanim-kendari/{id}"));
    };

    // Link up: a storyline at the office (R2), and events.
    village_warning(&office, "w-1", 1).await.unwrap();
    publish_at_office("i-1".into(), 1).await;
    for i in 0..20 {
        publish_at_office(format!("o-{i}"), 100 + i).await;
    }
    // The office takes its own province's events only, and says where the others go.
    let mut palu =
        EventBusServiceClient::new(office.as_agency("imigrasi/kanim-palu").await.unwrap());
    let mut elsewhere = interview_event("p-1", 300);
    elsewhere.region = "72.71".into();
    let refused = palu
        .publish(PublishRequest {
            event: Some(elsewhere),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("centre's gateway"),
        "{refused:?}"
    );
    // An event the centre's own gateway takes stays at the centre.
    let ack = publish(&centre, "c-1", 90).await;
    assert_eq!(ack.stream, events);
    until_holds(&centre.bus, &events, 23, Duration::from_secs(20)).await;

    // Cut: the office still acknowledges every event, the centre sees none of them.
    province.link.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = stored_ids(&centre.bus, &events).await.len();
    village_warning(&office, "w-2", 2).await.unwrap();
    for i in 20..80 {
        publish_at_office(format!("o-{i}"), 100 + i).await;
    }
    // Kendari records person 2's interview at the centre while the village's warning about
    // them waits at the cut-off office: the alert can only come once the warning arrives.
    publish(&centre, "i-2", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stored_ids(&centre.bus, &events).await.len(),
        before + 1,
        "nothing crossed a cut link"
    );

    // The centre's dashboard says how long it has not heard from the office.
    until_metric(&centre, "cut off", |since, _| since >= 5.0).await;

    // Restored, then cut and restored again and again while the office publishes: nats-server
    // re-sends sourced messages when a link comes back (2.9), which must not store any twice.
    province.link.restore();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        province.link.cut();
        for i in 0..10 {
            publish_at_office(format!("r{round}-{i}"), 200 + round * 10 + i).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        province.link.restore();
    }
    // Even the office's administrator cannot put an event onto the centre's bus over the link:
    // a subject no stream of the office takes goes nowhere.
    let admin = office.bus.client();
    admin
        .publish("timpora.events.polri.report.31", "forged".into())
        .await
        .unwrap();
    admin.flush().await.unwrap();
    let office_count = office_ids.len();
    let village = ["desa/74.02.05.2001/w-1", "desa/74.02.05.2001/w-2"];
    let expected = office_count + village.len() + 2; // and the centre's c-1, i-2
    until_holds(&centre.bus, &events, expected, Duration::from_secs(60)).await;
    // Linked again: the centre hears from the office and holds all it has.
    until_metric(&centre, "in contact", |since, lag| since < 5.0 && lag == 0).await;
    // Anything re-sent would come after: give it time to show.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stored = stored_ids(&centre.bus, &events).await;
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for (_, id) in &stored {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    for id in office_ids.iter().map(String::as_str).chain(village) {
        assert_eq!(seen.get(id), Some(&1), "{id} is not at the centre");
    }
    assert_eq!(stored.len(), expected, "{stored:?}");
    // The office's events came through the mirror, never over the link as plain messages; the
    // office's stream holds only its own.
    let mirrored = stored_ids(&centre.bus, &mirror).await;
    assert_eq!(mirrored.len(), office_count + village.len());
    let at_office = stored_ids(&office.bus, &office_stream).await;
    assert_eq!(
        at_office, mirrored,
        "the mirror is the office's stream, sequence for sequence"
    );
    assert!(
        at_office
            .iter()
            .all(|(_, id)| !id.ends_with("/c-1") && !id.ends_with("/i-2"))
    );

    // A late retry is a duplicate at the office and at the centre alike.
    assert!(publish(&office, "o-5", 105).await.duplicate);
    assert!(publish(&centre, "o-5", 105).await.duplicate);
    assert!(publish(&centre, "r1-3", 213).await.duplicate);

    // `bus status` at the centre shows the office's mirror and how far behind it is.
    let auditor = as_user(Identity::Auditor).await;
    let status = auditor.status().await.unwrap();
    let m = status.streams.iter().find(|s| s.name == mirror).unwrap();
    let origin = m.mirror.as_ref().unwrap();
    assert_eq!(
        (origin.name.as_str(), origin.lag),
        (office_stream.as_str(), 0)
    );
    assert!(origin.active_ms.is_some());
    let e = status.streams.iter().find(|s| s.name == events).unwrap();
    assert_eq!(e.sources.len(), 1);
    assert_eq!(e.sources[0].name, mirror);

    // The correlator at the centre joined the office's village warnings with Kendari's
    // interviews: one alert for each, the second raised when the warning arrived.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let r2 = loop {
        let alerts = centre.alerts().await.unwrap();
        let r2: Vec<Alert> = alerts.into_iter().filter(|a| a.rule_id == "R2").collect();
        if r2.len() >= 2 || tokio::time::Instant::now() > deadline {
            break r2;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let evidence: Vec<Vec<String>> = r2.iter().map(|a| a.evidence.clone()).collect();
    assert_eq!(
        evidence,
        [
            vec![
                "desa/74.02.05.2001/w-1".to_owned(),
                "imigrasi/kanim-kendari/i-1".to_owned()
            ],
            vec![
                "desa/74.02.05.2001/w-2".to_owned(),
                "imigrasi/kanim-kendari/i-2".to_owned()
            ],
        ],
        "{r2:?}"
    );

    // The sealer sealed every event the centre holds, without a gap.
    let last = stored.last().unwrap().0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while centre
        .bus
        .latest_checkpoint("events")
        .await
        .unwrap()
        .is_none_or(|note| timpora_hub::metrics::checkpoint_size(&note) < last)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not sealed to {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_sealer.send(()).unwrap();
    let sealed = sealer.await.unwrap().unwrap();
    assert!(
        sealed.iter().any(|s| s.size >= last && s.gaps == 0),
        "{sealed:?}"
    );
    stop_correlator.send(()).unwrap();
    correlator.await.unwrap().unwrap();
}

/// What reaches the centre from a leaf node that links with a certificate named `cn`, however
/// that leaf is configured: the subjects a centre subscriber saw while the leaf's client
/// published onto each of `subjects` for a few seconds.
async fn crossing(
    province: &Province,
    dir: &std::path::Path,
    cn: &str,
    subjects: &[&str],
) -> Vec<String> {
    let admin = Bus::connect(
        province.centre_nats.options(Identity::Admin),
        "test",
        province.centre_topology.clone(),
    )
    .await
    .unwrap();
    let mut seen = futures::stream::select_all(
        futures::future::join_all(
            subjects
                .iter()
                .map(|s| admin.client().subscribe(s.to_string())),
        )
        .await
        .into_iter()
        .map(Result::unwrap),
    );
    admin.client().flush().await.unwrap();
    let leaf = province.unguarded_leaf(dir, cn).unwrap();
    let client = async_nats::connect(leaf.url()).await.unwrap();
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < until {
        for s in subjects {
            client
                .publish(s.to_string(), "crossing".into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), seen.next()).await
        {
            got.push(m.subject.to_string());
        }
    }
    got.sort();
    got.dedup();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_office_certificate_links_and_no_record_subject_crosses_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let province = Province::start(dir.path(), sultra(), Topology::default())
        .await
        .unwrap();
    let allowed = "timpora.mirror.sultra.probe";
    let records = [
        "timpora.events.imigrasi.passport_interview.74",
        "timpora.alerts.raised.forged",
        "timpora.alerts.lifecycle.forged",
        "timpora.access.read.forged",
        "$JS.API.STREAM.DELETE.TIMPORA_EVENTS",
    ];
    let subjects: Vec<&str> = records.iter().copied().chain([allowed]).collect();
    // Linked with the office's certificate but none of the office's own refusals: the centre's
    // permissions for the office still let through only what its mirror needs.
    let got = crossing(&province, &dir.path().join("a"), "office-sultra", &subjects).await;
    assert_eq!(
        got,
        [allowed],
        "the link is up and carries only the mirror's subjects"
    );
    // A certificate from the same CA but for no office (an agency's, another name) links as
    // nobody: nothing crosses.
    for (i, cn) in ["office-sulteng", "imigrasi/kanim-kendari"]
        .iter()
        .enumerate()
    {
        let got = crossing(&province, &dir.path().join(format!("b{i}")), cn, &subjects).await;
        assert!(got.is_empty(), "{cn}: {got:?}");
    }
}
