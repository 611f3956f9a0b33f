//! The provisioner: where a container's rootfs is assembled.
//!
//! `<work_dir>/provisioner/<container_id>/` holds `l/<n>` (symlinks to the image's layers,
//! 0 the bottom one), `upper` and `work` (the container's writable layer), `rootfs` (the
//! overlay's mount point) and `spec.json` (what its init does). Overlayfs is given these
//! paths relative to that dir, so its options stay far below the one-page limit however deep
//! the layer store is. The overlay itself is mounted by the container's init in the
//! container's own mount namespace, so it disappears with the container; the dir lives
//! outside the sandbox, out of the files API's and the task's reach.

use std::path::{Path, PathBuf};

/// The provisioner dir of a container.
pub(crate) fn dir(work_dir: &Path, container_id: &str) -> PathBuf {
    work_dir.join("provisioner").join(container_id)
}

/// Lays out a container's provisioner dir over `layers` (bottom first).
pub(crate) fn prepare(dir: &Path, layers: &[PathBuf]) -> std::io::Result<()> {
    if layers.is_empty() {
        return Err(std::io::Error::other("the image has no layers"));
    }
    // The provisioner root is the agent's alone: containers' upper dirs hold what tasks
    // wrote (setuid files too) and their specs the tasks' environments.
    if let Some(root) = dir.parent() {
        fs_err::create_dir_all(root)?;
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    let links = dir.join("l");
    fs_err::create_dir_all(&links)?;
    for (i, layer) in layers.iter().enumerate() {
        std::os::unix::fs::symlink(layer, links.join(i.to_string()))?;
    }
    for sub in ["upper", "work", "rootfs"] {
        fs_err::create_dir(dir.join(sub))?;
    }
    Ok(())
}

/// Removes a container's provisioner dir, unmounting its rootfs first should it be mounted
/// on the host after all (a dir already gone is fine).
pub(crate) fn destroy(dir: &Path) -> std::io::Result<()> {
    let rootfs = dir.join("rootfs");
    if is_mount_point(&rootfs) {
        nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH)?;
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether something is mounted at `path` in the agent's mount namespace.
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let target = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|text| {
        text.lines()
            .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provisioner_dir_links_its_layers_and_goes_away() {
        let work = tempfile::tempdir().unwrap();
        let layers = vec![work.path().join("a"), work.path().join("b")];
        let dir = dir(work.path(), "c1");
        prepare(&dir, &layers).unwrap();
        assert_eq!(std::fs::read_link(dir.join("l/1")).unwrap(), layers[1]);
        assert!(dir.join("upper").is_dir() && dir.join("rootfs").is_dir());
        destroy(&dir).unwrap();
        assert!(!dir.exists());
        destroy(&dir).unwrap();
        assert!(prepare(&dir, &[]).is_err());
    }
}
