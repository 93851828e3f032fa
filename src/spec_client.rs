//! The job format's client options: the `[http.tls]` table, `http.proxy` and
//! `http.connect_timeout`. Owns reading PEM files where a job is defined (the CLI: paths are
//! relative to the job file) and validating the options into a
//! [`ClientOptions`](crate::http_options::ClientOptions).
//!
//! The server never reads a path: a worker runs on another machine, so the PEM text itself must
//! travel in the job, and an API that opened files named by its callers would be a file-read
//! hole. Error messages never quote a private key.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use super::{FieldError, HttpSpec, Result, invalid, positive_duration};
use crate::http_options::{
    self, ClientOptions, MAX_CA_PEM, MAX_CERT_PEM, MAX_KEY_PEM, PrivateKeyPem, REDACTED, TlsOptions,
};

/// `[http.tls]`: give each PEM either as a file (`*_file`, read by the CLI) or inline (`*_pem`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// CA certificates to trust instead of the system's (PEM bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Client certificate chain for mTLS (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    /// The client certificate's private key (PEM: PKCS#8, RSA or EC). Never shown back: the API
    /// answers `<redacted>`, and `<redacted>` sent in an update keeps the stored key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
    /// Skip certificate verification (the console marks such jobs in red).
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub insecure: bool,
}

/// What a PEM field must hold.
#[derive(Clone, Copy)]
enum PemKind {
    Certificates,
    PrivateKey,
}

/// The three PEM fields: (file field, PEM field, kind, size limit).
const PEM_FIELDS: [(&str, &str, PemKind, usize); 3] = [
    ("ca_file", "ca_pem", PemKind::Certificates, MAX_CA_PEM),
    (
        "client_cert_file",
        "client_cert_pem",
        PemKind::Certificates,
        MAX_CERT_PEM,
    ),
    (
        "client_key_file",
        "client_key_pem",
        PemKind::PrivateKey,
        MAX_KEY_PEM,
    ),
];

impl TlsSpec {
    fn pairs(&self) -> [(&Option<String>, &Option<String>); 3] {
        [
            (&self.ca_file, &self.ca_pem),
            (&self.client_cert_file, &self.client_cert_pem),
            (&self.client_key_file, &self.client_key_pem),
        ]
    }

    fn slots(&mut self) -> [(&mut Option<String>, &mut Option<String>); 3] {
        [
            (&mut self.ca_file, &mut self.ca_pem),
            (&mut self.client_cert_file, &mut self.client_cert_pem),
            (&mut self.client_key_file, &mut self.client_key_pem),
        ]
    }

    /// Reads every `*_file` (relative to `base`) into its `*_pem` field and clears the path.
    /// Run where the job is defined (the CLI), never on the server.
    pub fn read_files(&mut self, base: &Path) -> Result<()> {
        for ((file, pem_text), (file_name, pem_name, kind, limit)) in
            self.slots().into_iter().zip(PEM_FIELDS)
        {
            let Some(path) = file.take() else {
                continue;
            };
            let field = format!("http.tls.{file_name}");
            if pem_text.is_some() {
                return Err(invalid(
                    &field,
                    format!("give either {file_name} or {pem_name}, not both"),
                ));
            }
            let full = base.join(&path);
            let size = std::fs::metadata(&full)
                .map_err(|error| {
                    invalid(&field, format!("cannot read {}: {error}", full.display()))
                })?
                .len();
            if size > limit as u64 {
                return Err(invalid(
                    &field,
                    format!("{} is {size} bytes; the limit is {limit}", full.display()),
                ));
            }
            let text = std::fs::read_to_string(&full).map_err(|error| {
                invalid(&field, format!("cannot read {}: {error}", full.display()))
            })?;
            check_pem(&text, kind)
                .map_err(|reason| invalid(&field, format!("{}: {reason}", full.display())))?;
            *pem_text = Some(text);
        }
        Ok(())
    }
}

/// Checks that `text` holds what `kind` needs. The reason never quotes the text.
fn check_pem(text: &str, kind: PemKind) -> std::result::Result<(), String> {
    let describe = |error: pem::Error| match error {
        pem::Error::NoItemsFound => match kind {
            PemKind::Certificates => "no \"BEGIN CERTIFICATE\" block found".to_string(),
            PemKind::PrivateKey => {
                "no private key block found (PKCS#8, RSA or EC \"BEGIN … PRIVATE KEY\")".to_string()
            }
        },
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line".to_string(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".to_string(),
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64".to_string(),
        _ => "not valid PEM".to_string(),
    };
    match kind {
        PemKind::Certificates => {
            let mut count = 0;
            for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
                cert.map_err(describe)?;
                count += 1;
            }
            if count == 0 {
                return Err(describe(pem::Error::NoItemsFound));
            }
            Ok(())
        }
        PemKind::PrivateKey => PrivateKeyDer::from_pem_slice(text.as_bytes())
            .map(drop)
            .map_err(describe),
    }
}

