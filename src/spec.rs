//! The user-facing job format (TOML files, JSON API bodies, CLI flags all build a [`JobSpec`]) and
//! its validation into a [`JobDefinition`]. Validation is total: every field is checked, and the
//! first problem is reported with the field named and the fix. Nothing is stored before it passes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::alert::Chain;
use crate::alert::spec::AlertSpec;
use crate::model::{
    FireTiming, HttpTask, JobDefinition, MisfirePolicy, OverlapPolicy, RetryPolicy, Schedule,
    Strategy, Target, UnixMs,
};
use crate::schedule::cron_expr;

#[path = "spec_client.rs"]
mod client;
pub use client::TlsSpec;

/// Largest request body a task may send.
pub const MAX_TASK_BODY: usize = 64 * 1024;
pub const MAX_NAME_LEN: usize = 128;
pub const MAX_HEADERS: usize = 64;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
pub const DEFAULT_DISPATCH_TIMEOUT_MS: u64 = 10 * 60 * 1000;
pub const DEFAULT_BACKOFF_MS: u64 = 1_000;
pub const MAX_RETRIES: u32 = 100;
/// Fixed-rate schedules faster than this would flood the queue rather than schedule anything.
pub const MIN_INTERVAL_MS: u64 = 100;
/// Longest jitter: spreading fires over more than a day is a different schedule.
pub const MAX_JITTER_MS: u64 = 24 * 3600 * 1000;
/// The header a chained instance's request carries: the id of the instance whose end queued it.
pub const PARENT_HEADER: &str = "X-Shoal-Parent";
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A job as people write it. Exactly one of `cron`, `every`, `delay`, `at`, `on_demand`.
/// Durations are written like `500ms`, `30s`, `5m`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// RFC 3339 time, e.g. `2026-12-01T10:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub on_demand: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// RFC 3339: no scheduled fire before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// RFC 3339: no fire after this time; past it the job has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// Each scheduled fire runs up to this much later (a duration; fixed per fire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// Jobs (by name) queued when an instance of this one succeeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<String>,
    /// ... when it fails (retries exhausted or dispatch timeout).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<String>,
    /// ... when it succeeds or fails (not when cancelled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_complete: Vec<String>,
    pub http: HttpSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire: Option<String>,
    /// When the job already has `max_concurrent` instances: `skip` (default), `buffer-one`,
    /// `buffer-all` or `cancel-running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    /// Pause the job after this many failed instances in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_after_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// When and where its failures and recoveries alert (default: the default channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<Vec<u16>>,
    /// The response body must contain this text (a plain substring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// The response body must match this regular expression (Rust `regex` syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body_regex: Option<String>,
    /// Time to connect (TCP and TLS), within `timeout`, which bounds the whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// Send the request through this proxy, e.g. `http://127.0.0.1:3128`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    #[serde(default)]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<String>,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// A rejected field: which one, and why (with the fix where there is one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

type Result<T> = std::result::Result<T, FieldError>;

impl JobSpec {
    /// Parses a TOML job file. Syntax errors and unknown fields name the line and the key.
    pub fn from_toml(text: &str) -> Result<JobSpec> {
        toml::from_str(text).map_err(|error| invalid("file", error.to_string().trim().to_string()))
    }

