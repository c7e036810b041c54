#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use super::*;
use timpora_tlog::{Tree, checkpoint, sign};

const ORIGIN: &str = "timpora.test/events";

fn tree(leaves: u64) -> Tree {
    let mut t = Tree::new();
    for i in 0..leaves {
        t.push(timpora_tlog::Leaf::gap(ORIGIN, i + 1).hash())
            .unwrap();
    }
    t
}

fn note(t: &Tree, size: u64, log: &Key) -> Vec<u8> {
    sign(
        &checkpoint(ORIGIN, size, t.root_at(size).unwrap()).unwrap(),
        log,
    )
    .unwrap()
}

fn request(t: &Tree, old: u64, size: u64, log: &Key) -> Vec<u8> {
    Request {
        old,
        proof: t.consistency(old, size).unwrap(),
        note: note(t, size, log),
    }
    .encode()
}

#[test]
fn it_cosigns_extensions_only_and_keeps_a_fork_as_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let log = Key::generate(ORIGIN).unwrap();
    let wkey = Key::generate("kejaksaan.test").unwrap();
    let mut w = Witness::open(wkey.clone(), &[log.log_verifier()], dir.path()).unwrap();
    let t = tree(12);

    // The first checkpoint: from nothing.
    let line = w.add_checkpoint(&request(&t, 0, 5, &log), 1000).unwrap();
    let cosigned = [note(&t, 5, &log), line.into_bytes()].concat();
    let policy = Policy::new(&log.log_verifier(), &[wkey.witness_verifier()], 1).unwrap();
    let v = policy.verify(&cosigned).unwrap();
    assert_eq!(v.cosignatures[0].time, 1000);
    assert_eq!(w.last_size(ORIGIN), Some(5));

    // A sender that believes the witness has another size is told the right one.
    assert_eq!(
        w.add_checkpoint(&request(&t, 0, 9, &log), 1001),
        Err(Refusal::Conflict(5))
    );
    // An extension with its proof: cosigned.
    w.add_checkpoint(&request(&t, 5, 9, &log), 1002).unwrap();
    assert_eq!(w.last_size(ORIGIN), Some(9));
    // The same checkpoint again: cosigned again, nothing changes.
    w.add_checkpoint(&request(&t, 9, 9, &log), 1003).unwrap();

    // A wrong proof is refused.
    let mut bad = Request::parse(&request(&t, 9, 12, &log)).unwrap();
    bad.proof[0].0[0] ^= 1;
    assert!(matches!(
        w.add_checkpoint(&bad.encode(), 1004),
        Err(Refusal::NotConsistent(_))
    ));

    // A forked log: validly signed, but leaf 6 differs. Refused, and both notes kept.
    let mut forked = tree(8);
    forked
        .push(timpora_tlog::Leaf::gap("other", 9).hash())
        .unwrap();
    for i in 9..12u64 {
        forked
            .push(timpora_tlog::Leaf::gap(ORIGIN, i + 1).hash())
            .unwrap();
    }
    let fork = Request {
        old: 9,
        proof: forked.consistency(9, 12).unwrap(),
        note: note(&forked, 12, &log),
    };
    assert!(matches!(
        w.add_checkpoint(&fork.encode(), 1005),
        Err(Refusal::NotConsistent(_))
    ));
    let kept = std::fs::read_dir(dir.path().join("forks")).unwrap().count();
    assert_eq!(kept, 1);
    assert_eq!(w.last_size(ORIGIN), Some(9));

    // A log it does not witness, or a checkpoint not signed by the log: forbidden.
    let other = Key::generate(ORIGIN).unwrap();
    assert!(matches!(
        w.add_checkpoint(&request(&t, 9, 12, &other), 1006),
        Err(Refusal::Forbidden(_))
    ));
    assert!(matches!(
        w.add_checkpoint(b"old x\n\nnothing", 1007),
        Err(Refusal::Malformed(_))
    ));
    assert!(matches!(
        w.add_checkpoint(b"", 1007),
        Err(Refusal::Malformed(_))
    ));

    // What it cosigned survives a restart.
    let w = Witness::open(wkey, &[log.log_verifier()], dir.path()).unwrap();
    assert_eq!(w.last_size(ORIGIN), Some(9));
}

#[test]
fn subjects_are_one_token_per_witness() {
    assert_eq!(
        subject("kejaksaan.test"),
        "timpora.witness.kejaksaan_test.add-checkpoint"
    );
    let r = Refusal::Conflict(7).reply();
    assert_eq!(r, "409\n7\n");
}
