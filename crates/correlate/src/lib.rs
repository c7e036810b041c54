//! The correlation engine: evaluates a checked rule set over events in event time.
//!
//! Its output is a function of the events it is given (their times, sources and recorded times,
//! and the clock ticks among them) and of the rule set, nothing else: no wall clock. Sequence
//! rules are decided pair by pair when the second event of a pair arrives, whichever comes first
//! in the stream. Absence, state and count rules wait for the reports that could change them
//! (see [`Engine::observe_facts`]): a decision is taken once
//! - the watermark (the latest event or tick time) has passed its horizon plus the allowed
//!   lateness;
//! - every reporting unit of the agencies whose reports could change it has reported past that
//!   point, or had its usual reporting delay (the largest `recorded_at − time` of its events over
//!   the last one to two days of hub time) to do so, or been silent for the rule's `idle` time;
//! - its entity's batch has settled: no event of the entity arrived for the rule's `grace` in
//!   the hub's recorded time (or the decision waited four times that).
//!
//! A batch sent in any order within those limits therefore gives the alerts of the in-order
//! stream. A report later still is used, never dropped: it withdraws the alert it contradicts
//! (a correction, [`Alert::correction`]) or raises the alert it completes, marked
//! [`Alert::late`].

mod alert;
mod facts;
mod partition;
mod shape;
mod sharded;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use timpora_proto::v1::Event;
use timpora_rules::RuleSet;

pub use alert::{Alert, Correction};
pub use facts::{Facts, Key};
pub use partition::Partition;
use state::{Occ, Recorded, RuleState};

/// The most entries of state one event can add to one rule's state (a generous bound: an
/// event's groups times the maps a shape keeps).
const MAX_GROWTH: u64 = 128;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A checkpoint could not be read back.
    #[error("checkpoint unreadable: {0}")]
    Checkpoint(#[from] postcard::Error),
    /// A checkpoint was taken with another rule set or lateness.
    #[error("checkpoint belongs to rule set {digest} with lateness {lateness:?}")]
    Mismatch { digest: String, lateness: Duration },
}

/// Counters the correlator reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub events: u64,
    /// Events recorded more than the allowed lateness after their time, or older than the
    /// watermark minus the allowed lateness.
    pub late_events: u64,
    /// Alerts raised or extended (each an alert on the bus).
    pub alerts: u64,
    /// Of those, extensions of an open alert (its evidence grew).
    pub extended: u64,
    /// Corrections of findings by late reports (each on the bus too), and of those withdrawals.
    pub corrections: u64,
    pub withdrawn: u64,
    /// Groups dropped, oldest first, because the state cap was reached.
    pub shed_groups: u64,
}

/// Layout version of [`Engine::checkpoint`]'s bytes.
const CHECKPOINT_FORMAT: u32 = 5;

/// Hub time over which a reporting unit's delay is taken (its largest delay over the current
/// and the previous such period).
const DELAY_PERIOD: Duration = Duration::from_secs(86_400);

/// What the engine knows of one reporting unit (an event `source`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Source {
    /// The latest event time it reported.
    progress: Option<SystemTime>,
    /// When (hub time) it last reported.
    last: Option<SystemTime>,
    /// Its largest reporting delay in the current period, and in the previous one.
    delay: Duration,
    delay_before: Duration,
    period: Option<SystemTime>,
    /// Whether its latest report was late (it is sending a backlog, perhaps not all of it yet).
    behind: bool,
}

impl Source {
    /// Whether it reports later than `lateness` (usually, or right now).
    fn lags(&self, lateness: Duration) -> bool {
        self.behind || self.delay.max(self.delay_before) > lateness
    }

    fn note(&mut self, time: SystemTime, arrival: SystemTime, late: bool) {
        if self.last.is_none_or(|l| arrival >= l) {
            self.behind = late;
        }
        self.progress = Some(self.progress.map_or(time, |p| p.max(time)));
        self.last = Some(self.last.map_or(arrival, |l| l.max(arrival)));
        match self.period {
            Some(p) if arrival < p + DELAY_PERIOD => {}
            Some(p) => {
                self.delay_before = if arrival < p + DELAY_PERIOD * 2 {
                    self.delay
                } else {
                    Duration::ZERO
                };
                self.delay = Duration::ZERO;
                self.period = Some(arrival);
            }
            None => self.period = Some(arrival),
        }
        let delay = arrival.duration_since(time).unwrap_or_default();
        self.delay = self.delay.max(delay);
    }

