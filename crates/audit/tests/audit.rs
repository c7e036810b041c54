//! What an auditor checks alone, on a real JetStream with the sealer and a witness: an intact
//! log; a message deleted, or overwritten on disk, named by sequence; a checkpoint without the
//! cosignatures the policy needs; a range across a retention cut; proof files checked offline,
//! and refused when one byte changes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use timpora_audit::{AuditPolicy, Finding, Report};
use timpora_bus::{Bus, Topology};
use timpora_natsd::NatsServer;
use timpora_sealer::Options;
use timpora_tlog::Key;
use timpora_witness::Witness;
use tokio::sync::oneshot;

struct Logs {
    bus: Bus,
    options: Options,
    policy: AuditPolicy,
    _state: tempfile::TempDir,
    witness: (
        oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), timpora_witness::Error>>,
    ),
}

/// The hub's streams as an administrator could make them (deletion allowed, and the events
/// stream limited to `max_messages` when given), a witness serving, and the auditor's policy.
async fn logs(nats: &NatsServer, max_messages: Option<i64>) -> Logs {
    let bus = Bus::connect(&nats.url(), "audit-test", Topology::default())
        .await
        .unwrap();
    let t = bus.topology().clone();
    for mut c in [
        t.events_stream_config(),
        t.alerts_stream_config(),
        t.access_stream_config(),
    ] {
        c.deny_delete = false;
        if c.name == t.events_stream {
            c.max_messages = max_messages.unwrap_or(-1);
        }
        bus.jetstream().create_stream(c).await.unwrap();
    }
    bus.jetstream()
        .create_stream(t.tlog_stream_config())
        .await
        .unwrap();
    bus.jetstream()
        .create_stream(t.holds_stream_config())
        .await
        .unwrap();
    let sealer = Key::generate("sealer").unwrap();
    let wkey = Key::generate("kejaksaan.test-witness").unwrap();
    let mut keys = BTreeMap::new();
    for log in ["events", "alerts", "access"] {
        let origin = timpora_sealer::origin("test", log);
        keys.insert(
            log.to_owned(),
            sealer.renamed(&origin).unwrap().log_verifier(),
        );
    }
    let state = tempfile::tempdir().unwrap();
    let logs: Vec<String> = keys.values().cloned().collect();
    let witness = Witness::open(wkey.clone(), &logs, state.path()).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(timpora_witness::serve(
        bus.client().clone(),
        witness,
        async {
            let _ = rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    Logs {
        options: Options {
            deployment: "test".into(),
            key: sealer,
            every_messages: 1000,
            every: Duration::from_millis(100),
            witnesses: vec![wkey.witness_verifier()],
            witness_memory: timpora_sealer::WITNESS_MEMORY,
        },
        policy: AuditPolicy {
            quorum: 1,
            witnesses: vec![wkey.witness_verifier()],
            logs: keys,
        },
        bus,
        _state: state,
        witness: (tx, served),
    }
}

impl Logs {
    async fn publish(&self, from: usize, n: usize) {
        for i in from..from + n {
            self.bus
                .jetstream()
                .publish(
                    format!("timpora.events.test.thing.{}", i % 4),
                    Bytes::from(format!("payload {i:04}")),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }

    /// Run the sealer until the events log's latest checkpoint covers `size` and is cosigned.
    async fn seal_to(&self, size: u64) {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(timpora_sealer::run(
            self.bus.clone(),
            self.options.clone(),
            async {
                let _ = rx.await;
            },
        ));
        let policy = self.policy.policy("events").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(note) = self.bus.latest_checkpoint("events").await.unwrap()
                && policy
                    .verify(&note)
                    .is_ok_and(|v| v.checkpoint.size() >= size)
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no cosigned checkpoint at {size}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tx.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    async fn verify(&self, policy: &AuditPolicy, from: u64) -> Report {
        timpora_audit::verify_log(&self.bus, policy, "events", from, None, &mut |_, _| {})
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.witness.0.send(()).unwrap();
        self.witness.1.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn an_intact_log_verifies_and_each_alteration_is_named_by_sequence() {
    let mut nats = NatsServer::start().unwrap();
    let l = logs(&nats, None).await;
    l.publish(0, 30).await;
    l.seal_to(30).await;

    let r = l.verify(&l.policy, 1).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!(
        (r.checkpoint_size, r.checked, r.from, r.to),
        (30, 30, 1, 30)
    );
    assert_eq!(r.cosigned_by, ["kejaksaan.test-witness"]);

    // A proof file for one record, checked offline; one changed byte anywhere fails it.
    let file = timpora_audit::prove(&l.bus, &l.policy, "events", 7)
        .await
        .unwrap();
    let proven = timpora_audit::verify_proof(&file, &l.policy).unwrap();
    assert_eq!(proven.record.sequence, 7);
    assert_eq!(proven.tree_size, 30);
    assert_eq!(proven.cosigned_by, ["kejaksaan.test-witness"]);
    for at in [file.len() / 3, file.len() / 2, file.len() - 40, 1] {
        let mut bad = file.clone();
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        assert!(
            timpora_audit::verify_proof(&bad, &l.policy).is_err(),
            "byte {at} changed"
        );
    }
    // The payload changed, the file re-written canonically: the leaf no longer leads to the root.
    let text = String::from_utf8(file.clone()).unwrap();
    let forged = text.replacen(
        "\"payload\": \"cGF5bG9hZCAwMDA2\"",
        "\"payload\": \"cGF5bG9hZCAwMDA3\"",
        1,
    );
    assert_ne!(forged, text, "the record's payload is in the file");
    let err = timpora_audit::verify_proof(forged.as_bytes(), &l.policy).unwrap_err();
    assert!(err.to_string().contains("inclusion proof"), "{err}");

    // A policy that needs a witness that did not cosign: the checkpoint is refused.
    let other = Key::generate("inspektorat.test-witness").unwrap();
    let strict = AuditPolicy {
        witnesses: vec![other.witness_verifier()],
        ..l.policy.clone()
    };
    let r = l.verify(&strict, 1).await;
    assert!(!r.intact());
    assert!(
        matches!(&r.findings[0], Finding::CheckpointRefused { size: 30, why } if why.contains("cosignatures")),
        "{:?}",
        r.findings
    );
    assert!(timpora_audit::verify_proof(&file, &strict).is_err());

    // A message deleted through the JetStream API.
    let stream = l
        .bus
        .jetstream()
        .get_stream("TIMPORA_EVENTS")
        .await
        .unwrap();
    assert!(stream.delete_message(12).await.unwrap());
    let r = l.verify(&l.policy, 1).await;
    assert_eq!(r.findings, [Finding::Removed { sequence: 12 }]);
    // Forged back by republishing with a crafted header set (the original's id, a sequence
    // header claiming 12): it is stored at a new sequence, and sequence 12 is still gone.
    let mut crafted = async_nats::HeaderMap::new();
    crafted.insert("Nats-Sequence", "12");
    crafted.insert("Timpora-Source", "imigrasi/kanim-kendari");
    l.bus
        .jetstream()
        .publish_with_headers(
            "timpora.events.test.thing.3",
            crafted,
            Bytes::from("payload 0011"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let r = l.verify(&l.policy, 1).await;
    assert_eq!(r.findings, [Finding::Removed { sequence: 12 }]);
    assert_eq!(r.unsealed, 1, "{r:?}");
    // A range after it is intact.
    let r = l.verify(&l.policy, 13).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!(r.checked, 18);
    // The proof file made before still proves sequence 7, offline.
    timpora_audit::verify_proof(&file, &l.policy).unwrap();

    // A message overwritten on disk while the server was down.
    let bus_url = nats.url();
    let policy = l.policy.clone();
    l.stop().await;
    nats.stop();
    let blk = nats
        .store_dir()
        .join("jetstream/$G/streams/TIMPORA_EVENTS/msgs/1.blk");
    let mut bytes = std::fs::read(&blk).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"payload 0020")
        .expect("the stored payload is on disk");
    bytes[at + 11] = b'9';
    std::fs::write(&blk, bytes).unwrap();
    nats.restart().unwrap();
    let bus = Bus::connect(&bus_url, "audit-test-2", Topology::default())
        .await
        .unwrap();
    let r = timpora_audit::verify_log(&bus, &policy, "events", 13, None, &mut |_, _| {})
        .await
        .unwrap();
    // NATS checks each stored record's hash: the changed one is dropped when the store is
    // recovered (with what followed it in the block), so the first finding is that it is gone.
    assert!(
        matches!(
            r.findings[..],
            [Finding::Altered { sequence: 21 }] | [Finding::Removed { sequence: 21 }]
        ),
        "{:?}",
        r.findings
    );
}

#[tokio::test]
async fn a_range_across_a_retention_cut_verifies_and_old_proofs_still_hold() {
    let nats = NatsServer::start().unwrap();
    // The events stream keeps its last 25 messages.
    let l = logs(&nats, Some(25)).await;
    l.publish(0, 20).await;
    l.seal_to(20).await;
    let old = timpora_audit::prove(&l.bus, &l.policy, "events", 3)
        .await
        .unwrap();
    l.publish(20, 10).await;
    l.seal_to(30).await;
    // Sequences 1-5 are gone by the stream's limits; the log covers them.
    let r = l.verify(&l.policy, 1).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!((r.retention_cut, r.checked, r.checkpoint_size), (5, 30, 30));
    // A record gone by retention cannot be proved anew, but its proof still holds offline.
    assert!(
        timpora_audit::prove(&l.bus, &l.policy, "events", 3)
            .await
            .is_err()
    );
    let proven = timpora_audit::verify_proof(&old, &l.policy).unwrap();
    assert_eq!((proven.record.sequence, proven.tree_size), (3, 20));

    // Kept hashes altered: said, and since the stream no longer holds what the retention cut
    // removed, where the log differs cannot be said from the stream alone.
    let mut tile = l
        .bus
        .get_tile("events", "tile/0/000.p/30")
        .await
        .unwrap()
        .unwrap();
    tile[40] ^= 1;
    l.bus
        .put_tile("events", "tile/0/000.p/30", &tile)
        .await
        .unwrap();
    let r = l.verify(&l.policy, 1).await;
    assert_eq!(r.findings, [Finding::TilesAltered, Finding::Unlocated]);
    l.stop().await;
}

#[tokio::test]
async fn a_replay_is_checked_against_the_log_record_by_record() {
    use futures::StreamExt;
    let nats = NatsServer::start().unwrap();
    let l = logs(&nats, None).await;
    l.publish(0, 10).await;
    // Sequence 4 deleted before it was sealed: the log holds a gap leaf for it.
    let stream = l
        .bus
        .jetstream()
        .get_stream("TIMPORA_EVENTS")
        .await
        .unwrap();
    assert!(stream.delete_message(4).await.unwrap());
    l.publish(10, 5).await;
    l.seal_to(15).await;

    // The replay as a file would hold it: each record through its JSON form.
    let mut messages = l.bus.read_stored("TIMPORA_EVENTS", 1).await.unwrap();
    let mut records = Vec::new();
    while records.len() < 14 {
        let m = messages.next().await.unwrap().unwrap();
        records.push(timpora_audit::record_from_json(&timpora_audit::record_json(&m)).unwrap());
    }
    let check = |records: Vec<timpora_bus::StoredMessage>| {
        let (bus, policy) = (l.bus.clone(), l.policy.clone());
        async move {
            let s = futures::stream::iter(records.into_iter().map(Ok)).boxed();
            timpora_audit::verify_replay(&bus, &policy, "events", 1, None, s, &mut |_, _| {})
                .await
                .unwrap()
        }
    };
    let r = check(records.clone()).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!((r.checked, r.gaps), (15, 1));
    // With no network at all: the witnessed checkpoint and the replay alone.
    let note = l.bus.latest_checkpoint("events").await.unwrap().unwrap();
    let offline = |records: Vec<timpora_bus::StoredMessage>| {
        let (policy, note) = (l.policy.clone(), note.clone());
        async move {
            let s = futures::stream::iter(records.into_iter().map(Ok)).boxed();
            timpora_audit::verify_offline(&policy, "events", &note, s)
                .await
                .unwrap()
        }
    };
    let r = offline(records.clone()).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!((r.checked, r.gaps, r.cosigned_by.len()), (15, 1, 1));
    let mut changed = records.clone();
    changed[0].subject = "timpora.events.forged".into();
    assert_eq!(offline(changed).await.findings, [Finding::Unlocated]);

    // A record where the log sealed none.
    let mut inserted = records.clone();
    let mut forged = records[3].clone();
    forged.sequence = 4;
    inserted.insert(3, forged);
    assert_eq!(
        check(inserted).await.findings,
        [Finding::Inserted { sequence: 4 }]
    );
    // A record changed.
    let mut altered = records.clone();
    let i = altered.iter().position(|m| m.sequence == 7).unwrap();
    altered[i].payload = bytes::Bytes::from_static(b"payload 9999");
    assert_eq!(
        check(altered).await.findings,
        [Finding::Altered { sequence: 7 }]
    );
    // A record left out.
    let removed: Vec<_> = records
        .iter()
        .filter(|m| m.sequence != 9)
        .cloned()
        .collect();
    assert_eq!(
        check(removed).await.findings,
        [Finding::Removed { sequence: 9 }]
    );
    l.stop().await;
}

/// Publish event `i` (a bare event mentioning `token`) to the events stream.
async fn publish_event(bus: &Bus, i: usize, token: &str) {
    use prost::Message;
    use timpora_proto::v1::{EntityRef, Event};
    let ev = Event {
        id: format!("e-{i}"),
        source: "imigrasi/kanim-kendari".into(),
        r#type: "timpora.imigrasi.passport_interview.v1".into(),
        entities: vec![EntityRef {
            id: token.into(),
            role: "applicant".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    bus.jetstream()
        .publish(
            format!("timpora.events.imigrasi.passport_interview.74.{i}"),
            ev.encode_to_vec().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

fn hold(id: &str, token: &str) -> timpora_bus::LegalHold {
    timpora_bus::LegalHold {
        id: id.into(),
        token: token.into(),
        reason: "court order (test)".into(),
        by: "audit/inspektorat".into(),
        placed_at: "2026-12-02T00:00:00Z".into(),
        released_at: None,
    }
}

#[tokio::test]
async fn a_legal_hold_keeps_its_events_past_retention_and_they_still_verify() {
    let nats = NatsServer::start().unwrap();
    // The events stream keeps its last 25 messages.
    let l = logs(&nats, Some(25)).await;
    // Sequences 2 and 3 mention the held person, 5 another held later.
    for i in 1..=10 {
        let token = match i {
            2 | 3 => "psn_held",
            5 => "psn_later",
            _ => "psn_other",
        };
        publish_event(&l.bus, i, token).await;
    }
    // A hold placed before sealing: its events are kept as they are sealed.
    l.bus.put_hold(&hold("hold_1", "psn_held")).await.unwrap();
    l.seal_to(10).await;
    let kept: Vec<u64> = l.bus.held().await.unwrap().keys().copied().collect();
    assert_eq!(kept, [2, 3]);
    // A hold placed while the sealer runs: what is already stored is found and kept.
    let (tx, rx) = oneshot::channel::<()>();
    let running = tokio::spawn(timpora_sealer::run(
        l.bus.clone(),
        l.options.clone(),
        async {
            let _ = rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    l.bus.put_hold(&hold("hold_2", "psn_later")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !l.bus.held().await.unwrap().contains_key(&5) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sequence 5 not kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tx.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(l.bus.holds().await.unwrap().len(), 2);

    // Retention takes sequences 1-5; the held ones stay verifiable and provable.
    for i in 11..=30 {
        publish_event(&l.bus, i, "psn_other").await;
    }
    l.seal_to(30).await;
    assert_eq!(
        l.bus.stream_bounds("TIMPORA_EVENTS").await.unwrap().first,
        6
    );
    let r = l.verify(&l.policy, 1).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!((r.held, r.retention_cut, r.checked), (3, 2, 30));
    let proof = timpora_audit::prove(&l.bus, &l.policy, "events", 3)
        .await
        .unwrap();
    assert_eq!(
        timpora_audit::verify_proof(&proof, &l.policy)
            .unwrap()
            .record
            .sequence,
        3
    );
    assert!(
        timpora_audit::prove(&l.bus, &l.policy, "events", 4)
            .await
            .is_err()
    );
    l.stop().await;
}
