//! The files API (`/files/browse`, `/files/read`, `/files/download`): sandboxes only.
//!
//! As in Mesos, only sandboxes are served, each attached under its own directory path (what
//! `directory` in `/state` shows) and each executor's latest run also under
//! `/frameworks/<framework>/executors/<executor>/runs/latest`. Nothing else of the work dir
//! is reachable: `meta/` holds every TaskInfo with its environment. A request is resolved
//! to a sandbox and names below it without touching the disk, then opened beneath the work
//! dir one component at a time without following symlinks (a task's `ln -s /etc/shadow x`
//! or `ln -s ../../.. up` leads nowhere); refusals are 404s, as for paths that do not exist.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{beneath, Shared};

/// Why a files request fails.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FilesError {
    /// 400.
    BadRequest(String),
    /// 404.
    NotFound(String),
}

impl IntoResponse for FilesError {
    fn into_response(self) -> Response {
        match self {
            FilesError::BadRequest(m) => (StatusCode::BAD_REQUEST, m).into_response(),
            FilesError::NotFound(m) => (StatusCode::NOT_FOUND, m).into_response(),
        }
    }
}

fn not_found(requested: &str) -> FilesError {
    FilesError::NotFound(format!("Failed to find '{requested}'"))
}

/// A sandbox served under `path`.
#[derive(Clone, Debug)]
pub(super) struct Attached {
    /// The path clients ask for (absolute).
    pub(super) path: PathBuf,
    /// The sandbox, relative to the work dir.
    pub(super) sandbox: PathBuf,
}

/// One run's sandbox, as the agent knows it.
pub(super) struct SandboxOf<'a> {
    pub(super) framework_id: &'a str,
    pub(super) executor_id: &'a str,
    pub(super) sandbox: &'a Path,
    pub(super) started: f64,
}

/// What is attached for these runs: every sandbox under its own path, and the latest run of
/// each executor under its `runs/latest` path. Sandboxes outside `work_dir` are not served.
pub(super) fn attachments<'a>(
    work_dir: &Path,
    runs: impl IntoIterator<Item = SandboxOf<'a>>,
) -> Vec<Attached> {
    let mut out = Vec::new();
    let mut latest: BTreeMap<(&str, &str), (f64, PathBuf)> = BTreeMap::new();
    for run in runs {
        let Some(rel) = run
            .sandbox
            .strip_prefix(work_dir)
            .ok()
            .filter(|r| beneath::names(r).is_some_and(|n| !n.is_empty()))
        else {
            continue;
        };
        out.push(Attached {
            path: run.sandbox.to_path_buf(),
            sandbox: rel.to_path_buf(),
        });
        let slot = latest
            .entry((run.framework_id, run.executor_id))
            .or_insert((f64::MIN, PathBuf::new()));
        if run.started >= slot.0 {
            *slot = (run.started, rel.to_path_buf());
        }
    }
    out.extend(latest.into_iter().map(|((fw, ex), (_, sandbox))| {
        Attached {
            path: ["/frameworks", fw, "executors", ex, "runs", "latest"]
                .iter()
                .collect(),
            sandbox,
        }
    }));
    out
}

/// A request resolved to a sandbox and the names below it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Resolved {
    /// The sandbox, relative to the work dir.
    pub(super) sandbox: PathBuf,
    /// Below the sandbox: names only.
    pub(super) rel: PathBuf,
    /// The request, normalised (for the paths `browse` lists).
    pub(super) shown: String,
}

/// Resolves a requested path to a sandbox and names below it, without touching the disk.
/// `..` is refused outright (a sandbox has no parent worth showing); `.` and empty
/// components are dropped; the longest attached path that prefixes the request wins.
pub(super) fn resolve(attached: &[Attached], requested: &str) -> Result<Resolved, FilesError> {
    if requested.is_empty() {
        return Err(FilesError::BadRequest(
            "Expecting 'path=value' in query".into(),
        ));
    }
    let parts: Vec<&str> = requested
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.iter().any(|p| *p == ".." || p.contains('\0')) {
        return Err(not_found(requested));
    }
    let best = attached
        .iter()
        .filter_map(|a| {
            let prefix: Vec<&OsStr> = a
                .path
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n),
                    _ => None,
                })
                .collect();
            let matches = prefix.len() <= parts.len()
                && prefix.iter().zip(&parts).all(|(a, b)| *a == OsStr::new(b));
            matches.then_some((prefix.len(), a))
        })
        .max_by_key(|(n, _)| *n)
        .filter(|(n, _)| *n > 0);
    let (n, a) = best.ok_or_else(|| not_found(requested))?;
    Ok(Resolved {
        sandbox: a.sandbox.clone(),
        rel: parts[n..].iter().collect(),
        shown: format!("/{}", parts.join("/")),
    })
}

