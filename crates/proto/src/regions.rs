//! Names of the areas the hub's pilot covers (Kemendagri area codes): the provinces and regencies
//! of the seed articles, with their districts and villages, so that people read "Konawe, Sulawesi
//! Tenggara" rather than `74.02`.

use std::sync::LazyLock;

/// (code, name) of provinces and regencies, sorted by code.
pub const AREAS: &[(&str, &str)] = &[
    ("36", "Banten"),
    ("36.03", "Tangerang"),
    ("62", "Kalimantan Tengah"),
    ("62.02", "Kotawaringin Timur"),
    ("63", "Kalimantan Selatan"),
    ("63.10", "Tanah Bumbu"),
    ("65", "Kalimantan Utara"),
    ("65.03", "Nunukan"),
    ("72", "Sulawesi Tengah"),
    ("72.01", "Banggai"),
    ("72.09", "Tojo Una-Una"),
    ("72.71", "Kota Palu"),
    ("74", "Sulawesi Tenggara"),
    ("74.02", "Konawe"),
    ("74.05", "Konawe Selatan"),
    ("74.71", "Kota Kendari"),
];

/// Districts and villages of the regencies in [`AREAS`] (`data/areas.csv`, from the
/// idn-area-data package under the Open Database License), sorted by code.
static LOCAL: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    let mut v: Vec<(&str, &str)> = include_str!("../data/areas.csv")
        .lines()
        .filter(|l| !l.starts_with('#') && *l != "code,name")
        .filter_map(|l| l.split_once(','))
        .collect();
    v.sort_unstable();
    v
});

fn local(code: &str) -> Option<&'static str> {
    LOCAL
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .map(|i| LOCAL[i].1)
}

/// Whether area code `code` is `prefix` or lies within it (`74.02.05` is within `74.02`;
/// `74.020` is not).
pub fn within(code: &str, prefix: &str) -> bool {
    code == prefix
        || code
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Village codes (`PP.RR.DD.VVVV`) of a regency or district, in code order.
pub fn villages_in(prefix: &str) -> Vec<&'static str> {
    let dotted = format!("{prefix}.");
    LOCAL
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| c.starts_with(&dotted) && c.split('.').count() == 4)
        .collect()
}

/// The regency part (`PP.RR`) of an area code of any depth; the code itself when shorter.
pub fn regency_of(code: &str) -> &str {
    match code.match_indices('.').nth(1) {
        Some((i, _)) => &code[..i],
        None => code,
    }
}

/// The name of a village or district by its full code.
pub fn local_name(code: &str) -> Option<&'static str> {
    local(code)
}

/// The whole place an area code names, most specific first: "Sampara, Kec. Sampara, Konawe,
/// Sulawesi Tenggara" for a village; `None` when nothing of it is known.
pub fn describe_full(code: &str) -> Option<String> {
    let parts: Vec<&str> = code.split('.').collect();
    let mut out = Vec::new();
    if parts.len() == 4 {
        out.extend(local(code).map(str::to_owned));
    }
    if parts.len() >= 3 {
        let district = parts[..3].join(".");
        out.extend(local(&district).map(|d| format!("Kec. {d}")));
    }
    out.extend(describe(code));
    (!out.is_empty()).then(|| out.join(", "))
}

fn name(code: &str) -> Option<&'static str> {
    AREAS
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .map(|i| AREAS[i].1)
}

/// "Regency, Province" for an area code of any depth (a village code names its regency and
/// province); `None` when neither is known.
pub fn describe(code: &str) -> Option<String> {
    let mut parts = code.split('.');
    let province = parts.next().filter(|p| !p.is_empty())?;
    let regency = parts.next().map(|r| format!("{province}.{r}"));
    match (regency.as_deref().and_then(name), name(province)) {
        (Some(r), Some(p)) => Some(format!("{r}, {p}")),
        (None, Some(p)) => Some(p.to_owned()),
        (Some(r), None) => Some(r.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_any_depth_are_named_by_regency_and_province() {
        assert!(AREAS.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        assert_eq!(
            describe("74.02.05.2001").as_deref(),
            Some("Konawe, Sulawesi Tenggara")
        );
        assert_eq!(
            describe("72.09").as_deref(),
            Some("Tojo Una-Una, Sulawesi Tengah")
        );
        assert_eq!(describe("63").as_deref(), Some("Kalimantan Selatan"));
        assert_eq!(describe("74.99.01").as_deref(), Some("Sulawesi Tenggara"));
        assert_eq!(describe("31.71"), None);
        assert_eq!(describe(""), None);
    }

    #[test]
    fn villages_and_districts_have_their_names() {
        assert_eq!(
            describe_full("74.02.05.1001").as_deref(),
            Some("Sampara, Kec. Sampara, Konawe, Sulawesi Tenggara")
        );
        assert_eq!(
            describe_full("74.02.05").as_deref(),
            Some("Kec. Sampara, Konawe, Sulawesi Tenggara")
        );
        assert_eq!(describe_full("31.71.01.1001"), None);
        assert_eq!(regency_of("74.02.05.1001"), "74.02");
        assert_eq!(regency_of("74.02"), "74.02");
        assert_eq!(regency_of("74"), "74");
        for regency in [
            "74.02", "74.71", "72.09", "72.01", "62.02", "63.10", "72.71",
        ] {
            let v = villages_in(regency);
            assert!(v.len() > 20, "{regency}: {} villages", v.len());
            assert!(v.iter().all(|c| local_name(c).is_some()));
        }
    }
}
