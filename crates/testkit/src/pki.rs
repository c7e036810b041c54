//! Development PKI: a local CA, a server certificate and one client certificate per agency
//! identity, generated at run time (nothing secret is kept in the repository). Production
//! certificates come from the agencies' own PKI; this is for `timpora dev init`, `timpora up`,
//! the test sandboxes and the benchmarks.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use anyhow::Result;

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PEM).
    pub key_pem: String,
}

/// A certificate authority able to issue server and client certificates.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

fn pki_err(e: rcgen::Error) -> anyhow::Error {
    anyhow::anyhow!("certificate generation: {e}")
}

impl DevCa {
    /// Generate a new CA named `name`.
    pub fn generate(name: &str) -> Result<Self> {
        let key = KeyPair::generate().map_err(pki_err)?;
        let key_pem = key.serialize_pem();
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, key).map_err(pki_err)?;
        let cert_pem = ca.pem();
        Self::load(&cert_pem, &key_pem)
    }

    /// Load a CA from its PEM certificate and key.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(pki_err)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(pki_err)?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A server certificate for these host names / IP addresses.
    pub fn server(&self, hosts: &[&str]) -> Result<Issued> {
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(pki_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "timpora hub");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate whose common name is the identity `agency/unit`.
    pub fn client(&self, identity: &str) -> Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        params.distinguished_name.push(DnType::CommonName, identity);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Result<Issued> {
        let key = KeyPair::generate().map_err(pki_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(pki_err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_carry_the_identity() {
        let ca = DevCa::generate("test ca").unwrap();
        let issued = ca.client("imigrasi/kanim-kendari").unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let id = timpora_gateway::identity::identity_from_cert(&pem.contents).unwrap();
        assert_eq!(id.source(), "imigrasi/kanim-kendari");
        let reloaded = DevCa::load(ca.cert_pem(), ca.key_pem()).unwrap();
        assert!(reloaded.server(&["localhost", "127.0.0.1"]).is_ok());
    }
}
