use super::*;
use crate::record;
use crate::rotate::{RotatingLog, Rotation};
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

fn rotation(max_file_bytes: u64) -> Rotation {
    Rotation {
        max_file_bytes,
        rotated_files: 100,
    }
}

fn write(log: &RotatingLog, from: usize, to: usize) {
    for i in from..to {
        let ts = UNIX_EPOCH + Duration::from_secs(1_000 + i as u64);
        log.append(ts, &[format!("line {i:03}").as_bytes()])
            .unwrap();
    }
}

fn unit_source(dir: &Path) -> Source {
    let logs = crate::files::unit_logs(dir).unwrap();
    let rotated = logs.get("u").cloned().unwrap_or_default();
    Source::unit(dir.to_path_buf(), "u".into(), rotated)
}

fn message(line: &Line) -> String {
    String::from_utf8(record::parse(&line.bytes).1.to_vec()).unwrap()
}

/// Reads forwards from `pos` to the end; the messages and the final position.
fn read_all(src: &mut Source, mut pos: Pos, partial: bool) -> (Vec<String>, Pos) {
    let mut out = Vec::new();
    while let Some(line) = src.line_at(pos, partial).unwrap() {
        out.push(message(&line));
        pos = Pos {
            generation: line.start.generation,
            offset: line.end,
        };
    }
    (out, pos)
}

fn expected(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("line {i:03}")).collect()
}

#[test]
fn lines_are_read_forwards_across_generations() {
    let dir = tempfile::tempdir().unwrap();
    // 28 + 8 + 1 = 37 bytes a line: 3 per file.
    let log = RotatingLog::open(dir.path(), "u", rotation(120)).unwrap();
    write(&log, 0, 10);
    let mut src = unit_source(dir.path());
    let head = src.head();
    assert_eq!(head.generation, 0);
    let (got, _) = read_all(&mut src, head, false);
    assert_eq!(got, expected(0, 10));
}

#[test]
fn a_position_stays_valid_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingLog::open(dir.path(), "u", rotation(120)).unwrap();
    write(&log, 0, 2);
    let mut src = unit_source(dir.path());
    let head = src.head();
    let (got, pos) = read_all(&mut src, head, false);
    assert_eq!(got, expected(0, 2));
    // The file being read fills up, is renamed, and more generations follow.
    write(&log, 2, 11);
    let (got, pos) = read_all(&mut src, pos, false);
    assert_eq!(got, expected(2, 11));
    write(&log, 11, 12);
    let (got, _) = read_all(&mut src, pos, false);
    assert_eq!(got, expected(11, 12));
}

#[test]
fn a_fresh_reader_finds_the_rotated_file_its_cursor_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingLog::open(dir.path(), "u", rotation(120)).unwrap();
    write(&log, 0, 2);
    let mut src = unit_source(dir.path());
    let first = src.line_at(src.head(), false).unwrap().unwrap();
    assert_eq!(first.start.generation, 0);
    write(&log, 2, 8);
    // A new reader (another request) with the same position reads the same line.
    let mut again = unit_source(dir.path());
    let line = again.line_at(first.start, false).unwrap().unwrap();
    assert_eq!(line, first);
}

#[test]
fn lines_are_read_backwards_from_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingLog::open(dir.path(), "u", rotation(120)).unwrap();
    write(&log, 0, 7);
    let mut src = unit_source(dir.path());
    let mut pos = src.tail(false).unwrap();
    let mut got = Vec::new();
    while let Some(line) = src.line_before(pos).unwrap() {
        got.push(message(&line));
        pos = line.start;
    }
    got.reverse();
    assert_eq!(got, expected(0, 7));
    assert_eq!(pos, src.head());
}

