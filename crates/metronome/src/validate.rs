//! From a client's JSON to a valid job or schedule, refusing the rest as Metronome does:
//! `422 {"message":"Object is not valid","details":[{"path":"/run/cpus","errors":[..]}]}`.
//!
//! Metronome checks a body in three steps and answers with the first that fails: its JSON
//! schema (`jobspec.schema.json`, `jobspec_v0.schema.json`, `schedulespec.schema.json`; the
//! play-json-schema-validator's messages), its JSON reads (cron expressions, time zones, in
//! Play's words), then its validators (a command or an image; one schedule; a starting
//! deadline of a minute or more). Paths are Play's: `/run/artifacts(0)/uri`, `` for the
//! body itself.
//!
//! The schemas below restate the constraints of Metronome 0.4.5's schema files (types,
//! required keys, patterns, minimums, enums, closed objects); [`check`] walks a body against
//! one of them.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{json, Map, Value};

use crate::api::{JobSpec, Schedule, ScheduledJobSpec};
use crate::schedule::Cron;

/// A refused body: the violations, each a path and its messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rejected {
    /// `(path, errors)` in the order found.
    pub details: Vec<(String, Vec<String>)>,
}

impl Rejected {
    fn one(path: impl Into<String>, error: impl Into<String>) -> Rejected {
        Rejected {
            details: vec![(path.into(), vec![error.into()])],
        }
    }

    fn push(&mut self, path: &str, error: String) {
        match self.details.iter_mut().find(|(p, _)| p == path) {
            Some((_, errors)) => errors.push(error),
            None => self.details.push((path.to_string(), vec![error])),
        }
    }

    /// Metronome's body.
    pub fn to_json(&self) -> Value {
        let details: Vec<Value> = self
            .details
            .iter()
            .map(|(path, errors)| json!({"path": path, "errors": errors}))
            .collect();
        json!({"message": "Object is not valid", "details": details})
    }
}

/// The job id pattern of the schemas (dot-separated `[a-z0-9-]` segments, no leading or
/// trailing dash).
pub const JOB_ID_PATTERN: &str =
    "^([a-z0-9]([a-z0-9-]*[a-z0-9]+)*)([.][a-z0-9]([a-z0-9-]*[a-z0-9]+)*)*$";
/// A schedule id.
const SCHEDULE_ID_PATTERN: &str = "^([a-z0-9][a-z0-9\\-]*[a-z0-9]+)$";
/// The id rule Metronome applies to ids in paths (`JobId`'s validator).
const PATH_ID_PATTERN: &str =
    "^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])$";

/// Which document a body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/jobs`: a job without schedules.
    Job,
    /// `/v0/scheduled-jobs`: a job with its schedules.
    ScheduledJob,
    /// `/v1/jobs/{id}/schedules`: a schedule.
    Schedule,
}

