//! Per-job HTTP options that a pooled client cannot change per request — a CA bundle, a client
//! certificate and key (mTLS), skipping certificate verification, a proxy, a connect timeout —
//! and the response-body regex.
//!
//! Owns: the typed options stored with a job and sent to workers ([`ClientOptions`]), the one
//! function that turns them into a reqwest client ([`build_client`]: validation calls it, so a
//! definition that passes builds the same client on every worker), and the body-regex compiler
//! with its size limits ([`compile_body_regex`], also shared by validation and the worker).
//!
//! Must never show a private key: [`PrivateKeyPem`] prints `<redacted>` in `Debug`; its text is
//! serialized only into the store and into a worker's assignment (the worker RPC). The admin API
//! sends [`Job::redacted`] instead, where the key reads [`REDACTED`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Job;

/// Connect timeout of a job that sets none (the shared client's).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest CA bundle a job may carry (the whole Mozilla bundle is about 220 KiB).
pub const MAX_CA_PEM: usize = 256 * 1024;
/// Largest client certificate chain.
pub const MAX_CERT_PEM: usize = 64 * 1024;
/// Largest client private key.
pub const MAX_KEY_PEM: usize = 16 * 1024;
/// Longest body regex, as written.
pub const MAX_BODY_REGEX_LEN: usize = 1024;
/// Most memory one compiled body regex may take: `\w{1000}` (Unicode classes repeated) is far
/// over it, so such a pattern is refused when the job is defined, not on every worker.
pub const BODY_REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Most memory the lazy DFA of one body regex may cache while matching.
const BODY_REGEX_DFA_LIMIT: usize = 1024 * 1024;

/// What the API shows in place of a stored private key. Sent back unchanged in an update, it
/// keeps the stored key.
pub const REDACTED: &str = "<redacted>";

/// The options of a job's own HTTP client. All unset (the default) means the worker's shared
/// pooled client runs the job; any set means a client built for them (cached per options).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientOptions {
    /// Time to establish the connection (TCP and TLS handshake), within the job's whole timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Every request of the job goes through this proxy (`http://` or `https://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsOptions>,
}

impl ClientOptions {
    /// Whether the shared pooled client can run the job.
    pub fn is_default(&self) -> bool {
        self.connect_timeout_ms.is_none() && self.proxy.is_none() && self.tls.is_none()
    }

    /// Whether certificate verification is switched off.
    pub fn insecure(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.insecure)
    }
}

/// TLS settings of one job. The PEM texts travel with the job, because the worker that runs it
/// is on another machine than the one where the job was defined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TlsOptions {
    /// Trust only these CA certificates (like curl's `--cacert`), instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The client certificate chain presented to servers that ask for one (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<PrivateKeyPem>,
    /// Skip certificate verification entirely. Shown in red by the console.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// A PEM private key. Serialized as its text (store, worker RPC); never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    pub fn new(pem: String) -> PrivateKeyPem {
        PrivateKeyPem(pem)
    }

    /// The key itself: only for building a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether this is the API's placeholder rather than a key.
    pub fn is_redacted(&self) -> bool {
        self.0 == REDACTED
    }
}

impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

impl Job {
    /// Replaces a private key by [`REDACTED`]: the job as the admin API shows it.
    pub fn redact(&mut self) {
        if let Some(key) = self
            .def
            .http
            .client
            .tls
            .as_mut()
            .and_then(|tls| tls.client_key_pem.as_mut())
        {
            *key = PrivateKeyPem(REDACTED.to_string());
        }
    }

    /// The job with its private key replaced by [`REDACTED`] (see [`Job::redact`]).
    pub fn redacted(mut self) -> Job {
        self.redact();
        self
    }
}

/// Which part of the options a client could not be built from, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// The job field to blame, e.g. `http.tls.ca_pem`.
    pub field: &'static str,
    pub reason: String,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The settings every client of a worker shares (the shared client is `build_client` of the
/// default options).
fn base_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .pool_max_idle_per_host(64)
        .user_agent(concat!("shoal/", env!("CARGO_PKG_VERSION")))
}

/// Builds the client a job with these options runs on.
pub fn build_client(options: &ClientOptions) -> Result<reqwest::Client, BuildError> {
    let mut builder = base_builder();
    if let Some(ms) = options.connect_timeout_ms {
        builder = builder.connect_timeout(Duration::from_millis(ms));
    }
    if let Some(proxy) = &options.proxy {
        let proxy = reqwest::Proxy::all(proxy).map_err(|error| BuildError {
            field: "http.proxy",
            reason: format!(
                "{proxy:?} is not a usable proxy URL: {}",
                root_cause(&error)
            ),
        })?;
        builder = builder.proxy(proxy);
    }
    if let Some(tls) = &options.tls {
        builder = with_tls(builder, tls)?;
    }
    builder.build().map_err(|error| blame(options, &error))
}

