// The dashboard: the cluster's CPU, memory and disk allocation now and over the last minute
// and hour (the history service's state-summary snapshots), tasks by state, the health of
// Marathon's services (their status with the launch queue's Waiting/Delayed) and of DC/OS'
// components. A component that does not answer leaves its panel saying so; the rest show.

import {
  h, heading, replace, badge, sparkline, mib, trim, percent, kv, linkTo, failureNotice, healthBadge,
} from '../dom.js';
import * as api from '../api.js';
import { liveSection } from '../poll.js';
import { appStatus, agentTotals, appHealthy, queueIndex } from '../model.js';

const RESOURCES = [
  ['cpus', 'CPU Allocation', (n) => `${trim(n)}`, 'CPUs'],
  ['mem', 'Memory Allocation', mib, ''],
  ['disk', 'Disk Allocation', mib, ''],
];

// The hour buffer changes once a minute: it is read at most this often.
const HOUR_EVERY_MS = 30000;

/** `{used, total}` of resource `key` over a state summary's agents; null for a gap (`{}`). */
function allocation(summary, key) {
  if (!summary || !Array.isArray(summary.slaves)) return null;
  const { used, total } = agentTotals(summary.slaves);
  return { used: used[key], total: total[key] };
}

function series(snapshots, key) {
  return (snapshots || []).map((s) => {
    const a = allocation(s, key);
    return a ? percent(a.used, a.total) : 0;
  });
}

function panel(title, ...content) {
  return h('section', { class: 'panel' }, h('h2', null, title), content);
}

function chart(title, values, label, from) {
  const said = values.length ? `${title}, ${label.toLowerCase()}: from ${values[0]}% to ${values[values.length - 1]}%` : '';
  return h('div', { class: 'dash-chart' },
    h('h3', null, label),
    values.length
      ? [sparkline(values, 100, said), h('div', { class: 'legend' }, h('span', null, from), h('span', null, 'now'))]
      : h('p', { class: 'muted small' }, 'No history yet.'));
}

function allocationPanel([key, title, fmt, unit], current, history) {
  const a = current || { used: 0, total: 0 };
  return panel(title,
    h('div', { class: 'stat' }, `${percent(a.used, a.total)}%`),
    h('p', { class: 'muted' }, `${fmt(a.used)} of ${fmt(a.total)}${unit ? ` ${unit}` : ''} allocated`),
    history.error
      ? h('p', { class: 'muted small' }, history.error)
      : [chart(title, series(history.minute, key), 'Last minute', '60 s ago'), chart(title, series(history.hour, key), 'Last hour', '60 min ago')]);
}

const STATES = ['RUNNING', 'STAGING', 'STARTING', 'KILLING', 'FINISHED', 'FAILED', 'KILLED', 'LOST', 'ERROR', 'UNREACHABLE'];

function tasksPanel(summary) {
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const f of summary.frameworks || []) {
    for (const s of STATES) counts[s] += Number(f[`TASK_${s}`]) || 0;
  }
  const shown = STATES.filter((s) => counts[s] > 0 || s === 'RUNNING' || s === 'STAGING');
  const label = (s) => s.charAt(0) + s.slice(1).toLowerCase();
  return panel('Tasks',
    h('div', { class: 'stat' }, String(counts.RUNNING)),
    h('p', { class: 'muted' }, 'running'),
    kv(shown.map((s) => [label(s), h('span', { dataset: { taskState: s } }, String(counts[s]))])));
}

// The statuses (model.appStatus) the panel counts.
const STATUS_COUNTS = ['Running', 'Deploying', 'Waiting', 'Delayed', 'Suspended'];

