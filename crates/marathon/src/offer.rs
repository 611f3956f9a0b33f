//! Matching an app against a Mesos offer: resources, host ports, roles and constraints, with
//! the reasons Marathon gives when an offer does not fit (`/v2/queue`'s
//! `processedOffersSummary`). No I/O.

use std::collections::BTreeMap;

use dcos_mesos_api::resources::Resources;
use dcos_mesos_api::scheduler::Offer;
use dcos_ports::RangeSet;
use serde_json::{json, Value};

use crate::api::App;

/// Why an offer did not fit, in Marathon's `NoOfferMatchReason` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The offer's role is not one the app accepts.
    UnfulfilledRole,
    /// A constraint rules the agent out.
    UnfulfilledConstraint,
    /// No reservation for a resident app (dcos-rs has none, so never).
    NoCorrespondingReservationFound,
    /// The agent is in maintenance (dcos-rs has none, so never).
    AgentMaintenance,
    /// Too few cpus.
    InsufficientCpus,
    /// Too little memory.
    InsufficientMemory,
    /// Too little disk.
    InsufficientDisk,
    /// Too few GPUs.
    InsufficientGpus,
    /// The ports asked for are not offered.
    InsufficientPorts,
}

/// Every reason, in the order Marathon lists them.
pub const REASONS: &[Reason] = &[
    Reason::UnfulfilledRole,
    Reason::UnfulfilledConstraint,
    Reason::NoCorrespondingReservationFound,
    Reason::AgentMaintenance,
    Reason::InsufficientCpus,
    Reason::InsufficientMemory,
    Reason::InsufficientDisk,
    Reason::InsufficientGpus,
    Reason::InsufficientPorts,
];

impl Reason {
    /// Marathon's name.
    pub fn name(self) -> &'static str {
        match self {
            Reason::UnfulfilledRole => "UnfulfilledRole",
            Reason::UnfulfilledConstraint => "UnfulfilledConstraint",
            Reason::NoCorrespondingReservationFound => "NoCorrespondingReservationFound",
            Reason::AgentMaintenance => "AgentMaintenance",
            Reason::InsufficientCpus => "InsufficientCpus",
            Reason::InsufficientMemory => "InsufficientMemory",
            Reason::InsufficientDisk => "InsufficientDisk",
            Reason::InsufficientGpus => "InsufficientGpus",
            Reason::InsufficientPorts => "InsufficientPorts",
        }
    }
}

/// Offers processed for an app's current launch attempt.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OfferStats {
    /// Offers looked at.
    pub processed: u64,
    /// Offers that did not fit.
    pub unused: u64,
    /// When one last did not fit.
    pub last_unused_at: Option<String>,
    /// When one last fit.
    pub last_used_at: Option<String>,
    /// Declines by reason over the launch attempt.
    pub declined: BTreeMap<Reason, u64>,
    /// The reasons of the most recent offers that did not fit (newest last, at most 10).
    pub last_unused: Vec<(String, Vec<Reason>)>,
}

impl OfferStats {
    /// Records one offer's outcome.
    pub fn record(&mut self, agent: &str, result: &Result<(), Vec<Reason>>, at: &str) {
        self.processed += 1;
        match result {
            Ok(()) => self.last_used_at = Some(at.to_string()),
            Err(reasons) => {
                self.unused += 1;
                self.last_unused_at = Some(at.to_string());
                for r in reasons {
                    *self.declined.entry(*r).or_default() += 1;
                }
                self.last_unused.push((agent.to_string(), reasons.clone()));
                if self.last_unused.len() > 10 {
                    self.last_unused.remove(0);
                }
            }
        }
    }

    /// `processedOffersSummary` as Marathon 1.6 renders it.
    pub fn to_json(&self) -> Value {
        let summary = |declined: &dyn Fn(Reason) -> u64, processed: u64| -> Vec<Value> {
            // Marathon reports, per reason in its evaluation order, how many offers were
            // still being considered when that check ran and how many it declined.
            let mut left = processed;
            REASONS
                .iter()
                .map(|r| {
                    let d = declined(*r);
                    let v = json!({"reason": r.name(), "declined": d, "processed": left});
                    left = left.saturating_sub(d);
                    v
                })
                .collect()
        };
        let last = &self.last_unused;
        let last_declined =
            |r: Reason| last.iter().filter(|(_, rs)| rs.first() == Some(&r)).count() as u64;
        let attempt_declined = |r: Reason| self.declined.get(&r).copied().unwrap_or(0);
        json!({
            "processedOffersCount": self.processed,
            "unusedOffersCount": self.unused,
            "lastUnusedOfferAt": self.last_unused_at,
            "lastUsedOfferAt": self.last_used_at,
            "rejectSummaryLastOffers": summary(&last_declined, last.len() as u64),
            "rejectSummaryLaunchAttempt": summary(&attempt_declined, self.processed),
        })
    }
}

