//! What every backend must do, written against the `Store` trait only. A backend runs it by
//! implementing [`Harness`] and invoking `store_suite!(harness_fn)` in a module.

use std::future::Future;
use std::time::Duration;

use dcos_store::CreateMode::{Ephemeral, EphemeralSequential, Persistent, PersistentSequential};
use dcos_store::EventKind::{NodeChildrenChanged, NodeCreated, NodeDataChanged, NodeDeleted};
use dcos_store::{
    EventKind, LeaderElection, Result, Store, Watch, WatchedEvent, Write, WATCH_CAPACITY,
};

/// A backend under test.
pub trait Harness {
    /// The backend's session handle.
    type S: Store;
    /// A new session on the backend.
    fn session(&self) -> impl Future<Output = Self::S>;
    /// A node path no other test uses (tests may share a ZooKeeper ensemble); need not exist.
    fn base(&self) -> String;
}

/// Calls `$then!($args... <every suite test>)`: the one list of the suite's tests.
macro_rules! suite_tests {
    ($then:ident!($($args:tt)*)) => {
        $crate::suite::$then! {$($args)*
            compare_and_set_checks_versions,
            write_all_puts_and_removes_in_order,
            create_needs_a_parent_and_a_free_name,
            sequential_names_count_per_parent,
            children_are_the_sorted_names_of_direct_children,
            ephemeral_nodes_and_watches_end_with_their_session,
            watches_report_changes_in_order,
            slow_watchers_are_cut_off_not_waited_for,
            leadership_passes_on_when_the_leader_goes
        }
    };
}

/// One `#[tokio::test]` per suite test, on the harness that `$new().await` returns.
macro_rules! store_suite {
    ($new:path) => {
        $crate::suite::suite_tests!(one_test_each!($new:));
    };
}

macro_rules! one_test_each {
    ($new:path: $($test:ident),*) => {$(
        #[tokio::test]
        async fn $test() {
            $crate::suite::$test(&$new().await).await
        }
    )*};
}

/// Every suite test in turn on one harness (for a backend whose server is costly to start).
macro_rules! run_suite {
    ($h:expr; $($test:ident),*) => {$(
        eprintln!("suite test {}", stringify!($test));
        $crate::suite::$test($h).await;
    )*};
}

pub(crate) use {one_test_each, run_suite, store_suite, suite_tests};

const DEADLINE: Duration = Duration::from_secs(10);

/// The next event of `watch`, failing the test after [`DEADLINE`].
async fn next(watch: &mut Watch) -> Option<WatchedEvent> {
    let path = watch.path().to_owned();
    tokio::time::timeout(DEADLINE, watch.recv())
        .await
        .unwrap_or_else(|_| panic!("no event on {path} within {DEADLINE:?}"))
}

fn event(kind: EventKind, path: &str) -> Option<WatchedEvent> {
    Some(WatchedEvent {
        kind,
        path: path.into(),
    })
}

/// The error's message: each kind has its own, naming the node, so this checks both.
fn err<T: std::fmt::Debug>(result: Result<T>) -> String {
    result.unwrap_err().to_string()
}

pub async fn compare_and_set_checks_versions(h: &impl Harness) {
    let s = h.session().await;
    let node = format!("{}/cas", h.base());
    s.create_all(&node, b"a", Persistent).await.unwrap();
    let (data, stat) = s.get(&node).await.unwrap().unwrap();
    assert_eq!(
        (data, stat.version, stat.data_length),
        (b"a".to_vec(), 0, 1)
    );

    assert_eq!(s.set(&node, b"b", Some(0)).await.unwrap().version, 1);
    let bad = format!("node {node} is at version 1, not the expected 0");
    assert_eq!(err(s.set(&node, b"c", Some(0)).await), bad);
    assert_eq!(s.get(&node).await.unwrap().unwrap().0, b"b");
    assert_eq!(s.set(&node, b"c", None).await.unwrap().version, 2);

    let bad = format!("node {node} is at version 2, not the expected 1");
    assert_eq!(err(s.delete(&node, Some(1)).await), bad);
    s.delete(&node, Some(2)).await.unwrap();
    assert_eq!(s.get(&node).await.unwrap(), None);
    assert_eq!(
        err(s.set(&node, b"d", None).await),
        format!("node {node} does not exist")
    );
}

pub async fn create_needs_a_parent_and_a_free_name(h: &impl Harness) {
    let s = h.session().await;
    let base = h.base();
    let child = format!("{base}/parent/child");
    s.ensure_path(&base).await.unwrap();

    let missing = format!("node {base}/parent does not exist");
    assert_eq!(err(s.create(&child, b"", Persistent).await), missing);
    assert_eq!(s.create_all(&child, b"x", Persistent).await.unwrap(), child);
    let exists = format!("node {child} already exists");
    assert_eq!(err(s.create(&child, b"", Persistent).await), exists);
    s.ensure_path(&child).await.unwrap();

    let invalid = format!("invalid node path \"{base}/slash/\": must not end with /");
    assert_eq!(
        err(s.create(&format!("{base}/slash/"), b"", Persistent).await),
        invalid
    );
    let root = "invalid node path \"/\": the root cannot be deleted";
    assert_eq!(err(s.delete("/", None).await), root);

    let ephemeral = s
        .create(&format!("{base}/e"), b"", Ephemeral)
        .await
        .unwrap();
    let no_children = format!("node {ephemeral} is ephemeral and cannot have children");
    assert_eq!(
        err(s.create(&format!("{ephemeral}/c"), b"", Persistent).await),
        no_children
    );
}

