//! TLS for Shoal's own HTTP services: the server's API and worker RPC listener, and every client
//! of them — the CLI and console, workers, the server's SSH console (in-process), and later the
//! servers of a group talking to each other.
//!
//! Owns:
//! - [`ServerTls`]: the server's certificate chain and key, read from PEM files with errors that
//!   name the flag, the file and what is wrong, as a rustls acceptor;
//! - [`ClientTls`]: whom a client trusts (the system's roots, a CA bundle, or exactly one pinned
//!   certificate) and [`ClientTls::http_client`], the one place a reqwest client for a Shoal
//!   server is built;
//! - telling a TLS connection from plain HTTP by its first byte ([`starts_tls`]), and the
//!   refusal both ways: [`HTTPS_REQUIRED_HEADER`] on the server's plain-HTTP answer, and
//!   [`TlsFailure`] naming what a client's failed handshake means.
//!
//! Must never log or show key material, and must know nothing of jobs, workers or the CLI: its
//! callers name their own flags.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// The first byte of every TLS connection: a record of content type "handshake" (the
/// ClientHello). A plain HTTP request starts with a method's first letter instead.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Set on the server's answer to a plain-HTTP request on its TLS port, holding the URL to use
/// (`https://HOST:PORT`), so that clients can say so without parsing the body.
pub const HTTPS_REQUIRED_HEADER: &str = "x-shoal-https-required";

/// Whether a connection whose first byte is `first` speaks TLS.
pub fn starts_tls(first: u8) -> bool {
    first == TLS_HANDSHAKE_RECORD
}

/// The crypto Shoal uses everywhere (the one reqwest is built with), named explicitly so that no
/// process-wide default has to be installed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Where the server's certificate and key are (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both or neither: one without the other is a mistake named with the missing flag.
    pub fn from_flags(cert: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<Option<Self>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(cert), None) => bail!(
                "--tls-cert {} is given without --tls-key: give the certificate's private key \
                 (PEM) too, or neither to serve plain HTTP",
                cert.display()
            ),
            (None, Some(key)) => bail!(
                "--tls-key {} is given without --tls-cert: give the certificate chain (PEM) too, \
                 or neither to serve plain HTTP",
                key.display()
            ),
        }
    }
}

/// The server's TLS: its acceptor, and its own certificate for in-process clients to pin.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    leaf: CertificateDer<'static>,
    cert_file: PathBuf,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads and checks both files; every error names the flag, the file and what is wrong.
    pub fn load(files: &TlsFiles) -> anyhow::Result<ServerTls> {
        let chain = read_certificates("--tls-cert", &files.cert)?;
        let key = read_private_key("--tls-key", &files.key)?;
        let leaf = chain[0].clone();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("the TLS library offers no protocol version")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| match error {
                rustls::Error::InconsistentKeys(_) => anyhow!(
                    "--tls-key {} is not the private key of the certificate in --tls-cert {}: \
                     give the key the certificate was issued for",
                    files.key.display(),
                    files.cert.display()
                ),
                other => anyhow!(
                    "--tls-key {} cannot be used with --tls-cert {}: {other}",
                    files.key.display(),
                    files.cert.display()
                ),
            })?;
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            leaf,
            cert_file: files.cert.clone(),
        })
    }

    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }

    /// The trust of the server's in-process clients (its SSH console, `shoal up`'s workers):
    /// exactly its own certificate, whatever names it carries, since they reach it by a loopback
    /// address its certificate need not name.
    pub fn own_certificate(&self) -> ClientTls {
        ClientTls {
            trust: Trust::Pinned(self.leaf.clone()),
        }
    }

    /// The file the certificate was read from (a child process pins it from there).
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }
}

/// Whom a client of a Shoal server trusts.
#[derive(Debug, Clone, Default)]
enum Trust {
    /// The operating system's roots (a certificate from a public CA); plain http:// allowed.
    #[default]
    System,
    /// Only these CA certificates, and HTTPS only.
    Ca(Arc<Vec<CertificateDer<'static>>>),
    /// Only this exact certificate, whatever its names, and HTTPS only.
    Pinned(CertificateDer<'static>),
}

/// The TLS settings of a client of a Shoal server.
///
/// With a CA bundle (`--ca`) the client trusts that CA *instead of* the system's roots and talks
/// HTTPS only. Instead, because the address a worker connects to comes from unauthenticated
/// gossip: with the public roots added, a rogue member could announce a host name of its own
/// that carries a valid public certificate and pass. A cluster's CA is private, so trusting it
/// alone is what makes the certificate prove "a server of this cluster". Without `--ca` the
/// system's roots serve a server with a public certificate, and plain http:// stays allowed.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    trust: Trust,
}

impl ClientTls {
    /// The system's roots; http:// allowed.
    pub fn system() -> ClientTls {
        ClientTls::default()
    }

