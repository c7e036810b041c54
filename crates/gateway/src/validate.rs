//! Field validation of everything an agency sends: identifiers, codes, enums, times and text.
//! Every offending field is collected, so one `INVALID_ARGUMENT` names all of them.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Limits applied to incoming events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted gRPC request, in bytes.
    pub max_request_bytes: usize,
    /// How far in the future an event time may lie, in seconds (clock skew).
    pub max_future_secs: u64,
    /// How old an event may be, in days.
    pub max_age_days: u64,
    /// Longest free-text summary, in characters.
    pub max_summary_chars: usize,
    /// Most persons, recruiters or companions in one event.
    pub max_entities: usize,
    /// Events one identity may publish per second, on average (0: no limit).
    pub events_per_second: u32,
    /// Events one identity may publish at once above that average.
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024,
            max_future_secs: 300,
            max_age_days: 3650,
            max_summary_chars: 280,
            max_entities: 50,
            events_per_second: 1_000,
            burst: 5_000,
        }
    }
}

/// The offending fields of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    /// Record that `field` is wrong, and why.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push((field.into(), description.into()));
    }

    /// Add every violation of `more`, after these.
    pub fn extend(&mut self, more: Violations) {
        self.0.extend(more.0);
    }

    /// Whether nothing was wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `(field, description)` pairs, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }

    /// A one-line summary naming every field.
    pub fn summary(&self) -> String {
        let fields: Vec<&str> = self.0.iter().map(|(f, _)| f.as_str()).collect();
        format!("invalid fields: {}", fields.join(", "))
    }
}

/// Province codes (the first two digits of NIKs and area codes), incl. the new Papua provinces.
const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65,
    71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96, 97,
];

/// ISO 3166-1 alpha-2 codes, sorted (binary search).
const COUNTRIES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn num(s: &str) -> u32 {
    s.parse().unwrap_or(0)
}

/// Why a NIK is implausible, if it is.
pub fn check_nik(nik: &str) -> Option<&'static str> {
    if nik.len() != 16 || !digits(nik) {
        return Some("must be exactly 16 digits");
    }
    let province = num(&nik[0..2]) as u8;
    if !PROVINCES.contains(&province) {
        return Some("area code: unknown province in the first two digits");
    }
    if num(&nik[2..4]) == 0 || num(&nik[4..6]) == 0 {
        return Some("area code: regency and district digits must not be 00");
    }
    let day = num(&nik[6..8]);
    if !(1..=31).contains(&day) && !(41..=71).contains(&day) {
        return Some("birth date: day must be 01-31 (or 41-71 for women)");
    }
    if !(1..=12).contains(&num(&nik[8..10])) {
        return Some("birth date: month must be 01-12");
    }
    if num(&nik[12..16]) == 0 {
        return Some("serial number must not be 0000");
    }
    None
}

/// Why a passport number is malformed: one or two letters and 6–7 digits (e.g. `X1234567`).
pub fn check_passport(p: &str) -> Option<&'static str> {
    let letters = p.bytes().take_while(u8::is_ascii_uppercase).count();
    let rest = &p[letters..];
    if !(1..=2).contains(&letters) || !(6..=7).contains(&rest.len()) || !digits(rest) {
        return Some("must be 1-2 capital letters followed by 6-7 digits, e.g. X1234567");
    }
    None
}

/// Why a phone number is not E.164.
pub fn check_phone(p: &str) -> Option<&'static str> {
    let Some(rest) = p.strip_prefix('+') else {
        return Some("must be E.164: '+' and country code, e.g. +6281234567890");
    };
    if !(8..=15).contains(&rest.len()) || !digits(rest) || rest.starts_with('0') {
        return Some("must be E.164: '+' followed by 8-15 digits, not starting with 0");
    }
    None
}

/// Why a country code is not ISO 3166-1 alpha-2.
pub fn check_country(c: &str) -> Option<&'static str> {
    if COUNTRIES.binary_search(&c).is_err() {
        return Some("must be an ISO 3166-1 alpha-2 code, e.g. MY, KH, SA");
    }
    None
}

