//! The correlation engine: evaluates a checked rule set over events in event time.
//!
//! Its output is a function of the events it is given (and the clock ticks among them) and of the
//! rule set, nothing else: no wall clock. Sequence rules are decided pair by pair when the second
//! event of a pair arrives, whichever comes first in the stream. Absence, state and count rules
//! are decided once the watermark (the latest event time seen) has passed their horizon plus the
//! allowed lateness, in event-time order. Events out of order within the lateness therefore give
//! exactly the alerts of the in-order stream; events later than that are counted as late, and
//! still used.

mod facts;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use timpora_proto::v1::Event;
use timpora_rules::{Fact, Rule, RuleSet, Severity, Shape};

pub use facts::Facts;

/// An alert: a rule's conclusion about one entity, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Deterministic: the same rule, version, group key and evidence give the same id.
    pub id: String,
    pub rule_id: String,
    pub rule_version: String,
    pub severity: Severity,
    /// The entity the rule grouped by (a `psn_`/`rec_` token or a licence number).
    pub group_key: String,
    pub summary: String,
    /// Contributing events (`source/id`), in event-time order.
    pub evidence: Vec<String>,
    /// Event time of the event that completed the evidence.
    pub time: SystemTime,
    /// Area code of that event.
    pub region: String,
}

/// Counters the correlator reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    /// Events older than the watermark minus the allowed lateness.
    pub late_events: u64,
    pub alerts: u64,
}

#[derive(Debug, Clone)]
struct Occ {
    time: SystemTime,
    key: String,
    location: String,
    region: String,
}

impl Occ {
    fn of(f: &Facts) -> Self {
        Self {
            time: f.time,
            key: f.key.clone(),
            location: f.location.clone(),
            region: f.region.clone(),
        }
    }

    fn order(&self) -> (SystemTime, &str) {
        (self.time, &self.key)
    }
}

/// One event's contribution to a count rule.
#[derive(Debug, Clone)]
struct Contribution {
    occ: Occ,
    groups: Vec<String>,
    values: Vec<(Fact, Vec<String>)>,
}

type Due = (SystemTime, String, String);

#[derive(Debug, Default)]
struct RuleState {
    /// Sequence: `when` and `then` occurrences per group.
    whens: HashMap<String, Vec<Occ>>,
    thens: HashMap<String, Vec<Occ>>,
    /// Absence and state: triggers waiting for their decision, by (due, group, event).
    pending: BTreeMap<Due, Occ>,
    /// Absence: times of the events whose presence cancels a trigger, per group.
    seen: HashMap<String, Vec<SystemTime>>,
    /// State: the group entity's recorded values over time.
    history: HashMap<String, Vec<(SystemTime, String, String)>>,
    /// Count: contributions waiting for the watermark, in event-time order.
    queue: BTreeMap<(SystemTime, String), Contribution>,
    /// Count: the sliding window per group, and when it last fired.
    windows: HashMap<String, VecDeque<Contribution>>,
    fired: HashMap<String, SystemTime>,
}

/// Evaluates one rule set.
#[derive(Debug)]
pub struct Engine {
    set: RuleSet,
    lateness: Duration,
    watermark: Option<SystemTime>,
    states: Vec<RuleState>,
    stats: Stats,
    since_evict: u64,
}

