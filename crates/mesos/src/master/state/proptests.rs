//! Property tests: random sequences of scheduler calls, agent reports, disconnections and
//! time, with the master's books checked after every step ([`check_invariants`]): an
//! agent's total is its free, offered and used resources; nothing is offered or used twice;
//! offers belong to connected frameworks and active agents. And a framework that fails over
//! within its failover timeout finds its tasks.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::api::{Filters, Id, TaskState, TaskStatus};
use crate::protocol::{AgentInfo, TaskReport};
use crate::scheduler::{Accept, CallBody, Decline, Event, Kill, Operation};

use super::testing::*;
use super::{Master, Outbound};

const FRAMEWORKS: usize = 3;
const AGENTS: usize = 3;
const ROLES: [&str; FRAMEWORKS] = ["a", "b", "a"];
/// The failover timeout of every framework here ([`framework_info`]).
const FAILOVER: u64 = 60;

/// One step.
#[derive(Clone, Debug)]
enum Op {
    /// Subscribes framework `0`, or re-subscribes it on a new stream.
    Subscribe(usize),
    /// Its stream ends.
    Disconnect(usize),
    Teardown(usize),
    Suppress(usize),
    Revive(usize),
    /// One allocation cycle.
    Allocate,
    /// The framework launches tasks (cpus in tenths, mem, a port offset) on its offer.
    Accept {
        fw: usize,
        offer: usize,
        tasks: Vec<(u8, u16, Option<u8>)>,
    },
    Decline {
        fw: usize,
        offer: usize,
        refuse: u8,
    },
    Kill {
        fw: usize,
        task: usize,
    },
    /// An agent reports a task's new state.
    Update {
        task: usize,
        state: usize,
    },
    AgentDisconnect(usize),
    /// The agent re-registers, reporting the tasks it runs less the ones `forget` names.
    AgentReconnect {
        agent: usize,
        forget: u8,
    },
    /// Seconds pass.
    Advance(u8),
    /// The periodic checks: failover timeouts, unreachable agents.
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    let fw = 0..FRAMEWORKS;
    prop_oneof![
        2 => fw.clone().prop_map(Op::Subscribe),
        1 => fw.clone().prop_map(Op::Disconnect),
        1 => fw.clone().prop_map(Op::Teardown),
        1 => fw.clone().prop_map(Op::Suppress),
        1 => fw.clone().prop_map(Op::Revive),
        5 => Just(Op::Allocate),
        8 => (fw.clone(), 0..4usize, prop::collection::vec((1u8..25, 8u16..2048, prop::option::of(0u8..105)), 0..4))
            .prop_map(|(fw, offer, tasks)| Op::Accept { fw, offer, tasks }),
        2 => (fw.clone(), 0..4usize, 0u8..30).prop_map(|(fw, offer, refuse)| Op::Decline { fw, offer, refuse }),
        2 => (fw, 0..8usize).prop_map(|(fw, task)| Op::Kill { fw, task }),
        3 => (0..16usize, 0..STATES.len()).prop_map(|(task, state)| Op::Update { task, state }),
        1 => (0..AGENTS).prop_map(Op::AgentDisconnect),
        1 => (0..AGENTS, any::<u8>()).prop_map(|(agent, forget)| Op::AgentReconnect { agent, forget }),
        2 => (0u8..40).prop_map(Op::Advance),
        1 => Just(Op::Tick),
    ]
}

const STATES: [TaskState; 6] = [
    TaskState::Starting,
    TaskState::Running,
    TaskState::Finished,
    TaskState::Failed,
    TaskState::Killed,
    TaskState::Lost,
];

/// A master under test and the names its slots stand for.
struct Sim {
    m: Master,
    frameworks: [Option<String>; FRAMEWORKS],
    agents: Vec<String>,
    streams: u32,
    tasks: u32,
}

