//! Alerts and chains, as data: the channels alerts go to, a job's alert policy and chain, the
//! alerts themselves with their delivery status, and [`decide`], the pure rule that says whether
//! an instance's end raises an alert.
//!
//! This module owns the shapes and the rule; it never sends anything and never touches the store.
//! The state machine (`server::machine::ended`) applies the rule inside a command, the delivery
//! loop (`server::alerts`) sends what it wrote, and [`spec`] turns what people write into these
//! types.

pub mod spec;

use serde::{Deserialize, Serialize};

use crate::model::{InstanceId, JobId, UnixMs};

pub type AlertId = u64;

/// A secret (a token, a password, an HMAC key). Stored and carried as is, because the server
/// needs it to send; never shown: its `Debug` is redacted, and the API answers with
/// [`ChannelDefinition::redacted`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

/// What a hidden secret reads as in the API and the CLI.
pub const HIDDEN: &str = "(hidden)";

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(HIDDEN)
    }
}

/// A place alerts go, defined once by name and referenced by jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDefinition {
    pub name: String,
    pub target: ChannelTarget,
    /// Jobs without an `[alerts]` table alert here, with the default policy.
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ChannelTarget {
    /// A JSON POST; with `hmac_key`, signed in `X-Shoal-Signature: sha256=<hex>`.
    Webhook {
        url: String,
        #[serde(default)]
        headers: Vec<(String, Secret)>,
        #[serde(default)]
        hmac_key: Option<Secret>,
    },
    /// A Slack-compatible incoming webhook (`{"text": …}`); its URL is its credential.
    Slack { url: Secret },
    /// Mail over SMTP.
    Email(EmailTarget),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// PEM file of the CA that signs the relay's certificate, when it is not a public one.
    #[serde(default)]
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    /// Plain connection upgraded by STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host.
    None,
}

impl ChannelDefinition {
    pub fn kind(&self) -> &'static str {
        match self.target {
            ChannelTarget::Webhook { .. } => "webhook",
            ChannelTarget::Slack { .. } => "slack",
            ChannelTarget::Email(_) => "email",
        }
    }

    /// The definition with every secret replaced by [`HIDDEN`]: what the API and the CLI show.
    pub fn redacted(&self) -> ChannelDefinition {
        let hide = |_: &Secret| Secret(HIDDEN.into());
        let target = match &self.target {
            ChannelTarget::Webhook {
                url,
                headers,
                hmac_key,
            } => ChannelTarget::Webhook {
                url: url.clone(),
                headers: headers.iter().map(|(n, v)| (n.clone(), hide(v))).collect(),
                hmac_key: hmac_key.as_ref().map(hide),
            },
            ChannelTarget::Slack { url } => ChannelTarget::Slack { url: hide(url) },
            ChannelTarget::Email(email) => ChannelTarget::Email(EmailTarget {
                password: email.password.as_ref().map(hide),
                ..email.clone()
            }),
        };
        ChannelDefinition {
            target,
            ..self.clone()
        }
    }

    /// Where it sends, without secrets, in a few words.
    pub fn describe(&self) -> String {
        match &self.target {
            ChannelTarget::Webhook { url, hmac_key, .. } => format!(
                "POST {url}{}",
                if hmac_key.is_some() { " (signed)" } else { "" }
            ),
            ChannelTarget::Slack { .. } => "Slack incoming webhook".to_string(),
            ChannelTarget::Email(email) => format!(
                "mail to {} via {}:{}",
                email.to.join(", "),
                email.host,
                email.port
            ),
        }
    }
}

