// What the pages read out of the components' answers, in one place so every page says the
// same: a Marathon app's status, health and queue entry, Mesos agents' resource totals, and
// dcos-diagnostics' roles and health.

import { badge } from './dom.js';

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

/** dcos-diagnostics' node role as people say it. */
export function roleName(role) {
  return { master: 'master', agent: 'agent', agent_public: 'public agent' }[role] || role || 'agent';
}

/** dcos-diagnostics' health number as healthy or not: 0 is healthy; none is unknown (null). */
export function unitHealthy(health) {
  return health === undefined || health === null ? null : Number(health) === 0;
}

/**
 * `/v2/queue`'s entries by app or pod id, to look each app up once.
 */
export function queueIndex(queue) {
  const entries = (queue && Array.isArray(queue.queue)) ? queue.queue : [];
  return new Map(entries.map((q) => [(q.app || q.pod || {}).id, q]));
}


/**
 * An app's health from Marathon's counts: true, false, null (not known yet) or undefined
 * (it has no health checks).
 */
export function appHealthy(app) {
  if (!Array.isArray(app.healthChecks) || !app.healthChecks.length) return undefined;
  if (app.tasksUnhealthy > 0) return false;
  const running = app.tasksRunning || 0;
  return running > 0 && app.tasksHealthy >= running ? true : null;
}
