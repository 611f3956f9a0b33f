//! Building the Mesos `TaskInfo` of an app's instance. What every task of an app version
//! shares (command, environment, resources, container, labels) is built once per batch of
//! offers in a [`TaskTemplate`]; per task only its id, agent, host ports and the parts that
//! name them are added.

use dcos_mesos_api::api::{
    CommandInfo, DurationInfo, Environment, Id, KillPolicy, Range, Ranges, Resource, TaskInfo,
    TaskState, Uri, Variable,
};
use dcos_mesos_api::resources::Resources;
use serde_json::{json, Value};

use crate::api::{self, App};
use crate::state::Instance;

/// The Mesos task name Marathon gives an app's tasks: its path reversed, dot-joined
/// (`/prod/web` -> `web.prod`), which Mesos-DNS turns into `web-prod.marathon.mesos`.
pub fn task_name(app_id: &str) -> String {
    let mut segs: Vec<&str> = app_id.trim_start_matches('/').split('/').collect();
    segs.reverse();
    segs.join(".")
}

/// A kill grace period in Mesos's nanoseconds, bounded like every delay from a definition
/// (a negative or NaN value from an old record must not reach Mesos).
pub(crate) fn grace_nanos(secs: f64) -> i64 {
    i64::try_from(crate::state::seconds(secs).as_nanos()).unwrap_or(i64::MAX)
}

/// What every task of one app version has in common.
#[derive(Clone, Debug)]
pub(crate) struct TaskTemplate {
    name: String,
    /// The command without its environment.
    command: CommandInfo,
    /// The app's own variables, then Marathon's, in the order tasks get them around the
    /// per-task ones (`PORT*`, `HOST`, `MESOS_TASK_ID`).
    app_env: Vec<Variable>,
    marathon_env: Vec<Variable>,
    label_env: Vec<Variable>,
    /// cpus, mem, disk and gpus (ports are per task).
    scalars: Vec<Resource>,
    kill_policy: Option<KillPolicy>,
    container: Option<Value>,
    labels: Value,
}

fn var(name: impl Into<String>, value: impl Into<String>) -> Variable {
    Variable {
        name: name.into(),
        value: value.into(),
        kind: None,
    }
}