/// What an instance's end can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertEvent {
    /// An instance failed for good (retries exhausted).
    Failure,
    /// An instance waited past its dispatch timeout: no live worker could take it.
    DispatchTimeout,
    /// The first success after a failure alert.
    Recovery,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 3] = [
        AlertEvent::Failure,
        AlertEvent::DispatchTimeout,
        AlertEvent::Recovery,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Failure => "failure",
            AlertEvent::DispatchTimeout => "dispatch-timeout",
            AlertEvent::Recovery => "recovery",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertMode {
    /// Alert when the job turns red (a failure) and when it turns green again (a recovery), not
    /// on every failure in between.
    #[default]
    StateChange,
    /// Alert on every failure (within the silence period and threshold).
    Every,
}

/// When a job alerts, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertPolicy {
    pub channels: Vec<String>,
    pub on: Vec<AlertEvent>,
    #[serde(default)]
    pub mode: AlertMode,
    /// After an alert, no failure alert for this long (0: none).
    #[serde(default)]
    pub silence_ms: u64,
    /// Alert only when this many failures fall within `within_ms` (0: any time) with no success
    /// between them. 1 by default: every failure counts.
    pub threshold_failures: u32,
    #[serde(default)]
    pub threshold_within_ms: u64,
}

impl AlertPolicy {
    /// The policy of a job without an `[alerts]` table, sending to the `default` channels.
    pub fn default_for(channels: Vec<String>) -> AlertPolicy {
        AlertPolicy {
            channels,
            on: AlertEvent::ALL.to_vec(),
            mode: AlertMode::StateChange,
            silence_ms: 0,
            threshold_failures: 1,
            threshold_within_ms: 0,
        }
    }
}

/// Jobs to queue when an instance of a job ends, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Chain {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<String>,
    /// On success or failure (not on a cancel).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_complete: Vec<String>,
}

impl Chain {
    pub fn is_empty(&self) -> bool {
        *self == Chain::default()
    }

    /// Each field with its names, for validation and cycle search.
    pub fn fields(&self) -> [(&'static str, &[String]); 3] {
        [
            ("on_success", &self.on_success),
            ("on_failure", &self.on_failure),
            ("on_complete", &self.on_complete),
        ]
    }

    /// The jobs to queue after an end that `succeeded` or not, each once, in field order.
    pub fn targets(&self, succeeded: bool) -> Vec<&str> {
        let first = if succeeded {
            &self.on_success
        } else {
            &self.on_failure
        };
        let mut out: Vec<&str> = Vec::new();
        for name in first.iter().chain(&self.on_complete) {
            if !out.contains(&name.as_str()) {
                out.push(name);
            }
        }
        out
    }
}

/// Which field of a job's chain names another job: when the other job is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainOn {
    OnSuccess,
    OnFailure,
    OnComplete,
}

impl ChainOn {
    /// The field's name in a job file.
    pub fn field(self) -> &'static str {
        match self {
            ChainOn::OnSuccess => "on_success",
            ChainOn::OnFailure => "on_failure",
            ChainOn::OnComplete => "on_complete",
        }
    }
}

/// One edge of the chain graph seen from a job: the job at its other end, and the field (of the
/// job upstream) that names the one downstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEdge {
    pub job: String,
    pub on: ChainOn,
}

impl Chain {
    /// The jobs this chain queues, each with the field naming it, in field order.
    pub fn downstream(&self) -> Vec<ChainEdge> {
        [
            (ChainOn::OnSuccess, &self.on_success),
            (ChainOn::OnFailure, &self.on_failure),
            (ChainOn::OnComplete, &self.on_complete),
        ]
        .into_iter()
        .flat_map(|(on, names)| {
            names.iter().map(move |name| ChainEdge {
                job: name.clone(),
                on,
            })
        })
        .collect()
    }
}

/// How an instance ended, as far as alerts care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    Failed,
    /// Failed by its dispatch timeout.
    Expired,
}

/// What the alert rule remembers of a job between its instances (stored per job, in the
/// `job_health` table). Not the failure count of `pause_after_failures` (the job's own
/// [`crate::model::JobHealth`]): see there why the two are kept apart.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobHealth {
    /// A failure alert was raised and no recovery since.
    #[serde(default)]
    pub red: bool,
    /// Times of the recent failures counted towards the threshold (at most its count).
    #[serde(default)]
    pub failures: Vec<UnixMs>,
    /// When the last failure alert was raised (for the silence period).
    #[serde(default)]
    pub last_alert_ms: Option<UnixMs>,
}

