//! The app operations the REST API calls. Each is planned under the state lock (checked,
//! its records built), stored in one `write_all` without the lock, then applied: see
//! [`Marathon::change`]. Nothing is acknowledged to the client before it is stored.

use std::collections::BTreeMap;
use std::time::Duration;

use dcos_mesos_api::api::Id;
use dcos_mesos_api::scheduler::{CallBody, Kill};
use dcos_store::Write;
use serde_json::json;

use super::{locked, ApiError, Emits, Marathon, P};
use crate::api::{self, App, AppSpec};
use crate::offer::OfferStats;
use crate::persist::StoredApp;
use crate::state::{Action, AppEntry, Backoff, Deployment, Instance, State, MAX_VERSIONS};
use crate::validate;

/// A planned change of one app: the app as it will be, its kept versions and the deployment
/// that rolls it out, replacing (when forced) the app's deployments in progress.
#[derive(Debug)]
pub(crate) struct Commit {
    app: App,
    versions: BTreeMap<String, App>,
    deleting: bool,
    config_changed: bool,
    deployment: Deployment,
    replaced: Vec<Deployment>,
}

impl Commit {
    /// Plans `action` on `app` (from `original`), refused while a deployment holds the app
    /// unless `force`. Changes nothing.
    pub(crate) fn plan(
        state: &State,
        mut app: App,
        action: Action,
        original: Option<App>,
        force: bool,
    ) -> Result<Commit, ApiError> {
        if let Some(d) = state.deployment_of(&app.id) {
            if !force {
                return Err(locked(d));
            }
        }
        let entry = state.apps.get(&app.id);
        let version = next_version(entry);
        app.version = version.clone();
        let config_changed = original.as_ref().is_none_or(|o| !o.same_config(&app))
            || action == Action::RestartApplication;
        app.version_info.last_scaling_at = version.clone();
        if config_changed {
            app.version_info.last_config_change_at = version.clone();
        } else if let Some(o) = &original {
            // The running tasks stay current: a whole definition (PUT partialUpdate=false)
            // comes without the stored version info.
            app.version_info
                .last_config_change_at
                .clone_from(&o.version_info.last_config_change_at);
        }
        let mut versions = entry.map(|e| e.versions.clone()).unwrap_or_default();
        versions.insert(version.clone(), app.clone());
        while versions.len() > MAX_VERSIONS {
            let first = versions.keys().next().cloned().unwrap_or_default();
            versions.remove(&first);
        }
        let deployment = Deployment {
            id: uuid::Uuid::new_v4().to_string(),
            version,
            app_id: app.id.clone(),
            action,
            original,
        };
        // Forced: the deployments it overrides end first.
        let replaced = state
            .deployments
            .values()
            .filter(|d| d.app_id == app.id)
            .cloned()
            .collect();
        Ok(Commit {
            app,
            versions,
            deleting: action == Action::StopApplication,
            config_changed,
            deployment,
            replaced,
        })
    }

    /// Its store writes: the app, its deployment and the removal of those it replaces, for
    /// one transaction (a crash or a failed write leaves the stored state before or after
    /// it, never an app without its deployment).
    pub(crate) fn writes(&self) -> Result<Vec<Write>, crate::persist::Error> {
        let stored = StoredApp {
            app: self.app.clone(),
            versions: self.versions.clone(),
            deleting: self.deleting,
        };
        let mut writes = vec![
            P::app_write(&stored)?,
            P::deployment_write(&self.deployment)?,
        ];
        writes.extend(self.replaced.iter().map(|d| P::deployment_removal(&d.id)));
        Ok(writes)
    }