/// Which TLS field made the build fail: each part is built alone to find out.
fn blame(options: &ClientOptions, error: &reqwest::Error) -> BuildError {
    let reason = root_cause(error);
    let fails_alone = |part: TlsOptions| match with_tls(base_builder(), &part) {
        Ok(builder) => builder.build().is_err(),
        Err(_) => true,
    };
    if let Some(tls) = &options.tls {
        let identity = TlsOptions {
            client_cert_pem: tls.client_cert_pem.clone(),
            client_key_pem: tls.client_key_pem.clone(),
            ..TlsOptions::default()
        };
        if tls.client_key_pem.is_some() && fails_alone(identity) {
            return BuildError {
                field: "http.tls.client_key_pem",
                reason: format!(
                    "the key does not belong to the client certificate, or cannot be used: \
                     {reason}"
                ),
            };
        }
        let ca = TlsOptions {
            ca_pem: tls.ca_pem.clone(),
            ..TlsOptions::default()
        };
        if tls.ca_pem.is_some() && fails_alone(ca) {
            return BuildError {
                field: "http.tls.ca_pem",
                reason: format!("cannot be used as a CA bundle: {reason}"),
            };
        }
    }
    BuildError {
        field: "http.tls",
        reason: format!("cannot build the TLS client: {reason}"),
    }
}

fn with_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &TlsOptions,
) -> Result<reqwest::ClientBuilder, BuildError> {
    if let Some(ca) = &tls.ca_pem {
        let certs =
            reqwest::Certificate::from_pem_bundle(ca.as_bytes()).map_err(|error| BuildError {
                field: "http.tls.ca_pem",
                reason: format!("not a PEM certificate bundle: {}", root_cause(&error)),
            })?;
        builder = builder.tls_certs_only(certs);
    }
    match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            let mut pem = String::with_capacity(cert.len() + key.expose().len() + 1);
            pem.push_str(cert);
            pem.push('\n');
            pem.push_str(key.expose());
            let identity =
                reqwest::Identity::from_pem(pem.as_bytes()).map_err(|error| BuildError {
                    field: "http.tls.client_key_pem",
                    reason: format!(
                        "the client certificate and key do not form an identity: {}",
                        root_cause(&error)
                    ),
                })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(BuildError {
                field: "http.tls.client_cert_pem",
                reason: "a client certificate needs its private key (client_key_file or \
                         client_key_pem)"
                    .into(),
            });
        }
        (None, Some(_)) => {
            return Err(BuildError {
                field: "http.tls.client_key_pem",
                reason: "a client key needs its certificate (client_cert_file or \
                         client_cert_pem)"
                    .into(),
            });
        }
    }
    if tls.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// Compiles a body regex within the size limits (the same call on the server and the worker).
pub fn compile_body_regex(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.is_empty() || pattern.len() > MAX_BODY_REGEX_LEN {
        return Err(format!("must be 1–{MAX_BODY_REGEX_LEN} bytes"));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(BODY_REGEX_SIZE_LIMIT)
        .dfa_size_limit(BODY_REGEX_DFA_LIMIT)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(limit) => format!(
                "compiles to more than {} KiB; simplify it (large counted repetitions such as \
                 \\w{{1000}} are the usual cause)",
                limit / 1024
            ),
            other => format!("is not a valid regular expression: {other}"),
        })
}

/// The innermost error of a chain: the part a person can act on.
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut root = error;
    while let Some(next) = root.source() {
        root = next;
    }
    root.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_never_shows_in_debug() {
        let tls = TlsOptions {
            client_key_pem: Some(PrivateKeyPem::new(
                "-----BEGIN PRIVATE KEY-----secret".into(),
            )),
            ..TlsOptions::default()
        };
        let shown = format!("{tls:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn huge_and_invalid_regexes_are_refused_and_small_ones_compile() {
        assert!(compile_body_regex(r#""status":\s*"ok""#).is_ok());
        let huge = compile_body_regex(r"\w{1000}").unwrap_err();
        assert!(huge.contains("compiles to more than 256 KiB"), "{huge}");
        let invalid = compile_body_regex("(unclosed").unwrap_err();
        assert!(
            invalid.contains("not a valid regular expression"),
            "{invalid}"
        );
        assert!(compile_body_regex("").is_err());
    }

    #[test]
    fn the_default_options_build_the_shared_client() {
        assert!(ClientOptions::default().is_default());
        assert!(build_client(&ClientOptions::default()).is_ok());
    }
}
