//! The state machine, one transition at a time: what each call changes and what it sends.

use std::time::Duration;

use serde_json::json;

use crate::api::{DurationInfo, Filters, Id, KillPolicy, Reason, Source, TaskState, TaskStatus};
use crate::protocol::{AgentEvent, TaskReport};
use crate::scheduler::{
    Accept, Acknowledge, CallBody, Decline, Event, Kill, Operation, Reconcile, ReconcileTask,
};

use super::testing::*;
use super::*;

/// One agent, one framework, and the framework's first offer.
fn one_offer() -> (Master, String, String, crate::scheduler::Offer) {
    let mut m = master(&[]);
    let agent = add_agent(&mut m, 1);
    let fw = add_framework(&mut m, "f", "*");
    m.allocate();
    let sent = m.take_outbox();
    let offer = offers_for(&sent, &fw).pop().expect("an offer");
    (m, agent, fw, offer)
}

fn accept(
    m: &mut Master,
    fw: &str,
    offers: &[&crate::scheduler::Offer],
    tasks: Vec<crate::api::TaskInfo>,
) {
    let call = CallBody::Accept(Accept {
        offer_ids: offers.iter().map(|o| o.id.clone()).collect(),
        operations: vec![Operation::launch(tasks)],
        filters: None,
    });
    m.scheduler_call(
        &Id::new(fw),
        Some(&format!("stream-{}", name_of(m, fw))),
        call,
    )
    .expect("the call is accepted");
}

fn name_of(m: &Master, fw: &str) -> String {
    m.framework(fw).unwrap().info.name.clone()
}

fn call(m: &mut Master, fw: &str, body: CallBody) -> Result<(), CallError> {
    let stream = m.framework(fw).and_then(|f| f.stream.clone());
    m.scheduler_call(&Id::new(fw), stream.as_deref(), body)
}

fn running(m: &mut Master, agent: &str, fw: &str, task: &str) {
    let status = TaskStatus {
        task_id: Id::new(task),
        state: TaskState::Running,
        source: Some(Source::Executor),
        uuid: Some(crate::api::new_update_uuid()),
        ..TaskStatus::default()
    };
    m.agent_update(Id::new(agent), &Id::new(fw), status, None)
        .unwrap();
}

#[test]
fn subscribe_opens_the_stream_and_sends_subscribed_first() {
    let mut m = master(&[]);
    let fw = add_framework(&mut m, "f", "*");
    let sent = m.take_outbox();
    assert_eq!(
        sent[0],
        Outbound::OpenFramework {
            framework_id: fw.clone(),
            stream_id: "stream-f".into()
        }
    );
    let Outbound::Framework {
        event: Event::Subscribed(s),
        ..
    } = &sent[1]
    else {
        panic!("{sent:?}")
    };
    assert_eq!(s.framework_id.value, fw);
    assert_eq!(
        s.heartbeat_interval_seconds,
        Some(crate::master::HEARTBEAT_SECS)
    );
    assert_eq!(
        sent.len(),
        2,
        "no operator events while nobody watches: {sent:?}"
    );
    assert!(fw.starts_with(m.id()));
    let second = add_framework(&mut m, "g", "*");
    assert_ne!(fw, second);
}

#[test]
fn subscribe_refuses_what_mesos_refuses() {
    let mut m = master(&[]);
    let mut info = framework_info("f", "*");
    info.user.clear();
    let err = m.subscribe(None, info, "s".into()).unwrap_err();
    assert!(
        matches!(&err, CallError::BadRequest(e) if e.contains("framework_info.user")),
        "{err:?}"
    );
    let mut info = framework_info("", "*");
    info.user = "u".into();
    assert!(m.subscribe(None, info, "s".into()).is_err());
    let err = m
        .subscribe(Some(&Id::new("x")), framework_info("f", "*"), "s".into())
        .unwrap_err();
    assert!(
        matches!(&err, CallError::BadRequest(e) if e.contains("differs")),
        "{err:?}"
    );
    // A torn-down framework cannot come back.
    let fw = add_framework(&mut m, "f", "*");
    assert!(m.teardown(&fw));
    let mut info = framework_info("f", "*");
    info.id = Some(Id::new(&fw));
    let err = m
        .subscribe(info.id.as_ref(), info.clone(), "s2".into())
        .unwrap_err();
    assert_eq!(
        err,
        CallError::Forbidden(format!("Framework {fw} has been removed"))
    );
    assert!(m
        .take_outbox()
        .iter()
        .all(|o| !matches!(o, Outbound::OpenFramework { stream_id, .. } if stream_id == "s2")));
}

