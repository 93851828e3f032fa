//! `Reschedule`: after a wall-clock step (or at start-up, when the step may have happened while
//! the server was down), moves back every next fire that lies implausibly far ahead of the
//! command's time for its schedule. Deterministic like all of `apply`: the time is the command's.

use crate::model::{JobId, UnixMs};
use crate::schedule::{LOOKAHEAD_MS, clock_corrected_fire};
use crate::server::effects::Effects;
use crate::server::store::{StoreError, WriteTx};

/// Due-index entries read per step of the walk.
const PAGE: usize = 1_024;

/// Returns (job name, stored next fire, corrected next fire) for each job moved.
pub(super) fn apply(
    tx: &mut WriteTx,
    effects: &mut Effects,
    at: UnixMs,
) -> Result<Vec<(String, UnixMs, Option<UnixMs>)>, StoreError> {
    // Only fires past the horizon can be implausible: walk the due index from there.
    let mut cursor: Option<(UnixMs, JobId)> = Some((at + LOOKAHEAD_MS, JobId::MAX));
    let mut candidates = Vec::new();
    loop {
        let page = tx.due_jobs(cursor, UnixMs::MAX, PAGE)?;
        cursor = page.last().copied().or(cursor);
        let done = page.len() < PAGE;
        candidates.extend(page);
        if done {
            break;
        }
    }
    let mut moved = Vec::new();
    for (stored, job_id) in candidates {
        let Some(mut job) = tx.job(job_id)? else {
            continue;
        };
        let Some(corrected) = clock_corrected_fire(&job.def, stored, at) else {
            continue;
        };
        tx.set_next_fire(&mut job, Some(corrected))?;
        moved.push((job.def.name.clone(), stored, Some(corrected)));
    }
    effects.timing_changed |= !moved.is_empty();
    Ok(moved)
}
