//! Offer matching, with no I/O: from a batch of offers and the launch queue (the apps that
//! want instances now, with how many) to one answer per offer, an ACCEPT that launches
//! tasks or a DECLINE, and the instance records of the tasks launched.

use std::collections::BTreeMap;
use std::time::Instant;

use dcos_mesos_api::api::{Filters, Id, TaskInfo};
use dcos_mesos_api::resources::Resources;
use dcos_mesos_api::scheduler::{Accept, CallBody, Decline, Offer, Operation};

use super::isolated;
use super::launch::TaskTemplate;
use crate::api::App;
use crate::offer::{self, Place, Reason};
use crate::state::{Instance, State};

/// Offers that fit nothing come back after this.
pub(crate) const DECLINE_IDLE_SECS: f64 = 5.0;
/// Offers declined while an app waits come back after this.
pub(crate) const DECLINE_WAITING_SECS: f64 = 1.0;

/// One app that wants instances launched.
pub(crate) struct Queued<'a> {
    app: &'a App,
    /// Instances still to launch.
    count: u32,
    /// Where its live instances run (agent id, hostname), for apps with constraints; kept
    /// up to date as the batch launches, so a large launch is not quadratic.
    placed: Option<Vec<(String, String)>>,
    template: TaskTemplate,
}

impl Queued<'_> {
    /// The places of the app's other instances as constraints see them: only the offer's
    /// own agent has known attributes here (hostname constraints need none).
    fn others(&self, agent_id: &str, place: &Place) -> Vec<Place> {
        let placed = self.placed.iter().flatten();
        placed
            .map(|(agent, host)| Place {
                hostname: host.clone(),
                attributes: if agent == agent_id {
                    place.attributes.clone()
                } else {
                    BTreeMap::new()
                },
            })
            .collect()
    }
}

/// The apps that want launches, in app id order.
pub(crate) struct LaunchQueue<'a> {
    apps: Vec<Queued<'a>>,
    /// Some app waits for its backoff to end: declined offers come back soon.
    waiting: bool,
}

impl<'a> LaunchQueue<'a> {
    /// What the planner wants launched now. An app whose plan panics is left out.
    pub(crate) fn of(state: &'a State, now: Instant, now_secs: f64) -> LaunchQueue<'a> {
        let mut waiting = false;
        let mut apps = Vec::new();
        for entry in state.apps.values().filter(|e| !e.deleting) {
            let app = &entry.app;
            let Some(plan) = isolated(&app.id, "plan", || state.plan(entry, now, now_secs)) else {
                continue;
            };
            waiting |= plan.waiting > 0;
            if plan.launch == 0 {
                continue;
            }
            let Some(template) = isolated(&app.id, "build task", || TaskTemplate::new(app)) else {
                continue;
            };
            let placed = (!app.constraints.is_empty()).then(|| {
                let live = state.live_instances(app, now_secs);
                live.iter()
                    .map(|i| (i.agent_id.clone(), i.host.clone()))
                    .collect()
            });
            apps.push(Queued {
                app,
                count: plan.launch,
                placed,
                template,
            });
        }
        LaunchQueue { apps, waiting }
    }

    /// Whether any app still wants a launch or waits for one.
    fn wants(&self) -> bool {
        self.waiting || self.apps.iter().any(|q| q.count > 0)
    }
}

/// How an app took one offer (recorded for `/v2/queue`'s offer statistics).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verdict {
    /// The app.
    pub app_id: String,
    /// The offer's agent.
    pub agent_id: String,
    /// It fit, or why not.
    pub result: Result<(), Vec<Reason>>,
}

/// The outcome of a batch of offers.
#[derive(Debug, Default)]
pub(crate) struct Matched {
    /// One answer per offer, in offer order: `Accept` with one LAUNCH, or `Decline`.
    pub calls: Vec<CallBody>,
    /// The instances the ACCEPTs launch (to be stored before any is sent).
    pub instances: Vec<Instance>,
    /// Every app's verdict on every offer it was matched against.
    pub verdicts: Vec<Verdict>,
}