function servicesPanel(result) {
  if (result.error) return panel('Services Health', failureNotice(result.error, 'Marathon'));
  const queued = queueIndex(result.queue);
  const apps = result.apps.map((a) => ({
    id: a.id, healthy: appHealthy(a), status: appStatus(a, queued.get(a.id) || null),
  }));
  const count = (test) => String(apps.filter(test).length);
  // Unhealthy first, then unknown, healthy, and those without health checks.
  const order = { false: 0, null: 1, true: 2, undefined: 3 };
  const top = apps.slice().sort((a, b) => order[a.healthy] - order[b.healthy] || a.id.localeCompare(b.id)).slice(0, 5);
  return panel('Services Health',
    kv([
      ['Healthy', h('span', { dataset: { services: 'healthy' } }, count((a) => a.healthy === true))],
      ['Unhealthy', h('span', { dataset: { services: 'unhealthy' } }, count((a) => a.healthy === false))],
      ...STATUS_COUNTS.map((s) => [s, h('span', { dataset: { services: s.toLowerCase() } }, count((a) => a.status.label === s))]),
    ]),
    top.length
      ? h('ul', { class: 'dash-list' }, top.map((a) => h('li', null,
        linkTo('services/detail', a.id), ' ',
        a.healthy === undefined ? badge(a.status.label, a.status.kind) : healthBadge(a.healthy))))
      : h('p', { class: 'muted' }, 'No services are running.'),
    h('a', { href: '#/services' }, 'View all services'));
}

function componentsPanel(result) {
  const link = h('a', { href: '#/components' }, 'View all component health');
  if (result.error) return panel('Component Health', failureNotice(result.error, 'Component health'), link);
  const unhealthy = result.units.filter((u) => u.health !== 0);
  return panel('Component Health',
    kv([
      ['Healthy', h('span', { dataset: { components: 'healthy' } }, String(result.units.length - unhealthy.length))],
      ['Unhealthy', h('span', { dataset: { components: 'unhealthy' } }, String(unhealthy.length))],
    ]),
    unhealthy.length
      ? h('ul', { class: 'dash-list' }, unhealthy.map((u) => h('li', null,
        linkTo('components', u.id, u.name || u.id), ' ', healthBadge(false))))
      : h('p', { class: 'muted' }, 'All components are healthy.'),
    link);
}

/** What a settled request gave, or `{error}`. */
function settled(r, shape) {
  return r.status === 'fulfilled' ? shape(r.value) : { error: r.reason };
}

/** The history's minute and hour buffers, or why there are none (in words). */
function historyOf(minute, hour) {
  if (minute.status === 'fulfilled' && Array.isArray(minute.value)) return { minute: minute.value, hour };
  const e = minute.reason;
  return {
    error: e && e.unavailable
      ? `The history service is not available on this cluster: ${e.message}`
      : `History is not available: ${e ? e.message : 'no answer'}`,
  };
}

export function render(root) {
  const body = h('div');
  replace(root, heading('Dashboard'), body);
  let hour = [];
  let hourAt = 0;

  async function load() {
    const wantHour = Date.now() - hourAt > HOUR_EVERY_MS;
    const [summary, minute, hourR, apps, queue, units] = await Promise.allSettled([
      api.get('mesos', '/master/state-summary'),
      api.get('history', '/history/minute'),
      wantHour ? api.get('history', '/history/hour') : Promise.resolve(hour),
      api.get('marathon', '/v2/apps?embed=apps.counts&embed=apps.deployments'),
      api.get('marathon', '/v2/queue'),
      api.get('health', '/units'),
    ]);
    if (summary.status === 'rejected') throw summary.reason;
    if (hourR.status === 'fulfilled' && Array.isArray(hourR.value)) {
      hour = hourR.value;
      if (wantHour) hourAt = Date.now();
    }
    const history = historyOf(minute, hour);
    // Without the queue the services still show, only not why they wait.
    const services = settled(apps, (v) => ({
      apps: (v && v.apps) || [], queue: queue.status === 'fulfilled' ? queue.value : null,
    }));
    // The current values come from the master's own summary, fresher than the history's
    // newest snapshot (taken every 2 s), and there even when the history has none yet.
    return h('div', { class: 'grid dashboard' },
      RESOURCES.map((r) => allocationPanel(r, allocation(summary.value, r[0]), history)),
      tasksPanel(summary.value),
      servicesPanel(services),
      componentsPanel(settled(units, (v) => ({ units: (v && v.units) || [] }))));
  }

  return liveSection(body, load, 'Mesos');
}