impl TaskTemplate {
    /// The shared part of `app`'s tasks.
    pub(crate) fn new(app: &App) -> TaskTemplate {
        let app_env = app
            .env
            .iter()
            .filter_map(|(k, v)| Some(var(k.clone(), v.as_str()?)))
            .collect();
        let marathon_env = vec![
            var("MARATHON_APP_ID", app.id.clone()),
            var("MARATHON_APP_VERSION", app.version.clone()),
            var("MARATHON_APP_RESOURCE_CPUS", app.cpus.to_string()),
            var("MARATHON_APP_RESOURCE_MEM", app.mem.to_string()),
            var("MARATHON_APP_RESOURCE_DISK", app.disk.to_string()),
            var("MARATHON_APP_RESOURCE_GPUS", app.gpus.to_string()),
        ];
        let label_names: Vec<String> = app
            .labels
            .keys()
            .map(|k| {
                k.to_uppercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            })
            .collect();
        let mut label_env = vec![var("MARATHON_APP_LABELS", label_names.join(" "))];
        for ((_, v), name) in app.labels.iter().zip(&label_names) {
            label_env.push(var(format!("MARATHON_APP_LABEL_{name}"), v.clone()));
        }
        let scalars = Resources {
            cpus: app.cpus,
            mem: app.mem,
            disk: app.disk,
            gpus: f64::from(app.gpus),
            ports: dcos_ports::RangeSet::new(),
        }
        .to_api(None);
        let labels = app
            .labels
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}));
        TaskTemplate {
            name: task_name(&app.id),
            command: command_of(app),
            app_env,
            marathon_env,
            label_env,
            scalars,
            kill_policy: app.task_kill_grace_period_seconds.map(|secs| KillPolicy {
                grace_period: Some(DurationInfo {
                    nanoseconds: grace_nanos(secs),
                }),
            }),
            container: app.container.as_ref().map(container_info),
            labels: json!({"labels": labels.collect::<Vec<_>>()}),
        }
    }

    /// The TaskInfo for one instance of `app` (the app this template was made from) on
    /// `agent_id` at `host` with host `ports`, the instance record, and the resources it
    /// takes.
    pub(crate) fn build(
        &self,
        app: &App,
        agent_id: &str,
        host: &str,
        ports: &[u16],
    ) -> (TaskInfo, Instance, Resources) {
        let task_id = format!("{}.{}", app.task_id_prefix(), uuid::Uuid::new_v4());
        let mut used = Resources {
            cpus: app.cpus,
            mem: app.mem,
            disk: app.disk,
            gpus: f64::from(app.gpus),
            ports: dcos_ports::RangeSet::new(),
        };
        for p in ports {
            used.ports.insert(*p, *p);
        }
        let mut resources = self.scalars.clone();
        if !ports.is_empty() {
            resources.push(ports_resource(ports));
        }
        let mut command = self.command.clone();
        command.environment = Some(Environment {
            variables: self.environment(app, host, &task_id, ports),
        });
        let task = TaskInfo {
            name: self.name.clone(),
            task_id: Id::new(task_id.clone()),
            agent_id: Id::new(agent_id),
            resources,
            command: Some(command),
            kill_policy: self.kill_policy.clone(),
            container: self.container.clone(),
            health_check: mesos_check(app, ports),
            labels: Some(self.labels.clone()),
            discovery: Some(self.discovery(app, ports)),
            ..TaskInfo::default()
        };
        let instance = Instance {
            task_id,
            app_id: app.id.clone(),
            version: app.version.clone(),
            config_version: app.version_info.last_config_change_at.clone(),
            agent_id: agent_id.into(),
            host: host.into(),
            ports: ports.to_vec(),
            state: TaskState::Staging,
            staged_at: api::now(),
            started_at: None,
            killing: false,
            unreachable_since: None,
            health: Vec::new(),
        };
        (task, instance, used)
    }

    /// A task's variables: the app's, its ports, `HOST`, Marathon's, `MESOS_TASK_ID`, the
    /// labels.
    fn environment(&self, app: &App, host: &str, task_id: &str, ports: &[u16]) -> Vec<Variable> {
        let mut env = self.app_env.clone();
        let port_env = dcos_mesos_api::env::port_env(ports);
        env.extend(port_env.into_iter().map(|(k, v)| var(k, v)));
        for (i, p) in ports.iter().enumerate() {
            let definition = app.port_definitions.get(i);
            if let Some(service) = definition.map(|d| d.port).filter(|p| *p != 0) {
                env.push(var(format!("PORT_{service}"), p.to_string()));
            }
            if let Some(name) = definition.and_then(|d| d.name.as_ref()) {
                let name = dcos_mesos_api::env::env_name(name);
                env.push(var(format!("PORT_{name}"), p.to_string()));
            }
        }
        env.push(var("HOST", host));
        env.extend(self.marathon_env.iter().cloned());
        env.push(var("MESOS_TASK_ID", task_id));
        env.extend(self.label_env.iter().cloned());
        env
    }

    /// `DiscoveryInfo` naming the task's host ports.
    fn discovery(&self, app: &App, ports: &[u16]) -> Value {
        let named: Vec<Value> = app
            .port_definitions
            .iter()
            .zip(ports)
            .map(|(pd, p)| {
                let mut v = json!({"number": p, "protocol": pd.protocol});
                if let Some(n) = &pd.name {
                    v["name"] = json!(n);
                }
                v
            })
            .collect();
        json!({"visibility": "FRAMEWORK", "name": self.name, "ports": {"ports": named}})
    }
}

/// The TaskInfo for one instance of `app` on an offer, the instance record, and the
/// resources it takes (a template of its own: for one task).
#[cfg(test)]
pub(crate) fn build_task(
    app: &App,
    agent_id: &str,
    host: &str,
    ports: &[u16],
) -> (TaskInfo, Instance, Resources) {
    TaskTemplate::new(app).build(app, agent_id, host, ports)
}

