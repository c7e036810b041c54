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
    /// When the hub recorded it (its `recorded_at`; the hub's clock then for an event without).
    pub(crate) arrival: SystemTime,
    /// Whether it arrived later than the allowed lateness behind the latest event time.
    pub(crate) late: bool,
}

impl Occ {
    pub(crate) fn of(f: &Facts, arrival: SystemTime, late: bool) -> Self {
        Self {
            time: f.time,
            key: f.key.clone(),
            location: f.location.clone(),
            region: f.region.clone(),
            seq: f.sequence,
            classification: f.classification,
            arrival,
            late,
        }
    }

    pub(crate) fn order(&self) -> (SystemTime, &str) {
        (self.time, &self.key)
    }
}

/// A decision taken (absence rules keep those that raised an alert, state rules all): what a
/// late report may still correct.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Decision {
    pub(crate) trigger: Arc<Occ>,
    /// The finding (its first alert's id) the decision raised or extended; `None` when it raised
    /// nothing or was withdrawn since.
    pub(crate) finding: Option<String>,
}

/// A count contribution waiting for its decision, with the groups it is still to be added to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Queued {
    pub(crate) c: Arc<Contribution>,
    pub(crate) left: Vec<Key>,
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
    /// Count: contributions waiting for their decision, in event-time order.
    pub(crate) queue: BTreeMap<(SystemTime, String), Queued>,
    /// Count: the sliding window per group, and when it last fired.
    pub(crate) windows: Map<Key, Arc<VecDeque<Arc<Contribution>>>>,
    pub(crate) fired: Map<Key, SystemTime>,
    /// Every rule: the alert still growing per group (see `alert::grow`).
    pub(crate) open: Map<Key, Arc<Open>>,
    /// Absence, state and count: when an event of the group last arrived (the hub's time), so
    /// its decisions wait for the rest of the batch.
    pub(crate) arrived: Map<Key, SystemTime>,
    /// Absence and state: decisions taken, per group, for corrections by late reports.
    pub(crate) decided: Map<Key, Arc<Vec<Decision>>>,
}

// Every collection above holds its values behind `Arc`s: cloning the state (a snapshot for a
// checkpoint) copies pointers, not occurrences, and the engine copies a value only when it
// changes one that a snapshot still shares (`Arc::make_mut`).

impl RuleState {
    /// The decisions ready now (absence and state rules), in due order, taken off the queue:
    /// due by event time `until`, and `settled` (given the group's and the trigger's arrival).
    pub(crate) fn ready(
        &mut self,
        until: SystemTime,
        settled: impl Fn(Option<&SystemTime>, SystemTime) -> bool,
    ) -> Vec<(Key, Arc<Occ>)> {
        let keys: Vec<Due> = self
            .pending
            .iter()
            .take_while(|((due, ..), _)| *due <= until)
            .filter(|((_, g, _), w)| settled(self.arrived.get(g), w.arrival))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.pending.remove(&k).map(|w| (k.1, w)))
            .collect()
    }

    /// Whether a decision is due by event time `wm` (it may still wait for reports).
    pub(crate) fn has_work(&self, wm: SystemTime, lateness: std::time::Duration) -> bool {
        self.pending
            .first_key_value()
            .is_some_and(|(k, _)| k.0 <= wm)
            || self
                .queue
                .first_key_value()
                .is_some_and(|(k, _)| k.0 + lateness <= wm)
    }

    /// Note that an event of group `g` arrived at `at`.
    pub(crate) fn arrived(&mut self, g: &Key, at: SystemTime) {
        let e = self.arrived.entry(g.clone()).or_insert(at);
        *e = (*e).max(at);
    }

    /// Keep `d` among `g`'s decisions.
    pub(crate) fn decided(&mut self, g: &Key, d: Decision) {
        Arc::make_mut(self.decided.entry(g.clone()).or_default()).push(d);
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
