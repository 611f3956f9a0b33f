//! Marathon-side health checks (HTTP, HTTPS, TCP): each running instance is probed every
//! `intervalSeconds`, each probe bounded by `timeoutSeconds`; results feed the instance's
//! `healthCheckResults`, the deployment logic and the replacement of unhealthy tasks.
//!
//! Mesos-side checks (COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP) go into the task's
//! `TaskInfo.health_check` as Marathon 1.6 maps them ([`to_mesos`]); the agent runs them,
//! kills a task that fails them, and its verdicts arrive as `healthy` in status updates.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use dcos_mesos_api::api::TaskState;

use crate::api::HealthCheck;
use crate::engine::{isolated, Emits, Marathon};
use crate::state::{later, Health, Instance, State, MAX_DELAY};

/// Whether the agent runs `hc` (Mesos-side), not Marathon.
pub(crate) fn is_mesos_side(hc: &HealthCheck) -> bool {
    matches!(
        hc.protocol.as_str(),
        "COMMAND" | "MESOS_HTTP" | "MESOS_HTTPS" | "MESOS_TCP"
    )
}

/// The Mesos `HealthCheck` of a Mesos-side check for a task given `ports` (its host ports,
/// which `portIndex` picks from); None for Marathon-side checks or a port it lacks.
pub(crate) fn to_mesos(hc: &HealthCheck, ports: &[u16]) -> Option<Value> {
    let port = || match hc.port {
        Some(p) => Some(p),
        None => ports
            .get(hc.port_index.unwrap_or(0) as usize)
            .map(|p| u32::from(*p)),
    };
    let mut check = match hc.protocol.as_str() {
        "COMMAND" => {
            let value = hc.command.as_ref()?.get("value")?.as_str()?;
            json!({"type": "COMMAND", "command": {"value": value}})
        }
        "MESOS_HTTP" | "MESOS_HTTPS" => {
            let scheme = if hc.protocol == "MESOS_HTTP" {
                "http"
            } else {
                "https"
            };
            let mut http = json!({"scheme": scheme, "port": port()?});
            if let Some(path) = &hc.path {
                http["path"] = json!(path);
            }
            json!({"type": "HTTP", "http": http})
        }
        "MESOS_TCP" => json!({"type": "TCP", "tcp": {"port": port()?}}),
        _ => return None,
    };
    check["delay_seconds"] = json!(hc.delay_seconds);
    check["interval_seconds"] = json!(hc.interval_seconds);
    check["timeout_seconds"] = json!(hc.timeout_seconds);
    check["consecutive_failures"] = json!(hc.max_consecutive_failures);
    check["grace_period_seconds"] = json!(hc.grace_period_seconds);
    Some(check)
}

/// Records one result in a check's record; whether the instance's liveness changed.
pub(crate) fn apply(h: &mut Health, result: &Result<(), String>) -> bool {
    let now = crate::api::now();
    let was = h.probed.then_some(h.alive);
    h.probed = true;
    match result {
        Ok(()) => {
            h.alive = true;
            h.consecutive_failures = 0;
            h.first_success.get_or_insert_with(|| now.clone());
            h.last_success = Some(now);
        }
        Err(cause) => {
            h.alive = false;
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            h.last_failure = Some(now);
            h.last_failure_cause = Some(cause.clone());
        }
    }
    was != Some(h.alive)
}

/// The events a health result makes: a change of liveness, a failure.
pub(crate) fn events(
    state: &State,
    inst: &Instance,
    check: usize,
    changed: bool,
    result: &Result<(), String>,
    emits: &mut Emits,
) {
    let (app_id, task_id, version) = (&inst.app_id, &inst.task_id, &inst.version);
    if changed {
        let alive = result.is_ok();
        emits.push(("health_status_changed_event", json!({"appId": app_id, "taskId": task_id, "instanceId": task_id, "version": version, "alive": alive})));
    }
    if let Err(cause) = result {
        let hc = state
            .apps
            .get(app_id)
            .and_then(|e| e.app.health_checks.get(check));
        emits.push(("failed_health_check_event", json!({"appId": app_id, "taskId": task_id, "instanceId": task_id, "healthCheck": hc, "cause": cause})));
    }
}

impl Marathon {
    /// Applies a health probe's result (health is not stored: it is re-learnt after a
    /// restart).
    pub async fn record_health(&self, task_id: &str, check: usize, result: Result<(), String>) {
        let mut emits = Vec::new();
        {
            let mut state = self.lock().await;
            let Some(inst) = state.instances.get_mut(task_id) else {
                return;
            };
            if inst.health.len() <= check {
                inst.health.resize(check + 1, Health::default());
            }
            let changed = apply(&mut inst.health[check], &result);
            let inst = inst.clone();
            events(&state, &inst, check, changed, &result, &mut emits);
        }
        self.emit_all(emits);
    }
}

/// How often due probes are looked for.
const SCAN: Duration = Duration::from_millis(500);
/// At most this many probes run at once.
const MAX_PROBES: usize = 256;

/// One probe to run.
struct Probe {
    task_id: String,
    index: usize,
    check: HealthCheck,
    host: String,
    port: u16,
}

/// Runs health checks until `shutdown`.
pub async fn run(m: Marathon, shutdown: CancellationToken) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let mut running: JoinSet<()> = JoinSet::new();
    let mut scan = tokio::time::interval(SCAN);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = scan.tick() => {}
            Some(_) = running.join_next(), if !running.is_empty() => continue,
        }
        for probe in due(&m).await {
            if running.len() >= MAX_PROBES {
                break;
            }
            let (m, client) = (m.clone(), client.clone());
            running.spawn(async move {
                let result = probe_once(&client, &probe).await;
                m.record_health(&probe.task_id, probe.index, result).await;
            });
        }
    }
}

