//! History retention: finds finished instances that are older than the age limit, or beyond the
//! newest `per_job` of their job, and alerts settled (sent or given up) longer ago than the age
//! limit, in bounded batches; forgetting them is a command each (`Forget`, `ForgetAlerts`). Never
//! touches an unfinished instance or a pending alert: retention only forgets history, it never
//! loses work. Freed pages are reused by redb, so under a steady load the file stops growing.

use redb::ReadableTable;

use super::tables::{ACTIVE, ALERTS, INSTANCES, JOB_INSTANCES};
use super::{Result, Store, WriteTx, db_error, decode};
use crate::alert::{Alert, AlertId, AlertStatus};
use crate::model::{Instance, InstanceId, JobId, UnixMs};

/// How much finished history to keep. `None` keeps everything on that axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished instances whose last change is older than this are deleted, and so are alerts
    /// sent or given up longer ago.
    pub max_age_ms: Option<u64>,
    /// Per job, only this many of the newest instances are kept (older finished ones go).
    pub per_job: Option<u64>,
}

impl Default for Retention {
    /// A week, and 1000 instances per job.
    fn default() -> Self {
        Retention {
            max_age_ms: Some(7 * 24 * 3600 * 1000),
            per_job: Some(1000),
        }
    }
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Finished instances past the age limit.
    pub by_age: u64,
    /// Finished instances beyond their job's `per_job`.
    pub by_count: u64,
    /// Settled alerts past the age limit.
    pub alerts: u64,
}

impl Swept {
    pub fn total(&self) -> u64 {
        self.by_age + self.by_count + self.alerts
    }

    /// Whether a sweep of batches of `batch` filled one: more may be due.
    pub fn full(&self, batch: usize) -> bool {
        let batch = batch as u64;
        self.by_age + self.by_count >= batch || self.alerts >= batch
    }
}

impl Store {
    /// Up to `batch` finished instances past the policy, as (job, instance) keys, found in a
    /// read snapshot (no write lock held while scanning). Forgetting them is a command
    /// (`Command::Forget`), applied with [`WriteTx::forget_finished`]; a finished instance never
    /// changes, so what the snapshot saw still holds then.
    pub fn expired(
        &self,
        policy: &Retention,
        now: UnixMs,
        batch: usize,
    ) -> Result<(Vec<(JobId, InstanceId)>, Swept)> {
        let mut doomed: Vec<(JobId, InstanceId)> = Vec::new();
        let mut swept = Swept::default();
        let txn = self.read()?.txn;
        let instances = txn.open_table(INSTANCES).map_err(db_error)?;
        let active = txn.open_table(ACTIVE).map_err(db_error)?;
        if let Some(max_age) = policy.max_age_ms {
            let cutoff = now.saturating_sub(i64::try_from(max_age).unwrap_or(i64::MAX));
            // Ids grow with creation time: walk from the oldest until one is too young to have
            // expired (an instance is never changed before it was created).
            for entry in instances.iter().map_err(db_error)? {
                if doomed.len() >= batch {
                    break;
                }
                let (_, bytes) = entry.map_err(db_error)?;
                let instance: Instance = decode("instances", bytes.value())?;
                if instance.created_ms >= cutoff {
                    break;
                }
                if instance.state.is_terminal() && instance.updated_ms < cutoff {
                    doomed.push((instance.job_id, instance.id));
                    swept.by_age += 1;
                }
            }
        }
        if let Some(keep) = policy.per_job {
            let by_job = txn.open_table(JOB_INSTANCES).map_err(db_error)?;
            let mut next_job: JobId = 0;
            'jobs: while doomed.len() < batch {
                let Some(first) = by_job
                    .range((next_job, 0)..)
                    .map_err(db_error)?
                    .next()
                    .transpose()
                    .map_err(db_error)?
                else {
                    break;
                };
                let job = first.0.value().0;
                let range = (job, 0)..=(job, InstanceId::MAX);
                let count = by_job.range(range.clone()).map_err(db_error)?.count() as u64;
                // The oldest `excess` go, except the unfinished ones among them.
                let mut excess = count.saturating_sub(keep);
                for entry in by_job.range(range).map_err(db_error)? {
                    if excess == 0 {
                        break;
                    }
                    if doomed.len() >= batch {
                        break 'jobs;
                    }
                    let key = entry.map_err(db_error)?.0.value();
                    excess -= 1;
                    if active.get(key).map_err(db_error)?.is_none() && !doomed.contains(&key) {
                        doomed.push(key);
                        swept.by_count += 1;
                    }
                }
                match job.checked_add(1) {
                    Some(next) => next_job = next,
                    None => break,
                }
            }
        }
        Ok((doomed, swept))
    }

    /// Up to `batch` alerts settled (sent or given up) before `now` minus the age limit, oldest
    /// first, found in a read snapshot; none when the policy keeps everything by age. Forgetting
    /// them is a command (`Command::ForgetAlerts`); a settled alert never changes, so what the
    /// snapshot saw still holds then.
    pub fn expired_alerts(
        &self,
        policy: &Retention,
        now: UnixMs,
        batch: usize,
    ) -> Result<Vec<AlertId>> {
        let Some(max_age) = policy.max_age_ms else {
            return Ok(Vec::new());
        };
        let cutoff = now.saturating_sub(i64::try_from(max_age).unwrap_or(i64::MAX));
        let txn = self.read()?.txn;
        let alerts = txn.open_table(ALERTS).map_err(db_error)?;
        let mut doomed = Vec::new();
        // Ids grow with creation time, and an alert settles after it was raised: walk from the
        // oldest until one is too young to have settled before the cutoff.
        for entry in alerts.iter().map_err(db_error)? {
            if doomed.len() >= batch {
                break;
            }
            let (_, bytes) = entry.map_err(db_error)?;
            let alert: Alert = decode("alerts", bytes.value())?;
            if alert.created_ms >= cutoff {
                break;
            }
            match alert.status {
                AlertStatus::Sent { at_ms } | AlertStatus::Failed { at_ms } if at_ms < cutoff => {
                    doomed.push(alert.id);
                }
                _ => {}
            }
        }
        Ok(doomed)
    }

    /// The size of the database file in bytes.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

impl WriteTx {
    /// Deletes the given instances and their index entries, skipping any that is unfinished (or
    /// already gone): retention forgets history, never work. Returns how many were deleted.
    pub fn forget_finished(&mut self, keys: &[(JobId, InstanceId)]) -> Result<u64> {
        let active = self.txn.open_table(ACTIVE).map_err(db_error)?;
        let mut instances = self.txn.open_table(INSTANCES).map_err(db_error)?;
        let mut by_job = self.txn.open_table(JOB_INSTANCES).map_err(db_error)?;
        let mut forgotten = 0;
        for key in keys {
            if active.get(*key).map_err(db_error)?.is_some() {
                continue;
            }
            if instances.remove(key.1).map_err(db_error)?.is_some() {
                forgotten += 1;
            }
            by_job.remove(*key).map_err(db_error)?;
        }
        Ok(forgotten)
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