#[test]
fn calls_come_from_the_current_stream_only() {
    let mut m = master(&[]);
    let fw = add_framework(&mut m, "f", "*");
    let id = Id::new(&fw);
    let revive = || CallBody::Revive;
    assert_eq!(
        m.scheduler_call(&Id::new("nope"), Some("stream-f"), revive()),
        Err(CallError::BadRequest("Framework cannot be found".into()))
    );
    assert!(
        matches!(m.scheduler_call(&id, None, revive()), Err(CallError::BadRequest(e)) if e.contains("Mesos-Stream-Id"))
    );
    assert!(
        matches!(m.scheduler_call(&id, Some("other"), revive()), Err(CallError::BadRequest(e)) if e.contains("didn't match"))
    );
    assert_eq!(m.scheduler_call(&id, Some("stream-f"), revive()), Ok(()));
    m.framework_disconnected(&fw, "stream-f");
    assert_eq!(
        m.scheduler_call(&id, Some("stream-f"), revive()),
        Err(CallError::Forbidden("Framework is not subscribed".into()))
    );
    // Inverse offers are not supported, as before.
    m.subscribe(
        Some(&id),
        {
            let mut i = framework_info("f", "*");
            i.id = Some(id.clone());
            i
        },
        "s2".into(),
    )
    .unwrap();
    let inverse = CallBody::AcceptInverseOffers(Default::default());
    assert!(
        matches!(m.scheduler_call(&id, Some("s2"), inverse), Err(CallError::BadRequest(e)) if e.contains("Unsupported call type 'ACCEPT_INVERSE_OFFERS'"))
    );
}

#[test]
fn offers_are_typed_and_have_the_wire_shape() {
    let (m, agent, fw, offer) = one_offer();
    assert_eq!(offer.agent_id.value, agent);
    assert_eq!(offer.framework_id.value, fw);
    assert_eq!(offer.attribute("rack"), Some("r1"));
    assert_eq!(
        crate::resources::Resources::from_api(&offer.resources).unwrap(),
        agent_total()
    );
    let wire = serde_json::to_value(Event::Offers(crate::scheduler::Offers {
        offers: vec![offer.clone()],
    }))
    .unwrap();
    assert_eq!(wire["type"], "OFFERS");
    let o = &wire["offers"]["offers"][0];
    assert_eq!(
        o["url"],
        json!({"scheme": "http", "address": {"hostname": "10.0.1.1", "ip": "10.0.1.1", "port": 5051}, "path": "/slave(1)"})
    );
    assert_eq!(o["allocation_info"], json!({"role": "*"}));
    assert_eq!(o["resources"][0]["allocation_info"], json!({"role": "*"}));
    assert_eq!(
        o["attributes"],
        json!([{"name": "rack", "type": "TEXT", "text": {"value": "r1"}}])
    );
    assert!(o.get("executor_ids").is_none());
    assert_eq!(m.offer_count(), 1);
    check_invariants(&m).unwrap();
}

#[test]
fn an_accepted_offer_launches_its_tasks_on_the_agent() {
    let (mut m, agent, fw, offer) = one_offer();
    let t = task("t1", &agent, 1.0, 128.0, &[(31005, 31006)]);
    accept(&mut m, &fw, &[&offer], vec![t.clone()]);
    let sent = m.take_outbox();
    let run: Vec<_> = agent_events(&sent, &agent).collect();
    let [AgentEvent::RunTask { framework, task }] = run.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(framework.id.as_ref().unwrap().value, fw);
    assert_eq!(task.task_id.value, "t1");
    let f = m.framework(&fw).unwrap();
    assert_eq!(f.tasks["t1"].state, TaskState::Staging);
    assert_eq!(f.tasks["t1"].statuses[0].source, Some(Source::Master));
    let a = m.agent(&agent).unwrap();
    assert_eq!(a.used.cpus, 1.0);
    assert!(a.used.ports.contains(31005) && a.used.ports.contains(31006));
    // The rest goes back to the pool behind the default 5 s filter.
    assert_eq!(m.offer_count(), 0);
    assert!(m.is_filtered(&fw, &agent, m.now()));
    assert!(!m.is_filtered(&fw, &agent, m.now() + DEFAULT_REFUSE));
    assert_eq!(m.counters()["master/tasks_launched"], 1);
    check_invariants(&m).unwrap();
    // The next offer holds what is left.
    m.advance(DEFAULT_REFUSE);
    m.allocate();
    let left = offers_for(&m.take_outbox(), &fw).pop().unwrap();
    let left = crate::resources::Resources::from_api(&left.resources).unwrap();
    assert_eq!(left.cpus, 3.0);
    assert!(!left.ports.contains(31005));
    check_invariants(&m).unwrap();
}

