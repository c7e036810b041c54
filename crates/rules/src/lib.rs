//! Correlation rules as data: the rule language (TOML), its checker with precise errors (line,
//! rule id, what is wrong) and the default rule set R1–R6. A rule set that does not check is
//! never handed to the correlator.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use timpora_proto::{EventTypeInfo, type_by_name};
use toml::Spanned;

/// The rule set that ships with the hub (`rules/default.toml`).
pub const DEFAULT_RULES: &str = include_str!("../../../rules/default.toml");

/// One thing wrong with a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// 1-based line in the file.
    pub line: usize,
    /// The rule it concerns, when known.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(id) => write!(f, "line {}: rule {id}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// Every error found in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct Errors(pub Vec<RuleError>);

impl Errors {
    /// Every error as `NAME:LINE: rule ID: what`, one per line, then how many there were.
    pub fn listing(&self, name: &str) -> String {
        let mut out = String::new();
        for e in &self.0 {
            let rule = e
                .rule
                .as_ref()
                .map(|r| format!(" rule {r}:"))
                .unwrap_or_default();
            out.push_str(&format!("{name}:{}:{rule} {}\n", e.line, e.message));
        }
        out.push_str(&format!(
            "{name}: {} errors; the rule set is not valid",
            self.0.len()
        ));
        out
    }
}

/// Why a rule file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not check: every error, with its line and rule.
    #[error("{}", errors.listing(name))]
    Invalid { name: String, errors: Errors },
}

/// Read and check a rule file (the built-in set when `file` is `None`): its text and the set.
/// A file that does not check is never used.
pub fn load(file: Option<&std::path::Path>) -> Result<(String, RuleSet), LoadError> {
    let (name, text) = match file {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|source| LoadError::Read {
                path: p.to_path_buf(),
                source,
            })?,
        ),
        None => ("built-in rules".to_owned(), DEFAULT_RULES.to_owned()),
    };
    match parse(&text) {
        Ok(set) => Ok((text, set)),
        Err(errors) => Err(LoadError::Invalid { name, errors }),
    }
}

/// How urgent an alert of a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The name used in rule files and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The kind of entity a rule groups events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    Person,
    Recruiter,
    Company,
}

/// A fact the correlator reads off an event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Fact {
    Outcome,
    Purpose,
    Indicators,
    Stage,
    Reason,
    Kind,
    Status,
    LicenceStatus,
    Channel,
    Service,
    Reporter,
    Destination,
    /// The office or checkpoint: the checkpoint code, else the source unit.
    Location,
    /// The village (or finest area code) the event or its persons belong to.
    Village,
    /// A person mentioned.
    Person,
}

/// What the checker knows of a fact: its name, the enums its values come from (by their proto
/// name and value prefix), and the event types (short names) that carry it.
struct FactInfo {
    fact: Fact,
    name: &'static str,
    enums: &'static [(&'static str, &'static str)],
    types: &'static [&'static str],
    /// Usable in `differs` and `distinct`.
    comparable: bool,
}

const ALL: &[&str] = &[];

