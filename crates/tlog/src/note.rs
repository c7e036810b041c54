//! Checkpoints as C2SP signed notes: the log's Ed25519 signature (C2SP `signed-note`), witnesses'
//! cosignatures (C2SP `tlog-cosignature`, `cosignature/v1`), keys in the notes' text formats, and
//! a policy that says whose signatures a checkpoint needs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, Verifier as _};
use signed_note::{Note, Signer, Verifier, VerifierList};
pub use tlog_tiles::Checkpoint;

use crate::error::{Error, ErrorKind, Result};
use tlog_tiles::Hash;

const ALG_ED25519: u8 = 0x01;
const ALG_COSIGNATURE_V1: u8 = 0x04;

/// An Ed25519 key of a log or a witness, with the name its signatures carry.
#[derive(Clone)]
pub struct Key {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Key")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<()> {
    if signed_note::is_key_name_valid(name) {
        Ok(())
    } else {
        Err(Error::malformed(format!(
            "{name:?} is not a key name: it must be non-empty, without spaces or '+'"
        )))
    }
}

impl Key {
    /// A new random key named `name` (the log's origin, or the witness's name).
    pub fn generate(name: &str) -> Result<Self> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| Error::new(ErrorKind::Malformed, format!("no randomness: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The key named `name`.
    pub fn renamed(&self, name: &str) -> Result<Self> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: self.key.clone(),
        })
    }

    /// The name its signatures carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The secret in the signed-note format, `PRIVATE+KEY+<name>+<id>+<base64>`: for a file
    /// only its owner reads.
    pub fn to_secret(&self) -> String {
        let public = self.public(ALG_ED25519);
        let mut private = vec![ALG_ED25519];
        private.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            signed_note::key_id(&self.name, &public),
            B64.encode(private)
        )
    }

    /// Reads a secret written by [`Key::to_secret`] (or by Go's `note.GenerateKey`).
    pub fn from_secret(text: &str) -> Result<Self> {
        let bad = || Error::malformed("not a signed-note private key (PRIVATE+KEY+name+id+key)");
        let mut parts = text.trim().splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(_id), Some(key)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        check_name(name)?;
        let key = B64.decode(key).map_err(|_| bad())?;
        let seed: [u8; 32] = match key.split_first() {
            Some((&ALG_ED25519, seed)) => seed.try_into().map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        Ok(Self {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    fn public(&self, alg: u8) -> Vec<u8> {
        let mut p = vec![alg];
        p.extend_from_slice(self.key.verifying_key().as_bytes());
        p
    }

    fn vkey(&self, alg: u8) -> String {
        let public = self.public(alg);
        format!(
            "{}+{:08x}+{}",
            self.name,
            signed_note::key_id(&self.name, &public),
            B64.encode(&public)
        )
    }

    /// The verifier key of its checkpoint signatures (`<name>+<id>+<base64>`, algorithm 0x01):
    /// what an auditor is given to check a log.
    pub fn log_verifier(&self) -> String {
        self.vkey(ALG_ED25519)
    }

    /// The verifier key of its cosignatures (algorithm 0x04, `cosignature/v1`): what an auditor
    /// is given to count a witness.
    pub fn witness_verifier(&self) -> String {
        self.vkey(ALG_COSIGNATURE_V1)
    }
}

/// The checkpoint body: `<origin>\n<size>\n<base64 root>\n`.
pub fn checkpoint(origin: &str, size: u64, root: Hash) -> Result<Checkpoint> {
    Checkpoint::new(origin, size, root, "")
        .map_err(|_| Error::malformed(format!("{origin:?} is not a checkpoint origin")))
}

/// Signs a checkpoint as the log: a signed note whose one signature is `key`'s. The key's name
/// must be the checkpoint's origin.
pub fn sign(checkpoint: &Checkpoint, key: &Key) -> Result<Vec<u8>> {
    if key.name() != checkpoint.origin() {
        return Err(Error::malformed(format!(
            "the key {} cannot sign for the log {}",
            key.name(),
            checkpoint.origin()
        )));
    }
    let signer = LogSigner(key);
    let mut note = Note::new(&checkpoint.to_bytes(), &[])
        .map_err(|e| Error::malformed(format!("checkpoint note: {e}")))?;
    note.add_sigs(&[&signer])
        .map_err(|e| Error::malformed(format!("checkpoint note: {e}")))?;
    Ok(note.to_bytes())
}

/// Adds a witness's `cosignature/v1` at `time` (seconds since the Unix epoch) to a signed
/// checkpoint. A cosignature says only that the witness saw this checkpoint then and that it
/// extends every earlier one the witness cosigned; checking that is the witness's job, not this
/// function's.
pub fn cosign(note: &[u8], key: &Key, time: u64) -> Result<Vec<u8>> {
    let mut note =
        Note::from_bytes(note).map_err(|e| Error::malformed(format!("signed note: {e}")))?;
    let signer = Cosigner { key, time };
    note.add_sigs(&[&signer])
        .map_err(|e| Error::malformed(format!("signed note: {e}")))?;
    Ok(note.to_bytes())
}

struct LogSigner<'a>(&'a Key);

impl Signer for LogSigner<'_> {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn key_id(&self) -> u32 {
        signed_note::key_id(&self.0.name, &self.0.public(ALG_ED25519))
    }
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.0.key.sign(msg).to_vec())
    }
}

