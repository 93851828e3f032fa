//! The worker's HTTP clients and compiled body regexes. A job without client options runs on the
//! one shared pooled client, with no lock and no lookup (the hot path `shoal_bench throughput`
//! measures). A job with options (TLS, proxy, connect timeout) runs on a client built for exactly
//! those options, kept in a bounded LRU cache so its connections are pooled across runs; body
//! regexes are compiled once and cached the same way.
//!
//! Never builds a client while holding a cache lock (building loads certificates), and never logs
//! the options (they may hold a private key).

use std::borrow::Cow;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::http_options::{self, ClientOptions};

/// Most dedicated clients kept: one per distinct set of options in use. A job evicted and run
/// again only pays a new client (and new connections).
const CLIENT_CACHE: NonZeroUsize = NonZeroUsize::new(64).expect("non-zero");
/// Most compiled body regexes kept.
const REGEX_CACHE: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");

pub struct HttpClients {
    shared: reqwest::Client,
    dedicated: Mutex<LruCache<ClientOptions, reqwest::Client>>,
    regexes: Mutex<LruCache<String, regex::Regex>>,
}

impl HttpClients {
    pub fn new() -> anyhow::Result<HttpClients> {
        let shared = http_options::build_client(&ClientOptions::default())
            .map_err(|error| anyhow::anyhow!("building the worker's HTTP client: {error}"))?;
        Ok(HttpClients {
            shared,
            dedicated: Mutex::new(LruCache::new(CLIENT_CACHE)),
            regexes: Mutex::new(LruCache::new(REGEX_CACHE)),
        })
    }

    /// The client for a task with these options.
    pub fn client(&self, options: &ClientOptions) -> Result<Cow<'_, reqwest::Client>, String> {
        if options.is_default() {
            return Ok(Cow::Borrowed(&self.shared));
        }
        if let Some(client) = lock(&self.dedicated).get(options) {
            return Ok(Cow::Owned(client.clone()));
        }
        // Two tasks may build the same client at once; the second simply replaces the first.
        let client = http_options::build_client(options).map_err(|error| error.to_string())?;
        lock(&self.dedicated).put(options.clone(), client.clone());
        Ok(Cow::Owned(client))
    }

    /// The compiled body regex (cloning a `Regex` shares its compiled program).
    pub fn body_regex(&self, pattern: &str) -> Result<regex::Regex, String> {
        if let Some(regex) = lock(&self.regexes).get(pattern) {
            return Ok(regex.clone());
        }
        let regex = http_options::compile_body_regex(pattern)
            .map_err(|reason| format!("http.expect_body_regex {reason}"))?;
        lock(&self.regexes).put(pattern.to_string(), regex.clone());
        Ok(regex)
    }

    /// How many dedicated clients are cached (for tests).
    #[cfg(test)]
    fn dedicated_count(&self) -> usize {
        lock(&self.dedicated).len()
    }
}

/// A poisoned cache is still a valid cache: a panic cannot leave an entry half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_share_one_client_and_others_are_cached_per_options() {
        let clients = HttpClients::new().unwrap();
        assert!(matches!(
            clients.client(&ClientOptions::default()),
            Ok(Cow::Borrowed(_))
        ));
        assert_eq!(clients.dedicated_count(), 0);
        let short = ClientOptions {
            connect_timeout_ms: Some(500),
            ..ClientOptions::default()
        };
        clients.client(&short).unwrap();
        clients.client(&short).unwrap();
        assert_eq!(
            clients.dedicated_count(),
            1,
            "the same options reuse their client"
        );
        let proxied = ClientOptions {
            proxy: Some("http://127.0.0.1:3128".into()),
            ..ClientOptions::default()
        };
        clients.client(&proxied).unwrap();
        assert_eq!(clients.dedicated_count(), 2);
        for ms in 0..(CLIENT_CACHE.get() as u64 + 10) {
            clients
                .client(&ClientOptions {
                    connect_timeout_ms: Some(1000 + ms),
                    ..ClientOptions::default()
                })
                .unwrap();
        }
        assert_eq!(clients.dedicated_count(), CLIENT_CACHE.get(), "bounded");
    }

    #[test]
    fn body_regexes_compile_once_and_bad_ones_name_the_field() {
        let clients = HttpClients::new().unwrap();
        assert!(clients.body_regex("^o+k$").unwrap().is_match("ook"));
        assert_eq!(lock(&clients.regexes).len(), 1);
        clients.body_regex("^o+k$").unwrap();
        assert_eq!(lock(&clients.regexes).len(), 1);
        let error = clients.body_regex("(").unwrap_err();
        assert!(error.starts_with("http.expect_body_regex"), "{error}");
    }
}
