//! Within a sliding `window`, matching events show at least so many distinct values (persons,
//! villages, …): contributions wait until event time has passed them plus the allowed lateness,
//! the reporting units they wait for have reported that far (or could have), and their batch has
//! settled; they are then added in event-time order, and an episode raises one alert (no second
//! until a window has passed since the first). A contribution added behind later ones (reported
//! later still) is counted in the windows it falls in; what it completes is marked as raised on
//! late evidence.

use std::sync::Arc;
use std::time::SystemTime;

use timpora_rules::Count;

use super::{Cx, Evaluate};
use crate::alert::{Alert, make_alert};
use crate::facts::{Facts, Key};
use crate::state::{Contribution, Held, Occ, RuleState};

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
        for g in groups {
            st.arrived(g, occ.arrival());
        }
        st.queue.insert(
            (f.time, f.key.clone()),
            Arc::new(Contribution {
                occ: Arc::clone(occ),
                groups: groups.to_vec(),
                values,
            }),
        );
    }

    fn decide(&self, cx: &Cx<'_>, st: &mut RuleState, out: &mut Vec<Alert>) {
        let grace = cx.rule.reports.grace;
        for (g, held) in st.ready(cx.until, cx.clock, grace, cx.lateness) {
            let Held::Count(c) = held else { continue };
            if let Some(a) = add(self, cx, st, &g, &c) {
                out.push(a);
            }
        }
    }
}

/// The distinct values of `fact` among `win`.
fn distinct<'a>(
    win: impl Iterator<Item = &'a Arc<Contribution>>,
    fact: timpora_rules::Fact,
) -> usize {
    let mut seen: Vec<&str> = win
        .flat_map(|x| {
            x.values
                .iter()
                .filter(move |(f, _)| *f == fact)
                .flat_map(|(_, v)| v.iter().map(String::as_str))
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// Add `c` to `g`'s contributions of `rule` (kept in event-time order); the alert when the
/// thresholds are first met in an episode, and — for a rule whose alerts grow — again with each
/// contribution that brings a new counted value while they stay met (the engine turns those into
/// extensions of the first). Added behind later contributions, `c` is judged in each window
/// that ends within a window after it, the first one it completes counting.
fn add(
    rule: &Count,
    cx: &Cx<'_>,
    st: &mut RuleState,
    g: &Key,
    c: &Arc<Contribution>,
) -> Option<Alert> {
    let win = Arc::make_mut(st.windows.entry(g.clone()).or_default());
    let at = win.partition_point(|x| x.occ.order() <= c.occ.order());
    win.insert(at, Arc::clone(c));
    let late = at + 1 < win.len();
    // The windows to judge: the one ending at `c`, and for a late contribution those ending at
    // each later contribution within a window of it.
    let ends: Vec<usize> = (at..win.len())
        .take_while(|&e| e == at || win[e].occ.time <= c.occ.time + rule.window)
        .collect();
    for e in ends {
        let end = win[e].occ.time;
        let start = end
            .checked_sub(rule.window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let lo = win.partition_point(|x| x.occ.time < start);
        let span = lo..=e;
        // Whether `c` brings a value the window did not have (a new person, a new village):
        // only then does an alert that grows have something new to say.
        let novel = rule.distinct.iter().any(|(fact, _)| {
            c.values
                .iter()
                .filter(|(f, _)| f == fact)
                .flat_map(|(_, v)| v)
                .any(|v| {
                    !win.range(span.clone())
                        .filter(|x| !Arc::ptr_eq(x, c))
                        .any(|x| x.values.iter().any(|(f, vs)| f == fact && vs.contains(v)))
                })
        });
        let met = rule
            .distinct
            .iter()
            .all(|(fact, min)| distinct(win.range(span.clone()), *fact) >= *min as usize);
        let quiet = st.fired.get(g).is_none_or(|last| end > *last + rule.window);
        if !met || !(quiet || (cx.rule.extend && novel)) {
            continue;
        }
        if quiet {
            st.fired.insert(g.clone(), end);
        }
        let evidence: Vec<&Occ> = win.range(span).map(|x| x.occ.as_ref()).collect();
        let mut a = make_alert(cx.rule, cx.version, g, evidence, &win[e].occ);
        a.late |= late;
        return Some(a);
    }
    None
}
