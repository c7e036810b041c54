//! The demo simulator's script: the agencies' activity in *request* form, as each agency's own
//! system would send it to the gateway — raw synthetic NIKs, passport numbers, names and phone
//! numbers, which the gateway pseudonymises — each act naming the development identity that
//! sends it. Mostly ordinary traffic, with the storylines of R1–R6 woven in: one set at the
//! start, then one every `storyline_every` acts.
//!
//! Seeded and clock-free: the same seed, start and rate give the same calls, byte for byte.
//! Every identifier is invented; the NIKs follow the format (area, birth date, serial) so the
//! gateway accepts them, with the areas being the pilot's real district codes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::mix;
use crate::pilot::{BP3MI, CHECKPOINTS, DISNAKER, OFFICES, POLICE, VILLAGES};
use timpora_proto::regions;
use timpora_proto::v1::*;

/// One request to one agency service.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Interview(RecordPassportInterviewRequest),
    Departure(RecordDepartureCheckRequest),
    Cpmi(UpdateCpmiStatusRequest),
    Repatriation(RecordRepatriationRequest),
    Licence(UpdateCompanyLicenceRequest),
    Village(SubmitCommunityReportRequest),
    Recruiter(ReportRecruiterRequest),
}

impl Call {
    fn meta_mut(&mut self) -> &mut EventMeta {
        let m = match self {
            Call::Interview(r) => &mut r.meta,
            Call::Departure(r) => &mut r.meta,
            Call::Cpmi(r) => &mut r.meta,
            Call::Repatriation(r) => &mut r.meta,
            Call::Licence(r) => &mut r.meta,
            Call::Village(r) => &mut r.meta,
            Call::Recruiter(r) => &mut r.meta,
        };
        m.get_or_insert_with(EventMeta::default)
    }
}

/// One act of the simulation: who sends what.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    /// The development identity (`agency/unit`) that sends it.
    pub identity: &'static str,
    pub call: Call,
    /// The rule whose storyline this act belongs to, if any.
    pub storyline: Option<&'static str>,
}

const COUNTRIES: [&str; 6] = ["MY", "SA", "TW", "HK", "AE", "KH"];
const GIVEN: [&str; 16] = [
    "Ayu", "Budi", "Citra", "Dewi", "Eka", "Fajar", "Gita", "Hadi", "Indah", "Joko", "Kartika",
    "Lestari", "Made", "Nur", "Putri", "Rahmat",
];
const FAMILY: [&str; 12] = [
    "Simulasi",
    "Contoh",
    "Uji",
    "Sampel",
    "Rekaan",
    "Fiktif",
    "Demo",
    "Latihan",
    "Percobaan",
    "Peraga",
    "Tiruan",
    "Model",
];

/// Storyline persons are numbered from here, apart from ordinary traffic.
const STORY_PERSONS: u64 = 1 << 32;
/// Ordinary travellers, and ordinary recruiters known to the police.
const PERSONS: u64 = 20_000;
const RECRUITERS: u64 = 400;

/// A synthetic resident: the same number always gives the same identifiers.
#[derive(Debug, Clone)]
struct Resident {
    nik: String,
    passport: String,
    name: String,
    village: &'static str,
}

/// The demo's script. An iterator of [`Act`]s; pace it with [`Demo::time_of`].
pub struct Demo {
    seed: u64,
    start: SystemTime,
    step: Duration,
    every: u64,
    rng: fastrand::Rng,
    /// Acts emitted so far.
    n: u64,
    /// Storylines started so far.
    stories: u64,
    /// Storyline acts waiting for their turn: (act index due, order) → act, backdating.
    later: BTreeMap<(u64, u64), (Act, Duration)>,
    order: u64,
    villages: Vec<Vec<&'static str>>,
}