struct Cosigner<'a> {
    key: &'a Key,
    time: u64,
}

fn cosigned_message(time: u64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(body);
    m
}

impl Signer for Cosigner<'_> {
    fn name(&self) -> &str {
        &self.key.name
    }
    fn key_id(&self) -> u32 {
        signed_note::key_id(&self.key.name, &self.key.public(ALG_COSIGNATURE_V1))
    }
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let sig = self.key.key.sign(&cosigned_message(self.time, msg));
        let mut out = self.time.to_be_bytes().to_vec();
        out.extend_from_slice(&sig.to_bytes());
        Ok(out)
    }
}

/// A public key read from its verifier-key text.
#[derive(Debug, Clone)]
struct PublicKey {
    name: String,
    id: u32,
    alg: u8,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    fn parse(vkey: &str, alg: u8) -> Result<Self> {
        let bad = |why: &str| Error::malformed(format!("verifier key {vkey:?}: {why}"));
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not <name>+<id>+<key>"));
        };
        check_name(name)?;
        let id = u32::from_str_radix(id, 16).map_err(|_| bad("the id is not hexadecimal"))?;
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        if signed_note::key_id(name, &raw) != id {
            return Err(bad("the id does not match the key"));
        }
        let bytes: [u8; 32] = match raw.split_first() {
            Some((a, k)) if *a == alg => k.try_into().map_err(|_| bad("not an Ed25519 key"))?,
            Some((a, _)) => {
                return Err(bad(&format!(
                    "algorithm {a:#04x}, where {alg:#04x} was expected"
                )));
            }
            None => return Err(bad("empty")),
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| bad("not an Ed25519 key"))?;
        Ok(Self {
            name: name.to_owned(),
            id,
            alg,
            key,
        })
    }
}

impl Verifier for PublicKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self.alg {
            ALG_COSIGNATURE_V1 => {
                let Some((time, sig)) = sig.split_first_chunk::<8>() else {
                    return false;
                };
                let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                    return false;
                };
                let m = cosigned_message(u64::from_be_bytes(*time), msg);
                self.key.verify(&m, &sig).is_ok()
            }
            _ => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| self.key.verify(msg, &s).is_ok()),
        }
    }
}

/// Whose signatures a log's checkpoints need: the log's key, the witnesses an auditor trusts,
/// and how many of them must have cosigned.
#[derive(Debug, Clone)]
pub struct Policy {
    log: PublicKey,
    witnesses: Vec<PublicKey>,
    quorum: usize,
}

/// A witness's cosignature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name.
    pub witness: String,
    /// When it cosigned, seconds since the Unix epoch.
    pub time: u64,
}

