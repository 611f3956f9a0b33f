use super::*;
use crate::rotate::{RotatingLog, Rotation};
use crate::select::{self, Node};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

fn node() -> Node {
    Node {
        hostname: "h".into(),
        boot_id: None,
        boot_usec: 0,
    }
}

/// Writes `line <n>` at second `n` to unit `stem`, for each n.
fn write(dir: &Path, stem: &str, ns: &[u64], max_file_bytes: u64) {
    let log = RotatingLog::open(
        dir,
        stem,
        Rotation {
            max_file_bytes,
            rotated_files: 100,
        },
    )
    .unwrap();
    for &n in ns {
        let ts = UNIX_EPOCH + Duration::from_secs(n);
        log.append(ts, &[format!("line {n}").as_bytes()]).unwrap();
    }
}

fn journal(dir: &Path, filter: Filter) -> Journal {
    select::units(dir, &node(), filter, true).unwrap()
}

fn text(e: &Entry) -> String {
    format!("{}:{}", e.source.key, String::from_utf8_lossy(&e.message))
}

fn forwards(j: &mut Journal) -> Vec<String> {
    std::iter::from_fn(|| j.next_entry().unwrap())
        .map(|e| text(&e))
        .collect()
}

fn two_units(dir: &Path) {
    write(dir, "a.service", &[1, 3, 5, 7, 9], 100);
    write(dir, "b.service", &[2, 4, 6, 8], 100);
}

#[test]
fn units_are_merged_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    two_units(dir.path());
    let mut j = journal(dir.path(), Filter::default());
    j.seek_head();
    let got = forwards(&mut j);
    let want: Vec<String> = (1..=9)
        .map(|n| format!("{}.service:line {n}", if n % 2 == 1 { "a" } else { "b" }))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn skipping_back_from_the_tail_gives_the_last_entries() {
    let dir = tempfile::tempdir().unwrap();
    two_units(dir.path());
    let mut j = journal(dir.path(), Filter::default());
    j.seek_tail().unwrap();
    assert_eq!(j.skip_prev(3).unwrap(), 3);
    assert_eq!(
        forwards(&mut j),
        ["a.service:line 7", "b.service:line 8", "a.service:line 9"]
    );
    // More than there is: all of it, and the count says so.
    j.seek_tail().unwrap();
    assert_eq!(j.skip_prev(100).unwrap(), 9);
    assert_eq!(forwards(&mut j).len(), 9);
}

#[test]
fn a_unit_filter_reads_one_unit() {
    let dir = tempfile::tempdir().unwrap();
    two_units(dir.path());
    let mut filter = Filter::default();
    filter.add("_SYSTEMD_UNIT", "b.service");
    let mut j = journal(dir.path(), filter);
    j.seek_tail().unwrap();
    assert_eq!(j.skip_prev(2).unwrap(), 2);
    assert_eq!(forwards(&mut j), ["b.service:line 6", "b.service:line 8"]);
    // Alternatives on one field: both units.
    let mut filter = Filter::default();
    filter.add("_SYSTEMD_UNIT", "b.service");
    filter.add("_SYSTEMD_UNIT", "a.service");
    let mut j = journal(dir.path(), filter);
    j.seek_head();
    assert_eq!(forwards(&mut j).len(), 9);
    // Different fields must all hold.
    let mut filter = Filter::default();
    filter.add("_SYSTEMD_UNIT", "b.service");
    filter.add("_HOSTNAME", "elsewhere");
    assert!(journal(dir.path(), filter).is_empty());
}

#[test]
fn a_message_filter_is_checked_on_each_entry() {
    let dir = tempfile::tempdir().unwrap();
    two_units(dir.path());
    let mut filter = Filter::default();
    filter.add("MESSAGE", "line 4");
    let mut j = journal(dir.path(), filter);
    j.seek_head();
    assert_eq!(forwards(&mut j), ["b.service:line 4"]);
    j.seek_tail().unwrap();
    assert_eq!(j.skip_prev(5).unwrap(), 1);
}

