//! Admin Router: `dcos-adminrouter.service` on masters (80), `dcos-adminrouter-agent` on
//! agents (61001). Every user, CLI and UI request enters here and is routed, as DC/OS' nginx
//! locations route it ([`routes`]), to the component that owns it ([`proxy`]); the leading
//! master, agents and services are found from the cluster's state ([`discovery`]); the
//! metadata, the web UI (`dcos-ui`) and the error pages are the router's own ([`pages`]).
//!
//! Paths are normalised before routing (repeated slashes, `.` and `..`, escapes), so a path
//! that climbs above the root or hides a slash in an escape is refused with 400 and never
//! reaches an upstream. Slow clients are cut off after [`HEADER_TIMEOUT`]; a header line longer
//! than [`MAX_HEADER_LINE`] or headers over [`MAX_HEADERS`] in all get nginx's 400 "Request
//! Header Or Cookie Too Large" (its `large_client_header_buffers 4 8k`). Every request is
//! logged with its route, upstream, status and latency (target `access`).

#![warn(missing_docs)]

pub mod auth;
pub mod discovery;
pub mod pages;
pub mod proxy;
pub mod routes;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcos_ports::NodeRole;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::discovery::Discovery;
use crate::pages::{json_response, nginx_error, no_cache, resolver_error, respond};
use crate::proxy::{Body, Proxy, Upstream};
use crate::routes::{Fixed, Local, Role, Route};

/// How long a client may take to send a request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest header line accepted.
pub const MAX_HEADER_LINE: usize = 8 * 1024;
/// The most header bytes accepted in all.
pub const MAX_HEADERS: usize = 32 * 1024;
/// What the connection reads before giving up on a head (so the limits above decide).
const READ_BUFFER: usize = 1024 * 1024;

/// The configuration; [`Config::dcos`] gives DC/OS' layout.
#[derive(Clone, Debug)]
pub struct Config {
    /// Master or agent.
    pub role: Role,
    /// Plain HTTP: port 80 on masters (every address), 61001 on agents (the node's IP).
    pub http_listen: SocketAddr,
    /// HTTPS: port 443 on masters (every address), 61002 on agents (the node's IP).
    pub https_listen: SocketAddr,
    /// Where the router keeps its TLS certificate.
    pub cert_dir: PathBuf,
    /// The cluster CA that issues the certificate (self-signed without one).
    pub ca_dir: Option<PathBuf>,
    /// This node's IP.
    pub node_ip: IpAddr,
    /// The Mesos masters (`ip:5050`).
    pub masters: Vec<SocketAddr>,
    /// Where each fixed component is.
    pub fixed: HashMap<Fixed, Upstream>,
    /// The agents' routers' port (61001).
    pub agent_router_port: u16,
    /// The masters' routers' port (80).
    pub master_router_port: u16,
    /// The cluster's id.
    pub cluster_id: String,
    /// The units active on this node (for `active.buildinfo.full.json`).
    pub units: Vec<&'static str>,
    /// How long an upstream may take to start answering (nginx' 60 s).
    pub upstream_timeout: Duration,
    /// How long a client may take to send a request's head ([`HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
    /// Whether guarded routes ask a login ([`routes::guard`]).
    pub security: dcos_iam::api::SecurityMode,
    /// Strict security: the router's service account, for the components it asks itself.
    pub login: Option<dcos_iam::client::ServiceLogin>,
}

/// Admin Router's rows in the port contract on a node of one role.
struct RouterRow {
    /// Its unit.
    unit: &'static str,
    /// The role of the nodes that run it.
    node_role: NodeRole,
    /// Plain HTTP.
    http: u16,
    /// HTTPS.
    https: u16,
}

fn router_row(role: Role) -> RouterRow {
    match role {
        Role::Master => RouterRow {
            unit: "dcos-adminrouter.service",
            node_role: NodeRole::Master,
            http: 80,
            https: 443,
        },
        Role::Agent => RouterRow {
            unit: "dcos-adminrouter-agent",
            node_role: NodeRole::Agent,
            http: 61001,
            https: 61002,
        },
    }
}

