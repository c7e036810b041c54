//! Reaching a development console over HTTPS from tests: one request with the development CA
//! as the only trusted root, and the pin a headless browser is given so it trusts exactly the
//! console's key and nothing else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::PublicKeyData as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use timpora_client::dev::{ca_path, server_paths};

/// Send `request` (a whole HTTP/1.0 request) to the console on `port` over TLS, trusting only
/// the development CA in `data_dir`; the whole answer.
pub fn request(data_dir: &Path, port: u16, request: &str) -> anyhow::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_path(data_dir))? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost")?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // A server that refuses a large body answers and closes before reading it all: the write
    // may then fail, and the answer is still there to read.
    let written = tls.write_all(request.as_bytes()).and_then(|()| tls.flush());
    let mut answer = Vec::new();
    // HTTP/1.0: the server closes when done (a missing close_notify is no error here).
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) if answer.is_empty() => return Err(written.err().unwrap_or(e).into()),
        Err(_) => {}
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The base64 SHA-256 of the console key's SubjectPublicKeyInfo, for chromium's
/// `--ignore-certificate-errors-spki-list`: the browser then trusts that key alone.
pub fn spki_pin(data_dir: &Path) -> anyhow::Result<String> {
    let (_, key) = server_paths(data_dir);
    let pem = std::fs::read_to_string(&key).with_context(|| key.display().to_string())?;
    let spki = rcgen::KeyPair::from_pem(&pem)?.subject_public_key_info();
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki)))
}
