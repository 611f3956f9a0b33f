//! A journald-like view over several logs: entries of every selected source merged in time
//! order, matches (`filter=FIELD:value`), positions from the head, the tail or a cursor,
//! skips both ways, reading both ways.
//!
//! A position in the merged view is one position per source: before the next unread line
//! of each. Reading forwards takes, among the sources' next lines, the one earliest in
//! (time, source key, generation, offset); reading backwards the latest of the lines
//! before. A cursor names one entry (its source, generation, offset and time), so it stays
//! valid across rotations; seeking it puts its own source right after that entry and every
//! other source after its entries of an earlier (time, key), found by binary search.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use crate::record;
use crate::source::{Line, Pos, Source};

/// The fields every entry of a source has (`_SYSTEMD_UNIT`, `FRAMEWORK_ID`, ...).
pub type Fields = BTreeMap<&'static str, String>;

/// What a source is.
#[derive(Debug)]
pub struct SourceInfo {
    /// Its name in cursors: a unit log's stem, a task's `STDOUT`/`STDERR`.
    pub key: String,
    /// Fields of each of its entries.
    pub fields: Fields,
    /// Whether its lines carry the supervisor's time prefix ([`record`]).
    pub timed: bool,
}

/// One entry read.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its source.
    pub source: Arc<SourceInfo>,
    /// Where it starts.
    pub start: Pos,
    /// Where it ends (the next entry's offset in the same file).
    pub end: u64,
    /// When it was logged (microseconds since the epoch), when known.
    pub ts: Option<u64>,
    /// What was logged.
    pub message: Vec<u8>,
}

impl Entry {
    fn of(source: &Arc<SourceInfo>, line: &Line) -> Entry {
        let (ts, message) = if source.timed {
            record::parse(&line.bytes)
        } else {
            (None, &line.bytes[..])
        };
        Entry {
            source: source.clone(),
            start: line.start,
            end: line.end,
            ts,
            message: message.to_vec(),
        }
    }

    /// Its cursor.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            key: self.source.key.clone(),
            generation: self.start.generation,
            offset: self.start.offset,
            ts: self.ts.unwrap_or(0),
        }
    }

    /// Its place in the merged order.
    fn order(&self) -> (u64, &str, Pos) {
        (self.ts.unwrap_or(0), &self.source.key, self.start)
    }
}

/// A cursor: `s=<source>;i=<generation>;o=<offset>;t=<time>`, opaque to clients as
/// journald's are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The entry's source.
    pub key: String,
    /// Its file's generation.
    pub generation: u64,
    /// Its offset in the file.
    pub offset: u64,
    /// Its time (0 when unknown).
    pub ts: u64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s={};i={};o={};t={}",
            self.key, self.generation, self.offset, self.ts
        )
    }
}

impl std::str::FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Cursor, ()> {
        let mut key = None;
        let (mut generation, mut offset, mut ts) = (None, None, None);
        for part in s.split(';') {
            let (k, v) = part.split_once('=').ok_or(())?;
            let number = || v.parse::<u64>().map_err(|_| ());
            match k {
                "s" if !v.is_empty() && key.is_none() => key = Some(v.to_string()),
                "i" if generation.is_none() => generation = Some(number()?),
                "o" if offset.is_none() => offset = Some(number()?),
                "t" if ts.is_none() => ts = Some(number()?),
                _ => return Err(()),
            }
        }
        Ok(Cursor {
            key: key.ok_or(())?,
            generation: generation.ok_or(())?,
            offset: offset.ok_or(())?,
            ts: ts.ok_or(())?,
        })
    }
}

/// Matches: fields of one clause are ORed, clauses ANDed (journald: matches on one field
/// are alternatives, on different fields all must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    clauses: Vec<Vec<(String, String)>>,
}

