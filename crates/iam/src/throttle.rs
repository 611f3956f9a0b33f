//! Slowing down password guessing: after [`FREE_FAILURES`] wrong logins for one uid (known
//! or not, so the delay tells nothing), each further attempt waits twice as long as the last,
//! up to [`MAX_DELAY`]; a success or [`FORGET_AFTER`] of quiet clears it. Per master, in
//! memory: a guesser spreading over masters gains at most the number of masters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures for one uid before attempts are slowed.
pub const FREE_FAILURES: u32 = 3;
/// The first delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(16);
/// How long failures are remembered.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The most uids tracked; beyond it the oldest are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Failed logins by uid.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    /// How long an attempt for `uid` waits before its password is checked.
    pub fn delay(&self, uid: &str) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(uid) {
            Some((n, at)) if *n >= FREE_FAILURES && at.elapsed() < FORGET_AFTER => {
                let doublings = (n - FREE_FAILURES).min(16);
                FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Starts an attempt for `uid`: counted as failed until [`Throttle::succeeded`] says
    /// otherwise (so attempts sent at once wait one behind the other), and how long it waits.
    pub fn attempt(&self, uid: &str) -> Duration {
        let delay = self.delay(uid);
        self.failed(uid);
        delay
    }

    /// Notes a failed attempt for `uid`.
    pub fn failed(&self, uid: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_TRACKED && !failures.contains_key(uid) {
            failures.retain(|_, (_, at)| at.elapsed() < FORGET_AFTER);
            if failures.len() >= MAX_TRACKED {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    failures.remove(&k);
                }
            }
        }
        let entry = failures
            .entry(uid.to_string())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now();
    }

    /// Clears `uid`'s failures after a login.
    pub fn succeeded(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_grow_the_delay_and_a_success_clears_it() {
        let t = Throttle::default();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.delay("a"), Duration::ZERO);
            t.failed("a");
        }
        assert_eq!(t.delay("a"), FIRST_DELAY);
        t.failed("a");
        assert_eq!(t.delay("a"), FIRST_DELAY * 2);
        for _ in 0..40 {
            t.failed("a");
        }
        assert_eq!(t.delay("a"), MAX_DELAY);
        assert_eq!(t.delay("b"), Duration::ZERO);
        t.succeeded("a");
        assert_eq!(t.delay("a"), Duration::ZERO);
        // Attempts at once count before they are checked.
        let waits: Vec<Duration> = (0..5).map(|_| t.attempt("c")).collect();
        assert_eq!(&waits[..3], [Duration::ZERO; 3]);
        assert_eq!(waits[3..], [FIRST_DELAY, FIRST_DELAY * 2]);
    }
}
