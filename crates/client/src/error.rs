//! The client's one error type.

use std::path::PathBuf;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A credentials file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The gateway URL does not parse.
    #[error("{0} is not a valid gateway URL")]
    Url(String),
    /// TLS settings were refused.
    #[error("gateway TLS settings: {0}")]
    Tls(#[source] tonic::transport::Error),
    /// The gateway could not be reached.
    #[error("cannot reach the gateway at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// Nothing says how to act as this identity.
    #[error("no certificate or token for {identity}: {hint}")]
    NoCredentials { identity: String, hint: String },
    /// The token cannot be sent as a header.
    #[error("the token is not a valid header value")]
    Token,
    /// A value is not valid proto3 JSON of the message it should be.
    #[error("{0}")]
    Json(String),
    /// The system gave no randomness.
    #[error("no randomness: {0}")]
    Random(getrandom::Error),
}

/// `bytes` random bytes as lowercase hex (tokens, session ids, passwords).
pub fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(Error::Random)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
