//! The gateway's one error type, and how it reaches a caller: a gRPC status (field violations
//! as `google.rpc.BadRequest`), or the rejection of one event of a stream.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, LocalizedMessage, StatusExt};

use timpora_bus::ErrorKind;
use timpora_proto::v1;

use crate::validate::Violations;

/// Errors of the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// One or more fields are wrong.
    #[error("{}", .0.summary())]
    Invalid(Violations),
    /// The caller publishes faster than its limit allows; it may try again after this long.
    #[error("publishing too fast; try again in {} ms", .0.as_millis().max(1))]
    RateLimited(std::time::Duration),
    /// The gateway cannot take this now (it is still starting); nothing was acknowledged, and
    /// the same call may be tried again.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The bus failed; nothing was acknowledged.
    #[error(transparent)]
    Bus(#[from] timpora_bus::Error),
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Serving failed.
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::PermissionDenied(m) => Status::permission_denied(m),
            Error::Invalid(vs) => {
                let violations: Vec<FieldViolation> = vs
                    .iter()
                    .map(|(f, d)| FieldViolation {
                        localized_message: crate::wording::indonesian(d)
                            .map(|m| LocalizedMessage::new(crate::wording::LOCALE, m)),
                        ..FieldViolation::new(f.clone(), d.clone())
                    })
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    vs.summary(),
                    ErrorDetails::with_bad_request(violations),
                )
            }
            Error::RateLimited(wait) => Status::with_error_details(
                Code::ResourceExhausted,
                format!(
                    "publishing too fast; try again in {} ms",
                    wait.as_millis().max(1)
                ),
                ErrorDetails::with_retry_info(Some(wait)),
            ),
            Error::Unavailable(m) => Status::unavailable(m),
            Error::Bus(e) => match e.kind() {
                // Worth retrying with the same id: nothing was acknowledged.
                ErrorKind::Unavailable => Status::unavailable(e.to_string()),
                // The hub is misconfigured (a stream is missing): retrying will not help.
                ErrorKind::Missing => Status::failed_precondition(e.to_string()),
                _ => Status::internal(e.to_string()),
            },
            other => Status::internal(other.to_string()),
        }
    }
}

impl Error {
    /// `field` is missing.
    pub fn required(field: &str) -> Self {
        let mut vs = Violations::default();
        vs.add(field, "required");
        Error::Invalid(vs)
    }
}

/// Convert an [`Error`] into the rejection of one event of a stream.
pub fn rejection(e: Error) -> v1::PublishRejection {
    let field_violations = match &e {
        Error::Invalid(vs) => vs
            .iter()
            .map(|(f, d)| v1::FieldViolation {
                field: f.clone(),
                description: d.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let status = Status::from(e);
    v1::PublishRejection {
        code: format!("{:?}", status.code()),
        message: status.message().to_owned(),
        field_violations,
    }
}
