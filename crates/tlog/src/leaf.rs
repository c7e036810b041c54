//! A leaf: the canonical encoding of one stored message (or of a sequence found missing), the
//! text that is hashed into the tree. `docs/transparency-log.md` gives it byte for byte, so that
//! anyone can recompute a leaf from a replayed message without the hub's code.

use sha2::{Digest, Sha256};

use tlog_tiles::Hash;

/// First line of every leaf: the encoding's version.
pub const LEAF_VERSION: &str = "timpora-leaf/v1";

/// Headers JetStream adds when a message is read with a direct get, which are not part of what
/// was stored and so never part of a leaf.
pub const READ_HEADERS: [&str; 4] = [
    "Nats-Stream",
    "Nats-Sequence",
    "Nats-Time-Stamp",
    "Nats-Subject",
];

/// The header carrying a message's idempotency key.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// One message as its stream stored it.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// The JetStream stream's name.
    pub stream: &'a str,
    /// The stream sequence.
    pub sequence: u64,
    /// When the stream stored it, in nanoseconds since the Unix epoch.
    pub stored_nanos: u64,
    /// The subject it was stored on.
    pub subject: &'a str,
    /// Its headers, as (name, value) pairs in any order; a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// Its payload.
    pub payload: &'a [u8],
}

/// The leaf for one sequence of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// A stored message.
    Message {
        /// The stream's name.
        stream: String,
        /// The stream sequence.
        sequence: u64,
        /// Stored time, nanoseconds since the Unix epoch.
        stored_nanos: u64,
        /// The subject.
        subject: String,
        /// The `Nats-Msg-Id` header, empty when there is none.
        msg_id: String,
        /// SHA-256 of the canonical headers and the payload ([`content_hash`]).
        content: [u8; 32],
    },
    /// A sequence that was not in the stream when it was sealed (deleted, or never stored).
    Gap {
        /// The stream's name.
        stream: String,
        /// The missing sequence.
        sequence: u64,
    },
}

impl Leaf {
    /// The leaf of a stored message.
    pub fn of(m: &Stored<'_>) -> Self {
        let msg_id = m
            .headers
            .iter()
            .find(|(n, _)| *n == MSG_ID_HEADER)
            .map(|(_, v)| (*v).to_owned())
            .unwrap_or_default();
        Self::Message {
            stream: m.stream.to_owned(),
            sequence: m.sequence,
            stored_nanos: m.stored_nanos,
            subject: m.subject.to_owned(),
            msg_id,
            content: content_hash(m.headers, m.payload),
        }
    }

    /// The leaf of a sequence found missing.
    pub fn gap(stream: &str, sequence: u64) -> Self {
        Self::Gap {
            stream: stream.to_owned(),
            sequence,
        }
    }

    /// The stream sequence this leaf stands for.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Message { sequence, .. } | Self::Gap { sequence, .. } => *sequence,
        }
    }

    /// Whether this leaf records a missing sequence.
    pub fn is_gap(&self) -> bool {
        matches!(self, Self::Gap { .. })
    }

    /// The canonical bytes: UTF-8 lines, each ended by `\n`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Message {
                stream,
                sequence,
                stored_nanos,
                subject,
                msg_id,
                content,
            } => format!(
                "{LEAF_VERSION}\nstream {stream}\nsequence {sequence}\nstored {stored_nanos}\n\
                 subject {subject}\nmsg-id {msg_id}\ncontent {}\n",
                hex(content)
            ),
            Self::Gap { stream, sequence } => {
                format!("{LEAF_VERSION}\nstream {stream}\nsequence {sequence}\ngap\n")
            }
        }
        .into_bytes()
    }

    /// The leaf's hash in the tree: `SHA-256(0x00 ‖ encode())`.
    pub fn hash(&self) -> Hash {
        tlog_tiles::record_hash(&self.encode())
    }
}