/// A checkpoint whose signatures met a policy.
#[derive(Debug)]
pub struct Verified {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The trusted witnesses that cosigned it, in the note's order.
    pub cosignatures: Vec<Cosignature>,
}

impl Policy {
    /// A policy from the log's verifier key, the witnesses' cosignature verifier keys and how
    /// many of those witnesses must have cosigned.
    pub fn new(log: &str, witnesses: &[String], quorum: usize) -> Result<Self> {
        let log = PublicKey::parse(log, ALG_ED25519)?;
        let witnesses = witnesses
            .iter()
            .map(|w| PublicKey::parse(w, ALG_COSIGNATURE_V1))
            .collect::<Result<Vec<_>>>()?;
        if quorum > witnesses.len() {
            return Err(Error::malformed(format!(
                "a quorum of {quorum} needs at least as many witnesses, not {}",
                witnesses.len()
            )));
        }
        Ok(Self {
            log,
            witnesses,
            quorum,
        })
    }

    /// The log's origin (its key's name).
    pub fn origin(&self) -> &str {
        &self.log.name
    }

    /// The same keys with another quorum (a witness checks the log's signature alone).
    pub fn with_quorum(&self, quorum: usize) -> Self {
        Self {
            quorum: quorum.min(self.witnesses.len()),
            ..self.clone()
        }
    }

