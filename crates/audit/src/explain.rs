//! Why an alert was raised: its rule as the rule set of its version states it (taken from the
//! rules bucket's history), the contributing events in event time with each condition of the
//! rule as the event met it, whether replaying the events stream into a scratch engine with that
//! rule set reproduces the same alert id, and what every later piece of evidence changed.

use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use timpora_bus::{AlertMessage, Bus, Start};
use timpora_correlate::{Engine, Facts};
use timpora_proto::v1::{Alert, Event};
use timpora_rules::{Fact, Matcher, Rule, RuleSet, Shape};

use crate::error::Error;

/// One condition of a clause and what the event showed.
#[derive(Debug, Clone, Serialize)]
pub struct Condition {
    /// What the rule asks (`type is …`, `outcome is one of …`, `has passport`).
    pub asks: String,
    /// What the event had.
    pub had: String,
    /// Whether it held.
    pub met: bool,
}

/// A contributing event and how it met the rule.
#[derive(Debug, Clone, Serialize)]
pub struct Contribution {
    /// Its events-stream sequence.
    pub sequence: u64,
    /// `source/id`.
    pub key: String,
    /// Its type.
    pub r#type: String,
    /// Its event time (RFC 3339).
    pub time: String,
    /// The rule's clause it met (`when`, `then`, `count`, …) and the conditions of it.
    pub clause: String,
    pub conditions: Vec<Condition>,
}

/// A later change to the alert.
#[derive(Debug, Clone, Serialize)]
pub struct Later {
    /// The alert record that made it.
    pub id: String,
    /// `extended` or `withdrawn` / `corrected`.
    pub change: String,
    /// The evidence it added (`source/id`), or the late evidence of a correction.
    pub evidence: Vec<String>,
    /// Why, as the correlator said.
    pub why: String,
}

/// Why an alert was raised.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub alert_id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub rule_version: String,
    /// Where the rule set came from (`rules bucket revision N`).
    pub rule_source: String,
    /// How the rule decides, in words.
    pub rule: String,
    pub group_key: String,
    pub region: String,
    pub contributions: Vec<Contribution>,
    /// Whether the scratch replay raised the same alert id.
    pub reproduced: bool,
    /// Events the scratch engine was fed.
    pub replayed: u64,
    pub later: Vec<Later>,
}

fn rfc3339(t: Option<prost_types::Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

fn words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 && s > 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}