/// Probes that are due now; marks them as scheduled.
async fn due(m: &Marathon) -> Vec<Probe> {
    let now = Instant::now();
    let mut state = m.lock().await;
    let checks: Vec<(String, Vec<HealthCheck>)> = state
        .apps
        .values()
        .filter(|e| !e.app.health_checks.is_empty())
        .map(|e| (e.app.id.clone(), e.app.health_checks.clone()))
        .collect();
    let mut out = Vec::new();
    for (app_id, hcs) in checks {
        // One app's bad record costs it its probes, not every app its health checks.
        let probes = isolated(&app_id, "health checks", || {
            due_for_app(&mut state, &app_id, &hcs, now)
        });
        out.extend(probes.into_iter().flatten());
    }
    out
}

/// The due probes of one app's running instances; marks them as scheduled.
fn due_for_app(state: &mut State, app_id: &str, hcs: &[HealthCheck], now: Instant) -> Vec<Probe> {
    let mut out = Vec::new();
    for inst in state
        .instances
        .values_mut()
        .filter(|i| i.app_id == app_id && i.state == TaskState::Running)
    {
        if inst.health.len() < hcs.len() {
            inst.health.resize(hcs.len(), Default::default());
        }
        for (index, (hc, h)) in hcs.iter().zip(inst.health.iter_mut()).enumerate() {
            if is_mesos_side(hc) {
                // Run by the agent; results arrive with status updates.
                continue;
            }
            if h.next_probe.is_some_and(|t| t > now) {
                continue;
            }
            h.next_probe = Some(next_probe(now, hc.interval_seconds));
            let port = match hc.port {
                Some(p) => u16::try_from(p).ok(),
                None => inst.ports.get(hc.port_index.unwrap_or(0) as usize).copied(),
            };
            let Some(port) = port else { continue };
            out.push(Probe {
                task_id: inst.task_id.clone(),
                index,
                check: hc.clone(),
                host: inst.host.clone(),
                port,
            });
        }
    }
    out
}

/// When a probe made `now` is next due. The interval comes from the definition: bounded
/// there, and saturating here for apps stored before it was (2^64-1 seconds overflowed).
pub(crate) fn next_probe(now: Instant, interval_seconds: u64) -> Instant {
    later(now, Duration::from_secs(interval_seconds.max(1)))
}

async fn probe_once(client: &reqwest::Client, p: &Probe) -> Result<(), String> {
    let timeout = Duration::from_secs(p.check.timeout_seconds.clamp(1, MAX_DELAY.as_secs()));
    let addr = format!("{}:{}", p.host, p.port);
    match p.check.protocol.as_str() {
        "HTTP" => {
            let path = p.check.path.clone().unwrap_or_default();
            let url = format!(
                "http://{addr}{}{path}",
                if path.starts_with('/') { "" } else { "/" }
            );
            let resp = client
                .get(&url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| format!("{e}"))?;
            let code = resp.status().as_u16();
            if (200..400).contains(&code) || (p.check.ignore_http1xx && (100..200).contains(&code))
            {
                Ok(())
            } else {
                Err(format!("{url} answered {code}"))
            }
        }
        // HTTPS probes check that the TLS port accepts connections: dcos-rs's probe client
        // does not speak TLS.
        _ => match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
            Err(_) => Err(format!("connecting to {addr} timed out after {timeout:?}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value) -> HealthCheck {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn mesos_side_checks_map_to_mesos_health_checks_at_host_ports() {
        let cmd = check(json!({"protocol": "COMMAND", "command": {"value": "true"}}));
        let mesos = to_mesos(&cmd, &[]).unwrap();
        assert_eq!(mesos["type"], "COMMAND");
        assert_eq!(mesos["command"], json!({"value": "true"}));
        assert_eq!(
            (&mesos["delay_seconds"], &mesos["consecutive_failures"]),
            (
                &json!(cmd.delay_seconds),
                &json!(cmd.max_consecutive_failures)
            )
        );
        let https = check(json!({"protocol": "MESOS_HTTPS", "portIndex": 1, "path": "/h"}));
        assert_eq!(
            to_mesos(&https, &[31000, 31001]).unwrap()["http"],
            json!({"scheme": "https", "port": 31001, "path": "/h"})
        );
        assert_eq!(to_mesos(&https, &[31000]), None, "no such port");
        let tcp = check(json!({"protocol": "MESOS_TCP", "port": 8080}));
        assert_eq!(to_mesos(&tcp, &[]).unwrap()["tcp"], json!({"port": 8080}));
        let http = check(json!({"protocol": "HTTP", "portIndex": 0}));
        assert!(!is_mesos_side(&http));
        assert_eq!(to_mesos(&http, &[31000]), None);
    }

    #[test]
    fn the_next_probe_of_any_interval_is_in_the_future() {
        let now = Instant::now();
        assert_eq!(next_probe(now, 0), now + Duration::from_secs(1));
        assert_eq!(next_probe(now, 60), now + Duration::from_secs(60));
        for interval in [u64::MAX, u64::MAX / 2, i64::MAX as u64] {
            assert!(next_probe(now, interval) > now, "{interval}");
        }
    }
}