impl Demo {
    /// `rate` acts per second of event time from `start`; a set of storylines at the start and
    /// every `storyline_every` acts (0: only at the start).
    pub fn new(seed: u64, start: SystemTime, rate: f64, storyline_every: u64) -> Self {
        let villages = VILLAGES
            .iter()
            .map(|v| {
                let regency = &v["desa/".len().."desa/".len() + 5];
                regions::villages_in(regency)
            })
            .collect();
        Self {
            seed,
            start,
            step: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            every: storyline_every,
            rng: fastrand::Rng::with_seed(seed),
            n: 0,
            stories: 0,
            later: BTreeMap::new(),
            order: 0,
            villages,
        }
    }

    /// The event time of act `i` (when it is due to be sent).
    pub fn time_of(&self, i: u64) -> SystemTime {
        self.start
            + self
                .step
                .saturating_mul(u32::try_from(i).unwrap_or(u32::MAX))
    }

    fn resident(&self, n: u64) -> Resident {
        let h = mix(self.seed, n);
        let r = (h % 7) as usize;
        let own = &VILLAGES[r]["desa/".len()..];
        let list = &self.villages[r];
        // A third live in the village that reports itself; the rest anywhere in the regency.
        let village = if (h >> 8).is_multiple_of(3) || list.is_empty() {
            list.iter().find(|v| **v == own).copied().unwrap_or(list[0])
        } else {
            list[((h >> 12) as usize) % list.len()]
        };
        let district: String = village[..8].replace('.', "");
        let female = (h >> 20) & 1 == 1;
        let day = 1 + (h >> 21) % 28 + if female { 40 } else { 0 };
        let month = 1 + (h >> 26) % 12;
        let year = 70 + (h >> 30) % 36;
        let serial = 1 + (h >> 36) % 9_999;
        let given = GIVEN[((h >> 40) % GIVEN.len() as u64) as usize];
        let family = FAMILY[((h >> 44) % FAMILY.len() as u64) as usize];
        Resident {
            nik: format!("{district}{day:02}{month:02}{:02}{serial:04}", year % 100),
            passport: format!("X{:07}", (h >> 13) % 10_000_000),
            name: format!("{given} {family}"),
            village,
        }
    }

    fn person_of(r: &Resident, passport: bool) -> Person {
        Person {
            nik: r.nik.clone(),
            passport_number: if passport {
                r.passport.clone()
            } else {
                String::new()
            },
            name: r.name.clone(),
            ..Default::default()
        }
    }

    fn recruiter(&self, n: u64) -> Recruiter {
        let h = mix(self.seed ^ 0x5EC, n);
        let r = self.resident(n ^ 0xC0FFEE);
        Recruiter {
            phone: format!("+62852{:07}", h % 10_000_000),
            name: format!("Calo {}", r.name),
            village_code: r.village.to_owned(),
            ..Default::default()
        }
    }

    fn country(&mut self) -> String {
        COUNTRIES[self.rng.usize(..COUNTRIES.len())].to_owned()
    }

    fn meta(region: &str) -> Option<EventMeta> {
        Some(EventMeta {
            region: region.to_owned(),
            ..Default::default()
        })
    }

    fn interview(
        &mut self,
        office: usize,
        r: &Resident,
        outcome: InterviewOutcome,
        indicators: &[Indicator],
    ) -> Act {
        let country = self.country();
        Act {
            identity: OFFICES[office].0,
            call: Call::Interview(RecordPassportInterviewRequest {
                meta: Self::meta(r.village),
                interview: Some(PassportInterview {
                    applicant: Some(Self::person_of(r, false)),
                    declared_purpose: TravelPurpose::Tourism as i32,
                    destination_country: country,
                    outcome: outcome as i32,
                    indicators: indicators.iter().map(|i| *i as i32).collect(),
                    recruiters: Vec::new(),
                }),
            }),
            storyline: None,
        }
    }

    fn departure(&mut self, checkpoint: usize, r: &Resident, outcome: DepartureOutcome) -> Act {
        let (identity, code, area) = CHECKPOINTS[checkpoint];
        let country = self.country();
        let flight = format!("GA{}", 100 + self.rng.u32(..800));
        Act {
            identity,
            call: Call::Departure(RecordDepartureCheckRequest {
                meta: Self::meta(area),
                check: Some(DepartureCheck {
                    traveller: Some(Self::person_of(r, true)),
                    checkpoint_code: code.to_owned(),
                    carrier: "Garuda Indonesia".into(),
                    flight_or_voyage: flight,
                    destination_country: country,
                    outcome: outcome as i32,
                    ..Default::default()
                }),
            }),
            storyline: None,
        }
    }

