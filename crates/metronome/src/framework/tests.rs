use super::*;
use dcos_mesos_api::api::{Attribute, Text};

fn offer(id: &str, cpus: f64, mem: f64, rack: &str) -> Offer {
    let r = Resources {
        cpus,
        mem,
        disk: 1000.0,
        ..Resources::default()
    };
    Offer {
        id: Id::new(id),
        framework_id: Id::new("fw"),
        agent_id: Id::new(format!("agent-{id}")),
        hostname: format!("host-{id}"),
        resources: r.to_api(None),
        attributes: vec![Attribute {
            name: "rack".into(),
            kind: "TEXT".into(),
            text: Some(Text { value: rack.into() }),
            ..Attribute::default()
        }],
        ..Offer::default()
    }
}

fn job(json: serde_json::Value) -> crate::state::Job {
    crate::state::Job {
        spec: serde_json::from_value(json).unwrap(),
        schedules: Vec::new(),
    }
}

fn state_with(runs: Vec<Run>) -> State {
    let mut s = State::default();
    for r in runs {
        s.runs.insert((r.spec.id.clone(), r.id.clone()), r);
    }
    s
}

#[test]
fn waiting_runs_go_to_offers_with_room_and_matching_constraints() {
    let now = Utc::now();
    let a = job(
        serde_json::json!({"id": "a", "run": {"cmd": "echo", "cpus": 1, "mem": 64, "disk": 0,
        "placement": {"constraints": [{"attribute": "rack", "operator": "EQ", "value": "r2"}]}}}),
    );
    let b = job(
        serde_json::json!({"id": "b", "run": {"cmd": "echo", "cpus": 3.5, "mem": 64, "disk": 0}}),
    );
    let ra = Run::new(a.spec, "ra".into(), now, None);
    let rb = Run::new(
        b.spec,
        "rb".into(),
        now + chrono::Duration::milliseconds(1),
        None,
    );
    let state = state_with(vec![ra, rb]);
    let offers = [
        offer("o1", 2.0, 1024.0, "r1"),
        offer("o2", 4.0, 1024.0, "r2"),
    ];
    let plan = match_offers(&state, &offers, now + chrono::Duration::seconds(1));
    let placed: Vec<(&str, &str)> = plan
        .launches
        .iter()
        .map(|(r, _, o)| (r.id.as_str(), o.as_str()))
        .collect();
    // a needs rack r2; b (3.5 cpus) fits in neither o1 nor what is left of o2.
    assert_eq!(placed, [("ra", "o2")]);
    assert!(plan.waiting);
    let (run, task, _) = &plan.launches[0];
    assert_eq!(run.tasks.len(), 1);
    assert_eq!(run.queued, None);
    assert_eq!(task.name, "ra.a");
    assert!(task.task_id.as_str().starts_with("a_ra."));
}

#[test]
fn like_and_unlike_match_the_whole_value() {
    let now = Utc::now();
    let j = job(
        serde_json::json!({"id": "a", "run": {"cmd": "x", "cpus": 1, "mem": 32, "disk": 0,
        "placement": {"constraints": [
            {"attribute": "rack", "operator": "LIKE", "value": "r[0-9]"},
            {"attribute": "hostname", "operator": "UNLIKE", "value": "host-o1"}]}}}),
    );
    let run = Run::new(j.spec, "r".into(), now, None);
    assert!(!constraints_hold(&run, &offer("o1", 1.0, 32.0, "r1")));
    assert!(constraints_hold(&run, &offer("o2", 1.0, 32.0, "r2")));
    assert!(!constraints_hold(&run, &offer("o3", 1.0, 32.0, "r22")));
}

#[test]
fn a_docker_job_runs_in_its_image_with_its_volumes() {
    let j = job(
        serde_json::json!({"id": "test.metronome", "run": {"cmd": "ls", "cpus": 1, "mem": 512, "disk": 0,
        "user": "nobody", "docker": {"image": "busybox:latest", "forcePullImage": true},
        "volumes": [{"containerPath": "/data", "hostPath": "/tmp", "mode": "RO"}],
        "env": {"A": "1", "S": {"secret": "s"}}, "secrets": {"s": {"source": "x"}},
        "artifacts": [{"uri": "http://example.invalid/a.tgz"}],
        "taskKillGracePeriodSeconds": 2}}),
    );
    let run = Run::new(j.spec, "20240101000000abcde".into(), Utc::now(), None);
    let need = Resources {
        cpus: 1.0,
        mem: 512.0,
        ..Resources::default()
    };
    let t = task_info(&run, "tid", "agent", &need, Some("*"));
    let c = t.container.unwrap();
    assert_eq!(c["type"], "MESOS");
    assert_eq!(c["mesos"]["image"]["docker"]["name"], "busybox:latest");
    assert_eq!(c["mesos"]["image"]["cached"], false);
    assert_eq!(c["volumes"][0]["mode"], "RO");
    let cmd = t.command.unwrap();
    assert_eq!(cmd.value.as_deref(), Some("ls"));
    assert_eq!(cmd.user.as_deref(), Some("nobody"));
    assert_eq!(cmd.uris[0].extract, Some(true));
    let vars = cmd.environment.unwrap().variables;
    assert!(vars.iter().any(|v| v.name == "A" && v.value == "1"));
    assert!(!vars.iter().any(|v| v.name == "S"));
    assert!(vars
        .iter()
        .any(|v| v.name == "METRONOME_JOB_ID" && v.value == "test.metronome"));
    assert_eq!(
        t.kill_policy.unwrap().grace_period.unwrap().nanoseconds,
        2_000_000_000
    );
    assert_eq!(t.name, "20240101000000abcde.metronome.test");
}

#[test]
fn a_job_without_an_image_is_a_plain_command_task() {
    let j = job(
        serde_json::json!({"id": "a", "run": {"args": ["/bin/echo", "hi"], "cpus": 1, "mem": 32, "disk": 0,
        "volumes": [{"containerPath": "/data", "hostPath": "/tmp", "mode": "RW"}]}}),
    );
    let run = Run::new(j.spec, "r".into(), Utc::now(), None);
    let t = task_info(&run, "tid", "agent", &Resources::default(), None);
    assert!(t.container.is_none());
    let cmd = t.command.unwrap();
    assert_eq!(cmd.shell, Some(false));
    assert_eq!(cmd.value.as_deref(), Some("/bin/echo"));
    assert_eq!(cmd.arguments, ["/bin/echo", "hi"]);
}