    /// How far in event time it can be taken to have reported by hub time `clock`, if it is
    /// still waited for (not silent for `idle`): as far as it reported — once its backlog has
    /// had `grace` to arrive whole, if its latest report was late — or as far as its usual delay
    /// lets it be behind.
    fn believed(&self, clock: SystemTime, r: timpora_rules::Reports) -> Option<SystemTime> {
        let last = self.last?;
        if clock.duration_since(last).unwrap_or_default() >= r.idle {
            return None;
        }
        let delay = self.delay.max(self.delay_before);
        let caught_up = clock.checked_sub(delay).unwrap_or(SystemTime::UNIX_EPOCH);
        let settled = self
            .progress
            .filter(|_| !self.behind || clock >= last + r.grace);
        Some(settled.map_or(caught_up, |p| p.max(caught_up)))
    }
}

/// Evaluates one rule set.
#[derive(Debug)]
pub struct Engine {
    set: RuleSet,
    lateness: Duration,
    watermark: Option<SystemTime>,
    /// The hub's recorded time: the latest `recorded_at` (or tick) seen.
    clock: Option<SystemTime>,
    /// Reporting units by `source` (`agency/unit`).
    sources: BTreeMap<String, Source>,
    /// Hub time of the last look at the decisions due.
    looked: Option<SystemTime>,
    /// Those that report later than the allowed lateness (or are sending a backlog): the only
    /// ones a decision may wait for (derived from `sources`, not checkpointed).
    lagging: std::collections::BTreeSet<String>,
    /// Per rule: the agencies its decisions wait for (`None`: every agency).
    waits: Vec<Option<Vec<&'static str>>>,
    states: Vec<RuleState>,
    stats: Stats,
    /// Watermark at the last eviction, and the event time between evictions.
    evicted_at: Option<SystemTime>,
    evict_every: Duration,
    cap: usize,
    shed_check: u64,
    /// The part of the group keys this engine decides (all of them when `None`).
    partition: Option<Partition>,
}

/// Per rule, the agencies its decisions wait for.
fn waits(set: &RuleSet) -> Vec<Option<Vec<&'static str>>> {
    set.rules.iter().map(|r| r.shape.waits_for()).collect()
}

/// Event time between evictions: an eighth of the shortest span a rule keeps state for (so at
/// most an eighth more state than needed is held), at least a minute.
fn evict_every(set: &RuleSet) -> Duration {
    set.rules
        .iter()
        .map(|r| r.shape.span())
        .filter(|span| !span.is_zero())
        .min()
        .map_or(Duration::from_secs(3_600), |d| d / 8)
        .max(Duration::from_secs(60))
}

impl Engine {
    /// An engine for `set`, accepting events up to `lateness` out of order.
    pub fn new(set: RuleSet, lateness: Duration) -> Self {
        let evict_every = evict_every(&set);
        let states = set.rules.iter().map(|_| RuleState::default()).collect();
        Self {
            waits: waits(&set),
            set,
            lateness,
            watermark: None,
            clock: None,
            sources: BTreeMap::new(),
            looked: None,
            lagging: Default::default(),
            states,
            stats: Stats::default(),
            evicted_at: None,
            evict_every,
            cap: usize::MAX,
            shed_check: 0,
            partition: None,
        }
    }

    /// Decide only the groups of `partition`: engines for every part of the same count, fed the
    /// same stream, together raise exactly the alerts one engine raises. Every engine still
    /// reads every event (event time, the lateness of each source and the hub's clock are
    /// the whole stream's); each keeps state for its own groups only.
    pub fn with_partition(mut self, partition: Partition) -> Self {
        self.partition = (partition.count > 1).then_some(partition);
        self
    }

    /// Hold state for at most `cap` groups (over all rules): past it, the groups idle longest
    /// are dropped, counted in [`Stats::shed_groups`] and logged.
    pub fn with_cap(mut self, cap: usize) -> Self {
        self.cap = cap.max(1);
        self
    }

    /// The state as bytes: [`Engine::restore`] with the same rule set and lateness continues
    /// exactly where this engine stands.
    pub fn checkpoint(&self) -> Result<Vec<u8>, Error> {
        self.snapshot().encode()
    }

