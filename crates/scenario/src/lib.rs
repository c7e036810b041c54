//! Synthetic activity of the agencies, in the stored (pseudonymised) form the bus holds: what
//! the correlator reads. Seeded: the same [`Spec`] gives the same events, byte for byte.
//!
//! Mostly ordinary traffic — passport interviews, departure checks, CPMI registrations, licence
//! updates, village and police reports, repatriations — across the regencies of the seed
//! articles, with the storylines of rules R1–R6 woven in at a fixed rate. Every token is
//! invented (`psn_…`, `rec_…`); nothing here refers to a real person.

pub mod demo;
pub mod pilot;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;

/// Regencies of the seed articles (Konawe, Kendari, Tojo Una-Una, Banggai, Kotawaringin Timur,
/// Tanah Bumbu, Palu), by their area codes.
pub const REGENCIES: [&str; 7] = [
    "74.02", "74.71", "72.09", "72.01", "62.02", "63.10", "72.71",
];
/// Immigration offices interviewing passport applicants.
pub const OFFICES: [&str; 6] = [
    "kanim-kendari",
    "kanim-palu",
    "kanim-luwuk",
    "kanim-sampit",
    "kanim-batulicin",
    "kanim-baubau",
];
/// Departure checkpoints.
pub const CHECKPOINTS: [&str; 6] = [
    "TPI-CGK", "TPI-KDI", "TPI-PLW", "TPI-BTH", "TPI-NNX", "TPI-UPG",
];
const COUNTRIES: [&str; 6] = ["MY", "KH", "TW", "HK", "SA", "AE"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub seed: u64,
    /// Background events (storyline events come on top, about 1% more).
    pub events: u64,
    pub persons: u32,
    pub recruiters: u32,
    /// Villages (spread over [`REGENCIES`]).
    pub villages: u32,
    pub companies: u32,
    /// Time of the first event; the others follow, evenly spread over `span`.
    pub start: SystemTime,
    pub span: Duration,
    /// One storyline of each rule per this many background events (0: none).
    pub storyline_every: u64,
}

impl Spec {
    /// A small scenario of `events` events over the 90 days before `end`.
    pub fn small(seed: u64, events: u64, end: SystemTime) -> Self {
        let span = Duration::from_secs(90 * 86_400);
        Self {
            seed,
            events,
            persons: (events / 10).max(50) as u32,
            recruiters: (events / 300).max(10) as u32,
            villages: (events / 300).max(10) as u32,
            companies: 50,
            start: end.checked_sub(span).unwrap_or(SystemTime::UNIX_EPOCH),
            span,
            storyline_every: 200,
        }
    }
}

/// A deterministic token for entity `n` of a kind.
fn token(prefix: &str, seed: u64, n: u64) -> String {
    format!("{prefix}{:016x}", mix(seed, n))
}

/// splitmix64 of entity `n` under `seed`: a bijection in `n`, so distinct entities get distinct
/// values.
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The events of a [`Spec`], in event-time order.
pub struct Scenario {
    spec: Spec,
    rng: fastrand::Rng,
    emitted_background: u64,
    counter: u64,
    scheduled: u64,
    /// Storyline events waiting for their time: (time, order, event).
    later: BinaryHeap<Reverse<(SystemTime, u64, Wrapped)>>,
}

/// An event ordered only by its place in the heap's key.
struct Wrapped(Event);

impl PartialEq for Wrapped {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Wrapped {}
impl PartialOrd for Wrapped {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wrapped {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

const DAY: u64 = 86_400;
/// The longest storyline, in days (R6: a victim departing again 30-60 days after return).
const STORYLINE_DAYS: u64 = 61;

impl Scenario {
    pub fn new(spec: Spec) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(spec.seed),
            spec,
            emitted_background: 0,
            counter: 0,
            scheduled: 0,
            later: BinaryHeap::new(),
        }
    }

    fn person(&mut self) -> String {
        let n = self.rng.u64(..u64::from(self.spec.persons));
        token("psn_", self.spec.seed, n)
    }

    fn recruiter(&mut self) -> String {
        let n = self.rng.u64(..u64::from(self.spec.recruiters));
        token("rec_", self.spec.seed ^ 1, n)
    }

    fn company(&mut self) -> String {
        let n = self.rng.u32(..self.spec.companies);
        format!("KEP-{n:04}/P3MI")
    }

    fn village(&mut self) -> String {
        let n = self.rng.u32(..self.spec.villages);
        let regency = REGENCIES[n as usize % REGENCIES.len()];
        let district = 1 + (n / 7) % 20;
        let village = 2001 + (n / 140);
        format!("{regency}.{district:02}.{village}")
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.usize(..from.len())]
    }

