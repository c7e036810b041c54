//! What the engine keeps per rule between events: occurrences, pending decisions, histories and
//! windows, every value shared behind an `Arc` so a checkpoint's copy costs pointers.

use std::collections::{BTreeMap, VecDeque};
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
    /// How long after its time the hub recorded it, in whole seconds rounded up, with
    /// [`LATE`] set when it came later than the allowed lateness (in the padding after
    /// `classification`: an occurrence is no bigger for it).
    pub(crate) delay: u32,
}

/// The bit of [`Occ::delay`] that says the event came late.
const LATE: u32 = 1 << 31;

impl Occ {
    pub(crate) fn of(f: &Facts, arrival: SystemTime, late: bool) -> Self {
        let d = arrival.duration_since(f.time).unwrap_or_default();
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        let delay = u32::try_from(secs).unwrap_or(u32::MAX).min(LATE - 1);
        Self {
            time: f.time,
            key: f.key.clone(),
            location: f.location.clone(),
            region: f.region.clone(),
            seq: f.sequence,
            classification: f.classification,
            delay: delay | if late { LATE } else { 0 },
        }
    }

    /// When the hub recorded it (never before its own time).
    pub(crate) fn arrival(&self) -> SystemTime {
        self.time + std::time::Duration::from_secs(u64::from(self.delay & !LATE))
    }

    /// Whether it came later than the allowed lateness.
    pub(crate) fn late(&self) -> bool {
        self.delay & LATE != 0
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

/// A decision due by event time, waiting for its batch to settle: an absence or state rule's
/// trigger, or a count contribution for one of its groups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Held {
    Trigger(Arc<Occ>),
    Count(Arc<Contribution>),
}

impl Held {
    fn occ(&self) -> &Occ {
        match self {
            Held::Trigger(o) => o,
            Held::Count(c) => &c.occ,
        }
    }
}

/// Where a held decision waits: the hub time it may next be settled, its due time, group and
/// event (the last three also the order decisions are taken in).
pub(crate) type HeldKey = (SystemTime, SystemTime, Key, Arc<str>);

/// One event's contribution to a count rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Contribution {
    pub(crate) occ: Arc<Occ>,
    pub(crate) groups: Vec<Key>,
    pub(crate) values: Vec<(Fact, Vec<String>)>,
}

pub(crate) type Due = (SystemTime, Key, String);
/// Maps of the state by group: sharded, so that a checkpoint's copy costs pointers per shard.
pub(crate) type Map<K, V> = crate::sharded::Sharded<K, V>;
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
    /// Count: contributions waiting for event time to pass them, in event-time order.
    pub(crate) queue: BTreeMap<(SystemTime, String), Arc<Contribution>>,
    /// Absence, state and count: decisions due by event time, waiting for their batch to
    /// settle, by the hub time they may next be settled.
    pub(crate) held: BTreeMap<HeldKey, Held>,
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

// Every collection above holds its values behind `Arc`s, and the maps by group are sharded
// copy-on-write: cloning the state (a snapshot for a checkpoint) copies a pointer per shard and
// the ordered maps' pointers, not occurrences, and the engine copies a shard or a value only
// when it changes one that a snapshot still shares (`Arc::make_mut`).

impl RuleState {
    /// The decisions ready now, taken off the queues in the order they are to be taken (due
    /// time, group, event): due by event time `until` (a contribution: its time plus
    /// `lateness`), and settled by hub time `clock` — `grace` since the event arrived, and since
    /// the group's latest event arrived unless the event has waited four times `grace`.
    pub(crate) fn ready(
        &mut self,
        until: SystemTime,
        clock: SystemTime,
        grace: std::time::Duration,
        lateness: std::time::Duration,
    ) -> Vec<(Key, Held)> {
        // Due by event time: they now wait only for their batch.
        while let Some(e) = self.pending.first_entry() {
            if e.key().0 > until {
                break;
            }
            let ((due, g, key), w) = e.remove_entry();
            let at = w.arrival() + grace;
            self.held
                .insert((at, due, g, Arc::from(key)), Held::Trigger(w));
        }
        while let Some(e) = self.queue.first_entry() {
            if e.key().0 + lateness > until {
                break;
            }
            let ((time, key), c) = e.remove_entry();
            let at = c.occ.arrival() + grace;
            let key: Arc<str> = Arc::from(key);
            for g in &c.groups {
                self.held.insert(
                    (at, time, g.clone(), key.clone()),
                    Held::Count(Arc::clone(&c)),
                );
            }
        }
        // Settled by hub time, or put back until they may be.
        let mut out: Vec<(SystemTime, Key, Arc<str>, Held)> = Vec::new();
        while let Some(e) = self.held.first_entry() {
            if e.key().0 > clock {
                break;
            }
            let ((_, due, g, key), h) = e.remove_entry();
            let own = h.occ().arrival();
            let group = self.arrived.get(&g).map(|a| *a + grace);
            let cap = own + grace * 4;
            match group {
                Some(quiet) if clock < quiet && clock < cap => {
                    self.held.insert((quiet.min(cap), due, g, key), h);
                }
                _ => out.push((due, g, key, h)),
            }
        }
        out.sort_by(|a, b| (a.0, &a.2, &a.1).cmp(&(b.0, &b.2, &b.1)));
        out.into_iter().map(|(_, g, _, h)| (g, h)).collect()
    }

    /// Whether a decision is due by event time `wm` (it may still wait for reports).
    pub(crate) fn has_work(&self, wm: SystemTime, lateness: std::time::Duration) -> bool {
        !self.held.is_empty()
            || self
                .pending
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
