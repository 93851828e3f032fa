//! What ties a job to other definitions, checked where only the store can tell: the channels its
//! alerts name exist, the jobs its chain names exist and form no cycle, and a channel or a job
//! is not deleted while another job names it. Also the channel commands themselves.
//!
//! Every check runs before anything is written, so a refused command writes nothing.

use std::collections::BTreeMap;

use super::{ApplyError, Result};
use crate::alert::ChannelDefinition;
use crate::model::{JobDefinition, JobId};
use crate::server::store::WriteTx;
use crate::spec::FieldError;

fn invalid(field: &str, reason: String) -> ApplyError {
    FieldError {
        field: field.to_string(),
        reason,
    }
    .into()
}

/// Refuses `def` (of job `id`, `None` when new) if its alert channels or chained jobs do not
/// exist, or if its chain closes a cycle; the error names the field and, for a cycle, the cycle.
pub fn check_job(tx: &WriteTx, id: Option<JobId>, def: &JobDefinition) -> Result<()> {
    if let Some(policy) = &def.alerts {
        for name in &policy.channels {
            if tx.channel(name)?.is_none() {
                return Err(invalid(
                    "alerts.channels",
                    format!(
                        "no channel named {name:?}; add it first with `shoal channel add --file …` \
                         (`shoal channel list` shows them)"
                    ),
                ));
            }
        }
    }
    if def.chain.is_empty() {
        return Ok(());
    }
    // The chain graph by name, with this job's edges as they would be after the change.
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in tx.all_jobs()? {
        if Some(job.id) != id {
            edges.insert(job.def.name.clone(), targets(&job.def));
        }
    }
    for (field, names) in def.chain.fields() {
        for name in names {
            if *name != def.name && !edges.contains_key(name) {
                return Err(invalid(
                    field,
                    format!(
                        "no job named {name:?}; create it first (`shoal job list` shows the jobs)"
                    ),
                ));
            }
        }
    }
    edges.insert(def.name.clone(), targets(def));
    for (field, names) in def.chain.fields() {
        for name in names {
            if let Some(path) = path_between(&edges, name, &def.name) {
                let mut cycle = vec![def.name.clone()];
                cycle.extend(path);
                return Err(invalid(
                    field,
                    format!(
                        "{name:?} would close a cycle: {}; a chain must end",
                        cycle.join(" → ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn targets(def: &JobDefinition) -> Vec<String> {
    let mut out: Vec<String> = def
        .chain
        .fields()
        .iter()
        .flat_map(|(_, names)| names.iter().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A path of names from `from` to `to` along the chain edges (both ends included), if any.
/// Depth-first in name order, so the cycle named is the same on every server.
fn path_between(
    edges: &BTreeMap<String, Vec<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last()?.clone();
        if last == to {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in edges.get(&last).into_iter().flatten().rev() {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

/// Refuses to delete job `name` while another job's chain names it.
pub fn check_job_unreferenced(tx: &WriteTx, id: JobId, name: &str) -> Result<()> {
    let users: Vec<String> = tx
        .all_jobs()?
        .into_iter()
        .filter(|job| job.id != id && targets(&job.def).iter().any(|t| t == name))
        .map(|job| job.def.name)
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(ApplyError::Conflict(format!(
        "job {name:?} is chained from {}; remove it from their on_success/on_failure/on_complete \
         first",
        users.join(", ")
    )))
}

pub fn put_channel(tx: &mut WriteTx, def: &ChannelDefinition) -> Result<ChannelDefinition> {
    tx.put_channel(def)?;
    Ok(def.clone())
}

/// Deletes a channel no job names; its alerts already raised stay (and fail to deliver).
pub fn delete_channel(tx: &mut WriteTx, name: &str) -> Result<ChannelDefinition> {
    let Some(channel) = tx.channel(name)? else {
        return Err(ApplyError::NotFound(format!(
            "channel {name:?} (`shoal channel list` shows them)"
        )));
    };
    let users: Vec<String> = tx
        .all_jobs()?
        .into_iter()
        .filter(|job| {
            job.def
                .alerts
                .as_ref()
                .is_some_and(|policy| policy.channels.iter().any(|c| c == name))
        })
        .map(|job| job.def.name)
        .collect();
    if !users.is_empty() {
        return Err(ApplyError::Conflict(format!(
            "channel {name:?} is named by the alerts of job(s) {}; change their alerts.channels \
             first",
            users.join(", ")
        )));
    }
    tx.delete_channel(name)?;
    Ok(channel)
}