#[test]
fn a_launch_group_runs_under_its_executor() {
    let (mut m, agent, fw, offer) = one_offer();
    // A group's tasks carry their commands; the group's executor runs them.
    let t = task("g1", &agent, 0.5, 64.0, &[]);
    let executor = crate::api::ExecutorInfo {
        executor_id: Id::new("ex"),
        ..Default::default()
    };
    let group = crate::scheduler::LaunchGroup {
        executor,
        task_group: crate::scheduler::TaskGroupInfo { tasks: vec![t] },
    };
    let body = CallBody::Accept(Accept {
        offer_ids: vec![offer.id.clone()],
        operations: vec![Operation::LaunchGroup(group)],
        filters: None,
    });
    call(&mut m, &fw, body).unwrap();
    let sent = m.take_outbox();
    let Some(AgentEvent::RunTask { task, .. }) = agent_events(&sent, &agent).next() else {
        panic!("{sent:?}")
    };
    let ex = task.executor.as_ref().unwrap();
    assert_eq!(ex.executor_id.value, "ex");
    assert_eq!(ex.framework_id.as_ref().unwrap().value, fw);
    assert_eq!(
        m.framework(&fw).unwrap().tasks["g1"].executor_id.as_deref(),
        Some("ex")
    );
}

#[test]
fn invalid_tasks_are_answered_with_task_error_and_launch_nothing() {
    let (mut m, agent, fw, offer) = one_offer();
    let greedy = task("greedy", &agent, 64.0, 128.0, &[]);
    let stray = task("stray", &agent, 0.1, 32.0, &[(40000, 40000)]);
    let elsewhere = task("elsewhere", "another-agent", 0.1, 32.0, &[]);
    let ok = task("ok", &agent, 0.1, 32.0, &[]);
    let twin = task("ok", &agent, 0.1, 32.0, &[]);
    let mut bare = task("bare", &agent, 0.1, 32.0, &[]);
    bare.command = None;
    accept(
        &mut m,
        &fw,
        &[&offer],
        vec![greedy, stray, elsewhere, ok, twin, bare],
    );
    let sent = m.take_outbox();
    let errors: Vec<(String, Option<Reason>, String)> = updates_for(&sent, &fw)
        .into_iter()
        .filter(|s| s.state == TaskState::Error)
        .map(|s| (s.task_id.value, s.reason, s.message.unwrap_or_default()))
        .collect();
    let ids: Vec<&str> = errors.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["greedy", "stray", "elsewhere", "ok", "bare"]);
    assert!(errors
        .iter()
        .all(|(_, r, _)| *r == Some(Reason::TaskInvalid)));
    assert!(errors[0].2.contains("more resources"), "{errors:?}");
    assert!(errors[3].2.contains("duplicate ID"), "{errors:?}");
    assert_eq!(agent_events(&sent, &agent).count(), 1, "only 'ok' runs");
    check_invariants(&m).unwrap();
}

#[test]
fn accepting_void_offers_loses_the_tasks_and_returns_the_valid_offers() {
    let mut m = master(&[]);
    let a1 = add_agent(&mut m, 1);
    let a2 = add_agent(&mut m, 2);
    let f = add_framework(&mut m, "f", "*");
    let g = add_framework(&mut m, "g", "*");
    m.allocate();
    let sent = m.take_outbox();
    let (of, og) = (offers_for(&sent, &f), offers_for(&sent, &g));
    assert_eq!((of.len(), og.len()), (1, 1), "one agent each");
    // Someone else's offer.
    accept(
        &mut m,
        &f,
        &[&og[0]],
        vec![task("t", &og[0].agent_id.value, 0.1, 32.0, &[])],
    );
    let lost = updates_for(&m.take_outbox(), &f);
    assert_eq!(lost[0].state, TaskState::Lost);
    assert_eq!(lost[0].reason, Some(Reason::InvalidOffers));
    assert!(lost[0].message.as_ref().unwrap().contains("not owned"));
    assert_eq!(m.offer_count(), 2, "g's offer is still g's");
    // An unknown offer next to a valid one: the valid one goes back, unfiltered.
    let unknown = crate::scheduler::Offer {
        id: Id::new("gone"),
        ..of[0].clone()
    };
    accept(
        &mut m,
        &f,
        &[&of[0], &unknown],
        vec![task("t", &of[0].agent_id.value, 0.1, 32.0, &[])],
    );
    let lost = updates_for(&m.take_outbox(), &f);
    assert!(lost[0]
        .message
        .as_ref()
        .unwrap()
        .contains("no longer valid"));
    assert_eq!(m.offer_count(), 1);
    assert!(!m.is_filtered(&f, &of[0].agent_id.value, m.now()));
    // Offers of two agents.
    m.allocate();
    let of = offers_for(&m.take_outbox(), &f);
    let og_id = og[0].id.clone();
    call(
        &mut m,
        &g,
        CallBody::Decline(Decline {
            offer_ids: vec![og_id],
            filters: Some(Filters {
                refuse_seconds: Some(60.0),
            }),
        }),
    )
    .unwrap();
    m.allocate();
    let mut of2 = of.clone();
    of2.extend(offers_for(&m.take_outbox(), &f));
    assert_eq!(of2.len(), 2, "{of2:?}");
    assert_ne!(of2[0].agent_id, of2[1].agent_id);
    accept(
        &mut m,
        &f,
        &[&of2[0], &of2[1]],
        vec![task("t", &a1, 0.1, 32.0, &[])],
    );
    let lost = updates_for(&m.take_outbox(), &f);
    assert_eq!(
        lost[0].message.as_deref(),
        Some("Aggregated offers must belong to one single agent")
    );
    let _ = a2;
    check_invariants(&m).unwrap();
    // No offers at all.
    accept(&mut m, &f, &[], vec![task("t", &a1, 0.1, 32.0, &[])]);
    let lost = updates_for(&m.take_outbox(), &f);
    assert_eq!(lost[0].message.as_deref(), Some("No offers specified"));
}