    /// An engine continuing from `bytes` (from [`Engine::checkpoint`]); refused when they were
    /// taken with another rule set or lateness.
    pub fn restore(set: RuleSet, lateness: Duration, bytes: &[u8]) -> Result<Self, Error> {
        type Saved = (
            u32,
            String,
            Duration,
            Option<SystemTime>,
            Vec<RuleState>,
            Stats,
            Option<SystemTime>,
            Option<SystemTime>,
            BTreeMap<String, Source>,
            Option<SystemTime>,
        );
        let (
            format,
            digest,
            saved_lateness,
            watermark,
            states,
            stats,
            evicted_at,
            clock,
            sources,
            looked,
        ): Saved = postcard::from_bytes(bytes)?;
        if format != CHECKPOINT_FORMAT
            || digest != set.digest
            || saved_lateness != lateness
            || states.len() != set.rules.len()
        {
            return Err(Error::Mismatch {
                digest,
                lateness: saved_lateness,
            });
        }
        let evict_every = evict_every(&set);
        let lagging = sources
            .iter()
            .filter(|(_, s)| s.lags(lateness))
            .map(|(n, _)| n.clone())
            .collect();
        Ok(Self {
            waits: waits(&set),
            set,
            lateness,
            watermark,
            clock,
            sources,
            looked,
            lagging,
            states,
            stats,
            evict_every,
            evicted_at,
            cap: usize::MAX,
            shed_check: 0,
            partition: None,
        })
    }

    /// The rule set's version.
    pub fn version(&self) -> &str {
        &self.set.version
    }

