//! A unit's log file with rotation and a size cap, as the node supervisor writes it.
//!
//! The current file is `<dir>/<stem>.log` (the path testkit and people look at); when the
//! next line would take it past [`Rotation::max_file_bytes`] it is renamed to
//! `<stem>.log.<generation>` and a new one started, and only the newest
//! [`Rotation::rotated_files`] rotated files are kept. Generations only grow, so a file keeps
//! its name from rotation until it is deleted, and a reader's position (generation, byte
//! offset) stays valid across rotations: see [`crate::source`]. A line is never split
//! between two files.
//!
//! [`pump`] reads a unit's stdout or stderr pipe and appends each line, prefixed with the
//! time it was read ([`crate::record`]).

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::record;

/// The longest line kept whole; a longer one is stored as several lines of this size.
pub const MAX_LINE: usize = 64 * 1024;
/// The longest message of a stored line: with its time prefix and newline, a stored line is
/// at most [`MAX_LINE`], as readers cut lines there.
pub const MAX_MESSAGE: usize = MAX_LINE - record::PREFIX_LEN - 2;

/// How much of a unit's output is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes of one file at most (one line more when a single line is longer).
    pub max_file_bytes: u64,
    /// Rotated files kept besides the current one.
    pub rotated_files: u64,
}

impl Default for Rotation {
    /// 10 MiB per file and 5 rotated files: at most 60 MiB per unit.
    fn default() -> Self {
        Rotation {
            max_file_bytes: 10 * 1024 * 1024,
            rotated_files: 5,
        }
    }
}

/// The current file's name for a stem.
pub fn current_name(stem: &str) -> String {
    format!("{stem}.log")
}

/// A rotated file's name.
pub fn rotated_name(stem: &str, generation: u64) -> String {
    format!("{stem}.log.{generation}")
}

/// The stem and generation a file name stands for: `None` for the current file. Names that
/// are not ours (`x.log.01`, `x.log.tmp`) give `None`.
pub fn parse_name(name: &str) -> Option<(&str, Option<u64>)> {
    if let Some(stem) = name.strip_suffix(".log") {
        return (!stem.is_empty()).then_some((stem, None));
    }
    let (head, generation) = name.rsplit_once('.')?;
    let stem = head.strip_suffix(".log")?;
    let canonical = !generation.is_empty()
        && generation.bytes().all(|b| b.is_ascii_digit())
        && (generation == "0" || !generation.starts_with('0'));
    if stem.is_empty() || !canonical {
        return None;
    }
    Some((stem, Some(generation.parse().ok()?)))
}

/// The rotated generations of `stem` in `dir`, ascending.
pub fn rotated_generations(dir: &Path, stem: &str) -> io::Result<Vec<u64>> {
    let mut gens = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((s, Some(g))) = parse_name(name) {
            if s == stem {
                gens.push(g);
            }
        }
    }
    gens.sort_unstable();
    Ok(gens)
}

/// A unit's log: appends whole lines, rotates, prunes. Shared by the unit's stdout and
/// stderr pumps; each append is one `write` of whole lines, so they never interleave.
pub struct RotatingLog {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    dir: PathBuf,
    stem: String,
    rotation: Rotation,
    /// The open current file (`None` after a failed rotation: reopened on the next append).
    file: Option<std::fs::File>,
    size: u64,
    generation: u64,
}

impl std::fmt::Debug for RotatingLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RotatingLog {
    /// Opens (or creates) `<dir>/<stem>.log` for appending; `dir` must exist. The current
    /// file's generation is one past the newest rotated file's.
    pub fn open(dir: &Path, stem: &str, rotation: Rotation) -> io::Result<RotatingLog> {
        let path = dir.join(current_name(stem));
        let generation = rotated_generations(dir, stem)?.last().map_or(0, |g| g + 1);
        let mut file = open_append(&path)?;
        let mut size = file.metadata()?.len();
        // A line cut short by a crash is ended, so the next record starts a line of its own.
        if size > 0 && last_byte(&path)? != Some(b'\n') {
            io::Write::write_all(&mut file, b"\n")?;
            size += 1;
        }
        let log = RotatingLog {
            path,
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                stem: stem.to_string(),
                rotation,
                file: Some(file),
                size,
                generation,
            }),
        };
        // A file already over the cap (written before the cap, or with a larger one) is
        // rotated now, so the cap holds from the start.
        {
            let mut inner = log.inner.lock().unwrap_or_else(|p| p.into_inner());
            if inner.size > inner.rotation.max_file_bytes {
                inner.rotate(&log.path)?;
            }
        }
        Ok(log)
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `lines` (without their newlines), each prefixed with `ts`.
    pub fn append(&self, ts: SystemTime, lines: &[&[u8]]) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut prefix = Vec::with_capacity(record::PREFIX_LEN + 1);
        record::write_prefix(&mut prefix, ts);
        let mut buf = Vec::new();
        for line in lines {
            let len = (prefix.len() + line.len() + 1) as u64;
            let pending = buf.len() as u64;
            if inner.size + pending > 0
                && inner.size + pending + len > inner.rotation.max_file_bytes
            {
                inner.write(&buf, &self.path)?;
                buf.clear();
                inner.rotate(&self.path)?;
            }
            buf.extend_from_slice(&prefix);
            buf.extend_from_slice(line);
            buf.push(b'\n');
        }
        inner.write(&buf, &self.path)
    }
}