#[test]
fn status_updates_end_tasks_and_free_their_resources() {
    let (mut m, agent, fw, offer) = one_offer();
    accept(
        &mut m,
        &fw,
        &[&offer],
        vec![task("t1", &agent, 1.0, 128.0, &[])],
    );
    m.take_outbox();
    running(&mut m, &agent, &fw, "t1");
    let sent = m.take_outbox();
    let up = updates_for(&sent, &fw);
    assert_eq!(up[0].state, TaskState::Running);
    assert_eq!(up[0].agent_id.as_ref().unwrap().value, agent);
    assert!(up[0].uuid.is_some(), "the agent's update is acknowledged");
    assert_eq!(
        m.framework(&fw).unwrap().tasks["t1"].state,
        TaskState::Running
    );
    let done = TaskStatus {
        task_id: Id::new("t1"),
        state: TaskState::Finished,
        ..TaskStatus::default()
    };
    m.agent_update(Id::new(&agent), &Id::new(&fw), done, None)
        .unwrap();
    let f = m.framework(&fw).unwrap();
    assert!(f.tasks.is_empty());
    assert_eq!(f.completed_tasks[0].state, TaskState::Finished);
    assert!(f.completed_tasks[0]
        .statuses
        .iter()
        .all(|s| s.uuid.is_none()));
    assert_eq!(m.agent(&agent).unwrap().used.cpus, 0.0);
    assert_eq!(m.counters()["master/tasks_finished"], 1);
    check_invariants(&m).unwrap();
}

#[test]
fn agents_report_only_their_own_tasks_from_their_own_address() {
    let (mut m, agent, fw, offer) = one_offer();
    let other = add_agent(&mut m, 2);
    accept(
        &mut m,
        &fw,
        &[&offer],
        vec![task("t1", &agent, 1.0, 128.0, &[])],
    );
    let st = |state| TaskStatus {
        task_id: Id::new("t1"),
        state,
        ..TaskStatus::default()
    };
    let err = m
        .agent_update(Id::new(&other), &Id::new(&fw), st(TaskState::Failed), None)
        .unwrap_err();
    assert_eq!(
        err,
        CallError::Forbidden(format!("Task t1 does not run on agent {other}"))
    );
    let err = m
        .agent_update(Id::new("ghost"), &Id::new(&fw), st(TaskState::Failed), None)
        .unwrap_err();
    assert_eq!(
        err,
        CallError::Forbidden("Agent ghost is not registered".into())
    );
    // An agent that subscribed from one address calls from that address only.
    let info = crate::protocol::AgentInfo {
        hostname: "10.0.1.9".into(),
        port: 5051,
        ..Default::default()
    };
    let peer = Some("10.0.1.9".parse().unwrap());
    let (third, _) = m.agent_subscribe(None, info, Vec::new(), agent_total(), peer);
    let from = Some("10.0.1.8".parse().unwrap());
    let err = m
        .agent_message(
            Id::new(&third),
            &Id::new(&fw),
            Id::new("e"),
            "ZGF0YQ==".into(),
            from,
        )
        .unwrap_err();
    assert!(matches!(err, CallError::Forbidden(e) if e.contains("another address")));
    m.agent_message(
        Id::new(&third),
        &Id::new(&fw),
        Id::new("e"),
        "ZGF0YQ==".into(),
        peer,
    )
    .unwrap();
    let sent = m.take_outbox();
    assert!(events_for(&sent, &fw).any(|e| matches!(e, Event::Message(msg) if msg.executor_id.value == "e" && msg.data == "ZGF0YQ==")));
    assert_eq!(
        m.framework(&fw).unwrap().tasks["t1"].state,
        TaskState::Staging
    );
}

