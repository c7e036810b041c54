//! The sealer with a witness on a real JetStream: checkpoints carry the witness's cosignature,
//! a policy that needs it accepts them and one that needs a witness that did not cosign does
//! not; a forked log (the same sealer key over another history) is refused by the witness, which
//! keeps both checkpoints as evidence.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use bytes::Bytes;
use timpora_bus::{Bus, Topology};
use timpora_natsd::NatsServer;
use timpora_sealer::Options;
use timpora_tlog::{ErrorKind, Key, Policy};
use timpora_witness::Witness;
use tokio::sync::oneshot;

async fn hub(nats: &NatsServer) -> Bus {
    let bus = Bus::connect(&nats.url(), "witness-test", Topology::default())
        .await
        .unwrap();
    bus.ensure_topology().await.unwrap();
    bus
}

async fn publish(bus: &Bus, n: usize, tag: &str) {
    for i in 0..n {
        bus.jetstream()
            .publish(
                format!("timpora.events.test.thing.{i}"),
                Bytes::from(format!("{tag} {i}")),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Run the sealer until its latest events checkpoint covers `size`; that checkpoint's note.
async fn seal_to(bus: &Bus, options: &Options, size: u64) -> Vec<u8> {
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(timpora_sealer::run(bus.clone(), options.clone(), async {
        let _ = rx.await;
    }));
    let own = Policy::new(
        &options
            .key
            .renamed(&options.origin("events"))
            .unwrap()
            .log_verifier(),
        &[],
        0,
    )
    .unwrap();
    let note = checkpoint_at(bus, &own, size, |_| true).await;
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    note
}

#[tokio::test]
async fn checkpoints_carry_the_witness_cosignature_and_a_fork_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let sealer = Key::generate("sealer").unwrap();
    let wkey = Key::generate("kejaksaan.test-witness").unwrap();
    let deployment = "test";
    let logs: Vec<String> = ["events", "alerts", "access"]
        .iter()
        .map(|l| {
            sealer
                .renamed(&timpora_sealer::origin(deployment, l))
                .unwrap()
                .log_verifier()
        })
        .collect();
    let options = Options {
        deployment: deployment.into(),
        key: sealer.clone(),
        every_messages: 5,
        every: Duration::from_millis(200),
        witnesses: vec![wkey.witness_verifier()],
        witness_memory: timpora_sealer::WITNESS_MEMORY,
    };
    let policy = Policy::new(&logs[0], &[wkey.witness_verifier()], 1).unwrap();

    // The witness runs on the hub's NATS, as another agency's service would.
    let nats = NatsServer::start().unwrap();
    let bus = hub(&nats).await;
    let (wstop, wrx) = oneshot::channel::<()>();
    let witness = Witness::open(wkey.clone(), &logs, state.path()).unwrap();
    let client = bus.client().clone();
    let served = tokio::spawn(timpora_witness::serve(client, witness, async {
        let _ = wrx.await;
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;

    publish(&bus, 12, "a").await;
    let note = seal_to(&bus, &options, 12).await;
    let v = policy.verify(&note).unwrap();
    assert_eq!(v.cosignatures.len(), 1);
    assert_eq!(v.cosignatures[0].witness, "kejaksaan.test-witness");
    // A policy that needs a witness that did not cosign refuses the checkpoint.
    let other = Key::generate("inspektorat.test-witness").unwrap();
    let strict = Policy::new(&logs[0], &[other.witness_verifier()], 1).unwrap();
    assert_eq!(
        strict.verify(&note).unwrap_err().kind(),
        ErrorKind::Unwitnessed
    );
    // Every checkpoint in the stream after the first carries it too.
    for n in bus.checkpoints("events").await.unwrap() {
        assert_eq!(policy.verify(&n).unwrap().cosignatures.len(), 1);
    }

    // The same sealer key over another history (a second store: a rewritten log) with more
    // messages: the witness, which cosigned size 12 of the first, refuses it and keeps both.
    let nats2 = NatsServer::start().unwrap();
    let bus2 = hub(&nats2).await;
    let (wstop2, wrx2) = oneshot::channel::<()>();
    let witness = Witness::open(wkey.clone(), &logs, state.path()).unwrap();
    assert_eq!(witness.last_size("timpora.test/events"), Some(12));
    let served2 = tokio::spawn(timpora_witness::serve(
        bus2.client().clone(),
        witness,
        async {
            let _ = wrx2.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    publish(&bus2, 15, "b").await;
    let forked = seal_to(&bus2, &options, 15).await;
    // Signed by the sealer, but with no cosignature: it fails the policy.
    assert_eq!(
        policy.verify(&forked).unwrap_err().kind(),
        ErrorKind::Unwitnessed
    );
    assert!(policy.with_quorum(0).verify(&forked).is_ok());
    let evidence: Vec<_> = std::fs::read_dir(state.path().join("forks"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(!evidence.is_empty(), "no fork evidence kept");
    assert!(
        evidence[0].contains("timpora.test/events\n12\n"),
        "{}",
        evidence[0]
    );
    wstop.send(()).unwrap();
    wstop2.send(()).unwrap();
    served.await.unwrap().unwrap();
    served2.await.unwrap().unwrap();
}

/// The latest events checkpoint once it covers `size` and `done` holds for it.
async fn checkpoint_at(
    bus: &Bus,
    own: &Policy,
    size: u64,
    done: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(note) = bus.latest_checkpoint("events").await.unwrap()
            && own.verify(&note).unwrap().checkpoint.size() >= size
            && done(&note)
        {
            return note;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such checkpoint at {size}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_witness_back_after_the_sealer_forgot_its_size_cosigns_with_a_proof_from_the_tiles() {
    let state = tempfile::tempdir().unwrap();
    let sealer = Key::generate("sealer").unwrap();
    let wkey = Key::generate("kejaksaan.test-witness").unwrap();
    let logs: Vec<String> = ["events", "alerts", "access"]
        .iter()
        .map(|l| {
            sealer
                .renamed(&timpora_sealer::origin("test", l))
                .unwrap()
                .log_verifier()
        })
        .collect();
    // Nothing kept in memory for a witness that is behind: its proof must come from the tiles.
    let options = Options {
        deployment: "test".into(),
        key: sealer.clone(),
        every_messages: 100,
        every: Duration::from_millis(200),
        witnesses: vec![wkey.witness_verifier()],
        witness_memory: 0,
    };
    let own = Policy::new(&logs[0], &[], 0).unwrap();
    let policy = Policy::new(&logs[0], &[wkey.witness_verifier()], 1).unwrap();
    let cosigned = |note: &[u8]| policy.verify(note).is_ok();
    let nats = NatsServer::start().unwrap();
    let bus = hub(&nats).await;
    let (stop, rx) = oneshot::channel::<()>();
    let sealing = tokio::spawn(timpora_sealer::run(bus.clone(), options.clone(), async {
        let _ = rx.await;
    }));
    let serve = |bus: &Bus| {
        let (tx, rx) = oneshot::channel::<()>();
        let witness = Witness::open(wkey.clone(), &logs, state.path()).unwrap();
        let served = tokio::spawn(timpora_witness::serve(
            bus.client().clone(),
            witness,
            async {
                let _ = rx.await;
            },
        ));
        (tx, served)
    };

    let (wstop, served) = serve(&bus);
    tokio::time::sleep(Duration::from_millis(100)).await;
    publish(&bus, 20, "a").await;
    checkpoint_at(&bus, &own, 20, cosigned).await;
    wstop.send(()).unwrap();
    served.await.unwrap().unwrap();

    // Away while the log grows by three tiles: checkpoints go on, uncosigned, and the sealer
    // lets the lower hashes of the stored tiles go.
    publish(&bus, 800, "b").await;
    let away = checkpoint_at(&bus, &own, 820, |_| true).await;
    assert!(
        policy.verify(&away).is_err(),
        "cosigned by a stopped witness"
    );

    // Back: it holds size 20, which the sealer no longer has in memory.
    let (wstop, served) = serve(&bus);
    tokio::time::sleep(Duration::from_millis(100)).await;
    publish(&bus, 5, "c").await;
    let back = checkpoint_at(&bus, &own, 825, cosigned).await;
    assert_eq!(policy.verify(&back).unwrap().cosignatures.len(), 1);
    wstop.send(()).unwrap();
    served.await.unwrap().unwrap();
    stop.send(()).unwrap();
    sealing.await.unwrap().unwrap();
}
