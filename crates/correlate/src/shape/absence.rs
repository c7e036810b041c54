//! `when`, and no `absent` event from `before` the trigger until `after` it: decided once event
//! time has passed the trigger's `after` plus the allowed lateness, the reporting units whose
//! `absent` events could cancel it have reported that far (or could have), and the trigger's
//! batch has settled. An `absent` event reported later still withdraws the alert it cancels.

use std::sync::Arc;
use std::time::SystemTime;

use timpora_rules::Absence;

use super::{Cx, Evaluate, correct, when};
use crate::alert::{Alert, make_alert};
use crate::facts::{Facts, Key};
use crate::state::{Decision, Held, Occ, RuleState};

impl Evaluate for Absence {
    fn observe(
        &self,
        cx: &Cx<'_>,
        st: &mut RuleState,
        f: &Facts,
        occ: &Arc<Occ>,
        groups: &[Key],
        out: &mut Vec<Alert>,
    ) {
        let due = f.time + self.after + cx.lateness;
        let (is_when, is_absent) = (f.matches(&self.when), f.matches(&self.absent));
        if !is_when && !is_absent {
            return;
        }
        for g in groups {
            st.arrived(g, occ.arrival());
            if is_absent {
                Arc::make_mut(st.seen.entry(g.clone()).or_default()).push(f.time);
                let (before, after) = (self.before, self.after);
                let covers = |d: &Decision| {
                    let from = d
                        .trigger
                        .time
                        .checked_sub(before)
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    f.time >= from && f.time <= d.trigger.time + after
                };
                let why = || {
                    format!(
                        "{} of {}, reported late, is within the window the rule found empty",
                        f.type_name,
                        when(f.time)
                    )
                };
                correct(cx, st, g, occ, covers, why, out);
            }
            if is_when {
                st.pending
                    .insert((due, g.clone(), f.key.clone()), occ.clone());
            }
        }
    }

    fn decide(&self, cx: &Cx<'_>, st: &mut RuleState, out: &mut Vec<Alert>) {
        let grace = cx.rule.reports.grace;
        for (g, held) in st.ready(cx.until, cx.clock, grace, cx.lateness) {
            let Held::Trigger(w) = held else { continue };
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
                let a = make_alert(cx.rule, cx.version, &g, vec![&w], &w);
                st.decided(
                    &g,
                    Decision {
                        trigger: w,
                        finding: Some(a.id.clone()),
                    },
                );
                out.push(a);
            }
        }
    }
}