/// The command of an app's tasks, without the environment: `cmd` through the shell, or
/// `args` as argv.
fn command_of(app: &App) -> CommandInfo {
    let mut command = match (&app.cmd, &app.args) {
        (Some(cmd), _) => CommandInfo {
            value: Some(cmd.clone()),
            shell: Some(true),
            ..CommandInfo::default()
        },
        (None, Some(args)) => CommandInfo {
            value: args.first().cloned(),
            arguments: args.clone(),
            shell: Some(false),
            ..CommandInfo::default()
        },
        (None, None) => CommandInfo {
            shell: Some(false),
            ..CommandInfo::default()
        },
    };
    command.uris = app
        .fetch
        .iter()
        .map(|f| Uri {
            value: f.uri.clone(),
            executable: Some(f.executable),
            extract: Some(f.extract),
            cache: Some(f.cache),
            output_file: f.dest_path.clone(),
        })
        .collect();
    command.user = app.user.clone();
    command
}

/// The host ports a task takes, one range each.
fn ports_resource(ports: &[u16]) -> Resource {
    Resource {
        name: "ports".into(),
        kind: "RANGES".into(),
        ranges: Some(Ranges {
            range: ports
                .iter()
                .map(|p| Range {
                    begin: u64::from(*p),
                    end: u64::from(*p),
                })
                .collect(),
        }),
        role: Some("*".into()),
        ..Resource::default()
    }
}

/// The first Mesos-side check of the app, which Marathon gives Mesos (validation allows
/// only one); its verdicts are recorded as that check's (`updates::mesos_health`).
fn mesos_check(app: &App, ports: &[u16]) -> Option<Value> {
    app.health_checks
        .iter()
        .find(|hc| crate::health::is_mesos_side(hc))
        .and_then(|hc| crate::health::to_mesos(hc, ports))
}

