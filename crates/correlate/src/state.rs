//! What the engine keeps per rule between events: occurrences, pending decisions, histories and
//! windows, every value shared behind an `Arc` so a checkpoint's copy costs pointers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use timpora_rules::Fact;

use crate::facts::{Facts, Key};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Occ {
    pub(crate) time: SystemTime,
    pub(crate) key: String,
    pub(crate) location: String,
    pub(crate) region: String,
    /// Events-stream sequence (0 where unknown).
    pub(crate) seq: u64,
    /// The event's classification (its number).
    pub(crate) classification: i32,
}

impl Occ {
    pub(crate) fn of(f: &Facts) -> Self {
        Self {
            time: f.time,
            key: f.key.clone(),
            location: f.location.clone(),
            region: f.region.clone(),
            seq: f.sequence,
            classification: f.classification,
        }
    }

    pub(crate) fn order(&self) -> (SystemTime, &str) {
        (self.time, &self.key)
    }
}

/// One event's contribution to a count rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Contribution {
    pub(crate) occ: Arc<Occ>,
    pub(crate) groups: Vec<Key>,
    pub(crate) values: Vec<(Fact, Vec<String>)>,
}

pub(crate) type Due = (SystemTime, Key, String);
/// Hash maps of the state: keys are pseudonymised tokens, so a fast hasher is safe.
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A value an entity had from a time on: (time, event key, value, stream sequence).
/// A recorded state: event time, evidence key, value, sequence, classification.
pub(crate) type Recorded = (SystemTime, String, String, u64, i32);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct RuleState {
    /// Sequence: `when` and `then` occurrences per group.
    pub(crate) whens: Map<Key, Arc<Vec<Arc<Occ>>>>,
    pub(crate) thens: Map<Key, Arc<Vec<Arc<Occ>>>>,
    /// Absence and state: triggers waiting for their decision, by (due, group, event).
    pub(crate) pending: BTreeMap<Due, Arc<Occ>>,
    /// Absence: times of the events whose presence cancels a trigger, per group.
    pub(crate) seen: Map<Key, Arc<Vec<SystemTime>>>,
    /// State: the group entity's recorded values over time.
    pub(crate) history: Map<Key, Arc<Vec<Recorded>>>,
    /// Count: contributions waiting for the watermark, in event-time order.
    pub(crate) queue: BTreeMap<(SystemTime, String), Arc<Contribution>>,
    /// Count: the sliding window per group, and when it last fired.
    pub(crate) windows: Map<Key, Arc<VecDeque<Arc<Contribution>>>>,
    pub(crate) fired: Map<Key, SystemTime>,
    /// Every rule: the alert still growing per group (see `alert::grow`).
    pub(crate) open: Map<Key, Arc<Open>>,
}

// Every collection above holds its values behind `Arc`s: cloning the state (a snapshot for a
// checkpoint) copies pointers, not occurrences, and the engine copies a value only when it
// changes one that a snapshot still shares (`Arc::make_mut`).

impl RuleState {
    /// The next decision due by event time `wm` (absence and state rules): its group and
    /// trigger, taken off the queue; `None` when nothing is due yet.
    pub(crate) fn next_due(&mut self, wm: SystemTime) -> Option<(Key, Arc<Occ>)> {
        let entry = self.pending.first_entry()?;
        if entry.key().0 > wm {
            return None;
        }
        let ((_, g, _), w) = entry.remove_entry();
        Some((g, w))
    }
}

/// An alert still growing: the first one raised for its rule and group, and its evidence so far
/// (event time, key, sequence, classification), in event-time order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Open {
    pub(crate) id: String,
    pub(crate) evidence: Vec<(SystemTime, String, u64, i32)>,
}

impl Open {
    /// Event time of the latest evidence.
    pub(crate) fn latest(&self) -> SystemTime {
        self.evidence
            .iter()
            .map(|e| e.0)
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}
