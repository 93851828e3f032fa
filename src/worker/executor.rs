//! Runs one HTTP task: the request with its timeout, then the checks that decide success
//! (expected status, expected body substring), keeping a capped excerpt of the response.

use std::time::{Duration, Instant};

use reqwest::Method;

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

/// One pooled client for every task of a worker (connections are reused across tasks).
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("shoal/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub async fn execute(client: &reqwest::Client, task: &HttpTask, instance_tag: &str) -> Execution {
    let started_ms = now_ms();
    let clock = Instant::now();
    let result = run(client, task, instance_tag).await;
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
    client: &reqwest::Client,
    task: &HttpTask,
    instance_tag: &str,
) -> Result<Checked, String> {
    let method = Method::from_bytes(task.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", task.method))?;
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
    let scan_limit = if task.expect_body.is_some() {
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
    let check = check(task, status, &body);
    Ok((status, excerpt, check))
}

fn check(task: &HttpTask, status: u16, body: &[u8]) -> Result<(), String> {
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
    if let Some(expected) = &task.expect_body
        && !String::from_utf8_lossy(body).contains(expected.as_str())
    {
        return Err(format!(
            "response body does not contain {expected:?} (searched the first {} bytes)",
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
    if error.is_timeout() {
        return format!("timed out after {}", humantime::format_duration(timeout));
    }
    let mut root: &dyn std::error::Error = error;
    while let Some(next) = root.source() {
        root = next;
    }
    if error.is_connect() {
        return format!("cannot connect to {}: {root}", task.url);
    }
    format!("request to {} failed: {root}", task.url)
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
        }
    }

    #[test]
    fn checks_name_what_was_expected() {
        assert_eq!(
            check(&task(), 500, b""),
            Err("expected status 2xx, got 500".into())
        );
        let mut t = task();
        t.expect_status = vec![200, 201];
        assert_eq!(
            check(&t, 204, b""),
            Err("expected status 200 or 201, got 204".into())
        );
        let mut t = task();
        t.expect_body = Some("ok".into());
        assert!(check(&t, 200, b"all ok").is_ok());
        assert!(
            check(&t, 200, b"nope")
                .unwrap_err()
                .contains("does not contain \"ok\"")
        );
    }

    #[test]
    fn excerpts_are_capped() {
        let long = vec![b'a'; EXCERPT_LIMIT * 2];
        let text = excerpt(&long);
        assert!(text.ends_with('…'));
        assert_eq!(text.chars().filter(|c| *c == 'a').count(), EXCERPT_LIMIT);
    }
}
