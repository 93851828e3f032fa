//! Noticing wall-clock steps: between two looks, the wall clock should advance as much as the
//! monotonic clock. When it does not (an NTP step, a VM restored from a snapshot, an operator's
//! `date -s`), the difference is the step. Slewing (NTP's gradual correction) stays far below
//! the threshold. Only observes; what to do about a step is the scheduler's.

use std::time::Instant;

use crate::model::UnixMs;

/// A difference above this between the wall and the monotonic clock's progress is a step.
pub const STEP_THRESHOLD_MS: i64 = 2_000;

pub struct ClockWatch {
    wall: UnixMs,
    mono: Instant,
}

impl ClockWatch {
    pub fn new() -> ClockWatch {
        ClockWatch {
            wall: crate::model::now_ms(),
            mono: Instant::now(),
        }
    }

    /// The step (negative: backwards) since the last look, if there was one; `wall_now` is the
    /// wall clock read just now.
    pub fn step(&mut self, wall_now: UnixMs) -> Option<i64> {
        self.step_at(wall_now, Instant::now())
    }

    fn step_at(&mut self, wall_now: UnixMs, mono_now: Instant) -> Option<i64> {
        let mono_elapsed = mono_now.duration_since(self.mono).as_millis() as i64;
        let step = (wall_now - self.wall) - mono_elapsed;
        self.wall = wall_now;
        self.mono = mono_now;
        (step.abs() > STEP_THRESHOLD_MS).then_some(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_step_is_the_difference_between_wall_and_monotonic_progress() {
        let start = Instant::now();
        let mut watch = ClockWatch {
            wall: 1_000_000,
            mono: start,
        };
        // Both clocks moved 5 s: no step.
        let t1 = start + Duration::from_secs(5);
        assert_eq!(watch.step_at(1_005_000, t1), None);
        // One more second passed, but the wall clock went back an hour.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(watch.step_at(1_006_000 - 3_600_000, t2), Some(-3_600_000));
        // Forwards by a minute.
        let t3 = t2 + Duration::from_secs(1);
        assert_eq!(
            watch.step_at(1_007_000 - 3_600_000 + 60_000, t3),
            Some(60_000)
        );
        // A slew of half a second is no step.
        let t4 = t3 + Duration::from_secs(10);
        assert_eq!(watch.step_at(1_017_500 - 3_600_000 + 60_000, t4), None);
    }
}
