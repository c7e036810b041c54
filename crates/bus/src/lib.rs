//! The hub's NATS JetStream topology as code: stream names, subject naming, retention and the
//! duplicate window, created or updated idempotently; publishing events with their dedup key and
//! trace context in NATS headers; ordered replay with filters; and a status report.
//!
//! Subject naming lives here and nowhere else: `timpora.events.<domain>.<type>.<region…>`, where
//! the region code's own dots make it hierarchical (`timpora.events.imigrasi.departure_check.74.>`
//! is every departure check in Southeast Sulawesi).

mod alerts;
pub mod auth;
mod bus;
mod error;
mod holds;
mod identity;
pub mod offices;
mod options;
mod shared;
mod state;
mod tlog;
mod topology;

pub use alerts::{AlertDelivered, AlertMessage, TransitionError};
pub use bus::{
    AlertOutcome, Bus, ConsumerStatus, DEFAULT_TIMEOUT, Delivered, HEADER_CLASSIFICATION,
    HEADER_SOURCE, HEADER_TRACEPARENT, HEADER_TYPE, PendingAck, PendingAlert, PlacementStatus,
    ReplicaStatus, SourceStatus, Start, Status, StoredEvent, StreamStatus,
};
pub use error::{Error, ErrorKind};
pub use holds::LegalHold;
pub use identity::Identity;
pub use options::{NatsOptions, NatsTls, redact};
pub use shared::SharedEntry;
pub use state::{CORRELATOR_STATUS, CorrelatorStatus, RULES_ACTIVE};
pub use tlog::{StoredMessage, StreamBounds, Verification};
pub use topology::{EVENTS_SUBJECT_PREFIX, Office, Storage, Topology, dedup_key};
