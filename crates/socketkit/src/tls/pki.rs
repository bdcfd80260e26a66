//! A private PKI for mutual TLS (`socketkit pki init`): a CA, a server
//! certificate for the names and addresses clients use, and client
//! certificates, all signed by that CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::{create_private_dir, tls_error, write_private_file, Fingerprint};
use crate::error::{Error, ErrorKind, Result};

/// One certificate written by [`init`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// What it is for: `ca`, `server`, or the client's name.
    pub name: String,
    /// The certificate file.
    pub cert: PathBuf,
    /// Its private key (mode 0600).
    pub key: PathBuf,
    /// The certificate's fingerprint.
    pub fingerprint: Fingerprint,
}

/// Creates, in `dir` (made mode 0700; it must not already hold a CA):
/// `ca.pem` + `ca-key.pem`, `server.pem` + `server-key.pem` valid for
/// `server_names` (DNS names or IP addresses), and `NAME.pem` +
/// `NAME-key.pem` for each client name. Keys are written mode 0600.
pub fn init(dir: &Path, server_names: &[String], clients: &[String]) -> Result<Vec<Issued>> {
    if dir.join("ca.pem").exists() {
        return Err(Error::new(
            ErrorKind::Tls,
            format!(
                "{} already holds a CA (ca.pem); not overwriting it",
                dir.display()
            ),
        ));
    }
    for client in clients {
        let valid = !client.is_empty()
            && !matches!(client.as_str(), "ca" | "server")
            && client
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid || client.starts_with('.') {
            return Err(Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid client name '{client}': use letters, digits, '-', '_', '.'"),
            ));
        }
    }
    create_private_dir(dir)?;
    let ca_key = KeyPair::generate().map_err(|e| tls_error("cannot generate a key", e))?;
    let ca = ca_params()
        .self_signed(&ca_key)
        .map_err(|e| tls_error("cannot make the CA", e))?;
    let mut issued = vec![save(dir, "ca", &ca, &ca_key)?];
    let server = leaf_params(
        "socketkit server",
        server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    issued.push(sign(dir, "server", server, &ca, &ca_key)?);
    for client in clients {
        let params = leaf_params(client, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        issued.push(sign(dir, client, params, &ca, &ca_key)?);
    }
    Ok(issued)
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "socketkit private CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(
    common_name: &str,
    names: &[String],
    purpose: ExtendedKeyUsagePurpose,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(names.to_vec())
        .map_err(|e| tls_error("invalid certificate name", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![purpose];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

fn sign(
    dir: &Path,
    name: &str,
    params: CertificateParams,
    ca: &Certificate,
    ca_key: &KeyPair,
) -> Result<Issued> {
    let key = KeyPair::generate().map_err(|e| tls_error("cannot generate a key", e))?;
    let cert = params
        .signed_by(&key, ca, ca_key)
        .map_err(|e| tls_error(format!("cannot sign the {name} certificate"), e))?;
    save(dir, name, &cert, &key)
}

fn save(dir: &Path, name: &str, cert: &Certificate, key: &KeyPair) -> Result<Issued> {
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    write_private_file(&key_path, key.serialize_pem().as_bytes())?;
    write_private_file(&cert_path, cert.pem().as_bytes())?;
    Ok(Issued {
        name: name.to_owned(),
        cert: cert_path,
        key: key_path,
        fingerprint: Fingerprint::of(cert.der()),
    })
}
