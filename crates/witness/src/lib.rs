//! The witness: a small service that another agency (the prosecutors, the inspectorate) runs
//! with its own Ed25519 key, so that the hub's operators cannot show one history to one party
//! and another to the next. For each log it witnesses it keeps the last checkpoint it cosigned;
//! it cosigns a new checkpoint (C2SP `tlog-cosignature`, `cosignature/v1`) only when the log
//! signed it and a consistency proof shows it extends that last one. Otherwise it refuses, and
//! a checkpoint that is validly signed but not an extension — a forked log — is kept next to
//! the one it contradicts, as evidence, and reported at error level.
//!
//! Requests follow the C2SP `tlog-witness` `add-checkpoint` body (`old <size>`, the proof's
//! hashes in base64 one per line, an empty line, the signed checkpoint), sent as a NATS request
//! to `timpora.witness.<witness name>.add-checkpoint`. The reply's first line is a status as in
//! the HTTP protocol: `200` followed by the cosignature line, `409` followed by the size the
//! witness has (the sealer then sends a proof from that size), `403` for a signature that does
//! not verify or a log not witnessed, `422` for a proof that does not hold, `400` for a body
//! that does not parse.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use timpora_tlog::{Hash, Key, Policy};

/// Subject prefix of witness requests: `<prefix>.<witness name>.add-checkpoint`.
pub const SUBJECT_PREFIX: &str = "timpora.witness";

/// The subject a witness named `name` answers on.
pub fn subject(name: &str) -> String {
    format!("{SUBJECT_PREFIX}.{}.add-checkpoint", subject_token(name))
}

/// A key name as one subject token (dots and slashes would split or break it).
fn subject_token(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Errors of the witness service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its state cannot be read or written.
    #[error("witness state {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key or a stored checkpoint does not parse.
    #[error(transparent)]
    Log(#[from] timpora_tlog::Error),
    /// NATS failed.
    #[error("nats: {0}")]
    Nats(String),
}

/// Why a checkpoint was not cosigned: the C2SP `tlog-witness` status and what to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `400`: the request does not parse.
    Malformed(String),
    /// `403`: not a log this witness witnesses, or its signature does not verify.
    Forbidden(String),
    /// `409`: the request's old size is not the size this witness last cosigned.
    Conflict(u64),
    /// `422`: the proof does not show the new checkpoint extends the last one cosigned.
    NotConsistent(String),
}

impl Refusal {
    /// The reply body: the status line, then what the status carries.
    pub fn reply(&self) -> String {
        match self {
            Self::Malformed(m) => format!("400\n{m}\n"),
            Self::Forbidden(m) => format!("403\n{m}\n"),
            Self::Conflict(size) => format!("409\n{size}\n"),
            Self::NotConsistent(m) => format!("422\n{m}\n"),
        }
    }
}

/// A parsed `add-checkpoint` request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The size of the checkpoint the sender believes this witness last cosigned.
    pub old: u64,
    /// The consistency proof from `old` to the new checkpoint.
    pub proof: Vec<Hash>,
    /// The new signed checkpoint.
    pub note: Vec<u8>,
}

impl Request {
    /// The request body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = format!("old {}\n", self.old);
        for h in &self.proof {
            b.push_str(&B64.encode(h.0));
            b.push('\n');
        }
        b.push('\n');
        let mut b = b.into_bytes();
        b.extend_from_slice(&self.note);
        b
    }

    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<Self, Refusal> {
        let bad = |m: &str| Refusal::Malformed(m.to_owned());
        let split = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let head = std::str::from_utf8(&body[..split]).map_err(|_| bad("the head is not UTF-8"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("the first line is not `old <size>`"))?;
        let proof = lines
            .map(|l| {
                let raw = B64
                    .decode(l)
                    .map_err(|_| bad("a proof line is not base64"))?;
                let h: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| bad("a proof line is not a hash"))?;
                Ok(Hash(h))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            old,
            proof,
            note: body[split + 2..].to_vec(),
        })
    }
}

/// One log this witness witnesses: its policy (the log's key) and the last checkpoint cosigned.
struct Witnessed {
    policy: Policy,
    file: PathBuf,
    last: Option<(u64, Hash, Vec<u8>)>,
}

/// The witness: its key, and per log what it last cosigned, kept in a directory of its own.
pub struct Witness {
    key: Key,
    dir: PathBuf,
    logs: Vec<Witnessed>,
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let state = |source| Error::State {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(state)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(state)?;
    std::fs::rename(&tmp, path).map_err(state)
}

impl Witness {
    /// A witness with `key`, witnessing the logs whose verifier keys are `logs`, keeping its
    /// state in `dir` (created if missing; what it holds is read back).
    pub fn open(key: Key, logs: &[String], dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir.join("forks")).map_err(|source| Error::State {
            path: dir.to_owned(),
            source,
        })?;
        let mut witnessed = Vec::new();
        for vkey in logs {
            let policy = Policy::new(vkey, &[], 0)?;
            let file = dir.join(format!("{}.checkpoint", subject_token(policy.origin())));
            let last = match std::fs::read(&file) {
                Ok(note) => {
                    let cp = policy.verify(&note)?.checkpoint;
                    Some((cp.size(), *cp.hash(), note))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(Error::State { path: file, source }),
            };
            witnessed.push(Witnessed { policy, file, last });
        }
        Ok(Self {
            key,
            dir: dir.to_owned(),
            logs: witnessed,
        })
    }

