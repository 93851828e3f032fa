//! The attempts this worker has already taken. After a restart the server hands out again every
//! assignment it cannot know was fetched (`Assigned` instances); a worker that already runs (or
//! ran, and is reporting) that very attempt must not run it twice. Bounded to the last
//! [`REMEMBERED`] attempts, oldest forgotten first. At usual rates that is long after their
//! leases ran out; at thousands of tasks a second on one worker it is a few seconds, so a task
//! still running after that many others passed through its worker could be run again if the
//! server restarts meanwhile. Keeping running attempts out of the eviction would close that.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use crate::model::InstanceId;

/// How many attempts are remembered.
const REMEMBERED: usize = 16_384;

#[derive(Default)]
pub struct Taken {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    set: HashSet<(InstanceId, u32)>,
    order: VecDeque<(InstanceId, u32)>,
}

impl Taken {
    /// Records `(instance, attempt)`; false if it was already taken.
    pub fn first_time(&self, instance: InstanceId, attempt: u32) -> bool {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !inner.set.insert((instance, attempt)) {
            return false;
        }
        inner.order.push_back((instance, attempt));
        if inner.order.len() > REMEMBERED
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.set.remove(&oldest);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_taken_once_and_old_ones_are_forgotten() {
        let taken = Taken::default();
        assert!(taken.first_time(1, 1));
        assert!(!taken.first_time(1, 1));
        assert!(taken.first_time(1, 2), "a new attempt is new work");
        for id in 2..(REMEMBERED as u64 + 2) {
            assert!(taken.first_time(id, 1));
        }
        assert!(
            taken.first_time(1, 1),
            "forgotten after {REMEMBERED} others"
        );
    }
}
