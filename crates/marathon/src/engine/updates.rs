//! Status updates. A burst of them is planned under the state lock (the store writes it
//! needs, the acknowledgements, kills of tasks Marathon does not know), written in one
//! `write_all` without the lock, then applied; the acknowledgements go out last, so an
//! update whose change was not stored is sent again by the master.

use std::collections::HashMap;
use std::time::Instant;

use dcos_mesos_api::api::{Reason, TaskState, TaskStatus};
use dcos_mesos_api::scheduler::{Acknowledge, CallBody, Kill};
use dcos_store::Write;
use serde_json::json;

use super::{isolated, Emits, Marathon, P};
use crate::api;
use crate::state::{Instance, State};

/// The time of a burst of updates: the same when it is planned and when it is applied, so
/// that both compute the same instance records.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    /// Marathon's timestamp.
    at: String,
    /// Seconds since the epoch.
    secs: f64,
    instant: Instant,
}

impl Clock {
    pub(crate) fn now() -> Clock {
        Clock {
            at: api::now(),
            secs: dcos_mesos_api::api::now_secs(),
            instant: Instant::now(),
        }
    }
}

/// What a burst of status updates does, planned without changing the state.
#[derive(Debug, Default)]
pub(crate) struct UpdatePlan {
    /// The updates to apply: those of known tasks whose planning did not panic.
    pub apply: Vec<TaskStatus>,
    /// The store writes they need, in one transaction.
    pub writes: Vec<Write>,
    /// Acknowledgements, then kills of tasks Marathon does not know.
    pub calls: Vec<CallBody>,
}

impl Marathon {
    /// Status updates, handled together: their instance changes are stored in one write,
    /// then applied, their events emitted and each acknowledged (Mesos resends what is not).
    pub(super) async fn on_updates(&self, statuses: Vec<TaskStatus>) {
        let clock = Clock::now();
        let mut emits = Vec::new();
        let calls = {
            let _turn = self.changes.lock().await;
            let plan = plan_updates(&*self.lock().await, statuses, &clock);
            if let Err(e) = self.persist.apply(plan.writes).await {
                // Not acknowledged: the master sends these updates again.
                tracing::error!(error = %e, "cannot store instance states");
                return;
            }
            let mut state = self.lock().await;
            for status in &plan.apply {
                let app_id = state
                    .instances
                    .get(&status.task_id.value)
                    .map(|i| i.app_id.clone())
                    .unwrap_or_default();
                isolated(&app_id, "status update", || {
                    apply_update(&mut state, status, &clock, &mut emits)
                });
            }
            plan.calls
        };
        self.emit_all(emits);
        self.send_in_background(calls).await;
    }
}

/// Plans a burst of updates in order. Later updates of a task see what earlier ones did
/// (a task ended in the burst is unknown to the updates after it).
pub(crate) fn plan_updates(state: &State, statuses: Vec<TaskStatus>, clock: &Clock) -> UpdatePlan {
    let mut plan = UpdatePlan::default();
    let mut kills = Vec::new();
    // The instances as the burst leaves them so far (None: ended).
    let mut seen: HashMap<String, Option<Instance>> = HashMap::new();
    for status in statuses {
        if let Some(ack) = Acknowledge::of(&status) {
            plan.calls.push(CallBody::Acknowledge(ack));
        }
        let task_id = status.task_id.value.clone();
        let before = match seen.get(&task_id) {
            Some(known) => known.clone(),
            None => state.instances.get(&task_id).cloned(),
        };
        // A task this Marathon does not know (wiped, or from before a lost write) must not
        // keep running unaccounted for.
        let Some(before) = before else {
            if !status.state.is_terminal() {
                tracing::warn!(%task_id, "killing a task Marathon does not know");
                kills.push(CallBody::Kill(Kill {
                    task_id: status.task_id.clone(),
                    agent_id: status.agent_id.clone(),
                    kill_policy: None,
                }));
            }
            continue;
        };
        let planned = isolated(&before.app_id, "status update", || {
            let mut after = before.clone();
            let changed = advance(&mut after, &status, clock);
            (after, changed)
        });
        let Some((after, changed)) = planned else {
            continue;
        };
        if after.state.is_terminal() {
            plan.writes.push(P::instance_removal(&task_id));
            seen.insert(task_id, None);
        } else {
            if changed {
                match P::instance_write(&after) {
                    Ok(w) => plan.writes.push(w),
                    Err(e) => tracing::error!(error = %e, "cannot store an instance's state"),
                }
            }
            seen.insert(task_id, Some(after));
        }
        plan.apply.push(status);
    }
    plan.calls.extend(kills);
    plan
}

