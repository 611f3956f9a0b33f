//! The pkgpanda API (`dcos-pkgpanda-api.service`): a local Unix-socket HTTP API with no
//! network port, as the contract lists it. It reports the node's installed units, their
//! state, pid, restarts and ports (from the supervisor's status file), checking that each
//! reported pid is still alive.

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;
use crate::status::{self, NodeStatus, UnitState};

/// The socket path under a node's run dir.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("pkgpanda-api.sock")
}

/// Reads the status and marks units whose process is gone.
fn current_status(run_dir: &Path) -> std::io::Result<NodeStatus> {
    let mut st = status::read(run_dir)?;
    for unit in &mut st.units {
        if let Some(pid) = unit.pid {
            let alive = Path::new(&format!("/proc/{pid}")).exists();
            if !alive && unit.state == UnitState::Running {
                unit.state = UnitState::Backoff;
                unit.pid = None;
            }
        }
    }
    Ok(st)
}

fn router(run_dir: PathBuf) -> Router {
    Router::new()
        .route("/units/", get(units))
        .route("/active/", get(active))
        .with_state(run_dir)
}

fn unavailable(e: std::io::Error) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": format!("node status not available yet: {e}")})),
    )
        .into_response()
}

async fn units(State(run_dir): State<PathBuf>) -> Response {
    match current_status(&run_dir) {
        Ok(st) => Json(st).into_response(),
        Err(e) => unavailable(e),
    }
}

/// The active packages, as pkgpanda names them (`<name>--<version>`).
async fn active(State(run_dir): State<PathBuf>) -> Response {
    match current_status(&run_dir) {
        Ok(st) => {
            let ids: Vec<String> = st
                .units
                .iter()
                .filter(|u| {
                    !matches!(
                        u.state,
                        UnitState::NotBuilt | UnitState::NotInUse | UnitState::NeedsRoot
                    )
                })
                .map(|u| {
                    let stem = u.name.trim_end_matches(".service");
                    format!("{stem}--{}", env!("CARGO_PKG_VERSION"))
                })
                .collect();
            Json(ids).into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// Serves the API on the node's socket until `shutdown` is cancelled.
pub async fn serve(config: &NodeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let run_dir = crate::units::run_dir(config);
    fs_err::create_dir_all(&run_dir)?;
    let path = socket_path(&run_dir);
    // A socket file left by a killed predecessor would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| {
        anyhow::anyhow!("failed to bind the pkgpanda API on {}: {e}", path.display())
    })?;
    tracing::info!(socket = %path.display(), "listening for pkgpanda API requests");
    // Root-only socket for the node's own tooling behind Admin Router.
    let limits = dcos_serve::Limits::api().connections(64);
    dcos_serve::serve(listener, router(run_dir), limits, shutdown).await;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Asks a node's pkgpanda API for its status.
pub async fn fetch_status(run_dir: &Path) -> anyhow::Result<NodeStatus> {
    let path = socket_path(run_dir);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the pkgpanda API at {}: {e}", path.display()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get("/units/")
        .header("host", "pkgpanda")
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    drop(sender);
    let _ = conn.await;
    if !status.is_success() {
        anyhow::bail!(
            "pkgpanda API answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice(&body)?)
}