#[test]
fn agent_subscribers_are_checked_against_known_addresses() {
    let mut m = master(&[]);
    let agent = add_agent(&mut m, 1);
    let info = |host: &str, port| crate::protocol::AgentInfo {
        hostname: host.into(),
        port,
        ..Default::default()
    };
    let id = Id::new(&agent);
    assert!(m
        .check_agent_subscriber(Some(&id), &info("10.0.1.1", 5051), None)
        .is_ok());
    assert!(m
        .check_agent_subscriber(Some(&id), &info("10.0.1.2", 5051), None)
        .is_err());
    assert!(m
        .check_agent_subscriber(Some(&id), &info("10.0.1.1", 5052), None)
        .is_err());
    assert!(m
        .check_agent_subscriber(None, &info("bad host!", 5051), None)
        .is_err());
    assert!(m
        .check_agent_subscriber(None, &info("agent-3.example.com", 5051), None)
        .is_ok());
    let peer = Some("10.0.1.4".parse().unwrap());
    assert!(m
        .check_agent_subscriber(None, &info("10.0.1.5", 5051), peer)
        .is_err());
    // New ids are never ones a live agent has.
    let fresh = m.agent_id_for(None);
    assert_ne!(fresh, agent);
    assert_eq!(m.agent_id_for(Some(Id::new("given"))), "given");
}

#[test]
fn kill_goes_to_the_agent_or_is_answered_by_the_master() {
    let (mut m, agent, fw, offer) = one_offer();
    accept(
        &mut m,
        &fw,
        &[&offer],
        vec![task("t1", &agent, 1.0, 128.0, &[])],
    );
    running(&mut m, &agent, &fw, "t1");
    m.take_outbox();
    let kill = |task: &str| {
        CallBody::Kill(Kill {
            task_id: Id::new(task),
            agent_id: None,
            kill_policy: Some(KillPolicy {
                grace_period: Some(DurationInfo { nanoseconds: 7 }),
            }),
        })
    };
    call(&mut m, &fw, kill("t1")).unwrap();
    let sent = m.take_outbox();
    assert!(
        matches!(agent_events(&sent, &agent).next(), Some(AgentEvent::KillTask { task_id, grace_period_ns: Some(7), .. }) if task_id.value == "t1")
    );
    call(&mut m, &fw, kill("nope")).unwrap();
    let up = updates_for(&m.take_outbox(), &fw);
    assert_eq!(
        (up[0].state, up[0].reason),
        (TaskState::Lost, Some(Reason::Reconciliation))
    );
    // With the agent gone, the master answers with what it knows.
    let session = m.agent(&agent).unwrap().session;
    m.agent_disconnected(&agent, session);
    m.take_outbox();
    call(&mut m, &fw, kill("t1")).unwrap();
    let sent = m.take_outbox();
    assert_eq!(agent_events(&sent, &agent).count(), 0);
    assert_eq!(updates_for(&sent, &fw)[0].state, TaskState::Running);
}

#[test]
fn shutdown_kills_the_executors_tasks() {
    let (mut m, agent, fw, offer) = one_offer();
    let mut t = task("t1", &agent, 1.0, 128.0, &[]);
    t.command = None;
    t.executor = Some(crate::api::ExecutorInfo {
        executor_id: Id::new("ex"),
        ..Default::default()
    });
    accept(&mut m, &fw, &[&offer], vec![t]);
    m.take_outbox();
    let body = CallBody::Shutdown(crate::scheduler::Shutdown {
        executor_id: Id::new("ex"),
        agent_id: Id::new(&agent),
    });
    call(&mut m, &fw, body).unwrap();
    let sent = m.take_outbox();
    assert!(
        matches!(agent_events(&sent, &agent).next(), Some(AgentEvent::KillTask { task_id, .. }) if task_id.value == "t1")
    );
}

#[test]
fn acknowledgements_need_a_uuid_and_go_to_the_agent() {
    let (mut m, agent, fw, _) = one_offer();
    let ack = |uuid: &str| {
        CallBody::Acknowledge(Acknowledge {
            agent_id: Id::new(&agent),
            task_id: Id::new("t"),
            uuid: uuid.into(),
        })
    };
    let err = call(&mut m, &fw, ack("bm90LWEtdXVpZA==")).unwrap_err();
    assert_eq!(
        err,
        CallError::BadRequest(
            "Failed to validate scheduler::Call: Not a valid UUID: 'bm90LWEtdXVpZA=='".into()
        )
    );
    let uuid = crate::api::new_update_uuid();
    call(&mut m, &fw, ack(&uuid)).unwrap();
    let sent = m.take_outbox();
    assert!(
        matches!(agent_events(&sent, &agent).next(), Some(AgentEvent::Acknowledge { uuid: u, .. }) if *u == uuid)
    );
    let msg = CallBody::Message(crate::scheduler::Message {
        agent_id: Id::new(&agent),
        executor_id: Id::new("e"),
        data: "eA==".into(),
    });
    call(&mut m, &fw, msg).unwrap();
    let sent = m.take_outbox();
    assert!(
        matches!(agent_events(&sent, &agent).next(), Some(AgentEvent::FrameworkMessage { data, .. }) if data == "eA==")
    );
}

