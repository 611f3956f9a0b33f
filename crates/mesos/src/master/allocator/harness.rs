//! A harness for allocation scenarios, after Nomad's scheduler `Harness` (which records the
//! plans a scheduler submits): a master with N agents and F frameworks, allocation cycles
//! run on it, and every decision recorded as which framework got which agent's resources.
//! Each cycle also checks that the OFFERS the master sent are the decisions, and that the
//! master's books balance.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{Filters, Id};
use crate::resources::Resources;
use crate::scheduler::{Accept, CallBody, Decline, Operation};

use crate::master::state::testing::{
    add_agent, add_framework, check_invariants, filter_count, master, offers_for, same, task,
};
use crate::master::state::Master;

/// One decision, by name: `framework` was offered `agent`'s `resources`.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The framework's name.
    pub framework: String,
    /// The agent's name (`a0`, `a1`, ...).
    pub agent: String,
    /// What it was offered.
    pub resources: Resources,
}

/// A master, its agents and frameworks by name, and the decisions of every cycle so far.
pub struct Harness {
    pub master: Master,
    /// Agent ids, by name.
    agents: BTreeMap<String, String>,
    /// Framework ids, by name.
    frameworks: BTreeMap<String, String>,
    /// Every cycle's decisions, oldest first.
    pub cycles: Vec<Vec<Decision>>,
}

impl Harness {
    /// `agents` agents (`a0`...) and the `frameworks` given as (name, role), with role
    /// `weights`.
    pub fn new(agents: usize, frameworks: &[(&str, &str)], weights: &[(&str, f64)]) -> Harness {
        let mut m = master(weights);
        let agents = (0..agents)
            .map(|n| (format!("a{n}"), add_agent(&mut m, n as u8)))
            .collect();
        let frameworks = frameworks
            .iter()
            .map(|(name, role)| (name.to_string(), add_framework(&mut m, name, role)))
            .collect();
        m.take_outbox();
        Harness {
            master: m,
            agents,
            frameworks,
            cycles: Vec::new(),
        }
    }

    fn name_of<'a>(names: &'a BTreeMap<String, String>, id: &str) -> &'a str {
        names.iter().find(|(_, v)| *v == id).map_or("?", |(k, _)| k)
    }

    /// Runs one allocation cycle; returns (and records) its decisions.
    pub fn cycle(&mut self) -> &[Decision] {
        let decisions = self.master.allocate();
        let sent = self.master.take_outbox();
        let mut recorded = Vec::new();
        for d in &decisions {
            let offers = offers_for(&sent, &d.framework_id);
            let offer = offers
                .iter()
                .find(|o| o.agent_id.value == d.agent_id)
                .expect("each decision is offered");
            let offered = Resources::from_api(&offer.resources).unwrap();
            assert!(same(&offered, &d.resources), "{offered} offered for {d:?}");
            recorded.push(Decision {
                framework: Self::name_of(&self.frameworks, &d.framework_id).to_string(),
                agent: Self::name_of(&self.agents, &d.agent_id).to_string(),
                resources: d.resources.clone(),
            });
        }
        let made: usize = self
            .frameworks
            .values()
            .map(|id| offers_for(&sent, id).len())
            .sum();
        assert_eq!(made, decisions.len(), "offers beyond the decisions");
        check_invariants(&self.master).unwrap();
        self.cycles.push(recorded);
        self.cycles.last().unwrap()
    }

    /// How many agents each framework got in the last cycle.
    pub fn counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for d in self.cycles.last().into_iter().flatten() {
            *counts.entry(d.framework.as_str()).or_default() += 1;
        }
        counts
    }

    fn call(&mut self, framework: &str, body: CallBody) {
        let id = &self.frameworks[framework];
        let stream = self.master.framework(id).unwrap().stream.clone();
        self.master
            .scheduler_call(&Id::new(id), stream.as_deref(), body)
            .unwrap();
        self.master.take_outbox();
    }

    /// The framework's outstanding offers.
    fn offer_ids(&self, framework: &str) -> Vec<(Id, String)> {
        let fw = self.master.framework(&self.frameworks[framework]).unwrap();
        let mut ids: Vec<(Id, String)> = fw
            .offers
            .iter()
            .map(|id| (Id::new(id), self.master.offer(id).unwrap().agent_id.clone()))
            .collect();
        ids.sort();
        ids
    }

    /// The framework declines every offer it holds, for `refuse_seconds`.
    pub fn decline_all(&mut self, framework: &str, refuse_seconds: f64) {
        let offer_ids = self
            .offer_ids(framework)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let filters = Some(Filters {
            refuse_seconds: Some(refuse_seconds),
        });
        self.call(framework, CallBody::Decline(Decline { offer_ids, filters }));
    }

    /// The framework launches one task of `cpus` and `mem` on each offer it holds.
    pub fn launch_on_all(&mut self, framework: &str, cpus: f64, mem: f64) {
        for (n, (offer, agent)) in self.offer_ids(framework).into_iter().enumerate() {
            let t = task(
                &format!("{framework}-{n}-{}", self.cycles.len()),
                &agent,
                cpus,
                mem,
                &[],
            );
            let accept = Accept {
                offer_ids: vec![offer],
                operations: vec![Operation::launch(vec![t])],
                filters: Some(Filters {
                    refuse_seconds: Some(0.0),
                }),
            };
            self.call(framework, CallBody::Accept(accept));
        }
    }

    /// SUPPRESS or REVIVE.
    pub fn suppress(&mut self, framework: &str) {
        self.call(framework, CallBody::Suppress);
    }

    /// REVIVE.
    pub fn revive(&mut self, framework: &str) {
        self.call(framework, CallBody::Revive);
    }

    /// Time passes.
    pub fn advance(&mut self, by: Duration) {
        self.master.advance(by);
    }
}

