//! `dcos package search|describe|install|list|uninstall|repo`: a client of Cosmos 0.5's
//! package API, through Admin Router (which serves `/package/*`) by default. Verbs, flags and
//! output follow the DC/OS CLI 0.6.1's `dcos package`, without its CLI-subcommand half
//! (`--cli`): here a package is only its Marathon app.
//!
//! Cosmos negotiates on vendor media types: every call names its request type as
//! `Content-Type` and the response type it wants as `Accept`, both in full
//! (`application/vnd.dcos.package.install-request+json;charset=utf-8;version=v1`); it refuses
//! `application/json` and `*/*`. Its errors carry a `message`, which is what the user sees.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};

use crate::UserError;

#[derive(Args)]
pub(crate) struct PackageArgs {
    /// Cosmos' address: Admin Router's, or a master's http://127.0.0.1:7070.
    #[arg(long, default_value = "http://127.0.0.1")]
    url: String,
    #[command(subcommand)]
    command: PackageCommand,
}

#[derive(Subcommand)]
enum PackageCommand {
    /// Search the package repositories (every package, without QUERY).
    Search {
        /// Part of a package's name, tags or description.
        query: Option<String>,
        /// Print Cosmos' JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A package's definition as JSON, or its config schema or Marathon app.
    Describe(DescribeArgs),
    /// Install a package: Cosmos starts its Marathon app.
    Install(InstallArgs),
    /// The installed packages.
    List {
        /// Only this package.
        package_name: Option<String>,
        /// Only the package installed as this Marathon app.
        #[arg(long)]
        app_id: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Uninstall a package: Cosmos removes its Marathon app.
    Uninstall {
        package_name: String,
        /// The app to remove, when the package is installed more than once.
        #[arg(long)]
        app_id: Option<String>,
        /// Remove every app of the package.
        #[arg(long)]
        all: bool,
        /// Do not ask to type the service's name to confirm.
        #[arg(long)]
        yes: bool,
    },
    /// A package's versions in the repositories, one a line.
    ListVersions {
        package_name: String,
        /// Print Cosmos' JSON (versions to release versions).
        #[arg(long)]
        json: bool,
    },
    /// The package repositories, searched in order.
    Repo {
        #[command(subcommand)]
        command: RepoCommand,
    },
}

#[derive(Args)]
struct DescribeArgs {
    package_name: String,
    /// Print the package's Marathon app template.
    #[arg(long)]
    app: bool,
    /// With --app: print the app as Cosmos renders it from the config defaults and --options.
    #[arg(long, requires = "app")]
    render: bool,
    /// Print the package's config schema (the options it takes).
    #[arg(long)]
    config: bool,
    /// Options (a JSON file) to render --app with; implies --render.
    #[arg(long)]
    options: Option<PathBuf>,
    /// This version instead of the newest.
    #[arg(long)]
    package_version: Option<String>,
    /// Print the package's versions instead.
    #[arg(long, conflicts_with_all = ["app", "render", "config", "options", "package_version"])]
    package_versions: bool,
}

#[derive(Args)]
struct InstallArgs {
    package_name: String,
    /// This version instead of the newest.
    #[arg(long)]
    package_version: Option<String>,
    /// Options (a JSON file) for the package's config schema.
    #[arg(long)]
    options: Option<PathBuf>,
    /// The Marathon app id to install as (default: the package's).
    #[arg(long)]
    app_id: Option<String>,
    /// Do not ask before installing a package with pre-install notes.
    #[arg(long)]
    yes: bool,
    /// Print Cosmos' install response as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// The repositories, as `NAME: URI` lines.
    List {
        /// Print Cosmos' JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a repository (Universe format), last unless --index.
    Add {
        repo_name: String,
        repo_url: String,
        /// Its position in the list, from 0.
        #[arg(long)]
        index: Option<u32>,
    },
    /// Remove a repository.
    Remove { repo_name: String },
}

pub(crate) fn run(args: PackageArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let base = args.url.trim_end_matches('/').to_string();
        let cosmos = Cosmos {
            client: crate::rest::client(&base)?,
            base,
        };
        match args.command {
            PackageCommand::Search { query, json } => search(&cosmos, query, json).await,
            PackageCommand::Describe(args) => describe(&cosmos, args).await,
            PackageCommand::Install(args) => install(&cosmos, args).await,
            PackageCommand::List {
                package_name,
                app_id,
                json,
            } => list(&cosmos, package_name, app_id, json).await,
            PackageCommand::Uninstall {
                package_name,
                app_id,
                all,
                yes,
            } => {
                let what = uninstall_confirmation(&package_name, app_id.as_deref(), all);
                if !yes && !confirm_text(&what)? {
                    println!("Cancelling uninstall.");
                    return Ok(ExitCode::from(1));
                }
                uninstall(&cosmos, package_name, app_id, all).await
            }
            PackageCommand::ListVersions { package_name, json } => {
                list_versions(&cosmos, &package_name, json).await
            }
            PackageCommand::Repo { command } => repo(&cosmos, command).await,
        }
    })
}

/// The component this command talks to.
const COMPONENT: crate::rest::Component = crate::rest::Component {
    name: "Cosmos",
    unreachable_hint: "pass --url with Admin Router's address, e.g. http://10.0.0.2",
};

/// A Cosmos endpoint: its path under `/package/`, and the version of the response to ask
/// for (every request type is v1).
struct Endpoint {
    path: &'static str,
    response_version: u8,
}

const SEARCH: Endpoint = Endpoint {
    path: "search",
    response_version: 1,
};
/// v3 answers `{"package": {...}}` whatever the package's packaging version.
const DESCRIBE: Endpoint = Endpoint {
    path: "describe",
    response_version: 3,
};
const RENDER: Endpoint = Endpoint {
    path: "render",
    response_version: 1,
};
/// v2 adds the post-install notes to v1's name, version and app id.
const INSTALL: Endpoint = Endpoint {
    path: "install",
    response_version: 2,
};
const LIST: Endpoint = Endpoint {
    path: "list",
    response_version: 1,
};
const UNINSTALL: Endpoint = Endpoint {
    path: "uninstall",
    response_version: 1,
};
const LIST_VERSIONS: Endpoint = Endpoint {
    path: "list-versions",
    response_version: 1,
};
const REPO_LIST: Endpoint = Endpoint {
    path: "repository/list",
    response_version: 1,
};
const REPO_ADD: Endpoint = Endpoint {
    path: "repository/add",
    response_version: 1,
};
const REPO_DELETE: Endpoint = Endpoint {
    path: "repository/delete",
    response_version: 1,
};

impl Endpoint {
    /// Its media type for `direction` (`request` or `response`) at `version`, e.g.
    /// `application/vnd.dcos.package.repository.list-request+json;charset=utf-8;version=v1`.
    fn media_type(&self, direction: &str, version: u8) -> String {
        // Paths nest with `/`, media type names with `.`.
        let name = self.path.replace('/', ".");
        format!(
            "application/vnd.dcos.package.{name}-{direction}+json;charset=utf-8;version=v{version}"
        )
    }

