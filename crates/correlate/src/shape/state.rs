//! `when`, while the group entity's last recorded `fact` (from `from` events) is one of
//! `values`: decided once event time has passed the trigger plus the allowed lateness, so a
//! state reported a little late still counts.

use std::sync::Arc;
use std::time::SystemTime;

use timpora_rules::State;

use super::{Cx, Evaluate};
use crate::alert::{Alert, make_alert};
use crate::facts::{Facts, Key};
use crate::state::{Occ, RuleState};

impl Evaluate for State {
    fn observe(
        &self,
        cx: &Cx<'_>,
        st: &mut RuleState,
        f: &Facts,
        occ: &Arc<Occ>,
        groups: &[Key],
        _out: &mut Vec<Alert>,
    ) {
        let is_when = f.matches(&self.when);
        let is_from = self.from.iter().any(|t| t.name == f.type_name);
        let value = f.get(self.fact).first().map(|v| (*v).to_owned());
        let due = f.time + cx.lateness;
        for g in groups {
            if let (true, Some(v)) = (is_from, &value) {
                Arc::make_mut(st.history.entry(g.clone()).or_default()).push((
                    f.time,
                    f.key.clone(),
                    v.clone(),
                    f.sequence,
                    f.classification,
                ));
            }
            if is_when {
                st.pending
                    .insert((due, g.clone(), f.key.clone()), occ.clone());
            }
        }
    }

    fn decide(&self, cx: &Cx<'_>, st: &mut RuleState, wm: SystemTime, out: &mut Vec<Alert>) {
        while let Some((g, w)) = st.next_due(wm) {
            let latest = st.history.get(&g).and_then(|h| {
                h.iter()
                    .filter(|(t, ..)| *t <= w.time)
                    .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
            });
            if let Some((t, key, v, seq, classification)) = latest
                && self.values.contains(v)
            {
                let state = Occ {
                    time: *t,
                    key: key.clone(),
                    location: String::new(),
                    region: String::new(),
                    seq: *seq,
                    classification: *classification,
                };
                out.push(make_alert(cx.rule, cx.version, &g, vec![&state, &w], &w));
            }
        }
    }
}
