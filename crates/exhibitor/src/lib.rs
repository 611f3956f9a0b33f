//! Exhibitor (`dcos-exhibitor.service`, masters only): runs the real Apache ZooKeeper of the
//! masters' ensemble (2181 clients, 2888 quorum, 3888 election) and serves Exhibitor's REST
//! API on 8181, which DC/OS health checks and tools read.
//!
//! - [`zookeeper`]: the Debian install, `zoo.cfg`/`myid`, supervision, `srvr` status.
//! - this module: the config and the REST API (`/exhibitor/v1/cluster/status`,
//!   `/exhibitor/v1/cluster/list`, `/exhibitor/v1/config/get-state`, the UI page).
//!
//! Unlike Netflix's Exhibitor, the ensemble is not edited at run time: it is the master list,
//! fixed at install as DC/OS' static `master_discovery` fixes it.

#![warn(missing_docs)]

pub mod zookeeper;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::zookeeper::{Installation, Mode, Process, ServerConfig, Status};

/// Exhibitor's REST port.
pub const HTTP_PORT: u16 = 8181;

/// The version Exhibitor reports (the one DC/OS 1.11 ships).
pub const EXHIBITOR_VERSION: &str = "v1.5.6";

/// Exhibitor's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// This master's server in the ensemble.
    pub server: ServerConfig,
    /// Where the REST API listens (the master's IP, 8181).
    pub http: SocketAddr,
}

impl Config {
    /// The DC/OS layout: the master `ip` of `masters`, ZooKeeper's data under `work_dir`.
    pub fn dcos(ip: IpAddr, masters: &[IpAddr], work_dir: PathBuf) -> Result<Self, Error> {
        let server = ServerConfig::for_master(ip, masters, work_dir.join("zookeeper"))?;
        let http = SocketAddr::new(ip, HTTP_PORT);
        Ok(Self { server, http })
    }
}

/// Errors starting Exhibitor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ZooKeeper cannot be found or run.
    #[error(transparent)]
    ZooKeeper(#[from] zookeeper::Error),
    /// The REST port could not be bound.
    #[error("failed to bind Exhibitor on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

struct Shared {
    config: Config,
    process: watch::Receiver<Process>,
}

/// Finds ZooKeeper, binds 8181, and runs ZooKeeper and the API until `shutdown`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let install = Installation::find()?;
    let listener = TcpListener::bind(config.http)
        .await
        .map_err(|source| Error::Bind {
            addr: config.http,
            source,
        })?;
    let (process, watched) = watch::channel(Process::default());
    // A supervisor that fails (ZooKeeper cannot be started) stops the API too: the unit
    // fails, and its node restarts it.
    let stop = shutdown.child_token();
    let server = config.server.clone();
    let supervisor = async {
        let supervised = zookeeper::supervise(server, install, process, stop.clone()).await;
        stop.cancel();
        supervised
    };
    let addr = config.http;
    let shared = Arc::new(Shared {
        config,
        process: watched,
    });
    tracing::info!(%addr, "listening for Exhibitor requests");
    // Operators and the DC/OS tooling poll a few endpoints with small requests.
    let api = dcos_serve::serve(
        listener,
        router(shared),
        dcos_serve::Limits::api(),
        stop.clone(),
    );
    let (supervised, ()) = tokio::join!(supervisor, api);
    Ok(supervised?)
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary(UI) }))
        .route(UI, get(ui))
        .route("/exhibitor/v1/cluster/status", get(cluster_status))
        .route("/exhibitor/v1/cluster/list", get(cluster_list))
        .route("/exhibitor/v1/cluster/state", get(cluster_state))
        .route("/exhibitor/v1/cluster/state/{host}", get(cluster_state))
        .route("/exhibitor/v1/config/get-state", get(get_state))
        .with_state(shared)
}

const UI: &str = "/exhibitor/v1/ui/index.html";

async fn ui(State(shared): State<Arc<Shared>>) -> Html<String> {
    let rows: String = servers_status(&shared)
        .await
        .iter()
        .map(|s| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                s["hostname"].as_str().unwrap_or_default(),
                s["description"].as_str().unwrap_or_default(),
                if s["isLeader"] == true { "leader" } else { "" }
            )
        })
        .collect();
    Html(format!(
        "<!DOCTYPE html><html><head><title>Exhibitor for ZooKeeper</title></head><body>\
         <h1>Exhibitor for ZooKeeper</h1><table><tr><th>Server</th><th>State</th><th></th></tr>{rows}</table>\
         </body></html>"
    ))
}

