//! The fetcher: a command's URIs, downloaded or copied into its sandbox before it starts.
//!
//! What lands where is the agent's call, not the framework's: an `output_file` (Marathon's
//! `fetch[].destPath`) must be a relative path inside the sandbox, as in Mesos. Local URIs
//! (`file://` or a plain absolute path) are read only from the directories the agent allows
//! (the fetcher runs as root; otherwise any host file, keys included, could be copied into
//! a sandbox the task can read), opened without following symlinks. Downloads stream to a
//! temporary file in the sandbox, renamed into place once complete, and stop at the
//! configured size limit.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::agent::beneath;
use crate::api::{CommandInfo, Uri};

/// A download that sends nothing for this long has failed.
const STALL: Duration = Duration::from_secs(60);

/// Why a URI was not fetched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// The output file would not be a file inside the sandbox.
    #[error("output file '{0}' must be a relative path inside the sandbox (no '..', not absolute, not empty)")]
    OutputPath(String),
    /// A local file outside the allowed directories.
    #[error("'{path}' is outside the directories local URIs may be fetched from ({allowed}; the agent's fetch_allowed_dirs)")]
    NotAllowed {
        /// The path asked for.
        path: String,
        /// The allowed directories.
        allowed: String,
    },
    /// A local path that is not a regular file.
    #[error("'{0}' is not a regular file")]
    NotAFile(String),
    /// Neither http(s) nor a local path.
    #[error("unsupported URI: only http://, https://, file:// and absolute paths are fetched")]
    Scheme,
    /// More than the limit.
    #[error("larger than the fetcher's limit of {0} bytes (the agent's fetch_max_bytes)")]
    TooLarge(u64),
    /// The server went quiet.
    #[error("no data for {0:?}")]
    Stalled(Duration),
    /// The download failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What the fetcher may fetch, and its HTTP client (which follows redirects, as Mesos'
/// fetcher does).
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    /// The only directories local URIs are read from.
    allowed_dirs: Vec<PathBuf>,
    /// The largest URI saved, in bytes.
    max_bytes: u64,
}

fn is_http(value: &str) -> bool {
    value.starts_with("http://") || value.starts_with("https://")
}

