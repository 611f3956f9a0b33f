//! Admin Router's locations: which component a request path belongs to, and the path that
//! component sees. Pure functions of the path, as nginx's `location` blocks are; the
//! lookups that need cluster state (the leading master, an agent, a service) are named here
//! and resolved by the caller.

/// A component at a fixed address (on this node) or a unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fixed {
    /// Marathon (8080).
    Marathon,
    /// Mesos-DNS' HTTP API (127.0.0.1:8123).
    MesosDns,
    /// Exhibitor (8181).
    Exhibitor,
    /// DC/OS History (127.0.0.1:15055).
    History,
    /// dcos-net's HTTP API (62080).
    Net,
    /// Cosmos (127.0.0.1:7070).
    Cosmos,
    /// The IAM (127.0.0.1:8101).
    Iam,
    /// dcos-diagnostics (127.0.0.1:1050 on masters, a socket on agents).
    Health,
    /// The pkgpanda API (a unix socket).
    Pkgpanda,
    /// dcos-log (a unix socket).
    Logs,
    /// dcos-metrics (a unix socket).
    Metrics,
    /// The local Mesos agent (5051), on agents.
    LocalAgent,
    /// The cluster CA's API (127.0.0.1:8888).
    Ca,
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A fixed component, with the path it sees.
    Fixed(Fixed, String),
    /// The leading Mesos master, with the path it sees.
    MesosLeader(String),
    /// The agent with this id (its Mesos port), with the path it sees.
    Agent(String, String),
    /// The Admin Router of the agent with this id (61001), with the path it sees.
    AgentRouter(String, String),
    /// The Admin Router (port 80) of the node that leads `mesos` or `marathon`.
    LeaderRouter(&'static str, String),
    /// A service: the path's segments after `/service/` (the service's name is a leading
    /// run of them), whether the path ended in a slash, and the query (with its `?`).
    Service(Vec<String>, bool, String),
    /// Answered by Admin Router itself.
    Local(Local),
    /// A redirect to the same path with a trailing slash.
    Redirect(u16, String),
    /// No location matches.
    NotFound,
    /// A location that exists upstream but is for cluster components only (agents
    /// registering with the master, executors talking to their agent): 403.
    Forbidden,
}

/// Paths of the Mesos master and agent that only cluster components call, never users: an
/// agent's registration (`/api/v1/agent` on the master) and the executor API
/// (`/api/v1/executor` on an agent). Through the router anyone could pose as an agent or
/// as a task's executor.
const INTERNAL_MESOS_PATHS: [&str; 2] = ["/api/v1/agent", "/api/v1/executor"];

/// Whether a path (with its query) as a Mesos master or agent sees it is internal.
fn internal_mesos(path_and_query: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or("");
    INTERNAL_MESOS_PATHS.iter().any(|p| at_or_below(path, p))
}

/// Whether `path` is `prefix` or a path below it.
fn at_or_below(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `route`, unless it reaches an internal Mesos path (see [`INTERNAL_MESOS_PATHS`]).
fn guarded(route: Route) -> Route {
    let internal = match &route {
        Route::MesosLeader(p) | Route::Agent(_, p) | Route::Fixed(Fixed::LocalAgent, p) => {
            internal_mesos(p)
        }
        _ => false,
    };
    if internal {
        Route::Forbidden
    } else {
        route
    }
}

/// What Admin Router answers itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Local {
    /// `/`: the web UI's document.
    Index,
    /// `/assets/...`: the web UI's files.
    Asset(String),
    /// `/metadata`.
    Metadata,
    /// `/dcos-metadata/dcos-version.json`.
    Version,
    /// `/dcos-metadata/ui-config.json`.
    UiConfig,
    /// `/pkgpanda/active.buildinfo.full.json`.
    BuildInfo,
}

/// The node role whose locations apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Master: ports 80 and 443.
    Master,
    /// Agent: ports 61001 and 61002.
    Agent,
}