/// An instance's record after `status`; whether its state changed.
fn advance(inst: &mut Instance, status: &TaskStatus, clock: &Clock) -> bool {
    let changed = inst.state != status.state;
    inst.state = status.state;
    if status.state == TaskState::Running && inst.started_at.is_none() {
        inst.started_at = Some(clock.at.clone());
    }
    if status.state == TaskState::Unreachable {
        inst.unreachable_since.get_or_insert(clock.secs);
    } else {
        inst.unreachable_since = None;
    }
    changed
}

/// One (planned and stored) status update's change to the state; the events it makes are
/// added to `emits`.
pub(crate) fn apply_update(
    state: &mut State,
    status: &TaskStatus,
    clock: &Clock,
    emits: &mut Emits,
) {
    let task_id = &status.task_id.value;
    let Some(mut inst) = state.instances.get(task_id).cloned() else {
        return;
    };
    let changed = advance(&mut inst, status, clock);
    let message = status.message.as_deref().unwrap_or_default();
    if let Some(healthy) = status.healthy {
        mesos_health(state, &mut inst, healthy, message, emits);
    }
    if inst.state.is_terminal() {
        state.instances.remove(task_id);
        state
            .recent_terminal
            .push_back((task_id.clone(), inst.state));
        if state.recent_terminal.len() > 100 {
            state.recent_terminal.pop_front();
        }
        record_failure(state, &inst, status, clock, message);
    } else {
        state.instances.insert(task_id.clone(), inst.clone());
    }
    if changed {
        let agent_id = status.agent_id.as_ref().map_or("", |a| a.value.as_str());
        emits.push((
            "status_update_event",
            json!({
                "slaveId": agent_id,
                "taskId": task_id,
                "taskStatus": inst.state,
                "message": message,
                "appId": inst.app_id,
                "host": inst.host,
                "ipAddresses": [{"ipAddress": inst.host, "protocol": "IPv4"}],
                "ports": inst.ports,
                "version": inst.version,
            }),
        ));
    }
}

/// A task ended: unless it was being killed, a failure is the app's `lastTaskFailure` and,
/// when the task itself failed, slows its next launches down.
fn record_failure(
    state: &mut State,
    inst: &Instance,
    status: &TaskStatus,
    clock: &Clock,
    message: &str,
) {
    if inst.killing || !is_failure(status.state) {
        return;
    }
    let Some(entry) = state.apps.get_mut(&inst.app_id) else {
        return;
    };
    if backs_off(status.state, status.reason) {
        let delay = entry.backoff.fail(&entry.app, clock.instant);
        tracing::info!(app = %inst.app_id, task_id = %inst.task_id, state = %status.state, ?delay, "task failed; backing off");
    }
    entry.last_failure = Some(json!({
        "appId": inst.app_id,
        "host": inst.host,
        "message": message,
        "state": status.state,
        "taskId": inst.task_id,
        "timestamp": clock.at,
        "version": inst.version,
        "slaveId": inst.agent_id,
    }));
}

/// Whether a task that ended in `state` failed (`lastTaskFailure` records it).
fn is_failure(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::Failed
            | TaskState::Error
            | TaskState::Lost
            | TaskState::Dropped
            | TaskState::Gone
            | TaskState::Finished
    )
}

