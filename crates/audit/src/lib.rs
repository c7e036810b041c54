//! What an auditor checks alone, trusting nobody: a policy file (each log's verifier key, the
//! witnesses trusted and how many must have cosigned), verification of a stream against its
//! signed, witnessed log — every leaf recomputed from the messages as stored, the first altered,
//! removed or inserted one named by sequence — and proof files for single records that are
//! checked with no network at all; and why an alert was raised, replayed into a scratch engine
//! with the rule set of its version.

mod error;
mod explain;
mod policy;
mod proof;
mod record;
mod verify;

pub use error::Error;
pub use explain::{Condition, Contribution, Explanation, Later, explain};
pub use policy::AuditPolicy;
pub use proof::{PROOF_FORMAT, Proven, Record, prove, verify_proof};
pub use record::{cloudevent_json, record_from_json, record_json, stored_message, stored_record};
pub use verify::{Finding, Records, Report, verify_log, verify_offline, verify_replay};
