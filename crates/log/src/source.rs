//! Reading one log, line by line, forwards and backwards, across its rotated files.
//!
//! A position is a generation and a byte offset where a line starts (or the end of a
//! file). A unit's generations are its rotated files `<stem>.log.<g>` and the current file
//! `<stem>.log`, one past the newest rotated one ([`crate::rotate`]); a sandbox file is a
//! single generation. Because a file keeps its generation from rotation until it is
//! deleted, a position read before a rotation still finds the same bytes after it.
//!
//! Races with the writer are settled by the order it works in (rename the full file to
//! `<stem>.log.<g>`, then create the next `<stem>.log`): the current file is opened, then
//! `<stem>.log.<g>` is looked for; if it exists the rotation happened and that file is the
//! one meant. At the end of the current file, the reader checks the same name before it
//! concludes that nothing follows.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;

use crate::files;
use crate::rotate::{self, MAX_LINE};

/// A position in a log: before the line that starts at `offset` of generation `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// The file's generation.
    pub generation: u64,
    /// The byte offset in it.
    pub offset: u64,
}

/// One line as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Where it starts.
    pub start: Pos,
    /// The offset after it (after its newline, if it has one).
    pub end: u64,
    /// Its bytes, without the newline.
    pub bytes: Vec<u8>,
}

/// The files a log is made of.
#[derive(Debug)]
pub enum Series {
    /// A unit's log in the logs directory: rotated generations and the current file.
    Unit {
        /// The logs directory.
        dir: PathBuf,
        /// The file stem (`dcos-mesos-master.service`).
        stem: String,
    },
    /// One file of a sandbox (never rotated): generation 0.
    Sandbox {
        /// The open file.
        file: File,
    },
}

/// A reader of one log.
#[derive(Debug)]
pub struct Source {
    series: Series,
    /// Known generations, ascending; the last is the current file.
    gens: Vec<u64>,
    /// The file of the generation last read.
    open: Option<(u64, File)>,
}

/// How far a backward search for a line's start looks before it cuts the line.
const BACK_CHUNK: usize = 8 * 1024;

impl Source {
    /// A unit's log whose rotated generations are `rotated` (ascending).
    pub fn unit(dir: PathBuf, stem: String, rotated: Vec<u64>) -> Source {
        let mut gens = rotated;
        gens.push(gens.last().map_or(0, |g| g + 1));
        Source {
            series: Series::Unit { dir, stem },
            gens,
            open: None,
        }
    }

    /// A sandbox file.
    pub fn sandbox(file: File) -> Source {
        Source {
            series: Series::Sandbox { file },
            gens: vec![0],
            open: None,
        }
    }

    /// The first position.
    pub fn head(&self) -> Pos {
        Pos {
            generation: self.gens[0],
            offset: 0,
        }
    }

