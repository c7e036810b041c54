//! The pilot's units: every agency unit of the TIMPORA pilot in Southeast and Central Sulawesi,
//! Central and South Kalimantan and the checkpoints they send people through. The development
//! set-up issues a certificate and a token for each, the demo simulator acts as them, and the
//! console's development configuration offers the assignable ones.

/// Immigration offices interviewing passport applicants, with the regency each serves.
pub const OFFICES: [(&str, &str); 4] = [
    ("imigrasi/kanim-kendari", "74.71"),
    ("imigrasi/kanim-palu", "72.71"),
    ("imigrasi/kanim-sampit", "62.02"),
    ("imigrasi/kanim-batulicin", "63.10"),
];
/// Departure checkpoints: identity, checkpoint code, area code of the port.
pub const CHECKPOINTS: [(&str, &str, &str); 3] = [
    ("imigrasi/tpi-cgk", "TPI-CGK", "36.03"),
    ("imigrasi/tpi-kdi", "TPI-KDI", "74.05"),
    ("imigrasi/tpi-nnx", "TPI-NNX", "65.03"),
];
/// Villages that report through the hub themselves (one per pilot regency, real area codes).
pub const VILLAGES: [&str; 7] = [
    "desa/74.02.01.2007",
    "desa/74.71.01.1007",
    "desa/72.09.01.2007",
    "desa/72.01.01.1008",
    "desa/62.02.01.2003",
    "desa/63.10.01.2005",
    "desa/72.71.01.1007",
];
/// Manpower offices.
pub const DISNAKER: [&str; 2] = ["disnaker/disnaker-konawe", "disnaker/disnaker-kotim"];
/// Regional police of Southeast and Central Sulawesi.
pub const POLICE: [&str; 2] = ["polri/polda-sultra", "polri/polda-sulteng"];
/// BP3MI offices of Southeast and Central Sulawesi.
pub const BP3MI: [&str; 2] = ["bp3mi/bp3mi-sultra", "bp3mi/bp3mi-sulteng"];

/// The TIMPORA secretariat's duty office: what command-line readers act as by default.
pub const SECRETARIAT: &str = "ops/timpora-kendari";
/// The inspectorate: the auditors' identity.
pub const AUDITOR: &str = "audit/inspektorat";

/// Every unit of the pilot, as `agency/unit`.
pub const IDENTITIES: &[&str] = &[
    "imigrasi/kanim-kendari",
    "imigrasi/tpi-cgk",
    "imigrasi/kanim-palu",
    "polri/polda-sultra",
    "bp3mi/bp3mi-sultra",
    "disnaker/disnaker-konawe",
    "desa/74.02.05.2001",
    "imigrasi/tpi-kdi",
    "imigrasi/tpi-nnx",
    "imigrasi/kanim-sampit",
    "imigrasi/kanim-batulicin",
    "polri/polda-sulteng",
    "bp3mi/bp3mi-sulteng",
    "disnaker/disnaker-kotim",
    "desa/74.02.01.2007",
    "desa/74.71.01.1007",
    "desa/72.09.01.2007",
    "desa/72.01.01.1008",
    "desa/62.02.01.2003",
    "desa/63.10.01.2005",
    "desa/72.71.01.1007",
    "dinsos/dinsos-sultra",
    "kejaksaan/kejati-sultra",
    SECRETARIAT,
    AUDITOR,
    "bps/bps-sultra",
];

/// Units an alert can be handed to for follow-up.
pub const ASSIGNABLE: &[&str] = &[
    "imigrasi/kanim-kendari",
    "imigrasi/kanim-palu",
    "imigrasi/tpi-cgk",
    "polri/polda-sultra",
    "polri/polda-sulteng",
    "bp3mi/bp3mi-sultra",
    "bp3mi/bp3mi-sulteng",
    "disnaker/disnaker-konawe",
    "dinsos/dinsos-sultra",
];

/// A unit of `agency` (the first listed), e.g. to act as when publishing that agency's events.
pub fn unit_of(agency: &str) -> Option<&'static str> {
    IDENTITIES
        .iter()
        .find(|id| id.split('/').next() == Some(agency))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_named_for_a_role_is_a_pilot_unit_once() {
        let named = OFFICES
            .iter()
            .map(|o| o.0)
            .chain(CHECKPOINTS.iter().map(|c| c.0))
            .chain(VILLAGES)
            .chain(DISNAKER)
            .chain(POLICE)
            .chain(BP3MI)
            .chain(ASSIGNABLE.iter().copied())
            .chain([SECRETARIAT, AUDITOR]);
        for id in named {
            assert!(IDENTITIES.contains(&id), "{id} is not a pilot unit");
        }
        let mut sorted = IDENTITIES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), IDENTITIES.len(), "a unit is listed twice");
        for id in IDENTITIES {
            let (agency, unit) = id.split_once('/').unwrap();
            assert!(!agency.is_empty() && !unit.is_empty() && !unit.contains('/'));
        }
        assert_eq!(unit_of("polri"), Some("polri/polda-sultra"));
        assert_eq!(unit_of("nobody"), None);
    }
}
