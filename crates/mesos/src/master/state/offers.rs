//! Offers: made from the allocator's decisions, taken back (DECLINE, a rescind, an ACCEPT),
//! and the filters and switches that steer allocation (DECLINE's and ACCEPT's filters,
//! REVIVE, SUPPRESS).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::api::{self, AllocationInfo, Id};
use crate::resources::Resources;
use crate::scheduler::{self, Address, Event, Offers, Rescind, Url};

use super::{scalars, Master, DEFAULT_REFUSE};
use crate::master::allocator::{self, Allocation};

/// An outstanding offer.
#[derive(Clone, Debug)]
pub struct Offer {
    /// Its id.
    pub(in crate::master) id: String,
    /// Its framework.
    pub(in crate::master) framework_id: String,
    /// Its agent.
    pub(in crate::master) agent_id: String,
    /// Its resources.
    pub(in crate::master) resources: Resources,
}

/// The longest a filter lasts.
const MAX_REFUSE: Duration = Duration::from_secs(365 * 86400);

impl Master {
    /// One allocation cycle: the allocator's decisions at the master's now, made into offers
    /// (one OFFERS event per framework). Returns the decisions.
    pub fn allocate(&mut self) -> Vec<Allocation> {
        let started = Instant::now();
        let now = self.now();
        // Expired filters go (they would otherwise pile up for the master's life).
        self.filters.retain(|_, agents| {
            agents.retain(|_, until| *until > now);
            !agents.is_empty()
        });
        let decisions = allocator::allocate(self, now);
        self.make_offers(&decisions);
        self.allocation_runs
            .record(started.elapsed().as_secs_f64() * 1000.0);
        decisions
    }

    /// Makes the offers the allocator decided on and sends them, one OFFERS event per
    /// framework.
    pub fn make_offers(&mut self, decisions: &[Allocation]) {
        let mut by_framework: BTreeMap<&str, Vec<scheduler::Offer>> = BTreeMap::new();
        for decision in decisions {
            let id = self.fresh_id("O");
            let (Some(fw), Some(agent)) = (
                self.frameworks.get_mut(&decision.framework_id),
                self.agents.get_mut(&decision.agent_id),
            ) else {
                continue;
            };
            let resources = &decision.resources;
            let role = fw.role().to_string();
            agent.offered = agent.offered.add(resources);
            agent.offers.insert(id.clone());
            fw.offered = fw.offered.add(&scalars(resources));
            fw.offers.insert(id.clone());
            let hostname = &agent.info.hostname;
            by_framework
                .entry(&decision.framework_id)
                .or_default()
                .push(scheduler::Offer {
                    id: Id::new(&id),
                    framework_id: Id::new(&decision.framework_id),
                    agent_id: Id::new(&decision.agent_id),
                    hostname: hostname.clone(),
                    url: Some(Url {
                        scheme: "http".into(),
                        address: Address {
                            hostname: Some(hostname.clone()),
                            ip: Some(hostname.clone()),
                            port: agent.info.port,
                        },
                        path: "/slave(1)".into(),
                    }),
                    resources: resources.to_api(Some(&role)),
                    attributes: agent.attributes_v1(),
                    executor_ids: Vec::new(),
                    allocation_info: Some(AllocationInfo { role: Some(role) }),
                });
            self.offers.insert(
                id.clone(),
                Offer {
                    id,
                    framework_id: decision.framework_id.clone(),
                    agent_id: decision.agent_id.clone(),
                    resources: resources.clone(),
                },
            );
        }
        for (framework_id, offers) in by_framework {
            if let Some(fw) = self.frameworks.get(framework_id) {
                self.outbox.framework(fw, Event::Offers(Offers { offers }));
            }
        }
    }

    /// Removes an offer, returning its resources to the agent; tells the framework if
    /// `rescind`.
    pub(super) fn remove_offer(&mut self, offer_id: &str, rescind: bool) -> Option<Offer> {
        let offer = self.offers.remove(offer_id)?;
        if let Some(agent) = self.agents.get_mut(&offer.agent_id) {
            agent.offered = agent.offered.sub(&offer.resources);
            agent.offers.remove(offer_id);
        }
        if let Some(fw) = self.frameworks.get_mut(&offer.framework_id) {
            fw.offers.remove(offer_id);
            fw.offered = fw.offered.sub(&scalars(&offer.resources));
            if rescind {
                let rescind = Rescind {
                    offer_id: Id::new(offer_id),
                };
                self.outbox.framework(fw, Event::Rescind(rescind));
            }
        }
        Some(offer)
    }

    /// Removes every offer made to a framework.
    pub(super) fn remove_framework_offers(&mut self, framework_id: &str, rescind: bool) {
        let ids: Vec<String> = self
            .frameworks
            .get(framework_id)
            .map(|f| f.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.remove_offer(&id, rescind);
        }
    }

    /// Removes every offer of an agent's resources.
    pub(super) fn remove_agent_offers(&mut self, agent_id: &str, rescind: bool) {
        let ids: Vec<String> = self
            .agents
            .get(agent_id)
            .map(|a| a.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.remove_offer(&id, rescind);
        }
    }

    /// Keeps `agent_id`'s resources from `framework_id` for the filter's `refuse_seconds`
    /// (5 s by default).
    pub(super) fn add_filter(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        filters: Option<&api::Filters>,
    ) {
        let secs = filters
            .and_then(|f| f.refuse_seconds)
            .unwrap_or(DEFAULT_REFUSE.as_secs_f64());
        if secs > 0.0 && secs.is_finite() {
            // Capped before converting: a finite but huge number does not fit a Duration.
            let refuse = Duration::from_secs_f64(secs.min(MAX_REFUSE.as_secs_f64()));
            let until = self.now() + refuse;
            self.filters
                .entry(framework_id.to_string())
                .or_default()
                .insert(agent_id.to_string(), until);
        }
    }

    /// DECLINE: the framework's offers among `offer_ids` go back, filtered.
    pub fn decline(
        &mut self,
        framework_id: &str,
        offer_ids: &[Id],
        filters: Option<&api::Filters>,
    ) {
        for oid in offer_ids {
            let owned = self
                .offers
                .get(&oid.value)
                .is_some_and(|o| o.framework_id == framework_id);
            if owned {
                if let Some(offer) = self.remove_offer(&oid.value, false) {
                    self.add_filter(framework_id, &offer.agent_id, filters);
                }
            }
        }
    }

    /// REVIVE: forget the framework's filters and resume offers.
    pub fn revive(&mut self, framework_id: &str) {
        self.filters.remove(framework_id);
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            fw.suppressed = false;
        }
    }

    /// SUPPRESS: no more offers until REVIVE.
    pub fn suppress(&mut self, framework_id: &str) {
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            fw.suppressed = true;
        }
    }
}