/// The Mesos agent endpoints an agent's router passes to its agent.
const AGENT_MESOS_PREFIXES: [&str; 12] = [
    "/slave(1)",
    "/files",
    "/state",
    "/state.json",
    "/flags",
    "/health",
    "/version",
    "/metrics/snapshot",
    "/monitor/statistics",
    "/monitor/statistics.json",
    "/containers",
    "/api/v1",
];

/// `rest` below `prefix`, as a path of its own (`/` when empty); the query stays.
fn below(path: &str, prefix: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() || rest.starts_with('?') {
        return Some(format!("/{rest}"));
    }
    rest.starts_with('/').then(|| rest.to_string())
}

/// The route of `path_and_query` (already normalised: see [`normalise`]).
pub fn route(role: Role, path_and_query: &str) -> Route {
    guarded(location(role, path_and_query))
}

/// The location `path_and_query` matches.
fn location(role: Role, path_and_query: &str) -> Route {
    let path = path_and_query.split('?').next().unwrap_or("");
    let local = |l| Route::Local(l);
    // Locations both roles have.
    match path {
        "/dcos-metadata/dcos-version.json" => return local(Local::Version),
        "/pkgpanda/active.buildinfo.full.json" => return local(Local::BuildInfo),
        _ => {}
    }
    for (exact, prefix, fixed) in [
        ("/pkgpanda", "/pkgpanda", Fixed::Pkgpanda),
        ("/system/v1/logs", "/system/v1/logs", Fixed::Logs),
        ("/system/v1/metrics", "/system/v1/metrics", Fixed::Metrics),
    ] {
        if path == exact {
            return Route::Redirect(301, format!("{exact}/"));
        }
        if let Some(rest) = below(path_and_query, prefix) {
            return Route::Fixed(fixed, rest);
        }
    }
    if path.starts_with("/system/health/v1") {
        return Route::Fixed(Fixed::Health, path_and_query.to_string());
    }
    if role == Role::Agent {
        // The agent's own Mesos endpoints, reachable from other nodes only this way in
        // dcos-rs; anything else is 404, as on a DC/OS agent.
        let mesos = AGENT_MESOS_PREFIXES.iter().any(|p| at_or_below(path, p));
        return if mesos {
            Route::Fixed(Fixed::LocalAgent, path_and_query.to_string())
        } else {
            Route::NotFound
        };
    }

    match path {
        "/" | "/index.html" => return local(Local::Index),
        p if p.starts_with("/assets/") => return local(Local::Asset(p.to_string())),
        "/metadata" => return local(Local::Metadata),
        "/dcos-metadata/ui-config.json" => return local(Local::UiConfig),
        "/ca/dcos-ca.crt" => return Route::Fixed(Fixed::Ca, path_and_query.into()),
        "/marathon" => return Route::Redirect(307, "/marathon/".into()),
        "/capabilities" => return Route::Fixed(Fixed::Cosmos, path_and_query.into()),
        _ => {}
    }
    // Prefixes whose component sees the path without them.
    for (prefix, fixed, redirect) in [
        ("/mesos_dns", Fixed::MesosDns, true),
        ("/exhibitor", Fixed::Exhibitor, true),
        ("/dcos-history-service", Fixed::History, false),
        ("/navstar", Fixed::Net, false),
        ("/cosmos", Fixed::Cosmos, false),
    ] {
        if redirect && path == prefix {
            return Route::Redirect(301, format!("{prefix}/"));
        }
        if let Some(rest) = below(path_and_query, prefix) {
            return Route::Fixed(fixed, rest);
        }
    }
    // The IAM's internal API (the policy query) is for Admin Router alone.
    if at_or_below(path, "/acs/api/v1/internal") {
        return Route::NotFound;
    }
    // Prefixes whose component sees the whole path.
    for (prefix, fixed) in [
        ("/package/", Fixed::Cosmos),
        ("/acs/api/v1/", Fixed::Iam),
        ("/ca/api/v2/", Fixed::Ca),
    ] {
        if path.starts_with(prefix) {
            return Route::Fixed(fixed, path_and_query.to_string());
        }
    }
    if path == "/mesos" {
        return Route::Redirect(301, "/mesos/".into());
    }
    // Marathon is found as the framework it is (its web UI), like any service.
    if path.starts_with("/marathon/") {
        return location(role, &format!("/service{path_and_query}"));
    }
    if let Some(rest) = path_and_query.strip_prefix("/cache/master/") {
        return Route::MesosLeader(format!("/master/{rest}"));
    }
    if let Some(rest) = below(path_and_query, "/mesos") {
        return Route::MesosLeader(rest);
    }
    for prefix in ["/agent/", "/slave/"] {
        if let Some(tail) = path_and_query.strip_prefix(prefix) {
            let (id, rest) = split_segment(tail);
            return if valid_agent_id(&id) {
                Route::Agent(id, rest)
            } else {
                Route::NotFound
            };
        }
    }
    if let Some(tail) = path_and_query.strip_prefix("/system/v1/agent/") {
        // An agent's logs and metrics are under its router's `/system/v1`; its metadata at
        // the router's root.
        let (id, rest) = split_segment(tail);
        if !valid_agent_id(&id) {
            return Route::NotFound;
        }
        let under = |p: &str| {
            rest.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with(['/', '?']))
        };
        if under("/logs") || under("/metrics/v0") {
            return Route::AgentRouter(id, format!("/system/v1{rest}"));
        }
        if rest == "/dcos-metadata/dcos-version.json" {
            return Route::AgentRouter(id, rest);
        }
        return Route::NotFound;
    }
    for which in ["mesos", "marathon"] {
        if let Some(rest) = path_and_query.strip_prefix(&format!("/system/v1/leader/{which}")) {
            if rest.is_empty() || rest.starts_with(['/', '?']) {
                return Route::LeaderRouter(which, format!("/system/v1{rest}"));
            }
        }
    }
    if let Some(tail) = path.strip_prefix("/service/") {
        let query = &path_and_query[path.len()..];
        let segments: Vec<String> = tail
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if segments.is_empty() {
            return Route::NotFound;
        }
        if segments.len() == 1 && !tail.ends_with('/') {
            return Route::Redirect(301, format!("/service/{}/{query}", segments[0]));
        }
        return Route::Service(segments, tail.ends_with('/'), query.to_string());
    }
    Route::NotFound
}

