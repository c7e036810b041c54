//! The rule shapes, one module each (the way mini-redis keeps one file per command behind one
//! enum): what a shape does with an event as it arrives ([`Evaluate::observe`]) and with the
//! decisions due once event time has moved on ([`Evaluate::decide`]). A new shape is a new
//! module here and its arm in [`of`], plus its syntax and checks in `timpora-rules`; what every
//! shape shares (grouping, lateness, eviction, the state cap, checkpoints) stays in the engine.

mod absence;
mod count;
mod sequence;
mod state;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use timpora_rules::{Rule, Shape};

use crate::alert::Alert;
use crate::facts::{Facts, Key};
use crate::state::{Decision, Occ, RuleState};

/// What every shape is evaluated with.
pub(crate) struct Cx<'a> {
    pub rule: &'a Rule,
    pub version: &'a str,
    pub lateness: Duration,
    /// The hub's recorded time so far.
    pub clock: SystemTime,
    /// Decisions due (by event time) up to here may be taken: the latest event time, held back
    /// to what the reporting units this rule waits for have reported (or could have).
    pub until: SystemTime,
}

/// How one shape turns events into alerts.
pub(crate) trait Evaluate {
    /// Take one event (`f`, shared as `occ`) of the rule's `groups` in; an alert it completes
    /// at once goes to `out`.
    fn observe(
        &self,
        cx: &Cx<'_>,
        st: &mut RuleState,
        f: &Facts,
        occ: &Arc<Occ>,
        groups: &[Key],
        out: &mut Vec<Alert>,
    );

    /// Take every decision now ready (see [`Cx::until`]; its batch settled).
    fn decide(&self, _cx: &Cx<'_>, _st: &mut RuleState, _out: &mut Vec<Alert>) {}
}

/// The evaluation of a rule's shape.
pub(crate) fn of(shape: &Shape) -> &dyn Evaluate {
    match shape {
        Shape::Sequence(s) => s,
        Shape::Absence(a) => a,
        Shape::State(s) => s,
        Shape::Count(c) => c,
    }
}

/// Clear `g`'s decisions that the late report `report` shows no longer hold (`cleared`), and
/// say so (`why`, stated only if it is said): one correction per finding they raised, withdrawing it when none of its decisions
/// still holds (its open alert then stops growing: the next match is a new finding).
pub(crate) fn correct(
    cx: &Cx<'_>,
    st: &mut RuleState,
    g: &Key,
    report: &Occ,
    cleared: impl Fn(&Decision) -> bool,
    why: impl FnOnce() -> String,
    out: &mut Vec<Alert>,
) {
    let Some(list) = st.decided.get_mut(g) else {
        return;
    };
    if !list.iter().any(|d| d.finding.is_some() && cleared(d)) {
        return;
    }
    let why = why();
    let list = Arc::make_mut(list);
    let mut findings: Vec<String> = Vec::new();
    for d in list.iter_mut() {
        if cleared(d)
            && let Some(f) = d.finding.take()
            && !findings.contains(&f)
        {
            findings.push(f);
        }
    }
    for f in findings {
        let stands = list
            .iter()
            .any(|d| d.finding.as_deref() == Some(f.as_str()));
        let why = if stands {
            format!("{why}; the alert stands on its other evidence")
        } else {
            if st.open.get(g).is_some_and(|o| o.id == f) {
                st.open.remove(g);
            }
            format!("withdrawn: {why}")
        };
        out.push(crate::alert::correction(
            cx.rule, cx.version, g, &f, !stands, why, report,
        ));
    }
}

/// An event time as the reasons state it (UTC, to the second).
pub(crate) fn when(t: SystemTime) -> String {
    let mut ts = prost_types::Timestamp::from(t);
    ts.nanos = 0;
    ts.to_string()
}
