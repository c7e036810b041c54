//! `timpora rules test`: run a rule set over recorded events and compare its alerts with the
//! expected ones. Alerts are compared by rule, entity and evidence (not by id, which includes
//! the rule-set version), so a new version of the rules can be checked against what the old one
//! was expected to find.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use timpora_proto::v1::{Alert, Event};

use timpora_client::json;

/// `timpora rules test` options.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The rule file to test.
    pub file: PathBuf,
    /// Recorded events, NDJSON: lines of `timpora subscribe` output, or bare events.
    #[arg(long)]
    pub events: PathBuf,
    /// Expected alerts, NDJSON (one `timpora.v1.Alert` per line).
    #[arg(long)]
    pub expect: PathBuf,
    /// Allowed lateness for out-of-order events.
    #[arg(long, default_value = "5s")]
    pub lateness: String,
    /// Move the clock to this RFC 3339 time after the last event (lets absence rules decide).
    #[arg(long)]
    pub until: Option<String>,
}

type Key = (String, String, Vec<String>);

fn key(rule: &str, group: &str, evidence: &[String]) -> Key {
    (rule.to_owned(), group.to_owned(), evidence.to_vec())
}

fn lines(path: &Path) -> anyhow::Result<Vec<(usize, serde_json::Value)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not valid JSON", path.display(), i + 1))?;
        out.push((i + 1, v));
    }
    Ok(out)
}

/// Run the backtest; exit status 1 when the alerts differ from the expected ones.
pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let Some((_, rules)) = crate::rules::load(&args.file)? else {
        return Ok(ExitCode::FAILURE);
    };
    let lateness = crate::rules::duration("lateness", &args.lateness)?;
    let until = args
        .until
        .as_deref()
        .map(|t| {
            t.parse::<prost_types::Timestamp>()
                .map_err(|_| anyhow::anyhow!("--until {t:?} is not an RFC 3339 time"))
                .and_then(|ts| Ok(std::time::SystemTime::try_from(ts)?))
        })
        .transpose()?;

    let mut engine = timpora_correlate::Engine::new(rules, lateness);
    let mut produced = Vec::new();
    for (n, mut v) in lines(&args.events)? {
        if let Some(inner) = v.get_mut("event") {
            v = inner.take();
        }
        let ev: Event = json::from_value("timpora.v1.Event", v)
            .with_context(|| format!("{}:{n}: not an event", args.events.display()))?;
        produced.extend(engine.observe(&ev));
    }
    if let Some(t) = until {
        produced.extend(engine.tick(t));
    }
    let mut expected = BTreeSet::new();
    for (n, v) in lines(&args.expect)? {
        let a: Alert = json::from_value("timpora.v1.Alert", v)
            .with_context(|| format!("{}:{n}: not an alert", args.expect.display()))?;
        expected.insert(key(&a.rule_id, &a.group_key, &a.evidence));
    }
    let got: BTreeSet<Key> = produced
        .iter()
        .map(|a| key(&a.rule_id, &a.group_key, &a.evidence))
        .collect();
    let show = |(rule, group, evidence): &Key| format!("{rule} {group} [{}]", evidence.join(", "));
    for k in expected.difference(&got) {
        println!("missing:    {}", show(k));
    }
    for k in got.difference(&expected) {
        println!("unexpected: {}", show(k));
    }
    let matched = expected.intersection(&got).count();
    let stats = engine.stats();
    eprintln!(
        "{} events ({} late), {} alerts expected, {} produced, {matched} matched",
        stats.events,
        stats.late_events,
        expected.len(),
        got.len()
    );
    Ok(if expected == got {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
