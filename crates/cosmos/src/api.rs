//! The package API on 7070: Cosmos 0.5's endpoints, each with its request and answer media
//! types, over the repositories ([`crate::repos`]) and Marathon ([`crate::marathon`]).

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::apps::{self, Installed};
use crate::error::CosmosError;
use crate::marathon::{Auth, Marathon};
use crate::media::{self, package_type, service_type};
use crate::options;
use crate::repos::{Packages, RepoRef, Repositories};
use crate::universe::Package;

/// The largest package asset `/package/resource` passes on.
pub const MAX_RESOURCE: usize = 100 * 1024 * 1024;

/// What the API works on.
pub struct Cosmos {
    /// The repositories.
    pub repos: Repositories,
    /// Where the packages run.
    pub marathon: Marathon,
    /// The last search answers, for the repositories they were made from.
    searches: std::sync::Mutex<SearchCache>,
}

impl Cosmos {
    /// Cosmos over `repos`, installing through `marathon`.
    pub fn new(repos: Repositories, marathon: Marathon) -> Cosmos {
        Cosmos {
            repos,
            marathon,
            searches: Default::default(),
        }
    }
}

/// Search answers by query, valid while the repositories are the same fetches: a search is
/// the same text until a repository is added, removed, reordered or fetched anew, and the
/// answer of a large repository takes far longer to make than to send.
#[derive(Default)]
struct SearchCache {
    /// Each repository's URI and its fetched packages (held, so their identity stays theirs).
    source: Vec<(String, Packages)>,
    answers: std::collections::HashMap<String, Bytes>,
}

impl SearchCache {
    fn made_from(&self, all: &[(RepoRef, Packages)]) -> bool {
        self.source.len() == all.len()
            && self
                .source
                .iter()
                .zip(all)
                .all(|((uri, p), (repo, q))| uri == &repo.uri && Arc::ptr_eq(p, q))
    }
}

/// How many queries' answers are kept.
const SEARCHES_KEPT: usize = 64;

/// What an endpoint answers: JSON made now, or text made before.
pub enum Reply {
    /// JSON to serialize.
    Json(Value),
    /// An answer's text, kept.
    Text(Bytes),
}

impl From<Value> for Reply {
    fn from(v: Value) -> Reply {
        Reply::Json(v)
    }
}

/// One call's context: the answer type `Accept` chose, the caller's credentials.
pub struct Call {
    answer: &'static str,
    auth: Auth,
}

/// Reads a request: `Accept` first, then `Content-Type`, then the JSON body.
fn prepare<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    request_type: &str,
    offers: &[&'static str],
) -> Result<(T, &'static str), CosmosError> {
    let answer = media::negotiate(headers, offers)?;
    media::check_content_type(headers, request_type)?;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        CosmosError::new("json_error", format!("Json parsing failure '{e}'"))
            .data(json!({"type": "parse", "reason": e.to_string()}))
    })?;
    let request = serde_json::from_value(value).map_err(|e| {
        CosmosError::new("json_error", format!("Json decoding failure '{e}'"))
            .data(json!({"type": "decode", "reason": e.to_string()}))
    })?;
    Ok((request, answer))
}

fn answer(kind: &'static str, body: Reply) -> Response {
    let text = match body {
        Reply::Json(v) => Bytes::from(v.to_string()),
        Reply::Text(t) => t,
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
        text,
    )
        .into_response()
}

/// A POST endpoint: `request_type` in, one of `offers` out, `run` in between.
fn endpoint<T, F, Fut, R>(
    request_type: &'static str,
    offers: &'static [&'static str],
    run: F,
) -> MethodRouter<Arc<Cosmos>>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Arc<Cosmos>, T, Call) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, CosmosError>> + Send + 'static,
    R: Into<Reply>,
{
    post(
        move |State(cosmos): State<Arc<Cosmos>>, headers: HeaderMap, body: Bytes| async move {
            let (request, kind) = match prepare::<T>(&headers, &body, request_type, offers) {
                Ok(prepared) => prepared,
                Err(e) => return e.into_response(),
            };
            let call = Call {
                answer: kind,
                auth: headers.get(header::AUTHORIZATION).cloned(),
            };
            match run(cosmos, request, call).await {
                Ok(body) => answer(kind, body.into()),
                Err(e) => e.into_response(),
            }
        },
    )
}