impl Sim {
    fn new() -> Sim {
        let mut m = master(&[("a", 2.0)]);
        let agents = (1..=AGENTS as u8).map(|n| add_agent(&mut m, n)).collect();
        m.take_outbox();
        Sim {
            m,
            frameworks: Default::default(),
            agents,
            streams: 0,
            tasks: 0,
        }
    }

    /// The slot's framework id and its stream, if it is subscribed.
    fn caller(&self, slot: usize) -> Option<(Id, String)> {
        let id = self.frameworks[slot].as_ref()?;
        let stream = self.m.framework(id)?.stream.clone()?;
        Some((Id::new(id), stream))
    }

    fn call(&mut self, slot: usize, body: CallBody) {
        if let Some((id, stream)) = self.caller(slot) {
            self.m
                .scheduler_call(&id, Some(&stream), body)
                .expect("a subscribed framework's call is accepted");
        }
    }

    /// The slot's outstanding offers, in a stable order.
    fn offers(&self, slot: usize) -> Vec<(String, String)> {
        let Some(fw) = self.frameworks[slot]
            .as_ref()
            .and_then(|id| self.m.framework(id))
        else {
            return Vec::new();
        };
        let mut offers: Vec<(String, String)> = fw
            .offers
            .iter()
            .filter_map(|id| self.m.offer(id))
            .map(|o| (o.id.clone(), o.agent_id.clone()))
            .collect();
        offers.sort();
        offers
    }

    /// Every live task: (framework, task, agent), in a stable order.
    fn live_tasks(&self) -> Vec<(String, String, String)> {
        let mut all: Vec<_> = self
            .m
            .frameworks()
            .flat_map(|f| {
                f.tasks.values().map(move |t| {
                    (
                        f.id().to_string(),
                        t.info.task_id.value.clone(),
                        t.info.agent_id.value.clone(),
                    )
                })
            })
            .collect();
        all.sort();
        all
    }

    fn subscribe(&mut self, slot: usize) {
        self.streams += 1;
        let stream = format!("s{}", self.streams);
        let mut info = framework_info(&format!("f{slot}"), ROLES[slot]);
        info.id = self.frameworks[slot].as_ref().map(Id::new);
        let resubscribed = self
            .m
            .subscribe(info.id.clone().as_ref(), info.clone(), stream.clone());
        let id = match resubscribed {
            Ok(id) => id,
            // Torn down: a new framework takes the slot.
            Err(_) => {
                info.id = None;
                self.m
                    .subscribe(None, info, stream)
                    .expect("a new framework subscribes")
            }
        };
        self.frameworks[slot] = Some(id);
    }

    fn accept(&mut self, slot: usize, offer: usize, tasks: &[(u8, u16, Option<u8>)]) {
        let offers = self.offers(slot);
        let (offer_id, agent_id) = match offers.get(offer % offers.len().max(1)) {
            Some(o) => o.clone(),
            None => ("no-such-offer".to_string(), self.agents[0].clone()),
        };
        let tasks = tasks
            .iter()
            .map(|&(tenths, mem, port)| {
                self.tasks += 1;
                let ports: Vec<(u16, u16)> = port
                    .map(|p| (31000 + u16::from(p), 31000 + u16::from(p)))
                    .into_iter()
                    .collect();
                task(
                    &format!("t{}", self.tasks),
                    &agent_id,
                    f64::from(tenths) / 10.0,
                    f64::from(mem),
                    &ports,
                )
            })
            .collect();
        let accept = Accept {
            offer_ids: vec![Id::new(offer_id)],
            operations: vec![Operation::launch(tasks)],
            filters: None,
        };
        self.call(slot, CallBody::Accept(accept));
    }