impl Inner {
    fn write(&mut self, buf: &[u8], path: &Path) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            let file = open_append(path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(buf).map_err(|e| with_path(e, path))?;
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Renames the current file to its generation's name, starts a new one and deletes
    /// rotated files beyond the cap.
    fn rotate(&mut self, path: &Path) -> io::Result<()> {
        self.file = None;
        let rotated = self.dir.join(rotated_name(&self.stem, self.generation));
        // Rename before create: a reader that finds `<stem>.log.<g>` knows `<stem>.log` is
        // a later generation (see `source`).
        fs_err::rename(path, &rotated)?;
        self.generation += 1;
        let file = open_append(path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        let keep_from = self.generation.saturating_sub(self.rotation.rotated_files);
        for g in rotated_generations(&self.dir, &self.stem)? {
            if g < keep_from {
                let old = self.dir.join(rotated_name(&self.stem, g));
                if let Err(e) = fs_err::remove_file(&old) {
                    if e.kind() != io::ErrorKind::NotFound {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<std::fs::File> {
    Ok(fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .into_parts()
        .0)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    carry: Vec<u8>,
}

impl LineSplitter {
    /// Takes `bytes` and gives back every line completed by them (without `\n`; a `\r`
    /// before it is dropped too).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let (body, ended) = match chunk.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (chunk, false),
            };
            let mut body = body;
            while self.carry.len() + body.len() > MAX_MESSAGE {
                let take = MAX_MESSAGE - self.carry.len();
                self.carry.extend_from_slice(&body[..take]);
                out.push(std::mem::take(&mut self.carry));
                body = &body[take..];
            }
            self.carry.extend_from_slice(body);
            if ended {
                let mut line = std::mem::take(&mut self.carry);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                out.push(line);
            }
        }
        out
    }

    /// The unfinished last line, if any (at the end of the stream).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.carry.is_empty()).then(|| std::mem::take(&mut self.carry))
    }
}

/// The last byte of a file, if it has one.
fn last_byte(path: &Path) -> io::Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte)?;
    Ok(Some(byte[0]))
}

/// How many chunks of lines may wait for a unit's log writer.
const PENDING_CHUNKS: usize = 256;

/// Copies `from` (a unit's stdout or stderr) into `log` line by line until it ends.
///
/// The lines are written by a thread of the unit's own, so a slow disk stalls only that
/// writer, never the caller (the supervisor's one thread) nor the unit: when the writer falls
/// [`PENDING_CHUNKS`] behind, lines are dropped and a line saying how many is written once it
/// catches up. A failed write (disk full) is logged once and the output dropped until
/// writing works again.
pub async fn pump<R: AsyncRead + Unpin>(mut from: R, log: Arc<RotatingLog>) {
    let (chunks, pending) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(PENDING_CHUNKS);
    let writer = log.clone();
    let spawned = std::thread::Builder::new()
        .name("unit-log".into())
        .spawn(move || {
            let mut failing = false;
            for lines in pending {
                let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
                match writer.append(SystemTime::now(), &refs) {
                    Ok(()) => failing = false,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(log = %writer.path().display(), error = %e, "cannot write a unit's log; dropping its output until writing works");
                        }
                        failing = true;
                    }
                }
            }
        });
    let writer = match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(log = %log.path().display(), error = %e, "cannot start a unit's log writer; its output is dropped");
            None
        }
    };
    let mut buf = vec![0u8; MAX_LINE];
    let mut lines = LineSplitter::default();
    let mut dropped = 0u64;
    let mut send = |batch: Vec<Vec<u8>>| {
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        let batch = if dropped > 0 {
            let mut with_note = vec![format!(
                "[dcos-log] {dropped} lines dropped: the log writer could not keep up"
            )
            .into_bytes()];
            with_note.extend(batch);
            with_note
        } else {
            batch
        };
        match chunks.try_send(batch) {
            Ok(()) => dropped = 0,
            Err(_) => dropped += count,
        }
    };
    loop {
        match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => send(lines.push(&buf[..n])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if let Some(last) = lines.finish() {
        send(vec![last]);
    }
    // The pipe ended: the writer finishes what is pending, then the pump ends.
    drop(chunks);
    if let Some(handle) = writer {
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
}

#[cfg(test)]
mod tests;
