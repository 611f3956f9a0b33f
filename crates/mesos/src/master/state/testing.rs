//! Helpers for tests of the state machine and the allocator: masters with agents and
//! frameworks, readers of what a transition sent, and the invariants every state must keep.

use std::collections::{HashMap, HashSet};

use dcos_ports::RangeSet;

use crate::api::{
    CommandInfo, FrameworkInfo, Id, Range, Ranges, Resource, Scalar, TaskInfo, TaskStatus,
};
use crate::protocol::{AgentEvent, AgentInfo};
use crate::resources::Resources;
use crate::scheduler::{self, Event};

use super::{scalars, Master, Outbound};

/// What every test agent has: 4 cpus, 4 GiB, 10 GB of disk, 100 ports.
pub fn agent_total() -> Resources {
    Resources {
        cpus: 4.0,
        mem: 4096.0,
        disk: 10_000.0,
        gpus: 0.0,
        ports: RangeSet::range(31000, 31099),
    }
}

/// A master with no state and the given role weights.
pub fn master(weights: &[(&str, f64)]) -> Master {
    let weights = weights.iter().map(|(r, w)| (r.to_string(), *w)).collect();
    Master::new("10.0.0.1".into(), 5050, "test".into(), weights)
}

/// Registers agent number `n` (`10.0.1.<n>`); returns its id.
pub fn add_agent(m: &mut Master, n: u8) -> String {
    let info = AgentInfo {
        hostname: format!("10.0.1.{n}"),
        port: 5051,
        resources: agent_total().to_api(None),
        attributes: [("rack".to_string(), format!("r{}", n % 2))].into(),
        version: "1.5.0".into(),
    };
    m.agent_subscribe(None, info, Vec::new(), agent_total(), None)
        .0
}

/// A framework's info: `name`, in `role`, with a minute of failover timeout.
pub fn framework_info(name: &str, role: &str) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: name.into(),
        role: Some(role.into()),
        failover_timeout: Some(60.0),
        ..FrameworkInfo::default()
    }
}

/// Subscribes a new framework on the stream `stream-<name>`; returns its id.
pub fn add_framework(m: &mut Master, name: &str, role: &str) -> String {
    m.subscribe(None, framework_info(name, role), format!("stream-{name}"))
        .expect("the framework subscribes")
}

/// The events sent to `framework_id`.
pub fn events_for<'a>(
    sent: &'a [Outbound],
    framework_id: &'a str,
) -> impl Iterator<Item = &'a Event> {
    sent.iter().filter_map(move |o| match o {
        Outbound::Framework {
            framework_id: f,
            event,
        } if f == framework_id => Some(event),
        _ => None,
    })
}