    /// The rule set's digest (SHA-256 of its file).
    pub fn digest(&self) -> &str {
        &self.set.digest
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The latest event or tick time seen.
    pub fn watermark(&self) -> Option<SystemTime> {
        self.watermark
    }

    /// Feed one stored event (a recorded clock tick moves the clock); the alerts it completes
    /// and any decisions now due.
    pub fn observe(&mut self, ev: &Event) -> Vec<Alert> {
        self.observe_at(ev, 0)
    }

    /// [`Engine::observe`] for the event at `sequence` of the events stream (named in alerts).
    pub fn observe_at(&mut self, ev: &Event, sequence: u64) -> Vec<Alert> {
        if let Some(timpora_proto::v1::event::Payload::ClockTick(_)) = &ev.payload {
            return match ev.time.map(SystemTime::try_from) {
                Some(Ok(at)) => self.tick(at),
                _ => Vec::new(),
            };
        }
        match Facts::of(ev) {
            Some(mut f) => {
                f.sequence = sequence;
                self.observe_facts(&f)
            }
            None => Vec::new(),
        }
    }

    /// [`Engine::observe`] for facts already read. The event counts as recorded at its
    /// `recorded` time, or — without one (events loaded straight into the stream, a backtest's
    /// file) — when it happened, as if reported live.
    pub fn observe_facts(&mut self, f: &Facts) -> Vec<Alert> {
        self.stats.events += 1;
        let arrival = f.recorded.unwrap_or(f.time);
        self.clock = Some(self.clock.map_or(arrival, |c| c.max(arrival)));
        // Late: recorded more than the allowed lateness after it happened, or behind the
        // latest event time by more than that.
        let late = arrival
            .duration_since(f.time)
            .is_ok_and(|d| d > self.lateness)
            || self.watermark.is_some_and(|wm| f.time + self.lateness < wm);
        if !f.source.is_empty() {
            let s = match self.sources.get_mut(&f.source) {
                Some(s) => s,
                None => self.sources.entry(f.source.clone()).or_default(),
            };
            s.note(f.time, arrival, late);
            let lags = s.lags(self.lateness);
            if lags != self.lagging.contains(&f.source) {
                if lags {
                    self.lagging.insert(f.source.clone());
                } else {
                    self.lagging.remove(&f.source);
                }
            }
        }
        if late {
            self.stats.late_events += 1;
            // Every late event is counted; the log names the first ten, then every thousandth.
            let n = self.stats.late_events;
            if n <= 10 || n.is_multiple_of(1000) {
                tracing::warn!(event = %f.key, late_events = n, "event later than the allowed lateness");
            }
        }
        let mut out = Vec::new();
        // One copy of the occurrence, shared by every rule that keeps it.
        let occ = Arc::new(Occ::of(f, arrival, late));
        let version = self.set.version.as_str();
        let clock = self.clock.unwrap_or(f.time);
        for (rule, st) in self.set.rules.iter().zip(&mut self.states) {
            let all = f.keys(rule.group_by);
            let owned: Vec<Key>;
            let groups = match &self.partition {
                None => all,
                Some(p) => {
                    owned = all.iter().filter(|k| p.owns(k)).cloned().collect();
                    &owned
                }
            };
            if groups.is_empty() {
                continue;
            }
            let cx = shape::Cx {
                rule,
                version,
                lateness: self.lateness,
                clock,
                until: SystemTime::UNIX_EPOCH,
            };
            shape::of(&rule.shape).observe(&cx, st, f, &occ, groups, &mut out);
        }
        // Growth, counting and eviction are done there, after every decision now due.
        self.advance(f.time, &mut out);
        if self.stats.events >= self.shed_check {
            let tracked = self.tracked();
            if tracked > self.cap {
                self.evict();
                if self.tracked() > self.cap {
                    self.shed();
                    // Decisions waiting for the watermark are never dropped; if they alone fill
                    // the cap, check again only after a tenth of the cap in events.
                    self.shed_check = self.stats.events + (self.cap as u64 / 10).max(1);
                }
            } else {
                // Counting walks every map: the next count is due only when the state could
                // have grown past the cap, at most `MAX_GROWTH` entries per rule and event.
                let room = (self.cap - tracked) as u64;
                let per_event = (MAX_GROWTH * self.states.len() as u64).max(1);
                self.shed_check = self.stats.events + (room / per_event).max(1);
            }
        }
        out
    }

    /// Forget every alert still growing (their findings were never raised, e.g. while a new
    /// rule set warmed up on the stream): the next match of each raises a new alert.
    pub fn forget_open(&mut self) {
        for st in &mut self.states {
            st.open.clear();
        }
    }

    /// Alerts that find again what an open alert of their rule and group found extend it
    /// (rules with `extend`); the rest are new findings. Counted here.
    fn grow(&mut self, out: Vec<Alert>) -> Vec<Alert> {
        let mut kept = Vec::with_capacity(out.len());
        let version = self.set.version.as_str();
        for a in out {
            let i = self.set.rules.iter().position(|r| r.id == a.rule_id);
            let Some((rule, st)) = i.map(|i| (&self.set.rules[i], &mut self.states[i])) else {
                kept.push(a);
                continue;
            };
            if let Some(c) = &a.correction {
                self.stats.corrections += 1;
                self.stats.withdrawn += u64::from(c.withdrawn);
                kept.push(a);
                continue;
            }
            if !rule.extend {
                kept.push(a);
                continue;
            }
            let key = Key::from(a.group_key.as_str());
            let raw = a.id.clone();
            let mut open = st.open.remove(&key);
            let grown = alert::grow(rule, version, &mut open, a);
            // The finding the decision now belongs to (the first alert's id).
            let finding = match (&grown, &open) {
                (Some(a), _) => a.extends.clone().unwrap_or_else(|| a.id.clone()),
                (None, Some(o)) => o.id.clone(),
                (None, None) => raw.clone(),
            };
            if finding != raw
                && let Some(list) = st.decided.get_mut(&key)
                && list
                    .iter()
                    .any(|d| d.finding.as_deref() == Some(raw.as_str()))
            {
                for d in Arc::make_mut(list) {
                    if d.finding.as_deref() == Some(raw.as_str()) {
                        d.finding = Some(finding.clone());
                    }
                }
            }
            if let Some(a) = grown {
                self.stats.extended += u64::from(a.extends.is_some());
                kept.push(a);
            }
            if let Some(o) = open {
                st.open.insert(key, o);
            }
        }
        self.stats.alerts += kept.iter().filter(|a| a.correction.is_none()).count() as u64;
        kept
    }

    /// Drop the groups idle longest until a tenth of the cap is free again.
    fn shed(&mut self) {
        let target = self.cap - self.cap / 10;
        let mut idle: Vec<(SystemTime, usize, String)> = Vec::new();
        for (i, st) in self.states.iter().enumerate() {
            fn note<'a>(m: &mut HashMap<&'a str, SystemTime>, g: &'a str, t: SystemTime) {
                let e = m.entry(g).or_insert(t);
                *e = (*e).max(t);
            }
            let mut latest: HashMap<&str, SystemTime> = HashMap::new();
            for (g, l) in st.whens.iter().chain(st.thens.iter()) {
                l.iter().for_each(|o| note(&mut latest, g, o.time));
            }
            for (g, l) in st.seen.iter() {
                l.iter().for_each(|t| note(&mut latest, g, *t));
            }
            for (g, l) in st.history.iter() {
                l.iter().for_each(|(t, ..)| note(&mut latest, g, *t));
            }
            for (g, w) in st.windows.iter() {
                w.iter().for_each(|c| note(&mut latest, g, c.occ.time));
            }
            idle.extend(latest.into_iter().map(|(g, t)| (t, i, g.to_owned())));
        }
        idle.sort_unstable();
        let excess = self.tracked().saturating_sub(target);
        let mut dropped = 0u64;
        for (_, i, g) in idle.into_iter().take(excess) {
            let st = &mut self.states[i];
            st.whens.remove(g.as_str());
            st.thens.remove(g.as_str());
            st.seen.remove(g.as_str());
            st.history.remove(g.as_str());
            st.windows.remove(g.as_str());
            st.fired.remove(g.as_str());
            st.open.remove(g.as_str());
            st.decided.remove(g.as_str());
            st.arrived.remove(g.as_str());
            dropped += 1;
        }
        self.stats.shed_groups += dropped;
        tracing::warn!(
            cap = self.cap,
            dropped,
            tracked = self.tracked(),
            "state cap reached; dropped the groups idle longest"
        );
    }