    /// Parses a TOML job file and reads the files it names (relative to its directory) into it,
    /// so the job carries their content to the server (see [`JobSpec::read_files`]).
    pub fn from_toml_file(path: &Path) -> Result<JobSpec> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| invalid("file", format!("cannot read {}: {error}", path.display())))?;
        let mut spec = JobSpec::from_toml(&text)
            .map_err(|error| invalid("file", format!("{}: {}", path.display(), error.reason)))?;
        spec.read_files(path.parent().unwrap_or(Path::new(".")))?;
        Ok(spec)
    }

    /// Reads the PEM files named in `[http.tls]` (relative to `base`) into the spec. Done where
    /// the job is defined: a worker elsewhere needs the content, and the server reads no paths.
    pub fn read_files(&mut self, base: &Path) -> Result<()> {
        match &mut self.http.tls {
            Some(tls) => tls.read_files(base),
            None => Ok(()),
        }
    }

    pub fn validate(&self) -> Result<JobDefinition> {
        let name = validate_name(&self.name)?;
        let timezone = validate_timezone(self.timezone.as_deref())?;
        let schedule = self.validate_schedule()?;
        let timing = self.validate_timing(&schedule, &timezone)?;
        let http = validate_http(&self.http)?;
        let retry = match &self.retry {
            None => RetryPolicy::default(),
            Some(retry) => validate_retry(retry)?,
        };
        let target = match &self.target {
            None => Target::default(),
            Some(target) => validate_target(target)?,
        };
        let strategy = match self.strategy.as_deref() {
            None => Strategy::default(),
            Some(text) => parse_keyword(
                "strategy",
                text,
                &[
                    ("least-loaded", Strategy::LeastLoaded),
                    ("round-robin", Strategy::RoundRobin),
                    ("random", Strategy::Random),
                    ("consistent-hash", Strategy::ConsistentHash),
                    ("broadcast", Strategy::Broadcast),
                ],
            )?,
        };
        let misfire = match self.misfire.as_deref() {
            None => MisfirePolicy::default(),
            Some(text) => parse_keyword(
                "misfire",
                text,
                &[
                    ("fire-once", MisfirePolicy::FireOnce),
                    ("skip", MisfirePolicy::Skip),
                    ("fire-all", MisfirePolicy::FireAll),
                ],
            )?,
        };
        let overlap = match self.overlap.as_deref() {
            None => OverlapPolicy::default(),
            Some(text) => parse_keyword(
                "overlap",
                text,
                &[
                    ("skip", OverlapPolicy::Skip),
                    ("buffer-one", OverlapPolicy::BufferOne),
                    ("buffer-all", OverlapPolicy::BufferAll),
                    ("cancel-running", OverlapPolicy::CancelRunning),
                ],
            )?,
        };
        let pause_after_failures = match self.pause_after_failures {
            Some(0) => {
                return Err(invalid(
                    "pause_after_failures",
                    "must be at least 1 (omit it to never pause on failures)",
                ));
            }
            Some(n) if n > 1_000 => {
                return Err(invalid("pause_after_failures", "must be at most 1000"));
            }
            other => other,
        };
        let max_concurrent = match self.max_concurrent {
            Some(0) => {
                return Err(invalid(
                    "max_concurrent",
                    "must be at least 1 (omit it for the default of 1)",
                ));
            }
            Some(n) if n > 10_000 => {
                return Err(invalid("max_concurrent", "must be at most 10000"));
            }
            Some(n) => n,
            None => 1,
        };
        let dispatch_timeout_ms = match &self.dispatch_timeout {
            None => DEFAULT_DISPATCH_TIMEOUT_MS,
            Some(text) => positive_duration("dispatch_timeout", text, 7 * 24 * 3600 * 1000)?,
        };
        Ok(JobDefinition {
            name,
            schedule,
            timezone,
            http,
            retry,
            target,
            strategy,
            max_concurrent,
            dispatch_timeout_ms,
            misfire,
            paused: self.paused,
            timing,
            overlap,
            pause_after_failures,
            alerts: self
                .alerts
                .as_ref()
                .map(|alerts| alerts.validate().map(Box::new))
                .transpose()?,
            chain: self.validate_chain()?,
        })
    }

    /// The chained jobs' names (that they exist, and form no cycle, the state machine checks).
    fn validate_chain(&self) -> Result<Chain> {
        let chain = Chain {
            on_success: self.on_success.clone(),
            on_failure: self.on_failure.clone(),
            on_complete: self.on_complete.clone(),
        };
        for (field, names) in chain.fields() {
            if names.len() > 32 {
                return Err(invalid(field, "more than 32 jobs"));
            }
            for name in names {
                validate_name(name).map_err(|error| invalid(field, error.reason))?;
            }
        }
        Ok(chain)
    }

    /// The window and jitter: only for schedules that repeat (a window) or fire at all (a
    /// jitter), `end_at` after `start_at`, and a jitter shorter than the schedule's period so
    /// that fires stay in order.
    fn validate_timing(&self, schedule: &Schedule, timezone: &str) -> Result<FireTiming> {
        let start_at_ms = self
            .start_at
            .as_deref()
            .map(|text| parse_time("start_at", text))
            .transpose()?;
        let end_at_ms = self
            .end_at
            .as_deref()
            .map(|text| parse_time("end_at", text))
            .transpose()?;
        let repeats = matches!(
            schedule,
            Schedule::Cron { .. } | Schedule::FixedRate { .. } | Schedule::FixedDelay { .. }
        );
        for (field, given) in [("start_at", start_at_ms), ("end_at", end_at_ms)] {
            if given.is_some() && !repeats {
                return Err(invalid(
                    field,
                    "a window applies to cron, every and delay schedules; an `at` job fires \
                     once at its time and an on-demand job only when asked",
                ));
            }
        }
        if let (Some(start), Some(end)) = (start_at_ms, end_at_ms)
            && end <= start
        {
            return Err(invalid(
                "end_at",
                format!(
                    "{} is not after start_at ({})",
                    crate::model::rfc3339(end),
                    crate::model::rfc3339(start)
                ),
            ));
        }
        let jitter_ms = match &self.jitter {
            None => 0,
            Some(text) => positive_duration("jitter", text, MAX_JITTER_MS)?,
        };
        if jitter_ms > 0 {
            if *schedule == Schedule::OnDemand {
                return Err(invalid(
                    "jitter",
                    "an on-demand job has no scheduled fires to delay",
                ));
            }
            if let Some(period) = shortest_period(schedule, timezone)
                && jitter_ms >= period
            {
                return Err(invalid(
                    "jitter",
                    format!(
                        "{} is not shorter than the schedule's period ({}): fires would overtake \
                         each other; use a smaller jitter",
                        crate::model::human_ms(jitter_ms),
                        crate::model::human_ms(period)
                    ),
                ));
            }
        }
        Ok(FireTiming {
            start_at_ms,
            end_at_ms,
            jitter_ms,
        })
    }

    fn validate_schedule(&self) -> Result<Schedule> {
        let given: Vec<&str> = [
            ("cron", self.cron.is_some()),
            ("every", self.every.is_some()),
            ("delay", self.delay.is_some()),
            ("at", self.at.is_some()),
            ("on_demand", self.on_demand),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
        match given.as_slice() {
            [] => Err(invalid(
                "schedule",
                "missing: give one of cron, every, delay, at or on_demand",
            )),
            [_] => Ok(()),
            many => Err(invalid(
                "schedule",
                format!("{} given; give exactly one", many.join(" and ")),
            )),
        }?;
        if let Some(expr) = &self.cron {
            let normalized = cron_expr::parse(expr).map_err(|reason| invalid("cron", reason))?;
            return Ok(Schedule::Cron {
                expr: normalized.source,
            });
        }
        if let Some(every) = &self.every {
            let every_ms = positive_duration("every", every, 366 * 24 * 3600 * 1000)?;
            if every_ms < MIN_INTERVAL_MS {
                return Err(invalid(
                    "every",
                    format!("must be at least {MIN_INTERVAL_MS}ms"),
                ));
            }
            return Ok(Schedule::FixedRate { every_ms });
        }
        if let Some(delay) = &self.delay {
            let delay_ms = positive_duration("delay", delay, 366 * 24 * 3600 * 1000)?;
            return Ok(Schedule::FixedDelay { delay_ms });
        }
        if let Some(at) = &self.at {
            return Ok(Schedule::Once {
                at_ms: parse_time("at", at)?,
            });
        }
        Ok(Schedule::OnDemand)
    }
}

