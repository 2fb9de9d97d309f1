//! The retry schedule: exponential backoff with jitter, pure and table-tested.
//!
//! Attempt *n* (1 for the first failure) waits between half and all of
//! `min(cap, base · 2ⁿ⁻¹)` ("equal jitter"): the wait keeps growing, so a partner that is down
//! for long is not hammered, and the random half spreads the retries of many messages that
//! failed together, so they do not all come back at the same instant.

use std::time::Duration;

/// The retry schedule of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first wait.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The ceiling of the wait after failed attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.base.saturating_mul(1u32 << doublings.min(31)).min(self.cap)
    }

    /// The wait after failed attempt `attempt`, with `jitter` in `[0, 1)` (clamped).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
        };
        let s = Duration::from_secs;
        let cases: &[(u32, f64, Duration)] = &[
            (0, 0.0, s(1)),
            (1, 0.0, s(1)),
            (1, 0.5, Duration::from_millis(1500)),
            (1, 1.0, s(2)),
            (2, 0.0, s(2)),
            (3, 0.99, Duration::from_millis(7960)),
            (5, 1.0, s(32)),
            (6, 0.0, s(30)),
            (6, 1.0, s(60)),
            (40, 1.0, s(60)),
            (u32::MAX, 0.0, s(30)),
            (3, -1.0, s(4)),
            (3, 7.0, s(8)),
        ];
        for (attempt, jitter, want) in cases {
            assert_eq!(b.delay(*attempt, *jitter), *want, "attempt {attempt} jitter {jitter}");
        }
    }

    #[test]
    fn the_wait_never_shrinks_from_one_attempt_to_the_next_ceiling() {
        let b = Backoff::default();
        for n in 1..50 {
            assert!(b.ceiling(n + 1) >= b.ceiling(n));
            assert!(b.delay(n, 0.999) <= b.ceiling(n));
            assert!(b.delay(n, 0.0) >= b.ceiling(n) / 2);
        }
    }
}
