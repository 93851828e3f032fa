//! Webhook and Slack delivery: a JSON POST, signed with HMAC-SHA256 when the channel has a key.
//! A 2xx answer is a delivery; anything else (or no answer) is refused and tried again.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{Context, show_command};
use crate::alert::{Alert, Delivery, Secret};
use crate::model::rfc3339;

/// The header carrying `sha256=<hex of HMAC-SHA256(key, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Shoal-Signature";
/// The header carrying the alert's id: the same on every try, for deduplication.
pub const ALERT_HEADER: &str = "X-Shoal-Alert";

/// The generic webhook body.
pub fn body(alert: &Alert, server_url: &str) -> serde_json::Value {
    json!({
        "alert": alert.id,
        "event": alert.event.as_str(),
        "job": alert.job_name,
        "job_id": alert.job_id,
        "instance": alert.instance,
        "attempts": alert.attempts,
        "reason": alert.reason,
        "at": rfc3339(alert.created_ms),
        "summary": alert.summary(),
        "command": show_command(alert, server_url),
    })
}

/// A Slack-compatible incoming webhook body.
pub fn slack_body(alert: &Alert, server_url: &str) -> serde_json::Value {
    let icon = match alert.event {
        crate::alert::AlertEvent::Recovery => ":large_green_circle:",
        _ => ":red_circle:",
    };
    json!({
        "text": format!("{icon} {}\n`{}`", alert.summary(), show_command(alert, server_url)),
    })
}

/// HMAC-SHA256 of `body` under `key`, hex.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub async fn send_json(
    context: &Context,
    url: &str,
    headers: &[(String, Secret)],
    hmac_key: Option<&Secret>,
    alert: &Alert,
    body: &serde_json::Value,
) -> Delivery {
    let bytes = body.to_string().into_bytes();
    let mut request = context
        .http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ALERT_HEADER, alert.id.to_string());
    for (name, value) in headers {
        request = request.header(name, value.expose());
    }
    if let Some(key) = hmac_key {
        request = request.header(
            SIGNATURE_HEADER,
            format!("sha256={}", sign(key.expose().as_bytes(), &bytes)),
        );
    }
    match request.body(bytes).send().await {
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let answer = format!("HTTP {}: {}", status.as_u16(), text.trim());
            if status.is_success() {
                Delivery::Sent { answer }
            } else {
                Delivery::Refused { answer }
            }
        }
        Err(error) => Delivery::Refused {
            answer: describe(&error),
        },
    }
}

/// The root cause of a failed request (reqwest's top message is vague), never the URL: a Slack
/// URL is a credential.
fn describe(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        format!("cannot connect: {source}")
    } else {
        source.to_string()
    }
}