impl JobDefinition {
    /// The definition to store: a `<redacted>` client key (what the API shows for a stored key)
    /// is replaced by the key stored with the job being updated (`stored`); with none stored it
    /// is refused, naming the field.
    pub fn with_stored_key(mut self, stored: Option<&JobDefinition>) -> Result<JobDefinition> {
        client::restore_key(&mut self.http.client, stored.map(|s| &s.http.client))?;
        Ok(self)
    }

    /// The definition back in the user-facing form (for `job show`, the console and round trips).
    pub fn to_spec(&self) -> JobSpec {
        let mut spec = JobSpec {
            name: self.name.clone(),
            timezone: (self.timezone != "UTC").then(|| self.timezone.clone()),
            http: HttpSpec {
                method: Some(self.http.method.clone()),
                url: self.http.url.clone(),
                headers: self.http.headers.iter().cloned().collect(),
                body: self.http.body.clone(),
                timeout: Some(crate::model::human_ms(self.http.timeout_ms)),
                expect_status: (!self.http.expect_status.is_empty())
                    .then(|| self.http.expect_status.clone()),
                expect_body: self.http.expect_body.clone(),
                expect_body_regex: self.http.expect_body_regex.clone(),
                connect_timeout: self
                    .http
                    .client
                    .connect_timeout_ms
                    .map(crate::model::human_ms),
                proxy: self.http.client.proxy.clone(),
                tls: self.http.client.tls.as_ref().map(client::tls_to_spec),
            },
            retry: (self.retry != RetryPolicy::default()).then(|| RetrySpec {
                count: self.retry.count,
                backoff: Some(crate::model::human_ms(self.retry.backoff_ms)),
            }),
            target: (self.target != Target::default()).then(|| TargetSpec {
                tags: self.target.tags.clone(),
                workers: self.target.workers.clone(),
            }),
            strategy: Some(keyword_of(&self.strategy)),
            max_concurrent: Some(self.max_concurrent),
            dispatch_timeout: Some(crate::model::human_ms(self.dispatch_timeout_ms)),
            misfire: Some(keyword_of(&self.misfire)),
            overlap: (!self.overlap.is_skip()).then(|| keyword_of(&self.overlap)),
            pause_after_failures: self.pause_after_failures,
            paused: self.paused,
            start_at: self.timing.start_at_ms.map(crate::model::rfc3339),
            end_at: self.timing.end_at_ms.map(crate::model::rfc3339),
            jitter: (self.timing.jitter_ms > 0)
                .then(|| crate::model::human_ms(self.timing.jitter_ms)),
            alerts: self.alerts.as_ref().map(|policy| policy.to_spec()),
            on_success: self.chain.on_success.clone(),
            on_failure: self.chain.on_failure.clone(),
            on_complete: self.chain.on_complete.clone(),
            ..JobSpec::default()
        };
        match &self.schedule {
            Schedule::Cron { expr } => spec.cron = Some(expr.clone()),
            Schedule::FixedRate { every_ms } => {
                spec.every = Some(crate::model::human_ms(*every_ms))
            }
            Schedule::FixedDelay { delay_ms } => {
                spec.delay = Some(crate::model::human_ms(*delay_ms))
            }
            Schedule::Once { at_ms } => spec.at = Some(crate::model::rfc3339(*at_ms)),
            Schedule::OnDemand => spec.on_demand = true,
        }
        spec
    }
}