/// Resolves and opens a requested path of one of the agent's sandboxes.
fn open(shared: &Shared, requested: &str) -> Result<(File, Resolved), FilesError> {
    let attached = {
        let st = shared.lock();
        attachments(
            &shared.config.work_dir,
            st.runs.values().map(|r| SandboxOf {
                framework_id: r.framework.id.as_ref().map_or("", |i| i.value.as_str()),
                executor_id: &r.executor_id,
                sandbox: &r.sandbox,
                started: r.started,
            }),
        )
    };
    let resolved = resolve(&attached, requested)?;
    let file = beneath::open(
        &shared.config.work_dir,
        &resolved.sandbox.join(&resolved.rel),
    )
    .map_err(|_| not_found(requested))?;
    Ok((file, resolved))
}

fn mode_string(mode: u32, kind: char) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// The entries of an open directory, listed under `shown`. Symlinks are listed as such,
/// never followed.
fn list(dir: &File, shown: &str) -> Result<Value, FilesError> {
    let entries =
        std::fs::read_dir(beneath::at(dir, OsStr::new("."))).map_err(|_| not_found(shown))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(md) = e.metadata() else { continue };
        let kind = match md.file_type() {
            t if t.is_dir() => 'd',
            t if t.is_symlink() => 'l',
            _ => '-',
        };
        out.push(json!({
            "path": format!("{}/{}", shown.trim_end_matches('/'), e.file_name().to_string_lossy()),
            "nlink": md.nlink(),
            "size": md.size(),
            "mtime": md.mtime(),
            "mode": mode_string(md.mode(), kind),
            "uid": user_name(md.uid()),
            "gid": group_name(md.gid()),
        }));
    }
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Ok(Value::Array(out))
}

/// The most a single `/files/read` returns.
pub(super) const MAX_READ: u64 = 4 << 20;

fn parse_number(what: &str, value: Option<&str>) -> Result<Option<i64>, FilesError> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                FilesError::BadRequest(format!(
                    "Failed to parse {what}: Failed to convert '{v}' to number"
                ))
            })
        })
        .transpose()
}

/// Refuses what is not a regular file (directories, FIFOs, devices, sockets): reading one
/// could block or mean nothing.
fn regular(file: &File, verb: &str) -> Result<u64, FilesError> {
    let md = file
        .metadata()
        .map_err(|e| FilesError::BadRequest(e.to_string()))?;
    let t = md.file_type();
    if t.is_dir() {
        return Err(FilesError::BadRequest(format!("Cannot {verb} a directory")));
    }
    if t.is_fifo() || t.is_socket() || t.is_block_device() || t.is_char_device() {
        return Err(FilesError::BadRequest(format!(
            "Cannot {verb} a special file"
        )));
    }
    Ok(md.len())
}

/// `/files/read` of an open file: `offset=-1` gives the size with no data (how clients
/// find the end to tail).
pub(super) fn read(
    mut file: File,
    offset: Option<&str>,
    length: Option<&str>,
) -> Result<Value, FilesError> {
    let offset = parse_number("offset", offset)?.unwrap_or(0);
    let length = parse_number("length", length)?;
    if offset < -1 {
        return Err(FilesError::BadRequest(format!(
            "Negative offset provided: {offset}"
        )));
    }
    if let Some(l) = length.filter(|l| *l < -1) {
        return Err(FilesError::BadRequest(format!(
            "Negative length provided: {l}"
        )));
    }
    let size = regular(&file, "read")?;
    if offset == -1 {
        return Ok(json!({"data": "", "offset": size}));
    }
    let offset = (offset as u64).min(size);
    let want = match length {
        None | Some(-1) => size - offset,
        Some(l) => (l as u64).min(size - offset),
    }
    .min(MAX_READ);
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| FilesError::BadRequest(e.to_string()))?;
    let mut buf = Vec::with_capacity(want as usize);
    (&mut file)
        .take(want)
        .read_to_end(&mut buf)
        .map_err(|e| FilesError::BadRequest(e.to_string()))?;
    Ok(json!({"data": String::from_utf8_lossy(&buf), "offset": offset}))
}

fn requested(q: &HashMap<String, String>) -> &str {
    q.get("path").map(String::as_str).unwrap_or("")
}

