//! The console's one error type.

/// Errors of the console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be served.
    #[error("console configuration: {0}")]
    Config(String),
    /// A password could not be hashed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The system gave no randomness.
    #[error(transparent)]
    Random(#[from] timpora_client::Error),
    /// Serving failed.
    #[error("console server: {0}")]
    Serve(#[from] std::io::Error),
}