    /// Makes the stored change current; returns its deployment.
    pub(crate) fn apply(self, state: &mut State, emits: &mut Emits) -> Deployment {
        let Commit {
            app,
            versions,
            deleting,
            config_changed,
            deployment,
            replaced,
        } = self;
        for d in replaced {
            state.deployments.remove(&d.id);
            emits.push((
                "deployment_failed",
                json!({"id": d.id, "plan": d.to_json()}),
            ));
        }
        let e = state
            .apps
            .entry(app.id.clone())
            .or_insert_with(|| AppEntry::new(app.clone(), BTreeMap::new(), false));
        e.app = app.clone();
        e.versions = versions;
        e.deleting = deleting;
        if config_changed {
            e.backoff = Backoff::default();
            e.offers = OfferStats::default();
        }
        state
            .deployments
            .insert(deployment.id.clone(), deployment.clone());
        let action = deployment.action.name();
        emits.push((
            "deployment_info",
            json!({"plan": deployment.to_json(), "currentStep": {"actions": [{"action": action, "app": app.id}]}}),
        ));
        deployment
    }
}

/// A version string later than every version of `app_id`.
fn next_version(entry: Option<&AppEntry>) -> String {
    let mut v = api::now();
    if let Some(last) = entry.and_then(|e| e.versions.keys().next_back()) {
        if v <= *last {
            // Two changes in one millisecond: step past the last one.
            let t = humantime::parse_rfc3339(last).unwrap_or(std::time::SystemTime::now());
            v = api::timestamp(t + Duration::from_millis(1));
        }
    }
    v
}

/// Picks free service ports for `port: 0` definitions (Marathon's 10000-20000).
fn assign_service_ports(state: &State, app: &mut App) -> Result<(), ApiError> {
    let mut used = state.used_service_ports(&app.id);
    for pd in app.port_definitions.iter().filter(|p| p.port != 0) {
        used.insert(pd.port);
    }
    // One pass over the range for all definitions: a definition with thousands of
    // `port: 0` entries must not scan it once each under the state lock.
    let mut free = (u32::from(api::SERVICE_PORT_MIN)..u32::from(api::SERVICE_PORT_MAX))
        .filter(|p| !used.contains(p));
    for pd in app.port_definitions.iter_mut().filter(|p| p.port == 0) {
        pd.port = free.next().ok_or_else(|| {
            ApiError::BadRequest("All service ports (10000-20000) are in use".into())
        })?;
    }
    app.ports = app.port_definitions.iter().map(|p| p.port).collect();
    Ok(())
}

/// The app `id` unless it does not exist or is being deleted.
fn existing(state: &State, id: &str) -> Result<App, ApiError> {
    state
        .apps
        .get(id)
        .filter(|e| !e.deleting)
        .map(|e| e.app.clone())
        .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))
}

/// A commit with its writes, as [`Marathon::change`] plans it.
fn planned(commit: Commit) -> Result<(Commit, Vec<Write>), ApiError> {
    let writes = commit.writes()?;
    Ok((commit, writes))
}

/// Refuses a new app whose id is taken by an app or a group.
fn check_new(state: &State, id: &str) -> Result<(), ApiError> {
    if state.apps.contains_key(id) {
        return Err(ApiError::Conflict(format!(
            "An app with id [{id}] already exists."
        )));
    }
    let group = format!("{id}/");
    if state.apps.keys().any(|k| k.starts_with(&group))
        || state.apps.keys().any(|k| id.starts_with(&format!("{k}/")))
    {
        return Err(ApiError::Conflict(format!(
            "A group with id [{id}] already exists or the app's path is taken by an app."
        )));
    }
    Ok(())
}

/// What a deployment's cancellation does.
enum Cancel {
    /// Forced: the deployment is forgotten.
    Forget(Box<Deployment>),
    /// A new deployment back to the app as it was.
    Rollback(Box<Commit>),
}

