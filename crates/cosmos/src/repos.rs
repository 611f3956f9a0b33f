//! The package repositories: their ordered list, kept in the store (ZooKeeper in an HA
//! cluster, so every master's Cosmos sees one list), and their packages, fetched by URI and
//! kept for a minute.
//!
//! A repository is added only after it was fetched and read whole, so the list never holds
//! one that cannot be used. The list starts as the shipped repository alone, which the
//! binary carries (`builtin:universe`): Universe's public URI is gone, and a cluster needs no
//! network outside itself to install the shipped packages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dcos_store::{AnyStore, CreateMode, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::CosmosError;
use crate::media;
use crate::universe::{self, Package};

/// Where the list is stored.
const LIST_PATH: &str = "/cosmos/repositories";
/// How long fetched packages are used before the repository is fetched again.
const FRESH: Duration = Duration::from_secs(60);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest repository read.
pub const MAX_REPOSITORY: usize = 64 * 1024 * 1024;
/// How many repositories the list may hold.
const MAX_REPOSITORIES: usize = 64;
/// Compare-and-set attempts before a change gives up.
const CAS_ATTEMPTS: usize = 16;

/// How Cosmos names itself to repository servers.
const USER_AGENT: &str = "cosmos/0.5.4 dcos/1.11.0";
/// How many package assets are fetched at once (each is held in memory, up to its limit).
const ASSETS_AT_ONCE: usize = 4;

/// A URI as logs may show it: without the user information of `user:password@host`.
pub fn redact(uri: &str) -> String {
    match reqwest::Url::parse(uri) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => uri.to_string(),
    }
}

/// The URI of the repository the binary carries.
pub const BUILTIN_URI: &str = "builtin:universe";
/// The repository the binary carries.
const BUILTIN: &str = include_str!("../repo/universe.json");

/// A repository in the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    /// The name users give it.
    pub name: String,
    /// Where its packages are.
    pub uri: String,
}

/// The packages of one repository.
pub type Packages = Arc<Vec<Arc<Package>>>;

/// The list, and the packages of its repositories.
pub struct Repositories {
    location: dcos_store::Location,
    /// The store's session. Cosmos keeps no ephemeral node or watch in it, so a session
    /// ZooKeeper closed (expired, or cut off) is replaced by a new one on the next call.
    store: tokio::sync::RwLock<AnyStore>,
    assets: reqwest::Client,
    assets_at_once: tokio::sync::Semaphore,
    client: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Packages)>>,
    builtin: Packages,
}

/// The list a cluster starts with.
pub fn default_list() -> Vec<RepoRef> {
    vec![RepoRef {
        name: "Universe".into(),
        uri: BUILTIN_URI.into(),
    }]
}

fn store_failed(e: dcos_store::Error) -> CosmosError {
    CosmosError::new(
        "ServiceUnavailable",
        format!("The repository list cannot be read or written: {e}"),
    )
    .status(StatusCode::SERVICE_UNAVAILABLE)
}

fn connection(uri: &str, cause: impl std::fmt::Display) -> CosmosError {
    CosmosError::new(
        "RepositoryUriConnection",
        format!("Could not access data at URI [{uri}]"),
    )
    .data(json!({"uri": uri, "cause": cause.to_string()}))
}

/// Checks a URI a user gives: `http(s)://`, `file://` with an absolute path, or the shipped
/// repository's.
fn check_uri(uri: &str) -> Result<(), CosmosError> {
    if uri == BUILTIN_URI {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(uri).map_err(|_| {
        CosmosError::new(
            "RepositoryUriSyntax",
            format!("URI for repository has invalid syntax: [{uri}]"),
        )
        .data(json!({"uri": uri}))
    })?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(()),
        "file" if parsed.to_file_path().is_ok() => Ok(()),
        _ => Err(CosmosError::new(
            "UnsupportedRepositoryUri",
            format!(
                "Repository URI [{uri}] uses an unsupported scheme. Only http, https and file are supported"
            ),
        )
        .data(json!({"uri": uri}))),
    }
}

