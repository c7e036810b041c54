//! The sealer on a real JetStream: every stored message of a stream becomes a leaf of its log,
//! in order; the published checkpoints are signed, each extends the one before, and anyone can
//! recompute the root from the stream as stored; a sequence missing when sealed is a gap leaf;
//! a restart continues the log from its tiles, and refuses to when the tiles were altered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use timpora_bus::{Bus, Topology};
use timpora_natsd::NatsServer;
use timpora_sealer::{Options, Sealed};
use timpora_tlog::{Key, Leaf, Policy, Tree};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type Running = (
    oneshot::Sender<()>,
    JoinHandle<Result<Vec<Sealed>, timpora_sealer::Error>>,
);

fn options(key: &Key) -> Options {
    Options {
        deployment: "test".into(),
        key: key.clone(),
        every_messages: 7,
        every: Duration::from_millis(200),
        witnesses: Vec::new(),
        witness_memory: timpora_sealer::WITNESS_MEMORY,
    }
}

fn start(bus: &Bus, key: &Key) -> Running {
    let (tx, rx) = oneshot::channel::<()>();
    let (bus, options) = (bus.clone(), options(key));
    let task = tokio::spawn(async move {
        timpora_sealer::run(bus, options, async {
            let _ = rx.await;
        })
        .await
    });
    (tx, task)
}

async fn stop(r: Running) -> Vec<Sealed> {
    r.0.send(()).unwrap();
    r.1.await.unwrap().unwrap()
}

