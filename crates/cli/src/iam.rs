//! `dcos auth`, `dcos user`, `dcos service-account` and `dcos acl`: logging in to a cluster
//! and managing who may use it, through Admin Router's `/acs/api/v1`.
//!
//! The token of a login is kept with the cluster's record (`<state-dir>/<name>/auth.json`,
//! readable by its owner only), and every REST call of this CLI to that cluster sends it;
//! `DCOS_ACS_TOKEN` overrides it, as in DC/OS' own tools.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use dcos_node::cluster;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::UserError;

/// The environment variable whose token every call sends, if set.
pub(crate) const TOKEN_ENV: &str = "DCOS_ACS_TOKEN";
const ACCOUNT_TOKEN_SECS: u64 = 300;

/// Where the cluster is and where its login is kept.
#[derive(Args, Clone)]
pub(crate) struct Target {
    /// Admin Router's address (default: the current cluster's first master).
    #[arg(long, global = true)]
    url: Option<String>,
    /// Where cluster records live.
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Login {
    uid: String,
    token: String,
}

/// The current cluster's record, if there is one.
fn current(state_dir: &Path) -> Option<cluster::Record> {
    cluster::load(state_dir, &cluster::current(state_dir)?).ok()
}

fn login_file(state_dir: &Path, record: &cluster::Record) -> PathBuf {
    state_dir.join(&record.name).join("auth.json")
}

impl Target {
    fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(cluster::default_state_dir)
    }

    /// Admin Router's base URL.
    fn base(&self) -> Result<String, UserError> {
        if let Some(u) = &self.url {
            return Ok(u.trim_end_matches('/').to_string());
        }
        let record = current(&self.state_dir()).ok_or_else(|| {
            UserError::new("no current cluster")
                .hint("pass --url, or start one with `dcos cluster up`")
        })?;
        router_url(&record).ok_or_else(|| UserError::new("the current cluster has no master"))
    }
}

/// Admin Router of a cluster's first master.
pub(crate) fn router_url(record: &cluster::Record) -> Option<String> {
    let master = record.nodes.iter().find(|n| n.role.starts_with("master"))?;
    Some(format!("http://{}", master.ip))
}

/// The token this CLI sends to `base`: `DCOS_ACS_TOKEN`, else the login of the current
/// cluster of `state_dir` (default: the default state dir) when `base` is one of that
/// cluster's nodes; a login is never sent to another host.
pub(crate) fn stored_token(base: &str, state_dir: Option<&Path>) -> Option<String> {
    if let Ok(t) = std::env::var(TOKEN_ENV) {
        return Some(t).filter(|t| !t.is_empty());
    }
    let state_dir = state_dir.map_or_else(cluster::default_state_dir, Path::to_path_buf);
    let record = current(&state_dir)?;
    let host = reqwest::Url::parse(base).ok()?.host_str()?.to_string();
    let ours = record
        .nodes
        .iter()
        .any(|n| host.trim_matches(['[', ']']) == n.ip.to_string());
    if !ours {
        return None;
    }
    let text = fs_err::read(login_file(&state_dir, &record)).ok()?;
    serde_json::from_slice::<Login>(&text).ok().map(|l| l.token)
}

/// Logs in at `base` and keeps the token for the cluster of `record`.
pub(crate) async fn login(
    base: &str,
    state_dir: &Path,
    record: &cluster::Record,
    body: Value,
) -> anyhow::Result<String> {
    let uid = body["uid"].as_str().unwrap_or_default().to_string();
    let client = crate::rest::client_with(None)?;
    let resp = crate::rest::request(
        &client,
        &IAM,
        base,
        reqwest::Method::POST,
        "/acs/api/v1/auth/login".into(),
        Some(body),
    )
    .await
    .map_err(|e| e.hint("check the uid and password (or key) and that the cluster is up"))?;
    let token = resp["token"]
        .as_str()
        .ok_or_else(|| UserError::new("the IAM answered a login without a token"))?
        .to_string();
    let text = serde_json::to_vec_pretty(&Login {
        uid: uid.clone(),
        token: token.clone(),
    })?;
    dcos_store::file::write_atomic(&login_file(state_dir, record), &text, 0o600)?;
    Ok(uid)
}

const IAM: crate::rest::Component = crate::rest::Component {
    name: "the IAM",
    unreachable_hint: "pass --url with Admin Router's address, e.g. http://10.0.0.2",
};

#[derive(Args)]
pub(crate) struct AuthArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: AuthCommand,
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Log in to the current cluster (default: as its bootstrap superuser).
    Login {
        #[arg(long)]
        username: Option<String>,
        #[arg(long, conflicts_with = "private_key")]
        password: Option<String>,
        /// A service account's private key (PEM): log in as that account.
        #[arg(long, requires = "username")]
        private_key: Option<PathBuf>,
    },
    /// Forget the current cluster's login.
    Logout,
    /// The account of the current login.
    Whoami,
}

