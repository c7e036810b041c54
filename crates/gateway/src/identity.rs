//! Who is calling: the agency and unit, from the client certificate (mutual TLS) or, in
//! development, from a bearer token in the config. Every call without one is `UNAUTHENTICATED`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use crate::error::Error;

/// An authenticated caller: `agency/unit`, e.g. `imigrasi/kanim-kendari`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Agency code, e.g. `imigrasi`.
    pub agency: String,
    /// Unit within the agency, e.g. `kanim-kendari`, `TPI-CGK`, `74.02.05.2001`.
    pub unit: String,
}

impl Identity {
    /// Parse `agency/unit`.
    pub fn parse(s: &str) -> Option<Self> {
        let (agency, unit) = s.split_once('/')?;
        let agency_ok = !agency.is_empty()
            && agency.len() <= 32
            && agency
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let unit_ok = !unit.is_empty()
            && unit.len() <= 64
            && unit
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        (agency_ok && unit_ok).then(|| Self {
            agency: agency.to_owned(),
            unit: unit.to_owned(),
        })
    }

    /// The CloudEvents source, `agency/unit`.
    pub fn source(&self) -> String {
        format!("{}/{}", self.agency, self.unit)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.agency, self.unit)
    }
}

/// A development bearer token and the identity it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The secret, sent as `authorization: Bearer <token>`.
    pub token: String,
    /// `agency/unit`.
    pub identity: String,
}

/// Identifies callers; installed as a tonic interceptor on every agency-facing service.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    /// SHA-256 of each token → identity (looked up by digest, so comparison time says nothing
    /// about the secret).
    tokens: Arc<HashMap<[u8; 32], Identity>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Authenticator {
    /// Build from the configured development tokens.
    pub fn new(tokens: &[TokenConfig]) -> Result<Self, Error> {
        let mut map = HashMap::new();
        for t in tokens {
            let id = Identity::parse(&t.identity).ok_or_else(|| {
                Error::Config(format!(
                    "token identity {:?} is not agency/unit",
                    t.identity
                ))
            })?;
            if t.token.len() < 16 {
                return Err(Error::Config(format!(
                    "token for {id} is shorter than 16 characters"
                )));
            }
            map.insert(digest(&t.token), id);
        }
        Ok(Self {
            tokens: Arc::new(map),
        })
    }

    /// The caller's identity: its client certificate's common name, else its bearer token.
    pub fn identify<T>(&self, req: &Request<T>) -> Result<Identity, Status> {
        if let Some(certs) = req.peer_certs() {
            let leaf = certs
                .first()
                .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
            return identity_from_cert(leaf.as_ref());
        }
        if let Some(value) = req.metadata().get("authorization") {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
            return self
                .tokens
                .get(&digest(token.trim()))
                .cloned()
                .ok_or_else(|| Status::unauthenticated("unknown token"));
        }
        Err(Status::unauthenticated(
            "no client certificate and no bearer token",
        ))
    }
}

/// The identity in a certificate's subject common name (`agency/unit`).
pub fn identity_from_cert(der: &[u8]) -> Result<Identity, Status> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| Status::unauthenticated("client certificate cannot be parsed"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| Status::unauthenticated("client certificate has no common name"))?;
    Identity::parse(cn).ok_or_else(|| {
        Status::unauthenticated(format!(
            "client certificate common name {cn:?} is not agency/unit"
        ))
    })
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let id = self.identify(&req)?;
        req.extensions_mut().insert(id);
        Ok(req)
    }
}

/// The identity the interceptor attached to a request.
pub fn caller<T>(req: &Request<T>) -> Result<Identity, Status> {
    req.extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no identity"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_strictly() {
        let id = Identity::parse("imigrasi/kanim-kendari").unwrap();
        assert_eq!(id.source(), "imigrasi/kanim-kendari");
        assert!(Identity::parse("desa/74.02.05.2001").is_some());
        assert!(Identity::parse("imigrasi").is_none());
        assert!(Identity::parse("Imigrasi/x").is_none());
        assert!(Identity::parse("imigrasi/a b").is_none());
    }

    #[test]
    fn tokens_authenticate_and_unknown_ones_do_not() {
        let auth = Authenticator::new(&[TokenConfig {
            token: "dev-token-0123456789".into(),
            identity: "polri/polda-sultra".into(),
        }])
        .unwrap();
        let mut req = Request::new(());
        req.metadata_mut().insert(
            "authorization",
            "Bearer dev-token-0123456789".parse().unwrap(),
        );
        assert_eq!(auth.identify(&req).unwrap().agency, "polri");
        let mut bad = Request::new(());
        bad.metadata_mut().insert(
            "authorization",
            "Bearer nope-nope-nope-nope".parse().unwrap(),
        );
        assert_eq!(
            auth.identify(&bad).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            auth.identify(&Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