impl Repositories {
    /// The repositories kept at `location`.
    pub async fn open(location: dcos_store::Location) -> Result<Repositories, dcos_store::Error> {
        let store = location.open().await?;
        let builtin = universe::parse_repository(BUILTIN.as_bytes())
            .expect("the shipped repository is valid (a unit test reads it)");
        Ok(Repositories {
            location,
            store: tokio::sync::RwLock::new(store),
            // Universe servers choose what to answer by the DC/OS version in the user agent.
            client: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .user_agent(USER_AGENT)
                .redirect(reqwest::redirect::Policy::limited(5))
                .build()
                .expect("a plain HTTP client builds"),
            // Package assets come back to the user: no redirect may lead the fetch elsewhere.
            assets: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .user_agent(USER_AGENT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a plain HTTP client builds"),
            assets_at_once: tokio::sync::Semaphore::new(ASSETS_AT_ONCE),
            cache: Mutex::new(HashMap::new()),
            builtin: Arc::new(builtin),
        })
    }

    /// The store's current session.
    async fn store(&self) -> AnyStore {
        self.store.read().await.clone()
    }

    /// Replaces `closed`, a session that ended, with a new one (unless another call did).
    async fn renew(&self, closed: &AnyStore) -> Result<(), CosmosError> {
        let mut current = self.store.write().await;
        if current.session_id() == closed.session_id() {
            *current = self.location.open().await.map_err(store_failed)?;
            tracing::info!("opened a new store session for the repository list");
        }
        Ok(())
    }

    async fn read(&self) -> Result<(Option<i64>, Vec<RepoRef>), CosmosError> {
        let store = self.store().await;
        let got = match store.get(LIST_PATH).await {
            Err(dcos_store::Error::SessionClosed { .. }) => {
                self.renew(&store).await?;
                self.store().await.get(LIST_PATH).await
            }
            other => other,
        };
        match got.map_err(store_failed)? {
            None => Ok((None, default_list())),
            Some((data, stat)) => {
                let list = serde_json::from_slice(&data).map_err(|e| {
                    CosmosError::internal(format!("the stored repository list is not JSON: {e}"))
                })?;
                Ok((Some(stat.version), list))
            }
        }
    }

    /// The list, in order.
    pub async fn list(&self) -> Result<Vec<RepoRef>, CosmosError> {
        Ok(self.read().await?.1)
    }

    /// Applies `change` to the newest list (compare-and-set, retried when another master
    /// wrote meanwhile); its error leaves the list as it was. `applied` tells from a list
    /// whether the change is in it: after a write whose session closed before its answer,
    /// the write may have happened, and the next read decides.
    async fn update(
        &self,
        change: impl Fn(&mut Vec<RepoRef>) -> Result<(), CosmosError>,
        applied: impl Fn(&[RepoRef]) -> bool,
    ) -> Result<Vec<RepoRef>, CosmosError> {
        let mut unsure = false;
        for _ in 0..CAS_ATTEMPTS {
            let (version, mut list) = self.read().await?;
            if unsure && applied(&list) {
                return Ok(list);
            }
            change(&mut list)?;
            let data = serde_json::to_vec(&list).expect("a list of strings serializes");
            let store = self.store().await;
            let written = match version {
                None => store
                    .create_all(LIST_PATH, &data, CreateMode::Persistent)
                    .await
                    .map(|_| ()),
                Some(v) => store.set(LIST_PATH, &data, Some(v)).await.map(|_| ()),
            };
            match written {
                Ok(()) => return Ok(list),
                // Whether the write happened is unknown: the newest list tells.
                Err(dcos_store::Error::SessionClosed { .. }) => {
                    unsure = true;
                    self.renew(&store).await?;
                }
                Err(
                    dcos_store::Error::BadVersion { .. } | dcos_store::Error::NodeExists { .. },
                ) => continue,
                Err(e) => return Err(store_failed(e)),
            }
        }
        Err(CosmosError::new(
            "ConcurrentAccess",
            "The repository list changed too often to apply this change; try again",
        )
        .status(StatusCode::CONFLICT))
    }

    /// Adds a repository at `index` (the end if `None`), after fetching it.
    pub async fn add(
        &self,
        name: &str,
        uri: &str,
        index: Option<i64>,
    ) -> Result<Vec<RepoRef>, CosmosError> {
        if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(CosmosError::new(
                "RepoNameOrUriMissing",
                "A repository needs a name of 1 to 256 printable characters",
            ));
        }
        check_uri(uri)?;
        let present = |list: &[RepoRef]| {
            let by_name = list.iter().any(|r| r.name == name);
            let by_uri = list.iter().any(|r| r.uri == uri);
            let message = match (by_name, by_uri) {
                (true, true) => format!(
                    "Repository name [{name}] and URI [{uri}] are both already present in the list"
                ),
                (true, false) => format!("Repository name [{name}] is already present in the list"),
                (false, true) => format!("Repository URI [{uri}] is already present in the list"),
                (false, false) => return Ok(()),
            };
            Err(CosmosError::new("RepositoryAlreadyPresent", message)
                .data(json!({"name": name, "uri": uri})))
        };
        let bounds = |list: &[RepoRef]| match index {
            Some(i) if i < 0 || i as usize > list.len() => Err(CosmosError::new(
                "RepositoryAddIndexOutOfBounds",
                format!(
                    "Index [{i}] is out of range. Index value must be between 0 and {} inclusive",
                    list.len()
                ),
            )
            .data(json!({"attempted": i, "max": list.len()}))),
            _ if list.len() >= MAX_REPOSITORIES => Err(CosmosError::new(
                "RepositoryAddIndexOutOfBounds",
                format!("The list holds at most {MAX_REPOSITORIES} repositories"),
            )),
            _ => Ok(()),
        };
        // Cheap checks first, then the fetch, then the checks again on the newest list.
        let current = self.list().await?;
        present(&current)?;
        bounds(&current)?;
        self.fetch(uri, true).await?;
        let entry = RepoRef {
            name: name.into(),
            uri: uri.into(),
        };
        let added = self
            .update(
                |list| {
                    present(list)?;
                    bounds(list)?;
                    let at = index.map_or(list.len(), |i| i as usize);
                    list.insert(at, entry.clone());
                    Ok(())
                },
                |list| list.contains(&entry),
            )
            .await;
        if added.is_err() {
            self.evict_unlisted().await;
        }
        added
    }