#[derive(Args)]
pub(crate) struct UserArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user with a password.
    Add {
        uid: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user.
    Remove { uid: String },
}

#[derive(Args)]
pub(crate) struct ServiceAccountArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: ServiceAccountCommand,
}

#[derive(Subcommand)]
enum ServiceAccountCommand {
    /// Write a new RSA key pair (private and public PEM) for a service account.
    Keypair {
        private_key: PathBuf,
        public_key: PathBuf,
    },
    /// Add a service account with its public key (PEM file).
    Add {
        uid: String,
        #[arg(long)]
        public_key: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The service accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a service account.
    Remove { uid: String },
}

#[derive(Args)]
pub(crate) struct AclArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Subcommand)]
enum AclCommand {
    /// Grant an action on a resource to an account (or, with --group, a group).
    Grant {
        rid: String,
        id: String,
        #[arg(long, default_value = "full")]
        action: String,
        #[arg(long)]
        group: bool,
    },
    /// Revoke an action on a resource.
    Revoke {
        rid: String,
        id: String,
        #[arg(long, default_value = "full")]
        action: String,
        #[arg(long)]
        group: bool,
    },
    /// The resources with ACLs, or who may do what on one.
    List { rid: Option<String> },
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// One call to the IAM through Admin Router, with the stored token.
async fn call(
    target: &Target,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
) -> Result<Value, UserError> {
    let base = target.base()?;
    let client = crate::rest::client_with(stored_token(&base, Some(&target.state_dir())))
        .map_err(|e| UserError::new(e.to_string()))?;
    crate::rest::request(&client, &IAM, &base, method, path, body).await
}

pub(crate) fn run_auth(args: AuthArgs) -> anyhow::Result<ExitCode> {
    let state_dir = args.target.state_dir();
    let record = current(&state_dir);
    match args.command {
        AuthCommand::Login {
            username,
            password,
            private_key,
        } => {
            let record = record.ok_or_else(|| {
                UserError::new("no current cluster to log in to")
                    .hint("start one with `dcos cluster up`")
            })?;
            let body = match (username, password, private_key) {
                (Some(uid), None, Some(key)) => {
                    let pem = fs_err::read_to_string(&key)?;
                    let token = dcos_iam::keys::account_login_token(&uid, &pem, ACCOUNT_TOKEN_SECS)
                        .map_err(|e| UserError::new(e.to_string()))?;
                    json!({"uid": uid, "token": token})
                }
                (Some(uid), Some(password), None) => json!({"uid": uid, "password": password}),
                (None, None, None) => {
                    let c = cluster::superuser(&record).ok_or_else(|| {
                        UserError::new("the cluster has no bootstrap superuser credentials here")
                            .hint("pass --username and --password")
                    })?;
                    json!({"uid": c.uid, "password": c.password})
                }
                _ => {
                    return Err(
                        UserError::new("give --username with --password or --private-key").into(),
                    )
                }
            };
            let base = args.target.base()?;
            let uid = runtime()?.block_on(login(&base, &state_dir, &record, body))?;
            println!("Login successful: {uid} on {}", record.name);
        }
        AuthCommand::Logout => {
            if let Some(record) = record {
                match fs_err::remove_file(login_file(&state_dir, &record)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            println!("Logged out");
        }
        AuthCommand::Whoami => {
            let Some(login) = record
                .and_then(|r| fs_err::read(login_file(&state_dir, &r)).ok())
                .and_then(|t| serde_json::from_slice::<Login>(&t).ok())
            else {
                return Err(UserError::new("not logged in")
                    .hint("run `dcos auth login`")
                    .into());
            };
            // The IAM confirms the token is still good.
            let path = account_path(&login.uid)?;
            runtime()?.block_on(call(&args.target, reqwest::Method::GET, path, None))?;
            println!("{}", login.uid);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The IAM path of account `uid`, refused here when the uid breaks the IAM's rules (it is a
/// path segment).
fn account_path(uid: &str) -> Result<String, UserError> {
    if !dcos_iam::model::valid_uid(uid) {
        return Err(UserError::new(format!(
            "invalid uid {uid:?}: use 1 to 96 letters, digits, `@`, `.`, `_` and `-`"
        )));
    }
    Ok(format!("/acs/api/v1/users/{uid}"))
}

/// Creates account `uid` with `body` (a password or a public key).
async fn add_account(t: &Target, uid: &str, body: Value) -> Result<(), UserError> {
    call(t, reqwest::Method::PUT, account_path(uid)?, Some(body)).await?;
    Ok(())
}

/// Removes account `uid`.
async fn remove_account(t: &Target, uid: &str) -> Result<(), UserError> {
    call(t, reqwest::Method::DELETE, account_path(uid)?, None).await?;
    Ok(())
}

/// Lists the users (or the service accounts), as a table or JSON.
async fn list_accounts(t: &Target, services: bool, json: bool) -> anyhow::Result<()> {
    let path = match services {
        true => "/acs/api/v1/users?type=service",
        false => "/acs/api/v1/users",
    };
    let list = call(t, reqwest::Method::GET, path.into(), None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list["array"])?);
        return Ok(());
    }
    for a in list["array"].as_array().into_iter().flatten() {
        println!(
            "{:<32} {}",
            a["uid"].as_str().unwrap_or(""),
            a["description"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

pub(crate) fn run_user(args: UserArgs) -> anyhow::Result<ExitCode> {
    let t = &args.target;
    runtime()?.block_on(async {
        match args.command {
            UserCommand::Add {
                uid,
                password,
                description,
            } => {
                let body = json!({"password": password, "description": description});
                add_account(t, &uid, body).await?;
                println!("user {uid} added");
            }
            UserCommand::List { json } => list_accounts(t, false, json).await?,
            UserCommand::Remove { uid } => {
                remove_account(t, &uid).await?;
                println!("user {uid} removed");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn run_service_account(args: ServiceAccountArgs) -> anyhow::Result<ExitCode> {
    let t = &args.target;
    runtime()?.block_on(async {
        match args.command {
            ServiceAccountCommand::Keypair {
                private_key,
                public_key,
            } => {
                let (private, public) = dcos_iam::keys::generate_account_pair()
                    .map_err(|e| UserError::new(e.to_string()))?;
                dcos_store::file::write_atomic(&private_key, private.as_bytes(), 0o600)?;
                dcos_store::file::write_atomic(&public_key, public.as_bytes(), 0o644)?;
                println!(
                    "wrote {} and {}",
                    private_key.display(),
                    public_key.display()
                );
            }
            ServiceAccountCommand::Add {
                uid,
                public_key,
                description,
            } => {
                let pem = fs_err::read_to_string(&public_key)?;
                add_account(
                    t,
                    &uid,
                    json!({"public_key": pem, "description": description}),
                )
                .await?;
                println!("service account {uid} added");
            }
            ServiceAccountCommand::List { json } => list_accounts(t, true, json).await?,
            ServiceAccountCommand::Remove { uid } => {
                remove_account(t, &uid).await?;
                println!("service account {uid} removed");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn run_acl(args: AclArgs) -> anyhow::Result<ExitCode> {
    let t = &args.target;
    runtime()?.block_on(async {
        match args.command {
            AclCommand::Grant {
                rid,
                id,
                action,
                group,
            } => {
                let path = permission_path(&rid, &id, group, &action)?;
                call(t, reqwest::Method::PUT, path, None).await?;
                println!("granted {action} on {rid} to {id}");
            }
            AclCommand::Revoke {
                rid,
                id,
                action,
                group,
            } => {
                let path = permission_path(&rid, &id, group, &action)?;
                call(t, reqwest::Method::DELETE, path, None).await?;
                println!("revoked {action} on {rid} from {id}");
            }
            AclCommand::List { rid: None } => {
                let list = call(t, reqwest::Method::GET, "/acs/api/v1/acls".into(), None).await?;
                for a in list["array"].as_array().into_iter().flatten() {
                    println!("{}", a["rid"].as_str().unwrap_or(""));
                }
            }
            AclCommand::List { rid: Some(rid) } => {
                let path = format!("{}/permissions", acl_path(&rid)?);
                let perms = call(t, reqwest::Method::GET, path, None).await?;
                for (kind, key) in [("users", "uid"), ("groups", "gid")] {
                    for p in perms[kind].as_array().into_iter().flatten() {
                        let actions: Vec<&str> = p["actions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| a["name"].as_str())
                            .collect();
                        println!(
                            "{kind:<7} {:<32} {}",
                            p[key].as_str().unwrap_or(""),
                            actions.join(",")
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The IAM path of the ACL of `rid`, refused here when the rid breaks the IAM's rules; a
/// `/` in it is escaped twice, as DC/OS' IAM expects.
fn acl_path(rid: &str) -> Result<String, UserError> {
    if !dcos_iam::model::valid_rid(rid) {
        return Err(UserError::new(format!(
            "invalid resource id {rid:?}: it starts with `dcos:` and has no empty segment"
        )));
    }
    Ok(format!("/acs/api/v1/acls/{}", rid.replace('/', "%252F")))
}

/// The IAM path of `action` on `rid` for account (or, with `group`, group) `id`, every part
/// checked before it is sent.
fn permission_path(rid: &str, id: &str, group: bool, action: &str) -> Result<String, UserError> {
    if dcos_iam::api::Action::parse(action).is_none() {
        return Err(UserError::new(format!(
            "unknown action {action:?}: one of create, read, update, delete, full"
        )));
    }
    let (kind, valid) = match group {
        true => ("groups", dcos_iam::model::valid_gid(id)),
        false => ("users", dcos_iam::model::valid_uid(id)),
    };
    if !valid {
        return Err(UserError::new(format!(
            "invalid {} id {id:?}",
            &kind[..kind.len() - 1]
        )));
    }
    Ok(format!("{}/{kind}/{id}/{action}", acl_path(rid)?))
}