/// The package API's routes.
pub fn routes() -> axum::Router<Arc<Cosmos>> {
    axum::Router::new()
        .route(
            "/package/list",
            endpoint(
                package_type!("list-request", "v1"),
                &[package_type!("list-response", "v1")],
                list,
            ),
        )
        .route(
            "/package/search",
            endpoint(
                package_type!("search-request", "v1"),
                &[package_type!("search-response", "v1")],
                search,
            ),
        )
        .route(
            "/package/describe",
            endpoint(
                package_type!("describe-request", "v1"),
                &[DESCRIBE_V3, DESCRIBE_V2],
                describe,
            ),
        )
        .route(
            "/package/list-versions",
            endpoint(
                package_type!("list-versions-request", "v1"),
                &[package_type!("list-versions-response", "v1")],
                list_versions,
            ),
        )
        .route(
            "/package/install",
            endpoint(
                package_type!("install-request", "v1"),
                &[INSTALL_V2, INSTALL_V1],
                install,
            ),
        )
        .route(
            "/package/render",
            endpoint(
                package_type!("render-request", "v1"),
                &[package_type!("render-response", "v1")],
                render,
            ),
        )
        .route(
            "/package/uninstall",
            endpoint(
                package_type!("uninstall-request", "v1"),
                &[package_type!("uninstall-response", "v1")],
                uninstall,
            ),
        )
        .route(
            "/package/repository/list",
            endpoint(
                package_type!("repository.list-request", "v1"),
                &[package_type!("repository.list-response", "v1")],
                repo_list,
            ),
        )
        .route(
            "/package/repository/add",
            endpoint(
                package_type!("repository.add-request", "v1"),
                &[package_type!("repository.add-response", "v1")],
                repo_add,
            ),
        )
        .route(
            "/package/repository/delete",
            endpoint(
                package_type!("repository.delete-request", "v1"),
                &[package_type!("repository.delete-response", "v1")],
                repo_delete,
            ),
        )
        .route(
            "/service/describe",
            endpoint(
                service_type!("describe-request"),
                &[service_type!("describe-response")],
                service_describe,
            ),
        )
        .route(
            "/service/update",
            endpoint(
                service_type!("update-request"),
                &[service_type!("update-response")],
                service_update,
            ),
        )
        .route("/package/resource", axum::routing::get(resource))
}

const DESCRIBE_V3: &str = package_type!("describe-response", "v3");
const DESCRIBE_V2: &str = package_type!("describe-response", "v2");
const INSTALL_V2: &str = package_type!("install-response", "v2");
const INSTALL_V1: &str = package_type!("install-response", "v1");

/// Finds a package: the first repository, in list order, with `name` (in `version`, or its
/// highest release).
fn find(
    all: &[(RepoRef, Packages)],
    name: &str,
    version: Option<&str>,
) -> Result<(RepoRef, Arc<Package>), CosmosError> {
    let mut known = false;
    for (repo, packages) in all {
        let mut candidates = packages.iter().filter(|p| p.name == name).peekable();
        if candidates.peek().is_none() {
            continue;
        }
        known = true;
        let found = match version {
            Some(v) => candidates.find(|p| p.version == v),
            None => candidates.max_by_key(|p| p.release_version),
        };
        if let Some(p) = found {
            return Ok((repo.clone(), p.clone()));
        }
    }
    Err(match version {
        Some(v) if known => CosmosError::version_not_found(name, v),
        _ => CosmosError::package_not_found(name),
    })
}

