//! The embedded (redb) backend: the common suite, plus persistence across reopen and kill -9.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use dcos_store::CreateMode::{Ephemeral, Persistent, PersistentSequential};
use dcos_store::{Embedded, Error, Session, Store};
use tempfile::TempDir;

use crate::suite::{store_suite, Harness};

pub struct EmbeddedHarness {
    store: Embedded,
    _dir: TempDir,
}

impl Harness for EmbeddedHarness {
    type S = Session;

    async fn session(&self) -> Session {
        self.store.session()
    }

    fn base(&self) -> String {
        "/suite".to_owned()
    }
}

async fn harness() -> EmbeddedHarness {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(dir.path().join("store.redb")).unwrap();
    EmbeddedHarness { store, _dir: dir }
}

mod suite {
    super::store_suite!(super::harness);
}

#[tokio::test]
async fn data_and_counters_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    let before = {
        let s = Embedded::open(&file).unwrap().session();
        s.create_all("/mesos/registry", b"r1", Persistent)
            .await
            .unwrap();
        s.set("/mesos/registry", b"r2", Some(0)).await.unwrap();
        s.create("/mesos/log_", b"", PersistentSequential)
            .await
            .unwrap();
        s.create("/mesos/ephemeral", b"", Ephemeral).await.unwrap();
        s.session_id()
    };

    let s = Embedded::open(&file).unwrap().session();
    let (data, stat) = s.get("/mesos/registry").await.unwrap().unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"r2"[..], 1));
    assert_eq!(s.get("/mesos/ephemeral").await.unwrap(), None);
    // cversion 3: log_, ephemeral created and deleted.
    assert_eq!(
        s.create("/mesos/log_", b"", PersistentSequential)
            .await
            .unwrap(),
        "/mesos/log_0000000004"
    );
    assert_ne!(
        s.session_id(),
        before,
        "session ids are not reused across opens"
    );
}

#[tokio::test]
async fn a_file_in_use_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    let _open = Embedded::open(&file).unwrap();
    let err = Embedded::open(&file).unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

/// Set in the re-executed test binary: it is the writer, and this is its store file.
const WRITER_FILE: &str = "DCOS_STORE_TEST_WRITER_FILE";
const ACKED: usize = 20;

#[test]
fn acked_writes_survive_sigkill_and_the_writers_ephemerals_go() {
    if let Some(file) = std::env::var_os(WRITER_FILE) {
        return write_until_killed(Path::new(&file));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    let this_test = module_path!().split_once("::").unwrap().1.to_owned()
        + "::acked_writes_survive_sigkill_and_the_writers_ephemerals_go";
    let child = Command::new(std::env::current_exe().unwrap())
        .args([&this_test, "--exact", "--nocapture", "--test-threads=1"])
        .env(WRITER_FILE, &file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut writer = KillOnDrop(child);

    let stdout = BufReader::new(writer.0.stdout.take().unwrap());
    let acked: Vec<String> = stdout
        .lines()
        .map_while(|line| line.ok())
        .filter_map(|line| line.strip_prefix("acked ").map(str::to_owned))
        .take(ACKED)
        .collect();
    writer.0.kill().unwrap(); // SIGKILL, most likely in the middle of the next commit
    writer.0.wait().unwrap();
    assert_eq!(
        acked.len(),
        ACKED,
        "the writer stopped early; its stderr is above"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let s = Embedded::open(&file).unwrap().session();
        for path in &acked {
            assert!(
                s.get(path).await.unwrap().is_some(),
                "{path} was acknowledged, then lost"
            );
        }
        assert_eq!(s.get("/writer/ephemeral").await.unwrap(), None);
    });
}

/// The child: an ephemeral node, then persistent writes, each reported once acknowledged.
fn write_until_killed(file: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let s = Embedded::open(file).unwrap().session();
        s.create_all("/writer/ephemeral", b"", Ephemeral)
            .await
            .unwrap();
        for i in 0..100_000 {
            let path = s
                .create(&format!("/writer/{i:06}"), b"data", Persistent)
                .await
                .unwrap();
            println!("acked {path}");
        }
    });
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