/// The kebab-case keyword serde gives a unit variant.
fn keyword_of(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn validate_name(name: &str) -> Result<String> {
    if name.trim().is_empty() {
        return Err(invalid("name", "missing: every job needs a unique name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("name", format!("longer than {MAX_NAME_LEN} bytes")));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
    {
        return Err(invalid(
            "name",
            format!("{name:?} contains {bad:?}; use letters, digits and - _ . : /"),
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            "name",
            "must not be all digits (numbers are job ids)",
        ));
    }
    Ok(name.to_string())
}

fn validate_timezone(timezone: Option<&str>) -> Result<String> {
    let Some(name) = timezone else {
        return Ok("UTC".to_string());
    };
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        invalid(
            "timezone",
            format!("{name:?} is not a known IANA timezone; write e.g. UTC, Europe/Paris, America/New_York"),
        )
    })?;
    Ok(name.to_string())
}

fn validate_http(spec: &HttpSpec) -> Result<HttpTask> {
    let method = spec.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(invalid(
            "http.method",
            format!(
                "{method:?} is not supported; use one of {}",
                METHODS.join(", ")
            ),
        ));
    }
    if spec.url.trim().is_empty() {
        return Err(invalid("http.url", "missing: the URL the task requests"));
    }
    // The URL parser silently drops tabs and newlines; refuse them instead of storing them.
    if let Some(bad) = spec
        .url
        .chars()
        .find(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(
            "http.url",
            format!("contains {bad:?}; percent-encode spaces and control characters"),
        ));
    }
    let url = url::Url::parse(&spec.url)
        .map_err(|error| invalid("http.url", format!("{:?} is not a URL: {error}", spec.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "http.url",
            format!(
                "scheme {:?} is not supported; use http:// or https://",
                url.scheme()
            ),
        ));
    }
    if !url.has_host() || url.host_str().is_some_and(str::is_empty) {
        return Err(invalid("http.url", "has no host"));
    }
    if spec.headers.len() > MAX_HEADERS {
        return Err(invalid(
            "http.headers",
            format!("more than {MAX_HEADERS} headers"),
        ));
    }
    let mut headers = Vec::with_capacity(spec.headers.len());
    for (name, value) in &spec.headers {
        let field = format!("http.headers.{name}");
        reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(&field, "is not a valid header name (letters, digits and -)"))?;
        if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            return Err(invalid(&field, "value contains CR, LF or NUL"));
        }
        reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| invalid(&field, "value has characters not allowed in a header"))?;
        if name.eq_ignore_ascii_case("x-shoal-instance") || name.eq_ignore_ascii_case(PARENT_HEADER)
        {
            return Err(invalid(&field, "is set by Shoal on every request"));
        }
        headers.push((name.clone(), value.clone()));
    }
    if let Some(body) = &spec.body
        && body.len() > MAX_TASK_BODY
    {
        return Err(invalid(
            "http.body",
            format!("{} bytes; the limit is {MAX_TASK_BODY}", body.len()),
        ));
    }
    let timeout_ms = match &spec.timeout {
        None => DEFAULT_TIMEOUT_MS,
        Some(text) => positive_duration("http.timeout", text, MAX_TIMEOUT_MS)?,
    };
    let expect_status = spec.expect_status.clone().unwrap_or_default();
    if let Some(bad) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(invalid(
            "http.expect_status",
            format!("{bad} is not an HTTP status (100–599)"),
        ));
    }
    if let Some(expect) = &spec.expect_body
        && (expect.is_empty() || expect.len() > 1024)
    {
        return Err(invalid("http.expect_body", "must be 1–1024 bytes"));
    }
    if let Some(pattern) = &spec.expect_body_regex {
        crate::http_options::compile_body_regex(pattern)
            .map_err(|reason| invalid("http.expect_body_regex", reason))?;
    }
    let client = client::validate_client(spec, &url, timeout_ms)?;
    Ok(HttpTask {
        method,
        url: spec.url.clone(),
        headers,
        body: spec.body.clone(),
        timeout_ms,
        expect_status,
        expect_body: spec.expect_body.clone(),
        expect_body_regex: spec.expect_body_regex.clone(),
        client,
    })
}