const FACTS: &[FactInfo] = &[
    FactInfo {
        fact: Fact::Outcome,
        name: "outcome",
        enums: &[
            ("timpora.v1.InterviewOutcome", "INTERVIEW_OUTCOME_"),
            ("timpora.v1.DepartureOutcome", "DEPARTURE_OUTCOME_"),
        ],
        types: &["passport_interview", "departure_check"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Purpose,
        name: "purpose",
        enums: &[("timpora.v1.TravelPurpose", "TRAVEL_PURPOSE_")],
        types: &["passport_interview"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Indicators,
        name: "indicators",
        enums: &[("timpora.v1.Indicator", "INDICATOR_")],
        types: &["passport_interview", "departure_check"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Stage,
        name: "stage",
        enums: &[("timpora.v1.CpmiStage", "CPMI_STAGE_")],
        types: &["cpmi_status"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Reason,
        name: "reason",
        enums: &[("timpora.v1.RepatriationReason", "REPATRIATION_REASON_")],
        types: &["repatriation"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Kind,
        name: "kind",
        enums: &[
            ("timpora.v1.CommunityReportKind", "COMMUNITY_REPORT_KIND_"),
            ("timpora.v1.RecommendationKind", "RECOMMENDATION_KIND_"),
            ("timpora.v1.CaseKind", "CASE_KIND_"),
        ],
        types: &["community_report", "recommendation", "status_changed"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Status,
        name: "status",
        enums: &[
            ("timpora.v1.RecommendationStatus", "RECOMMENDATION_STATUS_"),
            ("timpora.v1.InvestigationStatus", "INVESTIGATION_STATUS_"),
            ("timpora.v1.ProsecutionStatus", "PROSECUTION_STATUS_"),
            ("timpora.v1.CaseStatus", "CASE_STATUS_"),
        ],
        types: &[
            "recommendation",
            "investigation",
            "prosecution",
            "status_changed",
        ],
        comparable: false,
    },
    FactInfo {
        fact: Fact::LicenceStatus,
        name: "licence_status",
        enums: &[("timpora.v1.LicenceStatus", "LICENCE_STATUS_")],
        types: &["company_licence"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Channel,
        name: "channel",
        enums: &[("timpora.v1.ReportChannel", "REPORT_CHANNEL_")],
        types: &["recruiter_report"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Service,
        name: "service",
        enums: &[("timpora.v1.VictimServiceKind", "VICTIM_SERVICE_KIND_")],
        types: &["victim_service"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Reporter,
        name: "reporter",
        enums: &[("timpora.v1.ReporterRole", "REPORTER_ROLE_")],
        types: &["community_report"],
        comparable: false,
    },
    FactInfo {
        fact: Fact::Destination,
        name: "destination",
        enums: &[],
        types: &[
            "passport_interview",
            "departure_check",
            "cpmi_status",
            "repatriation",
        ],
        comparable: true,
    },
    FactInfo {
        fact: Fact::Location,
        name: "location",
        enums: &[],
        types: ALL,
        comparable: true,
    },
    FactInfo {
        fact: Fact::Village,
        name: "village",
        enums: &[],
        types: ALL,
        comparable: true,
    },
    FactInfo {
        fact: Fact::Person,
        name: "person",
        enums: &[],
        types: ALL,
        comparable: true,
    },
];

impl Fact {
    /// The fact's name in rule files.
    pub fn name(self) -> &'static str {
        info(self).name
    }
}

fn info(f: Fact) -> &'static FactInfo {
    FACTS.iter().find(|i| i.fact == f).unwrap_or(&FACTS[0])
}

fn fact_by_name(name: &str) -> Option<&'static FactInfo> {
    FACTS.iter().find(|i| i.name == name)
}

/// Events a clause matches: any of `types` (all types when empty), every condition holding
/// (the fact has one of the values), every `has` fact non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub types: Vec<&'static EventTypeInfo>,
    pub conditions: Vec<(Fact, Vec<String>)>,
    pub has: Vec<Fact>,
}

/// `when`, then a later `then` event within `within`, whose `differs` facts differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub when: Matcher,
    pub then: Matcher,
    pub within: Duration,
    pub differs: Vec<Fact>,
}

/// `when`, and no `absent` event from `before` the trigger until `after` it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absence {
    pub when: Matcher,
    pub absent: Matcher,
    pub before: Duration,
    pub after: Duration,
}

/// `when`, while the group entity's last `fact` from `from` events is one of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub when: Matcher,
    pub from: Vec<&'static EventTypeInfo>,
    pub fact: Fact,
    pub values: Vec<String>,
}

/// Within a sliding `window`, matching events show at least this many distinct values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub matcher: Matcher,
    pub window: Duration,
    pub distinct: Vec<(Fact, u32)>,
}

/// How a rule decides: one shape each, evaluated by its own module of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Sequence(Sequence),
    Absence(Absence),
    State(State),
    Count(Count),
}