    /// A clock tick recorded in the stream: event time moves on without an event.
    pub fn tick(&mut self, at: SystemTime) -> Vec<Alert> {
        self.clock = Some(self.clock.map_or(at, |c| c.max(at)));
        let mut out = Vec::new();
        self.advance(at, &mut out);
        out
    }

    /// Move the watermark to `at` (never back) and take every decision now due.
    fn advance(&mut self, at: SystemTime, out: &mut Vec<Alert>) {
        let wm = self.watermark.map_or(at, |w| w.max(at));
        self.watermark = Some(wm);
        let clock = self.clock.unwrap_or(wm);
        // Decisions are looked at once a second of hub time at most: what waits for its batch
        // is not scanned again with every event.
        let look = self
            .looked
            .is_none_or(|l| clock >= l + Duration::from_secs(1));
        if look {
            self.looked = Some(clock);
        }
        let version = self.set.version.as_str();
        for ((rule, st), waits) in self.set.rules.iter().zip(&mut self.states).zip(&self.waits) {
            if !look || !st.has_work(wm, self.lateness) {
                continue;
            }
            // Held back to what the units this rule waits for have reported (or could have).
            let until = self
                .lagging
                .iter()
                .filter_map(|name| self.sources.get(name).map(|s| (name, s)))
                .filter(|(name, _)| {
                    waits.as_ref().is_none_or(|w| {
                        let agency = name.split_once('/').map_or(name.as_str(), |(a, _)| a);
                        w.contains(&agency)
                    })
                })
                .filter_map(|(_, s)| s.believed(clock, rule.reports))
                .fold(wm, SystemTime::min);
            let cx = shape::Cx {
                rule,
                version,
                lateness: self.lateness,
                clock,
                until,
            };
            shape::of(&rule.shape).decide(&cx, st, out);
        }
        // Before eviction, which would forget the alerts these may extend.
        *out = self.grow(std::mem::take(out));
        if self.evicted_at.is_none_or(|at| wm >= at + self.evict_every) {
            self.evicted_at = Some(wm);
            self.evict();
        }
    }