/// What an offer's agent looks like to constraints.
#[derive(Clone, Debug, Default)]
pub struct Place {
    /// The agent's hostname.
    pub hostname: String,
    /// Its text attributes.
    pub attributes: BTreeMap<String, String>,
}

impl Place {
    fn field(&self, name: &str) -> Option<&str> {
        if name == "hostname" {
            Some(&self.hostname)
        } else {
            self.attributes.get(name).map(String::as_str)
        }
    }
}

/// Where an offer's agent is: its hostname and its text and scalar attributes (the kinds
/// Marathon's constraints read).
pub fn place_of(offer: &Offer) -> Place {
    let attributes = offer
        .attributes
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.value_text()?)))
        .collect();
    Place {
        hostname: offer.hostname.clone(),
        attributes,
    }
}

/// Whether `app` fits the `available` resources of an offer in `role` on `place`, given
/// where its other instances run. On success, the host ports to use (one per port
/// definition).
pub fn match_app(
    app: &App,
    available: &Resources,
    role: &str,
    place: &Place,
    others: &[Place],
) -> Result<Vec<u16>, Vec<Reason>> {
    let mut reasons = Vec::new();
    let roles = app
        .accepted_resource_roles
        .clone()
        .unwrap_or_else(|| vec!["*".into()]);
    if !roles.iter().any(|r| r == role) {
        reasons.push(Reason::UnfulfilledRole);
    }
    if !constraints_hold(app, place, others) {
        reasons.push(Reason::UnfulfilledConstraint);
    }
    if available.cpus + 1e-6 < app.cpus {
        reasons.push(Reason::InsufficientCpus);
    }
    if available.mem + 1e-6 < app.mem {
        reasons.push(Reason::InsufficientMemory);
    }
    if available.disk + 1e-6 < app.disk {
        reasons.push(Reason::InsufficientDisk);
    }
    if available.gpus + 1e-6 < f64::from(app.gpus) {
        reasons.push(Reason::InsufficientGpus);
    }
    let ports = pick_ports(app, &available.ports);
    if ports.is_none() {
        reasons.push(Reason::InsufficientPorts);
    }
    match ports {
        Some(p) if reasons.is_empty() => Ok(p),
        _ => Err(reasons),
    }
}

/// Host ports for the app's port definitions: the fixed port itself with `requirePorts`,
/// any offered port otherwise.
fn pick_ports(app: &App, offered: &RangeSet) -> Option<Vec<u16>> {
    let mut free = offered.clone();
    let mut picked = Vec::new();
    // Fixed ports first, so a dynamic pick never takes a port a fixed one needs.
    let mut slots: Vec<Option<u16>> = vec![None; app.port_definitions.len()];
    if app.require_ports {
        for (i, pd) in app.port_definitions.iter().enumerate() {
            if pd.port != 0 {
                let port = u16::try_from(pd.port).ok()?;
                if !free.contains(port) {
                    return None;
                }
                free = free.subtract(&RangeSet::single(port));
                slots[i] = Some(port);
            }
        }
    }
    for slot in &mut slots {
        if slot.is_none() {
            let port = free.ports().next()?;
            free = free.subtract(&RangeSet::single(port));
            *slot = Some(port);
        }
    }
    for s in slots {
        picked.push(s?);
    }
    Some(picked)
}

/// Whether every constraint of the app holds for `place`, given the places of its other
/// live instances.
pub fn constraints_hold(app: &App, place: &Place, others: &[Place]) -> bool {
    app.constraints.iter().all(|c| {
        let (Some(field), Some(op)) = (c.first(), c.get(1)) else {
            return true;
        };
        let value = c.get(2).map(String::as_str);
        let mine = place.field(field);
        let count_same = |v: Option<&str>| others.iter().filter(|o| o.field(field) == v).count();
        match op.as_str() {
            "UNIQUE" => mine.is_some() && count_same(mine) == 0,
            "CLUSTER" | "IS" => match value {
                Some(v) => mine == Some(v),
                None => others.first().is_none_or(|o| o.field(field) == mine),
            },
            "LIKE" => mine.is_some_and(|m| full_match(value.unwrap_or(""), m)),
            "UNLIKE" => !mine.is_some_and(|m| full_match(value.unwrap_or(""), m)),
            "MAX_PER" => {
                let max: usize = value.and_then(|v| v.parse().ok()).unwrap_or(0);
                mine.is_some() && count_same(mine) < max
            }
            "GROUP_BY" => {
                if mine.is_none() {
                    return false;
                }
                // Spread evenly: place here only if no other value has fewer instances.
                let mut counts: BTreeMap<Option<&str>, usize> = BTreeMap::new();
                for o in others {
                    *counts.entry(o.field(field)).or_default() += 1;
                }
                let here = counts.get(&mine).copied().unwrap_or(0);
                let groups: usize = value.and_then(|v| v.parse().ok()).unwrap_or(0);
                let least = if counts.len() < groups || !counts.contains_key(&mine) {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                };
                here <= least
            }
            _ => false,
        }
    })
}