/// Whether a task that ended in `state` for `reason` slows the app's next launches down.
/// As in Marathon, a task lost for a reason that says nothing about the task itself (the
/// master never saw it, or lost its agent) does not.
fn backs_off(state: TaskState, reason: Option<Reason>) -> bool {
    let unseen = matches!(
        reason,
        Some(
            Reason::Reconciliation
                | Reason::AgentDisconnected
                | Reason::AgentRemoved
                | Reason::TaskUnknown
        )
    );
    is_failure(state) && !(state == TaskState::Lost && unseen)
}

/// A Mesos-side check's verdict from a status update, recorded as Marathon's own probes
/// are. Mesos runs one check per task (the first Mesos-side one); its verdict stands for
/// every Mesos-side check of the app (several COMMAND checks are valid), so none of them
/// stays unprobed and holds the app unhealthy for ever.
fn mesos_health(
    state: &State,
    inst: &mut Instance,
    healthy: bool,
    message: &str,
    emits: &mut Emits,
) {
    let Some(checks) = state.apps.get(&inst.app_id).map(|e| &e.app.health_checks) else {
        return;
    };
    let indices: Vec<usize> = (0..checks.len())
        .filter(|&i| crate::health::is_mesos_side(&checks[i]))
        .collect();
    if inst.health.len() < checks.len() {
        inst.health.resize(checks.len(), Default::default());
    }
    let result = if healthy {
        Ok(())
    } else if message.is_empty() {
        Err("Mesos health check failed".to_string())
    } else {
        Err(message.to_string())
    };
    for index in indices {
        let changed = crate::health::apply(&mut inst.health[index], &result);
        crate::health::events(state, inst, index, changed, &result, emits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::App;
    use crate::engine::launch::build_task;
    use crate::state::AppEntry;
    use dcos_mesos_api::api::Id;
    use std::collections::BTreeMap;

    fn status(task_id: &str, state: TaskState) -> TaskStatus {
        TaskStatus {
            task_id: Id::new(task_id),
            state,
            agent_id: Some(Id::new("A1")),
            uuid: Some("dXVpZA==".into()),
            ..TaskStatus::default()
        }
    }

    fn with_instance(app: &App) -> (State, Instance) {
        let mut state = State::default();
        state.apps.insert(
            app.id.clone(),
            AppEntry::new(app.clone(), BTreeMap::new(), false),
        );
        let (_, inst, _) = build_task(app, "A1", "h", &[]);
        state.instances.insert(inst.task_id.clone(), inst.clone());
        (state, inst)
    }

    /// Plans and applies a burst, as `on_updates` does around its store write.
    fn handle(state: &mut State, statuses: Vec<TaskStatus>) -> (UpdatePlan, Emits) {
        let clock = Clock::now();
        let plan = plan_updates(state, statuses, &clock);
        let mut emits = Vec::new();
        for s in &plan.apply {
            apply_update(state, s, &clock, &mut emits);
        }
        (plan, emits)
    }

    fn kinds(calls: &[CallBody]) -> Vec<&'static str> {
        calls.iter().map(|c| c.kind().as_str()).collect()
    }

    #[test]
    fn only_failures_of_the_task_itself_back_off() {
        use TaskState::*;
        for state in [Failed, Error, Finished, Dropped] {
            assert!(backs_off(state, None), "{state}");
        }
        assert!(backs_off(Lost, Some(Reason::ExecutorTerminated)));
        assert!(backs_off(Lost, None));
        // An ACCEPT the master never saw, or a lost agent: launch again at once.
        assert!(!backs_off(Lost, Some(Reason::Reconciliation)));
        assert!(!backs_off(Lost, "REASON_SLAVE_REMOVED".parse().ok()));
        assert!(!backs_off(Lost, Some(Reason::AgentRemoved)));
        // Still a failure the app's lastTaskFailure shows.
        assert!(is_failure(Lost));
        for state in [Killed, Running, Unreachable] {
            assert!(!backs_off(state, None), "{state}");
        }
    }

    #[test]
    fn a_burst_is_planned_without_changing_the_state_then_applied() {
        let (mut state, inst) = with_instance(&App::with_defaults("/web".into()));
        let id = inst.task_id.as_str();
        let burst = vec![
            status(id, TaskState::Starting),
            status(id, TaskState::Running),
        ];
        let clock = Clock::now();
        let plan = plan_updates(&state, burst.clone(), &clock);
        assert_eq!(
            state.instances[id].state,
            TaskState::Staging,
            "planning changed it"
        );
        assert_eq!(plan.writes.len(), 2);
        assert_eq!(kinds(&plan.calls), ["ACKNOWLEDGE", "ACKNOWLEDGE"]);
        let (_, emits) = handle(&mut state, burst);
        assert_eq!(state.instances[id].state, TaskState::Running);
        assert!(state.instances[id].started_at.is_some());
        assert_eq!(emits.len(), 2);
        assert_eq!(emits[1].1["taskStatus"], "TASK_RUNNING");
    }

    #[test]
    fn a_task_ended_in_a_burst_is_not_stored_again_and_is_killed_if_it_runs_on() {
        let (mut state, inst) = with_instance(&App::with_defaults("/web".into()));
        let id = inst.task_id.as_str();
        let burst = vec![
            status(id, TaskState::Killed),
            status(id, TaskState::Running),
        ];
        let (plan, _) = handle(&mut state, burst);
        let removal = P::instance_removal(id);
        assert_eq!(plan.writes, vec![removal]);
        assert_eq!(kinds(&plan.calls), ["ACKNOWLEDGE", "ACKNOWLEDGE", "KILL"]);
        assert!(!state.instances.contains_key(id));
        assert_eq!(
            state.recent_terminal.back(),
            Some(&(id.to_string(), TaskState::Killed))
        );
        // A task never known, ended: acknowledged, not killed.
        let (plan, _) = handle(&mut state, vec![status("other.1", TaskState::Failed)]);
        assert_eq!(kinds(&plan.calls), ["ACKNOWLEDGE"]);
        assert!(plan.writes.is_empty() && plan.apply.is_empty());
    }

    #[test]
    fn failures_are_recorded_and_back_off_unless_the_task_was_being_killed() {
        let (mut state, inst) = with_instance(&App::with_defaults("/web".into()));
        let mut failed = status(&inst.task_id, TaskState::Failed);
        failed.message = Some("exit 1".into());
        handle(&mut state, vec![failed]);
        let entry = &state.apps["/web"];
        assert_eq!(entry.backoff.failures, 1);
        assert_eq!(entry.last_failure.as_ref().unwrap()["message"], "exit 1");
        let (_, mut killed, _) = build_task(&entry.app.clone(), "A1", "h", &[]);
        killed.killing = true;
        state
            .instances
            .insert(killed.task_id.clone(), killed.clone());
        handle(&mut state, vec![status(&killed.task_id, TaskState::Failed)]);
        assert_eq!(state.apps["/web"].backoff.failures, 1);
    }

    #[test]
    fn a_panicking_app_step_is_skipped_not_fatal() {
        // The scheduler's own steps, on an app no longer validated (an old record):
        let mut app = App::with_defaults("/old".into());
        app.backoff_seconds = 1e20;
        app.max_launch_delay_seconds = 1e20;
        app.health_checks =
            vec![serde_json::from_value(json!({"intervalSeconds": u64::MAX})).unwrap()];
        let (mut state, inst) = with_instance(&app);
        let failed = status(&inst.task_id, TaskState::Failed);
        let applied = isolated(&app.id, "status update", || {
            handle(&mut state, vec![failed])
        });
        assert!(applied.is_some(), "a failure of the app panicked");
        let (left, ready) = state.apps[&app.id].backoff.left(Instant::now());
        assert!(!ready && left > 3600, "{left}");
    }
}