impl Marathon {
    /// POST /v2/apps.
    pub async fn create_app(&self, spec: AppSpec) -> Result<(App, Deployment), ApiError> {
        let app = validate::resolve(spec, App::with_defaults(String::new()))
            .map_err(ApiError::Invalid)?;
        let plan = |state: &State| -> Result<_, ApiError> {
            check_new(state, &app.id)?;
            let mut app = app.clone();
            assign_service_ports(state, &mut app)?;
            planned(Commit::plan(
                state,
                app,
                Action::StartApplication,
                None,
                false,
            )?)
        };
        let (app, d) = self
            .change(plan, |state, commit, emits| {
                let d = commit.apply(state, emits);
                let app = state.apps[&d.app_id].app.clone();
                emits.push((
                    "api_post_event",
                    json!({"clientIp": null, "uri": format!("/v2/apps{}", app.id), "appDefinition": app}),
                ));
                (app, d)
            })
            .await?;
        self.revive();
        Ok((app, d))
    }

    /// PUT/PATCH /v2/apps/{id}: an update (or a create when the app does not exist), merged
    /// into the current definition when `partial`, else the whole new definition (what it
    /// leaves out takes Marathon's defaults).
    pub async fn update_app(
        &self,
        id: &str,
        mut spec: AppSpec,
        partial: bool,
        force: bool,
    ) -> Result<(Deployment, bool), ApiError> {
        // The path names the app; an id in the body is replaced by it, as in Marathon.
        spec.id = Some(id.to_string());
        let plan = |state: &State| -> Result<_, ApiError> {
            // An app being deleted is not created again under its feet: its StopApplication
            // deployment would be replaced and the app left half-removed.
            if state.apps.get(id).is_some_and(|e| e.deleting) {
                return Err(ApiError::Conflict(format!(
                    "App '{id}' is being deleted; wait for its deployment to finish"
                )));
            }
            let existing = state.apps.get(id).map(|e| e.app.clone());
            let created = existing.is_none();
            let base = existing
                .clone()
                .filter(|_| partial)
                .unwrap_or_else(|| App::with_defaults(String::new()));
            let mut app = validate::resolve(spec, base).map_err(ApiError::Invalid)?;
            assign_service_ports(state, &mut app)?;
            let action = match &existing {
                None => Action::StartApplication,
                Some(old) if old.same_config(&app) => Action::ScaleApplication,
                Some(_) => Action::RestartApplication,
            };
            let (commit, writes) = planned(Commit::plan(state, app, action, existing, force)?)?;
            Ok(((commit, created), writes))
        };
        let d = self
            .change(plan, |state, (commit, created), emits| {
                (commit.apply(state, emits), created)
            })
            .await?;
        self.revive();
        Ok(d)
    }

    /// Plans `action` on the current definition of app `id`, stores and applies it.
    async fn commit_existing(
        &self,
        id: &str,
        action: Action,
        force: bool,
    ) -> Result<Deployment, ApiError> {
        let plan = |state: &State| -> Result<_, ApiError> {
            let app = existing(state, id)?;
            planned(Commit::plan(state, app.clone(), action, Some(app), force)?)
        };
        let d = self.change(plan, |s, c, emits| c.apply(s, emits)).await?;
        self.revive();
        Ok(d)
    }

    /// POST /v2/apps/{id}/restart.
    pub async fn restart_app(&self, id: &str, force: bool) -> Result<Deployment, ApiError> {
        self.commit_existing(id, Action::RestartApplication, force)
            .await
    }

    /// DELETE /v2/apps/{id}.
    pub async fn delete_app(&self, id: &str, force: bool) -> Result<Deployment, ApiError> {
        self.commit_existing(id, Action::StopApplication, force)
            .await
    }

    /// Rolls an app back to one of its versions (PUT with `version`).
    pub async fn rollback_app(
        &self,
        id: &str,
        version: &str,
        force: bool,
    ) -> Result<Deployment, ApiError> {
        let plan = |state: &State| -> Result<_, ApiError> {
            let current = existing(state, id)?;
            let target = state
                .apps
                .get(id)
                .and_then(|e| e.versions.get(version))
                .cloned()
                .ok_or_else(|| {
                    ApiError::NotFound(format!("App '{id}' does not exist in version {version}"))
                })?;
            let action = if current.same_config(&target) {
                Action::ScaleApplication
            } else {
                Action::RestartApplication
            };
            planned(Commit::plan(state, target, action, Some(current), force)?)
        };
        let d = self.change(plan, |s, c, emits| c.apply(s, emits)).await?;
        self.revive();
        Ok(d)
    }