/// Why an administrative area code is malformed: `PP`, `PP.RR`, `PP.RR.DD` or `PP.RR.DD.VVVV`.
pub fn check_area(code: &str) -> Option<&'static str> {
    let parts: Vec<&str> = code.split('.').collect();
    let widths = [2, 2, 2, 4];
    if parts.is_empty() || parts.len() > 4 {
        return Some("must be an area code: PP, PP.RR, PP.RR.DD or PP.RR.DD.VVVV");
    }
    for (part, width) in parts.iter().zip(widths) {
        if part.len() != width || !digits(part) || num(part) == 0 {
            return Some("must be an area code: PP, PP.RR, PP.RR.DD or PP.RR.DD.VVVV");
        }
    }
    if !PROVINCES.contains(&(num(parts[0]) as u8)) {
        return Some("unknown province code");
    }
    None
}

/// Why a village code is not a full four-level area code.
pub fn check_village(code: &str) -> Option<&'static str> {
    check_area(code).or_else(|| {
        (code.split('.').count() != 4)
            .then_some("must be a village code: PP.RR.DD.VVVV, e.g. 74.02.05.2001")
    })
}

/// Why a checkpoint code is malformed: `TPI-` and 3–5 capital letters or digits.
pub fn check_checkpoint(code: &str) -> Option<&'static str> {
    match code.strip_prefix("TPI-") {
        Some(rest)
            if (3..=5).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            None
        }
        _ => Some("must be a checkpoint code: TPI- and 3-5 capital letters, e.g. TPI-CGK"),
    }
}

/// Why an identifier (event id, case number, worker id, licence number) is malformed.
pub fn check_ident(s: &str, max: usize) -> Option<String> {
    if s.is_empty() {
        return Some("required".into());
    }
    if s.chars().count() > max {
        return Some(format!("at most {max} characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Some("only letters, digits and - _ . : are allowed".into());
    }
    None
}

/// A placement company's licence number in its one stored form, or why it is not one.
///
/// Licences are written as offices write them — `KEP.45/PPTKIS/VI/2023`, `kep 45 / pptkis / vi /
/// 2023`, `KEP-45-PPTKIS-VI-2023` — and stored one way: letters and digits in capitals, each
/// run of separators (space, `.`, `/`, `-`, `_`, `:`) as one `-`, none at either end
/// (`KEP-45-PPTKIS-VI-2023`), so the same licence from Disnaker and from BP3MI is one company to
/// the rules. At most 64 characters in that form, and at least one digit.
pub fn normalise_licence(s: &str) -> Result<String, &'static str> {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.nfkc() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c.to_ascii_uppercase());
        } else if c.is_whitespace() || "./-_:".contains(c) {
            gap = true;
        } else {
            return Err(
                "a licence number: letters, digits and the separators . / - _ : or spaces, \
                        e.g. KEP.45/PPTKIS/VI/2023",
            );
        }
    }
    if out.is_empty() {
        return Err("required");
    }
    if out.len() > 64 {
        return Err("at most 64 characters (letters, digits and one separator between groups)");
    }
    if !out.bytes().any(|b| b.is_ascii_digit()) {
        return Err("a licence number has digits, e.g. KEP.45/PPTKIS/VI/2023");
    }
    Ok(out)
}

/// Why a hub token of the given prefix (`psn_`, `rec_`) is malformed.
pub fn check_token(t: &str, prefix: &str) -> Option<String> {
    match t.strip_prefix(prefix) {
        Some(rest) if rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()) => None,
        _ => Some(format!(
            "must be a hub token: {prefix} followed by 32 hex digits"
        )),
    }
}

