// What the pages read out of the components' answers, in one place so every page says the
// same: a Marathon app's status and queue entry, and Mesos agents' resource totals.

import { badge } from './dom.js';

/** The `/v2/queue` entry of an app or pod, if Marathon is waiting to launch some of its tasks. */
export function queueEntry(queue, id) {
  return ((queue && queue.queue) || []).find((q) => (q.app || q.pod || {}).id === id) || null;
}

/** The offer reject reasons of a queue entry that declined something. */
export function declinedReasons(entry) {
  const summary = (entry && entry.processedOffersSummary) || {};
  return (summary.rejectSummaryLastOffers || []).filter((r) => r.declined > 0);
}

/**
 * An app's status as the DC/OS UI names it, with its badge kind: delayed after failures,
 * waiting for offers that fit (declined, or queued over 10 s), deploying, suspended
 * (0 instances), unhealthy, running, stopped. `entry` is its queue entry, if any.
 */
export function appStatus(app, entry = null) {
  if (entry) {
    if (entry.delay && entry.delay.overdue === false) return { label: 'Delayed', kind: 'warn' };
    const since = Date.parse(entry.since || '');
    const long = Number.isFinite(since) && Date.now() - since > 10000;
    if (declinedReasons(entry).length || long) return { label: 'Waiting', kind: 'warn' };
  }
  if ((app.deployments || []).length > 0) return { label: 'Deploying', kind: 'info' };
  if (app.instances === 0 && !app.tasksRunning) return { label: 'Suspended', kind: '' };
  if (app.tasksUnhealthy > 0) return { label: 'Unhealthy', kind: 'bad' };
  if (app.tasksRunning > 0) return { label: 'Running', kind: 'ok' };
  return entry ? { label: 'Deploying', kind: 'info' } : { label: 'Stopped', kind: '' };
}

/** The badge of `appStatus` (`data-status` holds its word). */
export function appStatusBadge(app, entry = null) {
  const { label, kind } = appStatus(app, entry);
  const el = badge(label, kind);
  el.dataset.status = label;
  return el;
}

/** The used and total cpus, mem, disk and gpus of Mesos agents (state or state-summary). */
export function agentTotals(agents) {
  const used = { cpus: 0, mem: 0, disk: 0, gpus: 0 };
  const total = { cpus: 0, mem: 0, disk: 0, gpus: 0 };
  for (const a of agents || []) {
    for (const k of Object.keys(used)) {
      used[k] += Number((a.used_resources || {})[k]) || 0;
      total[k] += Number((a.resources || {})[k]) || 0;
    }
  }
  return { used, total };
}
