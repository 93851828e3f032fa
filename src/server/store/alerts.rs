//! The store's side of alerts and chains: channels, what the alert rule remembers per job, and
//! the alert outbox with its index of pending deliveries. Typed reads and writes only; what to
//! write is decided by the state machine.

use redb::{ReadableTable, ReadableTableMetadata};

use super::tables::*;
use super::{ReadTx, Result, WriteTx, db_error, decode, encode, key_ms};
use crate::alert::{Alert, AlertId, AlertStatus, ChannelDefinition, JobHealth};
use crate::model::{Job, JobId, UnixMs};

pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(CHANNELS).map_err(db_error)?;
    txn.open_table(JOB_HEALTH).map_err(db_error)?;
    txn.open_table(ALERTS).map_err(db_error)?;
    txn.open_table(ALERTS_DUE).map_err(db_error)?;
    Ok(())
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// `pending`, `sent` or `failed`; empty: all.
    pub statuses: Vec<String>,
    pub job_id: Option<JobId>,
    pub limit: usize,
}

fn channels_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<ChannelDefinition>> {
    let mut out = Vec::new();
    for entry in table.iter().map_err(db_error)? {
        let (_, bytes) = entry.map_err(db_error)?;
        out.push(decode("channels", bytes.value())?);
    }
    Ok(out)
}

fn channel_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<ChannelDefinition>> {
    match table.get(name).map_err(db_error)? {
        Some(bytes) => Ok(Some(decode("channels", bytes.value())?)),
        None => Ok(None),
    }
}

impl ReadTx {
    pub fn channels(&self) -> Result<Vec<ChannelDefinition>> {
        channels_in(&self.txn.open_table(CHANNELS).map_err(db_error)?)
    }

    pub fn channel(&self, name: &str) -> Result<Option<ChannelDefinition>> {
        channel_in(&self.txn.open_table(CHANNELS).map_err(db_error)?, name)
    }

