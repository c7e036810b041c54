//! `when`, while the group entity's last recorded `fact` (from `from` events) is one of
//! `values`: decided once event time has passed the trigger plus the allowed lateness, the
//! reporting units of the `from` events have reported that far (or could have), and the
//! trigger's batch has settled. A state reported later still, back-dated before a trigger
//! already decided, decides it again: the alert it now raises is marked as raised on late
//! evidence, the alert it no longer supports is withdrawn.

use std::sync::Arc;
use std::time::SystemTime;

use timpora_rules::State;

use super::{Cx, Evaluate, correct, when};
use crate::alert::{Alert, make_alert};
use crate::facts::{Facts, Key};
use crate::state::{Decision, Held, Occ, Recorded, RuleState};

/// The state `g` had at `at`, as an occurrence (evidence), if recorded.
fn state_at(st: &RuleState, g: &Key, at: SystemTime) -> Option<(Occ, String)> {
    let h = st.history.get(g)?;
    let (t, key, v, seq, classification): &Recorded = h
        .iter()
        .filter(|(t, ..)| *t <= at)
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))?;
    Some((
        Occ {
            time: *t,
            key: key.clone(),
            location: String::new(),
            region: String::new(),
            seq: *seq,
            classification: *classification,
            delay: 0,
        },
        v.clone(),
    ))
}

/// The alert of `rule` for trigger `w` of `g`, if the state then was one of its values.
fn verdict(rule: &State, cx: &Cx<'_>, st: &RuleState, g: &Key, w: &Occ) -> Option<Alert> {
    let (state, v) = state_at(st, g, w.time)?;
    if !rule.values.contains(&v) {
        return None;
    }
    Some(make_alert(cx.rule, cx.version, g, vec![&state, w], w))
}

impl Evaluate for State {
    fn observe(
        &self,
        cx: &Cx<'_>,
        st: &mut RuleState,
        f: &Facts,
        occ: &Arc<Occ>,
        groups: &[Key],
        out: &mut Vec<Alert>,
    ) {
        let is_when = f.matches(&self.when);
        let is_from = self.from.iter().any(|t| t.name == f.type_name);
        if !is_when && !is_from {
            return;
        }
        let value = f.get(self.fact).first().map(|v| (*v).to_owned());
        let due = f.time + cx.lateness;
        for g in groups {
            st.arrived(g, occ.arrival());
            if let (true, Some(v)) = (is_from, &value) {
                Arc::make_mut(st.history.entry(g.clone()).or_default()).push((
                    f.time,
                    f.key.clone(),
                    v.clone(),
                    f.sequence,
                    f.classification,
                ));
                redecide(self, cx, st, g, occ, v, out);
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
            let alert = verdict(self, cx, st, &g, &w);
            st.decided(
                &g,
                Decision {
                    trigger: w,
                    finding: alert.as_ref().map(|a| a.id.clone()),
                },
            );
            out.extend(alert);
        }
    }
}

/// A state recorded late (`report`, value `v`): decide again every decision of `g` it
/// precedes, raising what it now supports and withdrawing what it no longer does.
fn redecide(
    rule: &State,
    cx: &Cx<'_>,
    st: &mut RuleState,
    g: &Key,
    report: &Arc<Occ>,
    v: &str,
    out: &mut Vec<Alert>,
) {
    let Some(list) = st
        .decided
        .get(g)
        .filter(|l| l.iter().any(|d| d.trigger.time >= report.time))
    else {
        return;
    };
    let now: Vec<(usize, Option<Alert>)> = list
        .iter()
        .enumerate()
        .filter(|(_, d)| d.trigger.time >= report.time)
        .map(|(i, d)| (i, verdict(rule, cx, st, g, &d.trigger)))
        .collect();
    let gone: Vec<String> = now
        .iter()
        .filter(|(i, a)| a.is_none() && list[*i].finding.is_some())
        .map(|(i, _)| list[*i].trigger.key.clone())
        .collect();
    if !gone.is_empty() {
        let why = || {
            format!(
                "{} {} of {}, reported late, is in force at the trigger's time",
                rule.fact.name(),
                v,
                when(report.time)
            )
        };
        correct(
            cx,
            st,
            g,
            report,
            |d| gone.contains(&d.trigger.key),
            why,
            out,
        );
    }
    let Some(list) = st.decided.get_mut(g) else {
        return;
    };
    let list = Arc::make_mut(list);
    for (i, a) in now {
        if let Some(mut a) = a
            && list[i].finding.is_none()
        {
            a.late = true;
            list[i].finding = Some(a.id.clone());
            out.push(a);
        }
    }
}
