//! Health checks of command tasks (`TaskInfo.health_check`), run by the agent as Mesos'
//! command executor runs them.
//!
//! A check starts `delay_seconds` after the task runs and repeats every `interval_seconds`,
//! each attempt bounded by `timeout_seconds`. Failures within `grace_period_seconds` of the
//! start are ignored until the first success; every other failure, the first success and the
//! first success after failures each send a TASK_RUNNING update carrying `healthy` with
//! reason `REASON_TASK_HEALTH_CHECK_STATUS_UPDATED`. After `consecutive_failures` failures in
//! a row the task is killed, and its TASK_KILLED says `healthy: false` (Mesos gives it no
//! reason). COMMAND checks run with the task's environment in its sandbox, inside its
//! container if it has one; HTTP and TCP checks go to 127.0.0.1, as the task shares the
//! host's network.

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::checkpoint;
use super::containerizer::{CheckCommand, CheckTarget};
use super::state::Shared;
use super::tasks;
use crate::api::{self, CommandInfo, Reason, Source, TaskState, TaskStatus};

/// The reason of every health update, as Mesos sets it.
pub(crate) const REASON: Reason = Reason::TaskHealthCheckStatusUpdated;
/// The longest any of a check's durations may be; longer ones are cut to it.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;
/// The shortest interval: a zero one would run checks without pause.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// What a check probes.
#[derive(Clone, Debug, PartialEq)]
enum Probe {
    Command(CommandInfo),
    Http {
        scheme: String,
        port: u16,
        path: String,
    },
    Tcp {
        port: u16,
    },
}

/// A task's health check, with Mesos' defaults for what it leaves out.
#[derive(Clone, Debug, PartialEq)]
struct Check {
    probe: Probe,
    delay: Duration,
    interval: Duration,
    timeout: Duration,
    consecutive_failures: u32,
    grace: Duration,
}

/// A duration field in seconds; `default` when absent, never negative or unbounded.
fn seconds(check: &Value, field: &str, default: f64) -> Duration {
    let secs = check.get(field).and_then(Value::as_f64).unwrap_or(default);
    Duration::from_secs_f64(if secs.is_finite() { secs } else { default }.clamp(0.0, MAX_SECONDS))
}

fn port(section: Option<&Value>, kind: &str) -> Result<u16, String> {
    section
        .and_then(|s| s.get("port"))
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("a {kind} health check needs a port between 1 and 65535"))
}

impl Check {
    /// Reads a Mesos `HealthCheck`; why not when it is unusable.
    fn parse(check: &Value) -> Result<Check, String> {
        let probe = match check.get("type").and_then(Value::as_str) {
            Some("COMMAND") => {
                let command: CommandInfo = check
                    .get("command")
                    .map(|c| serde_json::from_value(c.clone()))
                    .transpose()
                    .map_err(|e| format!("invalid COMMAND health check: {e}"))?
                    .filter(|c: &CommandInfo| c.value.is_some())
                    .ok_or("a COMMAND health check needs 'command.value'")?;
                Probe::Command(command)
            }
            Some("HTTP") => {
                let http = check.get("http");
                let text = |f: &str| http.and_then(|h| h.get(f)).and_then(Value::as_str);
                let path = text("path").unwrap_or("/");
                Probe::Http {
                    scheme: text("scheme").unwrap_or("http").to_string(),
                    port: port(http, "HTTP")?,
                    path: if path.starts_with('/') {
                        path.to_string()
                    } else {
                        format!("/{path}")
                    },
                }
            }
            Some("TCP") => Probe::Tcp {
                port: port(check.get("tcp"), "TCP")?,
            },
            other => return Err(format!("unsupported health check type {other:?}")),
        };
        let failures = check
            .get("consecutive_failures")
            .and_then(Value::as_u64)
            .unwrap_or(3);
        Ok(Check {
            probe,
            delay: seconds(check, "delay_seconds", 15.0),
            interval: seconds(check, "interval_seconds", 10.0).max(MIN_INTERVAL),
            // Mesos: a timeout of 0 is none.
            timeout: Some(seconds(check, "timeout_seconds", 20.0))
                .filter(|t| !t.is_zero())
                .unwrap_or(Duration::from_secs_f64(MAX_SECONDS)),
            consecutive_failures: u32::try_from(failures).unwrap_or(u32::MAX),
            grace: seconds(check, "grace_period_seconds", 10.0),
        })
    }
}

/// What one result changes: the health to report, and whether to kill the task.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    healthy: bool,
    kill: bool,
}