    pub fn alert(&self, id: AlertId) -> Result<Option<Alert>> {
        let table = self.txn.open_table(ALERTS).map_err(db_error)?;
        match table.get(id).map_err(db_error)? {
            Some(bytes) => Ok(Some(decode("alerts", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Alerts newest first, filtered.
    pub fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>> {
        let table = self.txn.open_table(ALERTS).map_err(db_error)?;
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_error)?.rev() {
            let (_, bytes) = entry.map_err(db_error)?;
            let alert: Alert = decode("alerts", bytes.value())?;
            let status_ok = filter.statuses.is_empty()
                || filter.statuses.iter().any(|s| s == alert.status.as_str());
            if status_ok && filter.job_id.is_none_or(|id| id == alert.job_id) {
                out.push(alert);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Pending alerts due by `now`, earliest first, at most `limit`; and the next due time
    /// after those (when the delivery loop should look again).
    pub fn due_alerts(&self, now: UnixMs, limit: usize) -> Result<(Vec<Alert>, Option<UnixMs>)> {
        let due = self.txn.open_table(ALERTS_DUE).map_err(db_error)?;
        let alerts = self.txn.open_table(ALERTS).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in due.iter().map_err(db_error)? {
            let (at, id) = entry.map_err(db_error)?.0.value();
            if at > key_ms(now) || out.len() >= limit {
                return Ok((out, Some(at as UnixMs)));
            }
            if let Some(bytes) = alerts.get(id).map_err(db_error)? {
                out.push(decode("alerts", bytes.value())?);
            }
        }
        Ok((out, None))
    }

    pub fn alert_count(&self) -> Result<u64> {
        self.txn
            .open_table(ALERTS)
            .map_err(db_error)?
            .len()
            .map_err(db_error)
    }
}

impl WriteTx {
    pub fn next_alert_id(&mut self) -> Result<AlertId> {
        self.next_id(NEXT_ALERT_KEY)
    }

    pub fn channel(&self, name: &str) -> Result<Option<ChannelDefinition>> {
        channel_in(&self.txn.open_table(CHANNELS).map_err(db_error)?, name)
    }

    pub fn channels(&self) -> Result<Vec<ChannelDefinition>> {
        channels_in(&self.txn.open_table(CHANNELS).map_err(db_error)?)
    }

    pub fn put_channel(&mut self, channel: &ChannelDefinition) -> Result<()> {
        self.txn
            .open_table(CHANNELS)
            .map_err(db_error)?
            .insert(channel.name.as_str(), encode(channel).as_slice())
            .map_err(db_error)?;
        Ok(())
    }

    pub fn delete_channel(&mut self, name: &str) -> Result<()> {
        self.txn
            .open_table(CHANNELS)
            .map_err(db_error)?
            .remove(name)
            .map_err(db_error)?;
        Ok(())
    }

    /// Every job (for checks that span jobs: who references a channel, chain cycles).
    pub fn all_jobs(&self) -> Result<Vec<Job>> {
        let table = self.txn.open_table(JOBS).map_err(db_error)?;
        let mut jobs = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (_, bytes) = entry.map_err(db_error)?;
            jobs.push(decode("jobs", bytes.value())?);
        }
        Ok(jobs)
    }

    pub fn job_health(&self, job_id: JobId) -> Result<JobHealth> {
        let table = self.txn.open_table(JOB_HEALTH).map_err(db_error)?;
        match table.get(job_id).map_err(db_error)? {
            Some(bytes) => decode("job_health", bytes.value()),
            None => Ok(JobHealth::default()),
        }
    }

    /// Stores what the alert rule remembers of a job; the default (nothing) is not stored.
    pub fn put_job_health(&mut self, job_id: JobId, health: &JobHealth) -> Result<()> {
        let mut table = self.txn.open_table(JOB_HEALTH).map_err(db_error)?;
        if *health == JobHealth::default() {
            table.remove(job_id).map_err(db_error)?;
        } else {
            table
                .insert(job_id, encode(health).as_slice())
                .map_err(db_error)?;
        }
        Ok(())
    }

    pub fn alert(&self, id: AlertId) -> Result<Option<Alert>> {
        let table = self.txn.open_table(ALERTS).map_err(db_error)?;
        match table.get(id).map_err(db_error)? {
            Some(bytes) => Ok(Some(decode("alerts", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Deletes the given alerts that are settled (sent or given up), skipping any still pending
    /// (or already gone): retention forgets history, never an alert not yet delivered. Settled
    /// alerts are not in the pending index, so only the record goes. Returns how many went.
    pub fn forget_settled_alerts(&mut self, ids: &[AlertId]) -> Result<u64> {
        let mut table = self.txn.open_table(ALERTS).map_err(db_error)?;
        let mut forgotten = 0;
        for id in ids {
            let settled = match table.get(*id).map_err(db_error)? {
                Some(bytes) => {
                    let alert: Alert = decode("alerts", bytes.value())?;
                    !matches!(alert.status, AlertStatus::Pending { .. })
                }
                None => false,
            };
            if settled {
                table.remove(*id).map_err(db_error)?;
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// Inserts or replaces an alert, keeping the pending index in step. `previous` is its status
    /// as stored (`None` for a new alert).
    pub fn put_alert(&mut self, previous: Option<&AlertStatus>, alert: &Alert) -> Result<()> {
        let mut due = self.txn.open_table(ALERTS_DUE).map_err(db_error)?;
        if let Some(AlertStatus::Pending { next_at_ms }) = previous {
            due.remove((key_ms(*next_at_ms), alert.id))
                .map_err(db_error)?;
        }
        if let AlertStatus::Pending { next_at_ms } = alert.status {
            due.insert((key_ms(next_at_ms), alert.id), ())
                .map_err(db_error)?;
        }
        drop(due);
        self.txn
            .open_table(ALERTS)
            .map_err(db_error)?
            .insert(alert.id, encode(alert).as_slice())
            .map_err(db_error)?;
        Ok(())
    }
}