fn run_schema(v0: bool) -> Value {
    let mut container_path = json!({"type": "string", "minLength": 1});
    if !v0 {
        container_path["pattern"] = json!("^/[^/].*$");
    }
    let mut props = json!({
        "args": {"type": "array", "items": {"type": "string"}},
        "artifacts": {"type": "array", "items": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "uri": {"type": "string"}, "executable": {"type": "boolean"},
                "extract": {"type": "boolean"}, "cache": {"type": "boolean"}},
            "required": ["uri"]}},
        "cmd": {"type": "string", "minLength": 1},
        "cpus": {"type": "number", "minimum": 0.01},
        "disk": {"type": "number", "minimum": 0},
        "docker": {"type": "object", "additionalProperties": false,
            "properties": {
                "image": {"type": "string"}, "forcePullImage": {"type": "boolean"},
                "privileged": {"type": "boolean"},
                "parameters": {"type": "array", "items": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
                    "required": ["key", "value"]}}},
            "required": ["image"]},
        "env": {"type": "object", "patternProperties": {".*": {"oneOf": [
            {"type": "string"},
            {"type": "object", "properties": {"secret": {"type": "string"}}}]}}},
        "maxLaunchDelay": {"type": "integer", "minimum": 1},
        "mem": {"type": "number", "minimum": 32},
        "placement": {"type": "object", "additionalProperties": false, "properties": {
            "constraints": {"type": "array", "items": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "attribute": {"type": "string"},
                    "operator": {"type": "string", "enum": ["EQ", "LIKE", "UNLIKE"]},
                    "value": {"type": "string"}},
                "required": ["attribute", "operator"]}}}},
        "user": {"type": "string"},
        "restart": {"type": "object", "additionalProperties": false,
            "properties": {
                "policy": {"type": "string", "enum": ["NEVER", "ON_FAILURE"]},
                "activeDeadlineSeconds": {"type": "integer"}},
            "required": ["policy"]},
        "volumes": {"type": "array", "items": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "containerPath": container_path,
                "hostPath": {"type": "string", "minLength": 1},
                "mode": {"type": "string", "enum": ["RO", "RW"]}},
            "required": ["containerPath", "hostPath", "mode"]}},
        "secrets": {"type": "object", "patternProperties": {".*": {
            "type": "object", "properties": {"source": {"type": "string"}}}}}
    });
    if !v0 {
        props["taskKillGracePeriodSeconds"] = json!({"type": "number"});
    }
    json!({"type": "object", "additionalProperties": false, "properties": props,
        "required": ["cpus", "mem", "disk"]})
}

fn schedule_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string", "pattern": SCHEDULE_ID_PATTERN, "minLength": 1},
        "cron": {"type": "string"},
        "timezone": {"type": "string"},
        "startingDeadlineSeconds": {"type": "integer", "minimum": 1},
        "concurrencyPolicy": {"type": "string", "enum": ["ALLOW", "FORBID"]},
        "enabled": {"type": "boolean"}},
        "required": ["id", "cron"]})
}

static JOB: LazyLock<Value> = LazyLock::new(|| job_schema(false));
static SCHEDULED_JOB: LazyLock<Value> = LazyLock::new(|| job_schema(true));
static SCHEDULE: LazyLock<Value> = LazyLock::new(schedule_schema);

fn job_schema(v0: bool) -> Value {
    let mut props = json!({
        "id": {"type": "string", "pattern": JOB_ID_PATTERN, "minLength": 1},
        "description": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "run": run_schema(v0),
    });
    if v0 {
        let mut item = schedule_schema();
        // The v0 document's schedules are closed objects only in the v1 schedule schema's
        // sense: both leave additional keys open.
        item["additionalProperties"] = json!(true);
        props["schedules"] = json!({"type": "array", "items": item});
    }
    json!({"type": "object", "additionalProperties": false, "properties": props,
        "required": ["id", "run"]})
}

/// A job body of `/v1/jobs` (its id replaced by `path_id` on PUT), valid or refused.
pub fn job(body: &Value, path_id: Option<&str>) -> Result<JobSpec, Rejected> {
    check(body, &JOB)?;
    let mut spec: JobSpec = read(body)?;
    if let Some(id) = path_id {
        spec.id = id.to_string();
    }
    run_rules(&spec.run, "/run")?;
    Ok(spec)
}

/// A `/v0/scheduled-jobs` body, valid or refused.
pub fn scheduled_job(body: &Value, path_id: Option<&str>) -> Result<ScheduledJobSpec, Rejected> {
    check(body, &SCHEDULED_JOB)?;
    let mut rejected = Rejected::default();
    if let Some(list) = body.get("schedules").and_then(Value::as_array) {
        for (i, s) in list.iter().enumerate() {
            schedule_reads(s, &format!("/schedules({i})"), &mut rejected);
        }
    }
    if !rejected.details.is_empty() {
        return Err(rejected);
    }
    let mut spec: ScheduledJobSpec = read(body)?;
    if let Some(id) = path_id {
        spec.id = id.to_string();
    }
    run_rules(&spec.run, "/run")?;
    let mut rejected = Rejected::default();
    if spec.schedules.len() > 1 {
        rejected.push(
            "/schedules",
            format!("has size {}, expected 1 or less", spec.schedules.len()),
        );
    }
    for (i, s) in spec.schedules.iter().enumerate() {
        schedule_rules(s, &format!("/schedules({i})"), &mut rejected);
    }
    if rejected.details.is_empty() {
        Ok(spec)
    } else {
        Err(rejected)
    }
}

