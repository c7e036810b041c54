//! Names of the areas the hub's pilot covers (Kemendagri area codes): the provinces and regencies
//! of the seed articles, so that people read "Konawe, Sulawesi Tenggara" rather than `74.02`.

/// (code, name) of provinces and regencies, sorted by code.
pub const AREAS: &[(&str, &str)] = &[
    ("62", "Kalimantan Tengah"),
    ("62.02", "Kotawaringin Timur"),
    ("63", "Kalimantan Selatan"),
    ("63.10", "Tanah Bumbu"),
    ("72", "Sulawesi Tengah"),
    ("72.01", "Banggai"),
    ("72.09", "Tojo Una-Una"),
    ("72.71", "Kota Palu"),
    ("74", "Sulawesi Tenggara"),
    ("74.02", "Konawe"),
    ("74.71", "Kota Kendari"),
];

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
}