/// SHA-256 over a message's headers and payload: `be64(len(H)) ‖ H ‖ payload`, where `H` is the
/// headers sorted by name (byte order; a repeated name's values keep their order), each written
/// `name: value\n`, leaving out [`READ_HEADERS`].
pub fn content_hash(headers: &[(&str, &str)], payload: &[u8]) -> [u8; 32] {
    let mut kept: Vec<&(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| !READ_HEADERS.contains(n))
        .collect();
    // A stable sort keeps a repeated name's values in the order they came.
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut block = Vec::new();
    for (n, v) in kept {
        block.extend_from_slice(n.as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(v.as_bytes());
        block.push(b'\n');
    }
    let mut h = Sha256::new();
    h.update((block.len() as u64).to_be_bytes());
    h.update(&block);
    h.update(payload);
    h.finalize().into()
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored<'a>(headers: &'a [(&'a str, &'a str)], payload: &'a [u8]) -> Stored<'a> {
        Stored {
            stream: "TIMPORA_EVENTS",
            sequence: 42,
            stored_nanos: 1_764_633_600_123_456_789,
            subject: "timpora.events.imigrasi.interview_deferral.74.71",
            headers,
            payload,
        }
    }

    #[test]
    fn a_leaf_is_the_documented_text() {
        let headers = [("Nats-Msg-Id", "imigrasi-0001"), ("Timpora-Type", "x")];
        let leaf = Leaf::of(&stored(&headers, b"payload"));
        let text = String::from_utf8(leaf.encode()).unwrap();
        let content = hex(&content_hash(&headers, b"payload"));
        assert_eq!(
            text,
            format!(
                "timpora-leaf/v1\nstream TIMPORA_EVENTS\nsequence 42\nstored 1764633600123456789\n\
                 subject timpora.events.imigrasi.interview_deferral.74.71\n\
                 msg-id imigrasi-0001\ncontent {content}\n"
            )
        );
        // The content hash, recomputed by hand from its definition.
        let block = b"Nats-Msg-Id: imigrasi-0001\nTimpora-Type: x\n";
        let mut h = Sha256::new();
        h.update((block.len() as u64).to_be_bytes());
        h.update(block);
        h.update(b"payload");
        assert_eq!(content, hex(&h.finalize()));
        let mut prefixed = vec![0u8];
        prefixed.extend(leaf.encode());
        assert_eq!(leaf.hash().0, <[u8; 32]>::from(Sha256::digest(&prefixed)));
    }

    #[test]
    fn header_order_and_read_headers_do_not_change_the_content() {
        let a = [("B", "2"), ("A", "1"), ("A", "0")];
        let b = [("A", "1"), ("Nats-Sequence", "42"), ("A", "0"), ("B", "2")];
        assert_eq!(content_hash(&a, b"p"), content_hash(&b, b"p"));
        // A repeated header's values in another order are another message.
        let c = [("A", "0"), ("A", "1"), ("B", "2")];
        assert_ne!(content_hash(&a, b"p"), content_hash(&c, b"p"));
        // Bytes moved between the headers and the payload are another message.
        assert_ne!(
            content_hash(&[("A", "1x")], b""),
            content_hash(&[("A", "1")], b"x")
        );
    }

    #[test]
    fn every_field_is_in_the_hash() {
        let headers = [("Nats-Msg-Id", "id-1")];
        let base = stored(&headers, b"p");
        let h = Leaf::of(&base).hash();
        let other_id = [("Nats-Msg-Id", "id-2")];
        for changed in [
            Stored {
                stream: "TIMPORA_ALERTS",
                ..base
            },
            Stored {
                sequence: 43,
                ..base
            },
            Stored {
                stored_nanos: base.stored_nanos + 1,
                ..base
            },
            Stored {
                subject: "timpora.events.x",
                ..base
            },
            Stored {
                headers: &other_id,
                ..base
            },
            Stored {
                payload: b"q",
                ..base
            },
        ] {
            assert_ne!(Leaf::of(&changed).hash(), h, "{changed:?}");
        }
        assert_ne!(Leaf::gap("TIMPORA_EVENTS", 42).hash(), h);
        assert_eq!(
            Leaf::gap("TIMPORA_EVENTS", 42).encode(),
            b"timpora-leaf/v1\nstream TIMPORA_EVENTS\nsequence 42\ngap\n"
        );
    }
}
