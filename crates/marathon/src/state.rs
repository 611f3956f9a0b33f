//! Marathon's state and the decisions made from it, with no I/O: apps and their versions,
//! instances (one Mesos task each), deployments, launch backoff, and the planner that says
//! which instances to launch and which to kill so that each app converges on its definition
//! while honouring its upgrade strategy.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use dcos_mesos_api::api::TaskState;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use crate::api::App;
use crate::offer::OfferStats;

/// How many versions of an app are kept (Marathon's `--max_versions` default is 50).
pub const MAX_VERSIONS: usize = 50;

/// One Mesos task of an app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The Mesos task id (`<app>.<uuid>`).
    pub task_id: String,
    /// The app.
    pub app_id: String,
    /// The app version it was launched from.
    pub version: String,
    /// The app's `lastConfigChangeAt` at launch: instances with another one are replaced.
    pub config_version: String,
    /// The agent.
    pub agent_id: String,
    /// The agent's host.
    pub host: String,
    /// Host ports, one per port definition.
    pub ports: Vec<u16>,
    /// The Mesos state (`TASK_STAGING`, `TASK_RUNNING`, ...).
    #[serde(deserialize_with = "stored_state")]
    pub state: TaskState,
    /// When it was launched.
    pub staged_at: String,
    /// When it reached TASK_RUNNING.
    pub started_at: Option<String>,
    /// A kill was sent.
    pub killing: bool,
    /// When it became unreachable (seconds since the epoch).
    #[serde(default)]
    pub unreachable_since: Option<f64>,
    /// Health check results (not persisted: health is re-learnt after a restart).
    #[serde(skip)]
    pub health: Vec<Health>,
}

/// One health check's record for an instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// Whether the last probe passed.
    pub alive: bool,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// First success.
    pub first_success: Option<String>,
    /// Last success.
    pub last_success: Option<String>,
    /// Last failure.
    pub last_failure: Option<String>,
    /// Why the last probe failed.
    pub last_failure_cause: Option<String>,
    /// When the next probe is due.
    pub next_probe: Option<Instant>,
    /// Whether any probe has finished.
    pub probed: bool,
}

/// A stored instance's state. A record is not refused for it (one bad record must not stop
/// Marathon from loading): an empty state, from an instance stored before its first update,
/// reads as `TASK_STAGING`, a name Mesos does not have as `TASK_UNKNOWN` (live, as it was).
fn stored_state<'de, D: Deserializer<'de>>(d: D) -> Result<TaskState, D::Error> {
    let name = String::deserialize(d)?;
    if name.is_empty() {
        return Ok(TaskState::Staging);
    }
    Ok(name.parse().unwrap_or(TaskState::Unknown))
}

impl Instance {
    /// Counts toward the app's instances (not terminal, not given up as unreachable).
    pub fn is_live(&self, app: &App, now_secs: f64) -> bool {
        if self.state.is_terminal() {
            return false;
        }
        match self.unreachable_since {
            Some(since) => {
                now_secs - since < app.unreachable_strategy.inactive_after_seconds as f64
                    && app.unreachable_strategy.inactive_after_seconds > 0
            }
            None => true,
        }
    }

    /// Running and, when the app has health checks, passing all of them.
    pub fn is_healthy(&self, app: &App) -> bool {
        self.state == TaskState::Running
            && (app.health_checks.is_empty()
                || (self.health.len() == app.health_checks.len()
                    && self.health.iter().all(|h| h.probed && h.alive)))
    }

    /// Marathon's task JSON.
    pub fn to_json(&self, app: Option<&App>, service_ports: &[u32]) -> Value {
        let mut v = json!({
            "id": self.task_id,
            "appId": self.app_id,
            "slaveId": self.agent_id,
            "host": self.host,
            "state": self.state,
            "stagedAt": self.staged_at,
            "startedAt": self.started_at,
            "version": self.version,
            "ports": self.ports,
            "servicePorts": service_ports,
            "ipAddresses": [{"ipAddress": self.host, "protocol": "IPv4"}],
            "localVolumes": [],
        });
        if let Some(app) = app {
            if !app.health_checks.is_empty() {
                let results: Vec<Value> = self
                    .health
                    .iter()
                    .filter(|h| h.probed)
                    .map(|h| {
                        json!({
                            "alive": h.alive,
                            "consecutiveFailures": h.consecutive_failures,
                            "firstSuccess": h.first_success,
                            "lastFailure": h.last_failure,
                            "lastSuccess": h.last_success,
                            "lastFailureCause": h.last_failure_cause,
                            "instanceId": {"idString": self.task_id},
                        })
                    })
                    .collect();
                v["healthCheckResults"] = json!(results);
            }
        }
        v
    }
}