fn types(m: &Matcher) -> String {
    match m.types.is_empty() {
        true => "any event".into(),
        false => m
            .types
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// How a rule decides, in one line.
fn describe(rule: &Rule) -> String {
    match &rule.shape {
        Shape::Sequence(s) => format!(
            "sequence: {} then {} within {}",
            types(&s.when),
            types(&s.then),
            words(s.within)
        ),
        Shape::Absence(a) => format!(
            "absence: {} with no {} from {} before to {} after",
            types(&a.when),
            types(&a.absent),
            words(a.before),
            words(a.after)
        ),
        Shape::State(s) => format!(
            "state: {} while the last {} is one of {}",
            types(&s.when),
            s.fact.name(),
            s.values.join(", ")
        ),
        Shape::Count(c) => format!(
            "count: {} within {}, at least {}",
            types(&c.matcher),
            words(c.window),
            c.distinct
                .iter()
                .map(|(f, n)| format!("{n} distinct {}", f.name()))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}

/// The conditions of `m` as `ev` met them (or not).
fn conditions(m: &Matcher, ev: &Event, facts: Option<&Facts>) -> Vec<Condition> {
    let mut out = Vec::new();
    if !m.types.is_empty() {
        out.push(Condition {
            asks: format!("type is {}", types(m)),
            had: ev.r#type.clone(),
            met: m.types.iter().any(|t| t.name == ev.r#type),
        });
    }
    let values = |f: Fact| facts.map(|x| x.get(f).join(", ")).unwrap_or_default();
    for (f, wanted) in &m.conditions {
        let had = values(*f);
        out.push(Condition {
            asks: format!("{} is one of {}", f.name(), wanted.join(", ")),
            met: facts.is_some_and(|x| x.get(*f).iter().any(|v| wanted.iter().any(|w| w == v))),
            had,
        });
    }
    for f in &m.has {
        let had = values(*f);
        out.push(Condition {
            asks: format!("has {}", f.name()),
            met: !had.is_empty(),
            had,
        });
    }
    out
}

/// The clause of `rule` that `ev` met: its name and conditions.
fn clause(rule: &Rule, ev: &Event) -> (String, Vec<Condition>) {
    let facts = Facts::of(ev);
    let candidates: Vec<(&str, &Matcher)> = match &rule.shape {
        Shape::Sequence(s) => vec![("when", &s.when), ("then", &s.then)],
        Shape::Absence(a) => vec![("when", &a.when), ("absent", &a.absent)],
        Shape::State(s) => vec![("when", &s.when)],
        Shape::Count(c) => vec![("counted", &c.matcher)],
    };
    let met = |m: &Matcher| facts.as_ref().is_some_and(|f| f.matches(m));
    let Some(&(name, m)) = candidates
        .iter()
        .find(|(_, m)| met(m))
        .or(candidates.first())
    else {
        return ("when".into(), Vec::new());
    };
    // A state rule's other evidence is the state it was in.
    if let Shape::State(s) = &rule.shape
        && !met(m)
        && s.from.iter().any(|t| t.name == ev.r#type)
    {
        let had = facts
            .as_ref()
            .map(|f| f.get(s.fact).join(", "))
            .unwrap_or_default();
        return (
            "state".into(),
            vec![Condition {
                asks: format!("last {} is one of {}", s.fact.name(), s.values.join(", ")),
                met: s.values.iter().any(|v| had.split(", ").any(|h| h == v)),
                had,
            }],
        );
    }
    (name.to_owned(), conditions(m, ev, facts.as_ref()))
}

/// The rule set of `version`, from the rules bucket's history (newest first), with where it
/// came from.
async fn rule_set(bus: &Bus, version: &str) -> Result<(RuleSet, String), Error> {
    for (revision, text) in bus.rules_history().await?.into_iter().rev() {
        if let Ok(set) = timpora_rules::parse(&text)
            && set.version == version
        {
            return Ok((set, format!("rules bucket revision {revision}")));
        }
    }
    let set = timpora_rules::parse(timpora_rules::DEFAULT_RULES)
        .map_err(|e| Error::Proof(format!("the built-in rules: {e}")))?;
    if set.version == version {
        return Ok((set, "the built-in rule set".into()));
    }
    Err(Error::Proof(format!(
        "no rule set of version {version} in the rules bucket's history"
    )))
}

/// Explain `alert_id`, replaying with `lateness` as the correlator ran.
pub async fn explain(bus: &Bus, alert_id: &str, lateness: Duration) -> Result<Explanation, Error> {
    // The alert and every later record about it, from the alerts stream.
    let last = bus.stream_bounds(&bus.topology().alerts_stream).await?.last;
    let mut feed = bus.alert_feed().await?;
    let mut alert: Option<Alert> = None;
    let mut evidence: Vec<String> = Vec::new();
    let mut later = Vec::new();
    while last > 0
        && let Some(d) = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .ok()
            .flatten()
    {
        let d = d?;
        if let AlertMessage::Raised(a) = d.message {
            if a.id == alert_id {
                evidence.clone_from(&a.evidence);
                alert = Some(a);
            } else if alert.is_some() && a.extends == alert_id {
                let added = a
                    .evidence
                    .iter()
                    .filter(|e| !evidence.contains(e))
                    .cloned()
                    .collect();
                evidence.clone_from(&a.evidence);
                later.push(Later {
                    id: a.id,
                    change: "extended".into(),
                    evidence: added,
                    why: a.summary,
                });
            } else if alert.is_some() && a.corrects == alert_id {
                later.push(Later {
                    id: a.id,
                    change: if a.withdrawn {
                        "withdrawn"
                    } else {
                        "corrected"
                    }
                    .into(),
                    evidence: a.evidence,
                    why: a.summary,
                });
            }
        }
        if d.sequence >= last {
            break;
        }
    }
    let alert =
        alert.ok_or_else(|| Error::Proof(format!("no alert {alert_id} in the alerts stream")))?;
    let (set, rule_source) = rule_set(bus, &alert.rule_version).await?;
    let rule = set
        .rules
        .iter()
        .find(|r| r.id == alert.rule_id)
        .cloned()
        .ok_or_else(|| {
            Error::Proof(format!(
                "rule {} is not in set {}",
                alert.rule_id, set.version
            ))
        })?;

    // The contributing events, in event time.
    let events = bus.events_at(&alert.evidence_sequences).await?;
    let mut contributions: Vec<Contribution> = alert
        .evidence_sequences
        .iter()
        .zip(events)
        .filter_map(|(seq, ev)| ev.map(|e| (*seq, e)))
        .map(|(sequence, ev)| {
            let (clause, conditions) = clause(&rule, &ev);
            Contribution {
                sequence,
                key: format!("{}/{}", ev.source, ev.id),
                r#type: ev.r#type.clone(),
                time: rfc3339(ev.time),
                clause,
                conditions,
            }
        })
        .collect();
    contributions.sort_by(|a, b| a.time.cmp(&b.time).then(a.sequence.cmp(&b.sequence)));

    // The scratch replay: the events stream from its start into an engine with that set,
    // until it raises this alert or the stream ends.
    let end = bus.stream_bounds(&bus.topology().events_stream).await?.last;
    let mut engine = Engine::new(set, lateness);
    let mut replayed = 0u64;
    let mut reproduced = false;
    if end > 0 {
        let mut events = bus
            .replay(bus.topology().filter_subject(&[]), Start::All)
            .await?;
        while let Some(d) = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .ok()
            .flatten()
        {
            let d = d?;
            replayed += 1;
            if engine
                .observe_at(&d.event, d.sequence)
                .iter()
                .any(|a| a.id == alert.id)
            {
                reproduced = true;
                break;
            }
            if d.sequence >= end {
                break;
            }
        }
    }
    Ok(Explanation {
        alert_id: alert.id.clone(),
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        rule_version: alert.rule_version.clone(),
        rule_source,
        rule: describe(&rule),
        group_key: alert.group_key.clone(),
        region: alert.region.clone(),
        contributions,
        reproduced,
        replayed,
        later,
    })
}