    fn event(
        &mut self,
        source: String,
        time: SystemTime,
        region: String,
        payload: Payload,
        entities: Vec<(EntityKind, String)>,
    ) -> Event {
        self.counter += 1;
        let info = timpora_proto::type_of(&payload);
        Event {
            id: format!("sim-{}-{}", self.spec.seed, self.counter),
            source,
            r#type: info.name.into(),
            spec_version: timpora_proto::SPEC_VERSION.into(),
            time: Some(time.into()),
            region,
            entities: entities
                .into_iter()
                .map(|(kind, id)| EntityRef {
                    kind: kind as i32,
                    id,
                    role: String::new(),
                })
                .collect(),
            payload: Some(payload),
            ..Default::default()
        }
    }

    fn interview(
        &mut self,
        time: SystemTime,
        office: &str,
        person: String,
        outcome: InterviewOutcome,
        indicators: &[Indicator],
        recruiter: Option<String>,
    ) -> Event {
        let region = self.village();
        let mut entities = vec![(EntityKind::Person, person)];
        entities.extend(recruiter.map(|r| (EntityKind::Recruiter, r)));
        let country = self.pick(&COUNTRIES).to_owned();
        self.event(
            format!("imigrasi/{office}"),
            time,
            region,
            Payload::PassportInterview(PassportInterview {
                declared_purpose: TravelPurpose::Tourism as i32,
                destination_country: country,
                outcome: outcome as i32,
                indicators: indicators.iter().map(|i| *i as i32).collect(),
                ..Default::default()
            }),
            entities,
        )
    }

    fn departure(&mut self, time: SystemTime, person: String, outcome: DepartureOutcome) -> Event {
        let checkpoint = self.pick(&CHECKPOINTS).to_owned();
        let region = self.pick(&REGENCIES).to_owned();
        let country = self.pick(&COUNTRIES).to_owned();
        self.event(
            format!("imigrasi/{}", checkpoint.to_lowercase()),
            time,
            region,
            Payload::DepartureCheck(DepartureCheck {
                checkpoint_code: checkpoint,
                destination_country: country,
                outcome: outcome as i32,
                ..Default::default()
            }),
            vec![(EntityKind::Person, person)],
        )
    }

    fn cpmi(
        &mut self,
        time: SystemTime,
        person: String,
        company: String,
        stage: CpmiStage,
    ) -> Event {
        let regency = self.pick(&REGENCIES).to_owned();
        let country = self.pick(&COUNTRIES).to_owned();
        self.event(
            "bp3mi/bp3mi-sultra".into(),
            time,
            regency,
            Payload::CpmiStatus(CpmiStatus {
                p3mi_licence: company.clone(),
                destination_country: country,
                stage: stage as i32,
                ..Default::default()
            }),
            vec![(EntityKind::Person, person), (EntityKind::Company, company)],
        )
    }

    fn licence(&mut self, time: SystemTime, company: String, status: LicenceStatus) -> Event {
        let regency = self.pick(&REGENCIES).to_owned();
        self.event(
            format!("disnaker/disnaker-{}", regency.replace('.', "")),
            time,
            regency,
            Payload::CompanyLicence(CompanyLicence {
                p3mi_licence: company.clone(),
                status: status as i32,
                ..Default::default()
            }),
            vec![(EntityKind::Company, company)],
        )
    }

    fn village_report(&mut self, time: SystemTime, person: String) -> Event {
        let village = self.village();
        self.event(
            format!("desa/{village}"),
            time,
            village.clone(),
            Payload::CommunityReport(CommunityReport {
                village_code: village,
                reporter_role: ReporterRole::Pimpasa as i32,
                kind: CommunityReportKind::ResidentPlanningDeparture as i32,
                ..Default::default()
            }),
            vec![(EntityKind::Person, person)],
        )
    }

    fn recruiter_report(
        &mut self,
        time: SystemTime,
        recruiter: String,
        person: String,
        village: String,
    ) -> Event {
        self.event(
            "polri/polda-sultra".into(),
            time,
            village,
            Payload::RecruiterReport(RecruiterReport {
                channel: ReportChannel::Hotline as i32,
                ..Default::default()
            }),
            vec![
                (EntityKind::Recruiter, recruiter),
                (EntityKind::Person, person),
            ],
        )
    }

    fn repatriation(
        &mut self,
        time: SystemTime,
        person: String,
        reason: RepatriationReason,
    ) -> Event {
        let regency = self.pick(&REGENCIES).to_owned();
        let country = self.pick(&COUNTRIES).to_owned();
        self.event(
            "bp3mi/bp3mi-sultra".into(),
            time,
            regency,
            Payload::Repatriation(Repatriation {
                country,
                reason: reason as i32,
                ..Default::default()
            }),
            vec![(EntityKind::Person, person)],
        )
    }