/// The offers sent to `framework_id`.
pub fn offers_for(sent: &[Outbound], framework_id: &str) -> Vec<scheduler::Offer> {
    events_for(sent, framework_id)
        .filter_map(|e| match e {
            Event::Offers(o) => Some(o.offers.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The statuses sent to `framework_id`.
pub fn updates_for(sent: &[Outbound], framework_id: &str) -> Vec<TaskStatus> {
    events_for(sent, framework_id)
        .filter_map(|e| match e {
            Event::Update(u) => Some(u.status.clone()),
            _ => None,
        })
        .collect()
}

/// The events sent to `agent_id`.
pub fn agent_events<'a>(
    sent: &'a [Outbound],
    agent_id: &'a str,
) -> impl Iterator<Item = &'a AgentEvent> {
    sent.iter().filter_map(move |o| match o {
        Outbound::Agent { agent_id: a, event } if a == agent_id => Some(&**event),
        _ => None,
    })
}

/// A command task using `cpus` and `mem` (and `ports`) of `agent_id`.
pub fn task(id: &str, agent_id: &str, cpus: f64, mem: f64, ports: &[(u16, u16)]) -> TaskInfo {
    let scalar = |name: &str, value: f64| Resource {
        name: name.into(),
        kind: "SCALAR".into(),
        scalar: Some(Scalar { value }),
        ..Resource::default()
    };
    let mut resources = vec![scalar("cpus", cpus), scalar("mem", mem)];
    if !ports.is_empty() {
        resources.push(Resource {
            name: "ports".into(),
            kind: "RANGES".into(),
            ranges: Some(Ranges {
                range: ports
                    .iter()
                    .map(|&(b, e)| Range {
                        begin: b.into(),
                        end: e.into(),
                    })
                    .collect(),
            }),
            ..Resource::default()
        });
    }
    TaskInfo {
        name: id.into(),
        task_id: Id::new(id),
        agent_id: Id::new(agent_id),
        resources,
        command: Some(CommandInfo {
            value: Some("sleep 1000".into()),
            ..CommandInfo::default()
        }),
        ..TaskInfo::default()
    }
}

/// Scalars compared with room for float sums.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

/// Whether two bundles are the same, scalars to float precision.
pub fn same(a: &Resources, b: &Resources) -> bool {
    close(a.cpus, b.cpus)
        && close(a.mem, b.mem)
        && close(a.disk, b.disk)
        && close(a.gpus, b.gpus)
        && a.ports == b.ports
}

/// `parts` sum to at most `total` and no port is in two of them.
fn disjoint_within<'a>(
    total: &Resources,
    parts: impl Iterator<Item = (&'a str, &'a Resources)>,
) -> Result<Resources, String> {
    let mut sum = Resources::default();
    for (what, part) in parts {
        if !sum.ports.subtract(&part.ports).eq(&sum.ports) {
            return Err(format!("{what} holds ports {} already held", part.ports));
        }
        sum = sum.add(part);
    }
    if !total.contains(&sum) {
        return Err(format!("{sum} is held of only {total}"));
    }
    Ok(sum)
}

/// The master's books balance: every agent's total is its free, offered and used
/// resources; what agents and frameworks count as offered and used is what their offers and
/// tasks hold; no resource is offered or used twice; offers are of connected frameworks and
/// active agents.
pub fn check_invariants(m: &Master) -> Result<(), String> {
    let mut agent_offers: HashMap<&str, Vec<(&str, &Resources)>> = HashMap::new();
    let mut framework_offers: HashMap<&str, Vec<(&str, &Resources)>> = HashMap::new();
    for (id, o) in &m.offers {
        if id != &o.id {
            return Err(format!("offer {id} is filed as {}", o.id));
        }
        let fw = m
            .frameworks
            .get(&o.framework_id)
            .ok_or(format!("offer {id} of no framework"))?;
        let agent = m
            .agents
            .get(&o.agent_id)
            .ok_or(format!("offer {id} of no agent"))?;
        if !fw.connected() || !fw.active || !agent.active() {
            return Err(format!(
                "offer {id} outlived its framework's or agent's connection"
            ));
        }
        agent_offers
            .entry(&o.agent_id)
            .or_default()
            .push((id, &o.resources));
        framework_offers
            .entry(&o.framework_id)
            .or_default()
            .push((id, &o.resources));
    }
    let mut agent_tasks: HashMap<&str, Vec<(&str, &Resources)>> = HashMap::new();
    for fw in m.frameworks.values() {
        let offers = framework_offers.remove(fw.id()).unwrap_or_default();
        let ids: HashSet<&str> = offers.iter().map(|(id, _)| *id).collect();
        if ids != fw.offers.iter().map(String::as_str).collect() {
            return Err(format!(
                "framework {} lists offers {:?}, holds {ids:?}",
                fw.id(),
                fw.offers
            ));
        }
        // A framework's sums are of scalars: its agents' ports are not comparable.
        let offered = offers
            .iter()
            .fold(Resources::default(), |acc, (_, r)| acc.add(&scalars(r)));
        if !same(&offered, &fw.offered) {
            return Err(format!(
                "framework {} counts {} offered, holds {offered}",
                fw.id(),
                fw.offered
            ));
        }
        let used = fw.tasks.values().fold(Resources::default(), |acc, t| {
            acc.add(&scalars(&t.resources))
        });
        if !same(&used, &fw.used) {
            return Err(format!(
                "framework {} counts {} used, runs {used}",
                fw.id(),
                fw.used
            ));
        }
        for (id, t) in &fw.tasks {
            if t.state.is_terminal() {
                return Err(format!("task {id} is {} but not completed", t.state));
            }
            agent_tasks
                .entry(&t.info.agent_id.value)
                .or_default()
                .push((id, &t.resources));
        }
    }
    for agent in m.agents.values() {
        let offers = agent_offers.remove(agent.id.as_str()).unwrap_or_default();
        let tasks = agent_tasks.remove(agent.id.as_str()).unwrap_or_default();
        let ids: HashSet<&str> = offers.iter().map(|(id, _)| *id).collect();
        if ids != agent.offers.iter().map(String::as_str).collect() {
            return Err(format!(
                "agent {} lists offers {:?}, holds {ids:?}",
                agent.id, agent.offers
            ));
        }
        let offered = offers
            .iter()
            .fold(Resources::default(), |acc, (_, r)| acc.add(r));
        let used = tasks
            .iter()
            .fold(Resources::default(), |acc, (_, r)| acc.add(r));
        if !same(&offered, &agent.offered) || !same(&used, &agent.used) {
            return Err(format!(
                "agent {} counts {} offered and {} used; its offers hold {offered}, its tasks {used}",
                agent.id, agent.offered, agent.used
            ));
        }
        let held = disjoint_within(&agent.total, offers.iter().chain(&tasks).copied())
            .map_err(|e| format!("agent {}: {e}", agent.id))?;
        let free = agent.total.sub(&agent.used).sub(&agent.offered);
        if !same(&free.add(&held), &agent.total) {
            return Err(format!(
                "agent {}: free {free} + held {held} is not its total",
                agent.id
            ));
        }
    }
    if let Some((agent, _)) = agent_tasks.into_iter().next() {
        return Err(format!("tasks run on unknown agent {agent}"));
    }
    Ok(())
}

/// How many (framework, agent) filters the master keeps.
pub fn filter_count(m: &Master) -> usize {
    m.filters.values().map(|f| f.len()).sum()
}
