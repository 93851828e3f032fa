//! The alert delivery loop: sends the alerts the state machine wrote into the outbox, and
//! records each try's outcome with an `AlertDelivered` command (sent, given up, or pending again
//! after a backoff that `machine::apply` computes). Delivery is at least once: an alert whose
//! outcome was not recorded before a crash is sent again after the restart, with the same
//! `X-Shoal-Alert` id for the receiver to deduplicate.
//!
//! It owns no state but what is in flight. It never decides whether to alert (the state machine
//! did), and never holds up scheduling: it runs on its own task, sends at most
//! [`MAX_IN_FLIGHT`] alerts at once, each bounded by [`SEND_TIMEOUT`], and a receiver that is
//! down only delays its own alerts.

mod admin;
mod email;
mod webhook;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::alert::{Alert, AlertId, ChannelTarget, Delivery};
use crate::model::now_ms;
use crate::server::command::Command;
use crate::server::engine::Engine;
use crate::shutdown::Shutdown;

/// Alerts sent at once.
pub const MAX_IN_FLIGHT: usize = 8;
/// The longest one try may take (connect, TLS, send, answer).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the loop sleeps without looking at the outbox (a safety net under the bell).
const IDLE_LOOK: Duration = Duration::from_secs(5);
/// Answers kept per try: enough to see the receiver's complaint.
const ANSWER_LIMIT: usize = 300;

/// What a sender needs besides the alert and its channel.
#[derive(Clone)]
pub struct Context {
    pub http: reqwest::Client,
    /// The server's API URL, for the command in the alert that shows the instance.
    pub server_url: String,
}

/// Runs until shutdown.
pub async fn run(engine: Arc<dyn Engine>, server_url: String, mut shutdown: Shutdown) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(SEND_TIMEOUT)
        .user_agent(concat!("shoal/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "alerts are not delivered: cannot build an HTTP client");
            return;
        }
    };
    let context = Context { http, server_url };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let in_flight: Arc<Mutex<HashSet<AlertId>>> = Arc::default();
    let feed = engine.store().feed().clone();
    loop {
        // Listen before reading, so that an alert raised during the read still wakes us.
        let bell = feed.alerts_bell().notified();
        let read_engine = engine.clone();
        let due = tokio::task::spawn_blocking(move || {
            read_engine
                .store()
                .read()
                .and_then(|read| read.due_alerts(now_ms(), 256))
        })
        .await;
        let next_at = match due {
            Ok(Ok((alerts, next_at))) => {
                for alert in alerts {
                    if !lock(&in_flight).insert(alert.id) {
                        continue;
                    }
                    let task = Try {
                        engine: engine.clone(),
                        context: context.clone(),
                        in_flight: in_flight.clone(),
                        bell: feed.clone(),
                    };
                    let slots = slots.clone();
                    tokio::spawn(async move {
                        let Ok(_slot) = slots.acquire_owned().await else {
                            return;
                        };
                        task.send(alert).await;
                    });
                }
                next_at
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot read the alert outbox");
                None
            }
            Err(error) => {
                tracing::error!(%error, "reading the alert outbox panicked");
                None
            }
        };
        let wait = next_at
            .map(|at| Duration::from_millis((at - now_ms()).clamp(0, 60_000) as u64))
            .unwrap_or(IDLE_LOOK)
            .min(IDLE_LOOK);
        tokio::select! {
            _ = bell => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait() => return,
        }
    }
}

struct Try {
    engine: Arc<dyn Engine>,
    context: Context,
    in_flight: Arc<Mutex<HashSet<AlertId>>>,
    bell: Arc<crate::server::effects::Feed>,
}

impl Try {
    async fn send(self, alert: Alert) {
        let id = alert.id;
        let delivery = self.deliver(&alert).await;
        match &delivery {
            Delivery::Sent { .. } => {
                tracing::info!(alert = id, channel = %alert.channel, job = %alert.job_name,
                    event = alert.event.as_str(), "alert sent")
            }
            Delivery::Refused { answer } | Delivery::Undeliverable { answer } => {
                tracing::warn!(alert = id, channel = %alert.channel, %answer, "alert not delivered")
            }
        }
        let engine = self.engine.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            engine.propose(Command::AlertDelivered {
                alert: id,
                at: now_ms(),
                delivery,
            })
        })
        .await;
        if let Ok(Err(error)) = recorded {
            // Not recorded: the alert stays pending and is tried again (at least once).
            tracing::error!(alert = id, %error, "cannot record an alert delivery");
        }
        lock(&self.in_flight).remove(&id);
        // A retry is scheduled by the outcome just recorded; the loop looks again.
        self.bell.alerts_bell().notify_one();
    }

    async fn deliver(&self, alert: &Alert) -> Delivery {
        let engine = self.engine.clone();
        let name = alert.channel.clone();
        let channel = tokio::task::spawn_blocking(move || {
            engine.store().read().and_then(|read| read.channel(&name))
        })
        .await;
        let channel = match channel {
            Ok(Ok(Some(channel))) => channel,
            Ok(Ok(None)) => {
                return Delivery::Undeliverable {
                    answer: format!("channel {:?} no longer exists", alert.channel),
                };
            }
            Ok(Err(error)) => {
                return Delivery::Refused {
                    answer: format!("cannot read the channel: {error}"),
                };
            }
            Err(error) => {
                return Delivery::Refused {
                    answer: format!("reading the channel panicked: {error}"),
                };
            }
        };
        let sending = async {
            match &channel.target {
                ChannelTarget::Webhook {
                    url,
                    headers,
                    hmac_key,
                } => {
                    webhook::send_json(
                        &self.context,
                        url,
                        headers,
                        hmac_key.as_ref(),
                        alert,
                        &webhook::body(alert, &self.context.server_url),
                    )
                    .await
                }
                ChannelTarget::Slack { url } => {
                    let body = webhook::slack_body(alert, &self.context.server_url);
                    webhook::send_json(&self.context, url.expose(), &[], None, alert, &body).await
                }
                ChannelTarget::Email(target) => {
                    email::send(target, alert, &self.context.server_url).await
                }
            }
        };
        let delivery = match tokio::time::timeout(SEND_TIMEOUT, sending).await {
            Ok(delivery) => delivery,
            Err(_) => Delivery::Refused {
                answer: format!("no answer within {}s", SEND_TIMEOUT.as_secs()),
            },
        };
        cap(delivery)
    }
}

fn cap(delivery: Delivery) -> Delivery {
    let cut = |text: String| -> String {
        if text.len() <= ANSWER_LIMIT {
            return text;
        }
        let mut end = ANSWER_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    };
    match delivery {
        Delivery::Sent { answer } => Delivery::Sent {
            answer: cut(answer),
        },
        Delivery::Refused { answer } => Delivery::Refused {
            answer: cut(answer),
        },
        Delivery::Undeliverable { answer } => Delivery::Undeliverable {
            answer: cut(answer),
        },
    }
}

/// The command a person runs to look at the alert's instance.
pub fn show_command(alert: &Alert, server_url: &str) -> String {
    format!(
        "shoal instance show {} --server {server_url}",
        alert.instance
    )
}

/// Each critical section is one insert or remove; a poisoned lock still guards a valid set.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