#[test]
fn equal_frameworks_share_the_agents_equally() {
    let mut h = Harness::new(8, &[("f", "*"), ("g", "*")], &[]);
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("f", 4), ("g", 4)]));
    // Each agent went to one framework, whole.
    let agents: std::collections::BTreeSet<&str> =
        h.cycles[0].iter().map(|d| d.agent.as_str()).collect();
    assert_eq!(agents.len(), 8);
    assert!(h.cycles[0].iter().all(|d| d.resources.cpus == 4.0));
    // Offers outstanding are not offered again.
    assert!(h.cycle().is_empty());
}

#[test]
fn role_weights_split_the_agents() {
    let mut h = Harness::new(8, &[("heavy", "web"), ("light", "batch")], &[("web", 3.0)]);
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("heavy", 6), ("light", 2)]));
    // Frameworks of one role share that role's part.
    let mut h = Harness::new(
        8,
        &[("w1", "web"), ("w2", "web"), ("b", "batch")],
        &[("web", 3.0)],
    );
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("b", 2), ("w1", 3), ("w2", 3)]));
}

#[test]
fn what_a_framework_runs_counts_toward_its_share() {
    let mut h = Harness::new(4, &[("busy", "a"), ("idle", "b")], &[]);
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("busy", 2), ("idle", 2)]));
    // busy fills its two agents; idle returns its two.
    h.launch_on_all("busy", 4.0, 4096.0);
    h.decline_all("idle", 0.0);
    h.cycle();
    // Both may have them; busy's running tasks put it behind, so idle gets both.
    assert_eq!(h.counts(), BTreeMap::from([("idle", 2)]));
    // What runs is not free: busy's agents are not offered.
    assert!(h.cycles[1].iter().all(|d| d.resources.cpus == 4.0));
}

#[test]
fn declined_agents_are_not_offered_again_while_filtered() {
    let mut h = Harness::new(2, &[("picky", "*"), ("other", "*")], &[]);
    h.suppress("other");
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("picky", 2)]));
    h.decline_all("picky", 30.0);
    h.revive("other");
    h.cycle();
    assert_eq!(
        h.counts(),
        BTreeMap::from([("other", 2)]),
        "the filter sends them elsewhere"
    );
    h.decline_all("other", 30.0);
    h.advance(Duration::from_secs(29));
    assert!(h.cycle().is_empty(), "both filtered");
    h.advance(Duration::from_secs(1));
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("other", 1), ("picky", 1)]));
    assert_eq!(filter_count(&h.master), 0, "expired filters are dropped");
}

#[test]
fn a_suppressed_framework_gets_nothing() {
    let mut h = Harness::new(4, &[("quiet", "*"), ("loud", "*")], &[]);
    h.suppress("quiet");
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("loud", 4)]));
    h.decline_all("loud", 60.0);
    assert!(h.cycle().is_empty(), "not even what no one else takes");
    h.revive("quiet");
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("quiet", 4)]));
}

#[test]
fn revive_clears_the_filters() {
    let mut h = Harness::new(3, &[("f", "*")], &[]);
    h.cycle();
    h.decline_all("f", 3600.0);
    assert!(h.cycle().is_empty());
    h.revive("f");
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("f", 3)]));
}

#[test]
fn disconnected_frameworks_and_agents_are_left_out() {
    let mut h = Harness::new(3, &[("gone", "*"), ("here", "*")], &[]);
    let id = h.frameworks["gone"].clone();
    h.master.framework_disconnected(&id, "stream-gone");
    let a0 = h.agents["a0"].clone();
    let session = h.master.agent(&a0).unwrap().session;
    h.master.agent_disconnected(&a0, session);
    h.master.take_outbox();
    h.cycle();
    assert_eq!(h.counts(), BTreeMap::from([("here", 2)]));
    assert!(h.cycles[0].iter().all(|d| d.agent != "a0"));
}
