//! From what a client sent to a complete, valid app: defaults (POST) or the stored app (PUT,
//! PATCH) overlaid with the fields present, then Marathon 1.6's validation rules, each
//! failure reported with its JSON path as Marathon does (422 `details`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::{canonical_id, App, AppSpec, PortDefinition, Violation};

/// Marathon's rule for one id segment.
const ID_SEGMENT: &str =
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$";

/// The constraint operators Marathon 1.6 knows.
const OPERATORS: &[&str] = &[
    "UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS",
];

/// Why an app was refused: Marathon checks the RAML types first (`Invalid JSON`, with
/// Play's `error.*` keys), then its model rules (`Object is not valid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// `Invalid JSON` or `Object is not valid`.
    pub message: &'static str,
    /// The violations.
    pub details: Vec<Violation>,
}

/// Collects violations of both layers.
#[derive(Default)]
struct Report {
    raml: Vec<Violation>,
    model: Vec<Violation>,
}

fn push(list: &mut Vec<Violation>, path: &str, error: String) {
    match list.iter_mut().find(|v| v.path == path) {
        Some(v) => {
            if !v.errors.contains(&error) {
                v.errors.push(error)
            }
        }
        None => list.push(Violation {
            path: path.into(),
            errors: vec![error],
        }),
    }
}

impl Report {
    /// A model-rule violation.
    fn add(&mut self, path: &str, error: impl Into<String>) {
        push(&mut self.model, path, error.into());
    }

    /// A type-level violation (`error.min`, `error.pattern`, ...).
    fn raml(&mut self, path: &str, key: &str) {
        push(&mut self.raml, path, key.into());
    }

    fn finish(self) -> Result<(), Rejected> {
        if !self.raml.is_empty() {
            return Err(Rejected {
                message: "Invalid JSON",
                details: self.raml,
            });
        }
        if !self.model.is_empty() {
            return Err(Rejected {
                message: "Object is not valid",
                details: self.model,
            });
        }
        Ok(())
    }
}