/// A regex that must match the whole value, as Marathon's constraints do.
fn full_match(pattern: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PortDefinition;

    fn res(cpus: f64, ports: &str) -> Resources {
        Resources {
            cpus,
            mem: 1024.0,
            disk: 1024.0,
            gpus: 0.0,
            ports: ports.parse().unwrap(),
        }
    }

    fn place(host: &str) -> Place {
        Place {
            hostname: host.into(),
            attributes: BTreeMap::from([("rack".to_string(), "r1".to_string())]),
        }
    }

    fn app_with_ports(ports: &[u32], require: bool) -> App {
        let mut a = App::with_defaults("/a".into());
        a.cpus = 0.5;
        a.mem = 64.0;
        a.require_ports = require;
        a.port_definitions = ports
            .iter()
            .map(|p| PortDefinition {
                port: *p,
                protocol: "tcp".into(),
                name: None,
                labels: BTreeMap::new(),
            })
            .collect();
        a
    }

    #[test]
    fn dynamic_ports_are_distinct_and_offered() {
        let a = app_with_ports(&[0, 0], false);
        let p = match_app(&a, &res(1.0, "[31000-31001]"), "*", &place("h"), &[]).unwrap();
        assert_eq!(p, vec![31000, 31001]);
        let err = match_app(&a, &res(1.0, "[31000-31000]"), "*", &place("h"), &[]).unwrap_err();
        assert_eq!(err, vec![Reason::InsufficientPorts]);
    }

    #[test]
    fn required_ports_must_be_offered_exactly() {
        let a = app_with_ports(&[31005, 0], true);
        let p = match_app(&a, &res(1.0, "[31000-31010]"), "*", &place("h"), &[]).unwrap();
        assert_eq!(p, vec![31005, 31000]);
        let err = match_app(&a, &res(1.0, "[31006-31010]"), "*", &place("h"), &[]).unwrap_err();
        assert_eq!(err, vec![Reason::InsufficientPorts]);
    }

    #[test]
    fn every_shortfall_is_reported() {
        let mut a = app_with_ports(&[0], false);
        a.cpus = 4.0;
        a.accepted_resource_roles = Some(vec!["slave_public".into()]);
        let err = match_app(&a, &res(1.0, "[]"), "*", &place("h"), &[]).unwrap_err();
        assert_eq!(
            err,
            vec![
                Reason::UnfulfilledRole,
                Reason::InsufficientCpus,
                Reason::InsufficientPorts
            ]
        );
    }

    #[test]
    fn constraints_follow_marathon_operators() {
        let mut a = App::with_defaults("/c".into());
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        a.constraints = vec![c(&["hostname", "UNIQUE"])];
        assert!(constraints_hold(&a, &place("h1"), &[place("h2")]));
        assert!(!constraints_hold(&a, &place("h1"), &[place("h1")]));
        a.constraints = vec![c(&["hostname", "LIKE", "h[0-9]"])];
        assert!(constraints_hold(&a, &place("h1"), &[]));
        assert!(!constraints_hold(&a, &place("h10"), &[]));
        a.constraints = vec![c(&["rack", "UNLIKE", "r1"])];
        assert!(!constraints_hold(&a, &place("h1"), &[]));
        a.constraints = vec![c(&["hostname", "MAX_PER", "2"])];
        assert!(constraints_hold(&a, &place("h1"), &[place("h1")]));
        assert!(!constraints_hold(
            &a,
            &place("h1"),
            &[place("h1"), place("h1")]
        ));
        a.constraints = vec![c(&["hostname", "GROUP_BY", "2"])];
        assert!(constraints_hold(&a, &place("h2"), &[place("h1")]));
        assert!(!constraints_hold(&a, &place("h1"), &[place("h1")]));
        a.constraints = vec![c(&["hostname", "CLUSTER", "h1"])];
        assert!(!constraints_hold(&a, &place("h2"), &[]));
    }

    #[test]
    fn the_summary_lists_every_reason() {
        let mut s = OfferStats::default();
        s.record("a1", &Err(vec![Reason::InsufficientPorts]), "t1");
        s.record("a1", &Ok(()), "t2");
        let v = s.to_json();
        assert_eq!(v["processedOffersCount"], 2);
        assert_eq!(v["unusedOffersCount"], 1);
        let ports = v["rejectSummaryLaunchAttempt"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["reason"] == "InsufficientPorts")
            .unwrap()
            .clone();
        assert_eq!(ports["declined"], 1);
    }
}
