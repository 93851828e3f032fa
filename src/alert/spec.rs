//! The user-facing forms of alert channels and job alert policies (TOML files, JSON bodies) and
//! their validation. Like `crate::spec`, validation is total and every refusal names the field.
//! What needs the store (a channel or a chained job that must exist, a cycle) is checked by the
//! state machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    AlertEvent, AlertMode, AlertPolicy, ChannelDefinition, ChannelTarget, EmailTarget, Secret,
    SmtpTls,
};
use crate::spec::{FieldError, positive_duration};

type Result<T> = std::result::Result<T, FieldError>;

fn invalid(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// A channel as people write it: `kind` says which of the other fields apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    pub name: String,
    /// webhook | slack | email
    pub kind: String,
    /// Jobs without an `[alerts]` table alert here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// webhook and slack: where to POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// webhook: extra request headers (their values are treated as secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// webhook: key of the `X-Shoal-Signature` HMAC-SHA256 over the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<String>,
    /// email: the SMTP relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// email: starttls (default) | tls | none
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// email: PEM file (on the server) of a private CA that signs the relay's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl ChannelSpec {
    pub fn from_toml(text: &str) -> Result<ChannelSpec> {
        toml::from_str(text).map_err(|error| invalid("file", error.to_string().trim().to_string()))
    }

    pub fn validate(&self) -> Result<ChannelDefinition> {
        validate_channel_name("name", &self.name)?;
        let only = |allowed: &[&str]| -> Result<()> {
            let given = [
                ("url", self.url.is_some()),
                ("headers", !self.headers.is_empty()),
                ("hmac_key", self.hmac_key.is_some()),
                ("host", self.host.is_some()),
                ("port", self.port.is_some()),
                ("tls", self.tls.is_some()),
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("from", self.from.is_some()),
                ("to", !self.to.is_empty()),
                ("ca_file", self.ca_file.is_some()),
            ];
            match given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
                Some((field, _)) => Err(invalid(
                    field,
                    format!("does not apply to a {} channel", self.kind),
                )),
                None => Ok(()),
            }
        };
        let target = match self.kind.as_str() {
            "webhook" => {
                only(&["url", "headers", "hmac_key"])?;
                let url = http_url("url", self.url.as_deref())?;
                let mut headers = Vec::with_capacity(self.headers.len());
                for (name, value) in &self.headers {
                    let field = format!("headers.{name}");
                    reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                        invalid(&field, "is not a valid header name (letters, digits and -)")
                    })?;
                    reqwest::header::HeaderValue::from_str(value)
                        .map_err(|_| invalid(&field, "value has characters not allowed"))?;
                    headers.push((name.clone(), Secret(value.clone())));
                }
                if let Some(key) = &self.hmac_key
                    && key.len() < 16
                {
                    return Err(invalid(
                        "hmac_key",
                        "shorter than 16 bytes; use a long random key (e.g. 32 random bytes in hex)",
                    ));
                }
                ChannelTarget::Webhook {
                    url,
                    headers,
                    hmac_key: self.hmac_key.clone().map(Secret),
                }
            }
            "slack" => {
                only(&["url"])?;
                ChannelTarget::Slack {
                    url: Secret(http_url("url", self.url.as_deref())?),
                }
            }
            "email" => {
                only(&[
                    "host", "port", "tls", "username", "password", "from", "to", "ca_file",
                ])?;
                ChannelTarget::Email(self.email()?)
            }
            other => {
                return Err(invalid(
                    "kind",
                    format!("{other:?} is not one of webhook, slack, email"),
                ));
            }
        };
        Ok(ChannelDefinition {
            name: self.name.clone(),
            target,
            default: self.default,
        })
    }

    fn email(&self) -> Result<EmailTarget> {
        let host = match self.host.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(invalid(
                    "host",
                    "missing: the SMTP relay's host name, e.g. smtp.example.com",
                ));
            }
            Some(host) if host.contains(['/', ':', ' ']) => {
                return Err(invalid(
                    "host",
                    format!("{host:?} is not a host name; give the port in `port`"),
                ));
            }
            Some(host) => host.to_string(),
        };
        let tls = match self.tls.as_deref().unwrap_or("starttls") {
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                return Err(invalid(
                    "tls",
                    format!("{other:?} is not one of starttls, tls, none"),
                ));
            }
        };
        let port = match self.port {
            Some(0) => return Err(invalid("port", "must be 1–65535")),
            Some(port) => port,
            None => match tls {
                SmtpTls::Tls => 465,
                SmtpTls::Starttls => 587,
                SmtpTls::None => 25,
            },
        };
        if self.password.is_some() && self.username.is_none() {
            return Err(invalid("username", "missing: a password needs a username"));
        }
        let from = self
            .from
            .clone()
            .ok_or_else(|| invalid("from", "missing: the sender address"))?;
        mailbox("from", &from)?;
        if self.to.is_empty() {
            return Err(invalid("to", "missing: at least one recipient address"));
        }
        for to in &self.to {
            mailbox("to", to)?;
        }
        Ok(EmailTarget {
            host,
            port,
            tls,
            username: self.username.clone(),
            password: self.password.clone().map(Secret),
            from,
            to: self.to.clone(),
            ca_file: self.ca_file.clone(),
        })
    }
}