    fn bp3mi_for(r: &Resident) -> &'static str {
        if r.village.starts_with("72") {
            BP3MI[1]
        } else {
            BP3MI[0]
        }
    }

    fn cpmi(&mut self, r: &Resident, licence: String, stage: CpmiStage) -> Act {
        let country = self.country();
        Act {
            identity: Self::bp3mi_for(r),
            call: Call::Cpmi(UpdateCpmiStatusRequest {
                meta: Self::meta(&r.village[..5]),
                status: Some(CpmiStatus {
                    person: Some(Self::person_of(r, false)),
                    worker_id: format!("CPMI-{}", &r.nik[10..]),
                    p3mi_licence: licence,
                    destination_country: country,
                    job: "caregiver".into(),
                    stage: stage as i32,
                }),
            }),
            storyline: None,
        }
    }

    fn licence(&mut self, licence: String, status: LicenceStatus) -> Act {
        let i = self.rng.usize(..DISNAKER.len());
        Act {
            identity: DISNAKER[i],
            call: Call::Licence(UpdateCompanyLicenceRequest {
                meta: Self::meta(if i == 0 { "74.02" } else { "62.02" }),
                licence: Some(CompanyLicence {
                    p3mi_licence: licence,
                    status: status as i32,
                    company_name: String::new(),
                }),
            }),
            storyline: None,
        }
    }

    fn village_report(&mut self, r: &Resident) -> Act {
        let own = VILLAGES
            .iter()
            .find(|v| v.ends_with(r.village))
            .copied()
            .unwrap_or(VILLAGES[0]);
        let code = &own["desa/".len()..];
        Act {
            identity: own,
            call: Call::Village(SubmitCommunityReportRequest {
                meta: Self::meta(code),
                report: Some(CommunityReport {
                    village_code: code.to_owned(),
                    reporter_role: ReporterRole::VillageHead as i32,
                    kind: CommunityReportKind::ResidentPlanningDeparture as i32,
                    persons: vec![Self::person_of(r, false)],
                    recruiters: Vec::new(),
                    summary: "warga berencana berangkat bekerja ke luar negeri lewat sponsor"
                        .into(),
                }),
            }),
            storyline: None,
        }
    }

    fn police_report(&mut self, recruiter: Recruiter, r: &Resident) -> Act {
        Act {
            identity: if r.village.starts_with("72") {
                POLICE[1]
            } else {
                POLICE[0]
            },
            call: Call::Recruiter(ReportRecruiterRequest {
                meta: Self::meta(r.village),
                report: Some(RecruiterReport {
                    recruiter: Some(recruiter),
                    persons: vec![Self::person_of(r, false)],
                    channel: ReportChannel::Hotline as i32,
                    summary: "laporan warga tentang perekrutan".into(),
                }),
            }),
            storyline: None,
        }
    }

    fn repatriation(&mut self, r: &Resident, reason: RepatriationReason) -> Act {
        let country = self.country();
        Act {
            identity: Self::bp3mi_for(r),
            call: Call::Repatriation(RecordRepatriationRequest {
                meta: Self::meta(&r.village[..5]),
                repatriation: Some(Repatriation {
                    person: Some(Self::person_of(r, false)),
                    country,
                    reason: reason as i32,
                    home_village: r.village.to_owned(),
                }),
            }),
            storyline: None,
        }
    }

    /// A village whose residents a village identity can report: one of those that report.
    fn resident_of_reporting_village(&mut self, base: u64) -> (u64, Resident) {
        // Residents are spread over villages by hash; take the first that lives in one of the
        // reporting villages.
        let mut n = base;
        loop {
            let r = self.resident(n);
            if VILLAGES.iter().any(|v| v.ends_with(r.village)) {
                return (n, r);
            }
            n += 1 << 40;
        }
    }

    /// One ordinary act.
    fn ordinary(&mut self) -> Act {
        let roll = self.rng.u32(..100);
        let n = self.rng.u64(..PERSONS);
        let r = self.resident(n);
        match roll {
            0..35 => {
                let office = self.rng.usize(..OFFICES.len());
                self.interview(office, &r, InterviewOutcome::Issued, &[])
            }
            35..60 => {
                let c = self.rng.usize(..CHECKPOINTS.len());
                self.departure(c, &r, DepartureOutcome::Cleared)
            }
            60..78 => {
                let licence = format!("KEP-{:04}-P3MI", self.rng.u32(..60));
                let stage = match self.rng.u32(..4) {
                    0 => CpmiStage::Registered,
                    1 => CpmiStage::OrientationDone,
                    2 => CpmiStage::Ready,
                    _ => CpmiStage::Departed,
                };
                self.cpmi(&r, licence, stage)
            }
            78..82 => {
                let licence = format!("KEP-{:04}-P3MI", self.rng.u32(..60));
                self.licence(licence, LicenceStatus::Active)
            }
            82..88 => {
                let (_, r) = self.resident_of_reporting_village(n);
                self.village_report(&r)
            }
            88..92 => {
                let k = self.rng.u64(..RECRUITERS);
                let rec = self.recruiter(k);
                self.police_report(rec, &r)
            }
            _ => self.repatriation(&r, RepatriationReason::Other),
        }
    }

    fn schedule(&mut self, at: u64, mut act: Act, rule: &'static str, backdate: Duration) {
        act.storyline = Some(rule);
        self.order += 1;
        self.later.insert((at, self.order), (act, backdate));
    }

    fn story_person(&mut self, slot: u64) -> Resident {
        self.resident(STORY_PERSONS + self.stories * 64 + slot)
    }

    /// Schedule one storyline of each rule, starting at act `i`.
    fn storylines(&mut self, i: u64) {
        let day = Duration::from_secs(86_400);
        let gap = |rng: &mut fastrand::Rng| 4 + rng.u64(..20);
        // R1: an office enters its backlog: a deferral from more than 30 days ago, and the
        // applicant was never registered with BP3MI.
        let p = self.story_person(1);
        let office = self.rng.usize(..OFFICES.len());
        let a = self.interview(
            office,
            &p,
            InterviewOutcome::Deferred,
            &[Indicator::PurposeInconsistent, Indicator::NoReturnTicket],
        );
        let back = day * (31 + self.rng.u32(..10));
        self.schedule(i + 1, a, "R1", back);
        // R2: a village warns about a resident, who then applies for a passport with a
        // sponsor present.
        let (_, p) = self.resident_of_reporting_village(STORY_PERSONS + self.stories * 64 + 2);
        let a = self.village_report(&p);
        self.schedule(i + 2, a, "R2", Duration::ZERO);
        let office = self.rng.usize(..OFFICES.len());
        let a = self.interview(
            office,
            &p,
            InterviewOutcome::Issued,
            &[Indicator::SponsorPresent],
        );
        let g = gap(&mut self.rng);
        self.schedule(i + 2 + g, a, "R2", Duration::ZERO);
        // R3: deferred at one office, tries another.
        let p = self.story_person(3);
        let first = self.rng.usize(..OFFICES.len());
        let a = self.interview(
            first,
            &p,
            InterviewOutcome::Deferred,
            &[Indicator::CannotExplainTrip],
        );
        self.schedule(i + 3, a, "R3", Duration::ZERO);
        let a = self.interview(
            (first + 1) % OFFICES.len(),
            &p,
            InterviewOutcome::Issued,
            &[],
        );
        let g = gap(&mut self.rng);
        self.schedule(i + 3 + g, a, "R3", Duration::ZERO);
        // R4: one recruiter reported with three residents of different villages.
        let rec = self.recruiter(RECRUITERS + self.stories);
        let mut persons: Vec<Resident> = Vec::new();
        let mut slot = 4;
        while persons.len() < 3 {
            let p = self.story_person(slot);
            slot += 1;
            // At least two home areas among the three (R4 counts the districts of their NIKs).
            if persons.len() == 2 && persons.iter().all(|q| q.village[..8] == p.village[..8]) {
                continue;
            }
            persons.push(p);
        }
        for (k, p) in (0u64..).zip(&persons) {
            let a = self.police_report(rec.clone(), p);
            let g = gap(&mut self.rng);
            self.schedule(i + 4 + k * g, a, "R4", Duration::ZERO);
        }
        // R5: a company's licence is suspended; BP3MI then registers a worker with it.
        let licence = format!("KEP-{:04}-P3MI", 9_000 + self.stories % 1_000);
        let a = self.licence(licence.clone(), LicenceStatus::Suspended);
        self.schedule(i + 5, a, "R5", Duration::ZERO);
        let p = self.story_person(40);
        let a = self.cpmi(&p, licence, CpmiStage::Registered);
        let g = gap(&mut self.rng);
        self.schedule(i + 5 + g, a, "R5", Duration::ZERO);
        // R6: a trafficking victim comes home, and is soon at a checkpoint again.
        let p = self.story_person(41);
        let a = self.repatriation(&p, RepatriationReason::Victim);
        self.schedule(i + 6, a, "R6", Duration::ZERO);
        let c = self.rng.usize(..CHECKPOINTS.len());
        let a = self.departure(c, &p, DepartureOutcome::Cleared);
        let g = gap(&mut self.rng);
        self.schedule(i + 6 + g, a, "R6", Duration::ZERO);
        self.stories += 1;
    }
}

