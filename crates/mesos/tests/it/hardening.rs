//! What a hostile or careless client of the master must not be able to do.

use std::collections::HashSet;

use serde_json::json;

use dcos_testkit::loopback;

use crate::harness::{framework, Scheduler};

#[tokio::test]
async fn framework_ids_are_never_given_twice() {
    let master = loopback::master().await;
    let live = Scheduler::subscribe(master.addr, framework("stays")).await;
    let mut seen = HashSet::from([live.framework_id.clone()]);
    // More teardowns than the master keeps completed frameworks (50).
    for n in 0..60 {
        let s = Scheduler::subscribe(master.addr, framework(&format!("brief-{n}"))).await;
        assert!(
            seen.insert(s.framework_id.clone()),
            "framework id {} given twice",
            s.framework_id
        );
        assert_eq!(s.call(json!({"type": "TEARDOWN"})).await.0, 202);
    }
    let fresh = Scheduler::subscribe(master.addr, framework("fresh")).await;
    assert!(
        seen.insert(fresh.framework_id.clone()),
        "after 60 teardowns a new framework got the id {} of another",
        fresh.framework_id
    );
    // The framework that stayed still has its own id and is still the one subscribed.
    let (code, _) = live.call(json!({"type": "REVIVE"})).await;
    assert_eq!(code, 202);
    master.stop().await;
}
