//! The gateway's field errors in Indonesian, for the people who read them: a village head on the
//! reporting page reads what is wrong with a field in their own language. Each English
//! description the checks write has its Indonesian wording here, sent beside it as the field
//! violation's `localized_message` (locale `id-ID`); a description without one goes in English
//! only.

/// The locale of [`indonesian`]'s wording.
pub(crate) const LOCALE: &str = "id-ID";

/// The Indonesian wording of a field error's English `description`, when it has one.
pub(crate) fn indonesian(description: &str) -> Option<String> {
    let d = description;
    // Descriptions carrying a number or a value.
    if let Some(n) = d
        .strip_prefix("at most ")
        .and_then(|r| r.strip_suffix(" characters"))
    {
        return Some(format!("paling banyak {n} karakter"));
    }
    if let Some(n) = d
        .strip_prefix("at most ")
        .and_then(|r| r.strip_suffix(" entries"))
    {
        return Some(format!("paling banyak {n} isian"));
    }
    if let Some(n) = d
        .strip_prefix("more than ")
        .and_then(|r| r.strip_suffix(" seconds in the future"))
    {
        return Some(format!(
            "waktunya di masa depan (lebih dari {n} detik dari sekarang); periksa tanggal dan jam"
        ));
    }
    if let Some(n) = d
        .strip_prefix("more than ")
        .and_then(|r| r.strip_suffix(" days old"))
    {
        return Some(format!(
            "lebih dari {n} hari yang lalu: terlalu lama untuk dilaporkan"
        ));
    }
    if let Some((range, default)) = d
        .strip_prefix("1 to ")
        .and_then(|r| r.split_once(", or 0 for "))
    {
        return Some(format!("1 sampai {range}, atau 0 untuk {default}"));
    }
    if d.starts_with("unknown value ") || d.starts_with("not a valid value: ") {
        return Some("pilihan ini tidak dikenal".into());
    }
    let text = match d {
        "required" => "wajib diisi",
        "required: must not be *_UNSPECIFIED" => "wajib dipilih",
        "must be exactly 16 digits" => "NIK harus tepat 16 angka, seperti di KTP",
        "area code: unknown province in the first two digits" => {
            "dua angka pertama NIK bukan kode provinsi yang dikenal"
        }
        "area code: regency and district digits must not be 00" => {
            "angka kabupaten dan kecamatan dalam NIK tidak boleh 00"
        }
        "birth date: day must be 01-31 (or 41-71 for women)" => {
            "tanggal lahir dalam NIK tidak benar (01-31, atau 41-71 untuk perempuan)"
        }
        "birth date: month must be 01-12" => "bulan lahir dalam NIK harus 01-12",
        "serial number must not be 0000" => "empat angka terakhir NIK tidak boleh 0000",
        "must be 1-2 capital letters followed by 6-7 digits, e.g. X1234567" => {
            "nomor paspor: 1-2 huruf besar lalu 6-7 angka, misalnya X1234567"
        }
        "must be E.164: '+' and country code, e.g. +6281234567890" => {
            "nomor HP diawali + dan kode negara, misalnya +6281234567890"
        }
        "must be E.164: '+' followed by 8-15 digits, not starting with 0" => {
            "nomor HP: tanda + lalu 8-15 angka, tidak diawali 0"
        }
        "must be an ISO 3166-1 alpha-2 code, e.g. MY, KH, SA" => {
            "kode negara dua huruf, misalnya MY, KH, SA"
        }
        "must be an area code: PP, PP.RR, PP.RR.DD or PP.RR.DD.VVVV" => {
            "kode wilayah: PP, PP.RR, PP.RR.DD atau PP.RR.DD.VVVV"
        }
        "unknown province code" => "kode provinsi tidak dikenal",
        "must be a village code: PP.RR.DD.VVVV, e.g. 74.02.05.2001" => {
            "kode desa: PP.RR.DD.VVVV, misalnya 74.02.05.2001"
        }
        "only letters, digits and - _ . : are allowed" => {
            "hanya huruf, angka dan tanda - _ . : yang boleh"
        }
        "must not contain control, format or bidirectional characters" => {
            "ada karakter tersembunyi atau tidak biasa; ketik ulang teksnya"
        }
        "must not contain identifiers (8 or more digits, a passport or phone number); put people \
         in their own fields, where they are pseudonymised" => {
            "jangan menulis NIK, nomor HP atau nomor paspor di sini; isikan di kolom orang atau \
             perekrut, yang disamarkan"
        }
        "not a valid timestamp" => "waktu tidak valid",
        "a person needs a nik, a passport_number or a token" => {
            "isi NIK warga (nama saja tidak cukup untuk mencocokkan)"
        }
        "a recruiter needs a phone, a name with village_code, or a token" => {
            "isi nomor HP atau nama perekrut"
        }
        "required when the recruiter is known by name" => {
            "kode desa wajib bila perekrut hanya dikenal dengan nama"
        }
        "a resident needs a nik or a name" => "isi NIK atau nama warga",
        "set by the hub"
        | "set by the hub when nik, passport_number or a resident's name is given"
        | "set by the hub when phone or name is given" => "diisi oleh hub, jangan diisi",
        _ => return None,
    };
    Some(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate as v;

    #[test]
    fn every_check_a_village_report_can_fail_has_indonesian_wording() {
        let limits = v::Limits::default();
        let now = std::time::SystemTime::now();
        let ahead = now + std::time::Duration::from_secs(86_400);
        let old = now - std::time::Duration::from_secs(400 * 86_400);
        let mut descriptions: Vec<String> = [
            "12",
            "9902050101900001",
            "7400050101900001",
            "7402053201900001",
            "7402050113900001",
            "7402050101900000",
        ]
        .iter()
        .filter_map(|n| v::check_nik(n).map(str::to_owned))
        .collect();
        descriptions.extend(
            ["0812", "+0812345678"]
                .iter()
                .filter_map(|p| v::check_phone(p).map(str::to_owned)),
        );
        descriptions.extend(
            ["7", "99.01", "74.02.05.2"]
                .iter()
                .filter_map(|a| v::check_area(a).map(str::to_owned)),
        );
        descriptions.extend(
            [&"x".repeat(300), "a\u{202E}b", "nik 7402050101900001"]
                .iter()
                .filter_map(|t| v::check_text(t, 280)),
        );
        descriptions.extend(
            [None, Some(ahead.into()), Some(old.into())]
                .iter()
                .filter_map(|t: &Option<prost_types::Timestamp>| {
                    v::check_time(t.as_ref(), now, &limits)
                }),
        );
        descriptions.extend(["", "a b"].iter().filter_map(|i| v::check_ident(i, 128)));
        assert!(descriptions.len() >= 17, "{descriptions:?}");
        for d in &descriptions {
            let id = indonesian(d);
            assert!(id.is_some(), "no Indonesian wording for {d:?}");
            assert_ne!(id.as_deref(), Some(d.as_str()));
        }
        assert_eq!(
            indonesian("at most 128 characters").as_deref(),
            Some("paling banyak 128 karakter")
        );
        assert_eq!(indonesian("something new"), None);
    }
}
