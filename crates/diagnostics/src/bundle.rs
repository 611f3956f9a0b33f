//! Diagnostic bundles (masters): one job at a time gathers every chosen node's health report
//! and unit logs, and the leading Mesos master's state, into
//! `bundle-YYYY-MM-DD-<unix seconds>.zip` with a folder per node (`<ip>_<role>/`), as
//! dcos-diagnostics lays it out. A job is bounded in size ([`MAX_BUNDLE`]) and time
//! ([`JOB_TIMEOUT`]) and can be cancelled; a bundle is written under a temporary name and
//! renamed when whole, so `list` never shows half of one.
//!
//! Answers use dcos-diagnostics' envelope `{response_http_code, version, status, errors,
//! extra?}`; bundle names are checked against `bundle-*.zip` where they enter.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::model::NodeHealth;
use crate::Shared;

/// The largest bundle a job writes; what does not fit is left out and named in `errors`.
pub const MAX_BUNDLE: u64 = 256 * 1024 * 1024;
/// The longest a job runs.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// The bundles of one master, and its job.
pub struct Bundles {
    dir: PathBuf,
    job: Mutex<Job>,
}

#[derive(Default, Clone)]
struct Job {
    running: Option<CancellationToken>,
    status: String,
    errors: Vec<String>,
    last_bundle: String,
    started: String,
    ended: String,
    duration: String,
    progress: f64,
}

impl Bundles {
    /// The bundles in `dir` (made if missing); parts of bundles a killed job left are removed.
    pub fn open(dir: PathBuf) -> std::io::Result<Bundles> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".part") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Bundles {
            dir,
            job: Mutex::new(Job::default()),
        })
    }

    fn job(&self) -> std::sync::MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self) -> Value {
        let job = self.job();
        json!({
            "is_running": job.running.is_some(),
            "status": job.status,
            "errors": if job.errors.is_empty() { Value::Null } else { json!(job.errors) },
            "last_bundle_dir": job.last_bundle,
            "job_started": job.started,
            "job_ended": job.ended,
            "job_duration": job.duration,
            "diagnostics_bundle_dir": self.dir.display().to_string(),
            "diagnostics_job_timeout_min": JOB_TIMEOUT.as_secs() / 60,
            "journald_logs_since_hours": "24",
            "diagnostics_job_get_since_url_timeout_min": 1,
            "command_exec_timeout_sec": 50,
            "diagnostics_partition_disk_usage_percent": disk_usage_percent(&self.dir),
            "job_progress_percentage": job.progress,
        })
    }

    /// Whether a bundle can be written in the directory.
    pub fn writable(&self) -> bool {
        let probe = self.dir.join(".writable.part");
        let ok = std::fs::write(&probe, b"").is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    }

    fn files(&self) -> Vec<Value> {
        let mut out: Vec<(String, u64)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let size = e.metadata().ok()?.len();
                valid_name(&name).then_some((name, size))
            })
            .collect();
        out.sort();
        out.into_iter()
            .map(|(name, size)| {
                json!({"file_name": format!("/system/health/v1/report/diagnostics/serve/{name}"),
                    "file_size": size})
            })
            .collect()
    }
}

/// The share of the bundle directory's filesystem in use, in percent.
fn disk_usage_percent(dir: &Path) -> f64 {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(st) if st.blocks() > 0 => {
            let used = st.blocks().saturating_sub(st.blocks_free());
            (used as f64 * 100.0 / st.blocks() as f64 * 10.0).round() / 10.0
        }
        _ => 0.0,
    }
}

