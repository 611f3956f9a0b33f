//! A client of the Docker Registry HTTP API v2 for one repository: auth, manifests, blobs.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RANGE, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use crate::error::root_cause;
use crate::manifest::{accept_header, Descriptor};
use crate::{digest_hex, sha256_digest, Credentials, Error, Reason, Reference};

/// The largest manifest (or list) read: real ones are a few KiB.
const MAX_MANIFEST: usize = 4 << 20;
/// The largest token response read, and how much of an error body is read.
const MAX_SMALL_BODY: usize = 64 << 10;

/// One HTTP client for every registry a store talks to (it pools connections).
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .user_agent("dcos-rs-image/0.1")
        .build()
        .expect("a TLS backend is compiled in")
}

/// Whether to speak plain http: registries on loopback addresses and `localhost` (Docker
/// treats them as insecure too) and those listed as insecure; https for the rest.
pub(crate) fn scheme(registry: &str, insecure: &[String]) -> &'static str {
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || insecure.iter().any(|i| i == registry || i == host) {
        "http"
    } else {
        "https"
    }
}

/// A conversation with one repository of one registry, holding its auth.
pub(crate) struct Session {
    http: reqwest::Client,
    base: String,
    /// `base` parsed: the one origin the `Authorization` header goes to (none when it does
    /// not parse, e.g. `999.0.0.1`: then no request gets anywhere).
    base_url: Option<Url>,
    reference: Reference,
    op: &'static str,
    credentials: Option<Credentials>,
    push: bool,
    /// The `Authorization` value that works, once a challenge was answered.
    auth: Mutex<Option<HeaderValue>>,
}

impl Session {
    pub(crate) fn new(
        http: reqwest::Client,
        reference: &Reference,
        credentials: Option<&Credentials>,
        insecure: &[String],
        push: bool,
    ) -> Session {
        let base = format!(
            "{}://{}/v2/{}",
            scheme(&reference.registry, insecure),
            reference.registry,
            reference.repository
        );
        let base_url = Url::parse(&base).ok();
        Session {
            http,
            base,
            base_url,
            reference: reference.clone(),
            op: if push { "push" } else { "pull" },
            credentials: credentials.cloned(),
            push,
            auth: Mutex::new(None),
        }
    }

    pub(crate) fn err(&self, reason: Reason) -> Error {
        Error::Image {
            op: self.op,
            image: self.reference.to_string(),
            reason,
        }
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        if e.is_connect() {
            self.err(Reason::Unreachable {
                registry: self.reference.registry.clone(),
                cause: root_cause(&e),
            })
        } else {
            self.err(Reason::Transfer(format!(
                "request to registry {} failed: {}",
                self.reference.registry,
                root_cause(&e)
            )))
        }
    }