    /// Drops the fetched packages of repositories no longer (or never) in the list.
    async fn evict_unlisted(&self) {
        let Ok(list) = self.list().await else { return };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|uri, _| list.iter().any(|r| &r.uri == uri));
    }

    /// Removes the repository with `name` or `uri` (both must name the same one if both
    /// are given).
    pub async fn delete(
        &self,
        name: Option<&str>,
        uri: Option<&str>,
    ) -> Result<Vec<RepoRef>, CosmosError> {
        if name.is_none() && uri.is_none() {
            return Err(CosmosError::new(
                "RepoNameOrUriMissing",
                "Must specify either the name or URI of the repository",
            ));
        }
        let matches =
            |r: &RepoRef| name.is_none_or(|n| r.name == n) && uri.is_none_or(|u| r.uri == u);
        let list = self
            .update(|list| {
                let at = list.iter().position(matches);
                let Some(at) = at else {
                    let message = match (name, uri) {
                        (Some(n), Some(u)) => {
                            format!("Neither repository name [{n}] nor URI [{u}] are present in the list")
                        }
                        (Some(n), None) => format!("Repository name [{n}] is not present in the list"),
                        (None, Some(u)) => format!("Repository URI [{u}] is not present in the list"),
                        (None, None) => unreachable!("checked above"),
                    };
                    return Err(CosmosError::new("RepositoryNotPresent", message)
                        .data(json!({"name": name, "uri": uri})));
                };
                list.remove(at);
                Ok(())
            }, |list| !list.iter().any(matches))
            .await?;
        self.evict_unlisted().await;
        Ok(list)
    }

    /// Every repository of the list with its packages, in list order. A repository that
    /// cannot be fetched fails the whole answer, as in Cosmos, unless an earlier fetch of it
    /// is at hand.
    pub async fn packages(&self) -> Result<Vec<(RepoRef, Packages)>, CosmosError> {
        let list = self.list().await?;
        let mut out = Vec::with_capacity(list.len());
        for repo in list {
            let packages = self.fetch(&repo.uri, false).await?;
            out.push((repo, packages));
        }
        Ok(out)
    }

    /// A repository's packages: from the cache while fresh (unless `force`), else fetched;
    /// a failed refetch falls back to what was fetched before.
    async fn fetch(&self, uri: &str, force: bool) -> Result<Packages, CosmosError> {
        if uri == BUILTIN_URI {
            return Ok(self.builtin.clone());
        }
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uri)
            .cloned();
        if let Some((at, packages)) = &cached {
            if !force && at.elapsed() < FRESH {
                return Ok(packages.clone());
            }
        }
        let local = uri.starts_with("file:");
        let fetched = match self.download(uri).await {
            // A large repository takes a while to read: off the request threads.
            Ok(bytes) => tokio::task::spawn_blocking(move || universe::parse_repository(&bytes))
                .await
                .unwrap_or_else(|e| Err(format!("reading stopped: {e}")))
                .map_err(|why| {
                    // What a local file holds is not told: only whether it is a repository.
                    let why = if local {
                        "it is not valid".to_string()
                    } else {
                        why
                    };
                    let uri = redact(uri);
                    CosmosError::new(
                        "InvalidRepository",
                        format!("The repository at [{uri}] is not a Universe repository: {why}"),
                    )
                    .data(json!({"uri": uri}))
                }),
            Err(e) => Err(e),
        };
        match fetched {
            Ok(packages) => {
                let packages = Arc::new(packages);
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(uri.to_string(), (Instant::now(), packages.clone()));
                Ok(packages)
            }
            Err(e) => match cached {
                Some((_, packages)) if !force => {
                    tracing::warn!(uri = %redact(uri), error = e.kind, "cannot refresh a repository; using the last copy");
                    Ok(packages)
                }
                _ => Err(e),
            },
        }
    }

    /// The bytes at `uri` (http, https or file), at most [`MAX_REPOSITORY`].
    async fn download(&self, uri: &str) -> Result<Vec<u8>, CosmosError> {
        // Answers name the URI without its user information (a password may be there); only
        // the request itself uses the whole URI.
        let real = uri;
        let uri = &redact(uri);
        let too_big = || {
            CosmosError::new(
                "InvalidRepository",
                format!("The repository at [{uri}] is larger than {MAX_REPOSITORY} bytes"),
            )
        };
        let url = reqwest::Url::parse(real).map_err(|e| connection(uri, e))?;
        if url.scheme() == "file" {
            // One answer for every way a file cannot be read, so repository URIs cannot
            // probe the master's files.
            let unreadable = || connection(uri, "the file cannot be read as a repository");
            let path = url.to_file_path().map_err(|()| unreadable())?;
            let meta = tokio::fs::metadata(&path).await.map_err(|_| unreadable())?;
            if !meta.is_file() || meta.len() > MAX_REPOSITORY as u64 {
                return Err(unreadable());
            }
            return tokio::fs::read(&path).await.map_err(|_| unreadable());
        }
        let accept = format!(
            "{},{};q=0.9,application/json;q=0.5",
            media::REPO_V4,
            media::REPO_V3
        );
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| connection(uri, e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(CosmosError::new(
                "GenericHttpError",
                format!(
                    "Unexpected down stream http error: GET {uri} {}",
                    status.as_u16()
                ),
            )
            .data(json!({"uri": uri, "status": status.as_u16()})));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Some(kind) = media::MediaType::parse(&content_type) {
            let json = kind.essence.ends_with("json")
                || kind.essence == "text/plain"
                || kind.essence == "application/octet-stream";
            if !json {
                return Err(CosmosError::new(
                    "UnsupportedContentType",
                    format!(
                        "Unsupported Content-Type: {content_type} Supported: {}, {}",
                        media::REPO_V4,
                        media::REPO_V3
                    ),
                )
                .data(json!({"contentType": content_type,
                    "supported": [media::REPO_V4, media::REPO_V3]})));
            }
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| connection(uri, e.without_url()))?
        {
            if bytes.len() + chunk.len() > MAX_REPOSITORY {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Fetches `url` for `/package/resource`, when a package of the list names it, up to
    /// `limit` bytes: its content type and bytes.
    pub async fn resource(
        &self,
        url: &str,
        limit: usize,
    ) -> Result<(Option<String>, Vec<u8>), CosmosError> {
        let named = self
            .packages()
            .await?
            .iter()
            .flat_map(|(_, packages)| packages.iter())
            .any(|p| p.resource_urls().iter().any(|u| u == url));
        if !named {
            return Err(CosmosError::new(
                "Forbidden",
                format!("No package of the repositories names the resource [{url}]"),
            )
            .status(StatusCode::FORBIDDEN)
            .data(json!({"url": url})));
        }
        let _turn = self
            .assets_at_once
            .acquire()
            .await
            .map_err(|_| CosmosError::internal("the asset fetches are closed"))?;
        let mut response = self
            .assets
            .get(url)
            .send()
            .await
            .map_err(|e| connection(url, e))?;
        if !response.status().is_success() {
            return Err(CosmosError::new(
                "GenericHttpError",
                format!(
                    "Unexpected down stream http error: GET {url} {}",
                    response.status().as_u16()
                ),
            )
            .status(StatusCode::BAD_GATEWAY));
        }
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| connection(url, e))? {
            if bytes.len() + chunk.len() > limit {
                return Err(CosmosError::new(
                    "ResourceTooLarge",
                    format!("The resource [{url}] is larger than {limit} bytes"),
                )
                .status(StatusCode::FORBIDDEN));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((kind, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn repositories() -> (tempfile::TempDir, Repositories) {
        let dir = tempfile::tempdir().unwrap();
        let location = dcos_store::Location::Embedded(dir.path().join("cosmos.redb"));
        (dir, Repositories::open(location).await.unwrap())
    }

    #[test]
    fn the_shipped_repository_is_valid() {
        let packages = universe::parse_repository(BUILTIN.as_bytes()).unwrap();
        assert!(packages.len() >= 4);
        for p in packages.iter() {
            assert!(p.template().is_some(), "{} runs as an app", p.name);
            assert!(p.config().is_some(), "{} has options", p.name);
        }
    }

    #[tokio::test]
    async fn the_list_starts_with_the_shipped_repository_and_changes_in_the_store() {
        let (dir, repos) = repositories().await;
        assert_eq!(repos.list().await.unwrap(), default_list());
        let file = dir.path().join("repo.json");
        std::fs::write(&file, BUILTIN).unwrap();
        let uri = format!("file://{}", file.display());
        let list = repos.add("local", &uri, Some(0)).await.unwrap();
        assert_eq!(list[0].name, "local");
        assert_eq!(list[1], default_list()[0]);
        let e = repos.add("local", "file:///x", None).await.unwrap_err();
        assert_eq!(e.kind, "RepositoryAlreadyPresent");
        let e = repos.add("other", &uri, None).await.unwrap_err();
        assert_eq!(e.kind, "RepositoryAlreadyPresent");
        let e = repos.add("third", "file:///x", Some(9)).await.unwrap_err();
        assert_eq!(e.kind, "RepositoryAddIndexOutOfBounds");
        assert_eq!(repos.packages().await.unwrap().len(), 2);
        let list = repos.delete(Some("local"), None).await.unwrap();
        assert_eq!(list, default_list());
        let e = repos.delete(Some("local"), None).await.unwrap_err();
        assert_eq!(e.kind, "RepositoryNotPresent");
        assert_eq!(
            repos.delete(None, None).await.unwrap_err().kind,
            "RepoNameOrUriMissing"
        );
    }

    #[tokio::test]
    async fn a_repository_that_cannot_be_used_is_not_added() {
        let (dir, repos) = repositories().await;
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"packages": [{"name": "x"}]}"#).unwrap();
        let cases = [
            (format!("file://{}", bad.display()), "InvalidRepository"),
            (
                format!("file://{}", dir.path().join("none").display()),
                "RepositoryUriConnection",
            ),
            (
                format!("file://{}", dir.path().display()),
                "RepositoryUriConnection",
            ),
            (
                "ftp://example.com/repo".to_string(),
                "UnsupportedRepositoryUri",
            ),
            ("not a uri".to_string(), "RepositoryUriSyntax"),
            (
                "http://127.0.0.1:1/repo".to_string(),
                "RepositoryUriConnection",
            ),
        ];
        for (uri, kind) in cases {
            let e = repos.add("bad", &uri, None).await.unwrap_err();
            assert_eq!(e.kind, kind, "{uri}: {e}");
        }
        assert_eq!(repos.list().await.unwrap(), default_list());
    }
}