/// The unit, the role of a node that runs it, and the TCP port in the port contract of a
/// fixed component; `None` for one reached over a unix socket or listed outside the contract.
fn upstream_row(f: Fixed, role: Role) -> Option<(&'static str, NodeRole, u16)> {
    let here = router_row(role).node_role;
    Some(match f {
        Fixed::Marathon => ("dcos-marathon.service", NodeRole::Master, 8080),
        Fixed::MesosDns => ("dcos-mesos-dns.service", NodeRole::Master, 8123),
        Fixed::Exhibitor => ("dcos-exhibitor.service", NodeRole::Master, 8181),
        Fixed::History => ("dcos-history-service.service", NodeRole::Master, 15055),
        Fixed::Net => ("dcos-net.service", here, 62080),
        Fixed::Cosmos => ("dcos-cosmos.service", NodeRole::Master, 7070),
        Fixed::Iam => ("dcos-bouncer.service", NodeRole::Master, 8101),
        Fixed::LocalAgent => ("dcos-mesos-slave.service", NodeRole::Agent, 5051),
        Fixed::Ca => ("dcos-ca.service", NodeRole::Master, 8888),
        // dcos-diagnostics: the masters' 1050 (an added row); agents serve it on a socket.
        Fixed::Health if role == Role::Master => {
            ("dcos-diagnostics.service", NodeRole::Master, 1050)
        }
        Fixed::Health | Fixed::Pkgpanda | Fixed::Logs | Fixed::Metrics => return None,
    })
}

/// `unit`'s TCP `port` on a node of `role` at `ip`, as [`dcos_ports::bind_addrs`] binds it.
/// The arguments are this module's constants, and the tests look every one of them up: a
/// failed lookup is a bug, not an input error.
fn contract_bind(unit: &str, role: NodeRole, ip: IpAddr, port: u16) -> dcos_ports::Bind {
    dcos_ports::bind_addrs(unit, role, ip)
        .and_then(|binds| binds.get(dcos_ports::Protocol::Tcp, port).copied())
        .unwrap_or_else(|e| panic!("Admin Router's port contract lookup: {e}"))
}

/// Where `unit`'s TCP `port` on a node of `role` at `ip` is reached from that node: where
/// the port contract binds it ([`dcos_ports::Bind::connect_addr`]).
fn contract_addr(unit: &str, role: NodeRole, ip: IpAddr, port: u16) -> SocketAddr {
    contract_bind(unit, role, ip, port).connect_addr()
}

/// Where the router of a `role` node at `ip` reaches the fixed component `f` of its node, as
/// the port contract binds it; `None` for a component reached over a unix socket or not in the
/// contract.
pub fn contract_upstream(f: Fixed, role: Role, ip: IpAddr) -> Option<SocketAddr> {
    let (unit, node_role, port) = upstream_row(f, role)?;
    Some(contract_addr(unit, node_role, ip, port))
}

impl Config {
    /// DC/OS' Admin Router on a node at `ip`, with its sockets under `run_dir`. Its listeners
    /// and every TCP upstream are where the port contract binds them
    /// ([`dcos_ports::bind_addrs`]).
    pub fn dcos(role: Role, ip: IpAddr, masters: Vec<IpAddr>, run_dir: PathBuf) -> Config {
        let mut fixed: HashMap<Fixed, Upstream> = [
            Fixed::Marathon,
            Fixed::MesosDns,
            Fixed::Exhibitor,
            Fixed::History,
            Fixed::Net,
            Fixed::Cosmos,
            Fixed::Iam,
            Fixed::Ca,
            Fixed::Health,
            Fixed::Pkgpanda,
            Fixed::Logs,
            Fixed::Metrics,
            Fixed::LocalAgent,
        ]
        .into_iter()
        .filter_map(|f| Some((f, Upstream::Tcp(contract_upstream(f, role, ip)?))))
        .collect();
        if role == Role::Agent {
            fixed.insert(
                Fixed::Health,
                Upstream::Unix(run_dir.join("dcos-diagnostics.sock")),
            );
        }
        fixed.extend([
            (
                Fixed::Pkgpanda,
                Upstream::Unix(run_dir.join("pkgpanda-api.sock")),
            ),
            (Fixed::Logs, Upstream::Unix(run_dir.join("dcos-log.sock"))),
            (
                Fixed::Metrics,
                Upstream::Unix(run_dir.join(match role {
                    Role::Master => "dcos-metrics-master.sock",
                    Role::Agent => "dcos-metrics-agent.sock",
                })),
            ),
        ]);
        let router = router_row(role);
        let bound = |port| contract_bind(router.unit, router.node_role, ip, port).addr;
        Config {
            role,
            http_listen: bound(router.http),
            https_listen: bound(router.https),
            cert_dir: run_dir.join("adminrouter"),
            ca_dir: None,
            node_ip: ip,
            masters: masters
                .into_iter()
                .map(|m| contract_addr("dcos-mesos-master.service", NodeRole::Master, m, 5050))
                .collect(),
            fixed,
            // Other nodes' routers, reached at their IPs (neither row is localhost-only).
            agent_router_port: router_row(Role::Agent).http,
            master_router_port: router_row(Role::Master).http,
            cluster_id: String::new(),
            units: Vec::new(),
            upstream_timeout: Duration::from_secs(60),
            header_timeout: HEADER_TIMEOUT,
            security: dcos_iam::api::SecurityMode::default(),
            login: None,
        }
    }
}

