//! Runs one HTTP task: the request with its timeout, then the checks that decide success
//! (expected status, expected body substring and regex), keeping a capped excerpt of the
//! response. An error says which limit or check failed, naming the job field to change.

use std::time::{Duration, Instant};

use reqwest::Method;

use super::clients::HttpClients;
use crate::http_options::DEFAULT_CONNECT_TIMEOUT;
use crate::model::{HttpTask, UnixMs, now_ms};

pub use crate::wire::EXCERPT_LIMIT;
/// The most response bytes read to look for an expected substring.
pub const BODY_SCAN_LIMIT: usize = 1024 * 1024;
/// The header that lets a target deduplicate at-least-once deliveries.
pub const INSTANCE_HEADER: &str = "X-Shoal-Instance";

#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub started_ms: UnixMs,
    pub ended_ms: UnixMs,
    pub succeeded: bool,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub excerpt: Option<String>,
}

pub async fn execute(clients: &HttpClients, task: &HttpTask, instance_tag: &str) -> Execution {
    let started_ms = now_ms();
    let clock = Instant::now();
    let result = run(clients, task, instance_tag).await;
    let ended_ms = started_ms + clock.elapsed().as_millis() as i64;
    match result {
        Ok((status, excerpt, check)) => Execution {
            started_ms,
            ended_ms,
            succeeded: check.is_ok(),
            http_status: Some(status),
            error: check.err(),
            excerpt,
        },
        Err(error) => Execution {
            started_ms,
            ended_ms,
            succeeded: false,
            http_status: None,
            error: Some(error),
            excerpt: None,
        },
    }
}

type Checked = (u16, Option<String>, Result<(), String>);

async fn run(
    clients: &HttpClients,
    task: &HttpTask,
    instance_tag: &str,
) -> Result<Checked, String> {
    let method = Method::from_bytes(task.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", task.method))?;
    let body_regex = task
        .expect_body_regex
        .as_deref()
        .map(|pattern| clients.body_regex(pattern))
        .transpose()?;
    let client = clients.client(&task.client)?;
    let timeout = Duration::from_millis(task.timeout_ms);
    let mut request = client
        .request(method, &task.url)
        .timeout(timeout)
        .header(INSTANCE_HEADER, instance_tag);
    for (name, value) in &task.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &task.body {
        request = request.body(body.clone());
    }
    let mut response = request
        .send()
        .await
        .map_err(|error| describe(&error, task, timeout))?;
    let status = response.status().as_u16();
    let scan_limit = if task.expect_body.is_some() || body_regex.is_some() {
        BODY_SCAN_LIMIT
    } else {
        EXCERPT_LIMIT
    };
    let mut body = Vec::new();
    while body.len() < scan_limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(error) => return Err(describe(&error, task, timeout)),
        }
    }
    let excerpt = (!body.is_empty()).then(|| excerpt(&body));
    let check = check(task, body_regex.as_ref(), status, &body);
    Ok((status, excerpt, check))
}

fn check(
    task: &HttpTask,
    body_regex: Option<&regex::Regex>,
    status: u16,
    body: &[u8],
) -> Result<(), String> {
    if !task.status_ok(status) {
        let expected = if task.expect_status.is_empty() {
            "2xx".to_string()
        } else {
            task.expect_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        return Err(format!("expected status {expected}, got {status}"));
    }
    if task.expect_body.is_none() && body_regex.is_none() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(body);
    if let Some(expected) = &task.expect_body
        && !text.contains(expected.as_str())
    {
        return Err(format!(
            "response body does not contain {expected:?} (searched the first {} bytes)",
            body.len().min(BODY_SCAN_LIMIT)
        ));
    }
    if let Some(regex) = body_regex
        && !regex.is_match(&text)
    {
        return Err(format!(
            "response body does not match the regex {:?} (http.expect_body_regex; searched the \
             first {} bytes)",
            regex.as_str(),
            body.len().min(BODY_SCAN_LIMIT)
        ));
    }
    Ok(())
}

/// The first bytes of the body as text, cut at a character boundary.
fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(EXCERPT_LIMIT)];
    let text = String::from_utf8_lossy(head);
    let mut text = text.into_owned();
    if body.len() > EXCERPT_LIMIT {
        text.push('…');
    }
    text
}