/// Applies `spec` over `base` (the stored app, or defaults for `id`) and validates the result.
/// `version` and `versionInfo` in the spec are ignored: Marathon sets them.
pub fn resolve(spec: AppSpec, base: App) -> Result<App, Rejected> {
    let mut r = Report::default();
    let mut app = base;
    if let Some(id) = spec.id {
        app.id = canonical_id(&id, "/");
    }
    if let Some(v) = spec.cmd {
        app.cmd = v.filter(|c| !c.is_empty());
    }
    if let Some(v) = spec.args {
        app.args = v.filter(|a| !a.is_empty());
    }
    if let Some(v) = spec.user {
        app.user = v;
    }
    if let Some(v) = spec.env {
        app.env = v;
    }
    if let Some(v) = spec.instances {
        if v < 0 {
            r.raml("/instances", "error.min");
        }
        app.instances = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    }
    if let Some(v) = spec.cpus {
        app.cpus = v;
    }
    if let Some(v) = spec.mem {
        app.mem = v;
    }
    if let Some(v) = spec.disk {
        app.disk = v;
    }
    if let Some(v) = spec.gpus {
        if v < 0 {
            r.raml("/gpus", "error.min");
        }
        app.gpus = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    }
    if let Some(v) = spec.executor {
        app.executor = v;
    }
    if let Some(v) = spec.constraints {
        app.constraints = v;
    }
    if let Some(v) = spec.uris {
        // Marathon turns the deprecated `uris` into `fetch` entries (replacing them, so an
        // update that repeats `uris` does not pile them up).
        app.fetch = v
            .into_iter()
            .map(|uri| crate::api::Fetch {
                extract: true,
                executable: false,
                cache: false,
                dest_path: None,
                uri,
            })
            .collect();
    }
    if let Some(v) = spec.fetch {
        app.fetch = v;
    }
    if let Some(v) = spec.store_urls {
        app.store_urls = v;
    }
    if let Some(v) = spec.backoff_seconds {
        app.backoff_seconds = v;
    }
    if let Some(v) = spec.backoff_factor {
        app.backoff_factor = v;
    }
    if let Some(v) = spec.max_launch_delay_seconds {
        app.max_launch_delay_seconds = v;
    }
    if let Some(v) = spec.container {
        app.container = v;
    }
    if let Some(v) = spec.health_checks {
        app.health_checks = v;
    }
    if let Some(v) = spec.readiness_checks {
        app.readiness_checks = v;
    }
    if let Some(v) = spec.dependencies {
        app.dependencies = v
            .iter()
            .map(|d| canonical_id(d, &crate::api::parent_of(&app.id)))
            .collect();
    }
    if let Some(v) = spec.upgrade_strategy {
        app.upgrade_strategy = v;
    }
    if let Some(v) = spec.labels {
        app.labels = v;
    }
    if let Some(v) = spec.accepted_resource_roles {
        app.accepted_resource_roles = v;
    }
    if let Some(v) = spec.ip_address {
        app.ip_address = v;
    }
    if let Some(v) = spec.residency {
        app.residency = v;
    }
    if let Some(v) = spec.secrets {
        app.secrets = v;
    }
    if let Some(v) = spec.task_kill_grace_period_seconds {
        app.task_kill_grace_period_seconds = v;
    }
    if let Some(v) = spec.unreachable_strategy {
        match v {
            // `"disabled"` is Marathon's way of saying: never replace unreachable tasks.
            Value::String(s) if s == "disabled" => {
                app.unreachable_strategy.inactive_after_seconds = u64::MAX / 4;
                app.unreachable_strategy.expunge_after_seconds = u64::MAX / 4;
            }
            other => match serde_json::from_value(other) {
                Ok(s) => app.unreachable_strategy = s,
                Err(e) => r.add("/unreachableStrategy", e.to_string()),
            },
        }
    }
    if let Some(v) = spec.kill_selection {
        app.kill_selection = v;
    }
    if let Some(v) = spec.networks {
        app.networks = v;
    }
    if let Some(v) = spec.tty {
        app.tty = v;
    }
    if let Some(v) = spec.require_ports {
        app.require_ports = v;
    }
    match (spec.ports, spec.port_definitions) {
        (Some(_), Some(_)) => r.add("/", "You cannot specify both ports and port definitions"),
        (Some(ports), None) => {
            app.port_definitions = ports
                .iter()
                .map(|p| PortDefinition {
                    port: u32::try_from(*p).unwrap_or(u32::MAX),
                    protocol: "tcp".into(),
                    name: None,
                    labels: Default::default(),
                })
                .collect();
            for (i, p) in ports.iter().enumerate() {
                if *p < 0 {
                    r.raml(&format!("/ports({i})"), "error.min");
                } else if *p > 65535 {
                    r.raml(&format!("/ports({i})"), "error.max");
                }
            }
        }
        (None, Some(defs)) => app.port_definitions = defs,
        (None, None) => {}
    }
    check(&app, &mut r);
    r.finish().map(|()| app)
}