/// Matches `offers` against `queue`, in offer order, each offer against the queued apps in
/// turn, as many instances of each as fit. The queue's counts go down by what is launched.
pub(crate) fn match_offers(offers: &[Offer], queue: &mut LaunchQueue) -> Matched {
    let mut matched = Matched::default();
    for offer in offers {
        let call = match_offer(offer, queue, &mut matched);
        matched.calls.push(call);
    }
    matched
}

/// The answer to one offer.
fn match_offer(offer: &Offer, queue: &mut LaunchQueue, matched: &mut Matched) -> CallBody {
    let mut available = match Resources::from_api(&offer.resources) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "unusable offer; declining it");
            return decline(vec![offer.id.clone()], DECLINE_IDLE_SECS);
        }
    };
    let role = offer
        .allocation_info
        .as_ref()
        .and_then(|a| a.role.as_deref())
        .unwrap_or("*");
    let place = offer::place_of(offer);
    let agent_id = offer.agent_id.value.as_str();
    let mut tasks = Vec::new();
    for queued in queue.apps.iter_mut() {
        while queued.count > 0 {
            let at = At {
                available: &mut available,
                role,
                place: &place,
                agent_id,
            };
            let Some(task) = launch_one(queued, at, matched) else {
                break;
            };
            tasks.push(task);
        }
    }
    if tasks.is_empty() {
        let refuse = if queue.wants() {
            DECLINE_WAITING_SECS
        } else {
            DECLINE_IDLE_SECS
        };
        return decline(vec![offer.id.clone()], refuse);
    }
    tracing::debug!(agent_id, tasks = tasks.len(), "launching tasks");
    CallBody::Accept(Accept {
        offer_ids: vec![offer.id.clone()],
        operations: vec![Operation::launch(tasks)],
        filters: Some(Filters {
            refuse_seconds: Some(DECLINE_WAITING_SECS),
        }),
    })
}

/// The part of an offer still free, and where it is.
struct At<'a> {
    available: &'a mut Resources,
    role: &'a str,
    place: &'a Place,
    agent_id: &'a str,
}

/// One more instance of `queued` on the offer, if it fits: its task, with its instance
/// added to `matched` and its resources taken from what is available.
fn launch_one(queued: &mut Queued, at: At, matched: &mut Matched) -> Option<TaskInfo> {
    let app = queued.app;
    let others = queued.others(at.agent_id, at.place);
    // A panicking app gets no launches from this offer.
    let result = isolated(&app.id, "match", || {
        offer::match_app(app, at.available, at.role, at.place, &others)
    })?;
    matched.verdicts.push(Verdict {
        app_id: app.id.clone(),
        agent_id: at.agent_id.to_string(),
        result: result.as_ref().map(|_| ()).map_err(Clone::clone),
    });
    let ports = result.ok()?;
    let template = &queued.template;
    let (task, instance, used) = isolated(&app.id, "build task", || {
        template.build(app, at.agent_id, &at.place.hostname, &ports)
    })?;
    *at.available = at.available.sub(&used);
    if let Some(placed) = queued.placed.as_mut() {
        placed.push((at.agent_id.to_string(), at.place.hostname.clone()));
    }
    matched.instances.push(instance);
    queued.count -= 1;
    Some(task)
}

/// A DECLINE of `offer_ids` for `refuse_seconds`.
pub(crate) fn decline(offer_ids: Vec<Id>, refuse_seconds: f64) -> CallBody {
    CallBody::Decline(Decline {
        offer_ids,
        filters: Some(Filters {
            refuse_seconds: Some(refuse_seconds),
        }),
    })
}