/// What a request must show before Admin Router passes it on, when logins are asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Nothing: the login itself, the version, the UI's files, the CA's certificate.
    Open,
    /// A valid token.
    LoggedIn,
    /// A valid token whose account has `full` on this resource.
    Resource(&'static str),
    /// A valid token whose account has `full` on `dcos:adminrouter:service:<name>`, the
    /// name known once the service is found.
    Service,
    /// An account's own permissions: free for that account, else as [`Guard::Resource`] of
    /// the IAM.
    OwnPermissions(String),
}

/// The IAM's resource, which guards its management API.
pub const ACS: &str = "dcos:adminrouter:acs";

/// The guard of `route`, reached by the normalised `path_and_query`, as DC/OS Enterprise's
/// Admin Router guards its locations. An agent's router asks nothing, as in open-source
/// DC/OS: it is reached from the cluster's network only.
pub fn guard(role: Role, path_and_query: &str, route: &Route) -> Guard {
    use Guard::{LoggedIn, Open, Resource};
    if role == Role::Agent {
        return Open;
    }
    let path = path_and_query.split('?').next().unwrap_or("");
    match route {
        Route::Local(Local::Version | Local::UiConfig | Local::Index | Local::Asset(_)) => Open,
        Route::Local(Local::Metadata) => LoggedIn,
        Route::Local(Local::BuildInfo) => Resource("dcos:adminrouter:ops:metadata"),
        Route::Redirect(..) | Route::NotFound | Route::Forbidden => Open,
        Route::Service(..) => Guard::Service,
        Route::MesosLeader(_) => Resource("dcos:adminrouter:ops:mesos"),
        Route::Agent(..) | Route::Fixed(Fixed::LocalAgent, _) => {
            Resource("dcos:adminrouter:ops:slave")
        }
        Route::AgentRouter(..) | Route::LeaderRouter(..) => LoggedIn,
        Route::Fixed(fixed, _) => match fixed {
            Fixed::Iam => {
                if at_or_below(path, "/acs/api/v1/auth") {
                    return Open;
                }
                let own = path
                    .strip_prefix("/acs/api/v1/users/")
                    .and_then(|rest| rest.strip_suffix("/permissions"))
                    .and_then(percent_decoded)
                    // Checked once decoded: `a%2Fb` is not an account's own path.
                    .filter(|uid| !uid.is_empty() && !uid.contains('/'));
                match own {
                    Some(uid) => Guard::OwnPermissions(uid.to_string()),
                    None => Resource(ACS),
                }
            }
            Fixed::Ca => match path {
                "/ca/dcos-ca.crt" | "/ca/api/v2/info" => Open,
                "/ca/api/v2/newcert" | "/ca/api/v2/newkey" | "/ca/api/v2/sign" => {
                    Resource("dcos:adminrouter:ops:ca:rw")
                }
                _ => Resource("dcos:adminrouter:ops:ca:ro"),
            },
            Fixed::Cosmos if path == "/capabilities" => LoggedIn,
            Fixed::Cosmos => Resource("dcos:adminrouter:package"),
            Fixed::Marathon => Resource("dcos:adminrouter:service:marathon"),
            Fixed::MesosDns => Resource("dcos:adminrouter:ops:mesos-dns"),
            Fixed::Exhibitor if path == "/exhibitor/exhibitor/v1/cluster/status" => Open,
            Fixed::Exhibitor => Resource("dcos:adminrouter:ops:exhibitor"),
            Fixed::History => Resource("dcos:adminrouter:ops:historyservice"),
            Fixed::Net => LoggedIn,
            Fixed::Health => Resource("dcos:adminrouter:ops:system-health"),
            Fixed::Pkgpanda => Resource("dcos:adminrouter:ops:pkgpanda"),
            Fixed::Logs => Resource("dcos:adminrouter:ops:system-logs"),
            Fixed::Metrics => Resource("dcos:adminrouter:ops:system-metrics"),
            Fixed::LocalAgent => Resource("dcos:adminrouter:ops:slave"),
        },
    }
}

