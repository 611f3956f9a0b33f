//! Mesos-DNS' HTTP API (8123): `/v1/version`, `/v1/config`, `/v1/hosts/{host}`,
//! `/v1/services/{service}`, `/v1/enumerate` and `/v1/axfr`, with Mesos-DNS' JSON shapes (an
//! unknown host or service is one all-empty entry, status 200).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::records::{domain_frag, label};
use crate::MesosDns;

/// The version Mesos-DNS reports (DC/OS 1.11 shipped 0.6.0).
pub const VERSION: &str = "0.6.0";

/// The routes.
pub fn router(dns: Arc<MesosDns>) -> Router {
    Router::new()
        .route("/v1/version", get(version))
        .route("/v1/config", get(config))
        .route("/v1/hosts/{host}", get(hosts))
        .route(
            "/v1/hosts/{host}/ports",
            get(|| async { (StatusCode::NOT_IMPLEMENTED, "To be implemented...") }),
        )
        .route("/v1/services/{service}", get(services))
        .route("/v1/enumerate", get(enumerate))
        .route("/v1/axfr", get(axfr))
        .with_state(dns)
}

async fn version() -> Json<Value> {
    Json(
        json!({"Service": "Mesos-DNS", "Version": VERSION, "URL": "https://github.com/mesosphere/mesos-dns"}),
    )
}

async fn config(State(dns): State<Arc<MesosDns>>) -> Json<Value> {
    let c = dns.config();
    let zone = dns.zone();
    Json(json!({
        "RefreshSeconds": c.refresh.as_secs(),
        "Port": c.dns_listen.port(),
        "Timeout": crate::forward::UPSTREAM_TIMEOUT.as_secs(),
        "StateTimeoutSeconds": 5,
        "ZkDetectionTimeout": 30,
        "HttpPort": c.http_listen.port(),
        "TTL": c.ttl,
        "SRVRecordDefaultWeight": 1,
        "SOASerial": zone.serial,
        "SOARefresh": zone.soa.refresh,
        "SOARetry": zone.soa.retry,
        "SOAExpire": zone.soa.expire,
        "SOAMinttl": zone.soa.minttl,
        "SOAMname": zone.soa.mname,
        "SOARname": zone.soa.rname,
        "Masters": c.masters.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "ZoneResolvers": {},
        "Resolvers": c.resolvers.iter().map(|r| r.ip().to_string()).collect::<Vec<_>>(),
        "IPSources": c.ip_sources,
        "Zk": "",
        "Domain": c.domain,
        "File": "",
        "Listener": c.dns_listen.ip().to_string(),
        "HTTPListener": c.http_listen.ip().to_string(),
        "RecurseOn": true,
        "DnsOn": true,
        "HttpOn": true,
        "ExternalOn": !c.resolvers.is_empty(),
        "EnforceRFC952": c.rfc952,
        "SetTruncateBit": true,
        "EnumerationOn": true,
        "MesosHTTPSOn": false,
    }))
}

/// A name as the API looks it up: lower case, `.*` removed, fully qualified.
fn normalise(name: &str) -> String {
    let mut n = name.to_ascii_lowercase().replace(".*", "");
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

async fn hosts(State(dns): State<Arc<MesosDns>>, Path(host): Path<String>) -> Json<Value> {
    let name = normalise(&host);
    let zone = dns.zone();
    let found: Vec<Value> = zone
        .records
        .a
        .get(&name)
        .into_iter()
        .flatten()
        .map(|ip| json!({"host": name, "ip": ip.to_string()}))
        .collect();
    if found.is_empty() {
        return Json(json!([{"host": "", "ip": ""}]));
    }
    Json(Value::Array(found))
}

async fn services(State(dns): State<Arc<MesosDns>>, Path(service): Path<String>) -> Json<Value> {
    let zone = dns.zone();
    let found: Vec<Value> = zone
        .records
        .srv
        .get(&normalise(&service))
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let ip = zone.records.a.get(&t.host)?.iter().next()?;
            Some(json!({"service": service, "host": t.host, "ip": ip.to_string(), "port": t.port.to_string()}))
        })
        .collect();
    if found.is_empty() {
        return Json(json!([{"service": "", "host": "", "ip": "", "port": ""}]));
    }
    Json(Value::Array(found))
}

/// Every framework with its running tasks and the records that name them.
async fn enumerate(State(dns): State<Arc<MesosDns>>) -> Json<Value> {
    let state = dns.state();
    let zone = dns.zone();
    let rfc952 = dns.config().rfc952;
    let d = zone.domain.clone();
    let frameworks: Vec<Value> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|fw| {
            let fname = domain_frag(fw["name"].as_str().unwrap_or(""), rfc952);
            let tasks: Vec<Value> = fw["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["state"] == "TASK_RUNNING")
                .map(|t| {
                    let tname = label(
                        t.pointer("/discovery/name")
                            .and_then(Value::as_str)
                            .unwrap_or(t["name"].as_str().unwrap_or("")),
                        rfc952,
                    );
                    let suffix = format!(".{fname}.{d}");
                    let slave_suffix = format!(".{fname}.slave.{d}");
                    let mine = |n: &str| {
                        n.strip_suffix(&suffix)
                            .or_else(|| n.strip_suffix(&slave_suffix))
                            .is_some_and(|head| head == tname || head.starts_with(&format!("{tname}-")))
                    };
                    let mut records: Vec<Value> = Vec::new();
                    for (name, ips) in &zone.records.a {
                        if mine(name) {
                            records.extend(ips.iter().map(|ip| json!({"name": name, "host": ip.to_string(), "rtype": "A"})));
                        }
                    }
                    for (name, targets) in &zone.records.srv {
                        let srv_mine = name
                            .split_once("._")
                            .is_some_and(|(first, rest)| first == format!("_{tname}") && mine(&format!("x.{}", rest.split_once('.').map(|(_, r)| r).unwrap_or(""))));
                        if srv_mine {
                            records.extend(targets.iter().map(|t| json!({"name": name, "host": format!("{}:{}", t.host, t.port), "rtype": "SRV"})));
                        }
                    }
                    json!({"name": t["name"], "id": t["id"], "records": records})
                })
                .collect();
            json!({"name": fw["name"], "tasks": tasks})
        })
        .collect();
    Json(json!({ "frameworks": frameworks }))
}

/// The whole zone, as dcos-net mirrors it.
async fn axfr(State(dns): State<Arc<MesosDns>>) -> Json<Value> {
    let zone = dns.zone();
    let a: serde_json::Map<String, Value> = zone
        .records
        .a
        .iter()
        .map(|(n, ips)| {
            (
                n.clone(),
                json!(ips.iter().map(|i| i.to_string()).collect::<Vec<_>>()),
            )
        })
        .collect();
    let srv: serde_json::Map<String, Value> = zone
        .records
        .srv
        .iter()
        .map(|(n, ts)| {
            (
                n.clone(),
                json!(ts
                    .iter()
                    .map(|t| format!("{}:{}", t.host, t.port))
                    .collect::<Vec<_>>()),
            )
        })
        .collect();
    Json(json!({
        "TTL": zone.ttl,
        "Serial": zone.serial,
        "RefreshSeconds": dns.config().refresh.as_secs(),
        "Mname": zone.soa.mname,
        "Rname": zone.soa.rname,
        "Domain": dns.config().domain,
        "Records": {"As": a, "AAAAs": {}, "SRVs": srv},
    }))
}