impl Iterator for Demo {
    type Item = Act;

    fn next(&mut self) -> Option<Act> {
        let i = self.n;
        self.n += 1;
        if i == 0 || (self.every > 0 && i.is_multiple_of(self.every)) {
            self.storylines(i);
        }
        let t = self.time_of(i);
        let due = self
            .later
            .first_key_value()
            .is_some_and(|((at, _), _)| *at <= i);
        let (mut act, backdate) = if due {
            self.later.pop_first().map(|(_, v)| v)?
        } else {
            (self.ordinary(), Duration::ZERO)
        };
        let start = self
            .start
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let meta = act.call.meta_mut();
        meta.id = format!("demo-{}-{start}-{i}", self.seed);
        meta.time = Some(t.checked_sub(backdate).unwrap_or(t).into());
        Some(act)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    #[test]
    fn the_same_seed_gives_the_same_calls() {
        let a: Vec<Act> = Demo::new(7, start(), 5.0, 150).take(1_000).collect();
        let b: Vec<Act> = Demo::new(7, start(), 5.0, 150).take(1_000).collect();
        assert_eq!(a, b);
        let c: Vec<Act> = Demo::new(8, start(), 5.0, 150).take(1_000).collect();
        assert_ne!(a, c);
        let mut rules: Vec<&str> = a.iter().filter_map(|x| x.storyline).collect();
        rules.sort_unstable();
        rules.dedup();
        assert_eq!(rules, ["R1", "R2", "R3", "R4", "R5", "R6"]);
        // Mostly ordinary traffic.
        let stories = a.iter().filter(|x| x.storyline.is_some()).count();
        assert!(stories * 5 < a.len(), "{stories} storyline acts");
    }

    #[test]
    fn residents_have_well_formed_synthetic_identifiers_in_real_villages() {
        let d = Demo::new(1, start(), 5.0, 150);
        for n in 0..500 {
            let r = d.resident(n);
            assert_eq!(r.nik.len(), 16, "{}", r.nik);
            assert!(r.nik.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(&r.nik[..6], r.village[..8].replace('.', ""));
            assert!(regions::local_name(r.village).is_some(), "{}", r.village);
            assert!(r.passport.starts_with('X') && r.passport.len() == 8);
        }
        assert_eq!(d.resident(42).nik, d.resident(42).nik);
    }
}
