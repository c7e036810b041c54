use std::time::{Duration, SystemTime};

use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;
use timpora_rules::{DEFAULT_RULES, parse};

use super::Alert;
use super::*;
use crate::alert::alert_id;
use timpora_rules::Severity;

const DAY: u64 = 86_400;
const LATENESS: Duration = Duration::from_secs(3_600);

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + secs)
}

fn entity(kind: EntityKind, id: &str) -> EntityRef {
    EntityRef {
        kind: kind as i32,
        id: id.into(),
        role: String::new(),
    }
}

fn event(
    id: &str,
    source: &str,
    secs: u64,
    region: &str,
    payload: Payload,
    entities: Vec<EntityRef>,
) -> Event {
    let info = timpora_proto::type_of(&payload);
    Event {
        id: id.into(),
        source: source.into(),
        r#type: info.name.into(),
        time: Some(at(secs).into()),
        region: region.into(),
        entities,
        payload: Some(payload),
        ..Default::default()
    }
}

fn interview(
    id: &str,
    office: &str,
    person: &str,
    secs: u64,
    outcome: InterviewOutcome,
    indicators: &[Indicator],
) -> Event {
    event(
        id,
        &format!("imigrasi/{office}"),
        secs,
        "74.71",
        Payload::PassportInterview(PassportInterview {
            outcome: outcome as i32,
            indicators: indicators.iter().map(|i| *i as i32).collect(),
            destination_country: "KH".into(),
            ..Default::default()
        }),
        vec![entity(EntityKind::Person, person)],
    )
}

fn check(id: &str, checkpoint: &str, person: &str, secs: u64, outcome: DepartureOutcome) -> Event {
    event(
        id,
        "imigrasi/tpi",
        secs,
        "36.03",
        Payload::DepartureCheck(DepartureCheck {
            checkpoint_code: checkpoint.into(),
            outcome: outcome as i32,
            indicators: vec![Indicator::NoReturnTicket as i32],
            destination_country: "MY".into(),
            ..Default::default()
        }),
        vec![entity(EntityKind::Person, person)],
    )
}

fn cpmi(id: &str, person: &str, company: &str, secs: u64, stage: CpmiStage) -> Event {
    event(
        id,
        "bp3mi/bp3mi-sultra",
        secs,
        "74",
        Payload::CpmiStatus(CpmiStatus {
            stage: stage as i32,
            destination_country: "TW".into(),
            ..Default::default()
        }),
        vec![
            entity(EntityKind::Person, person),
            entity(EntityKind::Company, company),
        ],
    )
}

fn village_report(id: &str, persons: &[&str], secs: u64) -> Event {
    event(
        id,
        "desa/74.02.05.2001",
        secs,
        "74.02.05.2001",
        Payload::CommunityReport(CommunityReport {
            kind: CommunityReportKind::ResidentPlanningDeparture as i32,
            ..Default::default()
        }),
        persons
            .iter()
            .map(|p| entity(EntityKind::Person, p))
            .collect(),
    )
}

fn repatriation(id: &str, person: &str, secs: u64, reason: RepatriationReason) -> Event {
    event(
        id,
        "bp3mi/bp3mi-sultra",
        secs,
        "74.02",
        Payload::Repatriation(Repatriation {
            reason: reason as i32,
            country: "KH".into(),
            ..Default::default()
        }),
        vec![entity(EntityKind::Person, person)],
    )
}

fn licence(id: &str, company: &str, secs: u64, status: LicenceStatus) -> Event {
    event(
        id,
        "disnaker/disnaker-konawe",
        secs,
        "74.02",
        Payload::CompanyLicence(CompanyLicence {
            status: status as i32,
            ..Default::default()
        }),
        vec![entity(EntityKind::Company, company)],
    )
}

fn recruiter_seen(id: &str, recruiter: &str, person: &str, village: &str, secs: u64) -> Event {
    event(
        id,
        "polri/polda-sultra",
        secs,
        village,
        Payload::RecruiterReport(RecruiterReport {
            channel: ReportChannel::Hotline as i32,
            ..Default::default()
        }),
        vec![
            entity(EntityKind::Recruiter, recruiter),
            entity(EntityKind::Person, person),
        ],
    )
}

fn engine() -> Engine {
    Engine::new(parse(DEFAULT_RULES).unwrap(), LATENESS)
}

/// Every alert of a stream, then of a tick far past every horizon; sorted by id.
fn run(events: &[Event]) -> Vec<Alert> {
    let mut e = engine();
    let mut out: Vec<Alert> = events.iter().flat_map(|ev| e.observe(ev)).collect();
    out.extend(e.tick(at(400 * DAY)));
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn of<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule_id == rule).collect()
}

use DepartureOutcome as D;
use InterviewOutcome as I;

