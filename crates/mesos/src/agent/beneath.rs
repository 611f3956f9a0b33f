//! Opening a path beneath a trusted directory without following any symlink in it.
//!
//! Sandboxes belong to tasks, which may plant symlinks (`ln -s /etc/shadow leak`) or swap a
//! directory for one between a check and an open. So paths below a trusted directory are
//! walked one component at a time, each opened relative to the descriptor of its parent
//! with `O_NOFOLLOW`: nothing is resolved by name twice, and a symlink anywhere refuses
//! the open (`ELOOP`/`ENOTDIR`). Each step opens `/proc/self/fd/<parent>/<name>`, which the
//! kernel resolves through the open descriptor itself, not through any path.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The components of a relative path made only of names (no `/`, `.`, `..`), or None.
pub(super) fn names(rel: &Path) -> Option<Vec<&OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// The path through which a name in an open directory is opened.
pub(super) fn at(dir: &File, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// Opens `root/rel` for reading; `rel` must be names only, none of them a symlink. A
/// FIFO or device at the end is opened without blocking; callers check what they got.
pub(super) fn open(root: &Path, rel: &Path) -> io::Result<File> {
    let names = names(rel).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a plain relative path", rel.display()),
        )
    })?;
    let mut current = File::open(root)?;
    for (i, name) in names.iter().enumerate() {
        let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        if i + 1 < names.len() {
            flags |= libc::O_DIRECTORY;
        }
        current = OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(at(&current, name))?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("d/leak")).unwrap();
        std::os::unix::fs::symlink("d", root.join("up")).unwrap();
        assert!(open(root, Path::new("d/f")).is_ok());
        assert!(open(root, Path::new("d"))
            .unwrap()
            .metadata()
            .unwrap()
            .is_dir());
        assert!(open(root, Path::new("d/leak")).is_err());
        assert!(open(root, Path::new("up/f")).is_err());
        assert!(open(root, Path::new("up")).is_err());
        assert!(open(root, Path::new("../etc/passwd")).is_err());
        assert!(open(root, Path::new("/etc/passwd")).is_err());
    }
}
