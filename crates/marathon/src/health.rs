//! Marathon-side health checks (HTTP, HTTPS, TCP, and the MESOS_* kinds, probed the same
//! way from here): each running instance is probed every `intervalSeconds`, each probe
//! bounded by `timeoutSeconds`; results feed the instance's `healthCheckResults`, the
//! deployment logic and the replacement of unhealthy tasks.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::HealthCheck;
use crate::engine::Marathon;

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
        for inst in state
            .instances
            .values_mut()
            .filter(|i| i.app_id == app_id && i.state == "TASK_RUNNING")
        {
            if inst.health.len() < hcs.len() {
                inst.health.resize(hcs.len(), Default::default());
            }
            for (index, hc) in hcs.iter().enumerate() {
                if hc.protocol == "COMMAND" {
                    // Run by the agent; results arrive with status updates.
                    continue;
                }
                let h = &mut inst.health[index];
                if h.next_probe.is_some_and(|t| t > now) {
                    continue;
                }
                h.next_probe = Some(now + Duration::from_secs(hc.interval_seconds.max(1)));
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
    }
    out
}

async fn probe_once(client: &reqwest::Client, p: &Probe) -> Result<(), String> {
    let timeout = Duration::from_secs(p.check.timeout_seconds.max(1));
    let addr = format!("{}:{}", p.host, p.port);
    match p.check.protocol.as_str() {
        "HTTP" | "MESOS_HTTP" => {
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