/// A schedule body (its id replaced by `path_id` on PUT), valid or refused.
pub fn schedule(body: &Value, path_id: Option<&str>) -> Result<Schedule, Rejected> {
    check(body, &SCHEDULE)?;
    let mut rejected = Rejected::default();
    schedule_reads(body, "", &mut rejected);
    if !rejected.details.is_empty() {
        return Err(rejected);
    }
    // The schedule schema leaves other keys open: read only the known ones.
    let known: Map<String, Value> = body
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "id" | "cron"
                    | "timezone"
                    | "startingDeadlineSeconds"
                    | "concurrencyPolicy"
                    | "enabled"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut s: Schedule = read(&Value::Object(known))?;
    if let Some(id) = path_id {
        s.id = id.to_string();
    }
    schedule_rules(&s, "", &mut rejected);
    if rejected.details.is_empty() {
        Ok(s)
    } else {
        Err(rejected)
    }
}

/// Whether `id` is a job id as Metronome reads one from a path.
pub fn is_job_id(id: &str) -> bool {
    regex(PATH_ID_PATTERN).is_some_and(|r| r.is_match(id))
}

/// Play's reads of a schedule's cron expression and time zone.
fn schedule_reads(s: &Value, at: &str, rejected: &mut Rejected) {
    let cron = s.get("cron").and_then(Value::as_str).unwrap_or_default();
    let zone = s
        .get("timezone")
        .and_then(Value::as_str)
        .unwrap_or(crate::api::defaults::TIMEZONE);
    if let Err(e) = crate::schedule::zone(zone) {
        rejected.push(&format!("{at}/timezone"), e.to_string());
    }
    if let Err(e @ crate::schedule::Invalid::Cron(_)) = Cron::new(cron, "UTC") {
        rejected.push(&format!("{at}/cron"), e.to_string());
    }
}

/// Metronome's validator of a schedule: a starting deadline of at least a minute.
fn schedule_rules(s: &Schedule, at: &str, rejected: &mut Rejected) {
    if s.starting_deadline_seconds < 60 {
        rejected.push(
            &format!("{at}/startingDeadline"),
            format!(
                "got {} seconds, expected 1 minute or more",
                s.starting_deadline_seconds
            ),
        );
    }
}

/// Metronome's validator of a run spec.
fn run_rules(run: &crate::api::RunSpec, at: &str) -> Result<(), Rejected> {
    let has_image = run.docker.as_ref().is_some_and(|d| !d.image.is_empty());
    if run.cmd.is_none() && !has_image {
        return Err(Rejected::one(at, "Cmd or docker image must be specified"));
    }
    // The agents run images on the Mesos containerizer, without a Docker daemon: what only
    // Docker could do is refused rather than silently dropped (as Marathon's `DOCKER` apps).
    if let Some(d) = &run.docker {
        let mut r = Rejected::default();
        if !d.parameters.is_empty() {
            r.push(
                &format!("{at}/docker/parameters"),
                "Docker parameters are not supported: images run on the Mesos containerizer".into(),
            );
        }
        if d.privileged {
            r.push(
                &format!("{at}/docker/privileged"),
                "privileged containers are not supported: images run on the Mesos containerizer"
                    .into(),
            );
        }
        if !r.details.is_empty() {
            return Err(r);
        }
    }
    let env_secrets: std::collections::BTreeSet<&str> = run
        .env
        .values()
        .filter_map(|v| match v {
            crate::api::EnvValue::Secret { secret } => Some(secret.as_str()),
            crate::api::EnvValue::Value(_) => None,
        })
        .collect();
    let provided: std::collections::BTreeSet<&str> =
        run.secrets.keys().map(String::as_str).collect();
    if env_secrets != provided {
        let join =
            |s: &std::collections::BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
        return Err(Rejected::one(
            at,
            format!(
                "Secret names are different from provided secrets. Defined: {}, Provided: {}",
                join(&env_secrets),
                join(&provided)
            ),
        ));
    }
    Ok(())
}