    /// The witness's name (its key's).
    pub fn name(&self) -> &str {
        self.key.name()
    }

    /// The size last cosigned for `origin`, if any.
    pub fn last_size(&self, origin: &str) -> Option<u64> {
        self.logs
            .iter()
            .find(|l| l.policy.origin() == origin)
            .and_then(|l| l.last.as_ref().map(|(s, ..)| *s))
    }

    /// Handles one request at `now` (seconds since the epoch): the cosignature line to add to
    /// the checkpoint, or why not.
    pub fn add_checkpoint(&mut self, body: &[u8], now: u64) -> Result<String, Refusal> {
        let req = Request::parse(body)?;
        let text_end = req
            .note
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| Refusal::Malformed("the checkpoint is not a signed note".into()))?;
        let origin = std::str::from_utf8(&req.note[..text_end])
            .ok()
            .and_then(|t| t.lines().next())
            .ok_or_else(|| Refusal::Malformed("the checkpoint has no origin line".into()))?
            .to_owned();
        let (key, dir) = (self.key.clone(), self.dir.clone());
        let log = self
            .logs
            .iter_mut()
            .find(|l| l.policy.origin() == origin)
            .ok_or_else(|| {
                Refusal::Forbidden(format!("{origin} is not a log this witness witnesses"))
            })?;
        let cp = log
            .policy
            .verify(&req.note)
            .map_err(|e| Refusal::Forbidden(e.to_string()))?
            .checkpoint;
        let (old_size, old_root) = match &log.last {
            Some((s, h, _)) => (*s, *h),
            None => (0, timpora_tlog::Tree::new().root()),
        };
        if req.old != old_size {
            return Err(Refusal::Conflict(old_size));
        }
        if cp.size() < old_size {
            return Err(Refusal::Conflict(old_size));
        }
        if let Err(e) =
            timpora_tlog::verify_consistency(&req.proof, old_size, old_root, cp.size(), *cp.hash())
        {
            // A validly signed checkpoint that does not extend the last one: keep both.
            let fork = dir.join("forks").join(format!(
                "{}-{}-{}",
                subject_token(&origin),
                old_size,
                cp.size()
            ));
            let mut evidence = b"# the checkpoint this witness had cosigned\n".to_vec();
            if let Some((.., note)) = &log.last {
                evidence.extend_from_slice(note);
            }
            evidence.extend_from_slice(
                b"# a checkpoint signed by the same log that does not extend it\n",
            );
            evidence.extend_from_slice(&req.note);
            let kept = write_atomically(&fork, &evidence).is_ok();
            tracing::error!(
                log = %origin, cosigned = old_size, offered = cp.size(), evidence = %fork.display(),
                kept, "FORK: the log signed a checkpoint that does not extend the one this witness cosigned"
            );
            return Err(Refusal::NotConsistent(e.to_string()));
        }
        let cosigned = timpora_tlog::cosign(&req.note, &key, now)
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        // The cosignature is the note's last line.
        let text = String::from_utf8_lossy(&cosigned);
        let line = text
            .lines()
            .last()
            .map(|l| format!("{l}\n"))
            .ok_or_else(|| Refusal::Malformed("no cosignature".into()))?;
        if cp.size() > old_size || log.last.is_none() {
            if let Err(e) = write_atomically(&log.file, &req.note) {
                tracing::error!(error = %e, "witness state not written: not cosigning");
                return Err(Refusal::Forbidden(
                    "the witness cannot keep its state".into(),
                ));
            }
            log.last = Some((cp.size(), *cp.hash(), req.note.clone()));
        }
        tracing::info!(log = %origin, size = cp.size(), "checkpoint cosigned");
        Ok(line)
    }
}

/// Answer `add-checkpoint` requests on NATS until `shutdown`.
pub async fn serve(
    client: async_nats::Client,
    mut witness: Witness,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let subject = subject(witness.name());
    let mut requests = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| Error::Nats(e.to_string()))?;
    tracing::info!(witness = %witness.name(), %subject, "witness listening");
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            m = requests.next() => {
                let Some(m) = m else { break };
                let Some(reply) = m.reply else { continue };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let answer = match witness.add_checkpoint(&m.payload, now) {
                    Ok(line) => format!("200\n{line}"),
                    Err(r) => {
                        tracing::warn!(refusal = %r.reply().replace('\n', " "), "checkpoint not cosigned");
                        r.reply()
                    }
                };
                if let Err(e) = client.publish(reply, answer.into()).await {
                    tracing::warn!(error = %e, "witness reply not sent");
                }
            }
            () = &mut shutdown => break,
        }
    }
    Ok(())
}

/// What a witness answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The cosignature line.
    Cosigned(String),
    /// Refused, with the status and what came with it.
    Refused(u16, String),
}

/// Ask the witness named `name` to cosign.
pub async fn ask(
    client: &async_nats::Client,
    name: &str,
    request: &Request,
) -> Result<Answer, Error> {
    let reply = client
        .request(subject(name), request.encode().into())
        .await
        .map_err(|e| Error::Nats(e.to_string()))?;
    let text = String::from_utf8_lossy(&reply.payload);
    let (status, rest) = text.split_once('\n').unwrap_or((&text, ""));
    Ok(match status {
        "200" => Answer::Cosigned(rest.to_owned()),
        s => Answer::Refused(s.parse().unwrap_or(500), rest.trim_end().to_owned()),
    })
}

#[cfg(test)]
mod tests;