/// Launch backoff after failures: `backoffSeconds * backoffFactor^(n-1)`, capped.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    /// Failures since the last reset.
    pub failures: u32,
    /// No launches before this.
    pub until: Option<Instant>,
}

impl Backoff {
    /// Records a failure and returns the new delay. Saturating throughout: an app stored
    /// before its values were bounded (or a factor that overflows to infinity) gives the
    /// longest delay, never a panic.
    pub fn fail(&mut self, app: &App, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exponent = self.failures.saturating_sub(1).min(1000) as i32;
        let secs = app.backoff_seconds * app.backoff_factor.powi(exponent);
        let cap = if app.max_launch_delay_seconds.is_nan() {
            0.0
        } else {
            app.max_launch_delay_seconds
        };
        let delay = seconds(secs.min(cap));
        self.until = Some(later(now, delay));
        delay
    }

    /// Seconds left, and whether the delay is over.
    pub fn left(&self, now: Instant) -> (u64, bool) {
        match self.until {
            Some(u) if u > now => ((u - now).as_secs(), false),
            _ => (0, true),
        }
    }
}

/// The longest delay Marathon's definitions can ask for: `int32` seconds (about 68 years).
pub const MAX_DELAY: Duration = Duration::from_secs(i32::MAX as u64);

/// A delay of `secs` seconds from a definition, clamped to `0..=MAX_DELAY` (NaN: none).
/// `Duration::from_secs_f64` panics on what JSON can carry, such as 1e20.
pub fn seconds(secs: f64) -> Duration {
    // `f64::max` maps NaN to 0; what is left to fail is too large.
    Duration::try_from_secs_f64(secs.max(0.0)).map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

/// `now + delay` that cannot panic: the delay is capped at [`MAX_DELAY`], and should the
/// clock still overflow, the deadline is `now` (act at once rather than never).
pub fn later(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(MAX_DELAY)).unwrap_or(now)
}

/// An app with its history and launch bookkeeping.
#[derive(Clone, Debug)]
pub struct AppEntry {
    /// The current definition.
    pub app: App,
    /// Every kept version, oldest first.
    pub versions: BTreeMap<String, App>,
    /// Launch backoff.
    pub backoff: Backoff,
    /// The last task that failed, as Marathon reports it.
    pub last_failure: Option<Value>,
    /// Offer statistics of the current launch attempt.
    pub offers: OfferStats,
    /// When instances started waiting to launch.
    pub waiting_since: Option<String>,
    /// The app is being deleted: all its instances are killed, then it goes.
    pub deleting: bool,
}

impl AppEntry {
    /// A fresh entry for `app`: no history, no backoff, no offer statistics.
    pub fn new(app: App, versions: BTreeMap<String, App>, deleting: bool) -> AppEntry {
        AppEntry {
            app,
            versions,
            backoff: Backoff::default(),
            last_failure: None,
            offers: OfferStats::default(),
            waiting_since: None,
            deleting,
        }
    }
}

/// What a deployment does to an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A new app.
    StartApplication,
    /// Only `instances` changed.
    ScaleApplication,
    /// Anything else changed: replace the instances.
    RestartApplication,
    /// The app is deleted.
    StopApplication,
}

impl Action {
    /// Marathon's name.
    pub fn name(self) -> &'static str {
        match self {
            Action::StartApplication => "StartApplication",
            Action::ScaleApplication => "ScaleApplication",
            Action::RestartApplication => "RestartApplication",
            Action::StopApplication => "StopApplication",
        }
    }
}

