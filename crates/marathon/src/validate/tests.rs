//! Validation: Marathon's rules and paths, the bounds that keep definitions from crashing
//! the scheduler, and a property test that no body a client can send panics on the way from
//! the POST handler's parser through validation.

use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::state::{AppEntry, Backoff, State, MAX_DELAY};

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
fn secrets_and_docker_daemon_options_are_refused_clearly() {
    let err = resolve(
        spec(r#"{"id": "s", "cmd": "x", "env": {"P": {"secret": "db"}}}"#),
        base(),
    )
    .unwrap_err();
    assert_eq!(err.details[0].path, "/env");
    for (container, path) in [
        (
            r#"{"type": "DOCKER", "docker": {"image": "nginx", "privileged": true}}"#,
            "/container/docker/privileged",
        ),
        (
            r#"{"type": "DOCKER", "docker": {"image": "nginx", "parameters": [{"key": "cap-add", "value": "ALL"}]}}"#,
            "/container/docker/parameters",
        ),
        (
            r#"{"type": "DOCKER", "docker": {}}"#,
            "/container/docker/image",
        ),
        (
            r#"{"type": "MESOS", "docker": {"image": "UPPER/../x"}}"#,
            "/container/docker/image",
        ),
        (
            r#"{"type": "MESOS", "volumes": [{"containerPath": "/d", "hostPath": "rel", "mode": "RW"}]}"#,
            "/container/volumes(0)/hostPath",
        ),
    ] {
        let app = format!(r#"{{"id": "d", "container": {container}}}"#);
        let err = resolve(spec(&app), base()).unwrap_err();
        assert_eq!(err.details[0].path, path, "{container}: {err:?}");
    }
}

#[test]
fn image_containers_run_on_the_mesos_containerizer() {
    for container in [
        r#"{"type": "DOCKER", "docker": {"image": "nginx:1.13", "forcePullImage": true}}"#,
        r#"{"type": "MESOS", "docker": {"image": "127.0.0.1:5000/busybox"}, "volumes": [{"containerPath": "/data", "hostPath": "/var/data", "mode": "RO"}]}"#,
    ] {
        let app = format!(r#"{{"id": "img", "container": {container}}}"#);
        let app = resolve(spec(&app), base()).unwrap();
        let info = crate::engine::launch::container_info(app.container.as_ref().unwrap());
        match info["type"].as_str() {
            Some("DOCKER") => {
                assert_eq!(info["docker"]["image"], "nginx:1.13");
                assert_eq!(info["docker"]["force_pull_image"], true);
            }
            Some("MESOS") => {
                assert_eq!(
                    info["mesos"]["image"],
                    json!({"type": "DOCKER", "docker": {"name": "127.0.0.1:5000/busybox"}, "cached": true})
                );
                assert_eq!(
                    info["volumes"],
                    json!([{"container_path": "/data", "host_path": "/var/data", "mode": "RO"}])
                );
            }
            other => panic!("{other:?}"),
        }
    }
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

/// The violations of a refused definition, as `(path, first error)`.
fn refused(json: Value) -> (&'static str, Vec<(String, String)>) {
    let err = resolve(serde_json::from_value(json).unwrap(), base()).unwrap_err();
    let details = err
        .details
        .into_iter()
        .map(|v| (v.path, v.errors[0].clone()))
        .collect();
    (err.message, details)
}

fn one(path: &str, error: &str) -> (&'static str, Vec<(String, String)>) {
    ("Invalid JSON", vec![(path.into(), error.into())])
}

#[test]
fn durations_beyond_marathons_int32_are_refused_as_marathon_refuses_them() {
    // Each of these crashed the scheduler: an `Instant` overflow at the first probe, a
    // `Duration` panic at the first task failure.
    let hc = json!({"id": "h", "cmd": "x", "healthChecks": [{"intervalSeconds": u64::MAX}]});
    assert_eq!(
        refused(hc),
        one("/healthChecks(0)/intervalSeconds", "error.expected.int")
    );
    for field in ["backoffSeconds", "maxLaunchDelaySeconds"] {
        let app = json!({"id": "b", "cmd": "x", field: 1e20});
        assert_eq!(
            refused(app),
            one(&format!("/{field}"), "error.expected.int")
        );
    }
    for (field, v, error) in [
        ("backoffSeconds", json!(0.5), "error.expected.int"),
        ("maxLaunchDelaySeconds", json!(-1), "error.min"),
        ("taskKillGracePeriodSeconds", json!(-3), "error.min"),
        (
            "taskKillGracePeriodSeconds",
            json!(2147483648_u64),
            "error.expected.int",
        ),
        ("instances", json!(2147483648_u64), "error.expected.int"),
        ("gpus", json!(i64::MAX), "error.expected.int"),
    ] {
        let app = json!({"id": "b", "cmd": "x", field: v});
        assert_eq!(
            refused(app),
            one(&format!("/{field}"), error),
            "{field}: {v}"
        );
    }
    for field in [
        "gracePeriodSeconds",
        "timeoutSeconds",
        "delaySeconds",
        "maxConsecutiveFailures",
    ] {
        let app = json!({"id": "h", "cmd": "x", "healthChecks": [{field: 2147483648_u64}]});
        let path = format!("/healthChecks(0)/{field}");
        assert_eq!(refused(app), one(&path, "error.expected.int"));
    }
    let app = json!({"id": "h", "cmd": "x", "healthChecks": [{"port": 70000}]});
    assert_eq!(refused(app), one("/healthChecks(0)/port", "error.max"));
    let app = json!({"id": "u", "cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": u64::MAX, "expungeAfterSeconds": u64::MAX}});
    let (_, details) = refused(app);
    assert_eq!(details[0].1, "error.expected.long");
}

#[test]
fn the_largest_durations_marathon_accepts_are_accepted() {
    let max = i32::MAX;
    let app = json!({
        "id": "big", "cmd": "x", "instances": max, "backoffSeconds": max,
        "maxLaunchDelaySeconds": max, "taskKillGracePeriodSeconds": max,
        "healthChecks": [{"intervalSeconds": max, "timeoutSeconds": max, "gracePeriodSeconds": max}]
    });
    let app = resolve(serde_json::from_value(app).unwrap(), base()).unwrap();
    assert_eq!(app.health_checks[0].interval_seconds, INT32_MAX);
    // And the arithmetic they feed stays within bounds.
    let delay = Backoff::default().fail(&app, Instant::now());
    assert_eq!(delay, MAX_DELAY);
}

#[test]
fn a_dest_path_must_stay_in_the_sandbox() {
    for dest in ["/etc/cron.d/x", "../x", "a/../../x", "a/..", "x\u{0}y"] {
        let app =
            json!({"id": "f", "cmd": "x", "fetch": [{"uri": "http://h/a", "destPath": dest}]});
        let (message, details) = refused(app);
        assert_eq!(message, "Object is not valid", "{dest:?}");
        assert_eq!(details[0].0, "/fetch(0)/destPath", "{dest:?}");
    }
    let app = json!({"id": "f", "cmd": "x", "fetch": [{"uri": "http://h/a", "destPath": ""}]});
    assert_eq!(refused(app), one("/fetch(0)/destPath", "error.minLength"));
    let long = "a".repeat(MAX_PATH + 1);
    let app = json!({"id": "f", "cmd": "x", "fetch": [{"uri": long}]});
    assert_eq!(refused(app), one("/fetch(0)/uri", "error.maxLength"));
    for dest in ["a/b", "x..y", "./x", "..a/b."] {
        let app =
            json!({"id": "f", "cmd": "x", "fetch": [{"uri": "http://h/a", "destPath": dest}]});
        assert!(
            resolve(serde_json::from_value(app).unwrap(), base()).is_ok(),
            "{dest}"
        );
    }
}

/// A Mesos task id must not be `.` or `..` (it names a sandbox directory), nor hold `/` or
/// control characters: the task id is the app's path with `/` as `_`, so this follows from the
/// id rule, which every accepted id meets.
fn task_id_is_safe(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix != "."
        && prefix != ".."
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

#[test]
fn app_ids_make_safe_task_ids() {
    for id in [
        "/.", "/..", "/a/../..", "a b", "/A", "/a//b/.x", "/a\u{1}", "/-a", "/a./b",
    ] {
        let app = json!({"id": id, "cmd": "x"});
        assert!(
            resolve(serde_json::from_value(app).unwrap(), base()).is_err(),
            "{id:?}"
        );
    }
    let app = json!({"id": "/prod/web.v2/api-1", "cmd": "x"});
    let app = resolve(serde_json::from_value(app).unwrap(), base()).unwrap();
    assert_eq!(app.task_id_prefix(), "prod_web.v2_api-1");
    assert!(task_id_is_safe(&app.task_id_prefix()));
}

#[test]
fn the_user_is_kept() {
    let app = resolve(spec(r#"{"id": "u", "cmd": "x", "user": "nobody"}"#), base()).unwrap();
    assert_eq!(app.user.as_deref(), Some("nobody"));
}

// === property: no body panics the POST path ===

/// A full definition that passes validation, the seed the mutations start from.
fn seed() -> Value {
    json!({
        "id": "/g/web", "cmd": "run", "user": "nobody", "instances": 2, "cpus": 0.5, "mem": 64,
        "env": {"A": "b"}, "labels": {"l": "v"},
        "backoffSeconds": 2, "backoffFactor": 2, "maxLaunchDelaySeconds": 30,
        "taskKillGracePeriodSeconds": 5,
        "portDefinitions": [{"port": 0, "name": "http", "protocol": "tcp"}],
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 5,
            "timeoutSeconds": 2, "gracePeriodSeconds": 10, "maxConsecutiveFailures": 3}],
        "fetch": [{"uri": "http://h/a.tgz", "destPath": "a", "extract": true}],
        "constraints": [["hostname", "UNIQUE"], ["rack", "LIKE", "r[0-9]"]],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
        "unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 20},
        "killSelection": "OLDEST_FIRST", "dependencies": ["/g/db"]
    })
}

/// Every JSON pointer into the seed, and one per top-level field it lacks.
fn pointers() -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => o
                .iter()
                .for_each(|(k, v)| walk(v, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, format!("{at}/{i}"), out)),
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(&seed(), String::new(), &mut out);
    for k in [
        "args",
        "gpus",
        "disk",
        "ports",
        "uris",
        "secrets",
        "container",
        "tty",
        "requirePorts",
        "version",
        "networks",
        "residency",
        "acceptedResourceRoles",
    ] {
        out.push(format!("/{k}"));
    }
    out
}

/// Numbers at the edges of every type a field may have.
const EDGES: &[f64] = &[
    0.0,
    -0.0,
    -1.0,
    0.5,
    1.0,
    65535.0,
    65536.0,
    2147483647.0,
    2147483648.0,
    4294967296.0,
    9.2e18,
    1.8446744073709552e19,
    1e20,
    -1e20,
    1e308,
    f64::MIN_POSITIVE,
];

/// Numbers at the edges of what fields accept, most likely to get past the type checks.
fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(EDGES).prop_map(|f| json!(f)),
        prop::sample::select(&[u64::MAX, i64::MAX as u64, 1 << 31, 1 << 32, 0, 1][..])
            .prop_map(Value::from),
    ]
}

/// Strings that mean something somewhere in a definition.
fn edge_string() -> impl Strategy<Value = Value> {
    prop::sample::select(
        &[
            "",
            "/",
            ".",
            "..",
            "../x",
            "/etc/x",
            "a/../../b",
            "HTTP",
            "COMMAND",
            "DOCKER",
            "MESOS",
            "disabled",
            "YOUNGEST_FIRST",
            "UNIQUE",
            "LIKE",
            "MAX_PER",
            "GROUP_BY",
            "hostname",
            "(",
            "tcp",
            "udp,tcp",
            "/g/web",
            "x\u{0}",
            "\u{7f}",
        ][..],
    )
    .prop_map(Value::from)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        edge_number(),
        "(?s).{0,8}".prop_map(Value::from),
        edge_string(),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A replacement for the seed's value at `at`: mostly one of the same JSON type, at the edges
/// of its range, so that many mutants get past the type checks to validation; sometimes
/// anything at all.
fn edit(at: String) -> BoxedStrategy<(String, Value)> {
    let plausible = match seed().pointer(&at) {
        Some(Value::Number(_)) => edge_number().boxed(),
        Some(Value::String(_)) => edge_string().boxed(),
        _ => value().boxed(),
    };
    prop_oneof![4 => plausible, 1 => value()]
        .prop_map(move |v| (at.clone(), v))
        .boxed()
}

/// The seed with up to three fields replaced (some removed: null means absent).
fn mutated() -> impl Strategy<Value = Value> {
    let at = prop::sample::select(pointers()).prop_flat_map(edit);
    prop::collection::vec(at, 1..4).prop_map(|edits| {
        let mut doc = seed();
        for (at, v) in edits {
            let (parent, key) = at.rsplit_once('/').unwrap_or(("", &at));
            match doc.pointer_mut(parent) {
                Some(Value::Object(o)) => {
                    o.insert(key.to_string(), v);
                }
                Some(Value::Array(a)) => {
                    if let Some(slot) = key.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                        *slot = v;
                    }
                }
                _ => {}
            }
        }
        doc
    })
}

/// What the POST and PUT handlers do with a body, and the arithmetic an accepted app feeds,
/// checked for the properties the scheduler relies on.
fn through_the_api(body: &[u8]) {
    let Ok(parsed) = crate::http::parse_spec(&Bytes::copy_from_slice(body)) else {
        return;
    };
    let stored = resolve(serde_json::from_value(seed()).unwrap(), base()).unwrap();
    for base in [base(), stored] {
        let Ok(app) = resolve(parsed.clone(), base) else {
            continue;
        };
        assert!(task_id_is_safe(&app.task_id_prefix()), "{}", app.id);
        for f in &app.fetch {
            assert!(f.dest_path.as_deref().is_none_or(sandbox_relative), "{f:?}");
        }
        // Every duration and count is within Marathon's `int32`, so the arithmetic below (and
        // the scheduler's) is bounded even before its own saturation.
        let int32 = |v: f64| (0.0..=f64::from(i32::MAX)).contains(&v) && v.fract() == 0.0;
        assert!(int32(app.backoff_seconds), "{}", app.backoff_seconds);
        assert!(int32(app.max_launch_delay_seconds));
        assert!(app.task_kill_grace_period_seconds.is_none_or(int32));
        assert!(u64::from(app.instances) <= INT32_MAX && u64::from(app.gpus) <= INT32_MAX);
        let now = Instant::now();
        for hc in &app.health_checks {
            let seconds = [
                hc.interval_seconds,
                hc.timeout_seconds,
                hc.grace_period_seconds,
                hc.delay_seconds,
                u64::from(hc.max_consecutive_failures),
            ];
            assert!(seconds.iter().all(|s| *s <= INT32_MAX), "{hc:?}");
            assert!(crate::health::next_probe(now, hc.interval_seconds) > now);
        }
        let mut backoff = Backoff::default();
        for _ in 0..3 {
            assert!(backoff.fail(&app, now) <= MAX_DELAY);
        }
        let entry = AppEntry::new(app, Default::default(), false);
        State::default().plan(&entry, now, 0.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_mutated_definition_panics(doc in mutated()) {
        through_the_api(&serde_json::to_vec(&doc).unwrap());
    }

    #[test]
    fn no_arbitrary_json_panics(doc in value()) {
        through_the_api(&serde_json::to_vec(&doc).unwrap());
    }

    #[test]
    fn no_arbitrary_bytes_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
        through_the_api(&body);
    }
}

#[test]
fn an_id_whose_task_ids_mesos_would_refuse_is_refused() {
    let long = format!("/{}", "a".repeat(230));
    let err = resolve(spec(&format!(r#"{{"id": "{long}", "cmd": "x"}}"#)), base()).unwrap_err();
    let paths: Vec<&str> = err.details.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, vec!["/id"], "{err:?}");
    let fits = format!("/{}", "a".repeat(200));
    resolve(spec(&format!(r#"{{"id": "{fits}", "cmd": "x"}}"#)), base()).unwrap();
}

#[test]
fn uris_beside_an_empty_fetch_stand_and_beside_a_full_one_are_refused() {
    let app = resolve(
        spec(r#"{"id": "u", "cmd": "x", "fetch": [], "uris": ["http://a/b.tgz"]}"#),
        base(),
    )
    .unwrap();
    assert_eq!(app.fetch.len(), 1);
    assert_eq!(app.fetch[0].uri, "http://a/b.tgz");
    let both =
        r#"{"id": "u", "cmd": "x", "fetch": [{"uri": "http://a/c"}], "uris": ["http://a/b"]}"#;
    assert!(resolve(spec(both), base()).is_err());
}