/// Publish `n` messages to the events stream, numbered from `from`.
async fn publish(bus: &Bus, from: usize, n: usize) {
    for i in from..from + n {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("test/{i}").as_str());
        h.insert("Timpora-Type", "timpora.test.v1");
        bus.jetstream()
            .publish_with_headers(
                format!("timpora.events.test.thing.74.{}", i % 3),
                h,
                Bytes::from(format!("payload {i}")),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// The latest checkpoint of `log`, once it covers `size` leaves.
async fn checkpoint_at(bus: &Bus, policy: &Policy, log: &str, size: u64) -> timpora_tlog::Verified {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(note) = bus.latest_checkpoint(log).await.unwrap() {
            let v = policy.verify(&note).unwrap();
            if v.checkpoint.size() >= size {
                return v;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint of {log} at {size}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tree an auditor recomputes from the stream as stored, with gap leaves for what is not
/// there, up to `size` leaves.
async fn recompute(bus: &Bus, stream: &str, size: u64) -> Tree {
    let mut tree = Tree::new();
    let mut messages = bus.read_stored(stream, 1).await.unwrap();
    while tree.size() < size {
        let m = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        while tree.size() + 1 < m.sequence && tree.size() < size {
            tree.push(Leaf::gap(stream, tree.size() + 1).hash())
                .unwrap();
        }
        if tree.size() == size {
            break;
        }
        let leaf = timpora_sealer::leaf(&m);
        tree.push(leaf.hash()).unwrap();
    }
    tree
}

/// The hub's streams as an administrator could have made them, with deletion allowed (NATS 2.9
/// refuses to lift deny-delete from a stream that has it), so that a test can delete a message.
async fn topology_allowing_deletes(bus: &Bus) {
    let t = bus.topology();
    for mut c in [
        t.events_stream_config(),
        t.alerts_stream_config(),
        t.access_stream_config(),
    ] {
        c.deny_delete = false;
        bus.jetstream().create_stream(c).await.unwrap();
    }
    bus.jetstream()
        .create_stream(t.tlog_stream_config())
        .await
        .unwrap();
}

/// Delete one message, as only an administrator could.
async fn admin_delete(bus: &Bus, stream: &str, sequence: u64) {
    let s = bus.jetstream().get_stream(stream).await.unwrap();
    assert!(s.delete_message(sequence).await.unwrap());
}

#[tokio::test]
async fn every_stored_message_is_sealed_in_order_and_anyone_can_recompute_the_root() {
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), "sealer-test", Topology::default())
        .await
        .unwrap();
    topology_allowing_deletes(&bus).await;
    let key = Key::generate("sealer").unwrap();
    let origin = timpora_sealer::origin("test", "events");
    let policy = Policy::new(&key.renamed(&origin).unwrap().log_verifier(), &[], 0).unwrap();

    publish(&bus, 0, 20).await;
    let sealer = start(&bus, &key);
    let first = checkpoint_at(&bus, &policy, "events", 20).await;
    assert_eq!(first.checkpoint.origin(), "timpora.test/events");
    assert_eq!(first.checkpoint.size(), 20);
    let stream = &Topology::default().events_stream;
    assert_eq!(
        recompute(&bus, stream, 20).await.root(),
        *first.checkpoint.hash()
    );

    // More messages while it runs: a later checkpoint that extends the first.
    publish(&bus, 20, 15).await;
    let later = checkpoint_at(&bus, &policy, "events", 35).await;
    let tree = recompute(&bus, stream, 35).await;
    assert_eq!(tree.root(), *later.checkpoint.hash());
    let proof = tree.consistency(20, 35).unwrap();
    timpora_tlog::verify_consistency(&proof, 20, *first.checkpoint.hash(), 35, tree.root())
        .unwrap();
    // Every checkpoint published is in the checkpoints stream, each extending the one before.
    let all = bus.checkpoints("events").await.unwrap();
    assert!(all.len() >= 2, "{} checkpoints", all.len());
    let sizes: Vec<u64> = all
        .iter()
        .map(|n| policy.verify(n).unwrap().checkpoint.size())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    for n in &all {
        let cp = policy.verify(n).unwrap().checkpoint;
        assert_eq!(tree.root_at(cp.size()).unwrap(), *cp.hash());
    }
    // Stopping publishes what was sealed; the alerts and access logs are empty.
    let sealed = stop(sealer).await;
    assert_eq!(
        sealed[0],
        Sealed {
            size: 35,
            gaps: 0,
            checkpoint: 35
        }
    );
    assert_eq!(sealed[1].size, 0);
    // An empty log has a signed checkpoint of the empty tree.
    let alerts_key = key
        .renamed(&timpora_sealer::origin("test", "alerts"))
        .unwrap();
    let alerts = Policy::new(&alerts_key.log_verifier(), &[], 0).unwrap();
    let empty = bus.latest_checkpoint("alerts").await.unwrap().unwrap();
    let empty = alerts.verify(&empty).unwrap().checkpoint;
    assert_eq!((empty.size(), *empty.hash()), (0, Tree::new().root()));

    // A message deleted before the sealer saw it is a gap leaf, and a restart continues the log.
    publish(&bus, 35, 3).await;
    admin_delete(&bus, stream, 37).await;
    let sealer = start(&bus, &key);
    let cp = checkpoint_at(&bus, &policy, "events", 38).await;
    let tree = recompute(&bus, stream, 38).await;
    assert_eq!(tree.root(), *cp.checkpoint.hash());
    let proof = tree.consistency(35, 38).unwrap();
    timpora_tlog::verify_consistency(&proof, 35, *later.checkpoint.hash(), 38, tree.root())
        .unwrap();
    let sealed = stop(sealer).await;
    assert_eq!(
        sealed[0],
        Sealed {
            size: 38,
            gaps: 1,
            checkpoint: 38
        }
    );
    // The gap leaf is in the tree where sequence 37 would be.
    assert_eq!(tree.leaf(36).unwrap(), Leaf::gap(stream, 37).hash());

    // Tiles altered behind the sealer's back: it refuses to continue the log.
    let mut tile = bus
        .get_tile("events", "tile/0/000.p/38")
        .await
        .unwrap()
        .unwrap();
    tile[0] ^= 1;
    bus.put_tile("events", "tile/0/000.p/38", &tile)
        .await
        .unwrap();
    let (_tx, task) = start(&bus, &key);
    let err = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, timpora_sealer::Error::Tampered { log, .. } if log == "events"),
        "{err}"
    );
}