    /// The `Content-Type` and `Accept` of a call.
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (CONTENT_TYPE, self.media_type("request", 1)),
            (ACCEPT, self.media_type("response", self.response_version)),
        ] {
            let value = HeaderValue::try_from(value).expect("a media type is a header value");
            headers.insert(name, value);
        }
        headers
    }
}

/// Cosmos at `base`.
struct Cosmos {
    client: reqwest::Client,
    base: String,
}

impl Cosmos {
    /// POSTs `body` to `endpoint`: its answer, or a user error with Cosmos' message.
    async fn call(&self, endpoint: &Endpoint, body: Value) -> Result<Value, UserError> {
        crate::rest::request_with_headers(
            &self.client,
            &COMPONENT,
            &self.base,
            reqwest::Method::POST,
            format!("/package/{}", endpoint.path),
            Some(body),
            endpoint.headers(),
        )
        .await
    }

    /// The package `name` at `version` (default: the newest).
    async fn describe(&self, name: &str, version: Option<&str>) -> Result<Value, UserError> {
        let request = object([
            ("packageName", Some(name.into())),
            ("packageVersion", version.map(Value::from)),
        ]);
        Ok(self.call(&DESCRIBE, request).await?["package"].take())
    }

    /// Cosmos' versions of the package `name`: `{"results": {version: releaseVersion}}`.
    async fn versions(&self, name: &str) -> Result<Value, UserError> {
        let request = json!({"packageName": name, "includePackageVersions": true});
        self.call(&LIST_VERSIONS, request).await
    }
}

