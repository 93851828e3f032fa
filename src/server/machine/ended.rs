//! What an instance's end sets off, decided inside the command that ended it: the chained jobs'
//! instances it queues, and the alerts it raises into the outbox (by [`alert::decide`] on what
//! the store remembers of the job and the command's time). Both are written in the same
//! transaction as the end itself, so a crash can lose neither. Also the outcome of a delivery
//! try, as the delivery loop reports it.
//!
//! Nothing here sends anything; the delivery loop (`server::alerts`) does, after the commit.

use super::job_cache::JobCache;
use super::{Result, create_instance_with_parent};
use crate::alert::{self, Alert, AlertPolicy, AlertStatus, Delivery, Ending};
use crate::model::{Instance, InstanceState, Job, Trigger, UnixMs};
use crate::server::effects::Effects;
use crate::server::store::{StoreError, WriteTx};

/// Called with an instance about to be written in a terminal state (`ended`): queues its chain's
/// instances (recording them as its children) and raises its alerts. `expired`: it failed by
/// its dispatch timeout. A cancelled instance sets off nothing. Jobs are read through the
/// command's `jobs`.
pub(super) fn on_end(
    tx: &mut WriteTx,
    effects: &mut Effects,
    jobs: &mut JobCache,
    ended: &mut Instance,
    expired: bool,
    at: UnixMs,
) -> Result<()> {
    let ending = match ended.state {
        InstanceState::Succeeded => Ending::Succeeded,
        InstanceState::Failed { .. } if expired => Ending::Expired,
        InstanceState::Failed { .. } => Ending::Failed,
        _ => return Ok(()),
    };
    let Some(job) = jobs.get(tx, ended.job_id)? else {
        return Ok(());
    };
    chain(
        tx,
        effects,
        jobs,
        &job,
        ended,
        ending == Ending::Succeeded,
        at,
    )?;
    raise(tx, effects, &job, ended, ending, at)?;
    Ok(())
}

fn chain(
    tx: &mut WriteTx,
    effects: &mut Effects,
    jobs: &mut JobCache,
    job: &Job,
    ended: &mut Instance,
    succeeded: bool,
    at: UnixMs,
) -> Result<()> {
    for name in job.def.chain.targets(succeeded) {
        let child_job = match tx.job_id_by_name(name)? {
            Some(id) => jobs.get(tx, id)?,
            None => None,
        };
        let Some(child_job) = child_job else {
            // Deleting a chained job is refused; this is a record from before that rule.
            continue;
        };
        if child_job.def.paused {
            tracing::info!(parent = ended.id, job = %name, "chained job is paused: not queued");
            continue;
        }
        // Like a backfill, a chained run is not limited by the child's max_concurrent: a chain
        // never drops a step silently.
        let child = create_instance_with_parent(tx, &child_job, Trigger::Chain, ended.id, at)?;
        ended.children.push(child.id);
        effects.queued = true;
    }
    Ok(())
}

/// The policy of `job`: its own, or the default channels' when it has no `[alerts]` table.
fn policy_of(tx: &WriteTx, job: &Job) -> Result<Option<AlertPolicy>, StoreError> {
    if let Some(policy) = &job.def.alerts {
        return Ok(Some((**policy).clone()));
    }
    let defaults: Vec<String> = tx
        .channels()?
        .into_iter()
        .filter(|c| c.default)
        .map(|c| c.name)
        .collect();
    Ok((!defaults.is_empty()).then(|| AlertPolicy::default_for(defaults)))
}

fn raise(
    tx: &mut WriteTx,
    effects: &mut Effects,
    job: &Job,
    ended: &Instance,
    ending: Ending,
    at: UnixMs,
) -> Result<()> {
    let Some(policy) = policy_of(tx, job)? else {
        return Ok(());
    };
    if policy.channels.is_empty() {
        return Ok(());
    }
    let mut health = tx.job_health(job.id)?;
    let before = health.clone();
    let event = alert::decide(&policy, &mut health, ending, at);
    if health != before {
        tx.put_job_health(job.id, &health)?;
    }
    let Some(event) = event else {
        return Ok(());
    };
    let reason = match &ended.state {
        InstanceState::Failed { reason } => reason.clone(),
        _ => "succeeded".to_string(),
    };
    for channel in &policy.channels {
        let alert = Alert {
            id: tx.next_alert_id()?,
            channel: channel.clone(),
            event,
            job_id: job.id,
            job_name: job.def.name.clone(),
            instance: ended.id,
            attempts: ended.attempts.len() as u32,
            reason: reason.clone(),
            created_ms: at,
            status: AlertStatus::Pending { next_at_ms: at },
            tries: 0,
            answer: None,
        };
        tx.put_alert(None, &alert)?;
        effects.alerts = true;
    }
    Ok(())
}

/// Records one delivery try: sent, given up, or pending again after a backoff. A report for an
/// alert no longer pending (a duplicate, after a restart) is ignored.
pub fn delivered(
    tx: &mut WriteTx,
    effects: &mut Effects,
    id: alert::AlertId,
    delivery: &Delivery,
    at: UnixMs,
) -> Result<Option<Alert>> {
    let Some(mut alert) = tx.alert(id)? else {
        return Ok(None);
    };
    let previous = alert.status;
    if !matches!(previous, AlertStatus::Pending { .. }) {
        return Ok(Some(alert));
    }
    alert.tries += 1;
    let (answer, status) = match delivery {
        Delivery::Sent { answer } => (answer, AlertStatus::Sent { at_ms: at }),
        Delivery::Undeliverable { answer } => (answer, AlertStatus::Failed { at_ms: at }),
        Delivery::Refused { answer } if alert.tries >= alert::MAX_TRIES => {
            (answer, AlertStatus::Failed { at_ms: at })
        }
        Delivery::Refused { answer } => (
            answer,
            AlertStatus::Pending {
                next_at_ms: at + alert::retry_delay_ms(alert.tries) as i64,
            },
        ),
    };
    alert.answer = Some(answer.clone());
    alert.status = status;
    tx.put_alert(Some(&previous), &alert)?;
    effects.alerts |= matches!(status, AlertStatus::Pending { .. });
    Ok(Some(alert))
}
