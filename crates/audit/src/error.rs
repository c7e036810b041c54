//! The audit's errors.

/// Errors of the audit: reaching what is checked, not what the check found (that is a finding
/// in the report).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] timpora_bus::Error),
    /// A key, checkpoint or proof does not parse or verify.
    #[error(transparent)]
    Log(#[from] timpora_tlog::Error),
    /// The policy file is not usable.
    #[error("audit policy: {0}")]
    Policy(String),
    /// A proof cannot be made or does not hold.
    #[error("{0}")]
    Proof(String),
}