/// A request body of the `fields` that are present: optional fields are left out, not null.
fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_string(), value?)))
            .collect(),
    )
}

async fn search(cosmos: &Cosmos, query: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let found = cosmos
        .call(&SEARCH, json!({"query": query.unwrap_or_default()}))
        .await?;
    if json {
        print_json(&found)?;
    } else if found["packages"].as_array().is_some_and(|p| !p.is_empty()) {
        println!("{}", search_table(&found));
    } else {
        return Err(UserError::new("No packages found.").into());
    }
    Ok(ExitCode::SUCCESS)
}

async fn describe(cosmos: &Cosmos, args: DescribeArgs) -> anyhow::Result<ExitCode> {
    if args.package_versions {
        let versions = cosmos.versions(&args.package_name).await?;
        print_json(&Value::from(version_list(&versions)))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Read before any call, so that a bad file fails first.
    let options = args.options.as_deref().map(read_options).transpose()?;
    let name = &args.package_name;
    let package = cosmos
        .describe(name, args.package_version.as_deref())
        .await?;
    if !args.app && !args.config {
        print_json(&package)?;
    }
    if args.app && (args.render || options.is_some()) {
        let request = object([
            ("packageName", Some(name.as_str().into())),
            ("packageVersion", package.get("version").cloned()),
            ("options", options),
        ]);
        let rendered = cosmos.call(&RENDER, request).await?;
        print_json(&rendered["marathonJson"])?;
    } else if args.app {
        println!("{}", marathon_template(name, &package)?);
    }
    if args.config {
        print_json(&package["config"])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The package's Marathon app template, which Cosmos keeps base64-encoded.
fn marathon_template(name: &str, package: &Value) -> Result<String, UserError> {
    let template = package["marathon"]["v2AppMustacheTemplate"]
        .as_str()
        .ok_or_else(|| UserError::new(format!("Package [{name}] has no Marathon app template")))?;
    let text = base64::engine::general_purpose::STANDARD
        .decode(template.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| UserError::new(format!("Package [{name}]'s app template is not base64")))?;
    Ok(text.trim_end_matches('\n').to_string())
}

/// The options in the file at `path`: a JSON object.
fn read_options(path: &Path) -> anyhow::Result<Value> {
    let text = fs_err::read_to_string(path)?;
    let options: Value = serde_json::from_str(&text)
        .map_err(|e| UserError::new(format!("{} is not JSON: {e}", path.display())))?;
    if !options.is_object() {
        let message = format!("{} is not a JSON object of options", path.display());
        return Err(UserError::new(message).into());
    }
    Ok(options)
}

async fn install(cosmos: &Cosmos, args: InstallArgs) -> anyhow::Result<ExitCode> {
    let options = args.options.as_deref().map(read_options).transpose()?;
    let package = cosmos
        .describe(&args.package_name, args.package_version.as_deref())
        .await?;
    if let Some(notes) = package["preInstallNotes"].as_str() {
        // With --json, stdout is for the install response alone.
        if !confirm_install(notes, args.yes, args.json)? {
            return Ok(ExitCode::from(1));
        }
    }
    let request = object([
        ("packageName", Some(args.package_name.as_str().into())),
        // The version described, so that the notes shown are those of what gets installed.
        ("packageVersion", package.get("version").cloned()),
        ("options", options),
        ("appId", args.app_id.clone().map(Value::from)),
    ]);
    let installed = cosmos.call(&INSTALL, request).await?;
    if args.json {
        print_json(&installed)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut message = format!(
        "Installing Marathon app for package [{}] version [{}]",
        text(&installed["packageName"]),
        text(&installed["packageVersion"])
    );
    if let Some(id) = &args.app_id {
        message.push_str(&format!(" with app id [{id}]"));
    }
    println!("{message}");
    if let Some(notes) = installed["postInstallNotes"].as_str() {
        println!("{notes}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows the pre-install `notes` and, unless `yes`, asks on stdin whether to go on (on stderr
/// instead of stdout with `to_stderr`). False if the answer is not yes.
fn confirm_install(notes: &str, yes: bool, to_stderr: bool) -> std::io::Result<bool> {
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    writeln!(out, "{notes}")?;
    if yes {
        return Ok(true);
    }
    write!(out, "Continue installing? [yes/no] ")?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let go_on = is_yes(&answer);
    if !go_on {
        writeln!(out, "Exiting installation.")?;
    }
    Ok(go_on)
}

/// Whether a prompt's answer is yes (`yes` or `y`, any case).
/// What an uninstall warns of, and the text the user types to confirm it (the DC/OS CLI's).
fn uninstall_confirmation(package: &str, app_id: Option<&str>, all: bool) -> (String, String) {
    let data = "and delete all of its persistent data (logs, configurations, database \
                artifacts, everything)";
    match (app_id, all) {
        (_, true) => (
            format!(
                "WARNING: This action cannot be undone. This will uninstall all instances of \
                 the [{package}] package, and delete all data for all {package} instances.\n\
                 Please type 'uninstall all {package}'"
            ),
            format!("uninstall all {package}"),
        ),
        (Some(id), false) => (
            format!(
                "WARNING: This action cannot be undone. This will uninstall [{id}] {data}.\n\
                 Please type the name of the service to confirm"
            ),
            id.to_string(),
        ),
        (None, false) => (
            format!(
                "WARNING: This action cannot be undone. This will uninstall [{package}] {data}.\n\
                 Please type the name of the service to confirm"
            ),
            package.to_string(),
        ),
    }
}

/// Prints the warning and reads a line: whether it is the expected text.
fn confirm_text((warning, expected): &(String, String)) -> std::io::Result<bool> {
    print!("{warning}: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == expected)
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_lowercase().as_str(), "yes" | "y")
}

async fn list(
    cosmos: &Cosmos,
    package_name: Option<String>,
    app_id: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // App ids as Marathon writes them, with their leading slash (as the DC/OS CLI does).
    let app_id = app_id.map(|id| format!("/{}", id.trim_start_matches('/')));
    let request = object([
        ("packageName", package_name.map(Value::from)),
        ("appId", app_id.map(Value::from)),
    ]);
    let packages = installed_packages(&cosmos.call(&LIST, request).await?);
    if json {
        print_json(&Value::from(packages))?;
    } else if packages.is_empty() {
        let message = "There are currently no installed packages. \
                       Please use `dcos package install` to install a package.";
        return Err(UserError::new(message).into());
    } else {
        println!("{}", list_table(&packages));
    }
    Ok(ExitCode::SUCCESS)
}

/// Cosmos' list of installed apps as the DC/OS CLI shows it: an entry per package name and
/// version, its definition plus `apps` (the ids of the apps that run it), sorted by name.
fn installed_packages(listed: &Value) -> Vec<Value> {
    let mut packages: Vec<Value> = Vec::new();
    for entry in listed["packages"].as_array().into_iter().flatten() {
        let definition = &entry["packageInformation"]["packageDefinition"];
        let app = entry["appId"].clone();
        let same = |p: &&mut Value| {
            p["name"] == definition["name"] && p["version"] == definition["version"]
        };
        match packages.iter_mut().find(same) {
            Some(package) => {
                if let Some(apps) = package["apps"].as_array_mut() {
                    apps.push(app);
                }
            }
            None => {
                let mut package = definition.clone();
                package["apps"] = json!([app]);
                packages.push(package);
            }
        }
    }
    packages.sort_by_key(|p| text(&p["name"]));
    packages
}

/// What the DC/OS CLI's tables show for nothing.
const EMPTY: &str = "---";

fn list_table(packages: &[Value]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "NAME",
        "VERSION",
        "APP",
        "COMMAND",
        "DESCRIPTION",
    ]);
    for p in packages {
        let apps: Vec<String> = p["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        table.add_row(vec![
            text(&p["name"]),
            text(&p["version"]),
            if apps.is_empty() {
                EMPTY.into()
            } else {
                apps.join("\n")
            },
            // The package's CLI subcommand, which this CLI never installs.
            EMPTY.into(),
            truncate(&text(&p["description"]), 65),
        ]);
    }
    table.to_string()
}

fn search_table(found: &Value) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "NAME",
        "VERSION",
        "SELECTED",
        "FRAMEWORK",
        "DESCRIPTION",
    ]);
    for p in found["packages"].as_array().into_iter().flatten() {
        table.add_row(vec![
            text(&p["name"]),
            text(&p["currentVersion"]),
            flag(&p["selected"]),
            flag(&p["framework"]),
            truncate(&text(&p["description"]), 80),
        ]);
    }
    table.to_string()
}

/// A JSON string as it is; absent as empty; anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A JSON boolean as the DC/OS CLI (Python) prints it; absent is false.
fn flag(value: &Value) -> String {
    let word = if value.as_bool().unwrap_or(false) {
        "True"
    } else {
        "False"
    };
    word.to_string()
}

/// `text` cut to `max` characters, ending in `...` when cut, as the DC/OS CLI's tables do.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{kept}...")
}

