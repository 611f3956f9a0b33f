use super::*;
use crate::api::{Restart, RunSpec};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn spec(policy: RestartPolicy, deadline: Option<u64>) -> JobSpec {
    let run: RunSpec = serde_json::from_value(
        serde_json::json!({"cmd": "false", "cpus": 0.1, "mem": 32, "disk": 0}),
    )
    .unwrap();
    JobSpec {
        id: "nightly.backup".into(),
        description: None,
        labels: Default::default(),
        run: RunSpec {
            restart: Restart {
                policy,
                active_deadline_seconds: deadline,
            },
            ..run
        },
    }
}

#[test]
fn run_ids_are_a_utc_timestamp_and_five_alphanumerics() {
    let id = run_id(
        t("2018-03-01T12:00:00Z"),
        &[0, 1, 2, 60, 61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(id, "20180301120000ABC89");
    let id = run_id(Utc::now(), uuid::Uuid::new_v4().as_bytes());
    assert_eq!(id.len(), 19);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn task_ids_name_their_run() {
    let id = task_id("nightly.backup", "20180301120000aB3dE", "0d5c-11");
    assert_eq!(id, "nightly_backup_20180301120000aB3dE.0d5c-11");
    assert_eq!(
        run_of_task(&id),
        Some(("nightly.backup".into(), "20180301120000aB3dE".into()))
    );
}

#[test]
fn a_run_is_active_once_its_task_runs_and_succeeds_when_it_finishes() {
    let now = t("2024-01-01T00:00:00Z");
    let mut run = Run::new(spec(RestartPolicy::Never, None), "r1".into(), now, None);
    assert!(run.wants_task(now));
    run.launched("t1".into(), "a1".into(), now);
    assert!(!run.wants_task(now));
    assert_eq!(run.update("t1", TaskState::Running, now), Outcome::Running);
    assert_eq!(run.status, RunStatus::Active);
    assert_eq!(run.update("t1", TaskState::Finished, now), Outcome::Ended);
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(run.to_api().tasks[0].status, "TASK_FINISHED");
}

#[test]
fn never_fails_the_run_on_the_first_failed_task() {
    let now = t("2024-01-01T00:00:00Z");
    let mut run = Run::new(spec(RestartPolicy::Never, None), "r1".into(), now, None);
    run.launched("t1".into(), "a1".into(), now);
    assert_eq!(run.update("t1", TaskState::Failed, now), Outcome::Ended);
    assert_eq!(run.status, RunStatus::Failed);
}

#[test]
fn on_failure_retries_with_backoff_until_the_active_deadline() {
    let start = t("2024-01-01T00:00:00Z");
    let mut run = Run::new(
        spec(RestartPolicy::OnFailure, Some(10)),
        "r1".into(),
        start,
        None,
    );
    run.launched("t1".into(), "a1".into(), start);
    let at = start + Duration::seconds(1);
    assert_eq!(run.update("t1", TaskState::Failed, at), Outcome::Running);
    // Queued again after one second.
    assert!(!run.wants_task(at));
    assert!(run.wants_task(at + Duration::seconds(1)));
    run.launched("t2".into(), "a1".into(), at + Duration::seconds(1));
    assert!(run.backoff() > Duration::seconds(1));
    // Past the deadline the next failure fails the run.
    let late = start + Duration::seconds(11);
    assert_eq!(run.update("t2", TaskState::Lost, late), Outcome::Ended);
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.tasks.len(), 2);
}

#[test]
fn repeated_terminal_updates_change_nothing() {
    let now = t("2024-01-01T00:00:00Z");
    let mut run = Run::new(spec(RestartPolicy::OnFailure, None), "r1".into(), now, None);
    run.launched("t1".into(), "a1".into(), now);
    run.update("t1", TaskState::Failed, now);
    let before = run.clone();
    assert_eq!(run.update("t1", TaskState::Failed, now), Outcome::Running);
    assert_eq!(run, before);
}

#[test]
fn a_scheduled_run_not_active_by_its_starting_deadline_is_past_it() {
    let now = t("2024-01-01T00:00:00Z");
    let mut run = Run::new(spec(RestartPolicy::Never, None), "r1".into(), now, Some(60));
    assert!(!run.past_starting_deadline(now + Duration::seconds(59)));
    assert!(run.past_starting_deadline(now + Duration::seconds(60)));
    run.launched("t1".into(), "a1".into(), now);
    run.update("t1", TaskState::Running, now);
    assert!(!run.past_starting_deadline(now + Duration::seconds(600)));
}

#[test]
fn history_keeps_the_newest_runs_first_and_counts_all() {
    let now = t("2024-01-01T00:00:00Z");
    let mut h = History::default();
    for i in 0..3 {
        let mut run = Run::new(spec(RestartPolicy::Never, None), format!("r{i}"), now, None);
        run.end(RunStatus::Success, now);
        h.record(&run, now, 2);
    }
    let mut failed = Run::new(spec(RestartPolicy::Never, None), "f".into(), now, None);
    failed.end(RunStatus::Failed, now);
    h.record(&failed, now, 2);
    let api = h.to_api();
    assert_eq!(api.success_count, 3);
    assert_eq!(api.failure_count, 1);
    let ids: Vec<&str> = api
        .successful_finished_runs
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, ["r2", "r1"]);
    assert_eq!(api.failed_finished_runs[0].id, "f");
    assert_eq!(
        h.summary().last_success_at.as_deref(),
        Some("2024-01-01T00:00:00.000+0000")
    );
}