    /// Trust only the CA certificates of `path` (a PEM bundle); `flag` names the setting in
    /// errors.
    pub fn ca_file(flag: &str, path: &Path) -> anyhow::Result<ClientTls> {
        Ok(ClientTls {
            trust: Trust::Ca(Arc::new(read_certificates(flag, path)?)),
        })
    }

    /// Trust exactly the first certificate of `path` (the server's own certificate file).
    pub fn pinned_file(flag: &str, path: &Path) -> anyhow::Result<ClientTls> {
        let mut chain = read_certificates(flag, path)?;
        Ok(ClientTls {
            trust: Trust::Pinned(chain.swap_remove(0)),
        })
    }

    /// Whether this client talks HTTPS only (it was given a CA or a pinned certificate): it
    /// refuses http:// URLs rather than send a token in clear.
    pub fn https_only(&self) -> bool {
        !matches!(self.trust, Trust::System)
    }

    /// The one place a reqwest client for a Shoal server is built: the trust configured, HTTP/1
    /// (what the server speaks), `connect_timeout` set; callers add what is theirs (timeouts,
    /// pool settings) to the builder before `build`.
    pub fn http_client(&self, connect_timeout: Duration) -> anyhow::Result<reqwest::ClientBuilder> {
        let builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .https_only(self.https_only());
        Ok(match &self.trust {
            Trust::System => builder,
            Trust::Ca(certs) => {
                let certs = certs
                    .iter()
                    .map(|der| reqwest::Certificate::from_der(der))
                    .collect::<Result<Vec<_>, _>>()
                    .context("a CA certificate cannot be used")?;
                builder.tls_certs_only(certs)
            }
            Trust::Pinned(cert) => {
                let verifier = PinnedCertificate {
                    cert: cert.clone(),
                    algorithms: provider().signature_verification_algorithms,
                };
                let config = rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .context("the TLS library offers no protocol version")?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth();
                builder.tls_backend_preconfigured(config)
            }
        })
    }

    /// Refuses `url` when this client talks HTTPS only and `url` is plain http://, saying why.
    pub fn check_scheme(&self, url: &url::Url) -> Result<(), String> {
        if self.https_only() && url.scheme() != "https" {
            return Err(format!(
                "{} is plain http://, and this client trusts only servers that prove themselves \
                 over TLS (it was given a CA): use https://, so that no token travels in clear",
                url.as_str().trim_end_matches('/')
            ));
        }
        Ok(())
    }
}

/// Accepts exactly one certificate: an in-process client of the server's own API. The
/// handshake's signatures are still checked against that certificate's key, so only the holder
/// of the server's private key passes.
#[derive(Debug)]
struct PinnedCertificate {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a call to a Shoal server failed in TLS, in terms an operator acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The URL said https://, and the server answered in plain HTTP.
    PlainHttpAnswer,
    /// The server's certificate was not accepted; rustls's reason.
    UntrustedCertificate(String),
    /// Any other failed handshake; rustls's reason.
    Handshake(String),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::PlainHttpAnswer => f.write_str(
                "the server answered in plain HTTP: use http:// for it, or enable TLS on the \
                 server (--tls-cert and --tls-key)",
            ),
            TlsFailure::UntrustedCertificate(reason) => write!(
                f,
                "the server's certificate is not trusted ({reason}): give the CA that signed it \
                 with --ca FILE (SHOAL_CA)"
            ),
            TlsFailure::Handshake(reason) => write!(f, "the TLS handshake failed: {reason}"),
        }
    }
}

impl TlsFailure {
    /// The TLS failure somewhere in `error`'s chain, if that is why it failed.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
        let mut link = Some(error);
        while let Some(current) = link {
            if let Some(tls) = rustls_error(current) {
                return Some(match tls {
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                        TlsFailure::PlainHttpAnswer
                    }
                    rustls::Error::InvalidCertificate(_) => {
                        TlsFailure::UntrustedCertificate(tls.to_string())
                    }
                    other => TlsFailure::Handshake(other.to_string()),
                });
            }
            link = current.source();
        }
        None
    }
}

/// The rustls error at `error` itself, or wrapped in `io::Error`s (two deep from hyper-rustls),
/// whose `source()` skips the wrapped error, so each wrapper is opened here.
pub fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut link = error;
    loop {
        if let Some(tls) = link.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = link.downcast_ref::<std::io::Error>()?.get_ref()?;
        link = inner;
    }
}