fn alert_id(rule: &Rule, version: &str, group: &str, evidence: &[String]) -> String {
    let mut h = Sha256::new();
    for part in [rule.id.as_str(), version, group] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for e in evidence {
        h.update(e.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut id = String::from("alr_");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Build the alert of `rule` for `group` from its evidence; `last` completed it.
fn make_alert(
    rule: &Rule,
    version: &str,
    group: &str,
    mut evidence: Vec<&Occ>,
    last: &Occ,
) -> Alert {
    evidence.sort_by(|a, b| a.order().cmp(&b.order()));
    let keys: Vec<String> = evidence.iter().map(|o| o.key.clone()).collect();
    Alert {
        id: alert_id(rule, version, group, &keys),
        rule_id: rule.id.clone(),
        rule_version: version.to_owned(),
        severity: rule.severity,
        group_key: group.to_owned(),
        summary: rule.summary.clone(),
        evidence: keys,
        time: last.time,
        region: last.region.clone(),
    }
}

impl Engine {
    /// An engine for `set`, accepting events up to `lateness` out of order.
    pub fn new(set: RuleSet, lateness: Duration) -> Self {
        let states = set.rules.iter().map(|_| RuleState::default()).collect();
        Self {
            set,
            lateness,
            watermark: None,
            states,
            stats: Stats::default(),
            since_evict: 0,
        }
    }

    /// The rule set's version.
    pub fn version(&self) -> &str {
        &self.set.version
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
        if let Some(timpora_proto::v1::event::Payload::ClockTick(_)) = &ev.payload {
            return match ev.time.map(SystemTime::try_from) {
                Some(Ok(at)) => self.tick(at),
                _ => Vec::new(),
            };
        }
        match Facts::of(ev) {
            Some(f) => self.observe_facts(&f),
            None => Vec::new(),
        }
    }

    /// [`Engine::observe`] for facts already read.
    pub fn observe_facts(&mut self, f: &Facts) -> Vec<Alert> {
        self.stats.events += 1;
        if self.watermark.is_some_and(|wm| f.time + self.lateness < wm) {
            self.stats.late_events += 1;
            tracing::warn!(event = %f.key, "event later than the allowed lateness");
        }
        let mut out = Vec::new();
        let occ = Occ::of(f);
        let version = self.set.version.as_str();
        for (rule, st) in self.set.rules.iter().zip(&mut self.states) {
            let groups = f.keys(rule.group_by);
            if groups.is_empty() {
                continue;
            }
            match &rule.shape {
                Shape::Sequence {
                    when,
                    then,
                    within,
                    differs,
                } => {
                    let (is_when, is_then) = (f.matches(when), f.matches(then));
                    if !is_when && !is_then {
                        continue;
                    }
                    let fits = |w: &Occ, t: &Occ| {
                        w.key != t.key
                            && w.order() < t.order()
                            && t.time.duration_since(w.time).is_ok_and(|d| d <= *within)
                            && differs.iter().all(|fact| match fact {
                                Fact::Location => w.location != t.location,
                                Fact::Village => w.region != t.region,
                                _ => true,
                            })
                    };
                    for g in groups {
                        let mut pairs: Vec<(Occ, Occ)> = Vec::new();
                        if is_then {
                            for w in st.whens.get(g).into_iter().flatten() {
                                if fits(w, &occ) {
                                    pairs.push((w.clone(), occ.clone()));
                                }
                            }
                        }
                        if is_when {
                            for t in st.thens.get(g).into_iter().flatten() {
                                if fits(&occ, t) {
                                    pairs.push((occ.clone(), t.clone()));
                                }
                            }
                            st.whens.entry(g.clone()).or_default().push(occ.clone());
                        }
                        if is_then {
                            st.thens.entry(g.clone()).or_default().push(occ.clone());
                        }
                        for (w, t) in pairs {
                            out.push(make_alert(rule, version, g, vec![&w, &t], &t));
                        }
                    }
                }
                Shape::Absence {
                    when,
                    absent,
                    after,
                    ..
                } => {
                    let due = f.time + *after + self.lateness;
                    let (is_when, is_absent) = (f.matches(when), f.matches(absent));
                    for g in groups {
                        if is_absent {
                            st.seen.entry(g.clone()).or_default().push(f.time);
                        }
                        if is_when {
                            st.pending
                                .insert((due, g.clone(), f.key.clone()), occ.clone());
                        }
                    }
                }
                Shape::State {
                    when, from, fact, ..
                } => {
                    let is_when = f.matches(when);
                    let is_from = from.iter().any(|t| t.name == f.type_name);
                    let value = f.get(*fact).first().map(|v| (*v).to_owned());
                    let due = f.time + self.lateness;
                    for g in groups {
                        if let (true, Some(v)) = (is_from, &value) {
                            st.history.entry(g.clone()).or_default().push((
                                f.time,
                                f.key.clone(),
                                v.clone(),
                            ));
                        }
                        if is_when {
                            st.pending
                                .insert((due, g.clone(), f.key.clone()), occ.clone());
                        }
                    }
                }
                Shape::Count {
                    matcher, distinct, ..
                } => {
                    if f.matches(matcher) {
                        let values = distinct
                            .iter()
                            .map(|(fact, _)| {
                                (
                                    *fact,
                                    f.get(*fact).iter().map(|v| (*v).to_owned()).collect(),
                                )
                            })
                            .collect();
                        st.queue.insert(
                            (f.time, f.key.clone()),
                            Contribution {
                                occ: occ.clone(),
                                groups: groups.to_vec(),
                                values,
                            },
                        );
                    }
                }
            }
        }
        self.stats.alerts += out.len() as u64;
        self.advance(f.time, &mut out);
        out
    }

    /// A clock tick recorded in the stream: event time moves on without an event.
    pub fn tick(&mut self, at: SystemTime) -> Vec<Alert> {
        let mut out = Vec::new();
        self.advance(at, &mut out);
        out
    }

    /// Move the watermark to `at` (never back) and take every decision now due.
    fn advance(&mut self, at: SystemTime, out: &mut Vec<Alert>) {
        let wm = self.watermark.map_or(at, |w| w.max(at));
        self.watermark = Some(wm);
        let before_decisions = out.len();
        let version = self.set.version.as_str();
        for (rule, st) in self.set.rules.iter().zip(&mut self.states) {
            match &rule.shape {
                Shape::Absence { before, after, .. } => {
                    while let Some(entry) = st.pending.first_entry() {
                        if entry.key().0 > wm {
                            break;
                        }
                        let ((_, g, _), w) = entry.remove_entry();
                        let from = w
                            .time
                            .checked_sub(*before)
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        let to = w.time + *after;
                        let cancelled = st
                            .seen
                            .get(&g)
                            .is_some_and(|ts| ts.iter().any(|t| *t >= from && *t <= to));
                        if !cancelled {
                            out.push(make_alert(rule, version, &g, vec![&w], &w));
                        }
                    }
                }
                Shape::State { values, .. } => {
                    while let Some(entry) = st.pending.first_entry() {
                        if entry.key().0 > wm {
                            break;
                        }
                        let ((_, g, _), w) = entry.remove_entry();
                        let latest = st.history.get(&g).and_then(|h| {
                            h.iter()
                                .filter(|(t, _, _)| *t <= w.time)
                                .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
                        });
                        if let Some((t, key, v)) = latest
                            && values.contains(v)
                        {
                            let state = Occ {
                                time: *t,
                                key: key.clone(),
                                location: String::new(),
                                region: String::new(),
                            };
                            out.push(make_alert(rule, version, &g, vec![&state, &w], &w));
                        }
                    }
                }
                Shape::Count {
                    window, distinct, ..
                } => {
                    while let Some(entry) = st.queue.first_entry() {
                        if entry.key().0 + self.lateness > wm {
                            break;
                        }
                        let c = entry.remove();
                        for g in &c.groups {
                            if let Some(a) = count(rule, version, st, g, &c, *window, distinct) {
                                out.push(a);
                            }
                        }
                    }
                }
                Shape::Sequence { .. } => {}
            }
        }
        self.stats.alerts += (out.len() - before_decisions) as u64;
        self.since_evict += 1;
        if self.since_evict >= 4096 {
            self.since_evict = 0;
            self.evict();
        }
    }

    /// Drop what no future (timely) event can combine with.
    fn evict(&mut self) {
        let Some(wm) = self.watermark else { return };
        let lateness = self.lateness;
        for (rule, st) in self.set.rules.iter().zip(&mut self.states) {
            let keep = match &rule.shape {
                Shape::Sequence { within, .. } => *within,
                Shape::Absence { before, after, .. } => *before + *after,
                Shape::State { .. } => Duration::ZERO,
                Shape::Count { window, .. } => *window,
            } + lateness;
            let cutoff = wm.checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH);
            for list in st.whens.values_mut().chain(st.thens.values_mut()) {
                list.retain(|o| o.time >= cutoff);
            }
            st.whens.retain(|_, l| !l.is_empty());
            st.thens.retain(|_, l| !l.is_empty());
            for ts in st.seen.values_mut() {
                ts.retain(|t| *t >= cutoff);
            }
            st.seen.retain(|_, l| !l.is_empty());
            for h in st.history.values_mut() {
                // Keep everything after the cutoff and the last value before it.
                h.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                let older = h.iter().filter(|(t, _, _)| *t < cutoff).count();
                if older > 1 {
                    h.drain(..older - 1);
                }
            }
            for w in st.windows.values_mut() {
                while w.front().is_some_and(|x| x.occ.time < cutoff) {
                    w.pop_front();
                }
            }
            st.windows.retain(|_, w| !w.is_empty());
            st.fired.retain(|_, t| *t >= cutoff);
        }
    }

    /// Groups currently holding state, over all rules (for the state cap and its metric).
    pub fn tracked(&self) -> usize {
        self.states
            .iter()
            .map(|s| {
                s.whens.len() + s.thens.len() + s.seen.len() + s.history.len() + s.windows.len()
            })
            .sum()
    }
}

/// Add `c` to `g`'s sliding window of a count rule; the alert when the thresholds are first met
/// in an episode (no second alert until a window has passed since the first).
fn count(
    rule: &Rule,
    version: &str,
    st: &mut RuleState,
    g: &str,
    c: &Contribution,
    window: Duration,
    distinct: &[(Fact, u32)],
) -> Option<Alert> {
    let win = st.windows.entry(g.to_owned()).or_default();
    win.push_back(c.clone());
    let start = c
        .occ
        .time
        .checked_sub(window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    while win.front().is_some_and(|x| x.occ.time < start) {
        win.pop_front();
    }
    let met = distinct.iter().all(|(fact, min)| {
        let mut seen: Vec<&str> = win
            .iter()
            .flat_map(|x| {
                x.values
                    .iter()
                    .filter(|(f, _)| f == fact)
                    .flat_map(|(_, v)| v.iter().map(String::as_str))
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len() >= *min as usize
    });
    let quiet = st
        .fired
        .get(g)
        .is_none_or(|last| c.occ.time > *last + window);
    if !(met && quiet) {
        return None;
    }
    st.fired.insert(g.to_owned(), c.occ.time);
    let evidence: Vec<&Occ> = win.iter().map(|x| &x.occ).collect();
    Some(make_alert(rule, version, g, evidence, &c.occ))
}

#[cfg(test)]
mod tests;