/// A deployment: an app change in progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Its id (a uuid).
    pub id: String,
    /// The version it deploys.
    pub version: String,
    /// The app.
    pub app_id: String,
    /// What it does.
    pub action: Action,
    /// The app before the change (None for a new app): a rollback returns to it.
    pub original: Option<App>,
}

impl Deployment {
    /// Marathon's deployment JSON.
    pub fn to_json(&self) -> Value {
        let action = json!({"action": self.action.name(), "app": self.app_id});
        let mut current = action.clone();
        current["readinessCheckResults"] = json!([]);
        json!({
            "id": self.id,
            "version": self.version,
            "affectedApps": [self.app_id],
            "affectedPods": [],
            "steps": [{"actions": [action]}],
            "currentActions": [current],
            "currentStep": 1,
            "totalSteps": 1,
        })
    }
}

/// What the planner wants done for one app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppPlan {
    /// Instances to launch now (0 while backing off).
    pub launch: u32,
    /// Instances to launch once the backoff is over.
    pub waiting: u32,
    /// Tasks to kill.
    pub kill: Vec<String>,
    /// The app has converged on its definition.
    pub done: bool,
}

/// The whole of Marathon's state.
#[derive(Debug, Default)]
pub struct State {
    /// Apps by id.
    pub apps: BTreeMap<String, AppEntry>,
    /// Instances by task id.
    pub instances: BTreeMap<String, Instance>,
    /// Deployments by id.
    pub deployments: BTreeMap<String, Deployment>,
    /// The framework id, once subscribed.
    pub framework_id: Option<String>,
    /// Recent terminal task states (for `/v2/tasks` callers that race a kill), newest last.
    pub recent_terminal: VecDeque<(String, TaskState)>,
}

impl State {
    /// The live instances of an app.
    pub fn live_instances<'a>(&'a self, app: &'a App, now_secs: f64) -> Vec<&'a Instance> {
        self.instances
            .values()
            .filter(move |i| i.app_id == app.id && i.is_live(app, now_secs))
            .collect()
    }

    /// The deployment that holds an app, if any.
    pub fn deployment_of(&self, app_id: &str) -> Option<&Deployment> {
        self.deployments.values().find(|d| d.app_id == app_id)
    }

    /// The service ports every app holds, for assigning new ones.
    pub fn used_service_ports(&self, except: &str) -> std::collections::BTreeSet<u32> {
        self.apps
            .values()
            .filter(|e| e.app.id != except)
            .flat_map(|e| e.app.port_definitions.iter().map(|p| p.port))
            .filter(|p| *p != 0)
            .collect()
    }

    /// Decides, for one app, what to launch and kill now.
    pub fn plan(&self, entry: &AppEntry, now: Instant, now_secs: f64) -> AppPlan {
        let app = &entry.app;
        let live = self.live_instances(app, now_secs);
        let alive: Vec<&Instance> = live.iter().copied().filter(|i| !i.killing).collect();
        if entry.deleting {
            return AppPlan {
                kill: alive.iter().map(|i| i.task_id.clone()).collect(),
                done: live.is_empty(),
                ..AppPlan::default()
            };
        }
        let target = app.instances as usize;
        let current = app.version_info.last_config_change_at.as_str();
        let (new, old): (Vec<&Instance>, Vec<&Instance>) =
            alive.iter().partition(|i| i.config_version == current);
        let mut plan = AppPlan::default();
        let killing = live.len() - alive.len();
        if old.is_empty() {
            if new.len() > target {
                plan.kill = kill_order(&new, &app.kill_selection)
                    .into_iter()
                    .take(new.len() - target)
                    .collect();
            }
            let missing = target.saturating_sub(new.len()) as u32;
            let (_, ready) = entry.backoff.left(now);
            if ready {
                plan.launch = missing;
            } else {
                plan.waiting = missing;
            }
            plan.done =
                new.len() == target && killing == 0 && new.iter().all(|i| i.is_healthy(app));
            return plan;
        }
        // A rolling replacement: stay within [min healthy, max total] as Marathon does.
        let over = (app.upgrade_strategy.maximum_over_capacity * target as f64).floor() as usize;
        let max_total = target + over;
        let min_healthy =
            (app.upgrade_strategy.minimum_health_capacity * target as f64).ceil() as usize;
        let healthy_new = new.iter().filter(|i| i.is_healthy(app)).count();
        let healthy_old = old.iter().filter(|i| i.is_healthy(app)).count();
        let total = new.len() + old.len() + killing;
        let room = max_total.saturating_sub(total);
        let missing = target.saturating_sub(new.len());
        let launch = room.min(missing);
        let (_, ready) = entry.backoff.left(now);
        if ready {
            plan.launch = launch as u32;
        } else {
            plan.waiting = launch as u32;
        }
        // Old instances go, unhealthy ones first, while the healthy ones left stay at or above
        // the minimum. When nothing can be launched and nothing may be killed
        // (minimumHealthCapacity 1 with maximumOverCapacity 0), one old instance goes first,
        // as Marathon does.
        let mut healthy_left = healthy_new + healthy_old;
        let mut order: Vec<&Instance> = old.clone();
        order.sort_by_key(|i| i.is_healthy(app));
        let by_selection = kill_order(&old, &app.kill_selection);
        order.sort_by_key(|i| {
            (
                i.is_healthy(app),
                by_selection.iter().position(|id| *id == i.task_id),
            )
        });
        for i in order {
            if !i.is_healthy(app) {
                plan.kill.push(i.task_id.clone());
            } else if healthy_left > min_healthy {
                plan.kill.push(i.task_id.clone());
                healthy_left -= 1;
            } else {
                break;
            }
        }
        if plan.kill.is_empty() && launch == 0 && killing == 0 && healthy_new == new.len() {
            plan.kill.extend(by_selection.into_iter().take(1));
        }
        plan
    }
}