#[test]
fn r1_fires_only_once_the_horizon_has_passed_in_event_time() {
    let mut e = engine();
    assert!(
        e.observe(&interview(
            "a",
            "kanim-kendari",
            "psn_1",
            0,
            I::Deferred,
            &[]
        ))
        .is_empty()
    );
    let horizon = 30 * DAY + LATENESS.as_secs();
    assert!(
        of(&e.tick(at(horizon - 1)), "R1").is_empty(),
        "not before the horizon"
    );
    let fired = e.tick(at(horizon));
    let r1 = of(&fired, "R1");
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0].evidence, ["imigrasi/kanim-kendari/a"]);
    assert_eq!(r1[0].group_key, "psn_1");
    assert_eq!(r1[0].rule_version, "2026.12-1");
    assert_eq!(r1[0].severity, Severity::High);
    assert!(e.tick(at(horizon + 10 * DAY)).is_empty(), "decided once");
}

#[test]
fn r1_registration_within_30_days_either_side_prevents_it() {
    let deferral = || interview("a", "kanim-kendari", "psn_1", 40 * DAY, I::Deferred, &[]);
    let reg = |secs| cpmi("r", "psn_1", "KEP-1", secs, CpmiStage::Registered);
    // Before, at the edge, and after the deferral (arriving after it): no alert.
    for secs in [10 * DAY, 40 * DAY + 30 * DAY] {
        assert!(
            of(&run(&[deferral(), reg(secs)]), "R1").is_empty(),
            "registration at {secs}"
        );
        assert!(of(&run(&[reg(secs), deferral()]), "R1").is_empty());
    }
    // One second outside the window on either side: alert.
    for secs in [10 * DAY - 1, 70 * DAY + 1] {
        assert_eq!(
            of(&run(&[deferral(), reg(secs)]), "R1").len(),
            1,
            "registration at {secs}"
        );
    }
    // A cancelled registration stage does not count; an issued passport is no trigger.
    let cancelled = cpmi("r", "psn_1", "KEP-1", 41 * DAY, CpmiStage::Cancelled);
    assert_eq!(of(&run(&[deferral(), cancelled]), "R1").len(), 1);
    assert!(
        of(
            &run(&[interview("b", "kanim-kendari", "psn_1", 0, I::Issued, &[])]),
            "R1"
        )
        .is_empty()
    );
    // A departure-check deferral is a trigger too.
    assert_eq!(
        of(
            &run(&[check("c", "TPI-CGK", "psn_2", 0, D::Deferred)]),
            "R1"
        )
        .len(),
        1
    );
}

#[test]
fn r2_village_warning_then_immigration_with_indicators_within_30_days() {
    let report = village_report("w", &["psn_1", "psn_9"], 0);
    let seen =
        |secs, ind: &[Indicator]| interview("i", "kanim-kendari", "psn_1", secs, I::Issued, ind);
    let flag = [Indicator::SponsorPresent];
    let r2 = run(&[report.clone(), seen(30 * DAY, &flag)]);
    let r2 = of(&r2, "R2");
    assert_eq!(r2.len(), 1);
    assert_eq!(
        r2[0].evidence,
        ["desa/74.02.05.2001/w", "imigrasi/kanim-kendari/i"]
    );
    assert!(
        of(&run(&[report.clone(), seen(30 * DAY + 1, &flag)]), "R2").is_empty(),
        "after the window"
    );
    assert!(
        of(&run(&[report.clone(), seen(DAY, &[])]), "R2").is_empty(),
        "no indicator"
    );
    assert!(
        of(
            &run(&[seen(0, &flag), village_report("w", &["psn_1"], DAY)]),
            "R2"
        )
        .is_empty(),
        "report came later"
    );
    // Arrival order does not matter, event time does.
    assert_eq!(of(&run(&[seen(DAY, &flag), report]), "R2").len(), 1);
}

#[test]
fn r3_deferred_then_another_office_within_14_days() {
    let first = interview("a", "kanim-kendari", "psn_1", 0, I::Deferred, &[]);
    let r3 = run(&[
        first.clone(),
        check("b", "TPI-CGK", "psn_1", 14 * DAY, D::Cleared),
    ]);
    assert_eq!(of(&r3, "R3").len(), 1);
    assert!(
        of(
            &run(&[
                first.clone(),
                check("b", "TPI-CGK", "psn_1", 14 * DAY + 1, D::Cleared)
            ]),
            "R3"
        )
        .is_empty()
    );
    assert!(
        of(
            &run(&[
                first.clone(),
                interview("b", "kanim-kendari", "psn_1", DAY, I::Issued, &[])
            ]),
            "R3"
        )
        .is_empty(),
        "same office"
    );
    assert!(
        of(
            &run(&[first, check("b", "TPI-CGK", "psn_2", DAY, D::Cleared)]),
            "R3"
        )
        .is_empty(),
        "someone else"
    );
}

