//! From what a client sent to a complete, valid app: defaults (POST) or the stored app (PUT,
//! PATCH) overlaid with the fields present, then Marathon 1.6's validation rules, each
//! failure reported with its JSON path as Marathon does (422 `details`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::{canonical_id, App, AppSpec, PortDefinition, Violation};

/// Marathon's rule for one id segment.
const ID_SEGMENT: &str =
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$";

/// Marathon's `maxLength` of URIs and paths (`strings.Uri`, `strings.Path`).
const MAX_PATH: usize = 1024;

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
pub fn resolve(mut spec: AppSpec, base: App) -> Result<App, Rejected> {
    let mut r = Report::default();
    let mut app = base;
    overlay_task(&mut app, &mut r, &mut spec);
    overlay_policies(&mut app, &mut r, &mut spec);
    overlay_ports(&mut app, &mut r, &mut spec);
    check(&app, &mut r);
    r.finish().map(|()| app)
}

/// The spec's id, what runs, its resources and what is fetched for it.
fn overlay_task(app: &mut App, r: &mut Report, spec: &mut AppSpec) {
    if let Some(id) = spec.id.take() {
        app.id = canonical_id(&id, "/");
    }
    if let Some(v) = spec.cmd.take() {
        app.cmd = v.filter(|c| !c.is_empty());
    }
    if let Some(v) = spec.args.take() {
        app.args = v.filter(|a| !a.is_empty());
    }
    if let Some(v) = spec.user.take() {
        app.user = v;
    }
    if let Some(v) = spec.env.take() {
        app.env = v;
    }
    if let Some(v) = spec.instances.take() {
        int32(r, "/instances", v);
        app.instances = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    }
    if let Some(v) = spec.cpus.take() {
        app.cpus = v;
    }
    if let Some(v) = spec.mem.take() {
        app.mem = v;
    }
    if let Some(v) = spec.disk.take() {
        app.disk = v;
    }
    if let Some(v) = spec.gpus.take() {
        int32(r, "/gpus", v);
        app.gpus = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    }
    if let Some(v) = spec.executor.take() {
        app.executor = v;
    }
    if let Some(v) = spec.constraints.take() {
        app.constraints = v;
    }
    let uris_given = spec.uris.as_ref().is_some_and(|u| !u.is_empty());
    if uris_given && spec.fetch.as_ref().is_some_and(|f| !f.is_empty()) {
        r.add("/", "You cannot specify both uris and fetch fields");
    }
    if let Some(v) = spec.uris.take() {
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
    // An empty `fetch` beside `uris` is a definition read back (GETs answer `"fetch": []`)
    // with `uris` added: the `uris` stand.
    if let Some(v) = spec.fetch.take() {
        if !(v.is_empty() && uris_given) {
            app.fetch = v;
        }
    }
    if let Some(v) = spec.store_urls.take() {
        app.store_urls = v;
    }
}

/// The spec's launch, health, upgrade and placement policies.
fn overlay_policies(app: &mut App, r: &mut Report, spec: &mut AppSpec) {
    if let Some(v) = spec.backoff_seconds.take() {
        app.backoff_seconds = v;
    }
    if let Some(v) = spec.backoff_factor.take() {
        app.backoff_factor = v;
    }
    if let Some(v) = spec.max_launch_delay_seconds.take() {
        app.max_launch_delay_seconds = v;
    }
    if let Some(v) = spec.container.take() {
        app.container = v;
    }
    if let Some(v) = spec.health_checks.take() {
        app.health_checks = v;
    }
    if let Some(v) = spec.readiness_checks.take() {
        app.readiness_checks = v;
    }
    if let Some(v) = spec.dependencies.take() {
        app.dependencies = v
            .iter()
            .map(|d| canonical_id(d, &crate::api::parent_of(&app.id)))
            .collect();
    }
    if let Some(v) = spec.upgrade_strategy.take() {
        app.upgrade_strategy = v;
    }
    if let Some(v) = spec.labels.take() {
        app.labels = v;
    }
    if let Some(v) = spec.accepted_resource_roles.take() {
        app.accepted_resource_roles = v;
    }
    if let Some(v) = spec.ip_address.take() {
        app.ip_address = v;
    }
    if let Some(v) = spec.residency.take() {
        app.residency = v;
    }
    if let Some(v) = spec.secrets.take() {
        app.secrets = v;
    }
    if let Some(v) = spec.task_kill_grace_period_seconds.take() {
        app.task_kill_grace_period_seconds = v;
    }
    if let Some(v) = spec.unreachable_strategy.take() {
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
    if let Some(v) = spec.kill_selection.take() {
        app.kill_selection = v;
    }
    if let Some(v) = spec.networks.take() {
        app.networks = v;
    }
    if let Some(v) = spec.tty.take() {
        app.tty = v;
    }
    if let Some(v) = spec.require_ports.take() {
        app.require_ports = v;
    }
}

/// The spec's ports or port definitions (not both).
fn overlay_ports(app: &mut App, r: &mut Report, spec: &mut AppSpec) {
    match (spec.ports.take(), spec.port_definitions.take()) {
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
}

/// What a task id adds to its app's prefix: `.` and a UUID.
const TASK_ID_SUFFIX: usize = 1 + 36;

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
    } else if app.task_id_prefix().len() + TASK_ID_SUFFIX > dcos_mesos_api::api::MAX_ID_LEN {
        // Its tasks' ids would be longer than Mesos takes: refused here rather than
        // launching tasks the master can only refuse.
        r.add(
            "/id",
            format!(
                "is too long: its task ids would exceed Mesos' {} characters",
                dcos_mesos_api::api::MAX_ID_LEN
            ),
        );
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
        ("/backoffFactor", app.backoff_factor, 1.0),
    ] {
        if !v.is_finite() || v < min {
            r.raml(path, "error.min");
        }
    }
    // Marathon types these as whole seconds (`int32`); kept as floats here, so the reader's
    // refusal of fractions and of values beyond `i32` is done now.
    for (path, v) in [
        ("/backoffSeconds", Some(app.backoff_seconds)),
        ("/maxLaunchDelaySeconds", Some(app.max_launch_delay_seconds)),
        (
            "/taskKillGracePeriodSeconds",
            app.task_kill_grace_period_seconds,
        ),
    ] {
        if let Some(v) = v {
            whole_seconds(r, path, v);
        }
    }
    check_fetch(app, r);
    if let Some(c) = &app.container {
        check_container(c, r);
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
    check_port_definitions(app, r);
    check_health_checks(app, r);
    check_constraints(app, r);
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
    // `int64` in Marathon; the seconds are compared with clocks, never added to one.
    for (field, v) in [
        ("inactiveAfterSeconds", ur.inactive_after_seconds),
        ("expungeAfterSeconds", ur.expunge_after_seconds),
    ] {
        if i64::try_from(v).is_err() {
            r.raml(
                &format!("/unreachableStrategy/{field}"),
                "error.expected.long",
            );
        }
    }
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

/// Constraints: Marathon's operators, each with the value it needs.
fn check_constraints(app: &App, r: &mut Report) {
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
}

/// The largest value of Marathon's `format: int32` fields: its JSON reader refuses more
/// (`error.expected.int`), which bounds every duration and count taken from a definition.
pub const INT32_MAX: u64 = i32::MAX as u64;

/// An `int32` field with `minimum: 0` that arrives as a JSON integer.
fn int32(r: &mut Report, path: &str, v: i64) {
    if v > i32::MAX as i64 || v < i32::MIN as i64 {
        r.raml(path, "error.expected.int");
    } else if v < 0 {
        r.raml(path, "error.min");
    }
}

/// An `int32` field with `minimum: 0` that is kept as a float: Marathon's reader takes whole
/// numbers within `i32` only (1e20 seconds of backoff panicked in `Duration` before).
fn whole_seconds(r: &mut Report, path: &str, v: f64) {
    if !v.is_finite() || v.fract() != 0.0 || v > f64::from(i32::MAX) || v < f64::from(i32::MIN) {
        r.raml(path, "error.expected.int");
    } else if v < 0.0 {
        r.raml(path, "error.min");
    }
}

/// Port definitions: ranges, protocols, unique names and fixed ports.
fn check_port_definitions(app: &App, r: &mut Report) {
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
}

/// Health checks: the protocol, what to probe, and the bounds of every duration.
fn check_health_checks(app: &App, r: &mut Report) {
    // Mesos runs one health check per task. COMMAND checks are left out of the count as
    // Marathon 1.6 does: earlier versions stored apps with several.
    let mesos_side = app
        .health_checks
        .iter()
        .filter(|hc| crate::health::is_mesos_side(hc) && hc.protocol != "COMMAND")
        .count();
    if mesos_side > 1 {
        r.add(
            "/",
            "AppDefinition can contain at most one Mesos health check",
        );
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
        // Every duration and count is `int32` in Marathon, so each is bounded before any
        // time arithmetic sees it (an interval of 2^64-1 seconds overflowed `Instant`).
        for (field, v) in [
            ("gracePeriodSeconds", hc.grace_period_seconds),
            ("intervalSeconds", hc.interval_seconds),
            ("timeoutSeconds", hc.timeout_seconds),
            ("delaySeconds", hc.delay_seconds),
            (
                "maxConsecutiveFailures",
                u64::from(hc.max_consecutive_failures),
            ),
        ] {
            if v > INT32_MAX {
                r.raml(&format!("{path}/{field}"), "error.expected.int");
            }
        }
        // Zero would mean probing without pause.
        if hc.interval_seconds == 0 {
            r.raml(&format!("{path}/intervalSeconds"), "error.min");
        }
        for (field, v) in [("port", hc.port), ("portIndex", hc.port_index)] {
            if v.is_some_and(|p| p > 65535) {
                r.raml(&format!("{path}/{field}"), "error.max");
            }
        }
    }
}

/// Containers run on the Mesos containerizer (UCR), with or without an image: `DOCKER`
/// containers too, since no Docker daemon runs on dcos-rs agents; what only the Docker
/// daemon could do is refused rather than ignored.
fn check_container(c: &Value, r: &mut Report) {
    let kind = c.get("type").and_then(Value::as_str).unwrap_or("DOCKER");
    if kind != "DOCKER" && kind != "MESOS" {
        r.raml("/container/type", "error.expected.enum");
        return;
    }
    let image = c.pointer("/docker/image");
    match image {
        None if kind == "DOCKER" => r.add("/container/docker/image", "must not be empty"),
        Some(Value::String(i)) if i.trim().is_empty() => {
            r.add("/container/docker/image", "must not be empty")
        }
        Some(Value::String(i)) => {
            if let Err(e) = dcos_image::Reference::parse(i) {
                r.add("/container/docker/image", e.to_string());
            }
        }
        Some(_) => r.raml("/container/docker/image", "error.expected.jsstring"),
        None => {}
    }
    let daemon_only = "needs the Docker daemon, which dcos-rs agents do not run (containers run on the Mesos containerizer)";
    if c.pointer("/docker/parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty())
    {
        r.add("/container/docker/parameters", daemon_only);
    }
    if c.pointer("/docker/privileged") == Some(&Value::Bool(true)) {
        r.add("/container/docker/privileged", daemon_only);
    }
    if c.pointer("/docker/pullConfig").is_some() {
        r.add(
            "/container/docker/pullConfig",
            "Feature secrets is not enabled. Enable with --enable_features secrets)",
        );
    }
    for (i, v) in c
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = |f: &str| format!("/container/volumes({i})/{f}");
        let container_path = v.get("containerPath").and_then(Value::as_str).unwrap_or("");
        if container_path.is_empty() || container_path.split('/').any(|s| s == "..") {
            r.add(
                &path("containerPath"),
                "must be a path without '..' components",
            );
        }
        if v.get("persistent").is_some() || v.get("external").is_some() {
            r.add(
                &path(""),
                "persistent and external volumes are not supported yet",
            );
        } else if !v
            .get("hostPath")
            .and_then(Value::as_str)
            .is_some_and(|h| h.starts_with('/'))
        {
            r.add(&path("hostPath"), "must be an absolute path");
        }
    }
}

/// Fetched artifacts: Marathon's string bounds, and a `destPath` that stays in the sandbox.
/// The agent confines fetches too; refusing here tells the client at once, with a 422,
/// instead of a task that fails on every agent.
fn check_fetch(app: &App, r: &mut Report) {
    for (i, f) in app.fetch.iter().enumerate() {
        let path = format!("/fetch({i})");
        let fields = [
            ("uri", Some(f.uri.as_str())),
            ("destPath", f.dest_path.as_deref()),
        ];
        for (field, v) in fields {
            match v.map(str::len) {
                Some(0) => r.raml(&format!("{path}/{field}"), "error.minLength"),
                Some(n) if n > MAX_PATH => r.raml(&format!("{path}/{field}"), "error.maxLength"),
                _ => {}
            }
        }
        if let Some(dest) = f.dest_path.as_deref().filter(|d| !d.is_empty()) {
            if !sandbox_relative(dest) {
                r.add(
                    &format!("{path}/destPath"),
                    "must be a relative path inside the sandbox, without '..' components",
                );
            }
        }
    }
}

/// Whether `dest` names a place inside the sandbox: relative, no `..` component, no NUL.
pub fn sandbox_relative(dest: &str) -> bool {
    !dest.starts_with('/') && !dest.contains('\0') && !dest.split('/').any(|c| c == "..")
}

#[cfg(test)]
mod tests;
