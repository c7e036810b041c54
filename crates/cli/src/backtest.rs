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

/// Call `f` with each non-empty line of `path` as JSON, with its line number, reading the file
/// as a stream: memory does not grow with the file (a year of records is fine).
fn each_line(
    path: &Path,
    mut f: impl FnMut(usize, serde_json::Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let cannot = || format!("cannot read {}", path.display());
    let file = std::fs::File::open(path).with_context(cannot)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut line = String::new();
    let mut n = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).with_context(cannot)? == 0 {
            return Ok(());
        }
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&line)
            .with_context(|| format!("{}:{n}: not valid JSON", path.display()))?;
        f(n, v)?;
    }
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
    // Only what an alert is compared by is kept, never the events.
    let mut got: BTreeSet<Key> = BTreeSet::new();
    // Per rule: findings raised, extensions of them (their evidence grew), and withdrawals by
    // reports that came late. A withdrawn finding is not among those produced.
    let mut per_rule: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    let mut findings: std::collections::HashMap<String, Vec<Key>> = Default::default();
    let mut keep = |alerts: Vec<timpora_correlate::Alert>| {
        for a in &alerts {
            let n = per_rule.entry(a.rule_id.clone()).or_default();
            match (&a.extends, &a.correction) {
                (_, Some(c)) => {
                    if c.withdrawn {
                        n.2 += 1;
                        for k in findings.remove(&c.of).unwrap_or_default() {
                            got.remove(&k);
                        }
                    }
                }
                (None, None) => n.0 += 1,
                (Some(_), None) => n.1 += 1,
            }
            if a.correction.is_none() {
                let k = key(&a.rule_id, &a.group_key, &a.evidence);
                findings
                    .entry(a.extends.clone().unwrap_or_else(|| a.id.clone()))
                    .or_default()
                    .push(k.clone());
                got.insert(k);
            }
        }
    };
    each_line(&args.events, |n, mut v| {
        if let Some(inner) = v.get_mut("event") {
            v = inner.take();
        }
        let ev: Event = json::from_value("timpora.v1.Event", v)
            .with_context(|| format!("{}:{n}: not an event", args.events.display()))?;
        keep(engine.observe(&ev));
        Ok(())
    })?;
    if let Some(t) = until {
        keep(engine.tick(t));
    }
    let mut expected = BTreeSet::new();
    each_line(&args.expect, |n, v| {
        let a: Alert = json::from_value("timpora.v1.Alert", v)
            .with_context(|| format!("{}:{n}: not an alert", args.expect.display()))?;
        expected.insert(key(&a.rule_id, &a.group_key, &a.evidence));
        Ok(())
    })?;
    let show = |(rule, group, evidence): &Key| format!("{rule} {group} [{}]", evidence.join(", "));
    for k in expected.difference(&got) {
        println!("missing:    {}", show(k));
    }
    for k in got.difference(&expected) {
        println!("unexpected: {}", show(k));
    }
    let matched = expected.intersection(&got).count();
    for (rule, (raised, extended, withdrawn)) in &per_rule {
        eprintln!("{rule}: {raised} raised, {extended} extensions, {withdrawn} withdrawn");
    }
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