/// Whether an instance ending as `ending` at `at` raises an alert under `policy`, updating what
/// the job's `health` remembers. Pure: the same inputs always give the same answer.
pub fn decide(
    policy: &AlertPolicy,
    health: &mut JobHealth,
    ending: Ending,
    at: UnixMs,
) -> Option<AlertEvent> {
    let event = match ending {
        Ending::Succeeded => {
            health.failures.clear();
            if !health.red {
                return None;
            }
            health.red = false;
            return policy
                .on
                .contains(&AlertEvent::Recovery)
                .then_some(AlertEvent::Recovery);
        }
        Ending::Failed => AlertEvent::Failure,
        Ending::Expired => AlertEvent::DispatchTimeout,
    };
    if !policy.on.contains(&event) {
        return None;
    }
    health.failures.push(at);
    if policy.threshold_within_ms > 0 {
        let window = policy.threshold_within_ms as i64;
        health.failures.retain(|t| at - t < window);
    }
    let keep = policy.threshold_failures.max(1) as usize;
    if health.failures.len() > keep {
        health.failures.drain(..health.failures.len() - keep);
    }
    if health.failures.len() < keep {
        return None;
    }
    if policy.mode == AlertMode::StateChange && health.red {
        return None;
    }
    if let Some(last) = health.last_alert_ms
        && policy.silence_ms > 0
        && at - last < policy.silence_ms as i64
    {
        return None;
    }
    health.red = true;
    health.last_alert_ms = Some(at);
    Some(event)
}

/// One alert to one channel: raised by the state machine, delivered by the delivery loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    pub channel: String,
    pub event: AlertEvent,
    pub job_id: JobId,
    pub job_name: String,
    pub instance: InstanceId,
    /// Attempts the instance made.
    pub attempts: u32,
    pub reason: String,
    pub created_ms: UnixMs,
    pub status: AlertStatus,
    /// Delivery tries so far.
    #[serde(default)]
    pub tries: u32,
    /// What the receiver (or the connection) answered to the last try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum AlertStatus {
    /// To be sent at (or after) `next_at_ms`.
    Pending {
        next_at_ms: UnixMs,
    },
    Sent {
        at_ms: UnixMs,
    },
    /// Given up: the receiver refused it too many times, or the channel is gone.
    Failed {
        at_ms: UnixMs,
    },
}

impl AlertStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertStatus::Pending { .. } => "pending",
            AlertStatus::Sent { .. } => "sent",
            AlertStatus::Failed { .. } => "failed",
        }
    }
}

/// A delivery try's result, as the delivery loop reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Delivery {
    /// The receiver accepted it.
    Sent { answer: String },
    /// The receiver refused it or could not be reached: try again later.
    Refused { answer: String },
    /// It can never be sent (its channel is gone): give up now.
    Undeliverable { answer: String },
}

/// Tries before an alert is given up.
pub const MAX_TRIES: u32 = 12;

/// Wait before try `tries + 1`: 1 s, doubling, capped at 5 minutes (12 tries span ~25 minutes).
pub fn retry_delay_ms(tries: u32) -> u64 {
    (1000u64 << tries.saturating_sub(1).min(16)).min(300_000)
}

impl Alert {
    /// One line for people: what happened and how to look at it.
    pub fn summary(&self) -> String {
        match self.event {
            AlertEvent::Recovery => format!(
                "job {} recovered: instance {} succeeded",
                self.job_name, self.instance
            ),
            AlertEvent::Failure => format!(
                "job {} failed: instance {} after {} attempt(s): {}",
                self.job_name, self.instance, self.attempts, self.reason
            ),
            AlertEvent::DispatchTimeout => format!(
                "job {}: instance {} found no worker in time: {}",
                self.job_name, self.instance, self.reason
            ),
        }
    }
}

#[cfg(test)]
mod tests;