/// `GET /files/browse`.
pub(super) async fn browse(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = requested(&q);
    let listed = open(&shared, path).and_then(|(dir, resolved)| {
        if dir.metadata().is_ok_and(|m| m.is_dir()) {
            list(&dir, &resolved.shown)
        } else {
            Err(not_found(path))
        }
    });
    match listed {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /files/read`.
pub(super) async fn read_file(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let offset = q.get("offset").map(String::as_str);
    let length = q.get("length").map(String::as_str);
    match open(&shared, requested(&q)).and_then(|(f, _)| read(f, offset, length)) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /files/download`.
pub(super) async fn download(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = requested(&q);
    let file = match open(&shared, path).and_then(|(f, r)| regular(&f, "download").map(|_| (f, r)))
    {
        Ok((f, _)) => f,
        Err(e) => return e.into_response(),
    };
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename={name}"),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn attached(work_dir: &Path) -> Vec<Attached> {
        let a = work_dir.join("slaves/A/frameworks/F/executors/E/runs/C1");
        let b = work_dir.join("slaves/A/frameworks/F/executors/E/runs/C2");
        attachments(
            work_dir,
            [(&a, 1.0), (&b, 2.0)].map(|(sandbox, started)| SandboxOf {
                framework_id: "F",
                executor_id: "E",
                sandbox,
                started,
            }),
        )
    }

    #[test]
    fn only_sandboxes_resolve() {
        let work = Path::new("/w");
        let att = attached(work);
        let r = resolve(&att, "/w/slaves/A/frameworks/F/executors/E/runs/C1/stdout").unwrap();
        assert_eq!(
            r.sandbox,
            Path::new("slaves/A/frameworks/F/executors/E/runs/C1")
        );
        assert_eq!(r.rel, Path::new("stdout"));
        let latest = resolve(&att, "/frameworks/F/executors/E/runs/latest//./x/y").unwrap();
        assert_eq!(
            latest.sandbox,
            Path::new("slaves/A/frameworks/F/executors/E/runs/C2")
        );
        assert_eq!(latest.rel, Path::new("x/y"));
        assert_eq!(latest.shown, "/frameworks/F/executors/E/runs/latest/x/y");
        for refused in [
            "/w/meta/tasks/x.json",
            "/w",
            "/w/slaves/A/frameworks/F/executors/E/runs",
            "/w/slaves/A/frameworks/F/executors/E/runs/C1/../C2/stdout",
            "/etc/passwd",
            "/",
        ] {
            assert!(
                matches!(resolve(&att, refused), Err(FilesError::NotFound(_))),
                "{refused}"
            );
        }
        assert!(matches!(resolve(&att, ""), Err(FilesError::BadRequest(_))));
    }

    #[test]
    fn read_follows_mesos_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("stdout");
        std::fs::write(&f, "hello world").unwrap();
        let open = || File::open(&f).unwrap();
        assert_eq!(
            read(open(), Some("-1"), None).unwrap(),
            json!({"data": "", "offset": 11})
        );
        assert_eq!(
            read(open(), Some("6"), Some("3")).unwrap(),
            json!({"data": "wor", "offset": 6})
        );
        assert_eq!(
            read(open(), Some("20"), None).unwrap(),
            json!({"data": "", "offset": 11})
        );
        assert!(matches!(
            read(open(), Some("x"), None),
            Err(FilesError::BadRequest(_))
        ));
        assert!(matches!(
            read(File::open(dir.path()).unwrap(), None, None),
            Err(FilesError::BadRequest(_))
        ));
    }

    /// Path strings made of the pieces that escape naive resolvers.
    fn hostile_path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("".to_string()),
            Just("%2e%2e".to_string()),
            Just("%2f".to_string()),
            Just("\0".to_string()),
            Just("w".to_string()),
            Just("slaves".to_string()),
            Just("frameworks".to_string()),
            Just("latest".to_string()),
            Just("C1".to_string()),
            "[a-zA-Z0-9._\\-\\\\]{0,12}",
            "\\PC{0,300}",
        ];
        (
            prop::bool::ANY,
            prop::collection::vec(piece, 0..24),
            prop::bool::ANY,
        )
            .prop_map(|(absolute, pieces, real_prefix)| {
                let mut s = String::new();
                if real_prefix {
                    s.push_str("/w/slaves/A/frameworks/F/executors/E/runs/C1/");
                }
                if absolute {
                    s.push('/');
                }
                s.push_str(&pieces.join("/"));
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn resolution_never_leaves_a_sandbox(requested in hostile_path()) {
            let work = Path::new("/w");
            let att = attached(work);
            if let Ok(r) = resolve(&att, &requested) {
                prop_assert!(att.iter().any(|a| a.sandbox == r.sandbox));
                let names = beneath::names(&r.rel);
                prop_assert!(names.is_some(), "{:?} has more than names", r.rel);
                let full = work.join(&r.sandbox).join(&r.rel);
                prop_assert!(full.starts_with(work.join(&r.sandbox)));
                prop_assert!(!full.to_string_lossy().contains('\0'));
            }
        }
    }
}