    /// DELETE /v2/deployments/{id}: without force, a new deployment back to the app as it was;
    /// with force, the deployment is simply forgotten.
    pub async fn cancel_deployment(
        &self,
        id: &str,
        force: bool,
    ) -> Result<Option<Deployment>, ApiError> {
        let plan = |state: &State| -> Result<_, ApiError> {
            let d =
                state.deployments.get(id).cloned().ok_or_else(|| {
                    ApiError::NotFound(format!("DeploymentPlan {id} does not exist"))
                })?;
            if force {
                return Ok((Cancel::Forget(Box::new(d)), vec![P::deployment_removal(id)]));
            }
            let Some(app) = state.apps.get(&d.app_id).map(|e| e.app.clone()) else {
                return Err(ApiError::NotFound(format!(
                    "App '{}' does not exist",
                    d.app_id
                )));
            };
            let commit = match d.original {
                // A new app rolls back to not existing.
                None => Commit::plan(state, app.clone(), Action::StopApplication, Some(app), true)?,
                Some(original) => {
                    let action = if original.same_config(&app) {
                        Action::ScaleApplication
                    } else {
                        Action::RestartApplication
                    };
                    Commit::plan(state, original, action, Some(app), true)?
                }
            };
            let (commit, writes) = planned(commit)?;
            Ok((Cancel::Rollback(Box::new(commit)), writes))
        };
        let apply = |state: &mut State, cancel, emits: &mut Emits| match cancel {
            Cancel::Forget(d) => {
                state.deployments.remove(&d.id);
                emits.push((
                    "deployment_failed",
                    json!({"id": d.id, "plan": d.to_json()}),
                ));
                None
            }
            Cancel::Rollback(commit) => Some(commit.apply(state, emits)),
        };
        let rollback = self.change(plan, apply).await?;
        if rollback.is_some() {
            self.revive();
        }
        Ok(rollback)
    }

    /// Kills tasks; with `scale`, the apps' instances shrink by as many (one deployment per
    /// app, stored together). `wipe` forgets the task records at once.
    pub async fn kill_tasks(
        &self,
        ids: &[String],
        scale: bool,
        wipe: bool,
        force: bool,
    ) -> Result<(Vec<Instance>, Option<Deployment>), ApiError> {
        let plan = |state: &State| -> Result<_, ApiError> {
            let killed: Vec<Instance> = ids
                .iter()
                .filter_map(|id| state.instances.get(id).cloned())
                .collect();
            let commits = if scale {
                scale_down(state, &killed, force)?
            } else {
                Vec::new()
            };
            let mut writes = Vec::new();
            for commit in &commits {
                writes.extend(commit.writes()?);
            }
            if wipe {
                writes.extend(killed.iter().map(|i| P::instance_removal(&i.task_id)));
            }
            Ok(((killed, commits), writes))
        };
        let apply = |state: &mut State,
                     (killed, commits): (Vec<Instance>, Vec<Commit>),
                     emits: &mut Emits| {
            let deployment = commits.into_iter().map(|c| c.apply(state, emits)).last();
            // The killed tasks are exactly the ones to lose: marked in the same step, so no
            // scale-down picks other victims before they are.
            for i in &killed {
                if wipe {
                    state.instances.remove(&i.task_id);
                } else if let Some(inst) = state.instances.get_mut(&i.task_id) {
                    inst.killing = true;
                }
            }
            (killed, deployment)
        };
        let (killed, deployment) = self.change(plan, apply).await?;
        if deployment.is_some() {
            self.revive();
        }
        if let Some(conn) = self.connection() {
            for i in &killed {
                let kill = Kill {
                    task_id: Id::new(i.task_id.clone()),
                    agent_id: Some(Id::new(i.agent_id.clone())),
                    kill_policy: None,
                };
                let _ = conn.call(CallBody::Kill(kill)).await;
            }
        }
        Ok((killed, deployment))
    }

