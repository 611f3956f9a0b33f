//! Extracting one layer (tar or tar+gzip) into a directory overlayfs can stack.
//!
//! Docker/OCI whiteouts become overlayfs' own: `.wh.NAME` a 0:0 character device named NAME,
//! `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory. Nothing is written
//! outside the layer directory: absolute names, `..` and entries (or hard-link sources) whose
//! path passes through a symlink are refused, and so are whiteouts of `.`, `..` or nothing
//! (they would remove the parent or what is above the layer). Ownership, modes (setuid
//! included), mtimes and symlinks are kept (the agent runs as root); device nodes are refused,
//! as an image must not hand a container a device (0:0 character devices, overlay's own
//! whiteouts, excepted). The decompressed stream is capped, so a small blob cannot fill the
//! disk.

use std::cell::Cell;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use tar::EntryType;

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";

/// A reader that fails once more than `left` bytes went through, and says so in `exceeded`
/// (tar wraps the read error in its own words).
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte more than allowed is asked for, to tell "exactly the cap" from "more".
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.exceeded.set(true);
            return Err(std::io::Error::other(
                "the decompressed size limit is exceeded",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Extracts the layer in `blob` into `dest` (which exists), reading at most `max_bytes` of
/// uncompressed tar. The error is a cause for [`crate::Reason::Layer`].
pub(crate) fn extract_layer(blob: &Path, dest: &Path, max_bytes: u64) -> Result<(), String> {
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
    let exceeded = Rc::new(Cell::new(false));
    let stream = Capped {
        inner: stream,
        left: max_bytes,
        exceeded: exceeded.clone(),
    };
    let too_big = || format!("the layer decompresses to more than {max_bytes} bytes");
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| match exceeded.get() {
            true => too_big(),
            false => format!("reading the archive: {e}"),
        })?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        extract_entry(&mut entry, &path, dest).map_err(|e| match exceeded.get() {
            true => too_big(),
            false => format!("{}: {e}", path.display()),
        })?;
    }
    Ok(())
}

/// The name a whiteout `.wh.NAME` hides, refused when it is not one plain name: `.wh..`
/// would remove the directory above the layer, `.wh...` and `.wh.` the parent itself.
fn whiteout_target(name: &str) -> Option<Result<&str, String>> {
    let hidden = name.strip_prefix(WHITEOUT_PREFIX)?;
    Some(
        if hidden.is_empty()
            || hidden == "."
            || hidden == ".."
            || hidden.starts_with(WHITEOUT_PREFIX)
        {
            Err(format!("invalid whiteout name {name:?}"))
        } else {
            Ok(hidden)
        },
    )
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
    if let Some(hidden) = whiteout_target(&name) {
        let target = parent.join(hidden?);
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
        EntryType::Char | EntryType::Block => {
            let h = entry.header();
            let num = |v: std::io::Result<Option<u32>>| v.ok().flatten().unwrap_or(0);
            if kind == EntryType::Char && (num(h.device_major()), num(h.device_minor())) == (0, 0) {
                make_node(entry, &target) // an overlay-style whiteout, as made above
            } else {
                Err("device nodes are not allowed in a layer".into())
            }
        }
        EntryType::Fifo => make_node(entry, &target),
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

/// Whiteout and fifo entries (tar's unpack would write them as plain files).
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
        extract_layer(&tar, &out, 1 << 20).unwrap();
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
            assert!(
                extract_layer(&tar, &out, 1 << 20).is_err(),
                "{entries:?} extracted"
            );
        }
        assert!(!dir.path().join("evil").exists());
        assert!(!Path::new("/tmp/evil").exists());
    }

    #[test]
    fn refuses_whiteouts_of_dot_dotdot_and_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("layer");
        let keep = dir.path().join("keep");
        fs::write(&keep, "k").unwrap();
        for name in ["d/.wh..", "d/.wh...", "d/.wh.", ".wh..", "d/.wh..wh.x"] {
            fs::create_dir_all(out.join("d")).unwrap();
            let tar = layer(dir.path(), &[(name, EntryType::Regular, "")]);
            let err = extract_layer(&tar, &out, 1 << 20).unwrap_err();
            assert!(err.contains("invalid whiteout name"), "{name}: {err}");
            assert!(
                out.join("d").is_dir() && keep.exists(),
                "{name} removed something"
            );
        }
    }

    #[test]
    fn refuses_device_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        for (kind, major) in [
            (EntryType::Block, 8),
            (EntryType::Char, 1),
            (EntryType::Block, 0),
        ] {
            let path = dir.path().join("dev.tar");
            let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
            let mut h = header(kind, 0o600, 0);
            h.set_device_major(major).unwrap();
            h.set_device_minor(3).unwrap();
            b.append_data(&mut h, "dev/sda", std::io::empty()).unwrap();
            b.finish().unwrap();
            drop(b);
            let err = extract_layer(&path, &out, 1 << 20).unwrap_err();
            assert!(err.contains("device nodes are not allowed"), "{err}");
            assert!(!out.join("dev/sda").exists());
        }
    }

    #[test]
    fn caps_the_decompressed_size() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let zeros = "\0".repeat(64 << 10);
        let tar = layer(dir.path(), &[("big", EntryType::Regular, zeros.as_str())]);
        let gz = dir.path().join("big.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(
            fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::copy(&mut fs::File::open(&tar).unwrap(), &mut enc).unwrap();
        enc.finish().unwrap();
        let err = extract_layer(&gz, &out, 16 << 10).unwrap_err();
        assert_eq!(err, "the layer decompresses to more than 16384 bytes");
        let size = fs::metadata(&tar).unwrap().len();
        extract_layer(&gz, &out, size).unwrap();
        assert_eq!(fs::metadata(out.join("big")).unwrap().len(), 64 << 10);
    }
}
