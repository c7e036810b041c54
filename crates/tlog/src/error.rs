//! The log's errors: a kind callers match on and a message that names what did not hold.

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Input that does not parse: a checkpoint, a note, a key, a leaf or a proof file.
    Malformed,
    /// A signature, a proof or a hash did not verify: the thing checked is not what it claims.
    Invalid,
    /// Too few of the required witnesses cosigned a checkpoint.
    Unwitnessed,
    /// A question the tree cannot answer: a leaf or a size beyond what it holds.
    OutOfRange,
}

/// An error of the transparency log.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct Error {
    kind: ErrorKind,
    detail: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, detail)
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, detail)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