/// Errors starting the router.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TLS certificate could not be made or read.
    #[error(transparent)]
    Tls(#[from] dcos_tls::Error),
    /// A port could not be bound.
    #[error("failed to bind Admin Router on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The router's shared state.
pub struct Router {
    config: Config,
    proxy: Proxy,
    discovery: Discovery,
    /// The token checker, when logins are asked for.
    auth: Option<auth::Auth>,
}

/// Where a routed request goes, once the cluster's state is consulted.
enum Target {
    Upstream {
        upstream: Upstream,
        path: String,
        /// The prefix `Location` headers are moved under, and whether always.
        location_prefix: Option<(String, bool)>,
        /// The service's resource, for a service found by name.
        service: Option<String>,
    },
    Answer(Response<Body>),
}

impl Router {
    /// A router for `config`.
    pub fn new(config: Config) -> Router {
        let tcp = |f: Fixed| match config.fixed.get(&f) {
            Some(Upstream::Tcp(a)) => *a,
            _ => contract_upstream(f, config.role, config.node_ip)
                .unwrap_or(SocketAddr::new(config.node_ip, 0)),
        };
        let (marathon, mesos_dns) = (tcp(Fixed::Marathon), tcp(Fixed::MesosDns));
        let auth = config
            .security
            .enabled()
            .then(|| auth::Auth::new(tcp(Fixed::Iam)));
        Router {
            auth,
            proxy: Proxy::new(config.upstream_timeout),
            discovery: Discovery::new(
                config.node_ip,
                config.masters.clone(),
                marathon,
                mesos_dns,
                config.login.clone(),
            ),
            config,
        }
    }

    fn fixed(&self, f: Fixed) -> Upstream {
        self.config
            .fixed
            .get(&f)
            .cloned()
            .unwrap_or(Upstream::Tcp(SocketAddr::new(self.config.node_ip, 0)))
    }

    async fn local(
        &self,
        which: Local,
        method: &Method,
        if_none_match: Option<&HeaderValue>,
    ) -> Response<Body> {
        let c = &self.config;
        let resp = match which {
            Local::Version => json_response(&pages::version()),
            Local::Metadata => {
                let mut meta = serde_json::json!({"PUBLIC_IPV4": c.node_ip.to_string()});
                // Left out when the cluster has no id, as DC/OS does without its file.
                if !c.cluster_id.is_empty() {
                    meta["CLUSTER_ID"] = c.cluster_id.clone().into();
                }
                json_response(&meta)
            }
            Local::UiConfig => json_response(&pages::ui_config(&c.cluster_id)),
            Local::BuildInfo => no_cache(json_response(&pages::buildinfo(&c.units))),
            Local::Index => ui(dcos_ui::response(dcos_ui::View::Dcos, "/", if_none_match)),
            Local::Asset(path) => ui(dcos_ui::response(dcos_ui::View::Dcos, &path, if_none_match)),
        };
        if *method == Method::HEAD {
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, proxy::full(""));
        }
        resp
    }

    /// Where `route` leads now.
    async fn target(
        &self,
        route: Route,
        method: &Method,
        if_none_match: Option<&HeaderValue>,
    ) -> Target {
        let up = |upstream, path| Target::Upstream {
            upstream,
            path,
            location_prefix: None,
            service: None,
        };
        let unavailable =
            |detail: &str| Target::Answer(resolver_error(StatusCode::SERVICE_UNAVAILABLE, detail));
        // A lookup that could not be made: 503 for the client, the cause in the log.
        let failed = |e: anyhow::Error, detail: &str| {
            tracing::warn!(error = %e, "{detail}");
            unavailable(detail)
        };
        let to_agent_router = matches!(route, Route::AgentRouter(..));
        match route {
            Route::Local(which) => Target::Answer(self.local(which, method, if_none_match).await),
            Route::Redirect(status, location) => {
                let mut resp = respond(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
                    "text/html",
                    "",
                );
                if let Ok(v) = HeaderValue::from_str(&location) {
                    resp.headers_mut().insert(LOCATION, v);
                }
                Target::Answer(resp)
            }
            Route::NotFound => Target::Answer(nginx_error(StatusCode::NOT_FOUND)),
            Route::Forbidden => Target::Answer(nginx_error(StatusCode::FORBIDDEN)),
            Route::Fixed(f, path) => {
                let prefix = match f {
                    Fixed::Exhibitor => Some(("/exhibitor".to_string(), true)),
                    Fixed::Pkgpanda => Some(("/pkgpanda".to_string(), true)),
                    _ => None,
                };
                Target::Upstream {
                    upstream: self.fixed(f),
                    path,
                    location_prefix: prefix,
                    service: None,
                }
            }
            Route::MesosLeader(path) => match self.discovery.snapshot().await {
                Ok(s) => match s.leader {
                    Some(leader) => up(Upstream::Tcp(leader), path),
                    None => unavailable("mesos leader is unknown."),
                },
                Err(e) => failed(e, "cache state is invalid"),
            },
            Route::Agent(id, path) | Route::AgentRouter(id, path) => {
                match self.discovery.agent(&id).await {
                    // The agent's Mesos port, or its Admin Router's.
                    Ok(Some(agent)) if to_agent_router => up(
                        Upstream::Tcp(SocketAddr::new(
                            agent.addr.ip(),
                            self.config.agent_router_port,
                        )),
                        path,
                    ),
                    Ok(Some(agent)) => up(Upstream::Tcp(agent.addr), path),
                    Ok(None) => Target::Answer(resolver_error(
                        StatusCode::NOT_FOUND,
                        &format!("agent `{id}` unknown."),
                    )),
                    Err(e) => failed(e, "cache state is invalid"),
                }
            }
            Route::LeaderRouter(which, path) => {
                let leader = match which {
                    "mesos" => self
                        .discovery
                        .snapshot()
                        .await
                        .map(|s| s.leader.map(|a| a.ip())),
                    _ => self.discovery.marathon_leader().await,
                };
                match leader {
                    Ok(Some(ip)) => up(
                        Upstream::Tcp(SocketAddr::new(ip, self.config.master_router_port)),
                        path,
                    ),
                    Ok(None) => unavailable(&format!("{which} leader is unknown.")),
                    Err(e) => failed(e, &format!("{which} leader is unknown.")),
                }
            }
            Route::Service(segments, trailing, query) => {
                match self.discovery.service(&segments).await {
                    Ok(Some((service, n))) => {
                        let prefix = format!("/service/{}", segments[..n].join("/"));
                        let path = if service.rewrite {
                            routes::service_path(&segments, n, trailing, &query)
                        } else {
                            format!(
                                "{prefix}{}",
                                routes::service_path(&segments, n, trailing, &query)
                            )
                        };
                        Target::Upstream {
                            upstream: Upstream::Tcp(service.addr),
                            path,
                            location_prefix: Some((prefix, false)),
                            service: Some(format!(
                                "dcos:adminrouter:service:{}",
                                segments[..n].join("/")
                            )),
                        }
                    }
                    Ok(None) => {
                        Target::Answer(resolver_error(StatusCode::NOT_FOUND, "service not found."))
                    }
                    Err(e) => failed(e, "service discovery has failed"),
                }
            }
        }
    }

    /// Answers one request from `peer` over `scheme`.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        scheme: &str,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let raw = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let lines: Vec<usize> = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .collect();
        let too_large =
            lines.iter().any(|n| *n > MAX_HEADER_LINE) || lines.iter().sum::<usize>() > MAX_HEADERS;
        let (label, upstream_name, resp) = match routes::normalise(&raw) {
            _ if too_large => (
                "too-large".to_string(),
                String::new(),
                pages::nginx_page(
                    StatusCode::BAD_REQUEST,
                    "Request Header Or Cookie Too Large",
                ),
            ),
            Err(_) => (
                "bad-path".to_string(),
                String::new(),
                nginx_error(StatusCode::BAD_REQUEST),
            ),
            Ok(path) => {
                let route = routes::route(self.config.role, &path);
                let label = route_label(&route);
                let guard = self.guard(&path, &route);
                // Who calls is known before anything is looked up: an unknown service is a
                // 404 only for a caller who has logged in.
                let caller = match self.authenticate(&guard, req.headers()).await {
                    Ok(c) => c,
                    Err(resp) => return self.logged(peer, &method, &raw, label, "", started, resp),
                };
                // Every resource known from the path is checked before anything is answered
                // (the router's own pages too); a service's once it is found.
                if guard != routes::Guard::Service {
                    if let Err(resp) = self.authorize(&guard, caller.as_ref(), None).await {
                        return self.logged(peer, &method, &raw, label, "", started, resp);
                    }
                }
                let mut req = req;
                // Services, frameworks and agents are not the router's to trust with a
                // browser's login: only a token the client itself sent reaches them. A
                // service on a master (Marathon, Metronome) is the cluster's own.
                // Agents authenticate to the master in strict security: theirs is then too.
                let strict = self.config.security == dcos_iam::api::SecurityMode::Strict;
                let component = match route {
                    Route::Service(..) => false,
                    Route::Agent(..) | Route::AgentRouter(..) => strict,
                    _ => true,
                };
                let is_service = matches!(route, Route::Service(..));
                let if_none_match = req.headers().get(hyper::header::IF_NONE_MATCH).cloned();
                match self.target(route, &method, if_none_match.as_ref()).await {
                    Target::Answer(resp) => (label, String::new(), resp),
                    Target::Upstream {
                        upstream,
                        path,
                        location_prefix,
                        service,
                    } => {
                        if guard == routes::Guard::Service {
                            let checked = self.authorize(&guard, caller.as_ref(), service).await;
                            if let Err(resp) = checked {
                                return self.logged(peer, &method, &raw, label, "", started, resp);
                            }
                        }
                        let on_master = matches!(&upstream, Upstream::Tcp(a)
                            if self.config.masters.iter().any(|m| m.ip() == a.ip()));
                        let trusted = component || (is_service && on_master);
                        auth::forward_headers(
                            req.headers_mut(),
                            caller.as_ref().filter(|_| trusted),
                        );
                        let name = upstream.to_string();
                        let resp = match self
                            .proxy
                            .forward(req, &upstream, &path, peer, scheme)
                            .await
                        {
                            Ok(mut resp) => {
                                if let Some((prefix, always)) = location_prefix {
                                    rewrite_location(&mut resp, scheme, &host, &prefix, always);
                                }
                                resp
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "upstream failed");
                                nginx_error(e.status())
                            }
                        };
                        (label, name, resp)
                    }
                }
            }
        };
        self.logged(peer, &method, &raw, label, &upstream_name, started, resp)
    }

    /// Logs a request's outcome (target `access`) and gives its response.
    #[allow(clippy::too_many_arguments)]
    fn logged(
        &self,
        peer: SocketAddr,
        method: &Method,
        raw: &str,
        label: String,
        upstream_name: &str,
        started: Instant,
        resp: Response<Body>,
    ) -> Response<Body> {
        tracing::info!(
            target: "access",
            %peer, %method, path = %raw, route = %label, upstream = %upstream_name,
            status = resp.status().as_u16(), ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        resp
    }

    /// What a request on `path` must show: DC/OS' guards ([`routes::guard`]); on an agent in
    /// strict security, a login for everything but the version (the IAM's policy query is on
    /// the masters' loopback, so an agent's router checks logins, not permissions).
    fn guard(&self, path: &str, route: &Route) -> routes::Guard {
        let strict = self.config.security == dcos_iam::api::SecurityMode::Strict;
        match (self.config.role, route) {
            (Role::Agent, Route::Local(Local::Version)) => routes::Guard::Open,
            (Role::Agent, _) if strict => routes::Guard::LoggedIn,
            _ => routes::guard(self.config.role, path, route),
        }
    }

    /// The caller of a guarded request, or the 401 (or 503) that answers it.
    async fn authenticate(
        &self,
        guard: &routes::Guard,
        headers: &hyper::HeaderMap,
    ) -> Result<Option<auth::Caller>, Response<Body>> {
        let Some(checker) = &self.auth else {
            return Ok(None);
        };
        if *guard == routes::Guard::Open {
            // An open route still passes a caller's token on.
            return Ok(checker.authenticate(headers).await.ok());
        }
        checker
            .authenticate(headers)
            .await
            .map(Some)
            .map_err(denied)
    }

    /// Lets an authenticated request through its guard's resource, or the 403.
    async fn authorize(
        &self,
        guard: &routes::Guard,
        caller: Option<&auth::Caller>,
        service: Option<String>,
    ) -> Result<(), Response<Body>> {
        let (Some(checker), Some(caller)) = (&self.auth, caller) else {
            return Ok(());
        };
        let rid = match guard {
            routes::Guard::Open | routes::Guard::LoggedIn => return Ok(()),
            routes::Guard::Resource(rid) => rid.to_string(),
            routes::Guard::Service => match service {
                Some(rid) => rid,
                None => return Ok(()),
            },
            routes::Guard::OwnPermissions(uid) if *uid == caller.uid => return Ok(()),
            routes::Guard::OwnPermissions(_) => routes::ACS.to_string(),
        };
        checker.authorize(&caller.uid, &rid).await.map_err(denied)
    }
}