    /// Drop what no future (timely) event can combine with.
    fn evict(&mut self) {
        let Some(wm) = self.watermark else { return };
        let lateness = self.lateness;
        let clock = self.clock.unwrap_or(wm);
        for (rule, st) in self.set.rules.iter().zip(&mut self.states) {
            // Rules that wait for reports keep what a report up to `idle` late may still need.
            let keep = match rule.shape {
                timpora_rules::Shape::Sequence(_) => rule.shape.span() + lateness,
                _ => rule.shape.span() + lateness + rule.reports.idle,
            };
            let cutoff = wm.checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH);
            // Lists (and shards) are copied, when a snapshot shares them, only if something goes.
            let old = |list: &Arc<Vec<Arc<Occ>>>| list.iter().any(|o| o.time < cutoff);
            let keep =
                |list: &mut Arc<Vec<Arc<Occ>>>| Arc::make_mut(list).retain(|o| o.time >= cutoff);
            st.whens.update(old, keep);
            st.thens.update(old, keep);
            st.whens.retain(|_, l| !l.is_empty());
            st.thens.retain(|_, l| !l.is_empty());
            st.seen.update(
                |ts| ts.iter().any(|t| *t < cutoff),
                |ts| Arc::make_mut(ts).retain(|t| *t >= cutoff),
            );
            st.seen.retain(|_, l| !l.is_empty());
            // Keep everything after the cutoff and the last value before it.
            let older = |h: &Arc<Vec<Recorded>>| h.iter().filter(|(t, ..)| *t < cutoff).count();
            st.history.update(
                |h| older(h) > 1,
                |h| {
                    let n = older(h);
                    let h = Arc::make_mut(h);
                    h.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                    h.drain(..n - 1);
                },
            );
            st.windows.update(
                |w| w.front().is_some_and(|x| x.occ.time < cutoff),
                |w| {
                    let w = Arc::make_mut(w);
                    while w.front().is_some_and(|x| x.occ.time < cutoff) {
                        w.pop_front();
                    }
                },
            );
            st.windows.retain(|_, w| !w.is_empty());
            st.fired.retain(|_, t| *t >= cutoff);
            st.open.retain(|_, o| o.latest() >= cutoff);
            st.decided.update(
                |list| list.iter().any(|d| d.trigger.time < cutoff),
                |list| Arc::make_mut(list).retain(|d| d.trigger.time >= cutoff),
            );
            st.decided.retain(|_, l| !l.is_empty());
            let settle = rule.reports.grace * 4;
            st.arrived.retain(|_, a| *a + settle >= clock);
        }
    }

    /// Entries of state over all rules: groups holding history, plus decisions waiting for the
    /// watermark (for the state cap and its metric).
    pub fn tracked(&self) -> usize {
        self.states
            .iter()
            .map(|s| {
                s.whens.len()
                    + s.thens.len()
                    + s.seen.len()
                    + s.history.len()
                    + s.windows.len()
                    + s.pending.len()
                    + s.queue.len()
                    + s.held.len()
                    + s.open.len()
                    + s.decided.len()
            })
            .sum()
    }

    /// Distinct entities (group keys) holding state in any rule.
    pub fn entities(&self) -> usize {
        distinct_entities(&self.states)
    }

    /// A copy of the state for [`Snapshot::encode`], taken quickly (occurrences are shared).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            digest: self.set.digest.clone(),
            lateness: self.lateness,
            watermark: self.watermark,
            states: self.states.clone(),
            stats: self.stats,
            evicted_at: self.evicted_at,
            clock: self.clock,
            sources: self.sources.clone(),
            looked: self.looked,
        }
    }

    /// The hub's recorded time so far (the latest `recorded_at` or tick seen).
    pub fn clock(&self) -> Option<SystemTime> {
        self.clock
    }

    /// The state cap ([`Engine::with_cap`]).
    pub fn cap(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests;

/// A copy of an engine's state, to be encoded away from the engine (see [`Engine::snapshot`]).
#[derive(Debug)]
pub struct Snapshot {
    digest: String,
    lateness: Duration,
    watermark: Option<SystemTime>,
    states: Vec<RuleState>,
    stats: Stats,
    evicted_at: Option<SystemTime>,
    clock: Option<SystemTime>,
    sources: BTreeMap<String, Source>,
    looked: Option<SystemTime>,
}

/// Distinct group keys holding state in any rule.
fn distinct_entities(states: &[RuleState]) -> usize {
    let mut keys: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for s in states {
        keys.extend(s.whens.keys().map(|k| &**k));
        keys.extend(s.thens.keys().map(|k| &**k));
        keys.extend(s.seen.keys().map(|k| &**k));
        keys.extend(s.history.keys().map(|k| &**k));
        keys.extend(s.windows.keys().map(|k| &**k));
        keys.extend(s.open.keys().map(|k| &**k));
        keys.extend(s.decided.keys().map(|k| &**k));
        keys.extend(s.pending.keys().map(|(_, g, _)| &**g));
        keys.extend(s.queue.values().flat_map(|c| c.groups.iter().map(|k| &**k)));
        keys.extend(s.held.keys().map(|(_, _, g, _)| &**g));
    }
    keys.len()
}

impl Snapshot {
    /// [`Engine::entities`] at the time of the snapshot (costly: count it away from the engine).
    pub fn entities(&self) -> usize {
        distinct_entities(&self.states)
    }

    /// The bytes [`Engine::restore`] reads.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        self.encode_to(Vec::new())
    }

    /// [`Snapshot::encode`] into a writer, piece by piece (no buffer of the whole); the writer.
    pub fn encode_to<W: std::io::Write>(&self, writer: W) -> Result<W, Error> {
        Ok(postcard::to_io(
            &(
                CHECKPOINT_FORMAT,
                &self.digest,
                self.lateness,
                self.watermark,
                &self.states,
                self.stats,
                self.evicted_at,
                self.clock,
                &self.sources,
                self.looked,
            ),
            writer,
        )?)
    }
}
