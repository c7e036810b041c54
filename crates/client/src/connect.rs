//! A channel to the gateway, authenticated as one agency identity.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::dev;
use crate::error::Error;

/// Where the gateway is and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://host:port` (TLS) or `http://host:port` (development tokens only).
    pub url: String,
    /// CA that issued the gateway's certificate (PEM); the system's roots when absent.
    pub ca: Option<PathBuf>,
    /// Name the gateway's certificate must carry.
    pub domain: String,
}

impl Target {
    /// The gateway at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca: None,
            domain: "localhost".into(),
        }
    }

    /// A gateway listening on `listen`, speaking TLS or not.
    pub fn listening(listen: SocketAddr, tls: bool) -> Self {
        Self::new(format!("{}://{listen}", if tls { "https" } else { "http" }))
    }

    /// Whether the connection uses TLS.
    pub fn tls(&self) -> bool {
        self.url.starts_with("https://")
    }

    /// Trust the development CA of `data_dir` when no CA is set and it has one.
    pub fn or_dev_ca(mut self, data_dir: &Path) -> Self {
        if self.ca.is_none() {
            let ca = dev::ca_path(data_dir);
            self.ca = ca.exists().then_some(ca);
        }
        self
    }
}

/// How a caller proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing (the gateway answers `UNAUTHENTICATED` to anything but health and reflection).
    Anonymous,
    /// `authorization: Bearer …` (development tokens).
    Token(String),
    /// A client certificate (mutual TLS): the identity is the certificate's common name.
    Certificate { cert: PathBuf, key: PathBuf },
}

/// The credentials of every identity a process may act as: certificates named in its config,
/// the development certificates of a data directory, development tokens.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    tls: bool,
    dev_dir: Option<PathBuf>,
    tokens: HashMap<String, String>,
    certs: HashMap<String, (PathBuf, PathBuf)>,
}

impl Keyring {
    /// An empty keyring for a gateway that speaks TLS (`tls`) or plaintext.
    pub fn new(tls: bool) -> Self {
        Self {
            tls,
            ..Self::default()
        }
    }

    /// Also use the development certificates of `data_dir`.
    pub fn with_dev_dir(mut self, data_dir: &Path) -> Self {
        self.dev_dir = Some(data_dir.to_path_buf());
        self
    }

    /// Act as `identity` with this bearer token.
    pub fn token(mut self, identity: &str, token: &str) -> Self {
        self.tokens.insert(identity.to_owned(), token.to_owned());
        self
    }

    /// Act as `identity` with this client certificate and key.
    pub fn certificate(mut self, identity: &str, cert: PathBuf, key: PathBuf) -> Self {
        self.certs.insert(identity.to_owned(), (cert, key));
        self
    }

    fn dev_cert(&self, identity: &str) -> Option<(PathBuf, PathBuf)> {
        let (cert, key) = dev::client_paths(self.dev_dir.as_deref()?, identity);
        cert.exists().then_some((cert, key))
    }

    /// Whether the keyring can act as `identity`.
    pub fn knows(&self, identity: &str) -> bool {
        self.certs.contains_key(identity)
            || self.tokens.contains_key(identity)
            || self.dev_cert(identity).is_some()
    }

    /// How to act as `identity`: a configured certificate, else (over TLS) its development
    /// certificate, else its token.
    pub fn credentials(&self, identity: &str) -> Result<Credentials, Error> {
        let cert = self
            .certs
            .get(identity)
            .cloned()
            .or_else(|| self.tls.then(|| self.dev_cert(identity)).flatten());
        if let Some((cert, key)) = cert {
            return Ok(Credentials::Certificate { cert, key });
        }
        if let Some(t) = self.tokens.get(identity) {
            return Ok(Credentials::Token(t.clone()));
        }
        Err(Error::NoCredentials {
            identity: identity.to_owned(),
            hint: match &self.dev_dir {
                Some(d) => format!(
                    "{} has none for it; run `timpora dev init` or name a certificate",
                    d.display()
                ),
                None => "configure a client certificate for it".into(),
            },
        })
    }
}

/// Adds the bearer token, when there is one, to every call.
#[derive(Clone)]
pub struct Auth(pub Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// An authenticated channel to the gateway.
pub type Conn = InterceptedService<Channel, Auth>;

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Connect to the gateway at `target` with `credentials`.
pub async fn connect(target: &Target, credentials: &Credentials) -> Result<Conn, Error> {
    let mut endpoint = Channel::from_shared(target.url.clone())
        .map_err(|_| Error::Url(target.url.clone()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .initial_stream_window_size(timpora_proto::H2_STREAM_WINDOW)
        .initial_connection_window_size(timpora_proto::H2_CONNECTION_WINDOW);
    if target.tls() {
        let mut tls = ClientTlsConfig::new().domain_name(&target.domain);
        if let Some(ca) = &target.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let Credentials::Certificate { cert, key } = credentials {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint = endpoint.tls_config(tls).map_err(Error::Tls)?;
    }
    let channel = endpoint.connect().await.map_err(|source| Error::Connect {
        url: target.url.clone(),
        source,
    })?;
    let header = match credentials {
        Credentials::Token(t) => Some(format!("Bearer {t}").parse().map_err(|_| Error::Token)?),
        _ => None,
    };
    Ok(InterceptedService::new(channel, Auth(header)))
}
