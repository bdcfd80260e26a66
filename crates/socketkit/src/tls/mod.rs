//! TLS: certificates and keys, fingerprints, and the rustls configurations
//! for servers and clients.
//!
//! This module turns files and choices (a PEM pair, a self-signed identity
//! kept in the config directory, a CA to trust, a pinned fingerprint) into
//! `rustls` configurations. The handshakes themselves happen in
//! [`transport`](crate::transport) (client) and [`server`](crate::server)
//! (server, inside each connection's task, under a deadline). rustls with
//! the ring provider; no OpenSSL.

pub mod pki;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(
    context: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::with_source(ErrorKind::Tls, context, source)
}

fn file_error(what: &str, path: &Path, source: io::Error) -> Error {
    Error::with_source(
        ErrorKind::Tls,
        format!("cannot read {what} {}", path.display()),
        source,
    )
}

/// The SHA-256 of a certificate's DER encoding, written `sha256:` and 64 hex
/// digits (colons between byte pairs are accepted when parsing).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(certificate: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(certificate).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    fn from_str(text: &str) -> Result<Fingerprint> {
        let invalid = || {
            Error::new(
                ErrorKind::InvalidAddress,
                format!("invalid fingerprint '{text}': expected sha256: and 64 hex digits"),
            )
        };
        let hex: String = text
            .strip_prefix("sha256:")
            .ok_or_else(invalid)?
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if hex.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Fingerprint(bytes))
    }
}

/// A certificate chain and its private key: what a server (or a client,
/// for mutual TLS) presents.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity> {
        let chain = load_certificates(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            tls_error(
                format!("cannot load a private key from {}", key.display()),
                e,
            )
        })?;
        Ok(Identity { chain, key })
    }

    /// A self-signed identity for `names` (DNS names or IP addresses), kept
    /// in `dir` as `cert.pem` and `key.pem` (mode 0600) so its fingerprint
    /// stays the same across restarts: made on first use, loaded after.
    pub fn self_signed(dir: &Path, names: &[String]) -> Result<Identity> {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if cert.exists() && key.exists() {
            return Identity::from_pem_files(&cert, &key);
        }
        let generated = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| tls_error("cannot generate a self-signed certificate", e))?;
        create_private_dir(dir)?;
        write_private_file(&key, generated.key_pair.serialize_pem().as_bytes())?;
        write_private_file(&cert, generated.cert.pem().as_bytes())?;
        Identity::from_pem_files(&cert, &key)
    }

    /// The fingerprint of the leaf certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.chain.first().map_or(&[][..], |c| c.as_ref()))
    }
}

/// Reads every certificate in a PEM file; an empty file is an error.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            tls_error(
                format!("cannot load certificates from {}", path.display()),
                e,
            )
        })?;
    if certificates.is_empty() {
        return Err(Error::new(
            ErrorKind::Tls,
            format!("no certificate found in {}", path.display()),
        ));
    }
    Ok(certificates)
}

fn root_store(ca_file: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(ca_file)? {
        roots
            .add(certificate)
            .map_err(|e| tls_error(format!("bad CA certificate in {}", ca_file.display()), e))?;
    }
    Ok(roots)
}

/// Creates `dir` (and parents) readable by its owner only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| file_error("directory", dir, e))
}

/// Writes a new file with mode 0600 from the start (never world-readable,
/// not even for a moment).
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents))
        .map_err(|e| file_error("file", path, e))
}

/// Where `--self-signed` keeps its identity: `$XDG_CONFIG_HOME/socketkit/tls`
/// or `~/.config/socketkit/tls`.
pub fn default_self_signed_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("socketkit").join("tls"))
}

/// Fingerprints of servers seen before, for trust on first use (ssh's
/// `known_hosts`): one `ENDPOINT sha256:HEX` line per server.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
}

impl KnownHosts {
    /// The file at `path` (it need not exist yet).
    pub fn new(path: PathBuf) -> KnownHosts {
        KnownHosts { path }
    }

    /// `$XDG_CONFIG_HOME/socketkit/known_hosts` or
    /// `~/.config/socketkit/known_hosts`.
    pub fn default_path() -> Option<PathBuf> {
        default_self_signed_dir().and_then(|tls| tls.parent().map(|dir| dir.join("known_hosts")))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint recorded for `server`, if any.
    pub fn lookup(&self, server: &str) -> Result<Option<Fingerprint>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_error("known hosts file", &self.path, e)),
        };
        for line in text.lines() {
            if let Some((name, fingerprint)) = line.split_once(' ') {
                if name == server {
                    return fingerprint.trim().parse().map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Records `fingerprint` for `server` (the file and its directory are
    /// created private to the user).
    pub fn record(&self, server: &str, fingerprint: Fingerprint) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir)?;
        }
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .and_then(|mut file| writeln!(file, "{server} {fingerprint}"))
            .map_err(|e| file_error("known hosts file", &self.path, e))
    }
}

/// Which client certificates a server asks for.
#[derive(Debug, Clone, Default)]
pub enum ClientAuth {
    /// No client certificate (the default).
    #[default]
    None,
    /// Mutual TLS: a certificate issued by a CA in this PEM file is
    /// required; anything else fails the handshake.
    Required(PathBuf),
}

/// A server's TLS setup: its rustls configuration and the fingerprint to
/// announce.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    fingerprint: Fingerprint,
}