    /// Sends the request `build` makes, answering one auth challenge (Bearer token or Basic)
    /// and sending it again. `build` runs per attempt, so bodies are made afresh. The
    /// registry's auth goes only to its own origin, not to an upload location elsewhere
    /// (reqwest drops it on redirects to another host itself).
    async fn send(
        &self,
        build: impl Fn() -> Result<RequestBuilder, Error>,
    ) -> Result<Response, Error> {
        for attempt in 0..2 {
            let mut req = build()?.build().map_err(|e| self.transport(e))?;
            let auth = self.auth.lock().expect("auth lock").clone();
            let own = self.base_url.as_ref().map(Url::origin);
            if let Some(auth) = auth.filter(|_| Some(req.url().origin()) == own) {
                req.headers_mut().insert(AUTHORIZATION, auth);
            }
            let resp = self
                .http
                .execute(req)
                .await
                .map_err(|e| self.transport(e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match challenge {
                Some(c) if attempt == 0 => self.authenticate(&c).await?,
                _ => break,
            }
        }
        Err(self.err(Reason::Unauthorized(401)))
    }

    /// Answers a `WWW-Authenticate` challenge: Basic sends the credentials; Bearer asks the
    /// realm for a token (with the credentials, when there are any) for this repository.
    async fn authenticate(&self, challenge: &str) -> Result<(), Error> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let basic = self.credentials.as_ref().map(|c| {
            use base64::Engine;
            let pair = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let value = if scheme.eq_ignore_ascii_case("basic") {
            basic.ok_or_else(|| self.err(Reason::Unauthorized(401)))?
        } else if scheme.eq_ignore_ascii_case("bearer") {
            format!("Bearer {}", self.token(params, basic).await?)
        } else {
            return Err(self.err(Reason::Unsupported(format!(
                "the registry asks for unknown auth scheme {scheme}"
            ))));
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            self.err(Reason::Unsupported(
                "the token service answered a token unfit for a header".into(),
            ))
        })?;
        value.set_sensitive(true);
        *self.auth.lock().expect("auth lock") = Some(value);
        Ok(())
    }

    /// Whether the credentials may go to token realm `realm`: over https, or over plain http
    /// only to the host of a registry spoken to over http anyway (loopback or listed as
    /// insecure), so a challenge cannot send them in clear text elsewhere.
    fn may_send_credentials(&self, realm: &Url) -> bool {
        realm.scheme() == "https"
            || self
                .base_url
                .as_ref()
                .is_some_and(|b| b.scheme() == "http" && realm.host_str() == b.host_str())
    }

    async fn token(&self, params: &str, basic: Option<String>) -> Result<String, Error> {
        let params = challenge_params(params);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let realm = get("realm").ok_or_else(|| {
            self.err(Reason::Unsupported(
                "the registry's Bearer challenge has no realm".into(),
            ))
        })?;
        let realm_url = Url::parse(&realm).map_err(|e| {
            self.err(Reason::Unsupported(format!(
                "the registry's token realm {realm:?} is not a URL: {e}"
            )))
        })?;
        if basic.is_some() && !self.may_send_credentials(&realm_url) {
            return Err(self.err(Reason::Unsupported(format!(
                "credentials are not sent to token realm {realm}: not https, nor the \
                 registry's own insecure host"
            ))));
        }
        let actions = if self.push { "pull,push" } else { "pull" };
        let scope = get("scope")
            .unwrap_or_else(|| format!("repository:{}:{actions}", self.reference.repository));
        let mut query = vec![("scope", scope)];
        if let Some(service) = get("service") {
            query.push(("service", service));
        }
        let mut req = self.http.get(realm_url).query(&query);
        if let Some(basic) = basic {
            req = req.header(AUTHORIZATION, basic);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        if matches!(resp.status().as_u16(), 401 | 403) {
            return Err(self.err(Reason::Unauthorized(resp.status().as_u16())));
        }
        let resp = self.check(resp, "a token").await?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = self
            .body(resp, MAX_SMALL_BODY, "the token response")
            .await?;
        let t: Token = serde_json::from_slice(&body).map_err(|e| {
            self.err(Reason::Unsupported(format!(
                "the token service answered no JSON token: {e}"
            )))
        })?;
        t.token.or(t.access_token).ok_or_else(|| {
            self.err(Reason::Unsupported(
                "the token service answered no token".into(),
            ))
        })
    }

    /// Turns an error status into the matching [`Reason`].
    async fn check(&self, resp: Response, what: &str) -> Result<Response, Error> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if matches!(status.as_u16(), 401 | 403) {
            return Err(self.err(Reason::Unauthorized(status.as_u16())));
        }
        // Only for the message: a cut-off or broken body is fine.
        let body = match read_up_to(resp, MAX_SMALL_BODY).await {
            Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        };
        let unknown = ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]
            .iter()
            .any(|c| body.contains(c));
        if status == StatusCode::NOT_FOUND && (what.starts_with("manifest") || unknown) {
            return Err(self.err(Reason::ManifestUnknown));
        }
        let message: String = body.trim().chars().take(200).collect();
        Err(self.err(Reason::Status {
            status: status.as_u16(),
            what: what.to_string(),
            message,
        }))
    }

    /// The body of `resp`, failing (on `what`) when it is longer than `limit` bytes.
    async fn body(&self, resp: Response, limit: usize, what: &str) -> Result<Vec<u8>, Error> {
        let (body, complete) = read_up_to(resp, limit)
            .await
            .map_err(|e| self.transport(e))?;
        if !complete {
            return Err(self.err(Reason::Unsupported(format!(
                "{what} is larger than the limit of {limit} bytes"
            ))));
        }
        Ok(body)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// A manifest (or list/index) by tag or digest: its bytes, content type and digest; a
    /// manifest asked for by digest must hash to it.
    pub(crate) async fn manifest(&self, r: &str) -> Result<(Vec<u8>, String, String), Error> {
        // A tag has no ':', so anything with one is a digest, and only sha256 is checkable.
        if r.contains(':') && digest_hex(r).is_none() {
            return Err(self.err(Reason::Unsupported(format!(
                "unsupported manifest digest {r:?}"
            ))));
        }
        let url = self.url(&format!("manifests/{r}"));
        let resp = self
            .send(|| Ok(self.http.get(&url).header(ACCEPT, accept_header())))
            .await?;
        let resp = self.check(resp, &format!("manifest {r}")).await?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = self
            .body(resp, MAX_MANIFEST, &format!("manifest {r}"))
            .await?;
        let digest = sha256_digest(&body);
        if r.contains(':') && digest != r {
            return Err(self.err(Reason::DigestMismatch(r.to_string())));
        }
        Ok((body, content_type, digest))
    }

    /// Downloads blob `d` to `dest`, through `partial`: a partial file left by a broken
    /// transfer is resumed with a Range request (a registry that ignores it sends it all
    /// again). A blob that hashes to something else, or grows beyond the descriptor's size
    /// (the download stops there), is removed and is an error.
    pub(crate) async fn download_blob(
        &self,
        d: &Descriptor,
        partial: &Path,
        dest: &Path,
    ) -> Result<u64, Error> {
        let digest = d.digest.as_str();
        let io =
            |e: std::io::Error| self.err(Reason::Transfer(format!("writing blob {digest}: {e}")));
        let (mut hasher, mut have) = hash_partial(partial).await;
        if have > d.size {
            let _ = tokio::fs::remove_file(partial).await;
            (hasher, have) = (sha2::Sha256::new(), 0);
        }
        let mut resp = self.blob_response(digest, have).await?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // The partial file is longer than the blob: not a prefix of it.
            let _ = tokio::fs::remove_file(partial).await;
            resp = self.blob_response(digest, 0).await?;
        }
        let resumed = resp.status() == StatusCode::PARTIAL_CONTENT;
        let mut resp = self.check(resp, &format!("blob {digest}")).await?;
        if !resumed {
            hasher = sha2::Sha256::new();
            have = 0;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(resumed)
            .write(true)
            .truncate(!resumed)
            .open(partial)
            .await
            .map_err(io)?;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    // Kept: the next pull resumes from here.
                    let _ = file.flush().await;
                    return Err(self.err(Reason::Transfer(format!(
                        "download of blob {digest} broke off: {}",
                        root_cause(&e)
                    ))));
                }
            };
            have += chunk.len() as u64;
            if have > d.size {
                drop(file);
                let _ = tokio::fs::remove_file(partial).await;
                return Err(self.err(Reason::Transfer(format!(
                    "blob {digest} is larger than the {} bytes its manifest says",
                    d.size
                ))));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        drop(file);
        if format!("sha256:{:x}", hasher.finalize()) != digest {
            let _ = tokio::fs::remove_file(partial).await;
            return Err(self.err(Reason::DigestMismatch(digest.to_string())));
        }
        tokio::fs::rename(partial, dest).await.map_err(io)?;
        Ok(have)
    }

    /// GET of a blob, from byte `from` on (a Range request) when that is not 0.
    async fn blob_response(&self, digest: &str, from: u64) -> Result<Response, Error> {
        let url = self.url(&format!("blobs/{digest}"));
        self.send(|| {
            let req = self.http.get(&url);
            Ok(if from > 0 {
                req.header(RANGE, format!("bytes={from}-"))
            } else {
                req
            })
        })
        .await
    }

    /// Whether the registry has blob `digest` in this repository already.
    pub(crate) async fn blob_exists(&self, digest: &str) -> Result<bool, Error> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send(|| Ok(self.http.head(&url))).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.check(resp, &format!("blob {digest}")).await?;
        Ok(true)
    }

