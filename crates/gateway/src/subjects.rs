//! Which stored events mention which subject (a person's or recruiter's token, a licence
//! number): an index kept up to date from the events stream, for subjects' pages. It holds
//! stream sequences only, never events; the newest [`PER_SUBJECT`] per subject. It grows with
//! every subject ever seen (most persons appear once or twice), so each is kept small: a 128-bit
//! digest of the subject and a slice of exactly its sequences — about 90 bytes a subject.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use timpora_bus::{Bus, Start};
use timpora_proto::v1::{EntityKind, Event};

/// Events kept per subject (the newest).
pub const PER_SUBJECT: usize = 500;

/// One subject's events: their sequences, oldest first, and whether older ones were let go.
struct Seen {
    sequences: Box<[u64]>,
    truncated: bool,
}

#[derive(Default)]
struct Inner {
    by_subject: HashMap<u128, Seen>,
    /// The last stream sequence taken in.
    position: u64,
}

/// The index; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct SubjectIndex(Arc<RwLock<Inner>>);

fn digest(subject: &str) -> u128 {
    let d = Sha256::digest(subject.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_be_bytes(first)
}

impl SubjectIndex {
    /// Take the event stored at `sequence` in (once: sequences at or before the last are
    /// ignored, so following the stream again from its start changes nothing).
    pub fn note(&self, sequence: u64, ev: &Event) {
        let mut inner = self.0.write().unwrap_or_else(|e| e.into_inner());
        if sequence <= inner.position {
            return;
        }
        inner.position = sequence;
        let subjects = ev.entities.iter().filter(|e| {
            !e.id.is_empty()
                && [
                    EntityKind::Person,
                    EntityKind::Recruiter,
                    EntityKind::Company,
                ]
                .iter()
                .any(|k| e.kind == *k as i32)
        });
        for e in subjects {
            let seen = inner.by_subject.entry(digest(&e.id)).or_insert(Seen {
                sequences: Box::new([]),
                truncated: false,
            });
            if seen.sequences.last() == Some(&sequence) {
                continue;
            }
            // Re-allocated at its exact size: most subjects hold one or two sequences.
            let drop = usize::from(seen.sequences.len() >= PER_SUBJECT);
            seen.truncated |= drop == 1;
            seen.sequences = seen.sequences[drop..]
                .iter()
                .copied()
                .chain([sequence])
                .collect();
        }
    }

    /// The stream sequences of the events that mention `subject`, oldest first, and whether
    /// older ones were let go.
    pub fn sequences(&self, subject: &str) -> (Vec<u64>, bool) {
        let inner = self.0.read().unwrap_or_else(|e| e.into_inner());
        inner
            .by_subject
            .get(&digest(subject))
            .map(|s| (s.sequences.to_vec(), s.truncated))
            .unwrap_or_default()
    }

    /// The last stream sequence taken in.
    pub fn position(&self) -> u64 {
        self.0.read().unwrap_or_else(|e| e.into_inner()).position
    }
}

/// Keep `index` and `ids` following the events stream, from its start, for as long as the
/// gateway runs.
pub async fn follow(bus: Bus, index: SubjectIndex, ids: crate::ids::StoredIds) {
    loop {
        let from = Start::Sequence(index.position() + 1);
        match bus.replay(bus.topology().filter_subject(&[]), from).await {
            Ok(mut feed) => {
                while let Some(item) = feed.next().await {
                    match item {
                        Ok(d) => {
                            ids.follow(d.sequence, &d.event.source, &d.event.id);
                            index.note(d.sequence, &d.event);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "events stream message skipped by the subject index")
                        }
                    }
                }
                tracing::warn!("events stream feed ended; the subject index follows again");
            }
            Err(e) => tracing::debug!(error = %e, "events stream not readable yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timpora_proto::v1::EntityRef;

    fn ev(ids: &[(&str, EntityKind)]) -> Event {
        Event {
            entities: ids
                .iter()
                .map(|(id, k)| EntityRef {
                    kind: *k as i32,
                    id: (*id).into(),
                    role: String::new(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn subjects_map_to_the_events_that_mention_them_newest_kept() {
        let index = SubjectIndex::default();
        let both = ev(&[
            ("psn_a", EntityKind::Person),
            ("rec_b", EntityKind::Recruiter),
            ("74.02", EntityKind::Place),
        ]);
        index.note(1, &both);
        index.note(2, &ev(&[("psn_a", EntityKind::Person)]));
        // Taken again (a feed followed anew): nothing changes.
        index.note(2, &ev(&[("psn_a", EntityKind::Person)]));
        assert_eq!(index.sequences("psn_a"), (vec![1, 2], false));
        assert_eq!(index.sequences("rec_b"), (vec![1], false));
        assert_eq!(
            index.sequences("74.02"),
            (vec![], false),
            "places are not subjects"
        );
        for s in 3..(PER_SUBJECT as u64 + 10) {
            index.note(s, &ev(&[("psn_a", EntityKind::Person)]));
        }
        let (seqs, truncated) = index.sequences("psn_a");
        assert!(truncated);
        assert_eq!(seqs.len(), PER_SUBJECT);
        assert_eq!(*seqs.last().unwrap(), PER_SUBJECT as u64 + 9);
    }
}
