//! The bus's errors: a kind callers match on (is it worth retrying?) and the source kept, the
//! way async-nats' own `Error<Kind>` works, rather than a message to parse.

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::StreamErrorKind;
use async_nats::jetstream::consumer::pull::{MessagesErrorKind, OrderedErrorKind};
use async_nats::jetstream::context::{
    CreateStreamErrorKind, GetStreamErrorKind, PublishErrorKind, RequestErrorKind,
};
use async_nats::jetstream::stream::{ConsumerErrorKind, DirectGetErrorKind};

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// NATS cannot be reached or did not answer in time: nothing was acknowledged, and the same
    /// call may succeed later.
    Unavailable,
    /// A stream, bucket or consumer the call needs does not exist (deleted, or the topology was
    /// never provisioned): retrying will not help; `timpora bus init` will.
    Missing,
    /// JetStream refused the request (configuration, limits, permissions, a bad URL): retrying
    /// the same request will not help.
    Refused,
    /// A stored message is not what it should be.
    Malformed,
    /// The event's type is not in the catalogue.
    UnknownType,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the bus.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Error {
    kind: ErrorKind,
    op: &'static str,
    /// The stream sequence of the record it concerns, when it concerns one.
    sequence: Option<u64>,
    #[source]
    source: Option<BoxError>,
    detail: String,
}

impl Error {
    /// An error of `kind` in `op`, caused by `source`.
    pub(crate) fn new(
        kind: ErrorKind,
        op: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let detail = source.to_string();
        Self {
            kind,
            op,
            sequence: None,
            source: Some(Box::new(source)),
            detail,
        }
    }

    /// An error of `kind` in `op`, said in `detail`.
    pub(crate) fn msg(kind: ErrorKind, op: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            op,
            sequence: None,
            source: None,
            detail: detail.into(),
        }
    }

    /// The message at `sequence` does not decode.
    pub(crate) fn malformed(sequence: u64, e: impl std::fmt::Display) -> Self {
        Self {
            sequence: Some(sequence),
            ..Self::msg(
                ErrorKind::Malformed,
                "decode",
                format!("message at stream sequence {sequence} is not valid: {e}"),
            )
        }
    }

    /// The stream sequence of the record this concerns (a record that cannot be read).
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the same call may succeed later (NATS was unreachable or slow).
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }

    fn describe(&self) -> String {
        let (op, d) = (self.op, &self.detail);
        match self.kind {
            ErrorKind::Unavailable => format!("nats is unavailable: {op}: {d}"),
            ErrorKind::Missing => {
                format!("{op}: {d} (is the topology provisioned? `timpora bus init`)")
            }
            ErrorKind::Refused => format!("jetstream {op} failed: {d}"),
            ErrorKind::Malformed | ErrorKind::UnknownType => d.clone(),
        }
    }
}

/// The bus's kind of an async-nats error kind.
pub(crate) trait Classify {
    fn classify(&self) -> ErrorKind;
}

fn jetstream_code(e: &async_nats::jetstream::Error) -> ErrorKind {
    match e.error_code() {
        ErrorCode::STREAM_NOT_FOUND | ErrorCode::CONSUMER_NOT_FOUND => ErrorKind::Missing,
        _ => ErrorKind::Refused,
    }
}

impl Classify for PublishErrorKind {
    fn classify(&self) -> ErrorKind {
        match self {
            Self::StreamNotFound => ErrorKind::Missing,
            Self::TimedOut | Self::BrokenPipe | Self::MaxAckPending => ErrorKind::Unavailable,
            Self::WrongLastMessageId | Self::WrongLastSequence | Self::MaxPayloadExceeded => {
                ErrorKind::Refused
            }
            _ => ErrorKind::Unavailable,
        }
    }
}

impl Classify for GetStreamErrorKind {
    fn classify(&self) -> ErrorKind {
        match self {
            Self::Request => ErrorKind::Unavailable,
            Self::JetStream(e) => jetstream_code(e),
            _ => ErrorKind::Refused,
        }
    }
}

impl Classify for CreateStreamErrorKind {
    fn classify(&self) -> ErrorKind {
        match self {
            Self::TimedOut | Self::JetStreamUnavailable => ErrorKind::Unavailable,
            Self::NotFound => ErrorKind::Missing,
            Self::JetStream(e) => jetstream_code(e),
            _ => ErrorKind::Refused,
        }
    }
}