    /// A monolithic upload: POST for an upload URL, then PUT the file (read from its start)
    /// with `?digest=`.
    pub(crate) async fn upload_blob(
        &self,
        digest: &str,
        file: &std::fs::File,
    ) -> Result<(), Error> {
        let start = self.url("blobs/uploads/");
        let resp = self.send(|| Ok(self.http.post(&start))).await?;
        let resp = self.check(resp, "a blob upload").await?;
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                self.err(Reason::Unsupported(
                    "the registry gave no upload location".into(),
                ))
            })?;
        let mut url = reqwest::Url::parse(&self.base)
            .and_then(|base| base.join(location))
            .map_err(|e| self.err(Reason::Unsupported(format!("bad upload location: {e}"))))?;
        url.query_pairs_mut().append_pair("digest", digest);
        let open_err =
            |e: std::io::Error| self.err(Reason::Transfer(format!("reading blob {digest}: {e}")));
        let resp = self
            .send(|| {
                // A clone shares the offset: attempts run one after the other, each from 0.
                let mut f = file.try_clone().map_err(open_err)?;
                std::io::Seek::rewind(&mut f).map_err(open_err)?;
                let len = f.metadata().map_err(open_err)?.len();
                let body = reqwest::Body::from(tokio::fs::File::from_std(f));
                Ok(self
                    .http
                    .request(Method::PUT, url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, len)
                    .body(body))
            })
            .await?;
        self.check(resp, &format!("the upload of blob {digest}"))
            .await?;
        Ok(())
    }

    /// PUTs a manifest under `tag` with its media type; returns its digest.
    pub(crate) async fn put_manifest(
        &self,
        tag: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, Error> {
        let url = self.url(&format!("manifests/{tag}"));
        let resp = self
            .send(|| {
                Ok(self
                    .http
                    .put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone()))
            })
            .await?;
        self.check(resp, "the manifest upload").await?;
        Ok(sha256_digest(&bytes))
    }
}