/// Where in the sandbox a URI is saved: its `output_file`, else the last segment of the
/// URI (without query or fragment); a relative path of names only, or refused.
pub(crate) fn output_path(uri: &Uri) -> Result<PathBuf, FetchError> {
    let name = match &uri.output_file {
        Some(f) => f.as_str(),
        None => {
            let value = if is_http(&uri.value) {
                uri.value.split(['?', '#']).next().unwrap_or_default()
            } else {
                uri.value.as_str()
            };
            value.rsplit('/').next().unwrap_or_default()
        }
    };
    let refused = || FetchError::OutputPath(name.escape_debug().to_string());
    if name.contains('\0') {
        return Err(refused());
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(refused()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(refused());
    }
    Ok(out)
}

/// The local path a URI names (`file:///p` or `/p`), if it names one.
fn local_path(value: &str) -> Option<&str> {
    value
        .strip_prefix("file://")
        .or(Some(value))
        .filter(|p| p.starts_with('/'))
}

/// Opens a local file beneath one of the allowed directories, following no symlink below it.
fn open_local(path: &str, allowed: &[PathBuf]) -> Result<std::fs::File, FetchError> {
    let refused = || FetchError::NotAllowed {
        path: path.to_string(),
        allowed: if allowed.is_empty() {
            "none".into()
        } else {
            allowed
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    };
    let dir_and_rel = allowed.iter().filter(|d| d.is_absolute()).find_map(|dir| {
        let rel = Path::new(path).strip_prefix(dir).ok()?;
        beneath::names(rel)
            .filter(|n| !n.is_empty())
            .map(|_| (dir, rel))
    });
    let (dir, rel) = dir_and_rel.ok_or_else(refused)?;
    let file = beneath::open(dir, rel)?;
    if !file.metadata()?.is_file() {
        return Err(FetchError::NotAFile(path.to_string()));
    }
    Ok(file)
}

/// A new file to write a fetch into (never an existing file, never through a symlink).
fn create(tmp: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
}

/// Copies an allowed local file to `tmp`, at most `limit` bytes.
fn copy_local(path: &str, allowed: &[PathBuf], tmp: &Path, limit: u64) -> Result<(), FetchError> {
    let src = open_local(path, allowed)?;
    let mut out = create(tmp)?;
    let copied = std::io::copy(&mut src.take(limit.saturating_add(1)), &mut out)?;
    if copied > limit {
        return Err(FetchError::TooLarge(limit));
    }
    out.flush()?;
    Ok(())
}

/// Streams a download to `tmp`, at most `limit` bytes.
async fn download(
    client: &reqwest::Client,
    url: &str,
    tmp: &Path,
    limit: u64,
) -> Result<(), FetchError> {
    let resp = tokio::time::timeout(STALL, client.get(url).send())
        .await
        .map_err(|_| FetchError::Stalled(STALL))??
        .error_for_status()?;
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(FetchError::TooLarge(limit));
    }
    let mut out = tokio::fs::File::from_std(create(tmp)?);
    let mut body = resp.bytes_stream();
    let mut total = 0u64;
    while let Some(chunk) = tokio::time::timeout(STALL, body.next())
        .await
        .map_err(|_| FetchError::Stalled(STALL))?
    {
        let chunk = chunk?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(FetchError::TooLarge(limit));
        }
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(())
}

impl Fetcher {
    /// A fetcher reading local URIs from `allowed_dirs` only, saving at most `max_bytes`.
    pub(crate) fn new(allowed_dirs: Vec<PathBuf>, max_bytes: u64) -> Fetcher {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Fetcher {
            client,
            allowed_dirs,
            max_bytes,
        }
    }

    /// Fetches one URI into the sandbox.
    async fn fetch(&self, uri: &Uri, sandbox: &Path) -> Result<(), FetchError> {
        let rel = output_path(uri)?;
        let limit = self.max_bytes;
        let tmp = sandbox.join(format!(".fetch-{}.part", uuid::Uuid::new_v4().simple()));
        let fetched = if is_http(&uri.value) {
            download(&self.client, &uri.value, &tmp, limit).await
        } else {
            let path = local_path(&uri.value)
                .ok_or(FetchError::Scheme)?
                .to_string();
            let allowed = self.allowed_dirs.clone();
            let tmp = tmp.clone();
            tokio::task::spawn_blocking(move || copy_local(&path, &allowed, &tmp, limit))
                .await
                .map_err(std::io::Error::other)?
        };
        let target = sandbox.join(&rel);
        let placed = fetched.and_then(|()| {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&tmp, &target)?;
            Ok(())
        });
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if uri.executable == Some(true) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    /// Creates the sandbox and fetches a command's URIs into it.
    pub(crate) async fn fetch_uris(
        &self,
        command: &CommandInfo,
        sandbox: &Path,
    ) -> anyhow::Result<()> {
        fs_err::create_dir_all(sandbox)?;
        for uri in &command.uris {
            self.fetch(uri, sandbox)
                .await
                .map_err(|e| anyhow::anyhow!("Failed to fetch '{}': {e}", uri.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(value: &str, output_file: Option<&str>) -> Uri {
        Uri {
            value: value.into(),
            output_file: output_file.map(str::to_string),
            ..Uri::default()
        }
    }

    #[test]
    fn output_files_stay_inside_the_sandbox() {
        let ok = |v: &str, o: Option<&str>| output_path(&uri(v, o)).unwrap();
        assert_eq!(ok("http://h/a/app.tgz?x=1#y", None), Path::new("app.tgz"));
        assert_eq!(
            ok("/srv/fetch/conf", Some("./etc/app.conf")),
            Path::new("etc/app.conf")
        );
        for (v, o) in [
            ("http://h/x", Some("../x")),
            ("http://h/x", Some("a/../../x")),
            ("http://h/x", Some("/etc/cron.d/x")),
            ("http://h/x", Some("")),
            ("http://h/x", Some(".")),
            ("http://h/x", Some("a\0b")),
            ("http://h/..", None),
            ("http://h/", None),
        ] {
            assert!(
                matches!(output_path(&uri(v, o)), Err(FetchError::OutputPath(_))),
                "{v} {o:?}"
            );
        }
    }

    #[test]
    fn local_files_come_only_from_allowed_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("fetch");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("app.conf"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", allowed.join("leak")).unwrap();
        let dirs = [allowed.clone()];
        let path = |name: &str| allowed.join(name).display().to_string();
        assert!(open_local(&path("app.conf"), &dirs).is_ok());
        assert!(open_local(&path("leak"), &dirs).is_err());
        assert!(open_local(&path("../fetch/app.conf"), &dirs).is_err());
        assert!(matches!(
            open_local("/etc/passwd", &dirs),
            Err(FetchError::NotAllowed { .. })
        ));
        assert!(matches!(
            open_local(&path("app.conf"), &[]),
            Err(FetchError::NotAllowed { .. })
        ));
        assert_eq!(local_path("file:///etc/passwd"), Some("/etc/passwd"));
        assert_eq!(local_path("/etc/passwd"), Some("/etc/passwd"));
        assert_eq!(local_path("file://host/etc/passwd"), None);
        assert_eq!(local_path("etc/passwd"), None);
        let tmp = dir.path().join("out");
        assert!(matches!(
            copy_local(&path("app.conf"), &dirs, &tmp, 0),
            Err(FetchError::TooLarge(0))
        ));
    }
}
