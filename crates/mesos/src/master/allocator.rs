//! Dominant Resource Fairness over roles (weighted) and the frameworks within each role.
//!
//! Each allocation cycle hands every active agent's free resources (total minus used minus
//! offered) to one framework: the eligible framework whose role has the lowest weighted
//! dominant share, ties broken by the framework's own dominant share. Shares count what a
//! framework uses and holds in offers, and are updated as the cycle hands out offers, so
//! one cycle spreads agents across frameworks.

use std::collections::HashMap;
use std::time::Instant;

use crate::resources::Resources;

use super::state::Master;

#[cfg(test)]
mod harness;

/// One decision of a cycle: `framework_id` is offered `resources` of `agent_id`.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// The framework.
    pub framework_id: String,
    /// The agent.
    pub agent_id: String,
    /// Its free resources, all of them.
    pub resources: Resources,
}

/// One cycle at `now` (for filters): which framework gets which agent's free resources.
pub fn allocate(master: &Master, now: Instant) -> Vec<Allocation> {
    let cluster_total = master
        .agents()
        .filter(|a| a.active())
        .fold(Resources::default(), |acc, a| acc.add(&a.total));
    let mut fw_alloc: HashMap<&str, Resources> = HashMap::new();
    let mut role_alloc: HashMap<&str, Resources> = HashMap::new();
    let mut eligible: Vec<(&str, &str)> = Vec::new();
    for fw in master.frameworks() {
        let alloc = fw.used.add(&fw.offered);
        let role = fw.role();
        let entry = role_alloc.entry(role).or_default();
        *entry = entry.add(&alloc);
        fw_alloc.insert(fw.id(), alloc);
        if fw.active && fw.connected() && !fw.suppressed {
            eligible.push((fw.id(), role));
        }
    }
    if eligible.is_empty() {
        return Vec::new();
    }
    let mut agents: Vec<_> = master.agents().filter(|a| a.active()).collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    let weight = |role: &str| master.weight(role).max(1e-6);
    let mut decisions = Vec::new();
    for agent in agents {
        let free = agent.total.sub(&agent.used).sub(&agent.offered);
        if !free.is_offerable() {
            continue;
        }
        let pick = eligible
            .iter()
            .filter(|(fw, _)| !master.is_filtered(fw, &agent.id, now))
            .min_by(|(fa, ra), (fb, rb)| {
                let key = |fw: &str, role: &str| {
                    let rs = role_alloc
                        .get(role)
                        .map_or(0.0, |r| r.dominant_share(&cluster_total))
                        / weight(role);
                    let fs = fw_alloc
                        .get(fw)
                        .map_or(0.0, |r| r.dominant_share(&cluster_total));
                    (rs, fs)
                };
                let (a, b) = (key(fa, ra), key(fb, rb));
                a.partial_cmp(&b)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| fa.cmp(fb))
            });
        let Some(&(fw, role)) = pick else { continue };
        let entry = fw_alloc.entry(fw).or_default();
        *entry = entry.add(&free);
        let r = role_alloc.entry(role).or_default();
        *r = r.add(&free);
        decisions.push(Allocation {
            framework_id: fw.to_string(),
            agent_id: agent.id.clone(),
            resources: free,
        });
    }
    decisions
}
