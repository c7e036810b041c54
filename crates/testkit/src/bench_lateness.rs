//! What the lateness policy costs and spares (`timpora bench lateness`): a seeded scenario of
//! agency reports is played through the engine twice in the hub's recorded time — once as if
//! every office reported live, once as offices really report (Kanim offices enter the day's
//! interviews the next morning at 08:00, BP3MI exports its registrations nightly at 01:00,
//! checkpoints, police, villages and Disnaker report within seconds) — and, for the second, once
//! more without the policy (no grace, no waiting for reporting units).
//!
//! For each R1, R4 and R5 alert it takes the delay the policy adds: the hub time it was raised
//! minus the earliest hub time it could have been (every piece of its evidence recorded, and its
//! horizon passed in event time, as the live run has it). Without the policy it counts the
//! alerts raised too early and withdrawn later. Deterministic: no wall clock, no NATS.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use timpora_correlate::{Alert, Engine};
use timpora_proto::v1::Event;
use timpora_rules::RuleSet;
use timpora_scenario::{Scenario, Spec};

/// What to play.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Background events (storyline events come on top).
    pub events: u64,
    pub seed: u64,
    /// Allowed lateness of the engine.
    pub lateness: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            events: 200_000,
            seed: 1,
            lateness: Duration::from_secs(5),
        }
    }
}

/// Delay figures of one rule (seconds of hub time).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleFigures {
    /// Alerts (findings and extensions) raised as offices really report.
    pub alerts: u64,
    /// Alerts raised in the live run (every office reporting at once).
    pub alerts_live: u64,
    pub delay_p50_s: u64,
    pub delay_p95_s: u64,
    pub delay_max_s: u64,
    /// Without the policy: alerts raised and then withdrawn by a report that came later.
    pub withdrawn_without_policy: u64,
    /// With the policy: the same.
    pub withdrawn_with_policy: u64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub events: u64,
    pub seed: u64,
    pub rules: std::collections::BTreeMap<String, RuleFigures>,
}

/// When each office's system sends what happened at `t` (hub time).
fn recorded(source: &str, t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs - secs % 86_400;
    let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let (agency, unit) = source.split_once('/').unwrap_or((source, ""));
    match agency {
        // Interviews entered the next morning.
        "imigrasi" if unit.starts_with("kanim") => at(day + 86_400 + 8 * 3_600),
        // Registrations exported nightly.
        "bp3mi" => at(day + 86_400 + 3_600),
        _ => t + Duration::from_secs(5),
    }
}