/// Instances in the order they should be killed.
fn kill_order(instances: &[&Instance], selection: &str) -> Vec<String> {
    let mut sorted: Vec<&Instance> = instances.to_vec();
    // Staged timestamps are ISO 8601 in UTC, so they sort as strings.
    sorted.sort_by(|a, b| {
        a.staged_at
            .cmp(&b.staged_at)
            .then(a.task_id.cmp(&b.task_id))
    });
    // Instances not yet running go first whatever the selection: they serve nobody.
    sorted.sort_by_key(|i| i.state == TaskState::Running);
    let mut ids: Vec<String> = sorted.iter().map(|i| i.task_id.clone()).collect();
    if selection != "OLDEST_FIRST" {
        let (pending, running): (Vec<&Instance>, Vec<&Instance>) =
            sorted.iter().partition(|i| i.state != TaskState::Running);
        ids = pending
            .iter()
            .chain(running.iter().rev())
            .map(|i| i.task_id.clone())
            .collect();
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(instances: u32, min: f64, over: f64) -> App {
        let mut a = App::with_defaults("/web".into());
        a.instances = instances;
        a.upgrade_strategy.minimum_health_capacity = min;
        a.upgrade_strategy.maximum_over_capacity = over;
        a.version_info.last_config_change_at = "v2".into();
        a
    }

    fn inst(n: u32, config: &str, state: TaskState) -> Instance {
        Instance {
            task_id: format!("web.{n}"),
            app_id: "/web".into(),
            version: config.into(),
            config_version: config.into(),
            agent_id: "a".into(),
            host: "h".into(),
            ports: vec![],
            state,
            staged_at: format!("2020-01-01T00:00:0{n}.000Z"),
            started_at: None,
            killing: false,
            unreachable_since: None,
            health: vec![],
        }
    }

    fn state_with(app: &App, instances: Vec<Instance>) -> (State, AppEntry) {
        let entry = AppEntry::new(app.clone(), BTreeMap::new(), false);
        let mut s = State::default();
        for i in instances {
            s.instances.insert(i.task_id.clone(), i);
        }
        (s, entry)
    }

    #[test]
    fn scaling_up_launches_the_difference_and_down_kills_the_youngest() {
        let a = app(3, 1.0, 1.0);
        let (s, e) = state_with(&a, vec![inst(1, "v2", TaskState::Running)]);
        let p = s.plan(&e, Instant::now(), 0.0);
        assert_eq!((p.launch, p.done), (2, false));
        let a = app(1, 1.0, 1.0);
        let (s, e) = state_with(
            &a,
            vec![
                inst(1, "v2", TaskState::Running),
                inst(2, "v2", TaskState::Running),
                inst(3, "v2", TaskState::Running),
            ],
        );
        let p = s.plan(&e, Instant::now(), 0.0);
        assert_eq!(p.kill, vec!["web.3".to_string(), "web.2".to_string()]);
    }

    #[test]
    fn a_rolling_restart_keeps_the_minimum_healthy() {
        // 2 instances, min health 1.0, over 0.5 (one extra at a time).
        let a = app(2, 1.0, 0.5);
        let (s, e) = state_with(
            &a,
            vec![
                inst(1, "v1", TaskState::Running),
                inst(2, "v1", TaskState::Running),
            ],
        );
        let p = s.plan(&e, Instant::now(), 0.0);
        assert_eq!(p.launch, 1);
        assert!(p.kill.is_empty(), "{p:?}");
        // The new one is running: one old one may go.
        let (s, e) = state_with(
            &a,
            vec![
                inst(1, "v1", TaskState::Running),
                inst(2, "v1", TaskState::Running),
                inst(3, "v2", TaskState::Running),
            ],
        );
        let p = s.plan(&e, Instant::now(), 0.0);
        assert_eq!(p.launch, 0);
        assert_eq!(p.kill.len(), 1);
    }

    #[test]
    fn without_room_and_with_full_health_one_old_instance_goes_first() {
        let a = app(2, 1.0, 0.0);
        let (s, e) = state_with(
            &a,
            vec![
                inst(1, "v1", TaskState::Running),
                inst(2, "v1", TaskState::Running),
            ],
        );
        let p = s.plan(&e, Instant::now(), 0.0);
        assert_eq!((p.launch, p.kill.len()), (0, 1));
    }

    #[test]
    fn stored_states_read_leniently_and_write_mesos_names() {
        let i = inst(1, "v1", TaskState::Running);
        let mut stored = serde_json::to_value(&i).unwrap();
        assert_eq!(stored["state"], "TASK_RUNNING");
        assert_eq!(
            serde_json::from_value::<Instance>(stored.clone()).unwrap(),
            i
        );
        for (name, state) in [
            ("", TaskState::Staging),
            ("TASK_NAPPING", TaskState::Unknown),
        ] {
            stored["state"] = json!(name);
            let read: Instance = serde_json::from_value(stored.clone()).unwrap();
            assert_eq!(read.state, state, "{name:?}");
        }
    }

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_cap() {
        let mut a = app(1, 1.0, 1.0);
        a.backoff_seconds = 2.0;
        a.backoff_factor = 2.0;
        a.max_launch_delay_seconds = 5.0;
        let mut b = Backoff::default();
        let now = Instant::now();
        assert_eq!(b.fail(&a, now), Duration::from_secs(2));
        assert_eq!(b.fail(&a, now), Duration::from_secs(4));
        assert_eq!(b.fail(&a, now), Duration::from_secs(5));
        assert!(!b.left(now).1);
    }

    #[test]
    fn backoff_of_unbounded_values_saturates_instead_of_panicking() {
        // As an app stored before the bounds were checked could still carry them.
        let now = Instant::now();
        for (backoff, factor, max) in [
            (1e20, 1.15, 1e20),
            (1.0, 1e300, f64::MAX),
            (f64::MAX, f64::MAX, f64::INFINITY),
            (f64::NAN, 2.0, 3600.0),
            (1.0, 2.0, f64::NAN),
            (-5.0, 1.0, 3600.0),
        ] {
            let mut a = app(1, 1.0, 1.0);
            (
                a.backoff_seconds,
                a.backoff_factor,
                a.max_launch_delay_seconds,
            ) = (backoff, factor, max);
            let mut b = Backoff {
                failures: u32::MAX,
                until: None,
            };
            let delay = b.fail(&a, now);
            assert!(delay <= MAX_DELAY, "{backoff} {factor} {max}: {delay:?}");
            assert_eq!(b.failures, u32::MAX);
        }
        assert_eq!(seconds(1e20), MAX_DELAY);
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(2.5), Duration::from_millis(2500));
        assert!(later(now, Duration::MAX) > now);
    }
}