async fn uninstall(
    cosmos: &Cosmos,
    package_name: String,
    app_id: Option<String>,
    all: bool,
) -> anyhow::Result<ExitCode> {
    let request = object([
        ("packageName", Some(package_name.into())),
        ("appId", app_id.map(Value::from)),
        ("all", all.then_some(Value::Bool(true))),
    ]);
    let removed = cosmos.call(&UNINSTALL, request).await.map_err(|e| {
        // Cosmos' AmbiguousAppId: "Multiple apps named [NAME] are installed: [IDS]".
        if e.to_string().contains("Multiple apps named") {
            e.hint(
                "use --app-id to specify the ID of the app to uninstall, \
                 or --all to uninstall all apps",
            )
        } else {
            e
        }
    })?;
    for line in uninstalled(&removed) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What an uninstall removed: a line per package version (the DC/OS CLI says it once for
/// several apps of a version), each followed by its post-uninstall notes.
fn uninstalled(removed: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let mut versions_seen = Vec::new();
    for r in removed["results"].as_array().into_iter().flatten() {
        let version = text(&r["packageVersion"]);
        if versions_seen.contains(&version) {
            continue;
        }
        lines.push(format!(
            "Uninstalled package [{}] version [{version}]",
            text(&r["packageName"])
        ));
        if let Some(notes) = r["postUninstallNotes"].as_str() {
            lines.push(notes.to_string());
        }
        versions_seen.push(version);
    }
    lines
}

async fn list_versions(cosmos: &Cosmos, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let versions = cosmos.versions(name).await?;
    if json {
        print_json(&versions)?;
    } else {
        for version in version_list(&versions) {
            println!("{version}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The package versions of a list-versions answer, newest release first (as the DC/OS CLI
/// lists them: `0.10.0` after `0.9.0` is newer, whatever the text says).
fn version_list(versions: &Value) -> Vec<String> {
    let mut list: Vec<(u64, String)> = versions["results"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(version, release)| {
            let release = release.as_str().and_then(|r| r.parse().ok()).unwrap_or(0);
            (release, version.clone())
        })
        .collect();
    list.sort_by(|a, b| b.cmp(a));
    list.into_iter().map(|(_, version)| version).collect()
}

async fn repo(cosmos: &Cosmos, command: RepoCommand) -> anyhow::Result<ExitCode> {
    match command {
        RepoCommand::List { json } => {
            let repos = cosmos.call(&REPO_LIST, json!({})).await?;
            if json {
                print_json(&repos)?;
            } else if let Some(lines) = repo_lines(&repos) {
                println!("{lines}");
            } else {
                let message = "There are currently no repos configured. \
                               Please use `dcos package repo add` to add a repo";
                return Err(UserError::new(message).into());
            }
        }
        RepoCommand::Add {
            repo_name,
            repo_url,
            index,
        } => {
            let request = object([
                ("name", Some(repo_name.into())),
                ("uri", Some(repo_url.into())),
                ("index", index.map(Value::from)),
            ]);
            cosmos.call(&REPO_ADD, request).await?;
        }
        RepoCommand::Remove { repo_name } => {
            cosmos
                .call(&REPO_DELETE, json!({"name": repo_name}))
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The repositories as `NAME: URI` lines; None if there are none.
fn repo_lines(repos: &Value) -> Option<String> {
    let lines: Vec<String> = repos["repositories"]
        .as_array()?
        .iter()
        .map(|r| format!("{}: {}", text(&r["name"]), text(&r["uri"])))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_name_their_full_media_types() {
        let headers = INSTALL.headers();
        assert_eq!(
            headers[CONTENT_TYPE],
            "application/vnd.dcos.package.install-request+json;charset=utf-8;version=v1"
        );
        assert_eq!(
            headers[ACCEPT],
            "application/vnd.dcos.package.install-response+json;charset=utf-8;version=v2"
        );
        assert_eq!(
            REPO_LIST.headers()[ACCEPT],
            "application/vnd.dcos.package.repository.list-response+json;charset=utf-8;version=v1"
        );
    }

    #[test]
    fn optional_fields_are_left_out() {
        let body = object([("packageName", Some("nginx".into())), ("appId", None)]);
        assert_eq!(body, json!({"packageName": "nginx"}));
    }

    #[test]
    fn list_shows_a_row_per_package_version_with_its_apps() {
        let def = |name: &str, version: &str| json!({"packageDefinition": {"name": name, "version": version, "description": "d"}});
        let listed = json!({"packages": [
            {"appId": "/web", "packageInformation": def("nginx", "1.10.3")},
            {"appId": "/cassandra", "packageInformation": def("cassandra", "1.0")},
            {"appId": "/web2", "packageInformation": def("nginx", "1.10.3")},
        ]});
        let packages = installed_packages(&listed);
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0]["name"], "cassandra");
        assert_eq!(packages[1]["apps"], json!(["/web", "/web2"]));
        let table = list_table(&packages);
        assert!(
            table.contains("COMMAND") && table.contains("---"),
            "{table}"
        );
        assert!(
            table.contains("/web ") && table.contains("/web2"),
            "{table}"
        );
    }

    #[test]
    fn search_shows_flags_as_the_dcos_cli_does_and_cuts_descriptions() {
        let long = "x".repeat(100);
        let found = json!({"packages": [{"name": "nginx", "currentVersion": "1.10.3",
            "selected": true, "framework": false, "description": long}]});
        let table = search_table(&found);
        assert!(table.contains("True") && table.contains("False"), "{table}");
        assert!(table.contains(&format!("{}...", "x".repeat(77))), "{table}");
        assert!(!table.contains(&"x".repeat(78)), "{table}");
    }

    #[test]
    fn uninstall_reports_each_version_once_with_its_notes() {
        let removed = json!({"results": [
            {"packageName": "nginx", "appId": "/a", "packageVersion": "1.10.3", "postUninstallNotes": "bye"},
            {"packageName": "nginx", "appId": "/b", "packageVersion": "1.10.3", "postUninstallNotes": "bye"},
        ]});
        assert_eq!(
            uninstalled(&removed),
            ["Uninstalled package [nginx] version [1.10.3]", "bye"]
        );
    }

    #[test]
    fn app_templates_are_decoded() {
        // base64 of `{"id": "/web"}\n`, which needs padding.
        let package = json!({"marathon": {"v2AppMustacheTemplate": "eyJpZCI6ICIvd2ViIn0K"}});
        assert_eq!(
            marathon_template("web", &package).unwrap(),
            r#"{"id": "/web"}"#
        );
        let bad = json!({"marathon": {"v2AppMustacheTemplate": "T!E="}});
        assert!(marathon_template("web", &bad).is_err());
    }

    #[test]
    fn uninstalls_are_confirmed_with_the_name_of_what_goes() {
        let (warning, expected) = uninstall_confirmation("web", None, false);
        assert!(warning.contains("uninstall [web]"), "{warning}");
        assert_eq!(expected, "web");
        assert_eq!(uninstall_confirmation("web", Some("/a"), false).1, "/a");
        assert_eq!(
            uninstall_confirmation("web", Some("/a"), true).1,
            "uninstall all web"
        );
    }

    #[test]
    fn versions_are_listed_newest_release_first() {
        let versions = json!({"results": {"0.9.0": "1", "0.10.0": "2", "0.1.0": "0"}});
        assert_eq!(version_list(&versions), ["0.10.0", "0.9.0", "0.1.0"]);
    }

    #[test]
    fn only_yes_continues() {
        assert!(is_yes("yes\n") && is_yes(" Y\n"));
        assert!(!is_yes("no\n") && !is_yes("") && !is_yes("yess"));
    }
}
