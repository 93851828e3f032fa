//! Fixtures shared by the unit tests: a job spec whose task aims at a closed local port, and a
//! job stored under a fresh id.

use crate::model::{Job, JobDefinition, UnixMs};
use crate::server::store::{Store, StoreError};
use crate::spec::{HttpSpec, JobSpec};

/// A spec named `name` with a task to `http://127.0.0.1:9/` (discard; nothing listens) and no
/// schedule yet: the caller sets one (`every`, `cron`, `on_demand` …).
pub fn spec(name: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        http: HttpSpec {
            url: "http://127.0.0.1:9/".into(),
            ..HttpSpec::default()
        },
        ..JobSpec::default()
    }
}

/// An on-demand [`spec`], validated.
pub fn on_demand(name: &str) -> JobDefinition {
    JobSpec {
        on_demand: true,
        ..spec(name)
    }
    .validate()
    .unwrap()
}

/// `def` as a job with its own `id` (not stored).
pub fn job(id: u64, def: JobDefinition) -> Job {
    Job {
        id,
        def,
        created_ms: 1,
        updated_ms: 1,
        next_fire_ms: None,
        health: Default::default(),
    }
}

/// Stores `def` under the next job id, with `next_fire` as its next fire.
pub fn store_job(store: &Store, def: JobDefinition, next_fire: Option<UnixMs>) -> Job {
    store
        .write(|tx| {
            let job = Job {
                next_fire_ms: next_fire,
                ..job(tx.next_job_id()?, def.clone())
            };
            tx.put_job(&job)?;
            Ok::<_, StoreError>(job)
        })
        .unwrap()
}

/// The local engine over `store`, for tests that propose commands.
pub fn engine(store: &std::sync::Arc<Store>) -> crate::server::engine::LocalEngine {
    crate::server::engine::LocalEngine::new(store.clone())
}