#[test]
fn r4_recruiter_with_three_persons_from_two_villages_within_30_days() {
    let a = recruiter_seen("1", "rec_x", "psn_1", "74.02.05.2001", 0);
    let b = recruiter_seen("2", "rec_x", "psn_2", "74.02.05.2001", 10 * DAY);
    let c = |secs| recruiter_seen("3", "rec_x", "psn_3", "72.09.01.2002", secs);
    let fired = run(&[a.clone(), b.clone(), c(30 * DAY)]);
    let r4 = of(&fired, "R4");
    assert_eq!(r4.len(), 1);
    assert_eq!(r4[0].group_key, "rec_x");
    assert_eq!(r4[0].evidence.len(), 3);
    assert_eq!(r4[0].severity, Severity::Critical);
    assert!(
        of(&run(&[a.clone(), b.clone(), c(30 * DAY + 1)]), "R4").is_empty(),
        "window edge"
    );
    let same_village = recruiter_seen("3", "rec_x", "psn_3", "74.02.05.2001", DAY);
    assert!(
        of(&run(&[a.clone(), b.clone(), same_village]), "R4").is_empty(),
        "one village"
    );
    let same_person = recruiter_seen("3", "rec_x", "psn_1", "72.09.01.2002", DAY);
    assert!(
        of(&run(&[a.clone(), b.clone(), same_person]), "R4").is_empty(),
        "two persons"
    );
    // A fourth person in the same episode extends the open alert rather than raising another.
    let d = recruiter_seen("4", "rec_x", "psn_4", "72.09.01.2002", 20 * DAY);
    let mut e = engine();
    let mut out: Vec<Alert> = [a.clone(), b.clone(), c(15 * DAY), d.clone()]
        .iter()
        .flat_map(|ev| e.observe(ev))
        .collect();
    out.extend(e.tick(at(400 * DAY)));
    out.retain(|x| x.rule_id == "R4");
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(out[1].extends.is_some(), "{out:#?}");
    assert_eq!(
        (out[0].extends.as_deref(), out[0].evidence.len()),
        (None, 3)
    );
    assert_eq!(out[1].extends.as_deref(), Some(out[0].id.as_str()));
    assert_eq!(
        out[1].evidence,
        ["polri/polda-sultra/4"],
        "only what it adds"
    );
    assert_eq!(e.stats().extended, 1);
    // Without `extend`, the fourth person raises nothing more.
    let text = DEFAULT_RULES.replace("id = \"R4\"\n", "id = \"R4\"\nextend = false\n");
    let mut e = Engine::new(parse(&text).unwrap(), LATENESS);
    let mut r4: Vec<Alert> = [a, b, c(15 * DAY), d]
        .iter()
        .flat_map(|ev| e.observe(ev))
        .collect();
    r4.extend(e.tick(at(400 * DAY)));
    r4.retain(|x| x.rule_id == "R4");
    assert_eq!(r4.len(), 1);
}

#[test]
fn a_second_repeat_attempt_extends_the_open_r3_and_a_later_one_raises_anew() {
    let first = interview("a", "kanim-kendari", "psn_1", 0, I::Deferred, &[]);
    let second = check("b", "TPI-CGK", "psn_1", DAY, D::Deferred);
    let third = interview("c", "kanim-palu", "psn_1", 2 * DAY, I::Issued, &[]);
    let mut e = engine();
    let r3: Vec<Alert> = [first.clone(), second.clone(), third.clone()]
        .iter()
        .flat_map(|ev| e.observe(ev))
        .filter(|x| x.rule_id == "R3")
        .collect();
    assert!(r3.len() >= 2, "{r3:?}");
    assert!(r3[0].extends.is_none());
    for x in &r3[1..] {
        assert_eq!(x.extends.as_deref(), Some(r3[0].id.as_str()));
    }
    // The first alert's evidence and what each extension adds: the finding's evidence.
    let mut all: Vec<&String> = r3.iter().flat_map(|x| &x.evidence).collect();
    all.dedup();
    assert_eq!(
        all,
        [
            "imigrasi/kanim-kendari/a",
            "imigrasi/tpi/b",
            "imigrasi/kanim-palu/c"
        ]
    );
    assert!(
        r3.iter()
            .all(|x| x.evidence_sequences.len() == x.evidence.len())
    );
    // The same person deferred again long after the window: a new finding.
    let much_later = interview("d", "kanim-luwuk", "psn_1", 100 * DAY, I::Deferred, &[]);
    let again = check("e", "TPI-KDI", "psn_1", 101 * DAY, D::Cleared);
    let later: Vec<Alert> = [much_later, again]
        .iter()
        .flat_map(|ev| e.observe(ev))
        .filter(|x| x.rule_id == "R3")
        .collect();
    assert_eq!(later.len(), 1);
    assert!(later[0].extends.is_none());
}