#[test]
fn a_cursor_resumes_right_after_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    two_units(dir.path());
    let mut j = journal(dir.path(), Filter::default());
    j.seek_head();
    let mut cursor = None;
    for _ in 0..4 {
        cursor = j.next_entry().unwrap();
    }
    let cursor = cursor.unwrap().cursor();
    assert_eq!(cursor.key, "b.service");
    let printed = cursor.to_string();
    assert_eq!(printed.parse::<Cursor>().unwrap(), cursor);
    let mut again = journal(dir.path(), Filter::default());
    again.seek_cursor(&cursor).unwrap();
    let got = forwards(&mut again);
    assert_eq!(got.first().map(String::as_str), Some("a.service:line 5"));
    assert_eq!(got.len(), 5);
    // Back one from the cursor is the cursor's own entry.
    again.seek_cursor(&cursor).unwrap();
    assert_eq!(again.skip_prev(1).unwrap(), 1);
    assert_eq!(
        again.next_entry().unwrap().map(|e| text(&e)).as_deref(),
        Some("b.service:line 4")
    );
}

#[test]
fn a_cursor_survives_the_rotation_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    // One line per file after the first: each write rotates.
    write(dir.path(), "a.service", &[1, 2], 1000);
    let mut j = journal(dir.path(), Filter::default());
    j.seek_head();
    let first = j.next_entry().unwrap().unwrap();
    assert_eq!(first.start.generation, 0);
    let cursor = first.cursor();
    write(dir.path(), "a.service", &[3, 4, 5], 60);
    let mut again = journal(dir.path(), Filter::default());
    again.seek_cursor(&cursor).unwrap();
    assert_eq!(
        forwards(&mut again),
        [
            "a.service:line 2",
            "a.service:line 3",
            "a.service:line 4",
            "a.service:line 5"
        ]
    );
}

#[test]
fn entries_written_while_following_are_read() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.service", &[1], 100);
    let mut j = select::units(dir.path(), &node(), Filter::default(), false).unwrap();
    j.seek_tail().unwrap();
    assert!(j.next_entry().unwrap().is_none());
    write(dir.path(), "a.service", &[2, 3, 4, 5], 100);
    assert_eq!(
        forwards(&mut j),
        [
            "a.service:line 2",
            "a.service:line 3",
            "a.service:line 4",
            "a.service:line 5"
        ]
    );
}

#[test]
fn garbage_is_not_a_cursor() {
    for bad in [
        "",
        "s=a",
        "s=a;i=1;o=2",
        "s=a;i=x;o=2;t=3",
        "s=;i=1;o=2;t=3",
        "s=a;i=1;o=2;t=3;z=4",
        "s=a;i=1;o=2;t=3;t=3",
    ] {
        assert!(bad.parse::<Cursor>().is_err(), "{bad}");
    }
}

proptest::proptest! {
    /// Skipping back n from the tail and reading forwards gives the last n entries, whatever
    /// the interleaving and rotation.
    #[test]
    fn the_last_n_entries_are_the_tail_of_the_whole(
        a in proptest::collection::btree_set(1u64..200, 0..30),
        b in proptest::collection::btree_set(200u64..400, 0..30),
        n in 0u64..70,
        max in 40u64..200,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<u64> = a.into_iter().collect();
        // b's times overlap a's: shifted back into the same range.
        let b: Vec<u64> = b.into_iter().map(|t| t - 199).collect();
        write(dir.path(), "a.service", &a, max);
        write(dir.path(), "b.service", &b, max);
        let mut j = journal(dir.path(), Filter::default());
        j.seek_head();
        let all = forwards(&mut j);
        proptest::prop_assert_eq!(all.len(), a.len() + b.len());
        j.seek_tail().unwrap();
        let skipped = j.skip_prev(n).unwrap();
        proptest::prop_assert_eq!(skipped, n.min(all.len() as u64));
        let tail = forwards(&mut j);
        proptest::prop_assert_eq!(&tail[..], &all[all.len() - skipped as usize..]);
    }
}

#[test]
fn a_cursor_of_a_future_generation_reads_from_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.service", &[1, 2], 1000);
    let mut j = journal(dir.path(), Filter::default());
    let bogus = Cursor {
        key: "a.service".into(),
        generation: 99,
        offset: 0,
        ts: 0,
    };
    j.seek_cursor(&bogus).unwrap();
    assert!(j.next_entry().unwrap().is_none());
    write(dir.path(), "a.service", &[3], 1000);
    assert_eq!(forwards(&mut j), ["a.service:line 3"]);
}
