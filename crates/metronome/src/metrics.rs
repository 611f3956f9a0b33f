//! Metronome's own metrics, in the Dropwizard registry form `/v1/metrics` serves
//! (`counters`, `gauges`, `histograms`, `meters`, `timers`, `version`).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::api::RunStatus;

/// Fire-time lag samples kept for the histogram.
const LAG_SAMPLES: usize = 4096;

/// Counters and the schedule lag histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    runs_started: u64,
    runs_succeeded: u64,
    runs_failed: u64,
    tasks_launched: u64,
    schedule_fired: u64,
    schedule_missed: u64,
    /// Milliseconds from each fire time to its run's creation, newest last.
    lag_ms: VecDeque<f64>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs started and ended by a change.
    pub fn runs(&self, started: usize, ended: &[RunStatus]) {
        self.with(|m| {
            m.runs_started += started as u64;
            for s in ended {
                if *s == RunStatus::Success {
                    m.runs_succeeded += 1;
                } else {
                    m.runs_failed += 1;
                }
            }
        });
    }

    /// Tasks launched.
    pub fn launched(&self, n: usize) {
        self.with(|m| m.tasks_launched += n as u64);
    }

    /// A schedule fired `lag_ms` after its fire time.
    pub fn fired(&self, lag_ms: f64) {
        self.with(|m| {
            m.schedule_fired += 1;
            if m.lag_ms.len() == LAG_SAMPLES {
                m.lag_ms.pop_front();
            }
            m.lag_ms.push_back(lag_ms);
        });
    }

    /// Fire times skipped (missed beyond their deadline, or forbidden by the policy).
    pub fn missed(&self, n: u64) {
        self.with(|m| m.schedule_missed += n);
    }

    /// The number of skipped fire times.
    pub fn missed_count(&self) -> u64 {
        self.with(|m| m.schedule_missed)
    }

    /// The registry, with `gauges` added.
    pub fn to_json(&self, gauges: &[(&str, f64)]) -> Value {
        self.with(|m| {
            let counter = |n: u64| json!({"count": n});
            let mut sorted: Vec<f64> = m.lag_ms.iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            let q = |p: f64| -> f64 {
                if sorted.is_empty() {
                    return 0.0;
                }
                let i = ((sorted.len() - 1) as f64 * p).round() as usize;
                sorted[i.min(sorted.len() - 1)]
            };
            let mean = if sorted.is_empty() {
                0.0
            } else {
                sorted.iter().sum::<f64>() / sorted.len() as f64
            };
            let gauges: serde_json::Map<String, Value> = gauges
                .iter()
                .map(|(k, v)| ((*k).to_string(), json!({"value": v})))
                .collect();
            json!({
                "version": "3.0.0",
                "counters": {
                    "dcos.metronome.jobrun.started": counter(m.runs_started),
                    "dcos.metronome.jobrun.succeeded": counter(m.runs_succeeded),
                    "dcos.metronome.jobrun.failed": counter(m.runs_failed),
                    "dcos.metronome.task.launched": counter(m.tasks_launched),
                    "dcos.metronome.schedule.fired": counter(m.schedule_fired),
                    "dcos.metronome.schedule.missed": counter(m.schedule_missed),
                },
                "gauges": gauges,
                "histograms": {
                    "dcos.metronome.schedule.lag-ms": {
                        "count": m.schedule_fired,
                        "min": sorted.first().copied().unwrap_or(0.0),
                        "max": sorted.last().copied().unwrap_or(0.0),
                        "mean": mean,
                        "p50": q(0.5), "p75": q(0.75), "p95": q(0.95), "p98": q(0.98),
                        "p99": q(0.99), "p999": q(0.999), "stddev": 0.0,
                    }
                },
                "meters": {},
                "timers": {},
            })
        })
    }
}