#[test]
fn r5_registration_naming_a_suspended_company() {
    let suspended = licence("l1", "KEP-9", 0, LicenceStatus::Suspended);
    let reg = |secs| cpmi("c", "psn_1", "KEP-9", secs, CpmiStage::Registered);
    let fired = run(&[suspended.clone(), reg(DAY)]);
    let r5 = of(&fired, "R5");
    assert_eq!(r5.len(), 1);
    assert_eq!(
        r5[0].evidence,
        ["disnaker/disnaker-konawe/l1", "bp3mi/bp3mi-sultra/c"]
    );
    assert_eq!(
        of(&run(&[suspended.clone(), reg(0)]), "R5").len(),
        1,
        "at the same instant"
    );
    assert!(
        of(
            &run(&[reg(0), licence("l1", "KEP-9", 1, LicenceStatus::Suspended)]),
            "R5"
        )
        .is_empty(),
        "suspended after"
    );
    let reinstated = licence("l2", "KEP-9", DAY / 2, LicenceStatus::Active);
    assert!(
        of(
            &run(&[suspended.clone(), reinstated.clone(), reg(DAY)]),
            "R5"
        )
        .is_empty(),
        "active again"
    );
    // The reinstatement arriving late, but within the lateness, is still taken into account.
    let late = {
        let mut e = engine();
        let mut out = e.observe(&suspended);
        out.extend(e.observe(&reg(DAY)));
        out.extend(e.observe(&reinstated));
        out.extend(e.tick(at(400 * DAY)));
        out
    };
    assert!(of(&late, "R5").is_empty());
}

#[test]
fn r6_returned_victim_seen_departing_within_180_days() {
    let back = repatriation("r", "psn_1", 0, RepatriationReason::Victim);
    let again = |secs| check("c", "TPI-KDI", "psn_1", secs, D::Cleared);
    assert_eq!(of(&run(&[back.clone(), again(180 * DAY)]), "R6").len(), 1);
    assert!(of(&run(&[back, again(180 * DAY + 1)]), "R6").is_empty());
    let deported = repatriation("r", "psn_1", 0, RepatriationReason::Deported);
    assert!(of(&run(&[deported, again(DAY)]), "R6").is_empty());
}

fn scenario() -> Vec<Event> {
    vec![
        village_report("w1", &["psn_1"], 0),
        interview(
            "a1",
            "kanim-kendari",
            "psn_1",
            DAY,
            I::Deferred,
            &[Indicator::SponsorPresent],
        ),
        check("c1", "TPI-CGK", "psn_1", 2 * DAY, D::Deferred),
        recruiter_seen("r1", "rec_x", "psn_1", "74.02.05.2001", 2 * DAY),
        recruiter_seen("r2", "rec_x", "psn_2", "74.02.05.2001", 2 * DAY + 10),
        recruiter_seen("r3", "rec_x", "psn_3", "72.09.01.2002", 2 * DAY + 20),
        licence("l1", "KEP-9", 3 * DAY, LicenceStatus::Revoked),
        cpmi("p1", "psn_4", "KEP-9", 3 * DAY + 100, CpmiStage::Registered),
        repatriation("v1", "psn_5", 3 * DAY + 200, RepatriationReason::Victim),
        interview("a2", "kanim-palu", "psn_5", 3 * DAY + 300, I::Issued, &[]),
    ]
}

#[test]
fn every_rule_fires_in_one_scenario_and_replays_are_identical() {
    let first = run(&scenario());
    let mut rules: Vec<&str> = first.iter().map(|a| a.rule_id.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    assert_eq!(rules, ["R1", "R2", "R3", "R4", "R5", "R6"]);
    assert_eq!(
        run(&scenario()),
        first,
        "a replay gives the same alerts, ids included"
    );
    let mut ids: Vec<&str> = first.iter().map(|a| a.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), first.len(), "no alert twice");
}