/// The answer when launches cannot go ahead (their instances were not stored): an ACCEPT
/// becomes a DECLINE of its offers; other answers stay.
pub(crate) fn declined(call: CallBody) -> CallBody {
    match call {
        CallBody::Accept(accept) => decline(accept.offer_ids, DECLINE_WAITING_SECS),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AppEntry;
    use dcos_mesos_api::api::{AllocationInfo, Attribute, Text};

    fn app(id: &str, instances: u32) -> App {
        let mut a = App::with_defaults(id.into());
        a.cmd = Some("sleep 1000".into());
        a.instances = instances;
        a.cpus = 0.5;
        a.mem = 64.0;
        a.disk = 0.0;
        a
    }

    fn state(apps: &[App]) -> State {
        let mut s = State::default();
        for a in apps {
            let entry = AppEntry::new(a.clone(), BTreeMap::new(), false);
            s.apps.insert(a.id.clone(), entry);
        }
        s
    }

    fn offer(id: &str, agent: &str, host: &str, cpus: f64) -> Offer {
        let resources = Resources {
            cpus,
            mem: 1024.0,
            disk: 1024.0,
            gpus: 0.0,
            ports: "[31000-31009]".parse().unwrap(),
        };
        Offer {
            id: Id::new(id),
            framework_id: Id::new("fw"),
            agent_id: Id::new(agent),
            hostname: host.into(),
            resources: resources.to_api(Some("*")),
            attributes: vec![Attribute {
                name: "rack".into(),
                kind: "TEXT".into(),
                text: Some(Text { value: "r1".into() }),
                ..Attribute::default()
            }],
            allocation_info: Some(AllocationInfo {
                role: Some("*".into()),
            }),
            ..Offer::default()
        }
    }

    fn matched(state: &State, offers: &[Offer]) -> Matched {
        let mut queue = LaunchQueue::of(state, Instant::now(), 0.0);
        match_offers(offers, &mut queue)
    }

    /// The tasks of an answer, or the refusal of a decline.
    fn launched(call: &CallBody) -> Result<&[TaskInfo], f64> {
        match call {
            CallBody::Accept(a) => match a.operations.as_slice() {
                [Operation::Launch(l)] => Ok(&l.task_infos),
                other => panic!("not one LAUNCH: {other:?}"),
            },
            CallBody::Decline(d) => Err(d.filters.as_ref().unwrap().refuse_seconds.unwrap()),
            other => panic!("not an offer answer: {other:?}"),
        }
    }

    #[test]
    fn an_offer_that_fits_launches_as_many_as_fit_with_distinct_ports() {
        let s = state(&[app("/web", 3)]);
        // 1 cpu fits two tasks of 0.5.
        let m = matched(&s, &[offer("o1", "A1", "h1", 1.0)]);
        assert_eq!(m.calls.len(), 1);
        let tasks = launched(&m.calls[0]).unwrap();
        assert_eq!(tasks.len(), 2);
        assert!(tasks.iter().all(|t| t.agent_id.value == "A1"));
        assert_eq!(m.instances.len(), 2);
        assert_ne!(m.instances[0].ports, m.instances[1].ports);
        assert_eq!(m.instances[0].task_id, tasks[0].task_id.value);
        // Two fits, then the third does not.
        let oks = m.verdicts.iter().filter(|v| v.result.is_ok()).count();
        assert_eq!((oks, m.verdicts.len()), (2, 3));
        assert_eq!(
            m.verdicts[2].result,
            Err(vec![Reason::InsufficientCpus]),
            "{:?}",
            m.verdicts
        );
    }

    #[test]
    fn the_queue_runs_across_the_batch_and_leftovers_are_declined_briefly() {
        let s = state(&[app("/a", 1), app("/b", 1)]);
        let offers = [
            offer("o1", "A1", "h1", 0.5),
            offer("o2", "A2", "h2", 0.5),
            offer("o3", "A3", "h3", 0.5),
        ];
        let m = matched(&s, &offers);
        let apps: Vec<_> = m.instances.iter().map(|i| i.app_id.as_str()).collect();
        assert_eq!(apps, ["/a", "/b"]);
        assert_eq!(launched(&m.calls[0]).unwrap()[0].name, "a");
        assert_eq!(launched(&m.calls[1]).unwrap()[0].name, "b");
        // Nothing wants more: the third offer comes back after the idle refusal.
        assert_eq!(launched(&m.calls[2]), Err(DECLINE_IDLE_SECS));
    }

    #[test]
    fn an_offer_too_small_is_declined_briefly_while_an_app_waits() {
        let s = state(&[app("/web", 1)]);
        let m = matched(&s, &[offer("o1", "A1", "h1", 0.1)]);
        assert_eq!(launched(&m.calls[0]), Err(DECLINE_WAITING_SECS));
        assert!(m.instances.is_empty());
        assert_eq!(m.verdicts[0].agent_id, "A1");
        // Nothing queued at all: the idle refusal.
        let m = matched(&state(&[app("/web", 0)]), &[offer("o1", "A1", "h1", 4.0)]);
        assert_eq!(launched(&m.calls[0]), Err(DECLINE_IDLE_SECS));
        assert!(m.verdicts.is_empty());
    }

    #[test]
    fn unique_hosts_hold_within_a_batch_and_against_running_instances() {
        let mut web = app("/web", 3);
        web.constraints = vec![vec!["hostname".into(), "UNIQUE".into()]];
        let mut s = state(&[web.clone()]);
        let (_, running, _) = super::super::launch::build_task(&web, "A0", "h0", &[31000]);
        s.instances.insert(running.task_id.clone(), running);
        let offers = [
            offer("o1", "A0", "h0", 4.0),
            offer("o2", "A1", "h1", 4.0),
            offer("o3", "A1b", "h1", 4.0),
        ];
        let m = matched(&s, &offers);
        assert_eq!(launched(&m.calls[0]), Err(DECLINE_WAITING_SECS));
        assert_eq!(launched(&m.calls[1]).unwrap().len(), 1);
        assert_eq!(launched(&m.calls[2]), Err(DECLINE_WAITING_SECS));
        assert_eq!(
            m.verdicts[0].result,
            Err(vec![Reason::UnfulfilledConstraint])
        );
    }

    #[test]
    fn roles_and_unusable_offers_are_declined() {
        let mut public = app("/public", 1);
        public.accepted_resource_roles = Some(vec!["slave_public".into()]);
        let s = state(&[public]);
        let mut reserved = offer("o2", "A1", "h1", 4.0);
        reserved.resources[0].role = Some("ops".into());
        let m = matched(&s, &[offer("o1", "A1", "h1", 4.0), reserved]);
        assert_eq!(launched(&m.calls[0]), Err(DECLINE_WAITING_SECS));
        assert_eq!(m.verdicts[0].result, Err(vec![Reason::UnfulfilledRole]));
        // An offer of resources dcos-rs never offers is declined without a match.
        assert_eq!(launched(&m.calls[1]), Err(DECLINE_IDLE_SECS));
        assert_eq!(m.verdicts.len(), 1);
    }

    #[test]
    fn an_accept_that_cannot_go_ahead_declines_its_offers() {
        let s = state(&[app("/web", 1)]);
        let m = matched(&s, &[offer("o1", "A1", "h1", 1.0)]);
        let call = declined(m.calls[0].clone());
        let CallBody::Decline(d) = &call else {
            panic!("{call:?}")
        };
        assert_eq!(d.offer_ids, vec![Id::new("o1")]);
        assert_eq!(launched(&call), Err(DECLINE_WAITING_SECS));
    }

    #[test]
    fn deleted_and_backing_off_apps_are_not_queued() {
        let mut s = state(&[app("/gone", 1), app("/slow", 1)]);
        s.apps.get_mut("/gone").unwrap().deleting = true;
        let slow = s.apps.get_mut("/slow").unwrap();
        slow.backoff.fail(&slow.app.clone(), Instant::now());
        let queue = LaunchQueue::of(&s, Instant::now(), 0.0);
        assert!(queue.apps.is_empty());
        assert!(queue.waiting);
    }
}
