//! Extracting one layer (tar or tar+gzip) into a directory overlayfs can stack.
//!
//! Docker/OCI whiteouts become overlayfs' own: `.wh.NAME` a 0:0 character device named NAME,
//! `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory. Nothing is written
//! outside the layer directory: absolute names, `..` and entries (or hard-link sources) whose
//! path passes through a symlink are refused. Ownership, modes, mtimes and symlinks are kept
//! (the agent runs as root).

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use tar::EntryType;

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";

/// Extracts the layer in `blob` into `dest` (which exists). The error is a cause for
/// [`crate::Reason::Layer`].
pub(crate) fn extract_layer(blob: &Path, dest: &Path) -> Result<(), String> {
    let file = fs::File::open(blob).map_err(|e| format!("opening the blob: {e}"))?;
    let mut reader = BufReader::new(file);
    let magic = reader.fill_buf().map_err(|e| e.to_string())?;
    let stream: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::GzDecoder::new(reader))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err("zstd-compressed layers are not supported".into());
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| format!("reading the archive: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        extract_entry(&mut entry, &path, dest).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn extract_entry<R: Read>(
    entry: &mut tar::Entry<R>,
    path: &Path,
    dest: &Path,
) -> Result<(), String> {
    let rel = confined(path)?;
    let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
        return Ok(()); // the archive's root "./"
    };
    let parent = make_parents(dest, parent)?;
    let name = name.to_string_lossy();
    if name == OPAQUE {
        return xattr::set(&parent, "trusted.overlay.opaque", b"y")
            .map_err(|e| format!("setting the opaque xattr: {e}"));
    }
    if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        let target = parent.join(hidden);
        remove_existing(&target, false)?;
        return mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| format!("making the whiteout: {e}"));
    }
    let target = dest.join(&rel);
    let kind = entry.header().entry_type();
    remove_existing(&target, kind == EntryType::Directory)?;
    match kind {
        EntryType::Link => {
            // tar's own unpack resolves a hard link's source against the working directory
            // unless it unpacks "in" a root; confine it here instead.
            let link = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .ok_or("a hard link without a source")?;
            let src = confined(&link)?;
            if let Some(p) = src.parent() {
                check_no_symlinks(dest, p)?;
            }
            fs::hard_link(dest.join(&src), &target).map_err(|e| format!("hard link: {e}"))
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => make_node(entry, &target),
        _ => entry.unpack(&target).map(|_| ()).map_err(|e| e.to_string()),
    }
}

/// The entry's path as plain components under the layer root; absolute paths and `..` are
/// refused.
fn confined(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err("absolute or '..' paths are not allowed in a layer".into()),
        }
    }
    Ok(out)
}

/// Creates the missing directories of `rel` under `dest` (root-owned, 0755, as a tar
/// without directory entries implies) and refuses a path through a symlink or a file.
fn make_parents(dest: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a directory (a symlink?)", cur.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|e| format!("creating {}: {e}", cur.display()))?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(cur)
}

fn check_no_symlinks(dest: &Path, rel: &Path) -> Result<(), String> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        let m = fs::symlink_metadata(&cur).map_err(|e| format!("{}: {e}", cur.display()))?;
        if !m.is_dir() {
            return Err(format!("{} is not a directory (a symlink?)", cur.display()));
        }
    }
    Ok(())
}

/// Makes room for a new entry: a later layer entry replaces what an earlier one put there,
/// except that a directory stays a directory (its contents merge).
fn remove_existing(target: &Path, new_is_dir: bool) -> Result<(), String> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() && new_is_dir => Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(target).map_err(|e| e.to_string()),
        Ok(_) => fs::remove_file(target).map_err(|e| e.to_string()),
        Err(_) => Ok(()),
    }
}

/// Device and fifo entries (tar's unpack would write them as plain files).
fn make_node<R: Read>(entry: &tar::Entry<R>, target: &Path) -> Result<(), String> {
    let h = entry.header();
    let kind = match h.entry_type() {
        EntryType::Char => SFlag::S_IFCHR,
        EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    let num = |v: std::io::Result<Option<u32>>| v.ok().flatten().unwrap_or(0);
    let dev = makedev(
        u64::from(num(h.device_major())),
        u64::from(num(h.device_minor())),
    );
    let mode = Mode::from_bits_truncate(h.mode().unwrap_or(0o600));
    mknod(target, kind, mode, dev).map_err(|e| format!("mknod: {e}"))?;
    let id = |v: std::io::Result<u64>| v.ok().and_then(|v| u32::try_from(v).ok());
    nix::unistd::fchownat(
        None,
        target,
        id(h.uid()).map(nix::unistd::Uid::from_raw),
        id(h.gid()).map(nix::unistd::Gid::from_raw),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| format!("chown: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn header(kind: EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// A tar of (path, kind, data-or-link-target) entries.
    fn layer(dir: &Path, entries: &[(&str, EntryType, &str)]) -> PathBuf {
        let path = dir.join(format!("layer{}.tar", entries.len()));
        let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
        for (name, kind, data) in entries {
            let mut h = header(*kind, 0o755, 0);
            if name.starts_with("owned") {
                h.set_uid(1234);
                h.set_gid(4321);
                h.set_mode(0o4750);
            }
            match kind {
                EntryType::Symlink | EntryType::Link => {
                    b.append_link(&mut h, name, data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    // set_path refuses '..'; write the raw name so the extractor sees it.
                    let raw = &mut h.as_old_mut().name;
                    raw[..name.len()].copy_from_slice(name.as_bytes());
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).unwrap();
                }
            }
        }
        b.finish().unwrap();
        path
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        if !nix::unistd::geteuid().is_root() {
            return; // mknod and trusted.* xattrs need root
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let tar = layer(
            dir.path(),
            &[
                ("etc/", EntryType::Directory, ""),
                ("etc/.wh.hidden", EntryType::Regular, ""),
                ("data/.wh..wh..opq", EntryType::Regular, ""),
                ("data/new", EntryType::Regular, "n"),
                ("bin/sh", EntryType::Symlink, "busybox"),
                ("bin/ln", EntryType::Link, "data/new"),
                ("owned", EntryType::Regular, "o"),
            ],
        );
        extract_layer(&tar, &out).unwrap();
        let m = fs::symlink_metadata(out.join("etc/hidden")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), 0);
        let opaque = xattr::get(out.join("data"), "trusted.overlay.opaque").unwrap();
        assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
        assert_eq!(
            fs::read_link(out.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(fs::read(out.join("bin/ln")).unwrap(), b"n");
        let owned = fs::metadata(out.join("owned")).unwrap();
        assert_eq!(
            (owned.uid(), owned.gid(), owned.mode() & 0o7777),
            (1234, 4321, 0o4750)
        );
    }

    #[test]
    fn refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        for entries in [
            vec![("../evil", EntryType::Regular, "x")],
            vec![("/abs", EntryType::Regular, "x")],
            vec![
                ("link", EntryType::Symlink, "/tmp"),
                ("link/evil", EntryType::Regular, "x"),
            ],
            vec![("hl", EntryType::Link, "../../etc/passwd")],
        ] {
            let tar = layer(dir.path(), &entries);
            assert!(extract_layer(&tar, &out).is_err(), "{entries:?} extracted");
        }
        assert!(!dir.path().join("evil").exists());
        assert!(!Path::new("/tmp/evil").exists());
    }
}