/// The typed read of a body the schema passed (what is left for it to refuse is a type the
/// schema leaves open, reported at the body).
fn read<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, Rejected> {
    serde_json::from_value(body.clone()).map_err(|e| Rejected::one("", e.to_string()))
}

// === the schema walker ===

/// Checks `value` against `schema`, collecting every violation.
pub fn check(value: &Value, schema: &Value) -> Result<(), Rejected> {
    let mut rejected = Rejected::default();
    walk(value, schema, "", &mut rejected);
    if rejected.details.is_empty() {
        Ok(())
    } else {
        Err(rejected)
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "number" => v.is_number(),
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        other => dcos_serve::json::type_name(v) == other,
    }
}

fn regex(pattern: &str) -> Option<regex::Regex> {
    static CACHE: LazyLock<Mutex<HashMap<String, regex::Regex>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = cache.get(pattern) {
        return Some(r.clone());
    }
    let r = regex::Regex::new(pattern).ok()?;
    cache.insert(pattern.to_string(), r.clone());
    Some(r)
}

fn walk(v: &Value, schema: &Value, path: &str, out: &mut Rejected) {
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|s| {
                let mut inner = Rejected::default();
                walk(v, s, path, &mut inner);
                inner.details.is_empty()
            })
            .count();
        match matching {
            1 => {}
            0 => out.push(path, "Instance does not match any schema.".into()),
            _ => out.push(path, "Instance matches more than one schema.".into()),
        }
        return;
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        if !has_type(v, ty) {
            out.push(
                path,
                format!(
                    "Wrong type. Expected {ty}, was {}.",
                    dcos_serve::json::type_name(v)
                ),
            );
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            out.push(path, "Instance is invalid enum value.".into());
        }
    }
    match v {
        Value::String(s) => {
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if (s.chars().count() as u64) < min {
                    out.push(
                        path,
                        format!("'{s}' does not match minimum length of {min}."),
                    );
                }
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if regex(p).is_some_and(|r| !r.is_match(s)) {
                    out.push(path, format!("'{s}' does not match pattern '{p}'."));
                }
            }
        }
        Value::Number(n) => {
            if let Some(min) = schema.get("minimum") {
                if let (Some(x), Some(m)) = (n.as_f64(), min.as_f64()) {
                    if x < m {
                        out.push(
                            path,
                            format!("{n} is smaller than required minimum value of {min}."),
                        );
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, x) in items.iter().enumerate() {
                    walk(x, item, &format!("{path}({i})"), out);
                }
            }
        }
        Value::Object(map) => walk_object(map, schema, path, out),
        _ => {}
    }
}

fn walk_object(map: &Map<String, Value>, schema: &Value, path: &str, out: &mut Rejected) {
    let props = schema.get("properties").and_then(Value::as_object);
    let patterns = schema.get("patternProperties").and_then(Value::as_object);
    let mut unmatched = Vec::new();
    for (k, x) in map {
        let at = format!("{path}/{k}");
        if let Some(s) = props.and_then(|p| p.get(k)) {
            walk(x, s, &at, out);
            continue;
        }
        let by_pattern: Vec<&Value> = patterns
            .into_iter()
            .flatten()
            .filter(|(p, _)| regex(p).is_some_and(|r| r.is_match(k)))
            .map(|(_, s)| s)
            .collect();
        if !by_pattern.is_empty() {
            for s in by_pattern {
                walk(x, s, &at, out);
            }
            continue;
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => unmatched.push(format!("'{k}'")),
            Some(s @ Value::Object(_)) => walk(x, s, &at, out),
            _ => {}
        }
    }
    if !unmatched.is_empty() {
        out.push(
            path,
            format!(
                "Additional properties are not allowed, but found properties {}.",
                unmatched.join(" and ")
            ),
        );
    }
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(r) {
            out.push(path, format!("Property {r} missing."));
        }
    }
}

#[cfg(test)]
mod tests;
