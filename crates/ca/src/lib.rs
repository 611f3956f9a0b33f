//! The DC/OS Enterprise certificate authority (`dcos-ca.service`, masters, `127.0.0.1:8888`):
//! a CFSSL-compatible API over the cluster CA that `dcos cluster up` made (`dcos_tls`).
//!
//! Each endpoint answers on both prefixes the real service answers on: `/api/v1/cfssl/<ep>`
//! (what Admin Router's `/ca/api/v2/<ep>` is rewritten to) and `/ca/api/v2/<ep>` (what the
//! bootstrap calls directly on the master). All are POST with a JSON body, answered in
//! cfssl's envelope `{"success","result","errors","messages"}`:
//!
//! - `info`: the CA certificate, the profile's usages and expiry;
//! - `newkey`: a new key (ECDSA P-256 by default, or P-384) and a CSR for it;
//! - `newcert`: the same, signed;
//! - `sign`: a CSR signed, after its self-signature is checked.
//!
//! Certificates come from cfssl's default profile (DC/OS' own ca-config is not public):
//! 8760h, digital signature and key encipherment, server and client auth, never a CA.
//! `bundle` is not served (cfssl's bundle result needs a chain builder and trust stores
//! this CA has no use for; a leaf of this root has no intermediates to bundle).
//!
//! `GET /ca/dcos-ca.crt` serves the CA certificate, as Admin Router serves that file.
//!
//! Modules: [`api`] is the wire format, [`ca`] the signing core without HTTP.

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod ca;

pub use ca::Ca;

use api::{Failure, Message};

/// The CA's port of the contract (localhost on masters).
pub const PORT: u16 = 8888;

/// Request bodies at most: CSRs and certificate requests are a few KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Limits of the API: few local callers (Admin Router, bootstrap), small bodies.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api().connections(32).body(BODY_LIMIT);

/// The media type of the CA certificate, as Admin Router serves it.
pub const CA_CERT_TYPE: &str = "application/x-x509-ca-cert";

/// The warning cfssl adds to a `newcert` without hosts (api/generator's CSRNoHostMessage).
pub const NO_HOSTS_MESSAGE: &str =
    "This certificate lacks a \"hosts\" field. This makes it unsuitable for\n\
websites. For more information see the Baseline Requirements for the Issuance and Management\n\
of Publicly-Trusted Certificates, v.1.1.6, from the CA/Browser Forum (https://cabforum.org);\n\
specifically, section 10.2.3 (\"Information Requirements\").";

/// The warning cfssl adds when a request asks for a bundle and the server has no bundler.
pub const NO_BUNDLER_MESSAGE: &str =
    "This request requires a bundler, but one is not initialized for the API server.";

/// Where the CA listens and what it signs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The API (`127.0.0.1:8888`).
    pub listen: SocketAddr,
    /// The cluster CA's directory (`ca.crt`, `ca.key`, `ca.name`).
    pub ca_dir: PathBuf,
}

/// Why the CA service cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cluster CA in the directory cannot be loaded.
    #[error("cannot load the cluster CA in {}", dir.display())]
    Load {
        /// The CA directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: ca::LoadError,
    },
    /// The address cannot be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Loads the CA, binds the configured address and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let ca = Ca::load(&config.ca_dir).map_err(|source| Error::Load {
        dir: config.ca_dir.clone(),
        source,
    })?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    tracing::info!(addr = %config.listen, "listening for CA requests");
    serve_on(listener, Arc::new(ca), shutdown).await;
    Ok(())
}

/// Serves the CA on an already-bound `listener` until `shutdown` is cancelled.
pub async fn serve_on(listener: TcpListener, ca: Arc<Ca>, shutdown: CancellationToken) {
    dcos_serve::serve(listener, router(ca), LIMITS, shutdown).await;
}

/// The CA's routes: each endpoint under both prefixes, the CA certificate, 404 elsewhere
/// (Go's mux text).
pub fn router(ca: Arc<Ca>) -> Router {
    let mut router = Router::new();
    for prefix in ["/api/v1/cfssl", "/ca/api/v2"] {
        router = router
            .route(&format!("{prefix}/info"), only_post(post(info)))
            .route(&format!("{prefix}/newkey"), only_post(post(newkey)))
            .route(&format!("{prefix}/newcert"), only_post(post(newcert)))
            .route(&format!("{prefix}/sign"), only_post(post(sign)));
    }
    router
        .route("/ca/dcos-ca.crt", get(ca_cert))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                "404 page not found\n",
            )
        })
        // Also here, not only in dcos_serve, so the router alone keeps the limit.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(ca)
}

/// cfssl's handlers take POST only and name the method they refused.
fn only_post(route: MethodRouter<Arc<Ca>>) -> MethodRouter<Arc<Ca>> {
    route.fallback(|method: Method| async move { Failure::method(&method) })
}

/// The body as JSON of `T`, or cfssl's refusal with `bad_json`'s text.
fn parse<T: DeserializeOwned>(
    body: Body,
    bad_json: impl FnOnce(serde_json::Error) -> Failure,
) -> Result<T, Failure> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Failure::too_large(BODY_LIMIT),
        _ => Failure::bad_request(e.body_text()),
    })?;
    serde_json::from_slice(&body).map_err(bad_json)
}

fn json_error(e: serde_json::Error) -> Failure {
    Failure::bad_request(e.to_string())
}

/// `{"md5","sha-1"}` of a DER object, uppercase hex, as cfssl's `computeSum`.
fn sums(der: &[u8]) -> serde_json::Value {
    use md5::Digest as _;
    serde_json::json!({
        "md5": ca::hex(md5::Md5::digest(der)),
        "sha-1": ca::hex(sha1_smol::Sha1::from(der).digest().bytes()),
    })
}