/// The answer to a request that is not let through.
fn denied(why: auth::Denied) -> Response<Body> {
    match why {
        auth::Denied::Unauthenticated => pages::unauthorized(),
        auth::Denied::Forbidden => pages::forbidden(),
        auth::Denied::Unavailable => resolver_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the IAM cannot be reached to check this request.",
        ),
    }
}

/// The web UI's answer, or nginx's 404 for a file it does not have.
fn ui(resp: Option<Response<bytes::Bytes>>) -> Response<Body> {
    resp.map_or_else(
        || nginx_error(StatusCode::NOT_FOUND),
        |r| r.map(proxy::full),
    )
}

fn route_label(route: &Route) -> String {
    match route {
        Route::Fixed(f, _) => format!("{f:?}").to_lowercase(),
        Route::MesosLeader(_) => "mesos".into(),
        Route::Agent(..) => "agent".into(),
        Route::AgentRouter(..) => "agent-router".into(),
        Route::LeaderRouter(w, _) => format!("leader-{w}"),
        Route::Service(s, ..) => format!("service:{}", s.join("/")),
        Route::Local(Local::Asset(_)) => "asset".into(),
        Route::Local(l) => format!("{l:?}").to_lowercase(),
        Route::Redirect(..) => "redirect".into(),
        Route::NotFound => "none".into(),
        Route::Forbidden => "forbidden".into(),
    }
}

