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
use crate::state::{Occ, RuleState};

/// What every shape is evaluated with.
pub(crate) struct Cx<'a> {
    pub rule: &'a Rule,
    pub version: &'a str,
    pub lateness: Duration,
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

    /// Take every decision due now that event time has reached `wm`.
    fn decide(&self, _cx: &Cx<'_>, _st: &mut RuleState, _wm: SystemTime, _out: &mut Vec<Alert>) {}
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