/// Every certificate of a PEM file, at least one; errors name `flag`, the file and the fault.
fn read_certificates(flag: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow!("{flag} {}: {}", path.display(), pem_fault(error)))?;
    if certs.is_empty() {
        let hint = if PrivateKeyDer::from_pem_slice(&bytes).is_ok() {
            " (it holds a private key, not a certificate)"
        } else {
            ""
        };
        bail!(
            "{flag} {}: no \"BEGIN CERTIFICATE\" block found; expected PEM certificates{hint}",
            path.display()
        );
    }
    Ok(certs)
}

/// The first private key of a PEM file; errors name `flag`, the file and the fault, never the key.
fn read_private_key(flag: &str, path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let bytes = read(flag, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
        pem::Error::NoItemsFound => {
            let hint = if CertificateDer::pem_slice_iter(&bytes).any(|c| c.is_ok()) {
                " (it holds a certificate, not a key)"
            } else {
                ""
            };
            anyhow!(
                "{flag} {}: no private key block found; expected a PEM key (PKCS#8, RSA or EC \
                 \"BEGIN … PRIVATE KEY\"){hint}",
                path.display()
            )
        }
        other => anyhow!("{flag} {}: {}", path.display(), pem_fault(other)),
    })
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|error| anyhow!("{flag} {}: cannot read it: {error}", path.display()))
}

/// What is wrong with a PEM text, without quoting it.
fn pem_fault(error: pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64",
        pem::Error::NoItemsFound => "no PEM block found",
        _ => "not valid PEM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_matching_certificate_and_key_load() {
        let pki = test_pki::TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: write(dir.path(), "cert.pem", &pki.server.cert_pem),
            key: write(dir.path(), "key.pem", &pki.server.key_pem),
        };
        let tls = ServerTls::load(&files).unwrap();
        assert!(tls.own_certificate().https_only());
        assert!(
            tls.own_certificate()
                .http_client(Duration::from_secs(1))
                .unwrap()
                .build()
                .is_ok()
        );
    }

    #[test]
    fn bad_files_are_named_with_their_flag_and_fault() {
        let pki = test_pki::TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let cert = write(dir.path(), "cert.pem", &pki.server.cert_pem);
        let key = write(dir.path(), "key.pem", &pki.server.key_pem);
        let other_key = write(dir.path(), "other.pem", &pki.client.key_pem);
        let garbage = write(dir.path(), "garbage.pem", "hello\n");
        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
        );
        let missing = dir.path().join("missing.pem");
        let load = |cert: &Path, key: &Path| {
            ServerTls::load(&TlsFiles {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
            .unwrap_err()
            .to_string()
        };
        let error = load(&missing, &key);
        assert!(
            error.starts_with("--tls-cert")
                && error.contains("missing.pem")
                && error.contains("cannot read"),
            "{error}"
        );
        let error = load(&garbage, &key);
        assert!(
            error.contains("--tls-cert") && error.contains("BEGIN CERTIFICATE"),
            "{error}"
        );
        let error = load(&key, &cert);
        assert!(
            error.contains("it holds a private key, not a certificate"),
            "{error}"
        );
        let error = load(&broken, &key);
        assert!(
            error.contains("broken.pem") && error.contains("END line"),
            "{error}"
        );
        let error = load(&cert, &garbage);
        assert!(
            error.starts_with("--tls-key") && error.contains("no private key"),
            "{error}"
        );
        let error = load(&cert, &other_key);
        assert!(
            error.contains("is not the private key of the certificate"),
            "{error}"
        );
        assert!(
            !error.contains("PRIVATE KEY-----"),
            "never quotes a key: {error}"
        );

        let error = ClientTls::ca_file("--ca", &garbage)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--ca") && error.contains("garbage.pem"),
            "{error}"
        );
    }

    #[test]
    fn both_files_or_neither() {
        assert_eq!(TlsFiles::from_flags(None, None).unwrap(), None);
        let error = TlsFiles::from_flags(Some("c.pem".into()), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("without --tls-key"), "{error}");
        let error = TlsFiles::from_flags(None, Some("k.pem".into()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("without --tls-cert"), "{error}");
    }

    #[test]
    fn a_client_with_a_ca_refuses_plain_http() {
        let pki = test_pki::TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let ca = ClientTls::ca_file("--ca", &write(dir.path(), "ca.pem", &pki.ca_pem)).unwrap();
        let plain = url::Url::parse("http://127.0.0.1:7070").unwrap();
        let secure = url::Url::parse("https://127.0.0.1:7070").unwrap();
        assert!(
            ca.check_scheme(&plain)
                .unwrap_err()
                .contains("use https://")
        );
        assert!(ca.check_scheme(&secure).is_ok());
        assert!(ClientTls::system().check_scheme(&plain).is_ok());
    }

    #[test]
    fn the_first_byte_tells_tls_from_http() {
        assert!(starts_tls(0x16));
        for method in [b'G', b'P', b'D', b'H', b'O'] {
            assert!(!starts_tls(method));
        }
    }
}
