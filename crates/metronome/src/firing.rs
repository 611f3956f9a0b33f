//! The schedule loop: sleeps (by Metronome's [`Clock`](crate::clock::Clock)) until the next
//! fire time of any enabled schedule, then starts the due runs, each with its schedule's
//! starting deadline. Every schedule's last handled fire time is stored with the runs it
//! starts, so fire times missed while no Metronome led are found on the next leader's first
//! pass: the newest one within its starting deadline is started, the others are skipped and
//! counted (`dcos.metronome.schedule.missed`).

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::api::ConcurrencyPolicy;
use crate::engine::Metronome;
use crate::schedule::{catch_up, Cron};
use crate::state::Run;

/// What one pass did.
#[derive(Debug, Default)]
struct Pass {
    next: Option<DateTime<Utc>>,
    lags_ms: Vec<f64>,
    skipped: u64,
    started: usize,
}

impl Metronome {
    /// Fires schedules until `shutdown`.
    pub async fn run_schedules(self, shutdown: CancellationToken) {
        loop {
            // Registered before the pass, so a change during it is not missed.
            let changed = self.schedules_changed().notified();
            let next = self.fire_due().await;
            let clock = self.clock().clone();
            let sleep = async {
                match next {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changed => {}
                _ = sleep => {}
            }
        }
    }

    /// Starts the runs due now; the next fire time of any enabled schedule.
    async fn fire_due(&self) -> Option<DateTime<Utc>> {
        let pass = self
            .change(|state, now, d| {
                let mut pass = Pass::default();
                for job in state.jobs.values() {
                    let id = &job.spec.id;
                    for s in job.schedules.iter().filter(|s| s.enabled) {
                        let Ok(cron) = Cron::new(&s.cron, &s.timezone) else {
                            continue;
                        };
                        let key = (id.clone(), s.id.clone());
                        let Some(&mark) = state.fired.get(&key) else {
                            // Never handled (a record from before marks were kept): from now.
                            d.fired(id, &s.id, now);
                            pass.next = earliest(pass.next, cron.next_after(now));
                            continue;
                        };
                        let c = catch_up(&cron, mark, now, s.starting_deadline_seconds);
                        pass.skipped += c.skipped;
                        if let Some(handled) = c.handled {
                            d.fired(id, &s.id, handled);
                        }
                        if let Some(at) = c.start {
                            let busy = state.runs.keys().any(|(j, _)| j == id);
                            if s.concurrency_policy == ConcurrencyPolicy::Forbid && busy {
                                pass.skipped += 1;
                            } else {
                                let run = Run::new(
                                    job.spec.clone(),
                                    crate::state::run_id(now, uuid::Uuid::new_v4().as_bytes()),
                                    now,
                                    Some(s.starting_deadline_seconds),
                                );
                                tracing::info!(job = %id, schedule = %s.id, run = %run.id, fire_time = %at, "schedule fired");
                                d.put_run(run);
                                d.started += 1;
                                pass.started += 1;
                                let lag = now.signed_duration_since(at).num_microseconds();
                                pass.lags_ms.push(lag.unwrap_or(0) as f64 / 1000.0);
                            }
                        }
                        pass.next = earliest(pass.next, cron.next_after(c.handled.unwrap_or(mark)));
                    }
                }
                Ok(pass)
            })
            .await;
        let pass = match pass {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = ?e, "cannot store the runs of due schedules; will retry");
                return Some(self.clock().now() + chrono::Duration::seconds(1));
            }
        };
        for lag in &pass.lags_ms {
            self.metrics().fired(*lag);
        }
        if pass.skipped > 0 {
            tracing::warn!(
                skipped = pass.skipped,
                "skipped schedule fire times missed beyond their starting deadline"
            );
            self.metrics().missed(pass.skipped);
        }
        if pass.started > 0 {
            self.revive();
        }
        pass.next
    }
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