impl Filter {
    /// Adds `FIELD=value`, an alternative to earlier matches on the same field.
    pub fn add(&mut self, field: &str, value: &str) {
        let pair = (field.to_string(), value.to_string());
        let same_field = self
            .clauses
            .iter_mut()
            .find(|c| c.iter().all(|(f, _)| f == field));
        match same_field {
            Some(clause) => clause.push(pair),
            None => self.clauses.push(vec![pair]),
        }
    }

    /// Adds a clause that holds when any of `pairs` does.
    pub fn add_any(&mut self, pairs: &[(&str, &str)]) {
        self.clauses.push(
            pairs
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect(),
        );
    }

    /// Whether entries of a source with `fields` may match; the `MESSAGE` values that each
    /// remaining clause then asks for.
    fn for_source(&self, fields: &Fields) -> Option<Vec<Vec<Vec<u8>>>> {
        let mut residual = Vec::new();
        for clause in &self.clauses {
            let holds = clause
                .iter()
                .any(|(f, v)| f != "MESSAGE" && fields.get(f.as_str()) == Some(v));
            if holds {
                continue;
            }
            let messages: Vec<Vec<u8>> = clause
                .iter()
                .filter(|(f, _)| f == "MESSAGE")
                .map(|(_, v)| v.clone().into_bytes())
                .collect();
            if messages.is_empty() {
                return None;
            }
            residual.push(messages);
        }
        Some(residual)
    }

    /// Whether a source with `fields` can have matching entries.
    pub fn admits(&self, fields: &Fields) -> bool {
        self.for_source(fields).is_some()
    }
}

struct Slot {
    info: Arc<SourceInfo>,
    source: Source,
    /// The clauses left to check on each entry's message.
    residual: Vec<Vec<Vec<u8>>>,
    pos: Pos,
    /// The line at `pos`, once read.
    ahead: Option<Line>,
    /// The line ending at `pos`, once read.
    behind: Option<Line>,
}

impl Slot {
    fn set(&mut self, pos: Pos) {
        self.pos = pos;
        self.ahead = None;
        self.behind = None;
    }

    fn matches(&self, entry: &Entry) -> bool {
        self.residual
            .iter()
            .all(|values| values.contains(&entry.message))
    }
}

/// The merged view.
pub struct Journal {
    slots: Vec<Slot>,
    filter: Filter,
    /// Whether a last line without its newline is read (ranges) or waited for (streams).
    partial: bool,
}

impl Journal {
    /// An empty view with `filter`; `partial` as for [`Source::line_at`].
    pub fn new(filter: Filter, partial: bool) -> Journal {
        Journal {
            slots: Vec::new(),
            filter,
            partial,
        }
    }

    /// Adds a source, at its head or tail; one the filter excludes is left out (false).
    pub fn add(&mut self, info: SourceInfo, mut source: Source, at_tail: bool) -> io::Result<bool> {
        let Some(residual) = self.filter.for_source(&info.fields) else {
            return Ok(false);
        };
        let pos = if at_tail {
            source.tail(self.partial)?
        } else {
            source.head()
        };
        self.slots.push(Slot {
            info: Arc::new(info),
            source,
            residual,
            pos,
            ahead: None,
            behind: None,
        });
        Ok(true)
    }

    /// The filter.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Whether a source with this key is in the view.
    pub fn has(&self, key: &str) -> bool {
        self.slots.iter().any(|s| s.info.key == key)
    }

    /// Whether the view has no sources.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// To the first entry.
    pub fn seek_head(&mut self) {
        for slot in &mut self.slots {
            let head = slot.source.head();
            slot.set(head);
        }
    }

    /// After the last entry.
    pub fn seek_tail(&mut self) -> io::Result<()> {
        for slot in &mut self.slots {
            let tail = slot.source.tail(self.partial)?;
            slot.set(tail);
        }
        Ok(())
    }