/// Reads the body of `resp` up to `limit` bytes; the flag says whether that was all of it
/// (a registry must not make the agent hold an unbounded body in memory).
async fn read_up_to(mut resp: Response, limit: usize) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            let room = limit - body.len();
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// The hash state and length of a partial download (none: empty), read in chunks so a large
/// one is not held in memory.
async fn hash_partial(partial: &Path) -> (sha2::Sha256, u64) {
    use tokio::io::AsyncReadExt;
    let mut hasher = sha2::Sha256::new();
    let mut have = 0u64;
    if let Ok(mut f) = tokio::fs::File::open(partial).await {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    have += n as u64;
                }
                // Unreadable: start over (the open below truncates it).
                Err(_) => return (sha2::Sha256::new(), 0),
            }
        }
    }
    (hasher, have)
}

/// `realm="https://auth",service="registry",scope="repository:a:pull"` as pairs.
fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, next)) => (v, next),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        out.push((key, value.to_string()));
        rest = next.trim_start_matches(',').trim();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let p = challenge_params(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[1].1, "registry.docker.io");
        assert_eq!(p[2].1, "repository:library/busybox:pull");
        assert_eq!(challenge_params("realm=x, service=y")[1].1, "y");
    }

    #[test]
    fn schemes() {
        let none: Vec<String> = vec![];
        assert_eq!(scheme("127.0.0.1:5000", &none), "http");
        assert_eq!(scheme("localhost", &none), "http");
        assert_eq!(scheme("[::1]:5000", &none), "http");
        assert_eq!(scheme("registry-1.docker.io", &none), "https");
        assert_eq!(scheme("10.0.0.5:5000", &["10.0.0.5:5000".into()]), "http");
    }
}
