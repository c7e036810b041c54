//! `when`, and no `absent` event from `before` the trigger until `after` it: decided once event
//! time has passed the trigger's `after` plus the allowed lateness (the sources could still
//! have reported until then).

use std::sync::Arc;
use std::time::SystemTime;

use timpora_rules::Absence;

use super::{Cx, Evaluate};
use crate::alert::{Alert, make_alert};
use crate::facts::{Facts, Key};
use crate::state::{Occ, RuleState};

impl Evaluate for Absence {
    fn observe(
        &self,
        cx: &Cx<'_>,
        st: &mut RuleState,
        f: &Facts,
        occ: &Arc<Occ>,
        groups: &[Key],
        _out: &mut Vec<Alert>,
    ) {
        let due = f.time + self.after + cx.lateness;
        let (is_when, is_absent) = (f.matches(&self.when), f.matches(&self.absent));
        for g in groups {
            if is_absent {
                Arc::make_mut(st.seen.entry(g.clone()).or_default()).push(f.time);
            }
            if is_when {
                st.pending
                    .insert((due, g.clone(), f.key.clone()), occ.clone());
            }
        }
    }

    fn decide(&self, cx: &Cx<'_>, st: &mut RuleState, wm: SystemTime, out: &mut Vec<Alert>) {
        while let Some((g, w)) = st.next_due(wm) {
            let from = w
                .time
                .checked_sub(self.before)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let to = w.time + self.after;
            let cancelled = st
                .seen
                .get(&g)
                .is_some_and(|ts| ts.iter().any(|t| *t >= from && *t <= to));
            if !cancelled {
                out.push(make_alert(cx.rule, cx.version, &g, vec![&w], &w));
            }
        }
    }
}
