//! `when`, then a later `then` event within `within`: decided pair by pair the moment the second
//! event of a pair arrives, whichever of the two the stream brings first.

use std::sync::Arc;

use timpora_rules::{Fact, Sequence};

use super::{Cx, Evaluate};
use crate::alert::{Alert, make_alert};
use crate::facts::{Facts, Key};
use crate::state::{Occ, RuleState};

impl Evaluate for Sequence {
    fn observe(
        &self,
        cx: &Cx<'_>,
        st: &mut RuleState,
        f: &Facts,
        occ: &Arc<Occ>,
        groups: &[Key],
        out: &mut Vec<Alert>,
    ) {
        let (is_when, is_then) = (f.matches(&self.when), f.matches(&self.then));
        if !is_when && !is_then {
            return;
        }
        let fits = |w: &Occ, t: &Occ| {
            w.key != t.key
                && w.order() < t.order()
                && t.time
                    .duration_since(w.time)
                    .is_ok_and(|d| d <= self.within)
                && self.differs.iter().all(|fact| match fact {
                    Fact::Location => w.location != t.location,
                    Fact::Village => w.region != t.region,
                    _ => true,
                })
        };
        for g in groups {
            let mut pairs: Vec<(Arc<Occ>, Arc<Occ>)> = Vec::new();
            if is_then {
                for w in st.whens.get(g).into_iter().flat_map(|l| l.iter()) {
                    if fits(w, occ) {
                        pairs.push((w.clone(), occ.clone()));
                    }
                }
            }
            if is_when {
                for t in st.thens.get(g).into_iter().flat_map(|l| l.iter()) {
                    if fits(occ, t) {
                        pairs.push((occ.clone(), t.clone()));
                    }
                }
                Arc::make_mut(st.whens.entry(g.clone()).or_default()).push(occ.clone());
            }
            if is_then {
                Arc::make_mut(st.thens.entry(g.clone()).or_default()).push(occ.clone());
            }
            for (w, t) in pairs {
                out.push(make_alert(cx.rule, cx.version, g, vec![&w, &t], &t));
            }
        }
    }
}