pub async fn sequential_names_count_per_parent(h: &impl Harness) {
    let s = h.session().await;
    let (queue, other) = (format!("{}/queue", h.base()), format!("{}/other", h.base()));
    let prefix = format!("{queue}/json.info_");
    s.ensure_path(&queue).await.unwrap();
    s.ensure_path(&other).await.unwrap();

    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(s.create(&prefix, b"", PersistentSequential).await.unwrap());
    }
    assert_eq!(created, [0, 1, 2].map(|n| format!("{prefix}{n:010}")));
    let elsewhere = s
        .create(&format!("{other}/x-"), b"", PersistentSequential)
        .await;
    assert_eq!(elsewhere.unwrap(), format!("{other}/x-0000000000"));

    // A deleted name is never handed out again, and deletions count as children changes.
    // (Whether the counter skips the deleted one differs: the embedded backend uses the
    // parent's cversion, a real ZooKeeper its pending create count, so the suite asks neither.)
    s.delete(&created[2], None).await.unwrap();
    let next = s.create(&prefix, b"", EphemeralSequential).await.unwrap();
    assert!(next > created[2], "{next} does not follow {}", created[2]);
    assert_eq!(s.get(&queue).await.unwrap().unwrap().1.cversion, 5);
}

pub async fn children_are_the_sorted_names_of_direct_children(h: &impl Harness) {
    let s = h.session().await;
    let dir = format!("{}/dir", h.base());
    // Neither a grandchild nor a sibling sharing the name's prefix (`dirx`) is a child.
    for node in ["z", "a", "m/grandchild"].map(|n| format!("{dir}/{n}")) {
        s.create_all(&node, b"", Persistent).await.unwrap();
    }
    s.create(&format!("{dir}x"), b"", Persistent).await.unwrap();
    assert_eq!(s.children(&dir).await.unwrap(), ["a", "m", "z"]);
    assert_eq!(s.get(&dir).await.unwrap().unwrap().1.num_children, 3);
    assert_eq!(
        s.children(&format!("{dir}/a")).await.unwrap(),
        Vec::<String>::new()
    );

    let missing = format!("node {dir}/none does not exist");
    assert_eq!(err(s.children(&format!("{dir}/none")).await), missing);
    let not_empty = format!("node {dir}/m has children");
    assert_eq!(err(s.delete(&format!("{dir}/m"), None).await), not_empty);
}

pub async fn ephemeral_nodes_and_watches_end_with_their_session(h: &impl Harness) {
    let (observer, owner) = (h.session().await, h.session().await);
    let dir = format!("{}/ephemeral", h.base());
    observer.ensure_path(&dir).await.unwrap();
    let ephemeral = owner
        .create(&format!("{dir}/e"), b"", Ephemeral)
        .await
        .unwrap();
    owner
        .create(&format!("{dir}/s-"), b"", EphemeralSequential)
        .await
        .unwrap();
    let persistent = owner
        .create(&format!("{dir}/p"), b"", Persistent)
        .await
        .unwrap();
    let owner_of = |(_, stat): (Vec<u8>, dcos_store::Stat)| stat.ephemeral_owner;
    assert_eq!(
        observer.get(&ephemeral).await.unwrap().map(owner_of),
        Some(owner.session_id())
    );
    assert_eq!(
        observer.get(&persistent).await.unwrap().map(owner_of),
        Some(0)
    );

    let mut changes = observer.watch(&dir).await.unwrap();
    drop(owner);
    for _ in 0..2 {
        assert_eq!(next(&mut changes).await, event(NodeChildrenChanged, &dir));
    }
    assert_eq!(observer.children(&dir).await.unwrap(), ["p"]);

    // close() does the same, ends the session's watches, and the session refuses work.
    let closing = h.session().await;
    let (id, clone) = (closing.session_id(), closing.clone());
    let ephemeral = closing
        .create(&format!("{dir}/e2"), b"", Ephemeral)
        .await
        .unwrap();
    let mut watch = closing.watch(&dir).await.unwrap();
    closing.close().await.unwrap();
    assert_eq!(observer.get(&ephemeral).await.unwrap(), None);
    while next(&mut watch).await.is_some() {}
    assert_eq!(
        err(clone.get(&dir).await),
        format!("session {id:#x} is closed")
    );
}