fn mailbox(field: &str, text: &str) -> Result<()> {
    text.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|error| {
            invalid(
                field,
                format!("{text:?} is not an e-mail address ({error}); write e.g. ops@example.com"),
            )
        })
}

fn http_url(field: &str, text: Option<&str>) -> Result<String> {
    let text = text.ok_or_else(|| invalid(field, "missing: the URL to POST alerts to"))?;
    let url = url::Url::parse(text)
        .map_err(|error| invalid(field, format!("{text:?} is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            field,
            format!(
                "scheme {:?} is not supported; use http:// or https://",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "has no host"));
    }
    Ok(text.to_string())
}

/// Channel names follow job names' rules: letters, digits and - _ . : /
pub fn validate_channel_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 128 {
        return Err(invalid(field, "must be 1–128 characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
    {
        return Err(invalid(
            field,
            format!("{name:?} contains {bad:?}; use letters, digits and - _ . : /"),
        ));
    }
    Ok(())
}

/// A job's `[alerts]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Channel names; an empty list turns alerts off for the job.
    #[serde(default)]
    pub channels: Vec<String>,
    /// failure, dispatch-timeout, recovery (default: all three).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<String>>,
    /// state-change (default) | every
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// After an alert, no failure alert for this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdSpec>,
}

/// Alert only after `failures` failures within `within`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

const DAY_MS: u64 = 24 * 3600 * 1000;

impl AlertSpec {
    pub fn validate(&self) -> Result<AlertPolicy> {
        for name in &self.channels {
            validate_channel_name("alerts.channels", name)?;
        }
        let on = match &self.on {
            None => AlertEvent::ALL.to_vec(),
            Some(list) if list.is_empty() => {
                return Err(invalid(
                    "alerts.on",
                    "empty; list failure, dispatch-timeout or recovery (or give channels = [] \
                     to turn alerts off)",
                ));
            }
            Some(list) => {
                let mut events = Vec::new();
                for text in list {
                    let event = AlertEvent::ALL
                        .into_iter()
                        .find(|e| e.as_str() == text)
                        .ok_or_else(|| {
                            invalid(
                                "alerts.on",
                                format!(
                                    "{text:?} is not one of failure, dispatch-timeout, recovery"
                                ),
                            )
                        })?;
                    if !events.contains(&event) {
                        events.push(event);
                    }
                }
                events.sort();
                events
            }
        };
        let mode = match self.mode.as_deref() {
            None | Some("state-change") => AlertMode::StateChange,
            Some("every") => AlertMode::Every,
            Some(other) => {
                return Err(invalid(
                    "alerts.mode",
                    format!("{other:?} is not one of state-change, every"),
                ));
            }
        };
        let silence_ms = match &self.silence {
            None => 0,
            Some(text) => positive_duration("alerts.silence", text, 7 * DAY_MS)?,
        };
        let (threshold_failures, threshold_within_ms) = match &self.threshold {
            None => (1, 0),
            Some(threshold) => {
                if !(1..=1000).contains(&threshold.failures) {
                    return Err(invalid("alerts.threshold.failures", "must be 1–1000"));
                }
                let within = match &threshold.within {
                    None => 0,
                    Some(text) => positive_duration("alerts.threshold.within", text, 7 * DAY_MS)?,
                };
                (threshold.failures, within)
            }
        };
        Ok(AlertPolicy {
            channels: self.channels.clone(),
            on,
            mode,
            silence_ms,
            threshold_failures,
            threshold_within_ms,
        })
    }
}

impl AlertPolicy {
    pub fn to_spec(&self) -> AlertSpec {
        let human = crate::model::human_ms;
        AlertSpec {
            channels: self.channels.clone(),
            on: Some(self.on.iter().map(|e| e.as_str().to_string()).collect()),
            mode: Some(
                match self.mode {
                    AlertMode::StateChange => "state-change",
                    AlertMode::Every => "every",
                }
                .into(),
            ),
            silence: (self.silence_ms > 0).then(|| human(self.silence_ms)),
            threshold: (self.threshold_failures > 1 || self.threshold_within_ms > 0).then(|| {
                ThresholdSpec {
                    failures: self.threshold_failures,
                    within: (self.threshold_within_ms > 0).then(|| human(self.threshold_within_ms)),
                }
            }),
        }
    }
}