impl Shape {
    /// The agencies (event-type domains) whose reports can change a decision of this shape:
    /// `None` for every agency, empty for a sequence (decided on arrival, waits for nobody).
    pub fn waits_for(&self) -> Option<Vec<&'static str>> {
        let domains = |types: &[&'static EventTypeInfo]| {
            // Case events may come from any member agency.
            if types.is_empty() || types.iter().any(|t| t.domain == "case") {
                return None;
            }
            let mut d: Vec<&'static str> = types.iter().map(|t| t.domain).collect();
            d.sort_unstable();
            d.dedup();
            Some(d)
        };
        match self {
            Shape::Sequence(_) => Some(Vec::new()),
            Shape::Absence(a) => domains(&a.absent.types),
            Shape::State(s) => domains(&s.from),
            Shape::Count(c) => domains(&c.matcher.types),
        }
    }

    /// How far back in event time the rule looks from an event: what the engine must keep.
    pub fn span(&self) -> Duration {
        match self {
            Shape::Sequence(s) => s.within,
            Shape::Absence(a) => a.before + a.after,
            Shape::State(_) => Duration::ZERO,
            Shape::Count(c) => c.window,
        }
    }
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub severity: Severity,
    pub group_by: GroupBy,
    pub summary: String,
    pub shape: Shape,
    /// Whether a further match for the same group, within the rule's span of the open alert's
    /// latest evidence, extends that alert (one alert per finding, its evidence growing) rather
    /// than raising another (`extend = false`). On by default.
    pub extend: bool,
    /// How long its decisions wait for late and batched reports (absence, state and count
    /// rules; sequence rules decide as the second event arrives).
    pub reports: Reports,
}

/// How long a rule's decisions wait for the reports that could change them, in the hub's
/// recorded time (`[reports]` for every rule, `[rule.reports]` for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reports {
    /// After the last event of a group arrived, its decisions wait this long for the rest of
    /// the batch it came in (a decision waits at most four times this for a busy group).
    pub grace: Duration,
    /// A reporting unit silent this long is no longer waited for.
    pub idle: Duration,
}

impl Default for Reports {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            idle: Duration::from_secs(36 * 3_600),
        }
    }
}

/// A checked, versioned rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    pub version: String,
    pub rules: Vec<Rule>,
    /// SHA-256 of the file's text (hex): tells two sets with the same version apart.
    pub digest: String,
}

impl RuleSet {
    /// The longest time span any rule looks across (state older than this can be evicted).
    pub fn horizon(&self) -> Duration {
        self.rules
            .iter()
            .map(|r| r.shape.span())
            .max()
            .unwrap_or_default()
    }
}

// ---- the file as written ------------------------------------------------------------------

type S<T> = Spanned<T>;
/// A list of values, each with its position.
type Values = Option<S<Vec<S<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    version: S<String>,
    #[serde(default)]
    reports: Option<S<RawReports>>,
    #[serde(default)]
    rule: Vec<S<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: S<String>,
    name: S<String>,
    severity: S<String>,
    group_by: S<String>,
    #[serde(default)]
    summary: Option<S<String>>,
    #[serde(default)]
    extend: Option<bool>,
    #[serde(default)]
    reports: Option<S<RawReports>>,
    when: Option<S<RawClause>>,
    then: Option<S<RawClause>>,
    absent: Option<S<RawClause>>,
    state: Option<S<RawClause>>,
    count: Option<S<RawClause>>,
}

/// `[reports]` / `[rule.reports]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReports {
    grace: Option<S<String>>,
    idle: Option<S<String>>,
}

/// Every key any clause may have; which ones a clause may use is checked afterwards.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClause {
    types: Option<S<Vec<S<String>>>>,
    has: Option<S<Vec<S<String>>>>,
    outcome: Option<S<Vec<S<String>>>>,
    purpose: Option<S<Vec<S<String>>>>,
    indicators: Option<S<Vec<S<String>>>>,
    stage: Option<S<Vec<S<String>>>>,
    reason: Option<S<Vec<S<String>>>>,
    kind: Option<S<Vec<S<String>>>>,
    status: Option<S<Vec<S<String>>>>,
    licence_status: Option<S<Vec<S<String>>>>,
    channel: Option<S<Vec<S<String>>>>,
    service: Option<S<Vec<S<String>>>>,
    reporter: Option<S<Vec<S<String>>>>,
    destination: Option<S<Vec<S<String>>>>,
    within: Option<S<String>>,
    differs: Option<S<Vec<S<String>>>>,
    before: Option<S<String>>,
    after: Option<S<String>>,
    window: Option<S<String>>,
    distinct: Option<S<std::collections::BTreeMap<String, S<i64>>>>,
    from: Option<S<Vec<S<String>>>>,
    fact: Option<S<String>>,
    #[serde(rename = "in")]
    values: Option<S<Vec<S<String>>>>,
}