    fn update(&mut self, task: usize, state: usize) {
        let live = self.live_tasks();
        let Some((fw, task, agent)) = live.get(task % live.len().max(1)).cloned() else {
            return;
        };
        let status = TaskStatus {
            task_id: Id::new(task),
            state: STATES[state],
            uuid: Some(crate::api::new_update_uuid()),
            ..TaskStatus::default()
        };
        // Refused when the agent is not connected, as a real agent's would be.
        let _ = self
            .m
            .agent_update(Id::new(agent), &Id::new(fw), status, None);
    }

    fn agent_reconnect(&mut self, agent: usize, forget: u8) {
        let agent_id = self.agents[agent].clone();
        let mut reports = Vec::new();
        for (i, (fw, task, on)) in self.live_tasks().into_iter().enumerate() {
            if on != agent_id || forget & (1 << (i % 8)) != 0 {
                continue;
            }
            let f = self.m.framework(&fw).expect("a live task's framework");
            let t = &f.tasks[&task];
            reports.push(TaskReport {
                framework: f.info.clone(),
                task: t.info.clone(),
                state: t.state,
                status: t.statuses.last().cloned(),
            });
        }
        let info = AgentInfo {
            hostname: format!("10.0.1.{}", agent + 1),
            port: 5051,
            resources: agent_total().to_api(None),
            ..AgentInfo::default()
        };
        self.m
            .agent_subscribe(Some(Id::new(agent_id)), info, reports, agent_total(), None);
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Subscribe(slot) => self.subscribe(slot),
            Op::Disconnect(slot) => {
                if let Some((id, stream)) = self.caller(slot) {
                    self.m.framework_disconnected(&id.value, &stream);
                }
            }
            Op::Teardown(slot) => self.call(slot, CallBody::Teardown),
            Op::Suppress(slot) => self.call(slot, CallBody::Suppress),
            Op::Revive(slot) => self.call(slot, CallBody::Revive),
            Op::Allocate => {
                self.m.allocate();
            }
            Op::Accept {
                fw,
                offer,
                ref tasks,
            } => self.accept(fw, offer, tasks),
            Op::Decline { fw, offer, refuse } => {
                let offers = self.offers(fw);
                if let Some((id, _)) = offers.get(offer % offers.len().max(1)) {
                    let decline = Decline {
                        offer_ids: vec![Id::new(id)],
                        filters: Some(Filters {
                            refuse_seconds: Some(f64::from(refuse)),
                        }),
                    };
                    self.call(fw, CallBody::Decline(decline));
                }
            }
            Op::Kill { fw, task } => {
                let live = self.live_tasks();
                let id = self.frameworks[fw].clone().unwrap_or_default();
                let mine: Vec<_> = live.iter().filter(|(f, _, _)| *f == id).collect();
                if let Some((_, task, _)) = mine.get(task % mine.len().max(1)) {
                    let kill = Kill {
                        task_id: Id::new(task),
                        ..Kill::default()
                    };
                    self.call(fw, CallBody::Kill(kill));
                }
            }
            Op::Update { task, state } => self.update(task, state),
            Op::AgentDisconnect(agent) => {
                let id = &self.agents[agent];
                let session = self.m.agent(id).map_or(0, |a| a.session);
                self.m.agent_disconnected(id, session);
            }
            Op::AgentReconnect { agent, forget } => self.agent_reconnect(agent, forget),
            Op::Advance(secs) => self.m.advance(Duration::from_secs(secs.into())),
            Op::Tick => {
                self.m.expire_frameworks();
                self.m.mark_unreachable(Duration::from_secs(30));
            }
        }
    }

    /// One step, then the books and what it sent are checked.
    fn checked_step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.step(op);
        let sent = self.m.take_outbox();
        check_sent(&sent).map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))?;
        check_invariants(&self.m).map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))
    }
}