fn check(app: &App, r: &mut Report) {
    let segment = regex::Regex::new(ID_SEGMENT).expect("the id pattern is a valid regex");
    if app.id == "/" {
        r.add("/id", "Path must contain at least one path element");
    } else if !app
        .id
        .trim_start_matches('/')
        .split('/')
        .all(|s| segment.is_match(s))
    {
        r.raml("/id", "error.pattern");
    }
    if app.cmd.is_some() == app.args.is_some() && app.container.is_none()
        || app.cmd.is_some() && app.args.is_some()
    {
        r.add(
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
        );
    }
    for (path, v, min) in [
        ("/cpus", app.cpus, 0.001),
        ("/mem", app.mem, 0.0),
        ("/disk", app.disk, 0.0),
        ("/backoffSeconds", app.backoff_seconds, 0.0),
        ("/backoffFactor", app.backoff_factor, 1.0),
        ("/maxLaunchDelaySeconds", app.max_launch_delay_seconds, 0.0),
    ] {
        if !v.is_finite() || v < min {
            r.raml(path, "error.min");
        }
    }
    if let Some(c) = &app.container {
        let docker_image = c.pointer("/docker/image").and_then(Value::as_str);
        if c.get("type").and_then(Value::as_str) == Some("DOCKER") || docker_image.is_some() {
            r.add(
                "/container/docker",
                "dcos-rs agents run processes, not Docker images: use 'cmd' or a MESOS container without an image",
            );
        }
    }
    for (name, value) in &app.env {
        match value {
            Value::String(_) => {}
            Value::Object(o) if o.contains_key("secret") => r.add(
                "/env",
                "use of secret-references in the environment requires the secrets feature to be enabled",
            ),
            _ => r.raml(&format!("/env/{name}"), "error.expected.jsstring"),
        }
    }
    if !app.secrets.is_empty() {
        r.add(
            "/secrets",
            "Feature secrets is not enabled. Enable with --enable_features secrets)",
        );
    }
    let mut names = BTreeSet::new();
    for (i, pd) in app.port_definitions.iter().enumerate() {
        if pd.port > 65535 {
            r.raml(&format!("/portDefinitions({i})/port"), "error.max");
        }
        if !["tcp", "udp", "udp,tcp", "tcp,udp"].contains(&pd.protocol.as_str()) {
            r.raml(
                &format!("/portDefinitions({i})/protocol"),
                "error.unknown.enum.literal",
            );
        }
        if let Some(n) = &pd.name {
            if !names.insert(n.clone()) {
                r.add("/portDefinitions", "Port names must be unique.");
            }
        }
    }
    let fixed: Vec<u32> = app
        .port_definitions
        .iter()
        .map(|p| p.port)
        .filter(|p| *p != 0)
        .collect();
    if fixed.iter().collect::<BTreeSet<_>>().len() != fixed.len() {
        r.add("/portDefinitions", "Ports must be unique.");
    }
    for (i, hc) in app.health_checks.iter().enumerate() {
        let path = format!("/healthChecks({i})");
        let known = [
            "HTTP",
            "HTTPS",
            "TCP",
            "COMMAND",
            "MESOS_HTTP",
            "MESOS_HTTPS",
            "MESOS_TCP",
        ];
        if !known.contains(&hc.protocol.as_str()) {
            r.raml(&format!("{path}/protocol"), "error.unknown.enum.literal");
        }
        if hc.protocol == "COMMAND" {
            if hc.command.as_ref().and_then(|c| c.get("value")).is_none() {
                r.add(
                    &format!("{path}/command"),
                    "is required for COMMAND health checks",
                );
            }
        } else if hc.port.is_none() {
            let index = hc.port_index.unwrap_or(0) as usize;
            if index >= app.port_definitions.len() {
                r.add(
                    &path,
                    "Health check port indices must address an element of the ports array or container port mappings.",
                );
            }
        }
        if hc.interval_seconds == 0 {
            r.raml(&format!("{path}/intervalSeconds"), "error.min");
        }
    }
    for (i, c) in app.constraints.iter().enumerate() {
        let path = format!("/constraints({i})");
        match c.get(1).map(String::as_str) {
            None => r.add(&path, "Each constraint must have either 2 or 3 fields"),
            Some(op) if !OPERATORS.contains(&op) => r.add(
                &path,
                "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS",
            ),
            Some(op) => {
                if c.len() > 3 {
                    r.add(&path, "Each constraint must have either 2 or 3 fields");
                }
                let value = c.get(2);
                match op {
                    "LIKE" | "UNLIKE" => match value {
                        Some(v) if regex::Regex::new(v).is_ok() => {}
                        Some(_) => r.add(&path, "is not a valid regular expression"),
                        None => r.add(&path, "LIKE and UNLIKE require a non-empty, regular expression value"),
                    },
                    "MAX_PER" if value.and_then(|v| v.parse::<u32>().ok()).is_none() => {
                        r.add(&path, "MAX_PER requires an integer value");
                    }
                    "GROUP_BY" if value.is_some_and(|v| v.parse::<u32>().is_err()) => {
                        r.add(&path, "GROUP BY must define an integer value or else no value at all");
                    }
                    "UNIQUE" if value.is_some() => r.add(&path, "UNIQUE does not accept a value"),
                    _ => {}
                }
            }
        }
    }
    let us = &app.upgrade_strategy;
    for (path, v) in [
        (
            "/upgradeStrategy/minimumHealthCapacity",
            us.minimum_health_capacity,
        ),
        (
            "/upgradeStrategy/maximumOverCapacity",
            us.maximum_over_capacity,
        ),
    ] {
        if v < 0.0 || v.is_nan() {
            r.raml(path, "error.min");
        } else if v > 1.0 {
            r.raml(path, "error.max");
        }
    }
    let ur = &app.unreachable_strategy;
    if ur.inactive_after_seconds > ur.expunge_after_seconds {
        r.add(
            "/unreachableStrategy/inactiveAfterSeconds",
            "inactiveAfterSeconds must be less or equal to expungeAfterSeconds",
        );
    }
    if !["YOUNGEST_FIRST", "OLDEST_FIRST"].contains(&app.kill_selection.as_str()) {
        r.raml("/killSelection", "error.unknown.enum.literal");
    }
    if app.dependencies.contains(&app.id) {
        r.add("/dependencies", "An app cannot depend on itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> AppSpec {
        serde_json::from_str(json).unwrap()
    }

    fn base() -> App {
        App::with_defaults(String::new())
    }

    #[test]
    fn a_minimal_app_gets_marathon_defaults() {
        let app = resolve(spec(r#"{"id": "web", "cmd": "sleep 1"}"#), base()).unwrap();
        assert_eq!(app.id, "/web");
        assert_eq!((app.cpus, app.mem, app.instances), (1.0, 128.0, 1));
        assert_eq!(app.port_definitions.len(), 1);
    }

    #[test]
    fn violations_name_their_paths() {
        let err = resolve(
            spec(r#"{"id": "Bad_Id", "cpus": -1, "instances": -2}"#),
            base(),
        )
        .unwrap_err();
        assert_eq!(err.message, "Invalid JSON");
        let paths: Vec<&str> = err.details.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, vec!["/instances", "/id", "/cpus"], "{err:?}");
        assert_eq!(err.details[2].errors, vec!["error.min"]);
        let err = resolve(
            spec(r#"{"id": "ok", "constraints": [["hostname", "NEAR"]]}"#),
            base(),
        )
        .unwrap_err();
        assert_eq!(err.message, "Object is not valid");
        let paths: Vec<&str> = err.details.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, vec!["/", "/constraints(0)"]);
    }

    #[test]
    fn secrets_and_docker_are_refused_clearly() {
        let err = resolve(
            spec(r#"{"id": "s", "cmd": "x", "env": {"P": {"secret": "db"}}}"#),
            base(),
        )
        .unwrap_err();
        assert_eq!(err.details[0].path, "/env");
        let err = resolve(
            spec(r#"{"id": "d", "container": {"type": "DOCKER", "docker": {"image": "nginx"}}}"#),
            base(),
        )
        .unwrap_err();
        assert_eq!(err.details[0].path, "/container/docker");
    }

    #[test]
    fn a_partial_update_keeps_what_it_does_not_name() {
        let app = resolve(spec(r#"{"id": "w", "cmd": "a", "mem": 64}"#), base()).unwrap();
        let app = resolve(spec(r#"{"instances": 3}"#), app).unwrap();
        assert_eq!(
            (app.mem, app.instances, app.cmd.as_deref()),
            (64.0, 3, Some("a"))
        );
    }

    #[test]
    fn health_check_port_index_must_exist() {
        let err = resolve(
            spec(r#"{"id": "h", "cmd": "x", "portDefinitions": [], "healthChecks": [{"protocol": "HTTP"}]}"#),
            base(),
        )
        .unwrap_err();
        assert_eq!(err.details[0].path, "/healthChecks(0)");
    }
}