/// Characters that change how text is shown without being seen: zero-width and joiner
/// characters, bidirectional embeddings, overrides and isolates, the byte-order mark, the soft
/// hyphen.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Why free text is unacceptable: too long, carrying control, format or bidirectional
/// characters, or carrying something that looks like an identifier — a run of 8 or more digits
/// in any script across any separators (`7402.0501.0190.0001`, `0852-9988-7766`, fullwidth or
/// Arabic-Indic digits), or a passport number (`C1234567`) — which must travel in its own field
/// to be pseudonymised. The text is judged after Unicode NFKC normalisation, so look-alike
/// characters are judged as what they stand for.
pub fn check_text(s: &str, max: usize) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    if s.chars().count() > max {
        return Some(format!("at most {max} characters"));
    }
    if s.chars().any(|c| c.is_control() || invisible(c)) {
        return Some("must not contain control, format or bidirectional characters".into());
    }
    let text: String = s.nfkc().collect();
    const IDENTIFIER: &str = "must not contain identifiers (8 or more digits, a passport or phone \
         number); put people in their own fields, where they are pseudonymised";
    // Digits in a run, whatever separates them (spaces, dots, slashes, dashes…); a letter ends
    // the run, and so do three separators in a row.
    let (mut run, mut gap) = (0, 0);
    for c in text.chars() {
        if c.is_numeric() {
            run += 1;
            gap = 0;
            if run >= 8 {
                return Some(IDENTIFIER.into());
            }
        } else if c.is_alphabetic() {
            run = 0;
        } else {
            gap += 1;
            if gap >= 3 {
                run = 0;
            }
        }
    }
    // A passport number as a word of its own: 1-2 letters then 6-7 digits.
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let letters = word.chars().take_while(|c| c.is_alphabetic()).count();
        let rest: Vec<char> = word.chars().skip(letters).collect();
        if (1..=2).contains(&letters)
            && (6..=7).contains(&rest.len())
            && rest.iter().all(|c| c.is_numeric())
        {
            return Some(IDENTIFIER.into());
        }
    }
    None
}

