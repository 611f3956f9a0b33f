use super::*;
use std::time::{Duration, UNIX_EPOCH};

fn ts() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn small(max_file_bytes: u64, rotated_files: u64) -> Rotation {
    Rotation {
        max_file_bytes,
        rotated_files,
    }
}

/// The messages of a stored file, in order.
fn messages(path: &Path) -> Vec<String> {
    let text = fs_err::read(path).unwrap();
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(record::parse(l).1).into_owned())
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn names_parse_back_to_stem_and_generation() {
    assert_eq!(
        parse_name("dcos-mesos-master.service.log"),
        Some(("dcos-mesos-master.service", None))
    );
    assert_eq!(parse_name("a.service.log.7"), Some(("a.service", Some(7))));
    assert_eq!(parse_name("a.log.0"), Some(("a", Some(0))));
    for bad in [
        "a.log.07", "a.log.", "a.log.x", ".log", ".log.3", "a.txt", "a.log.-1",
    ] {
        assert_eq!(parse_name(bad), None, "{bad}");
    }
}

#[test]
fn a_full_file_is_rotated_and_lines_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    // Each stored line is 28 + 10 + 1 = 39 bytes: two fit in 100.
    let log = RotatingLog::open(dir.path(), "u.service", small(100, 5)).unwrap();
    for i in 0..5 {
        log.append(ts(), &[format!("message-{i:02}").as_bytes()])
            .unwrap();
    }
    assert_eq!(
        files(dir.path()),
        ["u.service.log", "u.service.log.0", "u.service.log.1"]
    );
    assert_eq!(
        messages(&dir.path().join("u.service.log.0")),
        ["message-00", "message-01"]
    );
    assert_eq!(
        messages(&dir.path().join("u.service.log.1")),
        ["message-02", "message-03"]
    );
    assert_eq!(messages(log.path()), ["message-04"]);
    for f in files(dir.path()) {
        assert!(fs_err::metadata(dir.path().join(f)).unwrap().len() <= 100);
    }
}

#[test]
fn only_the_newest_rotated_files_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingLog::open(dir.path(), "u", small(40, 2)).unwrap();
    for i in 0..10 {
        log.append(ts(), &[format!("line-{i}").as_bytes()]).unwrap();
    }
    // One line per file: generations 0..=8 rotated, 7 and 8 kept, line-9 current.
    assert_eq!(files(dir.path()), ["u.log", "u.log.7", "u.log.8"]);
    assert_eq!(messages(&dir.path().join("u.log.7")), ["line-7"]);
    assert_eq!(messages(log.path()), ["line-9"]);
}

#[test]
fn the_total_size_stays_under_the_cap_however_much_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let rotation = small(4096, 3);
    let log = RotatingLog::open(dir.path(), "u", rotation).unwrap();
    let line = vec![b'x'; 200];
    for _ in 0..5000 {
        log.append(ts(), &[&line, &line]).unwrap();
    }
    let total: u64 = files(dir.path())
        .iter()
        .map(|f| fs_err::metadata(dir.path().join(f)).unwrap().len())
        .sum();
    assert!(total <= rotation.max_file_bytes * (rotation.rotated_files + 1));
    assert_eq!(files(dir.path()).len(), 4);
}

#[test]
fn reopening_continues_the_generations() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = RotatingLog::open(dir.path(), "u", small(40, 5)).unwrap();
        for i in 0..3 {
            log.append(ts(), &[format!("a-{i}").as_bytes()]).unwrap();
        }
    }
    let log = RotatingLog::open(dir.path(), "u", small(40, 5)).unwrap();
    log.append(ts(), &[b"b-0"]).unwrap();
    assert_eq!(
        files(dir.path()),
        ["u.log", "u.log.0", "u.log.1", "u.log.2"]
    );
    assert_eq!(messages(&dir.path().join("u.log.2")), ["a-2"]);
    assert_eq!(messages(log.path()), ["b-0"]);
}

#[test]
fn concurrent_appends_never_interleave_within_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(RotatingLog::open(dir.path(), "u", small(64 * 1024, 100)).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let line = format!("{t}:{i}:{}", "y".repeat(100));
                    log.append(ts(), &[line.as_bytes()]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut all = Vec::new();
    let mut names = files(dir.path());
    // Oldest first: rotated by generation, then the current file.
    names.sort_by_key(|n| parse_name(n).and_then(|(_, g)| g).unwrap_or(u64::MAX));
    for f in names {
        all.extend(messages(&dir.path().join(f)));
    }
    assert_eq!(all.len(), 2000);
    for t in 0..4 {
        let seen: Vec<usize> = all
            .iter()
            .filter_map(|m| {
                let mut parts = m.split(':');
                (parts.next()? == t.to_string()).then(|| {
                    assert_eq!(parts.clone().nth(1).unwrap(), "y".repeat(100));
                    parts.next().unwrap().parse().unwrap()
                })
            })
            .collect();
        assert_eq!(seen, (0..500).collect::<Vec<_>>(), "writer {t} in order");
    }
}

#[test]
fn long_lines_are_split_and_carriage_returns_dropped() {
    let mut s = LineSplitter::default();
    assert!(s.push(b"par").is_empty());
    assert_eq!(
        s.push(b"tial\r\nnext\nla"),
        vec![b"partial".to_vec(), b"next".to_vec()]
    );
    assert_eq!(s.finish(), Some(b"la".to_vec()));
    assert_eq!(s.finish(), None);
    // Messages are cut so that a stored line (time prefix and newline included) fits the
    // readers' MAX_LINE.
    let long = vec![b'z'; MAX_MESSAGE * 2 + 5];
    let out = s.push(&long);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|l| l.len() == MAX_MESSAGE));
    const { assert!(MAX_MESSAGE + crate::record::PREFIX_LEN + 2 <= MAX_LINE) };
    assert_eq!(s.push(b"\n"), vec![vec![b'z'; 5]]);
}

#[tokio::test]
async fn pump_stores_every_line_of_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(RotatingLog::open(dir.path(), "u", Rotation::default()).unwrap());
    let (mut tx, rx) = tokio::io::duplex(64);
    let pump = tokio::spawn(pump(rx, log.clone()));
    use tokio::io::AsyncWriteExt as _;
    for i in 0..100 {
        tx.write_all(format!("line {i}\n").as_bytes())
            .await
            .unwrap();
    }
    tx.write_all(b"no newline at the end").await.unwrap();
    drop(tx);
    pump.await.unwrap();
    let got = messages(log.path());
    assert_eq!(got.len(), 101);
    assert_eq!(got[0], "line 0");
    assert_eq!(got[99], "line 99");
    assert_eq!(got[100], "no newline at the end");
}

#[test]
fn a_line_cut_by_a_crash_is_ended_and_an_oversized_file_rotated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    // A predecessor died mid-line.
    fs_err::write(
        dir.path().join("u.log"),
        b"2023-11-14T22:13:20.000000Z half",
    )
    .unwrap();
    let log = RotatingLog::open(dir.path(), "u", small(1024, 5)).unwrap();
    log.append(ts(), &[b"next"]).unwrap();
    assert_eq!(messages(log.path()), ["half", "next"]);
    drop(log);
    // A file written before the cap, far over it, is rotated at once.
    let big = dir.path().join("v.log");
    fs_err::write(&big, "2023-11-14T22:13:20.000000Z x\n".repeat(100)).unwrap();
    let log = RotatingLog::open(dir.path(), "v", small(1024, 5)).unwrap();
    assert_eq!(fs_err::metadata(log.path()).unwrap().len(), 0);
    assert!(files(dir.path()).contains(&"v.log.0".to_string()));
}