fn describe(error: &reqwest::Error, task: &HttpTask, timeout: Duration) -> String {
    if error.is_connect() && error.is_timeout() {
        let (limit, field) = match task.client.connect_timeout_ms {
            Some(ms) => (Duration::from_millis(ms), "http.connect_timeout"),
            None => (DEFAULT_CONNECT_TIMEOUT, "the default connect timeout"),
        };
        return format!(
            "connect timed out after {} ({field}): {} did not complete the TCP/TLS handshake",
            humantime::format_duration(limit),
            task.url
        );
    }
    if error.is_timeout() {
        return format!(
            "timed out after {} (http.timeout, the whole request)",
            humantime::format_duration(timeout)
        );
    }
    let mut root: &(dyn std::error::Error + 'static) = error;
    while let Some(next) = root.source() {
        if let Some(tls) = crate::tls::rustls_error(next) {
            return describe_tls(tls, task);
        }
        root = next;
    }
    if error.is_connect() {
        return format!("cannot connect to {}: {root}", task.url);
    }
    format!("request to {} failed: {root}", task.url)
}

/// A TLS failure with what to change in the job.
fn describe_tls(error: &rustls::Error, task: &HttpTask) -> String {
    use rustls::AlertDescription as Alert;
    let fix = match error {
        rustls::Error::InvalidCertificate(_) => {
            "certificate verification failed; give the server's CA in http.tls (ca_file or \
             ca_pem), or set http.tls.insecure = true to skip verification"
        }
        rustls::Error::AlertReceived(
            Alert::CertificateRequired
            | Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::AccessDenied
            | Alert::HandshakeFailure,
        ) => {
            "the server refused the TLS handshake, most likely our client certificate (or its \
             absence); give http.tls.client_cert_file and client_key_file"
        }
        _ => "TLS handshake failed",
    };
    format!("TLS error with {}: {error}: {fix}", task.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> HttpTask {
        HttpTask {
            method: "GET".into(),
            url: "http://127.0.0.1/".into(),
            headers: vec![],
            body: None,
            timeout_ms: 1000,
            expect_status: vec![],
            expect_body: None,
            expect_body_regex: None,
            client: Default::default(),
        }
    }

    #[test]
    fn checks_name_what_was_expected() {
        assert_eq!(
            check(&task(), None, 500, b""),
            Err("expected status 2xx, got 500".into())
        );
        let mut t = task();
        t.expect_status = vec![200, 201];
        assert_eq!(
            check(&t, None, 204, b""),
            Err("expected status 200 or 201, got 204".into())
        );
        let mut t = task();
        t.expect_body = Some("ok".into());
        assert!(check(&t, None, 200, b"all ok").is_ok());
        assert!(
            check(&t, None, 200, b"nope")
                .unwrap_err()
                .contains("does not contain \"ok\"")
        );
    }

    #[test]
    fn a_body_regex_must_match_as_well_as_a_substring() {
        let regex = crate::http_options::compile_body_regex(r#""status":\s*"(ok|fine)""#).unwrap();
        assert!(check(&task(), Some(&regex), 200, br#"{"status": "fine"}"#).is_ok());
        let error = check(&task(), Some(&regex), 200, br#"{"status": "down"}"#).unwrap_err();
        assert!(
            error.contains("does not match the regex") && error.contains("expect_body_regex"),
            "{error}"
        );
        let mut both = task();
        both.expect_body = Some("fine".into());
        assert!(check(&both, Some(&regex), 200, br#"{"status": "ok"}"#).is_err());
    }

    #[test]
    fn excerpts_are_capped() {
        let long = vec![b'a'; EXCERPT_LIMIT * 2];
        let text = excerpt(&long);
        assert!(text.ends_with('…'));
        assert_eq!(text.chars().filter(|c| *c == 'a').count(), EXCERPT_LIMIT);
    }
}