#[test]
fn a_failover_keeps_the_tasks_and_voids_the_old_connections_offers() {
    let mut m = master(&[]);
    let a1 = add_agent(&mut m, 1);
    add_agent(&mut m, 2);
    let fw = add_framework(&mut m, "f", "*");
    m.allocate();
    let offers = offers_for(&m.take_outbox(), &fw);
    assert_eq!(offers.len(), 2);
    let on_a1 = offers.iter().find(|o| o.agent_id.value == a1).unwrap();
    accept(
        &mut m,
        &fw,
        &[on_a1],
        vec![task("t1", &a1, 1.0, 128.0, &[])],
    );
    m.take_outbox();
    assert_eq!(m.offer_count(), 1);
    let mut info = framework_info("f", "*");
    info.id = Some(Id::new(&fw));
    info.name = "f, failed over".into();
    assert_eq!(
        m.subscribe(Some(&Id::new(&fw)), info, "stream-2".into())
            .unwrap(),
        fw
    );
    let sent = m.take_outbox();
    // ERROR on the old stream, then the new stream opens and hears SUBSCRIBED first.
    let kinds: Vec<String> = sent
        .iter()
        .map(|o| match o {
            Outbound::Framework { event, .. } => event.kind().to_string(),
            Outbound::OpenFramework { stream_id, .. } => format!("open {stream_id}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["ERROR", "open stream-2", "SUBSCRIBED"]);
    assert_eq!(m.offer_count(), 0);
    let f = m.framework(&fw).unwrap();
    assert!(f.tasks.contains_key("t1"));
    assert_eq!(f.info.name, "f, failed over");
    assert!(f.reregistered_time.is_some());
    // The old stream's end changes nothing.
    m.framework_disconnected(&fw, "stream-f");
    assert!(m.framework(&fw).unwrap().connected());
    assert!(m.take_outbox().is_empty());
    check_invariants(&m).unwrap();
}

#[test]
fn a_disconnected_framework_has_its_failover_timeout_to_come_back() {
    let (mut m, agent, fw, offer) = one_offer();
    accept(
        &mut m,
        &fw,
        &[&offer],
        vec![task("t1", &agent, 1.0, 128.0, &[])],
    );
    m.framework_disconnected(&fw, "stream-f");
    assert!(m.take_outbox().contains(&Outbound::CloseFramework {
        framework_id: fw.clone()
    }));
    m.advance(Duration::from_secs(59));
    m.expire_frameworks();
    assert!(m.framework(&fw).is_some());
    // Nothing is offered to it meanwhile.
    m.advance(DEFAULT_REFUSE);
    assert!(m.allocate().is_empty());
    m.advance(Duration::from_secs(1));
    m.expire_frameworks();
    assert!(m.framework(&fw).is_none());
    let done = &m.completed_frameworks()[0];
    assert_eq!(done.completed_tasks[0].state, TaskState::Killed);
    assert!(!done.active);
    let sent = m.take_outbox();
    assert!(
        matches!(agent_events(&sent, &agent).next(), Some(AgentEvent::ShutdownFramework { framework_id }) if framework_id.value == fw)
    );
    assert_eq!(m.agent(&agent).unwrap().used.cpus, 0.0);
    check_invariants(&m).unwrap();
}

#[test]
fn teardown_rescinds_kills_and_closes() {
    let (mut m, agent, fw, offer) = one_offer();
    let _ = agent;
    call(&mut m, &fw, CallBody::Teardown).unwrap();
    let sent = m.take_outbox();
    assert!(
        events_for(&sent, &fw).any(|e| matches!(e, Event::Rescind(r) if r.offer_id == offer.id))
    );
    assert!(sent.contains(&Outbound::CloseFramework {
        framework_id: fw.clone()
    }));
    assert!(!m.teardown(&fw), "a framework is torn down once");
    assert_eq!(m.offer_count(), 0);
    check_invariants(&m).unwrap();
}

#[test]
fn reconciliation_answers_with_the_latest_states() {
    let (mut m, agent, fw, offer) = one_offer();
    accept(
        &mut m,
        &fw,
        &[&offer],
        vec![
            task("t1", &agent, 1.0, 128.0, &[]),
            task("t2", &agent, 1.0, 128.0, &[]),
        ],
    );
    running(&mut m, &agent, &fw, "t1");
    let done = TaskStatus {
        task_id: Id::new("t2"),
        state: TaskState::Failed,
        ..TaskStatus::default()
    };
    m.agent_update(Id::new(&agent), &Id::new(&fw), done, None)
        .unwrap();
    m.take_outbox();
    call(&mut m, &fw, CallBody::Reconcile(Reconcile::default())).unwrap();
    let up = updates_for(&m.take_outbox(), &fw);
    assert_eq!(up.len(), 1, "implicit: the live tasks");
    assert_eq!(
        (up[0].state, up[0].reason, up[0].uuid.as_ref()),
        (TaskState::Running, Some(Reason::Reconciliation), None)
    );
    let asked = |ids: &[&str]| {
        CallBody::Reconcile(Reconcile {
            tasks: ids
                .iter()
                .map(|id| ReconcileTask {
                    task_id: Id::new(*id),
                    agent_id: None,
                })
                .collect(),
        })
    };
    call(&mut m, &fw, asked(&["t1", "t2", "t3"])).unwrap();
    let up = updates_for(&m.take_outbox(), &fw);
    let states: Vec<_> = up
        .iter()
        .map(|s| (s.task_id.value.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("t1", TaskState::Running),
            ("t2", TaskState::Failed),
            ("t3", TaskState::Lost)
        ]
    );
    // While agents recovered from the registry may still report it, an unknown task gets no answer.
    m.recover(vec![("old".into(), Default::default())], &[], 1.0);
    call(&mut m, &fw, asked(&["t3"])).unwrap();
    assert!(updates_for(&m.take_outbox(), &fw).is_empty());
    assert_eq!(m.expire_recovered_agents(), ["old"]);
    call(&mut m, &fw, asked(&["t3"])).unwrap();
    assert_eq!(updates_for(&m.take_outbox(), &fw).len(), 1);
}

#[test]
fn a_lost_agent_rescinds_its_offers_then_its_tasks_are_unreachable_or_lost() {
    let mut m = master(&[]);
    let agent = add_agent(&mut m, 1);
    let aware = add_framework(&mut m, "aware", "a");
    let plain = add_framework(&mut m, "plain", "b");
    let mut info = m.framework(&aware).unwrap().info.clone();
    info.capabilities = vec![json!({"type": "PARTITION_AWARE"})];
    m.subscribe(info.id.clone().as_ref(), info, "stream-aware".into())
        .unwrap();
    let a2 = add_agent(&mut m, 2);
    m.allocate();
    let sent = m.take_outbox();
    let (oa, op) = (offers_for(&sent, &aware), offers_for(&sent, &plain));
    let on = |o: &[crate::scheduler::Offer]| o.iter().find(|o| o.agent_id.value == agent).cloned();
    let (owner, offer) = match (on(&oa), on(&op)) {
        (Some(o), _) => (&aware, o),
        (_, Some(o)) => (&plain, o),
        _ => panic!("no offer of {agent}"),
    };
    accept(
        &mut m,
        owner,
        &[&offer],
        vec![task("t", &agent, 1.0, 128.0, &[])],
    );
    m.advance(DEFAULT_REFUSE);
    m.allocate();
    m.take_outbox();
    let session = m.agent(&agent).unwrap().session;
    m.agent_disconnected(&agent, session);
    let sent = m.take_outbox();
    assert!(sent.contains(&Outbound::CloseAgent {
        agent_id: agent.clone()
    }));
    assert!(m.agent(&agent).unwrap().offers.is_empty());
    let rescinds = sent
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outbound::Framework {
                    event: Event::Rescind(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(rescinds, 1, "{sent:?}");
    check_invariants(&m).unwrap();
    assert!(m.mark_unreachable(Duration::from_secs(30)).is_empty());
    m.advance(Duration::from_secs(30));
    assert_eq!(
        m.mark_unreachable(Duration::from_secs(30)),
        vec![agent.clone()]
    );
    let up = updates_for(&m.take_outbox(), owner);
    let expected = if *owner == aware {
        TaskState::Unreachable
    } else {
        TaskState::Lost
    };
    assert_eq!(
        (up[0].state, up[0].reason),
        (expected, Some(Reason::AgentRemoved))
    );
    assert!(!m.agent(&agent).unwrap().active());
    assert!(m.agent(&a2).unwrap().active());
    check_invariants(&m).unwrap();
}

#[test]
fn a_reregistering_agent_is_believed_about_its_tasks() {
    let (mut m, agent, fw, offer) = one_offer();
    accept(
        &mut m,
        &fw,
        &[&offer],
        vec![
            task("kept", &agent, 1.0, 128.0, &[]),
            task("gone", &agent, 1.0, 128.0, &[]),
        ],
    );
    let session = m.agent(&agent).unwrap().session;
    m.agent_disconnected(&agent, session);
    m.take_outbox();
    let info = m.framework(&fw).unwrap().info.clone();
    let kept = m.framework(&fw).unwrap().tasks["kept"].info.clone();
    let mut stranger = framework_info("stranger", "*");
    stranger.id = Some(Id::new("other-framework"));
    let report = |framework, task| TaskReport {
        framework,
        task,
        state: TaskState::Running,
        status: None,
    };
    let reports = vec![
        report(info, kept),
        report(stranger, task("its", &agent, 0.5, 64.0, &[])),
    ];
    let agent_info = crate::protocol::AgentInfo {
        hostname: "10.0.1.1".into(),
        port: 5051,
        ..Default::default()
    };
    let (again, session2) = m.agent_subscribe(
        Some(Id::new(&agent)),
        agent_info,
        reports,
        agent_total(),
        None,
    );
    assert_eq!(again, agent);
    assert!(session2 > session);
    let sent = m.take_outbox();
    assert!(
        matches!(
            &sent[0],
            Outbound::Framework {
                event: Event::Update(_),
                ..
            }
        ),
        "{sent:?}"
    );
    let lost = updates_for(&sent, &fw);
    assert_eq!(
        (lost[0].task_id.value.as_str(), lost[0].state),
        ("gone", TaskState::Lost)
    );
    assert!(sent.contains(&Outbound::OpenAgent {
        agent_id: agent.clone(),
        session: session2
    }));
    assert!(matches!(
        agent_events(&sent, &agent).next(),
        Some(AgentEvent::Registered { .. })
    ));
    let f = m.framework(&fw).unwrap();
    assert_eq!(f.tasks["kept"].state, TaskState::Running);
    let recovered = m.framework("other-framework").unwrap();
    assert!(recovered.recovered && !recovered.connected());
    assert_eq!(m.agent(&agent).unwrap().used.cpus, 1.5);
    // A recovered framework does not expire: it is waiting to re-subscribe.
    m.advance(Duration::from_secs(3600));
    m.expire_frameworks();
    assert!(m.framework("other-framework").is_some());
    check_invariants(&m).unwrap();
    // The old session's end is stale.
    m.agent_disconnected(&agent, session);
    assert!(m.agent(&agent).unwrap().active());
}

#[test]
fn operator_events_are_made_only_while_someone_watches() {
    let (mut m, agent, fw, offer) = one_offer();
    m.watch_operators(true);
    accept(
        &mut m,
        &fw,
        &[&offer],
        vec![task("t1", &agent, 1.0, 128.0, &[])],
    );
    running(&mut m, &agent, &fw, "t1");
    add_framework(&mut m, "g", "*");
    let ops: Vec<String> = m
        .take_outbox()
        .into_iter()
        .filter_map(|o| match o {
            Outbound::Operator(e) => Some(
                serde_json::to_value(e).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(ops, ["TASK_ADDED", "TASK_UPDATED", "FRAMEWORK_ADDED"]);
    m.watch_operators(false);
    running(&mut m, &agent, &fw, "t1");
    assert!(m
        .take_outbox()
        .iter()
        .all(|o| !matches!(o, Outbound::Operator(_))));
}

#[test]
fn closing_streams_disconnects_everyone() {
    let (mut m, agent, fw, _) = one_offer();
    m.close_streams();
    let sent = m.take_outbox();
    assert!(sent.contains(&Outbound::CloseFramework {
        framework_id: fw.clone()
    }));
    assert!(sent.contains(&Outbound::CloseAgent {
        agent_id: agent.clone()
    }));
    assert!(!m.framework(&fw).unwrap().connected());
    assert!(!m.agent(&agent).unwrap().active());
}

#[test]
fn a_frameworks_ports_on_two_agents_are_counted_per_agent() {
    // Two agents offer the same port numbers to one framework; returning one offer leaves
    // the other's ports with the framework (a sum of both once lost them).
    let mut m = master(&[]);
    add_agent(&mut m, 1);
    add_agent(&mut m, 2);
    let fw = add_framework(&mut m, "f", "*");
    m.allocate();
    let offers = offers_for(&m.take_outbox(), &fw);
    assert_eq!(offers.len(), 2);
    let decline = Decline {
        offer_ids: vec![offers[0].id.clone()],
        filters: None,
    };
    call(&mut m, &fw, CallBody::Decline(decline)).unwrap();
    let f = m.framework(&fw).unwrap();
    assert_eq!(f.offered_resources(&m).ports, agent_total().ports);
    assert_eq!(f.offered_resources(&m).cpus, 4.0);
    check_invariants(&m).unwrap();
}