/// Mesos' health checker state: results in, reports out.
#[derive(Debug)]
struct Verdict {
    /// No success yet: failures within the grace period are ignored.
    initializing: bool,
    failures: u32,
    grace: Duration,
    max_failures: u32,
}

impl Verdict {
    fn new(check: &Check) -> Verdict {
        Verdict {
            initializing: true,
            failures: 0,
            grace: check.grace,
            max_failures: check.consecutive_failures,
        }
    }

    /// One result, `elapsed` after checking began.
    fn record(&mut self, passed: bool, elapsed: Duration) -> Option<Report> {
        if passed {
            let report = (self.initializing || self.failures > 0).then_some(Report {
                healthy: true,
                kill: false,
            });
            self.initializing = false;
            self.failures = 0;
            return report;
        }
        if self.initializing && !self.grace.is_zero() && elapsed <= self.grace {
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        Some(Report {
            healthy: false,
            kill: self.failures >= self.max_failures,
        })
    }
}

/// Starts checking a run's health if its task has a health check; checking (and any check
/// in flight) stops when the guard is dropped, which the run's supervisor does once the
/// task's process is gone.
pub(crate) fn start(shared: &Shared, key: &str) -> Option<DropGuard> {
    let value = shared.lock().runs.get(key)?.task.health_check.clone()?;
    let check = match Check::parse(&value) {
        Ok(check) => check,
        Err(e) => {
            tracing::warn!(task = %key, error = %e, "not running the task's health check");
            return None;
        }
    };
    let stop = CancellationToken::new();
    tokio::spawn(run(shared.clone(), key.to_string(), check, stop.clone()));
    Some(stop.drop_guard())
}

/// Whether the run is still one to check: known, not terminal, not being killed.
fn checking(shared: &Shared, key: &str) -> bool {
    shared
        .lock()
        .runs
        .get(key)
        .is_some_and(|r| !r.killing && !TaskState::is_terminal(r.state))
}

async fn run(shared: Shared, key: String, check: Check, stop: CancellationToken) {
    let began = Instant::now();
    let mut verdict = Verdict::new(&check);
    let mut wait = check.delay;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    // How command checks run, worked out at the first attempt that can.
    let mut prepared: Option<CheckCommand> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = check.interval;
        if !checking(&shared, &key) {
            return;
        }
        // Dropping an attempt (when checking stops) kills what it started.
        let result = tokio::select! {
            () = stop.cancelled() => return,
            r = attempt(&shared, &key, &check, &http, &mut prepared) => r,
        };
        if let Err(e) = &result {
            tracing::debug!(task = %key, error = %e, "health check failed");
        }
        let Some(report) = verdict.record(result.is_ok(), began.elapsed()) else {
            continue;
        };
        if !checking(&shared, &key) {
            return;
        }
        tracing::info!(task = %key, healthy = report.healthy, "task health changed");
        if report.kill {
            // Marked first, so the TASK_KILLED that follows says why.
            if let Some(run) = shared.lock().runs.get_mut(&key) {
                run.health_killed = true;
            }
        }
        shared.enqueue(
            &key,
            TaskStatus {
                state: TaskState::Running,
                source: Some(Source::Executor),
                reason: Some(REASON),
                healthy: Some(report.healthy),
                uuid: Some(api::new_update_uuid()),
                ..TaskStatus::default()
            },
        );
        if report.kill {
            tracing::info!(task = %key, failures = check.consecutive_failures, "killing the task after failed health checks");
            tasks::kill(&shared, &key, None);
            return;
        }
    }
}

/// One attempt, bounded by the check's timeout.
async fn attempt(
    shared: &Shared,
    key: &str,
    check: &Check,
    http: &reqwest::Client,
    prepared: &mut Option<CheckCommand>,
) -> Result<(), String> {
    let timeout = check.timeout;
    match &check.probe {
        Probe::Command(command) => {
            let exec = match prepared {
                Some(exec) => exec,
                None => prepared.insert(prepare(shared, key)?),
            };
            run_command(exec, command, timeout).await
        }
        Probe::Http { scheme, port, path } if scheme == "http" => {
            let url = format!("http://127.0.0.1:{port}{path}");
            let resp = http
                .get(&url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let code = resp.status().as_u16();
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("{url} answered {code}"))
            }
        }
        // The agent's HTTP client speaks no TLS: an HTTPS check checks that its port
        // accepts connections, as Marathon's own HTTPS probes here do.
        Probe::Http { port, .. } | Probe::Tcp { port } => {
            let addr = format!("127.0.0.1:{port}");
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
                Err(_) => Err(format!("connecting to {addr} timed out after {timeout:?}")),
            }
        }
    }
}

