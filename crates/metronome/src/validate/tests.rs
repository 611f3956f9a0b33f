use super::*;
use serde_json::json;

fn good() -> Value {
    json!({"id": "prod.example.app", "run": {"cmd": "sleep 1", "cpus": 0.5, "mem": 32, "disk": 0}})
}

fn details(r: Rejected) -> Vec<(String, Vec<String>)> {
    r.details
}

#[test]
fn a_valid_job_reads_with_metronome_defaults() {
    let spec = job(&good(), None).unwrap();
    assert_eq!(spec.id, "prod.example.app");
    assert_eq!(spec.run.max_launch_delay, 3600);
    assert_eq!(spec.run.restart.policy, crate::api::RestartPolicy::Never);
}

#[test]
fn the_reference_examples_are_valid() {
    let v1: Value = serde_json::from_str(include_str!("fixtures/job.json")).unwrap();
    job(&v1, None).unwrap();
    let mut v0: Value = serde_json::from_str(include_str!("fixtures/job_v0.json")).unwrap();
    // The example asks for a privileged container, which only Docker could give.
    v0["run"]["docker"]["privileged"] = json!(false);
    let s = scheduled_job(&v0, None).unwrap();
    assert_eq!(s.schedules[0].cron, "20 0 * * *");
    let sched = json!({"id": "everyminute", "cron": "* * * * *", "concurrencyPolicy": "ALLOW",
        "enabled": true, "startingDeadlineSeconds": 60, "timezone": "America/Chicago"});
    schedule(&sched, None).unwrap();
}

#[test]
fn a_bad_id_is_refused_at_id() {
    let mut v = good();
    v["id"] = json!("Bad_ID");
    assert_eq!(
        details(job(&v, None).unwrap_err()),
        vec![(
            "/id".to_string(),
            vec![format!(
                "'Bad_ID' does not match pattern '{JOB_ID_PATTERN}'."
            )]
        )]
    );
}

#[test]
fn negative_cpus_are_refused_at_run_cpus() {
    let mut v = good();
    v["run"]["cpus"] = json!(-1);
    assert_eq!(
        details(job(&v, None).unwrap_err()),
        vec![(
            "/run/cpus".to_string(),
            vec!["-1 is smaller than required minimum value of 0.01.".to_string()]
        )]
    );
}

#[test]
fn unknown_fields_are_refused_at_their_object() {
    let mut v = good();
    v["color"] = json!("red");
    v["run"]["gpus"] = json!(1);
    let d = details(job(&v, None).unwrap_err());
    assert!(
        d.contains(&(
            "".to_string(),
            vec![
                "Additional properties are not allowed, but found properties 'color'.".to_string()
            ]
        )),
        "{d:?}"
    );
    assert!(
        d.contains(&(
            "/run".to_string(),
            vec!["Additional properties are not allowed, but found properties 'gpus'.".to_string()]
        )),
        "{d:?}"
    );
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let v = json!({"id": "a", "run": {"cmd": "x", "cpus": "1", "mem": 32}});
    let d = details(job(&v, None).unwrap_err());
    assert!(
        d.contains(&(
            "/run/cpus".into(),
            vec!["Wrong type. Expected number, was string.".into()]
        )),
        "{d:?}"
    );
    assert!(
        d.contains(&("/run".into(), vec!["Property disk missing.".into()])),
        "{d:?}"
    );
    let v = json!({"id": "a", "run": {"cpus": 1, "mem": 32, "disk": 0,
        "artifacts": [{"url": "x"}], "restart": {"policy": "ALWAYS"}}});
    let d = details(job(&v, None).unwrap_err());
    assert!(d.iter().any(|(p, _)| p == "/run/artifacts(0)"), "{d:?}");
    assert!(
        d.contains(&(
            "/run/restart/policy".into(),
            vec!["Instance is invalid enum value.".into()]
        )),
        "{d:?}"
    );
}

#[test]
fn a_job_needs_a_command_or_an_image() {
    let v = json!({"id": "a", "run": {"cpus": 1, "mem": 32, "disk": 0}});
    assert_eq!(
        details(job(&v, None).unwrap_err()),
        vec![(
            "/run".to_string(),
            vec!["Cmd or docker image must be specified".to_string()]
        )]
    );
    let v = json!({"id": "a", "run": {"cpus": 1, "mem": 32, "disk": 0, "docker": {"image": "busybox"}}});
    job(&v, None).unwrap();
}

#[test]
fn bad_cron_and_unknown_zones_are_refused_in_play_words() {
    let s = json!({"id": "nightly", "cron": "every day", "timezone": "Mars/Olympus"});
    let d = details(schedule(&s, None).unwrap_err());
    assert_eq!(
        d,
        vec![
            (
                "/timezone".to_string(),
                vec!["No time zone found with this id: \"Mars/Olympus\"".to_string()]
            ),
            (
                "/cron".to_string(),
                vec!["Can not read cron expression \"every day\"".to_string()]
            ),
        ]
    );
    let v0 = json!({"id": "a", "schedules": [{"id": "s1", "cron": "99 * * * *"}],
        "run": {"cmd": "x", "cpus": 1, "mem": 32, "disk": 0}});
    let d = details(scheduled_job(&v0, None).unwrap_err());
    assert_eq!(
        d,
        vec![(
            "/schedules(0)/cron".to_string(),
            vec!["Can not read cron expression \"99 * * * *\"".to_string()]
        )]
    );
}

#[test]
fn schedules_need_a_minute_of_deadline_and_a_job_one_schedule() {
    let s = json!({"id": "s1", "cron": "* * * * *", "startingDeadlineSeconds": 30});
    assert_eq!(
        details(schedule(&s, None).unwrap_err()),
        vec![(
            "/startingDeadline".to_string(),
            vec!["got 30 seconds, expected 1 minute or more".to_string()]
        )]
    );
    let v0 = json!({"id": "a", "schedules": [{"id": "s1", "cron": "* * * * *"}, {"id": "t1", "cron": "* * * * *"}],
        "run": {"cmd": "x", "cpus": 1, "mem": 32, "disk": 0}});
    assert_eq!(
        details(scheduled_job(&v0, None).unwrap_err()),
        vec![(
            "/schedules".to_string(),
            vec!["has size 2, expected 1 or less".to_string()]
        )]
    );
}

#[test]
fn path_ids_follow_metronome_rules() {
    for ok in ["a", "a.b", "prod.example-app", "a1.b-2.c"] {
        assert!(is_job_id(ok), "{ok}");
    }
    for bad in ["", "A", "a..b", "-a", "a-", "a_b", "a/b", ".a"] {
        assert!(!is_job_id(bad), "{bad}");
    }
}

#[test]
fn the_rejection_body_is_metronomes() {
    let r = Rejected::one("/mem", "x");
    assert_eq!(
        r.to_json(),
        json!({"message": "Object is not valid", "details": [{"path": "/mem", "errors": ["x"]}]})
    );
}

#[test]
fn docker_only_options_are_refused_not_dropped() {
    let v = json!({"id": "a", "run": {"cpus": 1, "mem": 32, "disk": 0,
        "docker": {"image": "ubuntu", "privileged": true, "parameters": [{"key": "cap-add", "value": "ALL"}]}}});
    let d = details(job(&v, None).unwrap_err());
    let paths: Vec<&str> = d.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/run/docker/parameters", "/run/docker/privileged"]);
}