fn rewrite_location(
    resp: &mut Response<Body>,
    scheme: &str,
    host: &str,
    prefix: &str,
    always: bool,
) {
    let Some(location) = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) else {
        return;
    };
    let moved = proxy::rewrite_location(location, scheme, host, prefix, always);
    if let Ok(v) = HeaderValue::from_str(&moved) {
        resp.headers_mut().insert(LOCATION, v);
    }
}

/// What each of the router's listeners allows: the front door holds many clients (browsers
/// keep several connections each; idle ones make way for new clients at the limit), a
/// request head may take up to [`READ_BUFFER`] so that the router's own header limits
/// answer with nginx's page. Bodies are streamed to the upstream, whose own limit applies.
fn limits(config: &Config) -> dcos_serve::Limits {
    dcos_serve::Limits {
        max_connections: 16_384,
        header_read_timeout: config.header_timeout,
        max_header_bytes: READ_BUFFER,
        max_headers: 512,
        body_limit: usize::MAX,
        write_stall: Duration::from_secs(60),
        drain: Duration::from_secs(5),
    }
}

/// Serves requests from one listener as `scheme` until `shutdown`.
async fn serve_listener<L>(
    listener: L,
    scheme: &'static str,
    router: Arc<Router>,
    shutdown: CancellationToken,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let limits = limits(&router.config);
    dcos_serve::serve_with(listener, limits, shutdown, move |peer: SocketAddr| {
        let router = router.clone();
        hyper::service::service_fn(move |req| {
            let router = router.clone();
            async move { Ok::<_, std::convert::Infallible>(router.handle(req, peer, scheme).await) }
        })
    })
    .await
}