    /// The position after the last line; with `partial` false, a last line without its
    /// newline yet (being written) is left after it.
    pub fn tail(&mut self, partial: bool) -> io::Result<Pos> {
        self.refresh()?;
        let generation = self.current();
        let Some(file) = self.file(generation)? else {
            return Ok(Pos {
                generation,
                offset: 0,
            });
        };
        let len = file.metadata()?.len();
        let mut offset = len;
        let mut last = [0u8; 1];
        if !partial && len > 0 && read_some_at(file, &mut last, len - 1)? == 1 && last[0] != b'\n' {
            // Back to after the last newline; a line longer than can be stored whole counts
            // as finished, as forward reading cuts it.
            let from = len.saturating_sub(MAX_LINE as u64);
            let mut buf = vec![0; (len - from) as usize];
            read_exact_at(file, &mut buf, from)?;
            if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
                offset = from + i as u64 + 1;
            } else if from == 0 {
                offset = 0;
            }
        }
        Ok(Pos { generation, offset })
    }

    fn current(&self) -> u64 {
        *self.gens.last().unwrap_or(&0)
    }

    /// The generation of the current file, as last listed.
    pub fn current_generation(&self) -> u64 {
        self.current()
    }

    /// Lists the generations again.
    pub fn refresh(&mut self) -> io::Result<()> {
        if let Series::Unit { dir, stem } = &self.series {
            let mut gens = rotate::rotated_generations(dir, stem).or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })?;
            gens.push(gens.last().map_or(0, |g| g + 1));
            self.gens = gens;
        }
        Ok(())
    }

    /// The open file of `generation`, `None` when it is gone (deleted by rotation) or, for
    /// the current generation, not created yet.
    fn file(&mut self, generation: u64) -> io::Result<Option<&File>> {
        if self.open.as_ref().is_some_and(|(g, _)| *g == generation) {
            return Ok(self.open.as_ref().map(|(_, f)| f));
        }
        let file = match &self.series {
            Series::Sandbox { file } => Some(file.try_clone()?),
            Series::Unit { dir, stem } => {
                let current = dir.join(rotate::current_name(stem));
                let rotated = dir.join(rotate::rotated_name(stem, generation));
                if generation >= self.current() {
                    let file = open_if_exists(&current)?;
                    // Listed after the open: if `generation` is still the newest, the file
                    // opened is it (a rotation since renamed this very file); otherwise it
                    // was rotated before the open and has its rotated name.
                    self.refresh()?;
                    if generation >= self.current() {
                        file
                    } else {
                        open_if_exists(&rotated)?
                    }
                } else {
                    open_if_exists(&rotated)?
                }
            }
        };
        self.open = file.map(|f| (generation, f));
        Ok(self.open.as_ref().map(|(_, f)| f))
    }

    /// Whether `generation` was the current file and has been rotated since: the current
    /// name is no longer the file open for it.
    fn rotated_since(&mut self, generation: u64) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt as _;
        let Series::Unit { dir, stem } = &self.series else {
            return Ok(false);
        };
        if generation < self.current() {
            return Ok(true);
        }
        let current = dir.join(rotate::current_name(stem));
        let moved = match (&self.open, std::fs::metadata(&current)) {
            (Some((g, file)), Ok(now)) if *g == generation => {
                let open = file.metadata()?;
                (open.dev(), open.ino()) != (now.dev(), now.ino())
            }
            // Between the rename and the new file's creation.
            (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => true,
            (_, Err(e)) => return Err(e),
            (_, Ok(_)) => {
                std::fs::symlink_metadata(dir.join(rotate::rotated_name(stem, generation))).is_ok()
            }
        };
        if moved {
            self.refresh()?;
        }
        Ok(moved)
    }

    /// The first generation after `generation`, if one exists.
    fn next_generation(&self, generation: u64) -> Option<u64> {
        self.gens.iter().copied().find(|&g| g > generation)
    }

    /// The last generation before `generation`, if one exists.
    fn prev_generation(&self, generation: u64) -> Option<u64> {
        self.gens.iter().rev().copied().find(|&g| g < generation)
    }

    /// The line at `pos` (`None` at the end). With `partial` false, a last line without
    /// its newline is not read yet. `pos` may be the end of a file: the line is then the
    /// first of the next generation.
    pub fn line_at(&mut self, pos: Pos, partial: bool) -> io::Result<Option<Line>> {
        let mut pos = pos;
        loop {
            let generation = pos.generation;
            if generation < self.gens[0] {
                // Deleted by rotation since: go on from the oldest kept.
                self.refresh()?;
                if generation < self.gens[0] {
                    pos = self.head();
                    continue;
                }
            }
            let is_current = generation >= self.current();
            let line = match self.file(generation)? {
                Some(file) => read_line(file, pos, partial || !is_current)?,
                None if is_current => None,
                None => {
                    // Gone meanwhile.
                    self.refresh()?;
                    match self.next_generation(generation) {
                        Some(g) => {
                            pos = Pos {
                                generation: g,
                                offset: 0,
                            };
                            continue;
                        }
                        None => return Ok(None),
                    }
                }
            };
            if line.is_some() {
                return Ok(line);
            }
            if is_current && !self.rotated_since(generation)? {
                return Ok(None);
            }
            if is_current {
                // Rotated after the end was seen: whatever was written before the rotation
                // is in the same file, now under its rotated name.
                if let Some(file) = self.file(generation)? {
                    if let Some(line) = read_line(file, pos, true)? {
                        return Ok(Some(line));
                    }
                }
            }
            match self.next_generation(generation) {
                Some(g) => {
                    pos = Pos {
                        generation: g,
                        offset: 0,
                    }
                }
                None => return Ok(None),
            }
        }
    }

    /// The line that ends at `pos` (`None` at the beginning).
    pub fn line_before(&mut self, pos: Pos) -> io::Result<Option<Line>> {
        let mut pos = pos;
        loop {
            if pos.offset > 0 {
                if let Some(file) = self.file(pos.generation)? {
                    return read_line_before(file, pos).map(Some);
                }
                // Deleted: nothing before it is kept either.
                return Ok(None);
            }
            self.refresh()?;
            let Some(g) = self.prev_generation(pos.generation) else {
                return Ok(None);
            };
            let Some(file) = self.file(g)? else {
                return Ok(None);
            };
            pos = Pos {
                generation: g,
                offset: file.metadata()?.len(),
            };
        }
    }

    /// The first line start at or after `offset` in `generation` (for a cursor that points
    /// into a line, or at its newline, as dcos-log v2's file offsets do).
    pub fn line_start_at_or_after(&mut self, generation: u64, offset: u64) -> io::Result<Pos> {
        let Some(file) = self.file(generation)? else {
            return Ok(Pos {
                generation,
                offset: 0,
            });
        };
        let offset = line_start_at_or_after(file, offset)?;
        Ok(Pos { generation, offset })
    }

    /// The first position whose line satisfies `after` (which must be false then true
    /// along the log, as time is), by binary search in each file.
    pub fn seek(&mut self, after: &dyn Fn(&[u8]) -> bool) -> io::Result<Pos> {
        self.refresh()?;
        let gens = self.gens.clone();
        for generation in gens {
            let Some(file) = self.file(generation)? else {
                continue;
            };
            let len = file.metadata()?.len();
            let (mut lo, mut hi) = (0u64, len);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let start = line_start_at_or_after(file, mid)?;
                if start >= hi {
                    hi = mid;
                    continue;
                }
                let line = read_line(
                    file,
                    Pos {
                        generation,
                        offset: start,
                    },
                    true,
                )?;
                match line {
                    Some(line) if !after(&line.bytes) => lo = line.end.max(start + 1),
                    _ => hi = mid,
                }
            }
            let offset = line_start_at_or_after(file, lo)?;
            if offset < len {
                return Ok(Pos { generation, offset });
            }
        }
        self.tail(true)
    }
}