fn validate_retry(spec: &RetrySpec) -> Result<RetryPolicy> {
    if spec.count > MAX_RETRIES {
        return Err(invalid("retry.count", format!("at most {MAX_RETRIES}")));
    }
    let backoff_ms = match &spec.backoff {
        None => DEFAULT_BACKOFF_MS,
        Some(text) => positive_duration("retry.backoff", text, 3600 * 1000)?,
    };
    Ok(RetryPolicy {
        count: spec.count,
        backoff_ms,
    })
}

fn validate_target(spec: &TargetSpec) -> Result<Target> {
    for tag in &spec.tags {
        shoal_gossip::validate_tag(tag).map_err(|reason| invalid("target.tags", reason))?;
    }
    for worker in &spec.workers {
        if worker.is_empty() || worker.len() > 128 {
            return Err(invalid("target.workers", "worker ids are 1–128 characters"));
        }
    }
    Ok(Target {
        tags: spec.tags.clone(),
        workers: spec.workers.clone(),
    })
}

fn parse_keyword<T: Copy>(field: &str, text: &str, choices: &[(&str, T)]) -> Result<T> {
    choices
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            invalid(
                field,
                format!("{text:?} is not one of {}", names.join(", ")),
            )
        })
}

/// A duration that must be above zero and at most `max_ms`.
pub fn positive_duration(field: &str, text: &str, max_ms: u64) -> Result<u64> {
    let duration = humantime::parse_duration(text.trim()).map_err(|error| {
        invalid(
            field,
            format!("{text:?} is not a duration ({error}); write e.g. 500ms, 30s, 5m"),
        )
    })?;
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(invalid(field, "must be greater than zero"));
    }
    if ms > max_ms {
        return Err(invalid(
            field,
            format!(
                "{text} is longer than the limit of {}",
                crate::model::human_ms(max_ms)
            ),
        ));
    }
    Ok(ms)
}

/// The shortest time between two fires: a fixed rate's interval, or for cron the smallest gap
/// among its next fires (a cron's gaps vary: weekdays at 12:00 have gaps of one and three days).
fn shortest_period(schedule: &Schedule, timezone: &str) -> Option<u64> {
    match schedule {
        Schedule::FixedRate { every_ms } => Some(*every_ms),
        Schedule::Cron { expr } => {
            let parsed = cron_expr::parse(expr).ok()?;
            let tz: chrono_tz::Tz = timezone.parse().ok()?;
            let now = chrono::Utc::now().with_timezone(&tz);
            let mut previous = crate::schedule::next_cron_time(&parsed.schedule, &now)?;
            let mut shortest: Option<u64> = None;
            for _ in 0..50 {
                let Some(next) = crate::schedule::next_cron_time(&parsed.schedule, &previous)
                else {
                    break;
                };
                let gap = (next.timestamp_millis() - previous.timestamp_millis()) as u64;
                shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
                previous = next;
            }
            shortest
        }
        _ => None,
    }
}

/// An RFC 3339 time; the error names `field`.
pub fn parse_time(field: &str, text: &str) -> Result<UnixMs> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|error| {
            invalid(
                field,
                format!(
                    "{text:?} is not an RFC 3339 time ({error}); write e.g. 2026-12-01T10:00:00Z"
                ),
            )
        })
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