/// A path segment with every escape decoded (`a%40b` is `a@b`); `None` if one is broken.
fn percent_decoded(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The path a service sees when its name took the first `n` of `segments`.
pub fn service_path(segments: &[String], n: usize, trailing_slash: bool, query: &str) -> String {
    let rest = segments[n.min(segments.len())..].join("/");
    if rest.is_empty() {
        format!("/{query}")
    } else {
        format!("/{rest}{}{query}", if trailing_slash { "/" } else { "" })
    }
}

/// Agent ids as DC/OS' locations accept them (`[0-9a-zA-Z-]+`).
fn valid_agent_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The first segment of `tail` and the rest of it as a path (`/` when empty).
fn split_segment(tail: &str) -> (String, String) {
    let end = tail.find(['/', '?']).unwrap_or(tail.len());
    let (id, rest) = tail.split_at(end);
    let rest = if rest.is_empty() || rest.starts_with('?') {
        format!("/{rest}")
    } else {
        rest.to_string()
    };
    (id.to_string(), rest)
}

/// Why a path is refused before routing.
#[derive(Debug, PartialEq, Eq)]
pub enum BadPath {
    /// Not an absolute path.
    NotAbsolute,
    /// A `..` segment would climb above the root.
    AboveRoot,
    /// A percent escape that does not decode, or decodes to a control character or a slash
    /// (which would change which location matches).
    BadEscape,
}

/// The path as nginx matches it: percent escapes of unreserved characters decoded, repeated
/// slashes merged, `.` and `..` segments resolved (refusing any that climb above the root);
/// the query is kept as sent.
pub fn normalise(path_and_query: &str) -> Result<String, BadPath> {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    if !path.starts_with('/') {
        return Err(BadPath::NotAbsolute);
    }
    let decoded = decode(path)?;
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop().ok_or(BadPath::AboveRoot)?;
            }
            s => out.push(s),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut norm = format!("/{}", out.join("/"));
    if trailing && norm != "/" {
        norm.push('/');
    }
    Ok(format!("{norm}{query}"))
}