fn open_if_exists(path: &std::path::Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot open {}: {e}", path.display()),
        )),
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_some_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// The line starting at `pos`: up to its newline, or [`MAX_LINE`] bytes; at the end of the
/// file an unfinished line only with `partial`.
fn read_line(file: &File, pos: Pos, partial: bool) -> io::Result<Option<Line>> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 8 * 1024];
    loop {
        let at = pos.offset + bytes.len() as u64;
        let want = (MAX_LINE + 1 - bytes.len()).min(chunk.len());
        let n = read_some_at(file, &mut chunk[..want], at)?;
        if n == 0 {
            if bytes.is_empty() || !partial {
                return Ok(None);
            }
            let end = pos.offset + bytes.len() as u64;
            return Ok(Some(Line {
                start: pos,
                end,
                bytes,
            }));
        }
        if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
            bytes.extend_from_slice(&chunk[..i]);
            let end = pos.offset + bytes.len() as u64 + 1;
            return Ok(Some(Line {
                start: pos,
                end,
                bytes,
            }));
        }
        bytes.extend_from_slice(&chunk[..n]);
        if bytes.len() >= MAX_LINE {
            bytes.truncate(MAX_LINE);
            let end = pos.offset + MAX_LINE as u64;
            return Ok(Some(Line {
                start: pos,
                end,
                bytes,
            }));
        }
    }
}

/// The line ending at `pos` (`pos.offset > 0`): from after the previous newline (looked for
/// up to [`MAX_LINE`] bytes back) to `pos`.
fn read_line_before(file: &File, pos: Pos) -> io::Result<Line> {
    let end = pos.offset;
    // The line's own newline, if it has one, is its last byte.
    let mut last = [0u8; 1];
    read_exact_at(file, &mut last, end - 1)?;
    let body_end = if last[0] == b'\n' { end - 1 } else { end };
    let floor = body_end.saturating_sub(MAX_LINE as u64);
    let mut start = floor;
    let mut hi = body_end;
    let mut chunk = vec![0u8; BACK_CHUNK];
    while hi > floor {
        let lo = hi.saturating_sub(BACK_CHUNK as u64).max(floor);
        let buf = &mut chunk[..(hi - lo) as usize];
        read_exact_at(file, buf, lo)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            start = lo + i as u64 + 1;
            break;
        }
        hi = lo;
    }
    let mut bytes = vec![0u8; (body_end - start) as usize];
    read_exact_at(file, &mut bytes, start)?;
    Ok(Line {
        start: Pos {
            generation: pos.generation,
            offset: start,
        },
        end,
        bytes,
    })
}

/// The first line start at or after `offset`: `offset` itself when it follows a newline (or
/// is 0), else the byte after the next newline (or the end of the file).
fn line_start_at_or_after(file: &File, offset: u64) -> io::Result<u64> {
    if offset == 0 {
        return Ok(0);
    }
    let mut prev = [0u8; 1];
    if read_some_at(file, &mut prev, offset - 1)? == 0 {
        return Ok(file.metadata()?.len().min(offset));
    }
    if prev[0] == b'\n' {
        return Ok(offset);
    }
    let mut at = offset;
    let mut chunk = vec![0u8; 8 * 1024];
    loop {
        let n = read_some_at(file, &mut chunk, at)?;
        if n == 0 {
            return Ok(at);
        }
        if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
}

/// Opens the sandbox file `name` of an open sandbox directory as a source.
pub fn sandbox_file(dir: &File, name: &str) -> io::Result<Source> {
    files::open_file_in(dir, name).map(Source::sandbox)
}

#[cfg(test)]
mod tests;