impl RawClause {
    fn conditions(&self) -> [(&'static str, &Values); 12] {
        [
            ("outcome", &self.outcome),
            ("purpose", &self.purpose),
            ("indicators", &self.indicators),
            ("stage", &self.stage),
            ("reason", &self.reason),
            ("kind", &self.kind),
            ("status", &self.status),
            ("licence_status", &self.licence_status),
            ("channel", &self.channel),
            ("service", &self.service),
            ("reporter", &self.reporter),
            ("destination", &self.destination),
        ]
    }

    /// The own keys (beyond the matcher's) that are set, with their positions.
    fn own_keys(&self) -> Vec<(&'static str, usize)> {
        let mut keys = Vec::new();
        let mut push = |name, start: Option<usize>| {
            if let Some(s) = start {
                keys.push((name, s));
            }
        };
        push("within", self.within.as_ref().map(|s| s.span().start));
        push("differs", self.differs.as_ref().map(|s| s.span().start));
        push("before", self.before.as_ref().map(|s| s.span().start));
        push("after", self.after.as_ref().map(|s| s.span().start));
        push("window", self.window.as_ref().map(|s| s.span().start));
        push("distinct", self.distinct.as_ref().map(|s| s.span().start));
        push("from", self.from.as_ref().map(|s| s.span().start));
        push("fact", self.fact.as_ref().map(|s| s.span().start));
        push("in", self.values.as_ref().map(|s| s.span().start));
        keys
    }
}

// ---- checking -----------------------------------------------------------------------------

struct Checker<'a> {
    text: &'a str,
    rule: Option<String>,
    /// `[reports]` of the file (or the built-in defaults).
    reports: Reports,
    errors: Vec<RuleError>,
    pool: Option<prost_reflect::DescriptorPool>,
}