/// Why an event time is out of range, given `now`.
pub fn check_time(
    t: Option<&prost_types::Timestamp>,
    now: SystemTime,
    l: &Limits,
) -> Option<String> {
    let Some(t) = t else {
        return Some("required".into());
    };
    let Ok(at) = SystemTime::try_from(*t) else {
        return Some("not a valid timestamp".into());
    };
    if at > now + Duration::from_secs(l.max_future_secs) {
        return Some(format!(
            "more than {} seconds in the future",
            l.max_future_secs
        ));
    }
    if at + Duration::from_secs(l.max_age_days * 86_400) < now {
        return Some(format!("more than {} days old", l.max_age_days));
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn licence_numbers_are_accepted_as_written_and_stored_one_way() {
        for written in [
            "KEP.45/PPTKIS/VI/2023",
            "kep 45 / pptkis / vi / 2023",
            " KEP-45-PPTKIS-VI-2023 ",
            "KEP.45//PPTKIS/VI/2023",
            "ＫＥＰ.45/PPTKIS/VI/2023",
        ] {
            assert_eq!(
                normalise_licence(written).as_deref(),
                Ok("KEP-45-PPTKIS-VI-2023"),
                "{written}"
            );
        }
        assert_eq!(
            normalise_licence("KEP-123-2024").as_deref(),
            Ok("KEP-123-2024")
        );
        assert!(normalise_licence("KEP#45").is_err());
        assert!(normalise_licence("PPTKIS").is_err(), "no digits");
        assert!(normalise_licence(" / ").is_err());
        assert!(normalise_licence(&"1".repeat(65)).is_err());
    }

    use super::*;

    #[test]
    fn nik_rules() {
        assert_eq!(check_nik("7402054107900001"), None);
        assert!(check_nik("740205410790000").is_some(), "15 digits");
        assert!(check_nik("740205410790000a").is_some(), "letter");
        assert!(check_nik("9902054107900001").is_some(), "province 99");
        assert!(check_nik("7400054107900001").is_some(), "regency 00");
        assert!(check_nik("7402053207900001").is_some(), "day 32");
        assert!(check_nik("7402054113900001").is_some(), "month 13");
        assert!(check_nik("7402054107900000").is_some(), "serial 0000");
    }

    #[test]
    fn passport_phone_country() {
        assert_eq!(check_passport("X1234567"), None);
        assert_eq!(check_passport("AB123456"), None);
        assert!(check_passport("x1234567").is_some());
        assert!(check_passport("1234567").is_some());
        assert!(check_passport("ABC1234567").is_some());
        assert_eq!(check_phone("+6281234567890"), None);
        assert!(check_phone("081234567890").is_some());
        assert!(check_phone("+62 812").is_some());
        assert_eq!(check_country("MY"), None);
        assert!(check_country("XX").is_some());
        assert!(check_country("my").is_some());
    }

    #[test]
    fn area_and_checkpoint_codes() {
        assert_eq!(check_area("74"), None);
        assert_eq!(check_area("74.02"), None);
        assert_eq!(check_area("74.02.05.2001"), None);
        assert!(check_area("74.2").is_some());
        assert!(check_area("99.02").is_some());
        assert!(check_area("74.02.05.2001.1").is_some());
        assert!(check_village("74.02").is_some());
        assert_eq!(check_checkpoint("TPI-CGK"), None);
        assert!(check_checkpoint("CGK").is_some());
    }

    #[test]
    fn text_refuses_identifiers_and_length() {
        assert_eq!(check_text("calo datang ke desa, 3 warga", 280), None);
        assert!(check_text("NIK 7402054107900001", 280).is_some());
        assert!(check_text("hp 0812-3456-7890", 280).is_some());
        assert!(check_text(&"a".repeat(281), 280).is_some());
    }

    #[test]
    fn identifiers_cannot_slip_through_in_any_spelling() {
        for hidden in [
            "nik 7402.0501.0190.0001",
            "nik 7402/0501/0190/0001",
            "nik 7402_0501_0190_0001",
            "nik 7402\u{00A0}0501\u{00A0}0190\u{00A0}0001",
            "nik 7402\u{2013}0501\u{2013}0190\u{2013}0001",
            "nik \u{FF17}\u{FF14}\u{FF10}\u{FF12}\u{FF10}\u{FF15}\u{FF10}\u{FF11}",
            "nik \u{0667}\u{0664}\u{0660}\u{0662}\u{0660}\u{0665}\u{0660}\u{0661}\u{0660}\u{0661}",
            "hp 0852.9988.7766",
            "hp +62 852 9988 7766",
            "paspor C1234567",
            "paspor ab123456",
        ] {
            assert!(check_text(hidden, 280).is_some(), "{hidden:?} passed");
        }
        for invisible in [
            "nik 7402\u{200B}0501",
            "teks \u{202E}terbalik",
            "zero\u{2060}width",
            "bom\u{FEFF}",
        ] {
            let why = check_text(invisible, 280).unwrap();
            assert!(
                why.contains("format or bidirectional"),
                "{invisible:?}: {why}"
            );
        }
        // What duty officers write stays writable.
        for fine in [
            "dua orang dari Desa Lalonggaluku berangkat ke Kendari, 3 hari lalu",
            "bus nomor 7 pukul 10.30, rombongan 12 orang",
            "RT 03/RW 04, Kecamatan Abuki",
            "Jl. Ahmad Yani No. 12, Kendari",
        ] {
            assert_eq!(check_text(fine, 280), None, "{fine:?}");
        }
    }

    #[test]
    fn times_within_skew_and_age() {
        let now = SystemTime::now();
        let l = Limits::default();
        let ts = |t: SystemTime| prost_types::Timestamp::from(t);
        assert_eq!(check_time(Some(&ts(now)), now, &l), None);
        assert!(check_time(Some(&ts(now + Duration::from_secs(301))), now, &l).is_some());
        assert!(check_time(Some(&ts(now - Duration::from_secs(3651 * 86_400))), now, &l).is_some());
        assert!(check_time(None, now, &l).is_some());
    }
}