    /// DELETE /v2/queue/{app}/delay.
    pub async fn reset_delay(&self, id: &str) -> Result<(), ApiError> {
        let mut state = self.lock().await;
        let e = state.apps.get_mut(id).ok_or_else(|| {
            ApiError::NotFound(format!("Application {id} not found in tasks queue."))
        })?;
        e.backoff = Backoff::default();
        drop(state);
        self.revive();
        Ok(())
    }
}

/// The scale-downs of the apps of `killed` by their number of killed tasks. Refused before
/// anything changes: a locked app fails the whole request unless `force`.
fn scale_down(state: &State, killed: &[Instance], force: bool) -> Result<Vec<Commit>, ApiError> {
    let mut per_app: BTreeMap<&str, u32> = BTreeMap::new();
    for i in killed {
        *per_app.entry(&i.app_id).or_default() += 1;
    }
    if !force {
        if let Some(d) = per_app.keys().find_map(|a| state.deployment_of(a)) {
            return Err(locked(d));
        }
    }
    let mut commits = Vec::new();
    for (app_id, n) in per_app {
        let Ok(app) = existing(state, app_id) else {
            continue;
        };
        let mut scaled = app.clone();
        scaled.instances = app.instances.saturating_sub(n);
        commits.push(Commit::plan(
            state,
            scaled,
            Action::ScaleApplication,
            Some(app),
            force,
        )?);
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(app: &App) -> State {
        let mut s = State::default();
        let entry = AppEntry::new(app.clone(), BTreeMap::new(), false);
        s.apps.insert(app.id.clone(), entry);
        s
    }

    #[test]
    fn a_commit_is_planned_without_changing_the_state_then_applied() {
        let old = App::with_defaults("/web".into());
        let mut state = state_with(&old);
        let mut new = old.clone();
        new.cmd = Some("run".into());
        let commit =
            Commit::plan(&state, new, Action::RestartApplication, Some(old), false).unwrap();
        assert!(state.deployments.is_empty());
        assert_eq!(commit.writes().unwrap().len(), 2);
        let mut emits = Vec::new();
        let d = commit.apply(&mut state, &mut emits);
        let e = &state.apps["/web"];
        assert_eq!(e.app.cmd.as_deref(), Some("run"));
        assert_eq!(e.app.version, d.version);
        assert_eq!(e.app.version_info.last_config_change_at, d.version);
        assert!(e.versions.contains_key(&d.version));
        assert_eq!(emits[0].0, "deployment_info");
        // A second change is locked out by the first, and forced replaces it.
        let app = e.app.clone();
        let err = Commit::plan(
            &state,
            app.clone(),
            Action::ScaleApplication,
            Some(app.clone()),
            false,
        );
        assert!(matches!(err, Err(ApiError::Locked { .. })));
        let forced = Commit::plan(
            &state,
            app.clone(),
            Action::ScaleApplication,
            Some(app),
            true,
        )
        .unwrap();
        let writes = forced.writes().unwrap();
        assert!(writes.contains(&P::deployment_removal(&d.id)));
        let mut emits = Vec::new();
        let d2 = forced.apply(&mut state, &mut emits);
        assert_eq!(state.deployments.keys().collect::<Vec<_>>(), [&d2.id]);
        assert_eq!(emits[0].0, "deployment_failed");
        assert!(d2.version > d.version);
    }

    #[test]
    fn new_apps_do_not_take_ids_of_apps_or_groups() {
        let state = state_with(&App::with_defaults("/a/b".into()));
        assert!(check_new(&state, "/a/b").is_err());
        assert!(check_new(&state, "/a").is_err());
        assert!(check_new(&state, "/a/b/c").is_err());
        assert!(check_new(&state, "/a/c").is_ok());
    }
}