/// Decodes the escapes of unreserved characters (RFC 3986: letters, digits, `-._~`), which
/// name the same resource either way, and keeps every other escape as sent: a decoded `#`,
/// `?` or `%` would change what the upstream sees (a fragment dropped, a query started, an
/// escape decoded twice) after the locations and their guards were matched.
fn decode(path: &str) -> Result<String, BadPath> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BadPath::BadEscape)?;
            let text = std::str::from_utf8(hex).map_err(|_| BadPath::BadEscape)?;
            let b = u8::from_str_radix(text, 16).map_err(|_| BadPath::BadEscape)?;
            if b < 0x20 || b == 0x7f || b == b'/' {
                return Err(BadPath::BadEscape);
            }
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b);
            } else {
                out.extend_from_slice(&bytes[i..i + 3]);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadPath::BadEscape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Paths built from the pieces that matter to normalisation.
    fn hostile_path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_string()),
            Just("..".to_string()),
            Just(".".to_string()),
            Just("%2e".to_string()),
            Just("%2E%2e".to_string()),
            Just("%2f".to_string()),
            Just("%".to_string()),
            Just("%0".to_string()),
            Just("%00".to_string()),
            Just("%23".to_string()),
            Just("%3F".to_string()),
            Just("%25".to_string()),
            Just("%74".to_string()),
            Just("?".to_string()),
            Just("mesos".to_string()),
            Just("service".to_string()),
            Just("agent".to_string()),
            Just("api/v1/agent".to_string()),
            "[a-zA-Z0-9_~-]{1,6}",
            any::<char>().prop_map(|c| c.to_string()),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        // Admin Router's path handling as a fuzz target: any path is refused or normalised
        // to one without empty, `.` or `..` segments or escapes, and routing it never panics
        // and never reaches an internal Mesos API.
        #[test]
        fn normalised_paths_stay_below_the_root(raw in hostile_path()) {
            for candidate in [raw.clone(), format!("/{raw}")] {
                let Ok(norm) = normalise(&candidate) else { continue };
                let path = norm.split('?').next().unwrap();
                prop_assert!(path.starts_with('/'));
                let inner = path.trim_end_matches('/');
                for seg in inner.split('/').skip(1) {
                    prop_assert!(!seg.is_empty() && seg != "." && seg != "..", "{norm}");
                }
                // What stays escaped is a whole escape of a reserved character.
                for (i, _) in path.match_indices('%') {
                    let hex = path.get(i + 1..i + 3).unwrap_or("");
                    let b = u8::from_str_radix(hex, 16);
                    prop_assert!(b.is_ok_and(|b| !b.is_ascii_alphanumeric() && !b"-._~".contains(&b)), "{norm}");
                }
                for role in [Role::Master, Role::Agent] {
                    let routed = route(role, &norm);
                    if let Route::MesosLeader(p) | Route::Agent(_, p) = &routed {
                        prop_assert!(!internal_mesos(p), "{norm} reached {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn paths_are_normalised_as_nginx_matches_them() {
        assert_eq!(
            normalise("/service////nest1///a//b").unwrap(),
            "/service/nest1/a/b"
        );
        assert_eq!(normalise("/mesos/../marathon/").unwrap(), "/marathon/");
        assert_eq!(normalise("/a/./b?x=../y").unwrap(), "/a/b?x=../y");
        assert_eq!(normalise("/%6desos/x").unwrap(), "/mesos/x");
        assert_eq!(normalise("/../etc/passwd"), Err(BadPath::AboveRoot));
        assert_eq!(normalise("/mesos/%2e%2e/%2e%2e/x"), Err(BadPath::AboveRoot));
        assert_eq!(normalise("/a%2fb"), Err(BadPath::BadEscape));
        assert_eq!(normalise("/a%0ab"), Err(BadPath::BadEscape));
        assert_eq!(normalise("/a%zz"), Err(BadPath::BadEscape));
        assert_eq!(normalise("a/b"), Err(BadPath::NotAbsolute));
        // Reserved characters stay escaped: they must not end the path after routing.
        assert_eq!(
            normalise("/mesos/api/v1/agent%23").unwrap(),
            "/mesos/api/v1/agent%23"
        );
        assert_eq!(normalise("/a%3fb%25c").unwrap(), "/a%3fb%25c");
        assert_eq!(
            normalise("/mesos/api/v1/agen%74").unwrap(),
            "/mesos/api/v1/agent"
        );
    }

    #[test]
    fn agent_registration_and_the_executor_api_are_not_routed() {
        for (role, path) in [
            (Role::Master, "/mesos/api/v1/agent"),
            (Role::Master, "/mesos/api/v1/agent?x=1"),
            (Role::Master, "/agent/S1/api/v1/executor"),
            (Role::Master, "/slave/S1/api/v1/executor/"),
            (Role::Agent, "/api/v1/executor"),
        ] {
            assert_eq!(route(role, path), Route::Forbidden, "{path}");
        }
        // The operator APIs beside them still are.
        assert_eq!(
            route(Role::Master, "/mesos/api/v1"),
            Route::MesosLeader("/api/v1".into())
        );
        assert_eq!(
            route(Role::Master, "/agent/S1/api/v1"),
            Route::Agent("S1".into(), "/api/v1".into())
        );
    }

    #[test]
    fn locations_are_guarded_as_dcos_enterprise_guards_them() {
        let g = |p: &str| guard(Role::Master, p, &route(Role::Master, p));
        for open in [
            "/acs/api/v1/auth/login",
            "/acs/api/v1/auth/jwks",
            "/dcos-metadata/dcos-version.json",
            "/dcos-metadata/ui-config.json",
            "/",
            "/ca/dcos-ca.crt",
            "/exhibitor/exhibitor/v1/cluster/status",
            "/mesos",
        ] {
            assert_eq!(g(open), Guard::Open, "{open}");
        }
        for (path, rid) in [
            ("/mesos/master/state", "dcos:adminrouter:ops:mesos"),
            ("/mesos_dns/v1/config", "dcos:adminrouter:ops:mesos-dns"),
            ("/acs/api/v1/users", ACS),
            ("/acs/api/v1/users/a/b/permissions", ACS),
            ("/package/list", "dcos:adminrouter:package"),
            ("/cosmos/service/describe", "dcos:adminrouter:package"),
            ("/agent/S1/files/read", "dcos:adminrouter:ops:slave"),
            ("/system/health/v1", "dcos:adminrouter:ops:system-health"),
            ("/ca/api/v2/sign", "dcos:adminrouter:ops:ca:rw"),
            ("/ca/api/v2/bundle", "dcos:adminrouter:ops:ca:ro"),
            (
                "/pkgpanda/active.buildinfo.full.json",
                "dcos:adminrouter:ops:metadata",
            ),
        ] {
            assert_eq!(g(path), Guard::Resource(rid), "{path}");
        }
        assert_eq!(g("/service/marathon/v2/apps"), Guard::Service);
        assert_eq!(g("/marathon/v2/apps"), Guard::Service);
        assert_eq!(g("/metadata"), Guard::LoggedIn);
        assert_eq!(g("/capabilities"), Guard::LoggedIn);
        assert_eq!(
            g("/acs/api/v1/users/alice/permissions"),
            Guard::OwnPermissions("alice".into())
        );
        assert_eq!(
            g("/acs/api/v1/users/a%40b.c/permissions"),
            Guard::OwnPermissions("a@b.c".into())
        );
        // The policy query is Admin Router's own.
        assert_eq!(
            route(Role::Master, "/acs/api/v1/internal/policyquery?uid=a"),
            Route::NotFound
        );
        assert_eq!(
            guard(
                Role::Agent,
                "/files/read",
                &route(Role::Agent, "/files/read")
            ),
            Guard::Open
        );
    }

    #[test]
    fn agent_locations_take_everything_else_to_the_local_agent() {
        assert_eq!(
            route(Role::Agent, "/files/read?path=x"),
            Route::Fixed(Fixed::LocalAgent, "/files/read?path=x".into())
        );
        assert_eq!(
            route(Role::Agent, "/system/v1/logs/x"),
            Route::Fixed(Fixed::Logs, "/x".into())
        );
    }
}