/// Serves plain HTTP on `http` and HTTPS on `https` until `shutdown`.
pub async fn serve_on(
    http: TcpListener,
    https: dcos_tls::TlsListener,
    router: Arc<Router>,
    shutdown: CancellationToken,
) {
    tracing::info!(addr = ?http.local_addr().ok(), role = ?router.config.role, "serving Admin Router");
    tokio::join!(
        serve_listener(http, "http", router.clone(), shutdown.clone()),
        serve_listener(https, "https", router, shutdown),
    );
}

/// The router's TLS acceptor: its node certificate for `names`, from the cluster CA.
pub fn tls_acceptor(config: &Config, names: &[&str]) -> Result<tokio_rustls::TlsAcceptor, Error> {
    let ips = [config.node_ip, IpAddr::V4(Ipv4Addr::LOCALHOST)];
    Ok(dcos_tls::acceptor(
        &config.cert_dir,
        "adminrouter",
        &ips,
        names,
        config.ca_dir.as_deref(),
    )?)
}

/// Binds and serves until `shutdown`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })
    };
    let http = bind(config.http_listen).await?;
    let https = bind(config.https_listen).await?;
    let names = ["master.mesos", "leader.mesos", "localhost"];
    let acceptor = tls_acceptor(&config, &names)?;
    let https = dcos_tls::TlsListener::new(https, acceptor);
    serve_on(http, https, Arc::new(Router::new(config)), shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn tcp(ip: IpAddr, port: u16) -> Upstream {
        Upstream::Tcp(SocketAddr::new(ip, port))
    }

    #[test]
    fn listeners_and_upstreams_are_where_the_contract_binds_them() {
        let masters = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        for role in [Role::Master, Role::Agent] {
            let c = Config::dcos(role, IP, masters.clone(), "/run".into());
            let (http, https) = match role {
                Role::Master => (
                    SocketAddr::from(([0; 4], 80)),
                    SocketAddr::from(([0; 4], 443)),
                ),
                Role::Agent => (SocketAddr::new(IP, 61001), SocketAddr::new(IP, 61002)),
            };
            assert_eq!((c.http_listen, c.https_listen), (http, https), "{role:?}");
            assert_eq!(
                c.masters,
                vec![
                    "10.0.0.1:5050".parse::<SocketAddr>().unwrap(),
                    "10.0.0.2:5050".parse().unwrap()
                ]
            );
            for (f, want) in [
                (Fixed::Marathon, tcp(IP, 8080)),
                (Fixed::MesosDns, tcp(LO, 8123)),
                (Fixed::Exhibitor, tcp(IP, 8181)),
                (Fixed::History, tcp(LO, 15055)),
                (Fixed::Net, tcp(IP, 62080)),
                (Fixed::Cosmos, tcp(LO, 7070)),
                (Fixed::Iam, tcp(LO, 8101)),
                (Fixed::Ca, tcp(LO, 8888)),
                (Fixed::LocalAgent, tcp(IP, 5051)),
                (
                    Fixed::Pkgpanda,
                    Upstream::Unix("/run/pkgpanda-api.sock".into()),
                ),
            ] {
                assert_eq!(c.fixed.get(&f), Some(&want), "{role:?} {f:?}");
            }
            assert_eq!(c.fixed.len(), 13, "{role:?}");
            assert_eq!((c.agent_router_port, c.master_router_port), (61001, 80));
        }
    }

    #[test]
    fn other_nodes_routers_are_reachable_at_their_ips() {
        for role in [Role::Master, Role::Agent] {
            let row = router_row(role);
            let binds = dcos_ports::bind_addrs(row.unit, row.node_role, IP).unwrap();
            for port in [row.http, row.https] {
                let bind = binds.iter().find(|b| b.port() == port).unwrap();
                assert_ne!(bind.row.bind(), dcos_ports::BindScope::Localhost);
            }
        }
    }
}