/// A result and its warnings, or cfssl's refusal.
type Answer<T> = Result<(T, Vec<Message>), Failure>;

/// The request body of a POST endpoint.
type Body = Result<Bytes, BytesRejection>;

/// Writes an answer in cfssl's envelope. Handlers sign inline: an ECDSA key or signature,
/// or checking an RSA CSR, takes well under a millisecond, less than a hop to a blocking
/// thread would.
fn respond<T: serde::Serialize>(answer: Answer<T>) -> Response {
    match answer {
        Ok((result, messages)) => api::success(result, messages),
        Err(f) => f.into_response(),
    }
}

async fn info(State(ca): State<Arc<Ca>>, body: Body) -> Response {
    respond(info_answer(&ca, body))
}

async fn newkey(State(ca): State<Arc<Ca>>, body: Body) -> Response {
    respond(newkey_answer(&ca, body))
}

async fn newcert(State(ca): State<Arc<Ca>>, body: Body) -> Response {
    respond(newcert_answer(&ca, body))
}

async fn sign(State(ca): State<Arc<Ca>>, body: Body) -> Response {
    respond(sign_answer(&ca, body))
}

/// `info`'s result (a Go struct: cfssl's field order).
#[derive(serde::Serialize)]
struct Info {
    certificate: String,
    usages: &'static [&'static str],
    expiry: &'static str,
}

/// `POST info`: the CA certificate (trimmed, as cfssl gives it) and the default profile.
fn info_answer(ca: &Ca, body: Body) -> Answer<Info> {
    let _req: api::InfoRequest = parse(body, json_error)?;
    let info = Info {
        certificate: ca.certificate_pem().trim().to_string(),
        usages: ca::USAGES,
        expiry: ca::EXPIRY,
    };
    Ok((info, Vec::new()))
}

fn check_request(req: &api::CertificateRequest) -> Result<(), Failure> {
    if req.ca.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(Failure::bad_request("ca section only permitted in initca"));
    }
    Ok(())
}

/// `newkey`'s result (a Go struct: cfssl's field order).
#[derive(serde::Serialize)]
struct NewKey {
    private_key: String,
    certificate_request: String,
    sums: serde_json::Value,
}

/// `POST newkey`: a key and its CSR; the key is made here and given to the caller only.
fn newkey_answer(ca: &Ca, body: Body) -> Answer<NewKey> {
    let req: api::CertificateRequest = parse(body, json_error)?;
    check_request(&req)?;
    let new = ca.new_key(&req)?;
    let result = NewKey {
        certificate_request: ca::pem_encode("CERTIFICATE REQUEST", new.csr_der.clone()),
        sums: serde_json::json!({"certificate_request": sums(&new.csr_der)}),
        private_key: new.key_pem,
    };
    Ok((result, Vec::new()))
}

fn no_bundler() -> Message {
    Message {
        code: 5300,
        message: NO_BUNDLER_MESSAGE.into(),
    }
}

/// `POST newcert`: a key, its CSR and the certificate signed for it.
fn newcert_answer(ca: &Ca, body: Body) -> Answer<serde_json::Value> {
    let req: api::NewCertRequest = parse(body, json_error)?;
    let Some(request) = req.request else {
        return Err(Failure::bad_request("missing request section"));
    };
    check_request(&request)?;
    let new = ca.new_key(&request)?;
    let csr_pem = ca::pem_encode("CERTIFICATE REQUEST", new.csr_der.clone());
    // The request's hosts are already the CSR's SANs.
    let cert = ca.sign(&csr_pem, ca::SignOptions::default())?;
    let mut messages = Vec::new();
    if request.hosts.as_ref().is_none_or(Vec::is_empty) {
        messages.push(Message {
            code: 5300,
            message: NO_HOSTS_MESSAGE.into(),
        });
    }
    if req.bundle {
        messages.push(no_bundler());
    }
    // cfssl answers a Go map here, so the keys come out sorted (serde_json's map is too).
    let result = serde_json::json!({
        "certificate": ca::pem_encode("CERTIFICATE", cert.clone()),
        "certificate_request": csr_pem,
        "private_key": new.key_pem,
        "sums": {
            "certificate": sums(&cert),
            "certificate_request": sums(&new.csr_der),
        },
    });
    Ok((result, messages))
}

/// `POST sign`: a CSR made elsewhere, checked and signed.
fn sign_answer(ca: &Ca, body: Body) -> Answer<serde_json::Value> {
    let req: api::SignRequest = parse(body, |_| {
        Failure::bad_request("Unable to parse sign request")
    })?;
    let csr = req.certificate_request.as_deref().unwrap_or_default();
    if csr.is_empty() {
        return Err(Failure::bad_request(
            "missing parameter 'certificate_request'",
        ));
    }
    // cfssl's signhandler: a non-empty `hostname` wins over `hosts`.
    let hosts = match req.hostname.as_deref() {
        Some(h) if !h.is_empty() => Some(h.split(',').map(str::to_string).collect()),
        _ => req.hosts,
    };
    let options = ca::SignOptions {
        hosts,
        subject: req.subject,
    };
    let cert = ca.sign(csr, options)?;
    let messages = if req.bundle {
        vec![no_bundler()]
    } else {
        Vec::new()
    };
    let result = serde_json::json!({"certificate": ca::pem_encode("CERTIFICATE", cert)});
    Ok((result, messages))
}

/// `GET /ca/dcos-ca.crt`: the CA certificate file, unauthenticated in Admin Router.
async fn ca_cert(State(ca): State<Arc<Ca>>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CA_CERT_TYPE))],
        ca.certificate_pem().to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
