//! Pseudonymisation at the edge: NIK, passport numbers, phones and names become keyed HMAC-SHA256
//! tokens (`psn_…`, `doc_…`, `rec_…`, `nam_…`). The key is versioned; the same input and key
//! version give the same token at every agency, and the hub alone holds the key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::Error;

type HmacSha256 = Hmac<Sha256>;

/// Where a key version's secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The version stamped on every event made with this key.
    pub version: u32,
    /// A file holding the key as hex (at least 32 bytes).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The key as hex, for development; prefer `key_file`.
    #[serde(default)]
    pub key_hex: Option<String>,
}

/// The pseudonymisation keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PseudonymConfig {
    /// Version used for new events; defaults to the highest configured.
    pub active_version: Option<u32>,
    /// Every known key version.
    pub keys: Vec<KeyConfig>,
}

/// Makes tokens with the active key.
#[derive(Clone)]
pub struct Pseudonymiser {
    version: u32,
    keys: BTreeMap<u32, Vec<u8>>,
    /// The active key's HMAC state, keyed once and cloned for every token.
    keyed: HmacSha256,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymiser")
            .field("version", &self.version)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Decode a hex key of at least 32 bytes.
pub fn parse_hex_key(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    if !t.len().is_multiple_of(2) || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("key must be hex".into());
    }
    let bytes: Vec<u8> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap_or(0))
        .collect();
    if bytes.len() < 32 {
        return Err(format!(
            "key must be at least 32 bytes, got {}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// A fresh random 32-byte key as hex.
pub fn generate_hex_key() -> Result<String, Error> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| Error::Config(format!("no randomness: {e}")))?;
    Ok(hex(&key))
}

/// Lowercase hex of `bytes`, appended to `out`.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    push_hex(&mut s, bytes);
    s
}

impl Pseudonymiser {
    /// Load the keys named in `config`.
    pub fn from_config(config: &PseudonymConfig) -> Result<Self, Error> {
        let mut keys = BTreeMap::new();
        for k in &config.keys {
            let text = match (&k.key_file, &k.key_hex) {
                (Some(path), None) => std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!("pseudonym key file {}: {e}", path.display()))
                })?,
                (None, Some(hex)) => hex.clone(),
                _ => {
                    return Err(Error::Config(format!(
                        "pseudonym key version {}: give exactly one of key_file or key_hex",
                        k.version
                    )));
                }
            };
            let key = parse_hex_key(&text)
                .map_err(|e| Error::Config(format!("pseudonym key version {}: {e}", k.version)))?;
            if keys.insert(k.version, key).is_some() {
                return Err(Error::Config(format!(
                    "pseudonym key version {} is configured twice",
                    k.version
                )));
            }
        }
        let version = match config.active_version {
            Some(v) => v,
            None => *keys
                .keys()
                .next_back()
                .ok_or_else(|| Error::Config("no pseudonym key configured".into()))?,
        };
        if !keys.contains_key(&version) {
            return Err(Error::Config(format!(
                "active pseudonym key version {version} is not configured"
            )));
        }
        let key = keys.get(&version).map(Vec::as_slice).unwrap_or_default();
        let keyed = HmacSha256::new_from_slice(key)
            .map_err(|e| Error::Config(format!("pseudonym key version {version}: {e}")))?;
        Ok(Self {
            version,
            keys,
            keyed,
        })
    }

    /// The active key version.
    pub fn version(&self) -> u32 {
        self.version
    }

    fn token(&self, prefix: &str, domain: &str, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut token = String::with_capacity(prefix.len() + 32);
        token.push_str(prefix);
        push_hex(&mut token, &out[..16]);
        token
    }

    /// `psn_…` for a NIK.
    pub fn person_by_nik(&self, nik: &str) -> String {
        self.token("psn_", "nik", nik)
    }

    /// `psn_…` for a person known only by passport number.
    pub fn person_by_passport(&self, passport: &str) -> String {
        self.token("psn_", "passport", passport)
    }

    /// `psn_…` for a resident a village knows by name only: the name in that village (case and
    /// spacing ignored), so the village's reports about them join, but not an agency's about
    /// the same person by NIK.
    pub fn resident_by_name(&self, name: &str, village: &str) -> String {
        self.token(
            "psn_",
            "resident-name",
            &format!("{}|{village}", normalise_name(name)),
        )
    }

    /// `doc_…` for a passport number.
    pub fn document(&self, passport: &str) -> String {
        self.token("doc_", "document", passport)
    }

    /// `nam_…` for a name (case and spacing ignored).
    pub fn name(&self, name: &str) -> String {
        self.token("nam_", "name", &normalise_name(name))
    }

    /// `rec_…` for a recruiter's phone number.
    pub fn recruiter_by_phone(&self, phone: &str) -> String {
        self.token("rec_", "phone", phone)
    }

    /// `rec_…` for a recruiter known by name in a village.
    pub fn recruiter_by_name(&self, name: &str, village: &str) -> String {
        self.token(
            "rec_",
            "recruiter-name",
            &format!("{}|{village}", normalise_name(name)),
        )
    }
}

fn normalise_name(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(version: u32, key: &str) -> Pseudonymiser {
        Pseudonymiser::from_config(&PseudonymConfig {
            active_version: None,
            keys: vec![KeyConfig {
                version,
                key_file: None,
                key_hex: Some(key.repeat(64)),
            }],
        })
        .unwrap()
    }

    #[test]
    fn tokens_are_stable_keyed_and_separated_by_domain() {
        let a = p(1, "a");
        let b = p(2, "b");
        let t = a.person_by_nik("7402054107900001");
        assert!(t.starts_with("psn_") && t.len() == 36, "{t}");
        assert_eq!(t, a.person_by_nik("7402054107900001"));
        assert_ne!(t, b.person_by_nik("7402054107900001"));
        assert_ne!(
            a.person_by_passport("X1234567")[4..],
            a.document("X1234567")[4..]
        );
        assert_eq!(a.name("siti  aminah"), a.name("SITI AMINAH"));
        assert_eq!(b.version(), 2);
    }

    #[test]
    fn bad_keys_are_refused() {
        let short = PseudonymConfig {
            active_version: None,
            keys: vec![KeyConfig {
                version: 1,
                key_file: None,
                key_hex: Some("ab".into()),
            }],
        };
        assert!(Pseudonymiser::from_config(&short).is_err());
        assert!(Pseudonymiser::from_config(&PseudonymConfig::default()).is_err());
        let wrong_active = PseudonymConfig {
            active_version: Some(3),
            keys: vec![KeyConfig {
                version: 1,
                key_file: None,
                key_hex: Some("a".repeat(64)),
            }],
        };
        assert!(Pseudonymiser::from_config(&wrong_active).is_err());
    }
}
