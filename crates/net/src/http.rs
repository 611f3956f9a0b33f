//! dcos-net's HTTP API (62080), with dcos-net's shapes: `/v1/version`, `/v1/records` (every
//! A and SRV record of the zones dcos-net serves itself), `/v1/hosts/{host}` and
//! `/v1/services/{service}` (looked up in those zones only, never forwarded), `/v1/nodes`
//! (the members the gossip knows), and `/v1/config` and `/v1/enumerate`, which dcos-net
//! leaves unimplemented (501).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::DcosNet;

/// The version dcos-net's `dcos_dns` application reports.
pub const VERSION: &str = "0.0.1";

/// The routes.
pub fn router(net: Arc<DcosNet>) -> Router {
    let unimplemented = || async { StatusCode::NOT_IMPLEMENTED };
    Router::new()
        .route(
            "/v1/version",
            get(|| async { Json(json!({"Service": "dcos-dns", "Version": VERSION})) }),
        )
        .route("/v1/config", get(unimplemented))
        .route("/v1/enumerate", get(unimplemented))
        .route("/v1/records", get(records))
        .route("/v1/hosts/{host}", get(hosts))
        .route("/v1/services/{service}", get(services))
        .route("/v1/nodes", get(nodes))
        .with_state(net)
}

fn without_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

fn fqdn(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

async fn records(State(net): State<Arc<DcosNet>>) -> Json<Vec<Value>> {
    let mut out = Vec::new();
    for zone in net.zones() {
        for (name, ips) in &zone.records.a {
            out.extend(ips.iter().map(
                |ip| json!({"name": without_dot(name), "host": ip.to_string(), "rtype": "A"}),
            ));
        }
        for (name, targets) in &zone.records.srv {
            out.extend(targets.iter().map(|t| {
                json!({
                    "name": without_dot(name),
                    "host": format!("{}:{}", without_dot(&t.host), t.port),
                    "rtype": "SRV",
                })
            }));
        }
    }
    Json(out)
}

/// The A records of `name` in dcos-net's own zones.
fn lookup_a(net: &DcosNet, name: &str) -> Vec<std::net::Ipv4Addr> {
    net.zone_for(name)
        .and_then(|z| z.records.a.get(name).cloned())
        .map(|ips| ips.into_iter().collect())
        .unwrap_or_default()
}

async fn hosts(State(net): State<Arc<DcosNet>>, Path(host): Path<String>) -> Json<Vec<Value>> {
    let name = fqdn(&host);
    Json(
        lookup_a(&net, &name)
            .into_iter()
            .map(|ip| json!({"host": name, "ip": ip.to_string()}))
            .collect(),
    )
}

async fn services(
    State(net): State<Arc<DcosNet>>,
    Path(service): Path<String>,
) -> Json<Vec<Value>> {
    let name = fqdn(&service);
    let targets = net
        .zone_for(&name)
        .and_then(|z| z.records.srv.get(&name).cloned())
        .unwrap_or_default();
    Json(
        targets
            .into_iter()
            .map(|t| {
                let mut entry = json!({"service": name, "host": t.host, "port": t.port});
                if let Some(ip) = lookup_a(&net, &t.host).first() {
                    entry["ip"] = json!(ip.to_string());
                }
                entry
            })
            .collect(),
    )
}

async fn nodes(State(net): State<Arc<DcosNet>>) -> Json<Vec<Value>> {
    Json(
        net.members()
            .into_iter()
            .map(|m| json!({"private_ip": m.ip.to_string(), "public_ips": [], "role": m.role}))
            .collect(),
    )
}
