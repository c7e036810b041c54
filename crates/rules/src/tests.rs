use super::*;

fn errors(text: &str) -> Vec<RuleError> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(Errors(e)) => e,
    }
}

const GOOD: &str = r#"version = "t1"

[[rule]]
id = "X1"
name = "x"
severity = "high"
group_by = "person"

[rule.when]
types = ["timpora.imigrasi.passport_interview.v1"]
outcome = ["DEFERRED"]

[rule.then]
types = ["timpora.imigrasi.departure_check.v1"]
within = "14d"
"#;

#[test]
fn the_default_rule_set_checks_and_has_r1_to_r6() {
    let set = parse(DEFAULT_RULES).unwrap();
    assert_eq!(set.version, "2026.12-1");
    let ids: Vec<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["R1", "R2", "R3", "R4", "R5", "R6"]);
    assert!(
        matches!(set.rules[0].shape, Shape::Absence(Absence { before, after, .. })
        if before == Duration::from_secs(30 * 86_400) && after == before)
    );
    assert!(
        matches!(&set.rules[2].shape, Shape::Sequence(Sequence { differs, .. }) if differs == &[Fact::Location])
    );
    assert!(
        matches!(&set.rules[3].shape, Shape::Count(Count { distinct, .. })
        if distinct.contains(&(Fact::Person, 3)) && distinct.contains(&(Fact::Village, 2)))
    );
    assert!(
        matches!(&set.rules[4].shape, Shape::State(State { fact: Fact::LicenceStatus, values, .. })
        if values == &["SUSPENDED", "REVOKED"])
    );
    assert_eq!(set.rules[3].severity, Severity::Critical);
    assert_eq!(set.rules[3].group_by, GroupBy::Recruiter);
    assert_eq!(set.horizon(), Duration::from_secs(180 * 86_400));
}

#[test]
fn a_minimal_rule_checks() {
    let set = parse(GOOD).unwrap();
    assert_eq!(set.rules.len(), 1);
}

#[test]
fn syntax_errors_carry_their_line() {
    let e = errors("version = \"t\"\n\n[[rule]\nid = \"X\"\n");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 3, "{e:?}");
}

#[test]
fn a_misspelt_key_is_named_with_its_line() {
    let text = GOOD.replace("outcome = [", "outcom = [");
    let e = errors(&text);
    assert_eq!(e[0].line, 11, "{e:?}");
    assert!(e[0].message.contains("outcom"), "{e:?}");
}

#[test]
fn unknown_values_name_the_rule_the_line_and_what_is_expected() {
    let text = GOOD.replace("\"DEFERRED\"", "\"DEFERED\"");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, 11);
    assert_eq!(e[0].rule.as_deref(), Some("X1"));
    assert!(
        e[0].message.contains("DEFERED") && e[0].message.contains("ISSUED"),
        "{}",
        e[0]
    );
    assert_eq!(e[0].to_string().split(':').next(), Some("line 11"));
}

#[test]
fn semantic_mistakes_are_all_reported_together() {
    let text = r#"version = "t2"

[[rule]]
id = "A"
name = "a"
severity = "urgent"
group_by = "village"

[rule.when]
types = ["timpora.imigrasi.passport_interview.v2"]
stage = ["REGISTERED"]
within = "3d"

[rule.then]
types = ["timpora.imigrasi.departure_check.v1"]
within = "30 days"
differs = ["outcome"]

[[rule]]
id = "A"
name = "twice"
severity = "low"
group_by = "person"

[rule.count]
window = "30d"
distinct = { person = 0, colour = 2 }

[[rule]]
id = "B"
name = "two shapes"
severity = "low"
group_by = "person"

[rule.when]
types = ["timpora.imigrasi.passport_interview.v1"]
stage = ["REGISTERED"]

[rule.then]
within = "1d"

[rule.absent]
after = "1d"
"#;
    let e = errors(text);
    let has = |line: usize, rule: &str, needle: &str| {
        assert!(
            e.iter().any(|x| x.line == line
                && x.rule.as_deref() == Some(rule)
                && x.message.contains(needle)),
            "no error at line {line} for {rule} containing {needle:?} in\n{}",
            Errors(e.clone())
        );
    };
    has(6, "A", "severity");
    has(7, "A", "group_by");
    has(10, "A", "unknown event type");
    has(12, "A", "`within` does not belong here");
    has(16, "A", "not a duration");
    has(17, "A", "cannot be compared");
    has(20, "A", "used by an earlier rule");
    has(27, "A", "must be 1 to 10000");
    has(27, "A", "colour");
    has(29, "B", "exactly one shape");
    has(37, "B", "has no stage");
}

#[test]
fn state_rules_check_their_fact_and_values() {
    let text = r#"version = "t3"

[[rule]]
id = "S"
name = "s"
severity = "medium"
group_by = "company"

[rule.when]
types = ["timpora.bp3mi.cpmi_status.v1"]

[rule.state]
from = ["timpora.disnaker.company_licence.v1"]
fact = "licence_status"
in = ["CANCELLED"]
"#;
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, 15);
    assert!(e[0].message.contains("SUSPENDED"));
    let missing = errors(&text.replace("fact = \"licence_status\"\n", ""));
    assert!(
        missing
            .iter()
            .any(|x| x.message.contains("`fact` is required")),
        "{missing:?}"
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30d"), Some(Duration::from_secs(2_592_000)));
    assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
    assert_eq!(parse_duration("90m"), Some(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("30"), None);
    assert_eq!(parse_duration("d"), None);
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_duration("-1d"), None);
}