/// Kills a check's process group when dropped: nothing a check starts outlives it.
struct Group(Option<checkpoint::Process>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(process) = &self.0 {
            process.signal_group(Signal::SIGKILL);
        }
    }
}

/// How the task's command checks run (in its container, as its user, with its environment),
/// worked out once for all its checks.
fn prepare(shared: &Shared, key: &str) -> Result<CheckCommand, String> {
    let run = shared
        .lock()
        .runs
        .get(key)
        .cloned()
        .ok_or("the task is gone")?;
    shared.containerizer.check_command(CheckTarget {
        container: &run.handle(),
        framework: &run.framework,
        task: &run.task,
        sandbox: &run.sandbox,
        env: shared.task_env(&run),
    })
}

async fn run_command(
    exec: &CheckCommand,
    command: &CommandInfo,
    timeout: Duration,
) -> Result<(), String> {
    let own_env = command
        .environment
        .iter()
        .flat_map(|e| e.variables.iter())
        .map(|v| (v.name.clone(), v.value.clone()));
    let mut cmd = exec.command(&argv(command)?)?;
    cmd.envs(own_env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the health check command: {e}"))?;
    let _group = Group(child.id().and_then(checkpoint::Process::of));
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("health check command ended with {status}")),
        Ok(Err(e)) => Err(format!("cannot wait for the health check command: {e}")),
        Err(_) => Err(format!(
            "health check command did not finish within {timeout:?}"
        )),
    }
}

/// The argv of a command: a shell line through `/bin/sh -c`, or a program and its arguments.
fn argv(command: &CommandInfo) -> Result<Vec<String>, String> {
    let value = command.value.clone().unwrap_or_default();
    if command.shell.unwrap_or(true) {
        return Ok(vec!["/bin/sh".into(), "-c".into(), value]);
    }
    if value.is_empty() {
        return Err("a health check command without a shell needs 'value'".into());
    }
    let mut argv = vec![value];
    argv.extend(command.arguments.iter().skip(1).cloned());
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn checks_parse_with_mesos_defaults() {
        let check =
            Check::parse(&json!({"type": "COMMAND", "command": {"value": "true"}})).unwrap();
        assert_eq!(check.delay, Duration::from_secs(15));
        assert_eq!(check.interval, Duration::from_secs(10));
        assert_eq!(check.timeout, Duration::from_secs(20));
        assert_eq!(check.consecutive_failures, 3);
        assert_eq!(check.grace, Duration::from_secs(10));
        let http = Check::parse(&json!({"type": "HTTP", "http": {"port": 80, "path": "ping"}}));
        assert_eq!(
            http.unwrap().probe,
            Probe::Http {
                scheme: "http".into(),
                port: 80,
                path: "/ping".into()
            }
        );
        for bad in [
            json!({"type": "COMMAND"}),
            json!({"type": "HTTP", "http": {"port": 70000}}),
            json!({"type": "TCP"}),
            json!({"type": "UNKNOWN"}),
        ] {
            assert!(Check::parse(&bad).is_err(), "{bad}");
        }
        let odd = json!({"type": "TCP", "tcp": {"port": 1}, "interval_seconds": -5, "timeout_seconds": 1e300});
        let odd = Check::parse(&odd).unwrap();
        assert_eq!(odd.interval, MIN_INTERVAL);
        assert_eq!(odd.timeout, Duration::from_secs_f64(MAX_SECONDS));
    }

    fn verdict(grace: u64, max: u32) -> Verdict {
        Verdict {
            initializing: true,
            failures: 0,
            grace: Duration::from_secs(grace),
            max_failures: max,
        }
    }

    #[test]
    fn failures_in_the_grace_period_count_only_after_a_success() {
        let mut v = verdict(10, 2);
        let (early, late) = (Duration::from_secs(1), Duration::from_secs(11));
        assert_eq!(v.record(false, early), None);
        let healthy = Some(Report {
            healthy: true,
            kill: false,
        });
        assert_eq!(v.record(true, early), healthy);
        assert_eq!(v.record(true, early), None, "no news is not reported");
        let unhealthy = |kill| {
            Some(Report {
                healthy: false,
                kill,
            })
        };
        assert_eq!(v.record(false, early), unhealthy(false));
        assert_eq!(v.record(true, early), healthy);
        let mut v = verdict(10, 2);
        assert_eq!(v.record(false, early), None);
        assert_eq!(v.record(false, late), unhealthy(false));
        assert_eq!(v.record(false, late), unhealthy(true));
    }
}