    /// Checks a signed checkpoint: the log signed it, its origin is the log's, and at least the
    /// quorum of trusted witnesses cosigned it. Signatures of unknown keys are ignored; a known
    /// key's signature that does not verify is an error.
    pub fn verify(&self, note: &[u8]) -> Result<Verified> {
        let note =
            Note::from_bytes(note).map_err(|e| Error::malformed(format!("signed note: {e}")))?;
        let mut known: Vec<Box<dyn Verifier>> = vec![Box::new(self.log.clone())];
        known.extend(
            self.witnesses
                .iter()
                .map(|w| Box::new(w.clone()) as Box<dyn Verifier>),
        );
        let (verified, _unknown) = note.verify(&VerifierList::new(known)).map_err(|e| {
            Error::invalid(format!("the checkpoint's signatures do not verify: {e}"))
        })?;
        if !verified
            .iter()
            .any(|s| s.name() == self.log.name && s.id() == self.log.id)
        {
            return Err(Error::invalid(format!(
                "the checkpoint is not signed by the log {}",
                self.log.name
            )));
        }
        let checkpoint = Checkpoint::from_bytes(note.text())
            .map_err(|_| Error::malformed("the note is not a checkpoint"))?;
        if checkpoint.origin() != self.log.name {
            return Err(Error::invalid(format!(
                "the checkpoint is of {}, not of {}",
                checkpoint.origin(),
                self.log.name
            )));
        }
        let mut cosignatures: Vec<Cosignature> = Vec::new();
        for s in &verified {
            let Some(w) = self
                .witnesses
                .iter()
                .find(|w| w.name == s.name() && w.id == s.id())
            else {
                continue;
            };
            if cosignatures.iter().any(|c| c.witness == w.name) {
                continue;
            }
            let time = s
                .signature()
                .first_chunk::<8>()
                .map_or(0, |t| u64::from_be_bytes(*t));
            cosignatures.push(Cosignature {
                witness: w.name.clone(),
                time,
            });
        }
        if cosignatures.len() < self.quorum {
            return Err(Error::new(
                ErrorKind::Unwitnessed,
                format!(
                    "the checkpoint of {} at size {} has {} of the {} cosignatures the policy needs",
                    checkpoint.origin(),
                    checkpoint.size(),
                    cosignatures.len(),
                    self.quorum
                ),
            ));
        }
        Ok(Verified {
            checkpoint,
            cosignatures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(b: u8) -> Hash {
        tlog_tiles::record_hash(&[b])
    }

    #[test]
    fn a_checkpoint_is_the_c2sp_text_signed_by_the_log() {
        let log = Key::generate("timpora.test/events").unwrap();
        let cp = checkpoint("timpora.test/events", 3, root(1)).unwrap();
        let note = sign(&cp, &log).unwrap();
        let text = String::from_utf8(note.clone()).unwrap();
        let (body, sigs) = text.split_once("\n\n").unwrap();
        assert_eq!(
            format!("{body}\n"),
            format!("timpora.test/events\n3\n{}\n", root(1))
        );
        assert!(sigs.starts_with("— timpora.test/events "), "{sigs}");
        // signed_note's own verifier (Go's note format) accepts it.
        let v = signed_note::StandardVerifier::new(&log.log_verifier()).unwrap();
        Note::from_bytes(&note)
            .unwrap()
            .verify(&VerifierList::new(vec![Box::new(v)]))
            .unwrap();
        let policy = Policy::new(&log.log_verifier(), &[], 0).unwrap();
        let ok = policy.verify(&note).unwrap();
        assert_eq!(ok.checkpoint.size(), 3);
        // The secret round-trips, and signs the same.
        let again = Key::from_secret(&log.to_secret()).unwrap();
        assert_eq!(again.log_verifier(), log.log_verifier());
        assert!(!format!("{log:?}").contains(&log.to_secret()[20..]));
    }

    #[test]
    fn cosignatures_count_toward_the_quorum_and_forgeries_fail() {
        let log = Key::generate("timpora.test/events").unwrap();
        let w1 = Key::generate("kejaksaan.test").unwrap();
        let w2 = Key::generate("inspektorat.test").unwrap();
        let note = sign(
            &checkpoint("timpora.test/events", 9, root(2)).unwrap(),
            &log,
        )
        .unwrap();
        let witnesses = [w1.witness_verifier(), w2.witness_verifier()];
        let two = Policy::new(&log.log_verifier(), &witnesses, 2).unwrap();
        let err = two.verify(&note).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unwitnessed);
        let once = cosign(&note, &w1, 1_764_633_600).unwrap();
        assert_eq!(
            two.verify(&once).unwrap_err().kind(),
            ErrorKind::Unwitnessed
        );
        let ok = two.with_quorum(1).verify(&once).unwrap();
        assert_eq!(
            ok.cosignatures,
            [Cosignature {
                witness: "kejaksaan.test".into(),
                time: 1_764_633_600
            }]
        );
        let twice = cosign(&once, &w2, 1_764_633_601).unwrap();
        assert_eq!(two.verify(&twice).unwrap().cosignatures.len(), 2);
        // The same witness twice is one cosignature.
        let again = cosign(&once, &w1, 1_764_633_700).unwrap();
        assert_eq!(
            two.verify(&again).unwrap_err().kind(),
            ErrorKind::Unwitnessed
        );
        // A cosignature does not verify as a log signature, nor a log key as a witness key.
        assert!(
            Policy::new(&w1.log_verifier(), &[], 0)
                .unwrap()
                .verify(&twice)
                .is_err()
        );
        assert!(Policy::new(&log.log_verifier(), &[w1.log_verifier()], 1).is_err());
        // A changed body fails every signature.
        let forged = String::from_utf8(twice)
            .unwrap()
            .replacen("\n9\n", "\n8\n", 1);
        assert_eq!(
            two.verify(forged.as_bytes()).unwrap_err().kind(),
            ErrorKind::Invalid
        );
        // Another log's checkpoint under a look-alike name is not this log's.
        let other = Key::generate("timpora.test/events").unwrap();
        let fake = sign(
            &checkpoint("timpora.test/events", 9, root(2)).unwrap(),
            &other,
        )
        .unwrap();
        assert_eq!(
            two.with_quorum(0).verify(&fake).unwrap_err().kind(),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn the_go_note_example_key_reads_and_verifies() {
        // The example of Go's golang.org/x/mod/sumdb/note documentation.
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let key = Key::from_secret(skey).unwrap();
        assert_eq!(key.log_verifier(), vkey);
        let note = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n\n\
                    — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let v = PublicKey::parse(vkey, ALG_ED25519).unwrap();
        Note::from_bytes(note.as_bytes())
            .unwrap()
            .verify(&VerifierList::new(vec![Box::new(v)]))
            .unwrap();
    }
}