/// Exhibitor's instance state codes.
fn state_code(status: &Status) -> (u8, &'static str) {
    match status {
        Status::Down => (1, "down"),
        Status::NotServing => (2, "not serving"),
        Status::Serving(_) => (3, "serving"),
    }
}

fn is_leader(status: &Status) -> bool {
    matches!(status, Status::Serving(Mode::Leader | Mode::Standalone))
}

/// Every server's state, asked of the server itself over its client port.
async fn servers_status(shared: &Shared) -> Vec<Value> {
    let port = shared.config.server.client.port();
    let asks = shared.config.server.servers.iter().map(|ip| async move {
        let status = zookeeper::status(SocketAddr::new(*ip, port)).await;
        let (code, description) = state_code(&status);
        json!({
            "code": code,
            "description": description,
            "hostname": ip.to_string(),
            "isLeader": is_leader(&status),
        })
    });
    // The handful of masters are asked at once: a down one costs its timeout, not the sum.
    futures::future::join_all(asks).await
}

async fn cluster_status(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(Value::Array(servers_status(&shared).await))
}

async fn cluster_list(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let servers: Vec<String> = shared
        .config
        .server
        .servers
        .iter()
        .map(IpAddr::to_string)
        .collect();
    Json(json!({"servers": servers, "port": shared.config.server.client.port()}))
}

/// One server's own view, as Exhibitor instances ask each other for it.
async fn cluster_state(
    State(shared): State<Arc<Shared>>,
    host: Option<axum::extract::Path<String>>,
) -> Response {
    let server = &shared.config.server;
    let host = host.map_or_else(|| server.client.ip().to_string(), |h| h.0);
    let Some(ip) = server.servers.iter().find(|ip| ip.to_string() == host) else {
        let body = format!("{host} is not a server of this ensemble");
        return (StatusCode::NOT_FOUND, body).into_response();
    };
    let status = zookeeper::status(SocketAddr::new(*ip, server.client.port())).await;
    let (code, description) = state_code(&status);
    Json(json!({
        "switches": {"restarts": true, "cleanup": true, "backups": false},
        "state": code,
        "description": description,
        "isLeader": is_leader(&status),
    }))
    .into_response()
}

async fn get_state(State(shared): State<Arc<Shared>>) -> Response {
    let server = &shared.config.server;
    // Exhibitor's `running` is ZooKeeper answering `ruok` with `imok`.
    let running = shared.process.borrow().pid.is_some() && zookeeper::is_ok(server.client).await;
    let servers_spec: Vec<String> = server
        .servers
        .iter()
        .enumerate()
        .map(|(i, ip)| format!("{}:{ip}", i + 1))
        .collect();
    let data = server.data_dir.display().to_string();
    let body = json!({
        "version": EXHIBITOR_VERSION,
        "running": running,
        "backupActive": false,
        "standaloneMode": false,
        "extraHeadingText": null,
        // The ensemble is the master list, fixed at install, as in DC/OS.
        "nodeMutationsAllowed": false,
        "config": {
            "rollInProgress": false,
            "rollStatus": "n/a",
            "rollPercentDone": 0,
            "hostname": server.client.ip().to_string(),
            "serverId": server.id,
            "logIndexDirectory": data,
            "zookeeperInstallDirectory": "/usr/share/zookeeper",
            "zookeeperConfigDirectory": data,
            "zookeeperDataDirectory": data,
            "zookeeperLogDirectory": data,
            "zookeeperPidPath": server.data_dir.join("zookeeper.pid").display().to_string(),
            "serversSpec": servers_spec.join(","),
            "backupExtra": "",
            "zooCfgExtra": server.cfg_extra(),
            "javaEnvironment": "",
            "log4jProperties": "",
            "clientPort": server.client.port(),
            "connectPort": zookeeper::QUORUM_PORT,
            "electionPort": zookeeper::ELECTION_PORT,
            "checkMs": 30000,
            "cleanupPeriodMs": 300000,
            "cleanupMaxFiles": 3,
            "backupMaxStoreMs": 0,
            "backupPeriodMs": 0,
            "autoManageInstances": 0,
            "autoManageInstancesSettlingPeriodMs": 0,
            "observerThreshold": 0,
            "autoManageInstancesFixedEnsembleSize": server.servers.len(),
            "autoManageInstancesApplyAllAtOnce": 1,
            "controlPanel": {},
        },
    });
    ([(header::CACHE_CONTROL, "no-cache")], Json(body)).into_response()
}