/// Every package name with its versions in the first repository that has it, by release:
/// one pass over the repositories.
fn by_name(all: &[(RepoRef, Packages)]) -> std::collections::BTreeMap<String, Vec<Arc<Package>>> {
    let mut names: std::collections::BTreeMap<String, (usize, Vec<Arc<Package>>)> =
        Default::default();
    for (index, (_, packages)) in all.iter().enumerate() {
        for p in packages.iter() {
            let (first, versions) = names
                .entry(p.name.clone())
                .or_insert_with(|| (index, Vec::new()));
            if *first == index {
                versions.push(p.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|(name, (_, mut versions))| {
            versions.sort_by_key(|p| p.release_version);
            (name, versions)
        })
        .collect()
}

/// The versions of `name` in the first repository that has it, by release.
fn versions_of(all: &[(RepoRef, Packages)], name: &str) -> Vec<Arc<Package>> {
    let mut versions: Vec<Arc<Package>> = all
        .iter()
        .map(|(_, packages)| {
            packages
                .iter()
                .filter(|p| p.name == name)
                .cloned()
                .collect::<Vec<_>>()
        })
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    versions.sort_by_key(|p| p.release_version);
    versions
}

fn release_map(versions: &[Arc<Package>]) -> Map<String, Value> {
    versions
        .iter()
        .map(|p| {
            (
                p.version.clone(),
                Value::String(p.release_version.to_string()),
            )
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRequest {
    package_name: Option<String>,
    app_id: Option<String>,
}

async fn installed_apps(cosmos: &Cosmos, auth: &Auth) -> Result<Vec<Installed>, CosmosError> {
    Ok(cosmos
        .marathon
        .apps(auth)
        .await?
        .iter()
        .filter_map(apps::installed)
        .collect())
}

async fn list(cosmos: Arc<Cosmos>, request: ListRequest, call: Call) -> Result<Value, CosmosError> {
    // An id that cannot be an app's matches none (Cosmos answers an empty list).
    let app_id = match request.app_id.as_deref().map(apps::app_path).transpose() {
        Ok(id) => id,
        Err(_) => return Ok(json!({"packages": []})),
    };
    let mut found: Vec<Installed> = installed_apps(&cosmos, &call.auth)
        .await?
        .into_iter()
        .filter(|i| request.package_name.as_ref().is_none_or(|n| &i.name == n))
        .filter(|i| app_id.as_ref().is_none_or(|id| &i.app_id == id))
        .collect();
    found.sort_by(|a, b| (&a.name, &a.app_id).cmp(&(&b.name, &b.app_id)));
    let packages: Vec<Value> = found
        .into_iter()
        .map(|i| {
            let mut information = json!({"packageDefinition": i.metadata});
            if let Some(resource) = i.package.as_ref().and_then(|p| p.get("resource")) {
                information["resourceDefinition"] = resource.clone();
            }
            json!({"appId": i.app_id, "packageInformation": information})
        })
        .collect();
    Ok(json!({"packages": packages}))
}

#[derive(Deserialize)]
struct SearchRequest {
    query: Option<String>,
}

async fn search(
    cosmos: Arc<Cosmos>,
    request: SearchRequest,
    _: Call,
) -> Result<Reply, CosmosError> {
    let all = cosmos.repos.packages().await?;
    // One key per query as it matches: trimmed, lowercase.
    let query = request.query.unwrap_or_default().trim().to_lowercase();
    let lock = || cosmos.searches.lock().unwrap_or_else(|e| e.into_inner());
    {
        let cache = lock();
        if cache.made_from(&all) {
            if let Some(text) = cache.answers.get(&query) {
                return Ok(Reply::Text(text.clone()));
            }
        }
    }
    let text = Bytes::from(search_answer(&all, &query).to_string());
    let mut cache = lock();
    if !cache.made_from(&all) {
        *cache = SearchCache {
            source: all
                .iter()
                .map(|(repo, packages)| (repo.uri.clone(), packages.clone()))
                .collect(),
            answers: Default::default(),
        };
    }
    if cache.answers.len() >= SEARCHES_KEPT {
        cache.answers.clear();
    }
    cache.answers.insert(query, text.clone());
    Ok(Reply::Text(text))
}

/// The answer to a search of `query` over `all`.
fn search_answer(all: &[(RepoRef, Packages)], query: &str) -> Value {
    let mut results = Vec::new();
    for versions in by_name(all).into_values() {
        let Some(current) = versions.last() else {
            continue;
        };
        if !current.matches(query) {
            continue;
        }
        let field = |key: &str| current.get(key).cloned();
        let mut entry = json!({
            "name": current.name,
            "currentVersion": current.version,
            "versions": release_map(&versions),
            "description": field("description"),
            "framework": field("framework").unwrap_or(Value::Bool(false)),
            "tags": field("tags").unwrap_or_else(|| json!([])),
            "selected": field("selected").unwrap_or(Value::Bool(false)),
        });
        if let Some(images) = current.get("resource").and_then(|r| r.get("images")) {
            entry["images"] = images.clone();
        }
        results.push(entry);
    }
    // Selected packages first, then by name, as Cosmos orders them.
    results.sort_by(|a, b| {
        let key = |p: &Value| {
            (
                p["selected"] != true,
                p["name"].as_str().map(str::to_string),
            )
        };
        key(a).cmp(&key(b))
    });
    json!({"packages": results})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRequest {
    package_name: String,
    package_version: Option<String>,
}

async fn describe(
    cosmos: Arc<Cosmos>,
    request: DescribeRequest,
    call: Call,
) -> Result<Value, CosmosError> {
    let all = cosmos.repos.packages().await?;
    let (_, package) = find(
        &all,
        &request.package_name,
        request.package_version.as_deref(),
    )?;
    Ok(if call.answer == DESCRIBE_V2 {
        package.describe_v2()
    } else {
        json!({"package": package.json()})
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListVersionsRequest {
    package_name: String,
    #[allow(dead_code)]
    include_package_versions: bool,
}

async fn list_versions(
    cosmos: Arc<Cosmos>,
    request: ListVersionsRequest,
    _: Call,
) -> Result<Value, CosmosError> {
    let all = cosmos.repos.packages().await?;
    let versions = versions_of(&all, &request.package_name);
    if versions.is_empty() {
        return Err(CosmosError::package_not_found(&request.package_name));
    }
    Ok(json!({"results": release_map(&versions)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstallRequest {
    package_name: String,
    package_version: Option<String>,
    options: Option<Value>,
    app_id: Option<String>,
}

/// The package and its rendered app for an install or a render.
async fn prepare_app(
    cosmos: &Cosmos,
    request: &InstallRequest,
) -> Result<(Arc<Package>, Option<apps::Rendered>), CosmosError> {
    let all = cosmos.repos.packages().await?;
    let (repo, package) = find(
        &all,
        &request.package_name,
        request.package_version.as_deref(),
    )?;
    let user = options::user_options(request.options.as_ref())?;
    let rendered = apps::render(&package, &repo.uri, &user, request.app_id.as_deref())?;
    Ok((package, rendered))
}

async fn install(
    cosmos: Arc<Cosmos>,
    request: InstallRequest,
    call: Call,
) -> Result<Value, CosmosError> {
    let (package, rendered) = prepare_app(&cosmos, &request).await?;
    let mut out = json!({"packageName": package.name, "packageVersion": package.version});
    if let Some(rendered) = rendered {
        let app = Value::Object(rendered.app);
        cosmos.marathon.create(&app, &call.auth).await?;
        out["appId"] = app["id"].clone();
        tracing::info!(package = %package.name, version = %package.version, app = %app["id"], "installed a package");
    }
    if call.answer == INSTALL_V2 {
        if let Some(notes) = package.get("postInstallNotes") {
            out["postInstallNotes"] = notes.clone();
        }
        if let Some(cli) = package.get("resource").and_then(|r| r.get("cli")) {
            out["cli"] = cli.clone();
        }
    }
    Ok(out)
}

async fn render(
    cosmos: Arc<Cosmos>,
    request: InstallRequest,
    _: Call,
) -> Result<Value, CosmosError> {
    let (package, rendered) = prepare_app(&cosmos, &request).await?;
    let Some(rendered) = rendered else {
        return Err(CosmosError::new(
            "ServiceMarathonTemplateNotFound",
            format!(
                "Package: [{}] version: [{}] does not have a Marathon template defined and can not be rendered",
                package.name, package.version
            ),
        )
        .data(json!({"packageName": package.name, "packageVersion": package.version})));
    };
    Ok(json!({"marathonJson": rendered.app}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UninstallRequest {
    package_name: String,
    app_id: Option<String>,
    all: Option<bool>,
}

async fn uninstall(
    cosmos: Arc<Cosmos>,
    request: UninstallRequest,
    call: Call,
) -> Result<Value, CosmosError> {
    let name = &request.package_name;
    let app_id = request.app_id.as_deref().map(apps::app_path).transpose()?;
    let installs: Vec<Installed> = installed_apps(&cosmos, &call.auth)
        .await?
        .into_iter()
        .filter(|i| &i.name == name)
        .collect();
    if installs.is_empty() {
        return Err(CosmosError::package_not_installed(name));
    }
    let chosen: Vec<&Installed> = match (&app_id, request.all.unwrap_or(false)) {
        (Some(id), _) => {
            let found: Vec<&Installed> = installs.iter().filter(|i| &i.app_id == id).collect();
            if found.is_empty() {
                return Err(CosmosError::new(
                    "UninstallNonExistentAppForPackage",
                    format!("Package [{name}] with id [{id}] is not installed"),
                )
                .data(json!({"packageName": name, "appId": id})));
            }
            found
        }
        (None, true) => installs.iter().collect(),
        (None, false) if installs.len() == 1 => installs.iter().collect(),
        (None, false) => {
            let ids: Vec<&str> = installs.iter().map(|i| i.app_id.as_str()).collect();
            return Err(CosmosError::new(
                "AmbiguousAppId",
                format!(
                    "Multiple apps named [{name}] are installed: [{}]",
                    ids.join(", ")
                ),
            )
            .data(json!({"packageName": name, "appIds": ids})));
        }
    };
    let mut results = Vec::new();
    for install in chosen {
        cosmos.marathon.delete(&install.app_id, &call.auth).await?;
        tracing::info!(package = %name, app = %install.app_id, "uninstalled a package");
        let mut result = json!({
            "packageName": install.name,
            "appId": install.app_id,
            "packageVersion": install.version,
        });
        if let Some(notes) = install.metadata.get("postUninstallNotes") {
            result["postUninstallNotes"] = notes.clone();
        }
        results.push(result);
    }
    Ok(json!({"results": results}))
}

#[derive(Deserialize)]
struct Empty {}

async fn repo_list(cosmos: Arc<Cosmos>, _: Empty, _: Call) -> Result<Value, CosmosError> {
    Ok(json!({"repositories": cosmos.repos.list().await?}))
}

#[derive(Deserialize)]
struct RepoAddRequest {
    name: String,
    uri: String,
    index: Option<i64>,
}

async fn repo_add(
    cosmos: Arc<Cosmos>,
    request: RepoAddRequest,
    _: Call,
) -> Result<Value, CosmosError> {
    let list = cosmos
        .repos
        .add(&request.name, &request.uri, request.index)
        .await?;
    let uri = crate::repos::redact(&request.uri);
    tracing::info!(name = %request.name, %uri, "added a package repository");
    Ok(json!({"repositories": list}))
}

#[derive(Deserialize)]
struct RepoDeleteRequest {
    name: Option<String>,
    uri: Option<String>,
}

async fn repo_delete(
    cosmos: Arc<Cosmos>,
    request: RepoDeleteRequest,
    _: Call,
) -> Result<Value, CosmosError> {
    let list = cosmos
        .repos
        .delete(request.name.as_deref(), request.uri.as_deref())
        .await?;
    let uri = request.uri.as_deref().map(crate::repos::redact);
    tracing::info!(name = ?request.name, ?uri, "removed a package repository");
    Ok(json!({"repositories": list}))
}

/// An installed service: its app's package labels, and the package (from the labels, else
/// the repositories).
async fn service(
    cosmos: &Cosmos,
    app_id: &str,
    auth: &Auth,
    all: &[(RepoRef, Packages)],
) -> Result<(Installed, Arc<Package>), CosmosError> {
    let id = apps::app_path(app_id)?;
    let app = cosmos
        .marathon
        .app(&id, auth)
        .await?
        .ok_or_else(|| CosmosError::app_not_found(&id))?;
    let installed = apps::installed(&app).ok_or_else(|| CosmosError::app_not_found(&id))?;
    let package = match installed.package.clone() {
        Some(p) => Arc::new(p),
        None => find(all, &installed.name, Some(&installed.version))?.1,
    };
    Ok((installed, package))
}

/// The versions `current` may be updated to: newer ones that accept it in `upgradesFrom`,
/// older ones it names in `downgradesTo` (`*` is any).
fn update_targets(current: &Package, versions: &[Arc<Package>]) -> (Vec<String>, Vec<String>) {
    let names = |list: &[String], version: &str| list.iter().any(|v| v == "*" || v == version);
    let down_ok = current.version_list("downgradesTo");
    let mut up = Vec::new();
    let mut down = Vec::new();
    for p in versions {
        if p.release_version > current.release_version
            && names(&p.version_list("upgradesFrom"), &current.version)
        {
            up.push(p.version.clone());
        } else if p.release_version < current.release_version && names(&down_ok, &p.version) {
            down.push(p.version.clone());
        }
    }
    (up, down)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceDescribeRequest {
    app_id: String,
}

async fn service_describe(
    cosmos: Arc<Cosmos>,
    request: ServiceDescribeRequest,
    call: Call,
) -> Result<Value, CosmosError> {
    let all = cosmos.repos.packages().await?;
    let (installed, package) = service(&cosmos, &request.app_id, &call.auth, &all).await?;
    let (up, down) = update_targets(&package, &versions_of(&all, &package.name));
    let resolved =
        options::resolve(package.config(), &installed.user_options).unwrap_or_else(|_| {
            options::merge(
                &package.config().map(options::defaults).unwrap_or_default(),
                &installed.user_options,
            )
        });
    Ok(json!({
        "package": package.json(),
        "upgradesTo": up,
        "downgradesTo": down,
        "resolvedOptions": resolved,
        "userProvidedOptions": installed.user_options,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceUpdateRequest {
    app_id: String,
    package_version: Option<String>,
    options: Option<Value>,
    replace: bool,
}

async fn service_update(
    cosmos: Arc<Cosmos>,
    request: ServiceUpdateRequest,
    call: Call,
) -> Result<Value, CosmosError> {
    let all = cosmos.repos.packages().await?;
    let (installed, current) = service(&cosmos, &request.app_id, &call.auth, &all).await?;
    let version = request
        .package_version
        .clone()
        .unwrap_or_else(|| current.version.clone());
    // The same version renders from the package its app stores (its repository may be
    // gone); another comes from the repositories.
    let (source, target) = match (&installed.source, version == current.version) {
        (Some(source), true) => (source.clone(), current.clone()),
        _ => {
            let (repo, target) = find(&all, &current.name, Some(&version))?;
            (repo.uri, target)
        }
    };
    if target.version != current.version {
        let (up, down) = update_targets(&current, &versions_of(&all, &current.name));
        if !up.contains(&target.version) && !down.contains(&target.version) {
            return Err(CosmosError::new(
                "VersionUpgradeNotSupported",
                format!(
                    "Package [{}] cannot be updated from version [{}] to [{}]",
                    current.name, current.version, target.version
                ),
            )
            .data(
                json!({"packageName": current.name, "currentVersion": current.version,
                "requestedVersion": target.version}),
            ));
        }
    }
    let given = options::user_options(request.options.as_ref())?;
    let user = if request.replace {
        given
    } else {
        options::merge(&installed.user_options, &given)
    };
    let rendered =
        apps::render(&target, &source, &user, Some(&installed.app_id))?.ok_or_else(|| {
            CosmosError::new(
                "ServiceMarathonTemplateNotFound",
                format!(
                    "Package [{}] version [{}] has no Marathon template",
                    target.name, target.version
                ),
            )
        })?;
    let deployment = cosmos
        .marathon
        .replace(&installed.app_id, &Value::Object(rendered.app), &call.auth)
        .await?;
    tracing::info!(app = %installed.app_id, version = %target.version, "updated a package's service");
    Ok(json!({
        "package": target.json(),
        "resolvedOptions": rendered.resolved,
        "marathonDeploymentId": deployment,
    }))
}

#[derive(Deserialize)]
struct ResourceQuery {
    url: String,
}

/// `GET /package/resource?url=`: a package's asset, passed on. Only URLs a package of the
/// repositories names are fetched, so the endpoint is no open proxy into the cluster.
async fn resource(
    State(cosmos): State<Arc<Cosmos>>,
    query: Result<Query<ResourceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return CosmosError::new("not_present", "Item 'param' 'url' not present but required")
            .into_response();
    };
    match cosmos.repos.resource(&query.url, MAX_RESOURCE).await {
        Ok((kind, bytes)) => {
            let kind = kind
                .and_then(|k| HeaderValue::from_str(&k).ok())
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (StatusCode::OK, [(header::CONTENT_TYPE, kind)], bytes).into_response()
        }
        Err(e) => e.into_response(),
    }
}