/// Play `events` (each with its `recorded_at`) in recorded order, hub time ticking each minute
/// between them; every alert with the hub time it was raised.
fn play(set: &RuleSet, lateness: Duration, events: &[Event]) -> Vec<(Alert, SystemTime)> {
    let mut engine = Engine::new(set.clone(), lateness);
    let mut out = Vec::new();
    let mut take = |engine: &Engine, alerts: Vec<Alert>| {
        let now = engine.clock().unwrap_or(SystemTime::UNIX_EPOCH);
        out.extend(alerts.into_iter().map(|a| (a, now)));
    };
    let mut next_tick: Option<SystemTime> = None;
    for ev in events {
        let Some(at) = ev.recorded_at.and_then(|t| SystemTime::try_from(t).ok()) else {
            continue;
        };
        let mut tick = next_tick.unwrap_or(at);
        while tick < at {
            let alerts = engine.tick(tick);
            take(&engine, alerts);
            tick += Duration::from_secs(60);
        }
        next_tick = Some(tick);
        let alerts = engine.observe(ev);
        take(&engine, alerts);
    }
    // Then hub time runs on for two days: every decision that waits is taken.
    if let Some(mut tick) = next_tick {
        let end = tick + Duration::from_secs(2 * 86_400);
        while tick < end {
            let alerts = engine.tick(tick);
            take(&engine, alerts);
            tick += Duration::from_secs(60);
        }
    }
    out
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Run the comparison.
pub fn run(s: &Settings, set: &RuleSet) -> Report {
    let span = Duration::from_secs(90 * 86_400);
    let end = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let spec = Spec {
        seed: s.seed,
        events: s.events,
        persons: (s.events / 10).max(50) as u32,
        recruiters: (s.events / 300).max(10) as u32,
        villages: (s.events / 300).max(10) as u32,
        companies: 50,
        start: end - span,
        span,
        storyline_every: 200,
    };
    let scenario: Vec<Event> = Scenario::new(spec).collect();
    let stamp = |f: &dyn Fn(&Event, SystemTime) -> SystemTime| {
        let mut v: Vec<Event> = scenario
            .iter()
            .cloned()
            .map(|mut e| {
                let t = e
                    .time
                    .and_then(|t| SystemTime::try_from(t).ok())
                    .unwrap_or(end);
                e.recorded_at = Some(f(&e, t).into());
                e
            })
            .collect();
        // Stable: an office's batch keeps its own order.
        v.sort_by_key(|e| {
            e.recorded_at
                .and_then(|t| SystemTime::try_from(t).ok())
                .unwrap_or(end)
        });
        v
    };
    let live = stamp(&|_, t| t);
    let real = stamp(&|e, t| recorded(&e.source, t));
    // When each event was recorded as offices really report.
    let real_at: HashMap<String, SystemTime> = real
        .iter()
        .filter_map(|e| {
            let at = SystemTime::try_from(e.recorded_at?).ok()?;
            Some((format!("{}/{}", e.source, e.id), at))
        })
        .collect();
    let hasty_set = {
        let text = timpora_rules::DEFAULT_RULES
            .replacen("grace = \"30s\"", "grace = \"0s\"", 1)
            .replacen("idle = \"36h\"", "idle = \"1s\"", 1);
        timpora_rules::parse(&text).unwrap_or_else(|_| set.clone())
    };
    let live_alerts = play(set, s.lateness, &live);
    let real_alerts = play(set, s.lateness, &real);
    let hasty_alerts = play(&hasty_set, s.lateness, &real);
    // How long after its completing event a rule's decision is due (event time = hub time for
    // an office reporting live).
    let after: HashMap<&str, Duration> = set
        .rules
        .iter()
        .map(|r| {
            let after = match &r.shape {
                timpora_rules::Shape::Absence(a) => a.after,
                _ => Duration::ZERO,
            };
            (r.id.as_str(), after + s.lateness)
        })
        .collect();
    let mut rules: std::collections::BTreeMap<String, RuleFigures> = Default::default();
    let mut delays: HashMap<String, Vec<u64>> = HashMap::new();
    for rule in ["R1", "R4", "R5"] {
        rules.insert(rule.into(), RuleFigures::default());
    }
    for (a, _) in &live_alerts {
        if let Some(f) = rules.get_mut(&a.rule_id)
            && a.correction.is_none()
        {
            f.alerts_live += 1;
        }
    }
    for (a, at) in &real_alerts {
        let Some(f) = rules.get_mut(&a.rule_id) else {
            continue;
        };
        if let Some(c) = &a.correction {
            f.withdrawn_with_policy += u64::from(c.withdrawn);
            continue;
        }
        f.alerts += 1;
        // Earliest: its horizon passed, and every piece of its evidence recorded.
        let due = a.time + after.get(a.rule_id.as_str()).copied().unwrap_or_default();
        let earliest = a
            .evidence
            .iter()
            .filter_map(|k| real_at.get(k))
            .copied()
            .fold(due, SystemTime::max);
        let delay = at.duration_since(earliest).map_or(0, |d| d.as_secs());
        delays.entry(a.rule_id.clone()).or_default().push(delay);
    }
    for (a, _) in &hasty_alerts {
        if let (Some(f), Some(c)) = (rules.get_mut(&a.rule_id), &a.correction) {
            f.withdrawn_without_policy += u64::from(c.withdrawn);
        }
    }
    for (rule, mut d) in delays {
        d.sort_unstable();
        if let Some(f) = rules.get_mut(&rule) {
            f.delay_p50_s = percentile(&d, 0.5);
            f.delay_p95_s = percentile(&d, 0.95);
            f.delay_max_s = d.last().copied().unwrap_or_default();
        }
    }
    Report {
        events: scenario.len() as u64,
        seed: s.seed,
        rules,
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} events (seed {}): offices as they really report vs all live",
            self.events, self.seed
        )?;
        for (rule, r) in &self.rules {
            writeln!(
                f,
                "{rule}: {} alerts ({} live); delay added p50 {} s, p95 {} s, max {} s; withdrawn later: {} with the policy, {} without",
                r.alerts,
                r.alerts_live,
                r.delay_p50_s,
                r.delay_p95_s,
                r.delay_max_s,
                r.withdrawn_with_policy,
                r.withdrawn_without_policy
            )?;
        }
        Ok(())
    }
}