/// Whether `name` is a bundle's file name: `bundle-` then letters, digits and dashes, `.zip`.
pub fn valid_name(name: &str) -> bool {
    name.strip_prefix("bundle-")
        .and_then(|rest| rest.strip_suffix(".zip"))
        .is_some_and(|middle| {
            !middle.is_empty()
                && middle.len() <= 64
                && middle
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// dcos-diagnostics' answer envelope.
fn envelope(code: StatusCode, status: &str, extra: Option<Value>) -> Response {
    let mut body = json!({
        "response_http_code": code.as_u16(),
        "version": 1,
        "status": status,
        "errors": Value::Null,
    });
    if let Some(extra) = extra {
        body["extra"] = extra;
    }
    (code, Json(body)).into_response()
}

fn bundles(s: &Shared) -> Result<&Bundles, Response> {
    s.bundles.as_ref().ok_or_else(|| {
        envelope(
            StatusCode::NOT_FOUND,
            "Diagnostic bundles are made on the masters",
            None,
        )
    })
}

/// `POST /report/diagnostics/create` `{"nodes": ["all" | "masters" | "agents" | <ip>...]}`.
pub(crate) async fn create(State(s): State<Shared>, body: axum::body::Bytes) -> Response {
    let b = match bundles(&s) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(puller) = s.puller.clone() else {
        return envelope(
            StatusCode::NOT_FOUND,
            "Diagnostic bundles are made on the masters",
            None,
        );
    };
    let wanted: Vec<String> = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => match v["nodes"].as_array() {
            Some(list) if !list.is_empty() && list.iter().all(Value::is_string) => list
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect(),
            _ => {
                return envelope(
                    StatusCode::BAD_REQUEST,
                    "The request needs \"nodes\": a list of all, masters, agents or node IPs",
                    None,
                )
            }
        },
        Err(e) => {
            return envelope(
                StatusCode::BAD_REQUEST,
                &format!("The request is not JSON: {e}"),
                None,
            )
        }
    };
    // Every node: this master, the others, the agents.
    let me = s.local().await;
    let mut all: Vec<(String, String, Option<String>)> =
        vec![(me.ip.clone(), me.node_role.clone(), None)];
    all.extend(
        puller
            .targets()
            .into_iter()
            .map(|t| (t.ip, t.role.to_string(), Some(t.url))),
    );
    let mut chosen = Vec::new();
    for want in &wanted {
        let matched: Vec<_> = all
            .iter()
            .filter(|(ip, role, _)| match want.as_str() {
                "all" => true,
                "masters" => role == "master",
                "agents" => role.starts_with("agent"),
                ip_wanted => ip == ip_wanted,
            })
            .cloned()
            .collect();
        if matched.is_empty() {
            return envelope(
                StatusCode::BAD_REQUEST,
                &format!("Requested node {want} is not a node of the cluster"),
                None,
            );
        }
        for m in matched {
            if !chosen.contains(&m) {
                chosen.push(m);
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let name = format!("bundle-{}-{now}.zip", chrono::Utc::now().format("%Y-%m-%d"));
    let cancel = CancellationToken::new();
    {
        let mut job = b.job();
        if job.running.is_some() {
            return envelope(
                StatusCode::SERVICE_UNAVAILABLE,
                "Job is already running",
                None,
            );
        }
        *job = Job {
            running: Some(cancel.clone()),
            status: format!("Collecting diagnostics into {name}"),
            started: crate::pull::now_rfc3339(),
            last_bundle: b.dir.join(&name).display().to_string(),
            ..Job::default()
        };
    }
    let service = s.clone();
    let file = name.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let outcome = tokio::select! {
            r = collect(&service, &chosen, &file, &me) => r,
            () = cancel.cancelled() => Err("Job was cancelled".to_string()),
            () = tokio::time::sleep(JOB_TIMEOUT) => Err(format!("Job ran longer than {} s", JOB_TIMEOUT.as_secs())),
        };
        let Some(b) = service.bundles.as_ref() else {
            return;
        };
        let part = b.dir.join(format!(".{file}.part"));
        let mut job = b.job();
        job.running = None;
        job.ended = crate::pull::now_rfc3339();
        job.duration = format!("{:?}", started.elapsed());
        match outcome {
            Ok(errors) => {
                job.status = format!("Diagnostics job successfully collected all data into {file}");
                job.errors = errors;
                job.progress = 100.0;
            }
            Err(why) => {
                let _ = std::fs::remove_file(&part);
                job.status = why.clone();
                job.errors = vec![why];
            }
        }
    });
    envelope(
        StatusCode::OK,
        "Job has been successfully started",
        Some(json!({"bundle_name": name})),
    )
}

/// Gathers the bundle; the errors of parts left out.
async fn collect(
    s: &Shared,
    nodes: &[(String, String, Option<String>)],
    name: &str,
    me: &NodeHealth,
) -> Result<Vec<String>, String> {
    let b = s.bundles.as_ref().ok_or("no bundle directory")?;
    let puller = s.puller.as_ref().ok_or("no puller")?;
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut errors = Vec::new();
    let mut size = 0u64;
    let mut add = |entries: &mut Vec<(String, Vec<u8>)>,
                   errors: &mut Vec<String>,
                   path: String,
                   data: Vec<u8>| {
        if size + data.len() as u64 > MAX_BUNDLE {
            errors.push(format!(
                "{path} left out: the bundle would exceed {MAX_BUNDLE} bytes"
            ));
            return;
        }
        size += data.len() as u64;
        entries.push((path, data));
    };
    for (i, (ip, role, url)) in nodes.iter().enumerate() {
        let folder = format!("{ip}_{role}");
        let health = match url {
            None => Ok(me.clone()),
            Some(url) => puller
                .get(url, crate::pull::MAX_ANSWER)
                .await
                .and_then(|b| serde_json::from_slice::<NodeHealth>(&b).map_err(|e| e.to_string())),
        };
        match health {
            Ok(health) => {
                let text = serde_json::to_vec_pretty(&health).unwrap_or_default();
                add(
                    &mut entries,
                    &mut errors,
                    format!("{folder}/dcos-diagnostics-health.json"),
                    text,
                );
                for unit in &health.units {
                    let log = match url {
                        None => {
                            let path = s.config.logs_dir.join(format!("{}.log", unit.id));
                            tokio::task::spawn_blocking(move || crate::tail(&path, crate::MAX_LOG))
                                .await
                                .map_err(|e| e.to_string())
                                .and_then(|r| r.map_err(|e| e.to_string()))
                        }
                        // A remote node's unit names were not checked by the pull.
                        Some(_) if !crate::valid_unit(&unit.id) => {
                            Err("not a unit name".to_string())
                        }
                        Some(url) => {
                            let base = url.trim_end_matches("/system/health/v1");
                            let url = format!("{base}/system/health/v1/logs/units/{}", unit.id);
                            puller.get(&url, crate::MAX_LOG as usize).await
                        }
                    };
                    match log {
                        Ok(log) => add(
                            &mut entries,
                            &mut errors,
                            format!("{folder}/{}.log", unit.id),
                            log,
                        ),
                        Err(e) => errors.push(format!("{folder}/{}.log: {e}", unit.id)),
                    }
                }
            }
            Err(e) => errors.push(format!("{folder}: the node did not answer: {e}")),
        }
        b.job().progress = 90.0 * (i + 1) as f64 / nodes.len().max(1) as f64;
    }
    // The leading Mesos master's state, as the bundle's `5050-master_state.json.gz`.
    if let Some(leader) = puller.leader() {
        let url = format!("http://{leader}:5050/master/state");
        match puller.get(&url, crate::pull::MAX_STATE).await {
            Ok(state) => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                let zipped = gz
                    .write_all(&state)
                    .and_then(|()| gz.finish())
                    .map_err(|e| e.to_string())?;
                let path = format!("{leader}_master/5050-master_state.json.gz");
                add(&mut entries, &mut errors, path, zipped);
            }
            Err(e) => errors.push(format!("the Mesos master's state: {e}")),
        }
    }
    let part = b.dir.join(format!(".{name}.part"));
    let done = b.dir.join(name);
    tokio::task::spawn_blocking(move || write_zip(&part, &done, entries))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write the bundle: {e}"))?;
    Ok(errors)
}

fn write_zip(part: &Path, done: &Path, entries: Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    let file = std::fs::File::create(part)?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, data) in entries {
        zip.start_file(path, options)
            .map_err(std::io::Error::other)?;
        zip.write_all(&data)?;
    }
    let file = zip.finish().map_err(std::io::Error::other)?;
    file.sync_all()?;
    std::fs::rename(part, done)
}

/// `POST /report/diagnostics/cancel`.
pub(crate) async fn cancel(State(s): State<Shared>) -> Response {
    let b = match bundles(&s) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let running = b.job().running.clone();
    match running {
        Some(token) => {
            token.cancel();
            envelope(
                StatusCode::OK,
                "Attempting to cancel a job, please check job status.",
                None,
            )
        }
        None => envelope(StatusCode::SERVICE_UNAVAILABLE, "Job is not running", None),
    }
}

/// `GET /report/diagnostics/status`.
pub(crate) async fn status(State(s): State<Shared>) -> Response {
    match bundles(&s) {
        Ok(b) => Json(b.status()).into_response(),
        Err(r) => r,
    }
}

/// `GET /report/diagnostics/status/all`: this master's job, by its IP.
pub(crate) async fn status_all(State(s): State<Shared>) -> Response {
    match bundles(&s) {
        Ok(b) => {
            let ip = s.config.ip.to_string();
            Json(json!({ip: b.status()})).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /report/diagnostics/list`.
pub(crate) async fn list(State(s): State<Shared>) -> Response {
    match bundles(&s) {
        Ok(b) => Json(Value::Array(b.files())).into_response(),
        Err(r) => r,
    }
}

/// `GET /report/diagnostics/list/all`: this master's bundles, by `ip:port`.
pub(crate) async fn list_all(State(s): State<Shared>) -> Response {
    match bundles(&s) {
        Ok(b) => {
            let key = format!("{}:{}", s.config.ip, crate::MASTER_PORT);
            Json(json!({key: b.files()})).into_response()
        }
        Err(r) => r,
    }
}

fn checked(s: &Shared, file: &str) -> Result<PathBuf, Response> {
    let b = bundles(s)?;
    if !valid_name(file) {
        return Err(envelope(
            StatusCode::BAD_REQUEST,
            &format!("Format allowed bundle-*.zip, got {file}"),
            None,
        ));
    }
    let path = b.dir.join(file);
    if !path.is_file() {
        return Err(envelope(
            StatusCode::NOT_FOUND,
            &format!("Bundle not found {file}"),
            None,
        ));
    }
    Ok(path)
}

/// `GET /report/diagnostics/serve/{file}`.
pub(crate) async fn serve_file(
    State(s): State<Shared>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let path = match checked(&s, &file) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match tokio::fs::File::open(&path).await {
        Ok(f) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename={file}"),
                ),
            ],
            Body::from_stream(tokio_util::io::ReaderStream::new(f)),
        )
            .into_response(),
        Err(e) => envelope(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    }
}

/// `POST /report/diagnostics/delete/{file}`.
pub(crate) async fn delete(State(s): State<Shared>, UrlPath(file): UrlPath<String>) -> Response {
    let path = match checked(&s, &file) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match std::fs::remove_file(&path) {
        Ok(()) => envelope(StatusCode::OK, &format!("Deleted {file}"), None),
        Err(e) => envelope(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_names_are_checked_where_they_enter() {
        assert!(valid_name("bundle-2026-12-07-1796673600.zip"));
        for bad in [
            "bundle-.zip",
            "../bundle-1.zip",
            "bundle-1.zip/..",
            "bundle-a b.zip",
            "x.zip",
            "bundle-1.tar",
            "bundle-1/../../etc.zip",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_zip_is_written_whole_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join(".bundle-1.zip.part");
        let done = dir.path().join("bundle-1.zip");
        write_zip(
            &part,
            &done,
            vec![("10.0.0.1_master/a.log".into(), b"line\n".to_vec())],
        )
        .unwrap();
        assert!(!part.exists());
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&done).unwrap()).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut archive.by_name("10.0.0.1_master/a.log").unwrap(),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "line\n");
        let b = Bundles::open(dir.path().to_path_buf()).unwrap();
        let files = b.files();
        assert_eq!(files.len(), 1);
        assert!(files[0]["file_name"]
            .as_str()
            .unwrap()
            .ends_with("/bundle-1.zip"));
    }
}