impl Classify for ConsumerErrorKind {
    fn classify(&self) -> ErrorKind {
        match self {
            Self::TimedOut | Self::Request => ErrorKind::Unavailable,
            Self::JetStream(e) => jetstream_code(e),
            _ => ErrorKind::Refused,
        }
    }
}

impl Classify for RequestErrorKind {
    fn classify(&self) -> ErrorKind {
        match self {
            Self::NoResponders | Self::TimedOut => ErrorKind::Unavailable,
            Self::InvalidSubject => ErrorKind::Refused,
            _ => ErrorKind::Unavailable,
        }
    }
}

impl Classify for StreamErrorKind {
    fn classify(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }
}

impl Classify for OrderedErrorKind {
    fn classify(&self) -> ErrorKind {
        match self {
            Self::PushBasedConsumer => ErrorKind::Refused,
            _ => ErrorKind::Unavailable,
        }
    }
}

impl Classify for MessagesErrorKind {
    fn classify(&self) -> ErrorKind {
        match self {
            Self::PushBasedConsumer => ErrorKind::Refused,
            Self::ConsumerDeleted => ErrorKind::Missing,
            _ => ErrorKind::Unavailable,
        }
    }
}

impl Classify for DirectGetErrorKind {
    fn classify(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::Missing,
            Self::TimedOut | Self::Request => ErrorKind::Unavailable,
            _ => ErrorKind::Refused,
        }
    }
}

/// A JetStream error whose kind async-nats does not give in a form [`Classify`] knows (key-value
/// and object stores): transient while the connection is down (`connected` false) or when a
/// request in it timed out or found JetStream not answering (a loaded server), refused
/// otherwise.
pub(crate) fn js_err<E: std::error::Error + Send + Sync + 'static>(
    connected: bool,
    op: &'static str,
) -> impl FnOnce(E) -> Error {
    move |e| {
        let kind = if !connected || passing(&e) {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Refused
        };
        Error::new(kind, op, e)
    }
}

/// Whether an async-nats error, or one it wraps, is a request that timed out or had no
/// responder. Its kinds nest (a bucket's error wraps a stream request's), and only their debug
/// form names the innermost one.
fn passing(e: &dyn std::error::Error) -> bool {
    let debug = format!("{e:?}");
    ["TimedOut", "NoResponders", "JetStreamUnavailable"]
        .iter()
        .any(|k| debug.contains(k))
}

/// Map an async-nats error of a classified kind, naming the operation.
pub(crate) fn err<K>(op: &'static str) -> impl FnOnce(async_nats::error::Error<K>) -> Error
where
    K: Classify + Clone + std::fmt::Debug + std::fmt::Display + PartialEq + Send + Sync + 'static,
{
    move |e| Error::new(e.kind().classify(), op, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_tell_transient_from_permanent() {
        assert_eq!(
            PublishErrorKind::StreamNotFound.classify(),
            ErrorKind::Missing
        );
        assert_eq!(
            PublishErrorKind::TimedOut.classify(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            PublishErrorKind::MaxPayloadExceeded.classify(),
            ErrorKind::Refused
        );
        assert_eq!(
            GetStreamErrorKind::Request.classify(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            RequestErrorKind::NoResponders.classify(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            MessagesErrorKind::ConsumerDeleted.classify(),
            ErrorKind::Missing
        );
        let missing = Error::msg(ErrorKind::Missing, "get stream", "stream not found");
        assert!(!missing.is_transient());
        assert!(
            missing.to_string().contains("timpora bus init"),
            "{missing}"
        );
        let down = Error::msg(ErrorKind::Unavailable, "publish", "not connected");
        assert!(down.is_transient());
        assert!(down.to_string().starts_with("nats is unavailable"));
    }

    #[test]
    fn a_store_error_wrapping_a_timed_out_request_is_transient_while_connected() {
        use async_nats::jetstream::context::{
            CreateKeyValueError, CreateKeyValueErrorKind, CreateStreamError,
        };
        let timed_out = CreateKeyValueError::with_source(
            CreateKeyValueErrorKind::JetStream,
            CreateStreamError::new(CreateStreamErrorKind::TimedOut),
        );
        let e = js_err(true, "create object store")(timed_out);
        assert!(e.is_transient(), "{e}");
        let refused = CreateKeyValueError::new(CreateKeyValueErrorKind::InvalidStoreName);
        assert_eq!(
            js_err(true, "create object store")(refused).kind(),
            ErrorKind::Refused
        );
        let down = CreateKeyValueError::new(CreateKeyValueErrorKind::InvalidStoreName);
        assert!(js_err(false, "create object store")(down).is_transient());
    }
}
