//! The time Metronome reads: the system's, or one a test sets and advances. Schedules fire
//! by it and runs are stamped with it, so a test proves a minutely schedule without waiting
//! a minute.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A clock.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    now: Mutex<DateTime<Utc>>,
    changed: watch::Sender<()>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `at` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock {
            manual: Some(Arc::new(Manual {
                now: Mutex::new(at),
                changed: watch::channel(()).0,
            })),
        }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(m) => *m.now.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock to `at` (a system clock ignores it).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(m) = &self.manual {
            *m.now.lock().unwrap_or_else(|p| p.into_inner()) = at;
            m.changed.send_replace(());
        }
    }

    /// Moves a manual clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or_default();
        self.set(self.now() + by);
    }

    /// Returns at `at` by this clock (at once if it has passed).
    pub async fn sleep_until(&self, at: DateTime<Utc>) {
        match &self.manual {
            None => loop {
                let left = at.signed_duration_since(Utc::now());
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                // The wall clock may step: look again at least every few seconds.
                tokio::time::sleep(left.min(Duration::from_secs(5))).await;
            },
            Some(m) => {
                let mut changed = m.changed.subscribe();
                while self.now() < at {
                    if changed.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_moved_past_their_time() {
        let t0 = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::manual(t0);
        let c = clock.clone();
        let sleeper =
            tokio::spawn(async move { c.sleep_until(t0 + chrono::Duration::seconds(60)).await });
        clock.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(30));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(clock.now(), t0 + chrono::Duration::seconds(60));
    }
}