impl Checker<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&mut self, offset: usize, message: impl Into<String>) {
        let line = self.line(offset);
        self.errors.push(RuleError {
            line,
            rule: self.rule.clone(),
            message: message.into(),
        });
    }

    /// `raw` over `base`: each duration given replaces the base's (a grace may be zero).
    fn reports(&mut self, key: &str, raw: &RawReports, base: Reports) -> Reports {
        let mut out = base;
        if let Some(g) = &raw.grace {
            out.grace = match g.get_ref().as_str() {
                "0" | "0s" => Duration::ZERO,
                _ => self.duration(&format!("{key}.grace"), g),
            };
        }
        if let Some(i) = &raw.idle {
            out.idle = self.duration(&format!("{key}.idle"), i);
        }
        out
    }

    fn duration(&mut self, key: &str, value: &S<String>) -> Duration {
        match parse_duration(value.get_ref()) {
            Some(d) if d > Duration::ZERO => d,
            _ => {
                self.err(
                    value.span().start,
                    format!(
                        "{key}: {:?} is not a duration; write e.g. \"30d\", \"12h\", \"90m\"",
                        value.get_ref()
                    ),
                );
                Duration::ZERO
            }
        }
    }

    fn types(&mut self, key: &str, list: &S<Vec<S<String>>>) -> Vec<&'static EventTypeInfo> {
        let mut out = Vec::new();
        for t in list.get_ref() {
            match type_by_name(t.get_ref()) {
                Some(info) => out.push(info),
                None => self.err(
                    t.span().start,
                    format!("{key}: unknown event type {:?}", t.get_ref()),
                ),
            }
        }
        out
    }

    fn allowed_values(&mut self, f: &FactInfo) -> BTreeSet<String> {
        let mut values = BTreeSet::new();
        if self.pool.is_none() {
            self.pool =
                prost_reflect::DescriptorPool::decode(timpora_proto::FILE_DESCRIPTOR_SET).ok();
        }
        if let Some(pool) = &self.pool {
            for (name, prefix) in f.enums {
                if let Some(e) = pool.get_enum_by_name(name) {
                    for v in e.values() {
                        if v.number() != 0 {
                            values.insert(v.name().trim_start_matches(prefix).to_owned());
                        }
                    }
                }
            }
        }
        values
    }

    fn matcher(&mut self, clause: &str, c: &RawClause) -> Matcher {
        let types = match &c.types {
            Some(t) => self.types(&format!("{clause}.types"), t),
            None => Vec::new(),
        };
        let mut conditions = Vec::new();
        for (name, values) in c.conditions() {
            let Some(values) = values else { continue };
            let Some(f) = fact_by_name(name) else {
                continue;
            };
            self.applies(clause, f, &types, values.span().start);
            if values.get_ref().is_empty() {
                self.err(
                    values.span().start,
                    format!("{clause}.{name}: give at least one value"),
                );
            }
            let allowed = self.allowed_values(f);
            for v in values.get_ref() {
                let ok = if f.fact == Fact::Destination {
                    v.get_ref().len() == 2 && v.get_ref().bytes().all(|b| b.is_ascii_uppercase())
                } else {
                    allowed.contains(v.get_ref())
                };
                if !ok {
                    let expected = if f.fact == Fact::Destination {
                        "an ISO 3166-1 alpha-2 code".to_owned()
                    } else {
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    };
                    self.err(
                        v.span().start,
                        format!(
                            "{clause}.{name}: unknown value {:?} (expected {expected})",
                            v.get_ref()
                        ),
                    );
                }
            }
            conditions.push((
                f.fact,
                values
                    .get_ref()
                    .iter()
                    .map(|v| v.get_ref().clone())
                    .collect(),
            ));
        }
        let mut has = Vec::new();
        if let Some(list) = &c.has {
            for h in list.get_ref() {
                match fact_by_name(h.get_ref()) {
                    Some(f) => {
                        self.applies(clause, f, &types, h.span().start);
                        has.push(f.fact);
                    }
                    None => self.err(
                        h.span().start,
                        format!("{clause}.has: unknown fact {:?}", h.get_ref()),
                    ),
                }
            }
        }
        Matcher {
            types,
            conditions,
            has,
        }
    }

    /// A condition on a fact that none of the matcher's types carries can never hold.
    fn applies(&mut self, clause: &str, f: &FactInfo, types: &[&EventTypeInfo], at: usize) {
        if f.types.is_empty() || types.is_empty() {
            return;
        }
        let missing: Vec<&str> = types
            .iter()
            .filter(|t| !f.types.contains(&t.short))
            .map(|t| t.name)
            .collect();
        if !missing.is_empty() {
            self.err(
                at,
                format!(
                    "{clause}.{}: {} has no {}",
                    f.name,
                    missing.join(", "),
                    f.name
                ),
            );
        }
    }

    fn comparable(&mut self, key: &str, name: &S<String>) -> Option<Fact> {
        match fact_by_name(name.get_ref()) {
            Some(f) if f.comparable => Some(f.fact),
            _ => {
                let names: Vec<&str> = FACTS
                    .iter()
                    .filter(|f| f.comparable)
                    .map(|f| f.name)
                    .collect();
                self.err(
                    name.span().start,
                    format!(
                        "{key}: {:?} cannot be compared or counted (use one of {})",
                        name.get_ref(),
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// Refuse keys that do not belong to this clause.
    fn only(&mut self, clause: &str, c: &RawClause, allowed: &[&str], matcher: bool) {
        for (key, at) in c.own_keys() {
            if !allowed.contains(&key) {
                self.err(at, format!("{clause}: `{key}` does not belong here"));
            }
        }
        if !matcher {
            for (name, v) in c.conditions() {
                if let Some(v) = v {
                    self.err(
                        v.span().start,
                        format!("{clause}: `{name}` does not belong here"),
                    );
                }
            }
            for (name, v) in [("types", &c.types), ("has", &c.has)] {
                if let Some(v) = v {
                    self.err(
                        v.span().start,
                        format!("{clause}: `{name}` does not belong here"),
                    );
                }
            }
        }
    }

    fn required<'v, T>(
        &mut self,
        clause: &str,
        key: &str,
        v: &'v Option<S<T>>,
        at: usize,
    ) -> Option<&'v S<T>> {
        if v.is_none() {
            self.err(at, format!("{clause}: `{key}` is required"));
        }
        v.as_ref()
    }

    fn rule(&mut self, raw: &S<RawRule>) -> Option<Rule> {
        let r = raw.get_ref();
        let at = raw.span().start;
        self.rule = Some(r.id.get_ref().clone());
        if r.id.get_ref().is_empty()
            || !r
                .id
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.err(r.id.span().start, "id: letters, digits, - and _ only");
        }
        let severity = match r.severity.get_ref().as_str() {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                self.err(
                    r.severity.span().start,
                    format!("severity: {other:?} is not low, medium, high or critical"),
                );
                Severity::Low
            }
        };
        let group_by = match r.group_by.get_ref().as_str() {
            "person" => GroupBy::Person,
            "recruiter" => GroupBy::Recruiter,
            "company" => GroupBy::Company,
            other => {
                self.err(
                    r.group_by.span().start,
                    format!("group_by: {other:?} is not person, recruiter or company"),
                );
                GroupBy::Person
            }
        };
        let shapes = [
            r.then.is_some(),
            r.absent.is_some(),
            r.state.is_some(),
            r.count.is_some(),
        ];
        let n = shapes.iter().filter(|s| **s).count();
        let shape = if n != 1
            || (r.count.is_some() && r.when.is_some())
            || (r.count.is_none() && r.when.is_none())
        {
            self.err(
                at,
                "give exactly one shape: when + then, when + absent, when + state, or count",
            );
            // Still check what can be checked, so one pass reports every mistake.
            if let Some(when) = &r.when {
                self.matcher("when", when.get_ref());
            }
            None
        } else if let Some(count) = &r.count {
            let c = count.get_ref();
            self.only("count", c, &["window", "distinct"], true);
            let matcher = self.matcher("count", c);
            let window = self
                .required("count", "window", &c.window, count.span().start)
                .map(|w| self.duration("count.window", w));
            let mut distinct = Vec::new();
            if let Some(d) = self.required("count", "distinct", &c.distinct, count.span().start) {
                for (name, min) in d.get_ref() {
                    let fact = fact_by_name(name).filter(|f| f.comparable).map(|f| f.fact);
                    match fact {
                        Some(f) if *min.get_ref() >= 1 && *min.get_ref() <= 10_000 => {
                            distinct.push((f, *min.get_ref() as u32))
                        }
                        Some(_) => self.err(min.span().start, format!("count.distinct.{name}: must be 1 to 10000")),
                        None => self.err(d.span().start, format!("count.distinct: {name:?} cannot be counted (use person, village, location or destination)")),
                    }
                }
                if d.get_ref().is_empty() {
                    self.err(
                        d.span().start,
                        "count.distinct: name at least one fact to count",
                    );
                }
            }
            window.map(|window| {
                Shape::Count(Count {
                    matcher,
                    window,
                    distinct,
                })
            })
        } else if let Some(when) = &r.when {
            self.only("when", when.get_ref(), &[], true);
            let w = self.matcher("when", when.get_ref());
            if let Some(then) = &r.then {
                let c = then.get_ref();
                self.only("then", c, &["within", "differs"], true);
                let m = self.matcher("then", c);
                let within = self
                    .required("then", "within", &c.within, then.span().start)
                    .map(|d| self.duration("then.within", d));
                let differs = c
                    .differs
                    .as_ref()
                    .map(|l| {
                        l.get_ref()
                            .iter()
                            .filter_map(|f| self.comparable("then.differs", f))
                            .collect()
                    })
                    .unwrap_or_default();
                within.map(|within| {
                    Shape::Sequence(Sequence {
                        when: w,
                        then: m,
                        within,
                        differs,
                    })
                })
            } else if let Some(absent) = &r.absent {
                let c = absent.get_ref();
                self.only("absent", c, &["before", "after"], true);
                let m = self.matcher("absent", c);
                let before = c.before.as_ref().map(|d| self.duration("absent.before", d));
                let after = c.after.as_ref().map(|d| self.duration("absent.after", d));
                if before.is_none() && after.is_none() {
                    self.err(
                        absent.span().start,
                        "absent: give `before`, `after` or both",
                    );
                }
                Some(Shape::Absence(Absence {
                    when: w,
                    absent: m,
                    before: before.unwrap_or_default(),
                    after: after.unwrap_or_default(),
                }))
            } else if let Some(state) = &r.state {
                let c = state.get_ref();
                self.only("state", c, &["from", "fact", "in"], false);
                let from = self
                    .required("state", "from", &c.from, state.span().start)
                    .map(|f| self.types("state.from", f))
                    .unwrap_or_default();
                let fact = self
                    .required("state", "fact", &c.fact, state.span().start)
                    .and_then(|f| match fact_by_name(f.get_ref()) {
                        Some(i) if !i.enums.is_empty() => Some(i),
                        _ => {
                            self.err(
                                f.span().start,
                                format!("state.fact: {:?} is not a fact with values", f.get_ref()),
                            );
                            None
                        }
                    });
                let values = self.required("state", "in", &c.values, state.span().start);
                match (fact, values) {
                    (Some(f), Some(values)) => {
                        self.applies("state", f, &from, values.span().start);
                        let allowed = self.allowed_values(f);
                        for v in values.get_ref() {
                            if !allowed.contains(v.get_ref()) {
                                self.err(
                                    v.span().start,
                                    format!(
                                        "state.in: unknown value {:?} (expected {})",
                                        v.get_ref(),
                                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                                    ),
                                );
                            }
                        }
                        Some(Shape::State(State {
                            when: w,
                            from,
                            fact: f.fact,
                            values: values
                                .get_ref()
                                .iter()
                                .map(|v| v.get_ref().clone())
                                .collect(),
                        }))
                    }
                    _ => None,
                }
            } else {
                None
            }
        } else {
            None
        };
        let summary = r
            .summary
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| r.name.get_ref().clone());
        if summary.chars().count() > 200
            && let Some(s) = &r.summary
        {
            self.err(s.span().start, "summary: at most 200 characters");
        }
        let reports = match &r.reports {
            Some(raw) => {
                if matches!(shape, Some(Shape::Sequence(_))) {
                    self.err(
                        raw.span().start,
                        "reports: a sequence rule decides as its second event arrives and waits for no report; `reports` is for absence, state and count rules",
                    );
                }
                self.reports("reports", raw.get_ref(), self.reports)
            }
            None => self.reports,
        };
        shape.map(|shape| Rule {
            reports,
            id: r.id.get_ref().clone(),
            name: r.name.get_ref().clone(),
            severity,
            group_by,
            summary,
            shape,
            extend: r.extend.unwrap_or(true),
        })
    }
}

/// SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Parse `30d`, `12h`, `90m`, `45s`, `250ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "d" => n.checked_mul(86_400)?,
        "h" => n.checked_mul(3_600)?,
        "m" => n.checked_mul(60)?,
        "s" => n,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Check a rule file; every error found is reported, with its line and rule.
pub fn parse(text: &str) -> Result<RuleSet, Errors> {
    let mut ck = Checker {
        text,
        rule: None,
        reports: Reports::default(),
        errors: Vec::new(),
        pool: None,
    };
    let raw: RawSet = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().to_owned();
            ck.err(offset, message);
            return Err(Errors(ck.errors));
        }
    };
    if let Some(r) = &raw.reports {
        ck.reports = ck.reports("reports", r.get_ref(), Reports::default());
    }
    if raw.version.get_ref().trim().is_empty() {
        ck.err(raw.version.span().start, "version: must not be empty");
    }
    if raw.rule.is_empty() {
        ck.err(0, "no [[rule]] in the file");
    }
    let mut rules = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &raw.rule {
        if !seen.insert(r.get_ref().id.get_ref().clone()) {
            ck.rule = Some(r.get_ref().id.get_ref().clone());
            ck.err(r.get_ref().id.span().start, "id: used by an earlier rule");
        }
        if let Some(rule) = ck.rule(r) {
            rules.push(rule);
        }
    }
    ck.errors.sort_by_key(|e| e.line);
    if ck.errors.is_empty() {
        Ok(RuleSet {
            version: raw.version.into_inner(),
            rules,
            digest: sha256_hex(text.as_bytes()),
        })
    } else {
        Err(Errors(ck.errors))
    }
}

#[cfg(test)]
mod tests;