#[test]
fn out_of_order_within_the_lateness_gives_the_same_alerts() {
    let in_order = run(&scenario());
    // Swap events that lie less than the allowed lateness (1 h) apart in event time.
    let mut shuffled = scenario();
    shuffled.swap(3, 5);
    shuffled.swap(6, 7);
    shuffled.swap(8, 9);
    assert_ne!(
        shuffled.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        scenario().iter().map(|e| e.id.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(run(&shuffled), in_order);
    let mut e = engine();
    for ev in &shuffled {
        e.observe(ev);
    }
    assert_eq!(e.stats().late_events, 0);
}

#[test]
fn events_later_than_the_lateness_are_counted() {
    let mut e = engine();
    e.observe(&interview(
        "a",
        "kanim-kendari",
        "psn_1",
        10 * DAY,
        I::Issued,
        &[],
    ));
    e.observe(&interview("b", "kanim-kendari", "psn_2", 0, I::Issued, &[]));
    assert_eq!(e.stats().late_events, 1);
    assert_eq!(e.stats().events, 2);
}

#[test]
fn alert_ids_depend_on_rule_version_group_and_evidence() {
    let set = parse(DEFAULT_RULES).unwrap();
    let rule = &set.rules[0];
    let a = alert_id(rule, "v1", "psn_1", &["x".into()]);
    assert_eq!(a, alert_id(rule, "v1", "psn_1", &["x".into()]));
    assert!(a.starts_with("alr_") && a.len() == 36);
    assert_ne!(a, alert_id(rule, "v2", "psn_1", &["x".into()]));
    assert_ne!(a, alert_id(rule, "v1", "psn_2", &["x".into()]));
    assert_ne!(a, alert_id(rule, "v1", "psn_1", &["y".into()]));
}

#[test]
fn a_checkpoint_taken_anywhere_continues_exactly() {
    let events = scenario();
    let whole = run(&events);
    for split in 0..=events.len() {
        let mut first = engine();
        let mut out: Vec<Alert> = events[..split]
            .iter()
            .flat_map(|ev| first.observe(ev))
            .collect();
        let bytes = first.checkpoint().unwrap();
        let mut second = Engine::restore(parse(DEFAULT_RULES).unwrap(), LATENESS, &bytes).unwrap();
        assert_eq!(second.stats(), first.stats());
        assert_eq!(second.watermark(), first.watermark());
        out.extend(events[split..].iter().flat_map(|ev| second.observe(ev)));
        out.extend(second.tick(at(400 * DAY)));
        out.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(out, whole, "checkpoint after {split} events");
    }
}

#[test]
fn a_checkpoint_of_another_rule_set_or_lateness_is_refused() {
    let mut e = engine();
    for ev in scenario() {
        e.observe(&ev);
    }
    let bytes = e.checkpoint().unwrap();
    let other = parse(&DEFAULT_RULES.replacen("2026.12-1", "2026.11-2", 1)).unwrap();
    assert!(matches!(
        Engine::restore(other, LATENESS, &bytes),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(
        Engine::restore(
            parse(DEFAULT_RULES).unwrap(),
            Duration::from_secs(1),
            &bytes
        ),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(
        Engine::restore(
            parse(DEFAULT_RULES).unwrap(),
            LATENESS,
            &bytes[..bytes.len() / 2]
        ),
        Err(Error::Checkpoint(_))
    ));
}

#[test]
fn the_state_cap_drops_the_groups_idle_longest() {
    let mut e = engine().with_cap(100);
    // Each returned victim is remembered (R6) under their person, until the cap.
    for i in 0..1_000u64 {
        e.observe(&repatriation(
            &format!("v{i}"),
            &format!("psn_{i}"),
            i,
            RepatriationReason::Victim,
        ));
        assert!(e.tracked() <= 100, "tracked {} after {i}", e.tracked());
    }
    assert!(e.stats().shed_groups >= 900, "{:?}", e.stats());
    // The most recent person is still known, the oldest is not.
    let recent = e.observe(&interview(
        "a1",
        "kanim-palu",
        "psn_999",
        2_000,
        I::Issued,
        &[],
    ));
    assert_eq!(of(&recent, "R6").len(), 1, "{recent:?}");
    let oldest = e.observe(&interview(
        "a2",
        "kanim-palu",
        "psn_0",
        2_001,
        I::Issued,
        &[],
    ));
    assert!(of(&oldest, "R6").is_empty(), "{oldest:?}");
}

// ---- late and batched reports ---------------------------------------------------------------

/// `ev` as the hub recorded it at `secs`.
fn recorded(mut ev: Event, secs: u64) -> Event {
    ev.recorded_at = Some(at(secs).into());
    ev
}

/// Feed `events`, then let hub time run on to `until` in ticks of a minute; every alert.
fn feed(e: &mut Engine, events: &[Event], until: u64) -> Vec<Alert> {
    let mut out: Vec<Alert> = events.iter().flat_map(|ev| e.observe(ev)).collect();
    let from = e
        .clock()
        .and_then(|c| c.duration_since(at(0)).ok())
        .map_or(0, |d| d.as_secs());
    for t in (from..=until).step_by(60) {
        out.extend(e.tick(at(t)));
    }
    out
}

/// A day of one Kanim's, one BP3MI office's, one Disnaker office's and the police's reports
/// (day 0), with the alerts each pattern should give: R1 for psn_2 only (psn_1's registration
/// comes later the same day), R5 for KEP-1 (revoked before its registration), none for KEP-2
/// (revoked after), R4 for rec_x (three persons, two villages) grown by a fourth person.
fn a_day() -> Vec<Event> {
    let h = 3_600;
    vec![
        interview("i1", "kanim-kendari", "psn_1", 8 * h, I::Deferred, &[]),
        interview("i2", "kanim-kendari", "psn_2", 9 * h, I::Deferred, &[]),
        licence("l1", "KEP-1", 9 * h, LicenceStatus::Revoked),
        cpmi("c1", "psn_1", "KEP-1", 11 * h, CpmiStage::Registered),
        cpmi("c2", "psn_3", "KEP-2", 12 * h, CpmiStage::Registered),
        licence("l2", "KEP-2", 14 * h, LicenceStatus::Revoked),
        recruiter_seen("r1", "rec_x", "psn_4", "74.02.05.2001", 10 * h),
        recruiter_seen("r2", "rec_x", "psn_5", "74.02.05.2001", 13 * h),
        recruiter_seen("r3", "rec_x", "psn_6", "72.09.01.2002", 15 * h),
        recruiter_seen("r4", "rec_x", "psn_7", "72.09.01.2002", 17 * h),
    ]
}

/// The day sent at once 40 days later (hub time), one event a second, in the given order; the
/// alerts once hub time has moved on two days.
fn batch(order: &[Event]) -> Vec<Alert> {
    let sent = 40 * DAY;
    let mut e = engine();
    e.tick(at(sent));
    let events: Vec<Event> = (0u64..)
        .zip(order)
        .map(|(i, ev)| recorded(ev.clone(), sent + i))
        .collect();
    let mut out = feed(&mut e, &events, sent + 2 * DAY);
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

#[test]
fn a_batch_sent_in_any_order_gives_the_alerts_of_the_batch_in_order() {
    let day = a_day();
    let in_order = batch(&day);
    let rules: Vec<&str> = in_order.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(
        of(&in_order, "R1")
            .iter()
            .map(|a| a.group_key.as_str())
            .collect::<Vec<_>>(),
        ["psn_2"],
        "{rules:?}"
    );
    let r5 = of(&in_order, "R5");
    assert_eq!(r5.len(), 1, "{r5:#?}");
    assert_eq!(r5[0].group_key, "KEP-1");
    let r4 = of(&in_order, "R4");
    assert_eq!(r4.len(), 2, "raised and grown: {r4:#?}");
    assert!(in_order.iter().all(|a| a.late && a.correction.is_none()));
    let mut reversed = day.clone();
    reversed.reverse();
    assert_eq!(batch(&reversed), in_order, "reverse order");
    // Two offices' uploads interleaved: the Kanim's and the police's first, BP3MI's and
    // Disnaker's after, each in reverse.
    let (mut first, mut second): (Vec<Event>, Vec<Event>) = day
        .iter()
        .cloned()
        .partition(|e| e.source.starts_with("imigrasi") || e.source.starts_with("polri"));
    first.reverse();
    second.reverse();
    let mut interleaved = Vec::new();
    while !first.is_empty() || !second.is_empty() {
        interleaved.extend(first.pop());
        interleaved.extend(second.pop());
    }
    assert_eq!(batch(&interleaved), in_order, "interleaved");
    // Decided event by event as they arrive (no grace), the day in order would first raise an
    // R1 for psn_1 and withdraw it when the registration comes a few events later: the wait is
    // what spares the duty officer that.
    let text = DEFAULT_RULES.replace("grace = \"30s\"", "grace = \"0s\"");
    let mut e = Engine::new(parse(&text).unwrap(), LATENESS);
    e.tick(at(40 * DAY));
    let events: Vec<Event> = (0u64..)
        .zip(&day)
        .map(|(i, ev)| recorded(ev.clone(), 40 * DAY + i))
        .collect();
    let hasty = feed(&mut e, &events, 42 * DAY);
    let raised = hasty
        .iter()
        .find(|a| a.rule_id == "R1" && a.group_key == "psn_1" && a.correction.is_none())
        .expect("a hasty R1 for psn_1");
    assert!(
        hasty.iter().any(|a| a
            .correction
            .as_ref()
            .is_some_and(|c| c.of == raised.id && c.withdrawn)),
        "and its withdrawal: {hasty:#?}"
    );
}

#[test]
fn a_registration_reported_after_its_r1_withdraws_it_with_the_evidence() {
    let mut e = engine();
    // Deferred 40 days ago, entered now: R1 once its batch settled.
    let deferral = recorded(
        interview("i1", "kanim-kendari", "psn_1", 0, I::Deferred, &[]),
        40 * DAY,
    );
    let raised = feed(&mut e, &[deferral], 40 * DAY + 600);
    let r1 = of(&raised, "R1");
    assert_eq!(r1.len(), 1, "{raised:#?}");
    assert!(r1[0].late, "raised on late evidence");
    let id = r1[0].id.clone();
    // BP3MI's registration of the person, 5 days after the deferral, arrives a day later.
    let reg = recorded(
        cpmi("c1", "psn_1", "KEP-1", 5 * DAY, CpmiStage::Registered),
        41 * DAY,
    );
    let out = e.observe(&reg);
    let corrections: Vec<&Alert> = out.iter().filter(|a| a.correction.is_some()).collect();
    assert_eq!(corrections.len(), 1, "{out:#?}");
    let c = corrections[0];
    assert_eq!(
        c.correction,
        Some(Correction {
            of: id.clone(),
            withdrawn: true
        })
    );
    assert_eq!(c.evidence, ["bp3mi/bp3mi-sultra/c1"]);
    assert!(c.summary.starts_with("withdrawn: "), "{}", c.summary);
    assert!(c.summary.contains("cpmi_status"), "{}", c.summary);
    assert_eq!((e.stats().corrections, e.stats().withdrawn), (1, 1));
    // A second copy of the news changes nothing more; nor does a registration outside ±30 days.
    assert!(e.observe(&reg).is_empty());
    let far = recorded(
        cpmi("c2", "psn_1", "KEP-1", 35 * DAY, CpmiStage::Registered),
        41 * DAY,
    );
    assert!(e.observe(&far).iter().all(|a| a.correction.is_none()));
    // Replayed from the start (the same stream), the same decisions and the same correction.
    let mut again = engine();
    let replay = [recorded(
        interview("i1", "kanim-kendari", "psn_1", 0, I::Deferred, &[]),
        40 * DAY,
    )];
    let mut out2 = feed(&mut again, &replay, 40 * DAY + 600);
    out2.extend(again.observe(&reg));
    assert!(out2.iter().any(|a| a == c));
}

#[test]
fn a_licence_status_reported_late_raises_or_withdraws_r5_marked_late() {
    let mut e = engine();
    // Registration naming KEP-1 on day 1; nothing known against KEP-1 then: no R5.
    let reg = recorded(
        cpmi("c1", "psn_1", "KEP-1", DAY, CpmiStage::Registered),
        DAY,
    );
    assert!(of(&feed(&mut e, &[reg], DAY + 3_600 * 3), "R5").is_empty());
    // Disnaker reports, two days late, that KEP-1 was revoked on day 0: R5, on late evidence.
    let revoked = recorded(licence("l1", "KEP-1", 0, LicenceStatus::Revoked), 2 * DAY);
    let out = e.observe(&revoked);
    let r5 = of(&out, "R5");
    assert_eq!(r5.len(), 1, "{out:#?}");
    assert!(r5[0].late && r5[0].correction.is_none());
    assert_eq!(
        r5[0].evidence,
        ["disnaker/disnaker-konawe/l1", "bp3mi/bp3mi-sultra/c1"]
    );
    let id = r5[0].id.clone();
    // Then that the revocation was lifted, back-dated before the registration: withdrawn.
    let lifted = recorded(
        licence("l2", "KEP-1", DAY / 2, LicenceStatus::Active),
        3 * DAY,
    );
    let out = e.observe(&lifted);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0].correction,
        Some(Correction {
            of: id,
            withdrawn: true
        })
    );
    assert!(
        out[0].summary.contains("licence_status ACTIVE"),
        "{}",
        out[0].summary
    );
}

#[test]
fn decisions_wait_for_a_late_reporting_unit_but_no_longer_than_its_idle_time() {
    // BP3MI's office sends a nightly export: the registrations of the day before, at 01:00 (one
    // just after midnight, one at noon: delays of about a day).
    let export = |day: u64, extra: Option<Event>| -> Vec<Event> {
        let mut day_events = vec![
            cpmi(
                &format!("x{day}a"),
                "psn_9",
                "KEP-1",
                day * DAY + 1_800,
                CpmiStage::Registered,
            ),
            cpmi(
                &format!("x{day}b"),
                "psn_9",
                "KEP-1",
                day * DAY + 12 * 3_600,
                CpmiStage::Registered,
            ),
        ];
        day_events.extend(extra);
        day_events
            .into_iter()
            .map(|e| recorded(e, (day + 1) * DAY + 3_600))
            .collect()
    };
    let deferral = |id: &str, person: &str, day: u64| {
        recorded(
            interview(
                id,
                "kanim-kendari",
                person,
                day * DAY + 10 * 3_600,
                I::Deferred,
                &[],
            ),
            day * DAY + 10 * 3_600,
        )
    };
    // The office exports every night: the decision on a day-1 deferral (due by event time at
    // day 31 + 11 h) waits for the night's export, which brings the registration that clears it.
    let mut e = engine();
    let mut out = feed(&mut e, &export(0, None), DAY + 3_600);
    out.extend(feed(
        &mut e,
        &[deferral("i1", "psn_1", 1)],
        DAY + 10 * 3_600,
    ));
    for day in 1..31 {
        out.extend(feed(&mut e, &export(day, None), (day + 1) * DAY + 3_600));
    }
    let clears = cpmi(
        "c1",
        "psn_1",
        "KEP-1",
        31 * DAY + 9 * 3_600,
        CpmiStage::Registered,
    );
    out.extend(feed(&mut e, &export(31, Some(clears)), 33 * DAY));
    assert!(of(&out, "R1").is_empty(), "{out:#?}");
    assert!(out.iter().all(|a| a.correction.is_none()));
    // The exports stop after day 31's (the office is offline): the decision on a day-3
    // deferral (due at day 33 + 11 h) waits for it, but no longer than 36 h after its last
    // report (day 32, 01:00).
    let mut e = engine();
    let mut out = feed(&mut e, &export(0, None), DAY + 3_600);
    out.extend(feed(
        &mut e,
        &[deferral("i2", "psn_2", 3)],
        3 * DAY + 10 * 3_600,
    ));
    for day in 1..32 {
        out.extend(feed(&mut e, &export(day, None), (day + 1) * DAY + 3_600));
    }
    let idle_until = 32 * DAY + 3_600 + 36 * 3_600;
    out.extend(feed(&mut e, &[], idle_until - 120));
    assert!(
        of(&out, "R1").is_empty(),
        "waits while the unit may still report"
    );
    let after = feed(&mut e, &[], idle_until + 120);
    assert_eq!(
        of(&after, "R1").len(),
        1,
        "not past its idle time: {after:#?}"
    );
    // Had the office never exported (or been silent for longer than 36 h), nothing waits: the
    // decision comes once the horizon and the batch's grace have passed.
    let mut e = engine();
    let out = feed(
        &mut e,
        &[deferral("i3", "psn_3", 3)],
        33 * DAY + 11 * 3_600 + 120,
    );
    assert_eq!(of(&out, "R1").len(), 1, "{out:#?}");
}

/// Feed `events` with hub time running on (ticks of a minute) up to each one's recorded time,
/// then up to `until`; every alert.
fn paced(e: &mut Engine, events: &[Event], until: u64) -> Vec<Alert> {
    let mut out = Vec::new();
    for ev in events {
        let t = SystemTime::try_from(ev.recorded_at.unwrap()).unwrap();
        let secs = t.duration_since(at(0)).unwrap().as_secs();
        out.extend(feed(e, &[], secs.saturating_sub(1)));
        out.extend(e.observe(ev));
    }
    out.extend(feed(e, &[], until));
    out
}

#[test]
fn a_checkpoint_taken_anywhere_in_a_late_batch_continues_exactly() {
    let mut day = a_day();
    day.reverse();
    let mut events: Vec<Event> = (0u64..)
        .zip(&day)
        .map(|(i, ev)| recorded(ev.clone(), 40 * DAY + i))
        .collect();
    // Three days later, psn_2's registration: its R1 is withdrawn.
    events.push(recorded(
        cpmi("c9", "psn_2", "KEP-1", 20 * DAY, CpmiStage::Registered),
        43 * DAY,
    ));
    let whole = {
        let mut e = engine();
        e.tick(at(40 * DAY));
        let mut out = paced(&mut e, &events, 44 * DAY);
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    };
    assert!(
        whole
            .iter()
            .any(|a| a.correction.as_ref().is_some_and(|c| c.withdrawn)),
        "psn_2's R1 withdrawn: {whole:#?}"
    );
    for split in 0..=events.len() {
        let mut first = engine();
        first.tick(at(40 * DAY));
        let until = events.get(split).map_or(44 * DAY, |ev| {
            let t = SystemTime::try_from(ev.recorded_at.unwrap()).unwrap();
            t.duration_since(at(0)).unwrap().as_secs() - 1
        });
        let mut out = paced(&mut first, &events[..split], until);
        let bytes = first.checkpoint().unwrap();
        let mut second = Engine::restore(parse(DEFAULT_RULES).unwrap(), LATENESS, &bytes).unwrap();
        assert_eq!(second.clock(), first.clock());
        out.extend(paced(&mut second, &events[split..], 44 * DAY));
        out.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(out, whole, "checkpoint after {split} events");
    }
}

#[test]
fn r4_counts_the_persons_home_areas_where_the_event_carries_them() {
    // Police reports from one place, naming residents of two districts (their NIKs' areas).
    let seen = |id: &str, person: &str, home: &str, secs: u64| {
        let mut e = recruiter_seen(id, "rec_y", person, "74.02.05.2001", secs);
        e.entities.push(EntityRef {
            kind: EntityKind::Place as i32,
            id: home.into(),
            role: "home_area".into(),
        });
        e
    };
    let two_homes = [
        seen("1", "psn_1", "74.02.05", 0),
        seen("2", "psn_2", "74.02.05", DAY),
        seen("3", "psn_3", "72.09.01", 2 * DAY),
    ];
    assert_eq!(
        of(&run(&two_homes), "R4").len(),
        1,
        "two home areas, one place"
    );
    // Three persons of one district reported in two places: one home area, no R4.
    let one_home = [
        seen("1", "psn_1", "74.02.05", 0),
        recruiter_seen("2", "rec_y", "psn_2", "72.09.01.2002", DAY),
        seen("3", "psn_3", "74.02.05", 2 * DAY),
    ];
    let mut one_home = one_home.to_vec();
    one_home[1].entities.push(EntityRef {
        kind: EntityKind::Place as i32,
        id: "74.02.05".into(),
        role: "home_area".into(),
    });
    assert!(of(&run(&one_home), "R4").is_empty());
}
