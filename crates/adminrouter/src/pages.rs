//! What Admin Router answers itself: its error pages (nginx's own HTML for a status, the
//! Lua resolvers' one-line texts) and the metadata clients read first. The web UI's files are
//! `dcos_ui`'s.

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, EXPIRES, PRAGMA};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::proxy::{full, Body};

/// A response with a body and a content type.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// nginx's built-in page for `status` (as OpenResty renders it with `server_tokens off`).
pub fn nginx_error(status: StatusCode) -> Response<Body> {
    // nginx's own reason phrases where they differ from the registry's.
    let reason = match status {
        StatusCode::GATEWAY_TIMEOUT => "Gateway Time-out",
        StatusCode::REQUEST_TIMEOUT => "Request Time-out",
        s => s.canonical_reason().unwrap_or("Error"),
    };
    nginx_page(status, reason)
}

/// nginx's page layout, with `title` after the status code.
pub fn nginx_page(status: StatusCode, title: &str) -> Response<Body> {
    let line = format!("{} {title}", status.as_u16());
    let body = format!(
        "<html>\r\n<head><title>{line}</title></head>\r\n<body bgcolor=\"white\">\r\n\
         <center><h1>{line}</h1></center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n"
    );
    respond(status, "text/html", body)
}

/// The 401 of a guarded route without a valid login: `WWW-Authenticate: acsjwt` and the web
/// UI's page, which sends a browser to the login and back.
pub fn unauthorized() -> Response<Body> {
    let body = "<!DOCTYPE html>\n<html>\n<head><title>Unauthorized</title></head>\n<body>\n\
        <p>Authentication is required to reach this page. Redirecting to the login page.</p>\n\
        <script>window.location = '/#/login?redirect=' + \
        encodeURIComponent(window.location.pathname + window.location.search);</script>\n\
        </body>\n</html>\n";
    let mut resp = respond(StatusCode::UNAUTHORIZED, "text/html; charset=UTF-8", body);
    resp.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(dcos_iam::api::AUTH_SCHEME),
    );
    resp
}

/// The 403 of a logged-in caller without the permission a route needs.
pub fn forbidden() -> Response<Body> {
    let body = "<!DOCTYPE html>\n<html>\n<head><title>Access denied</title></head>\n<body>\n\
        <h1>403 Forbidden</h1>\n<p>You do not have permission to access this resource. \
        Ask your cluster administrator for it.</p>\n</body>\n</html>\n";
    respond(StatusCode::FORBIDDEN, "text/html; charset=UTF-8", body)
}

/// An error from one of the router's resolvers: `"<code> <reason>: <detail>\n"`.
pub fn resolver_error(status: StatusCode, detail: &str) -> Response<Body> {
    let body = format!(
        "{} {}: {detail}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    respond(status, "text/plain", body)
}

/// JSON.
pub fn json_response(value: &Value) -> Response<Body> {
    respond(StatusCode::OK, "application/json", format!("{value}\n"))
}

/// Adds the headers that forbid caching (nginx's `disable-response_caching.conf`).
pub fn no_cache(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(EXPIRES, HeaderValue::from_static("0"));
    resp
}

/// The DC/OS release whose APIs dcos-rs serves.
pub const DCOS_VERSION: &str = "1.11.13";

/// `/dcos-metadata/dcos-version.json`.
pub fn version() -> Value {
    json!({
        "version": DCOS_VERSION,
        "dcos-image-commit": format!("dcos-rs-{}", env!("CARGO_PKG_VERSION")),
        "bootstrap-id": format!("dcos-rs-{}", env!("CARGO_PKG_VERSION")),
        "dcos-variant": "open",
    })
}

/// `/dcos-metadata/ui-config.json`: the UI configuration of an open cluster (no banner,
/// branding, external login or tracking), with the cluster's id.
pub fn ui_config(cluster_id: &str) -> Value {
    let off = json!({"enabled": false});
    json!({
        "uiConfiguration": {"plugins": {
            "banner": off, "branding": off, "external-links": off,
            "authentication": off, "oauth": off, "tracking": off,
            "mesos": {"logging-strategy": "logrotate"},
        }},
        "clusterConfiguration": {"firstUser": false, "id": cluster_id},
    })
}

/// `/pkgpanda/active.buildinfo.full.json`: the packages (units) active on this node.
pub fn buildinfo(units: &[&str]) -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let packages: serde_json::Map<String, Value> = units
        .iter()
        .map(|u| {
            let name = u.trim_end_matches(".service").trim_start_matches("dcos-");
            (
                name.to_string(),
                json!({"name": name, "version": version, "package_id": format!("{name}--{version}"),
                       "state": "active", "sources": {}, "requires": []}),
            )
        })
        .collect();
    Value::Object(packages)
}