/// The text at `key` of `v` ("" when absent).
fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The Mesos `ContainerInfo` of an app's (validated) container, as Marathon 1.6 builds it: a
/// `MESOS` container names its image as a Docker image for the Mesos containerizer (cached
/// unless `forcePullImage`), a `DOCKER` container keeps Docker's form (the agents run it on
/// the Mesos containerizer too); host volumes are mounted as given.
pub(crate) fn container_info(c: &Value) -> Value {
    use dcos_mesos_api::container::{mesos_image, Credential, HostVolume};
    let docker = c.get("docker").unwrap_or(&Value::Null);
    let image = docker.get("image").and_then(Value::as_str);
    let force = docker
        .get("forcePullImage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let listed = c.get("volumes").and_then(Value::as_array);
    let volumes: Vec<HostVolume<'_>> = listed
        .into_iter()
        .flatten()
        .map(|v| HostVolume {
            container_path: text(v, "containerPath"),
            host_path: text(v, "hostPath"),
            read_only: text(v, "mode") == "RO",
        })
        .collect();
    let is_mesos = c.get("type").and_then(Value::as_str) == Some("MESOS");
    if let (true, Some(image)) = (is_mesos, image) {
        let credential = docker.get("credential").map(|cred| Credential {
            principal: text(cred, "principal"),
            secret: text(cred, "secret"),
        });
        return mesos_image(image, force, credential, &volumes);
    }
    let volumes: Vec<Value> = volumes
        .iter()
        .map(|v| {
            json!({"container_path": v.container_path, "host_path": v.host_path,
                "mode": if v.read_only { "RO" } else { "RW" }})
        })
        .collect();
    if is_mesos {
        return json!({"type": "MESOS", "volumes": volumes});
    }
    json!({
        "type": "DOCKER",
        "docker": {"image": image, "network": "HOST", "force_pull_image": force},
        "volumes": volumes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables(task: &TaskInfo) -> Vec<Variable> {
        let command = task.command.as_ref().unwrap();
        command.environment.as_ref().unwrap().variables.clone()
    }

    #[test]
    fn task_names_reverse_the_app_path() {
        assert_eq!(task_name("/web"), "web");
        assert_eq!(task_name("/prod/web"), "web.prod");
    }

    #[test]
    fn tasks_carry_marathon_environment_and_their_ports() {
        let mut app = App::with_defaults("/g/web".into());
        app.cmd = Some("run".into());
        app.version = "v1".into();
        app.port_definitions[0].name = Some("http".into());
        app.port_definitions[0].port = 10001;
        app.labels.insert("tier".into(), "front".into());
        let (task, inst, used) = build_task(&app, "A1", "10.0.0.2", &[31002]);
        assert!(inst.task_id.starts_with("g_web."));
        assert_eq!(task.task_id.value, inst.task_id);
        assert_eq!(
            (task.name.as_str(), task.agent_id.value.as_str()),
            ("web.g", "A1")
        );
        assert!(used.ports.contains(31002));
        let vars = variables(&task);
        let get = |k: &str| vars.iter().find(|v| v.name == k).map(|v| v.value.clone());
        assert_eq!(get("PORT0").as_deref(), Some("31002"));
        assert_eq!(get("PORT_HTTP").as_deref(), Some("31002"));
        assert_eq!(get("PORT_10001").as_deref(), Some("31002"));
        assert_eq!(get("HOST").as_deref(), Some("10.0.0.2"));
        assert_eq!(get("MARATHON_APP_ID").as_deref(), Some("/g/web"));
        assert_eq!(get("MARATHON_APP_LABEL_TIER").as_deref(), Some("front"));
        assert_eq!(get("MESOS_TASK_ID"), Some(inst.task_id));
        let command = task.command.as_ref().unwrap();
        assert_eq!(command.value.as_deref(), Some("run"));
        assert_eq!((command.shell, command.user.as_deref()), (Some(true), None));
        let ports = task.resources.iter().find(|r| r.name == "ports").unwrap();
        let range = &ports.ranges.as_ref().unwrap().range;
        assert_eq!((range[0].begin, range[0].end), (31002, 31002));
        let discovery = task.discovery.as_ref().unwrap();
        assert_eq!(discovery["ports"]["ports"][0]["number"], 31002);
        assert_eq!(discovery["ports"]["ports"][0]["name"], "http");
        assert_eq!(
            task.labels,
            Some(json!({"labels": [{"key": "tier", "value": "front"}]}))
        );
    }

    #[test]
    fn one_template_builds_distinct_tasks() {
        let mut app = App::with_defaults("/web".into());
        app.cmd = Some("run".into());
        let template = TaskTemplate::new(&app);
        let (a, _, _) = template.build(&app, "A1", "h1", &[31000]);
        let (b, _, _) = template.build(&app, "A2", "h2", &[31001]);
        assert_ne!(a.task_id, b.task_id);
        assert_eq!(b.agent_id.value, "A2");
        let host = |t: &TaskInfo| variables(t).into_iter().find(|v| v.name == "HOST");
        assert_eq!(host(&b).map(|v| v.value).as_deref(), Some("h2"));
    }

    #[test]
    fn the_app_user_runs_the_task_and_grace_periods_are_bounded() {
        let mut app = App::with_defaults("/web".into());
        app.cmd = Some("run".into());
        app.user = Some("nobody".into());
        app.task_kill_grace_period_seconds = Some(1e20);
        let (task, _, _) = build_task(&app, "A1", "h", &[]);
        assert_eq!(
            task.command.as_ref().unwrap().user.as_deref(),
            Some("nobody")
        );
        let max = i64::try_from(crate::state::MAX_DELAY.as_nanos()).unwrap();
        let grace = task.kill_policy.and_then(|k| k.grace_period).unwrap();
        assert_eq!(grace.nanoseconds, max);
        assert_eq!(grace_nanos(-1.0), 0);
        assert_eq!(grace_nanos(f64::NAN), 0);
        assert_eq!(grace_nanos(2.5), 2_500_000_000);
    }

    #[test]
    fn args_run_without_a_shell_and_the_wire_form_is_mesos() {
        let mut app = App::with_defaults("/web".into());
        app.args = Some(vec!["/bin/echo".into(), "hi".into()]);
        let (task, _, _) = build_task(&app, "A1", "h", &[]);
        let wire = serde_json::to_value(&task).unwrap();
        assert_eq!(wire["command"]["value"], "/bin/echo");
        assert_eq!(wire["command"]["arguments"], json!(["/bin/echo", "hi"]));
        assert_eq!(wire["command"]["shell"], false);
        assert_eq!(wire["task_id"]["value"], task.task_id.value);
        assert!(wire["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "cpus" && r["type"] == "SCALAR"));
    }
}
