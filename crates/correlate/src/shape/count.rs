//! Within a sliding `window`, matching events show at least so many distinct values (persons,
//! villages, …): contributions wait for the watermark, are then added in event-time order, and
//! an episode raises one alert (no second until a window has passed since the first).

use std::sync::Arc;
use std::time::SystemTime;

use timpora_rules::Count;

use super::{Cx, Evaluate};
use crate::alert::{Alert, make_alert};
use crate::facts::{Facts, Key};
use crate::state::{Contribution, Occ, RuleState};

impl Evaluate for Count {
    fn observe(
        &self,
        _cx: &Cx<'_>,
        st: &mut RuleState,
        f: &Facts,
        occ: &Arc<Occ>,
        groups: &[Key],
        _out: &mut Vec<Alert>,
    ) {
        if !f.matches(&self.matcher) {
            return;
        }
        let values = self
            .distinct
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
            Arc::new(Contribution {
                occ: Arc::clone(occ),
                groups: groups.to_vec(),
                values,
            }),
        );
    }

    fn decide(&self, cx: &Cx<'_>, st: &mut RuleState, wm: SystemTime, out: &mut Vec<Alert>) {
        while let Some(entry) = st.queue.first_entry() {
            if entry.key().0 + cx.lateness > wm {
                break;
            }
            let c = entry.remove();
            for g in &c.groups {
                if let Some(a) = add(self, cx, st, g, &c) {
                    out.push(a);
                }
            }
        }
    }
}

/// Add `c` to `g`'s sliding window of `rule`; the alert when the thresholds are first met in
/// an episode, and — for a rule whose alerts grow — again with each contribution that brings a
/// new counted value while they stay met (the engine turns those into extensions of the first).
fn add(
    rule: &Count,
    cx: &Cx<'_>,
    st: &mut RuleState,
    g: &Key,
    c: &Arc<Contribution>,
) -> Option<Alert> {
    let win = Arc::make_mut(st.windows.entry(g.clone()).or_default());
    win.push_back(Arc::clone(c));
    let start = c
        .occ
        .time
        .checked_sub(rule.window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    while win.front().is_some_and(|x| x.occ.time < start) {
        win.pop_front();
    }
    // Whether `c` brings a value the window did not have (a new person, a new village): only
    // then does an alert that grows have something new to say.
    let novel = rule.distinct.iter().any(|(fact, _)| {
        c.values
            .iter()
            .filter(|(f, _)| f == fact)
            .flat_map(|(_, v)| v)
            .any(|v| {
                !win.iter()
                    .take(win.len() - 1)
                    .any(|x| x.values.iter().any(|(f, vs)| f == fact && vs.contains(v)))
            })
    });
    let met = rule.distinct.iter().all(|(fact, min)| {
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
        .is_none_or(|last| c.occ.time > *last + rule.window);
    if !met || !(quiet || (cx.rule.extend && novel)) {
        return None;
    }
    if quiet {
        st.fired.insert(g.clone(), c.occ.time);
    }
    let evidence: Vec<&Occ> = win.iter().map(|x| x.occ.as_ref()).collect();
    Some(make_alert(cx.rule, cx.version, g, evidence, &c.occ))
}