impl ServerTls {
    /// Builds the server configuration: TLS 1.2 and 1.3, or 1.3 only when
    /// `tls13_only` (remote exec).
    pub fn new(
        identity: Identity,
        client_auth: &ClientAuth,
        tls13_only: bool,
    ) -> Result<ServerTls> {
        let fingerprint = identity.fingerprint();
        let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
            &[&rustls::version::TLS13]
        } else {
            rustls::ALL_VERSIONS
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| tls_error("cannot configure TLS", e))?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Required(ca_file) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(root_store(ca_file)?),
                    provider(),
                )
                .build()
                .map_err(|e| tls_error("cannot configure client certificate checks", e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(identity.chain, identity.key)
            .map_err(|e| tls_error("the certificate and key do not form a usable identity", e))?;
        Ok(ServerTls {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// The fingerprint of the certificate the server presents.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

/// How a client decides to trust a server.
#[derive(Debug, Clone, Default)]
pub enum Verification {
    /// The system's trusted roots (the default).
    #[default]
    SystemRoots,
    /// Only CAs from this PEM file.
    CaFile(PathBuf),
    /// Exactly the certificate with this fingerprint, whoever issued it and
    /// whatever names it carries (for self-signed servers).
    Pin(Fingerprint),
    /// Anything (encryption without authentication): never the default.
    Insecure,
}

/// A client's TLS setup.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// Builds the client configuration; `identity` is presented for mutual
    /// TLS.
    pub fn new(verification: &Verification, identity: Option<Identity>) -> Result<ClientTls> {
        let verifier: Arc<dyn ServerCertVerifier> = match verification {
            Verification::SystemRoots => webpki_verifier(system_roots()?)?,
            Verification::CaFile(path) => webpki_verifier(root_store(path)?)?,
            Verification::Pin(fingerprint) => Arc::new(FixedVerifier::pinned(*fingerprint)),
            Verification::Insecure => Arc::new(FixedVerifier::any()),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("cannot configure TLS", e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(identity.chain, identity.key)
                .map_err(|e| {
                    tls_error(
                        "the client certificate and key do not form a usable identity",
                        e,
                    )
                })?,
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(Error::new(
            ErrorKind::Tls,
            "no trusted root certificates found on this system",
        ));
    }
    Ok(roots)
}

fn webpki_verifier(roots: RootCertStore) -> Result<Arc<dyn ServerCertVerifier>> {
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| tls_error("cannot configure certificate verification", e))?;
    Ok(Arc::new(ReportingVerifier { inner }))
}

/// A rejected server certificate: why, and the fingerprint of the
/// certificate seen, so the user can compare it with what they expected
/// (or pin it).
#[derive(Debug)]
struct SeenCertificate {
    reason: String,
    seen: Fingerprint,
}

impl fmt::Display for SeenCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server certificate {} {}", self.seen, self.reason)
    }
}

impl std::error::Error for SeenCertificate {}

fn rejected(reason: String, certificate: &CertificateDer<'_>) -> rustls::Error {
    let seen = Fingerprint::of(certificate);
    let error = SeenCertificate { reason, seen };
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error))))
}

fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => "is not issued by a trusted CA".into(),
            CertificateError::BadSignature => {
                "is not issued by a trusted CA (its signature does not verify)".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "is not valid for this server name".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "is not valid yet".into()
            }
            CertificateError::Revoked => "is revoked".into(),
            other => format!("is invalid ({other:?})"),
        },
        other => format!("was rejected: {other}"),
    }
}

/// A handshake failure as one readable error: a rejected certificate is
/// described in words with the fingerprint seen; anything else keeps
/// rustls's message.
pub(crate) fn handshake_error(context: String, error: io::Error) -> Error {
    let seen = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                other.0.downcast_ref::<SeenCertificate>()
            }
            _ => None,
        });
    match seen {
        Some(seen) => Error::with_source(ErrorKind::Tls, context, seen.to_string()),
        None => Error::with_source(ErrorKind::Tls, context, error),
    }
}

/// The standard WebPKI verifier, adding the seen fingerprint to failures.
#[derive(Debug)]
struct ReportingVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ReportingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|cause| rejected(describe(&cause), end_entity))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Trusts one fingerprint (pinning) or any certificate (insecure). Either
/// way the handshake signatures are still checked, so the server must hold
/// the key of the certificate it shows.
#[derive(Debug)]
struct FixedVerifier {
    pin: Option<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl FixedVerifier {
    fn pinned(fingerprint: Fingerprint) -> FixedVerifier {
        FixedVerifier {
            pin: Some(fingerprint),
            algorithms: provider().signature_verification_algorithms,
        }
    }

    fn any() -> FixedVerifier {
        FixedVerifier {
            pin: None,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for FixedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            Some(expected) if Fingerprint::of(end_entity) != expected => Err(rejected(
                format!("does not match the pinned {expected}"),
                end_entity,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_with_or_without_colons() {
        let fingerprint = Fingerprint::of(b"certificate");
        let text = fingerprint.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fingerprint);
        let hex = &text[7..];
        let colons: Vec<&str> = (0..32).map(|i| &hex[i * 2..i * 2 + 2]).collect();
        let with_colons = format!("sha256:{}", colons.join(":").to_uppercase());
        assert_eq!(with_colons.parse::<Fingerprint>().unwrap(), fingerprint);
        assert!("sha1:00".parse::<Fingerprint>().is_err());
        assert!("sha256:zz".parse::<Fingerprint>().is_err());
    }
}