    /// Right after the entry `cursor` names.
    pub fn seek_cursor(&mut self, cursor: &Cursor) -> io::Result<()> {
        let partial = self.partial;
        for slot in &mut self.slots {
            slot.source.refresh()?;
            let pos = if slot.info.key == cursor.key {
                if cursor.generation < slot.source.head().generation {
                    slot.source.head()
                } else if cursor.generation > slot.source.current_generation() {
                    // Not a file of this log (yet): nothing it names has been read.
                    slot.source.tail(partial)?
                } else {
                    let start = slot
                        .source
                        .line_start_at_or_after(cursor.generation, cursor.offset)?;
                    match slot.source.line_at(start, true)? {
                        Some(line) => Pos {
                            generation: line.start.generation,
                            offset: line.end,
                        },
                        None => slot.source.tail(partial)?,
                    }
                }
            } else {
                let key = slot.info.key.clone();
                let timed = slot.info.timed;
                let after = move |bytes: &[u8]| {
                    let ts = if timed { record::parse(bytes).0 } else { None };
                    (ts.unwrap_or(0), key.as_str()) > (cursor.ts, cursor.key.as_str())
                };
                slot.source.seek(&after)?
            };
            slot.set(pos);
        }
        Ok(())
    }

    /// Before the first entry at or after byte `offset` of a single-file view (dcos-log
    /// v2's file cursors).
    pub fn seek_offset(&mut self, offset: u64) -> io::Result<()> {
        for slot in &mut self.slots {
            let generation = slot.source.head().generation;
            let pos = slot.source.line_start_at_or_after(generation, offset)?;
            slot.set(pos);
        }
        Ok(())
    }

    /// The next matching entry, moving past it.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        loop {
            let mut best: Option<(usize, Entry)> = None;
            for (i, slot) in self.slots.iter_mut().enumerate() {
                if slot.ahead.is_none() {
                    slot.ahead = slot.source.line_at(slot.pos, self.partial)?;
                }
                if let Some(line) = &slot.ahead {
                    let entry = Entry::of(&slot.info, line);
                    if best.as_ref().is_none_or(|(_, b)| entry.order() < b.order()) {
                        best = Some((i, entry));
                    }
                }
            }
            let Some((i, entry)) = best else {
                return Ok(None);
            };
            let slot = &mut self.slots[i];
            let line = slot.ahead.take();
            slot.pos = Pos {
                generation: entry.start.generation,
                offset: entry.end,
            };
            slot.behind = line;
            if slot.matches(&entry) {
                return Ok(Some(entry));
            }
        }
    }

    /// The previous matching entry, moving before it.
    pub fn prev_entry(&mut self) -> io::Result<Option<Entry>> {
        loop {
            let mut best: Option<(usize, Entry)> = None;
            for (i, slot) in self.slots.iter_mut().enumerate() {
                if slot.behind.is_none() {
                    slot.behind = slot.source.line_before(slot.pos)?;
                }
                if let Some(line) = &slot.behind {
                    let entry = Entry::of(&slot.info, line);
                    if best.as_ref().is_none_or(|(_, b)| entry.order() > b.order()) {
                        best = Some((i, entry));
                    }
                }
            }
            let Some((i, entry)) = best else {
                return Ok(None);
            };
            let slot = &mut self.slots[i];
            let line = slot.behind.take();
            slot.pos = entry.start;
            slot.ahead = line;
            if slot.matches(&entry) {
                return Ok(Some(entry));
            }
        }
    }

    /// Skips up to `n` matching entries backwards; how many there were.
    pub fn skip_prev(&mut self, n: u64) -> io::Result<u64> {
        let mut done = 0;
        while done < n && self.prev_entry()?.is_some() {
            done += 1;
        }
        Ok(done)
    }

    /// Skips up to `n` matching entries forwards; how many there were.
    pub fn skip_next(&mut self, n: u64) -> io::Result<u64> {
        let mut done = 0;
        while done < n && self.next_entry()?.is_some() {
            done += 1;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