pub async fn watches_report_changes_in_order(h: &impl Harness) {
    let s = h.session().await;
    let (node, unrelated) = (
        format!("{}/watched", h.base()),
        format!("{}/unrelated", h.base()),
    );
    s.ensure_path(&h.base()).await.unwrap();
    let mut watch = s.watch(&node).await.unwrap();
    let mut unrelated_watch = s.watch(&unrelated).await.unwrap();

    s.create(&node, b"", Persistent).await.unwrap();
    s.set(&node, b"1", None).await.unwrap();
    let child = s
        .create(&format!("{node}/c"), b"", Persistent)
        .await
        .unwrap();
    s.set(&child, b"1", None).await.unwrap();
    s.delete(&child, None).await.unwrap();
    s.delete(&node, None).await.unwrap();
    for kind in [
        NodeCreated,
        NodeDataChanged,
        NodeChildrenChanged,
        NodeChildrenChanged,
        NodeDeleted,
    ] {
        assert_eq!(next(&mut watch).await, event(kind, &node));
    }
    // The unrelated watch saw none of that: its first event is its own node's.
    s.create(&unrelated, b"", Persistent).await.unwrap();
    assert_eq!(
        next(&mut unrelated_watch).await,
        event(NodeCreated, &unrelated)
    );
}

pub async fn slow_watchers_are_cut_off_not_waited_for(h: &impl Harness) {
    let s = h.session().await;
    let node = format!("{}/busy", h.base());
    s.create_all(&node, b"", Persistent).await.unwrap();
    let mut slow = s.watch(&node).await.unwrap();
    drop(s.watch(&node).await.unwrap());

    for _ in 0..WATCH_CAPACITY + 10 {
        s.set(&node, b"x", None).await.unwrap();
    }
    // The writes did not wait for the reader: it gets what fit, then the end of its watch.
    let mut received = 0;
    while next(&mut slow).await.is_some() {
        received += 1;
    }
    assert_eq!(received, WATCH_CAPACITY);
}

pub async fn leadership_passes_on_when_the_leader_goes(h: &impl Harness) {
    let dir = format!("{}/mesos", h.base());
    let election = |s| LeaderElection::new(s, &dir).unwrap();
    let observer = election(h.session().await);
    assert_eq!(observer.leader().await.unwrap(), None);
    let first = election(h.session().await).join(b"one").await.unwrap();
    let second = election(h.session().await).join(b"two").await.unwrap();
    assert_eq!(first.path(), format!("{dir}/json.info_0000000000"));
    assert!(first.is_leader().await.unwrap());
    assert!(!second.is_leader().await.unwrap());
    let leader = Some((first.path().to_owned(), b"one".to_vec()));
    assert_eq!(observer.leader().await.unwrap(), leader);
    let standing = second.standing().await.unwrap();
    assert_eq!((standing.leader, standing.leading), (leader, false));

    // The second waits; the first's session ends when its last handle (the candidate) drops.
    let mut changes = observer.watch().await.unwrap();
    let drop_first = async {
        tokio::task::yield_now().await;
        drop(first);
    };
    let both = async { tokio::join!(second.wait_until_leader(), drop_first) };
    let (waited, ()) = tokio::time::timeout(DEADLINE, both)
        .await
        .expect("no hand-over");
    waited.unwrap();
    assert_eq!(next(&mut changes).await, event(NodeChildrenChanged, &dir));
    let leader = Some((second.path().to_owned(), b"two".to_vec()));
    assert_eq!(observer.leader().await.unwrap(), leader);

    second.withdraw().await.unwrap();
    assert_eq!(observer.leader().await.unwrap(), None);
}

/// `write_all` creates missing nodes with their ancestors, replaces data, removes nodes
/// (missing ones too), in order.
pub async fn write_all_puts_and_removes_in_order(h: &impl Harness) {
    let s = h.session().await;
    let base = h.base();
    let (a, b) = (format!("{base}/w/x/a"), format!("{base}/w/b"));
    let put = |path: &str, data: &[u8]| Write::Put {
        path: path.into(),
        data: data.to_vec(),
    };
    let remove = |path: &str| Write::Remove { path: path.into() };
    s.write_all(vec![put(&a, b"1"), put(&b, b"2"), put(&a, b"3")])
        .await
        .unwrap();
    assert_eq!(s.get(&a).await.unwrap().unwrap().0, b"3");
    assert_eq!(s.get(&a).await.unwrap().unwrap().1.version, 1);
    assert_eq!(s.get(&b).await.unwrap().unwrap().0, b"2");
    s.write_all(vec![
        remove(&b),
        remove(&format!("{base}/w/none")),
        put(&b, b"4"),
        remove(&a),
    ])
    .await
    .unwrap();
    assert_eq!(s.get(&b).await.unwrap().unwrap().0, b"4");
    assert!(s.get(&a).await.unwrap().is_none());
    assert_eq!(
        s.children(&format!("{base}/w")).await.unwrap(),
        vec!["b", "x"]
    );
    s.write_all(Vec::new()).await.unwrap();
    s.close().await.unwrap();
}