/// Validates `http.connect_timeout`, `http.proxy` and `[http.tls]` for a request to `url`
/// whose whole request is bounded by `timeout_ms`.
pub(super) fn validate_client(
    spec: &HttpSpec,
    url: &url::Url,
    timeout_ms: u64,
) -> Result<ClientOptions> {
    let connect_timeout_ms = match &spec.connect_timeout {
        None => None,
        Some(text) => {
            let ms = positive_duration("http.connect_timeout", text, super::MAX_TIMEOUT_MS)?;
            if ms > timeout_ms {
                return Err(invalid(
                    "http.connect_timeout",
                    format!(
                        "{text} is longer than http.timeout ({}), which bounds the whole request; \
                         make it shorter",
                        crate::model::human_ms(timeout_ms)
                    ),
                ));
            }
            Some(ms)
        }
    };
    let proxy = spec.proxy.as_deref().map(validate_proxy).transpose()?;
    let tls = match &spec.tls {
        None => None,
        Some(tls) => validate_tls(tls, url)?,
    };
    let options = ClientOptions {
        connect_timeout_ms,
        proxy,
        tls,
    };
    // The worker builds exactly this; a redacted key is checked once it is restored. Only a
    // proxy or TLS material can make the build fail, and a build loads the system's CA roots
    // (milliseconds): a job without either is not built here, so creating thousands of jobs
    // does not read the roots thousands of times.
    let can_fail = options.proxy.is_some() || options.tls.is_some();
    if can_fail
        && !options
            .tls
            .as_ref()
            .and_then(|t| t.client_key_pem.as_ref())
            .is_some_and(PrivateKeyPem::is_redacted)
    {
        http_options::build_client(&options).map_err(|error| invalid(error.field, error.reason))?;
    }
    Ok(options)
}

fn validate_proxy(text: &str) -> Result<String> {
    let field = "http.proxy";
    let proxy = url::Url::parse(text).map_err(|error| {
        invalid(
            field,
            format!("{text:?} is not a URL ({error}); write e.g. http://127.0.0.1:3128"),
        )
    })?;
    if !matches!(proxy.scheme(), "http" | "https") {
        return Err(invalid(
            field,
            format!(
                "scheme {:?} is not supported; use an http:// or https:// proxy",
                proxy.scheme()
            ),
        ));
    }
    if proxy.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "has no host"));
    }
    // The API shows a job's proxy; a password in it would be shown too.
    if !proxy.username().is_empty() || proxy.password().is_some() {
        return Err(invalid(
            field,
            "credentials in the proxy URL are not supported (the API would show them)",
        ));
    }
    if proxy.path() != "/" || proxy.query().is_some() || proxy.fragment().is_some() {
        return Err(invalid(
            field,
            "a proxy URL is scheme://host:port, without a path or query",
        ));
    }
    Ok(text.to_string())
}

fn validate_tls(spec: &TlsSpec, url: &url::Url) -> Result<Option<TlsOptions>> {
    for ((file, text), (file_name, pem_name, kind, limit)) in
        spec.pairs().into_iter().zip(PEM_FIELDS)
    {
        if file.is_some() {
            return Err(invalid(
                &format!("http.tls.{file_name}"),
                format!(
                    "a path is read by the CLI where the job is defined (`shoal job add/apply \
                     -f`); through the API send the PEM text in http.tls.{pem_name}"
                ),
            ));
        }
        let Some(text) = text else { continue };
        let field = format!("http.tls.{pem_name}");
        if text.len() > limit {
            return Err(invalid(
                &field,
                format!("{} bytes; the limit is {limit}", text.len()),
            ));
        }
        if text == REDACTED && matches!(kind, PemKind::PrivateKey) {
            continue;
        }
        check_pem(text, kind).map_err(|reason| invalid(&field, reason))?;
    }
    let options = TlsOptions {
        ca_pem: spec.ca_pem.clone(),
        client_cert_pem: spec.client_cert_pem.clone(),
        client_key_pem: spec.client_key_pem.clone().map(PrivateKeyPem::new),
        insecure: spec.insecure,
    };
    if options == TlsOptions::default() {
        return Ok(None);
    }
    if options.insecure && options.ca_pem.is_some() {
        return Err(invalid(
            "http.tls.insecure",
            "insecure = true skips verification, so the CA would never be used; give either \
             the CA or insecure = true",
        ));
    }
    if url.scheme() != "https" {
        return Err(invalid(
            "http.tls",
            format!(
                "TLS options apply to https:// URLs; http.url is {}://",
                url.scheme()
            ),
        ));
    }
    Ok(Some(options))
}

/// The options back in the job format (PEM inline; a key as the API holds it).
pub(super) fn tls_to_spec(tls: &TlsOptions) -> TlsSpec {
    TlsSpec {
        ca_pem: tls.ca_pem.clone(),
        client_cert_pem: tls.client_cert_pem.clone(),
        client_key_pem: tls
            .client_key_pem
            .as_ref()
            .map(|key| key.expose().to_string()),
        insecure: tls.insecure,
        ..TlsSpec::default()
    }
}

/// Replaces a `<redacted>` key of `options` by the stored one (`stored`, when updating a job),
/// then checks the whole client builds. A placeholder with nothing stored is refused.
pub(super) fn restore_key(
    options: &mut ClientOptions,
    stored: Option<&ClientOptions>,
) -> std::result::Result<(), FieldError> {
    let Some(key) = options
        .tls
        .as_mut()
        .and_then(|tls| tls.client_key_pem.as_mut())
        .filter(|key| key.is_redacted())
    else {
        return Ok(());
    };
    let stored_key = stored
        .and_then(|s| s.tls.as_ref())
        .and_then(|tls| tls.client_key_pem.as_ref())
        .filter(|key| !key.is_redacted());
    let Some(stored_key) = stored_key else {
        return Err(invalid(
            "http.tls.client_key_pem",
            format!(
                "{REDACTED:?} stands for a key already stored with the job, and there is none; \
                 give the key (client_key_file or client_key_pem)"
            ),
        ));
    };
    *key = stored_key.clone();
    http_options::build_client(options).map_err(|error| invalid(error.field, error.reason))?;
    Ok(())
}

#[cfg(test)]
#[path = "spec_client_tests.rs"]
mod tests;