#[test]
fn an_unfinished_line_waits_for_its_newline_when_following() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stdout");
    fs_err::write(&path, "one\ntw").unwrap();
    let mut src = Source::sandbox(std::fs::File::open(&path).unwrap());
    let tail = src.tail(false).unwrap();
    assert_eq!(tail.offset, 4);
    assert_eq!(src.tail(true).unwrap().offset, 6);
    let line = |l: Option<Line>| l.map(|l| String::from_utf8(l.bytes).unwrap());
    assert_eq!(line(src.line_at(tail, false).unwrap()), None);
    assert_eq!(
        line(src.line_at(tail, true).unwrap()).as_deref(),
        Some("tw")
    );
    let mut f = fs_err::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"o\nthree\n").unwrap();
    let two = src.line_at(tail, false).unwrap().unwrap();
    assert_eq!(two.bytes, b"two");
    assert_eq!(two.end, 8);
    let before = src
        .line_before(Pos {
            generation: 0,
            offset: 8,
        })
        .unwrap()
        .unwrap();
    assert_eq!(before, two);
}

#[test]
fn offsets_inside_a_line_move_to_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stdout");
    fs_err::write(&path, "alpha\nbeta\ngamma\n").unwrap();
    let mut src = Source::sandbox(std::fs::File::open(&path).unwrap());
    let at = |src: &mut Source, o| src.line_start_at_or_after(0, o).unwrap().offset;
    assert_eq!(at(&mut src, 0), 0);
    assert_eq!(at(&mut src, 3), 6);
    // dcos-log v2's ids point at a line's newline: the next line follows.
    assert_eq!(at(&mut src, 5), 6);
    assert_eq!(at(&mut src, 6), 6);
    assert_eq!(at(&mut src, 100), 17);
}

#[test]
fn very_long_lines_are_cut_the_same_way_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stdout");
    let mut text = vec![b'a'; MAX_LINE + 10];
    text.push(b'\n');
    text.extend_from_slice(b"short\n");
    fs_err::write(&path, &text).unwrap();
    let mut src = Source::sandbox(std::fs::File::open(&path).unwrap());
    let first = src.line_at(src.head(), false).unwrap().unwrap();
    assert_eq!(first.bytes.len(), MAX_LINE);
    let second = src
        .line_at(
            Pos {
                generation: 0,
                offset: first.end,
            },
            false,
        )
        .unwrap()
        .unwrap();
    assert_eq!(second.bytes, vec![b'a'; 10]);
    let tail = src.tail(false).unwrap();
    let last = src.line_before(tail).unwrap().unwrap();
    assert_eq!(last.bytes, b"short");
    let long = src.line_before(last.start).unwrap().unwrap();
    assert_eq!(long.bytes.len(), MAX_LINE);
}

#[test]
fn seek_finds_the_first_line_after_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingLog::open(dir.path(), "u", rotation(120)).unwrap();
    write(&log, 0, 10);
    let mut src = unit_source(dir.path());
    for target in [0u64, 1, 4, 5, 9] {
        let t = (1_000 + target) * 1_000_000;
        let after = move |b: &[u8]| record::parse(b).0.unwrap_or(0) > t;
        let pos = src.seek(&after).unwrap();
        let (got, _) = read_all(&mut src, pos, false);
        assert_eq!(got, expected(target as usize + 1, 10), "after {target}");
    }
    let before_all = |_: &[u8]| true;
    let pos = src.seek(&before_all).unwrap();
    assert_eq!(pos, src.head());
}

#[test]
fn a_reader_on_a_deleted_generation_goes_on_from_the_oldest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingLog::open(
        dir.path(),
        "u",
        Rotation {
            max_file_bytes: 40,
            rotated_files: 2,
        },
    )
    .unwrap();
    write(&log, 0, 2);
    let mut src = unit_source(dir.path());
    let head = src.head();
    write(&log, 2, 8);
    // Generations 0..=4 are gone; 5 and 6 are kept; 7 is current.
    let (got, _) = read_all(&mut src, head, false);
    assert_eq!(got, expected(5, 8));
}