/// What a step sent is well-formed: a framework's new stream hears SUBSCRIBED first, and
/// no offer is made twice.
fn check_sent(sent: &[Outbound]) -> Result<(), String> {
    let mut opened: BTreeMap<&str, bool> = BTreeMap::new();
    let mut offered = std::collections::HashSet::new();
    for out in sent {
        match out {
            Outbound::OpenFramework { framework_id, .. } => {
                opened.insert(framework_id, false);
            }
            Outbound::Framework {
                framework_id,
                event,
            } => {
                if opened.get(framework_id.as_str()) == Some(&false)
                    && !matches!(event, Event::Subscribed(_))
                {
                    return Err(format!(
                        "{framework_id}'s new stream heard {} first",
                        event.kind()
                    ));
                }
                opened.insert(framework_id, true);
                if let Event::Offers(o) = event {
                    for offer in &o.offers {
                        if !offered.insert(offer.id.value.clone()) {
                            return Err(format!("offer {} made twice", offer.id.value));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // Offers are conserved and nothing is held twice, at every step of any sequence.
    #[test]
    fn the_books_balance_at_every_step(ops in prop::collection::vec(op(), 10..120)) {
        let mut sim = Sim::new();
        for slot in 0..FRAMEWORKS {
            sim.subscribe(slot);
        }
        sim.m.take_outbox();
        for op in &ops {
            sim.checked_step(op)?;
        }
    }

    // A framework that comes back within its failover timeout finds its tasks as it left
    // them, whatever the others do meanwhile; one that comes back later was torn down.
    #[test]
    fn a_failover_within_the_timeout_keeps_the_tasks(
        before in prop::collection::vec(op(), 5..80),
        meanwhile in prop::collection::vec(op(), 0..30),
        away in 0..FAILOVER * 2,
    ) {
        let mut sim = Sim::new();
        for slot in 0..FRAMEWORKS {
            sim.subscribe(slot);
        }
        for op in &before {
            sim.checked_step(op)?;
        }
        sim.subscribe(0);
        let id = sim.frameworks[0].clone().unwrap();
        let tasks_of = |m: &Master| -> Vec<(String, TaskState)> {
            m.framework(&id).map(|f| f.tasks.values().map(|t| (t.info.task_id.value.clone(), t.state)).collect()).unwrap_or_default()
        };
        let left = tasks_of(&sim.m);
        let (_, stream) = sim.caller(0).unwrap();
        sim.m.framework_disconnected(&id, &stream);
        // The others go on; time passes by `away` in all; agents stay.
        let mut passed = 0;
        for op in &meanwhile {
            let op = match op {
                Op::Subscribe(s) | Op::Disconnect(s) | Op::Teardown(s) | Op::Suppress(s) | Op::Revive(s) if *s == 0 => continue,
                Op::Accept { fw: 0, .. } | Op::Decline { fw: 0, .. } | Op::Kill { fw: 0, .. } => continue,
                Op::Update { .. } | Op::AgentDisconnect(_) | Op::AgentReconnect { .. } | Op::Tick => continue,
                Op::Advance(secs) => {
                    let secs = u64::from(*secs).min(away - passed);
                    passed += secs;
                    Op::Advance(secs as u8)
                }
                other => other.clone(),
            };
            sim.checked_step(&op)?;
        }
        sim.m.advance(Duration::from_secs(away - passed));
        sim.m.expire_frameworks();
        check_invariants(&sim.m).map_err(TestCaseError::fail)?;
        let mut info = framework_info("f0", ROLES[0]);
        info.id = Some(Id::new(&id));
        let back = sim.m.subscribe(info.id.clone().as_ref(), info, "back".into());
        if away < FAILOVER {
            prop_assert_eq!(back, Ok(id.clone()));
            prop_assert_eq!(tasks_of(&sim.m), left);
        } else {
            prop_assert!(back.is_err());
            let done = sim.m.completed_frameworks().iter().find(|f| f.id() == id).unwrap();
            prop_assert!(done.tasks.is_empty());
            prop_assert!(sim.m.agents().all(|a| a.used.cpus <= a.total.cpus));
        }
        check_invariants(&sim.m).map_err(TestCaseError::fail)?;
    }
}