    /// One ordinary event at `t`.
    fn background(&mut self, t: SystemTime) -> Event {
        let roll = self.rng.u32(..100);
        let person = self.person();
        match roll {
            0..35 => {
                let office = self.pick(&OFFICES);
                let recruiter = (self.rng.u32(..100) < 2).then(|| self.recruiter());
                self.interview(t, office, person, InterviewOutcome::Issued, &[], recruiter)
            }
            35..60 => self.departure(t, person, DepartureOutcome::Cleared),
            60..78 => {
                let company = self.company();
                let stage = match self.rng.u32(..4) {
                    0 => CpmiStage::Registered,
                    1 => CpmiStage::OrientationDone,
                    2 => CpmiStage::Ready,
                    _ => CpmiStage::Departed,
                };
                self.cpmi(t, person, company, stage)
            }
            78..82 => {
                let company = self.company();
                self.licence(t, company, LicenceStatus::Active)
            }
            82..88 => self.village_report(t, person),
            88..92 => {
                let recruiter = self.recruiter();
                let village = self.village();
                self.recruiter_report(t, recruiter, person, village)
            }
            _ => self.repatriation(t, person, RepatriationReason::Other),
        }
    }

    fn schedule(&mut self, e: Event) {
        let t = e
            .time
            .and_then(|t| SystemTime::try_from(t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.scheduled += 1;
        let order = self.scheduled;
        self.later.push(Reverse((t, order, Wrapped(e))));
    }

    /// The storylines of R1-R6 starting at `t`: their events are scheduled, not returned.
    fn storylines(&mut self, t: SystemTime) {
        let days = |d: u64| Duration::from_secs(d * DAY);
        // R1: deferred, never registered with BP3MI.
        let p = token("psn_", self.spec.seed ^ 0xA1, self.counter);
        let e = self.departure(t, p, DepartureOutcome::Deferred);
        self.schedule(e);
        // R2: a village warning, then an interview with indicators 3-20 days later.
        let p = token("psn_", self.spec.seed ^ 0xA2, self.counter);
        let e = self.village_report(t, p.clone());
        self.schedule(e);
        let later = t + days(3 + self.rng.u64(..18));
        let office = self.pick(&OFFICES);
        let e = self.interview(
            later,
            office,
            p,
            InterviewOutcome::Issued,
            &[Indicator::SponsorPresent],
            None,
        );
        self.schedule(e);
        // R3: deferred at one office, another office 2-10 days later.
        let p = token("psn_", self.spec.seed ^ 0xA3, self.counter);
        let e = self.interview(
            t,
            OFFICES[0],
            p.clone(),
            InterviewOutcome::Deferred,
            &[],
            None,
        );
        self.schedule(e);
        let later = t + days(2 + self.rng.u64(..9));
        let e = self.interview(later, OFFICES[1], p, InterviewOutcome::Issued, &[], None);
        self.schedule(e);
        // R4: one recruiter, three persons, two villages, within 10 days.
        let r = token("rec_", self.spec.seed ^ 0xA4, self.counter);
        for i in 0..3u64 {
            let p = self.person();
            let v = self.village();
            let e = self.recruiter_report(t + days(i * 3), r.clone(), p, v);
            self.schedule(e);
        }
        // R5: a licence suspended, then a registration naming the company 1-5 days later.
        let c = format!("KEP-S{:06}/P3MI", self.counter % 1_000_000);
        let e = self.licence(t, c.clone(), LicenceStatus::Suspended);
        self.schedule(e);
        let p = self.person();
        let at = t + days(1 + self.rng.u64(..5));
        let e = self.cpmi(at, p, c, CpmiStage::Registered);
        self.schedule(e);
        // R6: a returned victim seen departing 30-60 days later.
        let p = token("psn_", self.spec.seed ^ 0xA6, self.counter);
        let e = self.repatriation(t, p.clone(), RepatriationReason::Victim);
        self.schedule(e);
        let at = t + days(30 + self.rng.u64(..30));
        let e = self.departure(at, p, DepartureOutcome::Cleared);
        self.schedule(e);
    }

    /// The sequence storylines (R2, R3, R6) compressed: each pair's second event `gap` after its
    /// first at `t`. In pair order: first, second, first, second, …
    pub fn sequence_pairs(&mut self, t: SystemTime, gap: Duration) -> Vec<Event> {
        let n = self.counter;
        let (p2, p3, p6) = (
            token("psn_", self.spec.seed ^ 0xB2, n),
            token("psn_", self.spec.seed ^ 0xB3, n),
            token("psn_", self.spec.seed ^ 0xB6, n),
        );
        let office = self.pick(&OFFICES);
        vec![
            self.village_report(t, p2.clone()),
            self.interview(
                t + gap,
                office,
                p2,
                InterviewOutcome::Issued,
                &[Indicator::SponsorPresent],
                None,
            ),
            self.interview(
                t,
                OFFICES[0],
                p3.clone(),
                InterviewOutcome::Deferred,
                &[],
                None,
            ),
            self.interview(t + gap, OFFICES[1], p3, InterviewOutcome::Issued, &[], None),
            self.repatriation(t, p6.clone(), RepatriationReason::Victim),
            self.departure(t + gap, p6, DepartureOutcome::Cleared),
        ]
    }

    /// One ordinary event at `t` (no storyline).
    pub fn ordinary(&mut self, t: SystemTime) -> Event {
        self.background(t)
    }

    fn background_time(&self, i: u64) -> SystemTime {
        let nanos = self.spec.span.as_nanos() * u128::from(i) / u128::from(self.spec.events.max(1));
        self.spec.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl Iterator for Scenario {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let next_background = (self.emitted_background < self.spec.events)
            .then(|| self.background_time(self.emitted_background));
        let due = self.later.peek().map(|Reverse((t, _, _))| *t);
        match (next_background, due) {
            (Some(b), Some(d)) if d <= b => self.later.pop().map(|Reverse((_, _, w))| w.0),
            (Some(b), _) => {
                let i = self.emitted_background;
                self.emitted_background += 1;
                // Storylines start only where they complete within the span.
                if self.spec.storyline_every > 0
                    && i.is_multiple_of(self.spec.storyline_every)
                    && b + Duration::from_secs(STORYLINE_DAYS * DAY)
                        <= self.spec.start + self.spec.span
                {
                    self.storylines(b);
                }
                Some(self.background(b))
            }
            (None, _) => self.later.pop().map(|Reverse((_, _, w))| w.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::small(
            7,
            5_000,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
        )
    }

    #[test]
    fn the_same_seed_gives_the_same_events_in_time_order() {
        let a: Vec<Event> = Scenario::new(spec()).collect();
        let b: Vec<Event> = Scenario::new(spec()).collect();
        assert_eq!(a, b);
        assert!(a.len() > 5_000);
        let times: Vec<SystemTime> = a
            .iter()
            .map(|e| SystemTime::try_from(e.time.unwrap()).unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "in event-time order"
        );
        let mut ids: Vec<&str> = a.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), a.len(), "ids unique");
        let other: Vec<Event> = Scenario::new(Spec { seed: 8, ..spec() }).collect();
        assert_ne!(other, a);
    }

    #[test]
    fn every_rule_fires_on_the_storylines() {
        let set = timpora_rules::parse(timpora_rules::DEFAULT_RULES).unwrap();
        let mut engine = timpora_correlate::Engine::new(set, Duration::from_secs(5));
        let mut alerts: Vec<_> = Scenario::new(spec())
            .flat_map(|e| engine.observe(&e))
            .collect();
        alerts.extend(engine.tick(SystemTime::now() + Duration::from_secs(400 * 86_400)));
        let mut rules: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        assert_eq!(rules, ["R1", "R2", "R3", "R4", "R5", "R6"]);
        assert_eq!(engine.stats().late_events, 0);
        // Storylines are a small part of the traffic, and so are the alerts.
        assert!(alerts.len() < 5_000 / 10, "{} alerts", alerts.len());
    }

    #[test]
    fn engines_sharing_the_group_keys_raise_exactly_what_one_engine_raises() {
        let set = timpora_rules::parse(timpora_rules::DEFAULT_RULES).unwrap();
        let events: Vec<Event> = Scenario::new(spec()).collect();
        let end = SystemTime::now() + Duration::from_secs(400 * 86_400);
        let run = |partition: timpora_correlate::Partition| {
            let mut engine = timpora_correlate::Engine::new(set.clone(), Duration::from_secs(5))
                .with_partition(partition);
            let mut alerts: Vec<_> = events.iter().flat_map(|e| engine.observe(e)).collect();
            alerts.extend(engine.tick(end));
            (alerts, engine.tracked())
        };
        let (one, tracked) = run(timpora_correlate::Partition::WHOLE);
        for count in [2, 3] {
            let mut together = Vec::new();
            let mut parts_tracked = 0;
            for index in 0..count {
                let (alerts, tracked) = run(timpora_correlate::Partition { index, count });
                assert!(!alerts.is_empty(), "part {index} of {count} raised nothing");
                together.extend(alerts);
                parts_tracked += tracked;
            }
            let key = |a: &timpora_correlate::Alert| a.id.clone();
            let mut a = one.clone();
            a.sort_by_key(key);
            together.sort_by_key(key);
            assert_eq!(together, a, "{count} parts");
            // Each part holds only its own groups' state.
            assert_eq!(parts_tracked, tracked, "{count} parts");
        }
    }
}
