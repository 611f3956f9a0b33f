// The dashboard: the cluster's CPU, memory and disk allocation now and over the last minute
// and hour (the history service's state-summary snapshots), tasks by state, the health of
// Marathon's services and of DC/OS' components. Every panel refreshes on its own data.

import { h, heading, update, replace, notice, badge, sparkline, mib, trim, percent, kv } from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';

const RESOURCES = [
  ['cpus', 'CPU Allocation', (n) => `${trim(n)}`, 'Shares'],
  ['mem', 'Memory Allocation', mib, ''],
  ['disk', 'Disk Allocation', mib, ''],
];

// The hour buffer changes once a minute: it is read at most this often.
const HOUR_EVERY_MS = 30000;

/** `{used, total}` of resource `key` over a state summary's agents; null for a gap (`{}`). */
function allocation(summary, key) {
  if (!summary || !Array.isArray(summary.slaves)) return null;
  let used = 0;
  let total = 0;
  for (const s of summary.slaves) {
    used += Number((s.used_resources || {})[key]) || 0;
    total += Number((s.resources || {})[key]) || 0;
  }
  return { used, total };
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
      ? h('p', { class: 'muted small' }, `History is not available: ${history.error}`)
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

/** An app's status and health as the DC/OS UI names them. */
export function appStatus(app) {
  let status = 'Running';
  if ((app.deployments || []).length) status = 'Deploying';
  else if (!app.instances) status = 'Suspended';
  else if (!app.tasksRunning) status = 'Waiting';
  let health = 'No health checks';
  if ((app.healthChecks || []).length) {
    if (app.tasksUnhealthy > 0) health = 'Unhealthy';
    else if (app.tasksHealthy > 0) health = 'Healthy';
    else health = 'Unknown';
  }
  return { status, health };
}

const HEALTH_KIND = { Healthy: 'ok', Unhealthy: 'bad', Unknown: 'warn' };

function servicesPanel(result) {
  if (result.error) {
    return panel('Services Health', notice('warn', `Marathon is not available on this cluster: ${result.error}`));
  }
  const apps = result.apps.map((a) => ({ id: a.id, ...appStatus(a) }));
  const count = (field, value) => apps.filter((a) => a[field] === value).length;
  const order = { Unhealthy: 0, Unknown: 1, Healthy: 2, 'No health checks': 3 };
  const top = apps.slice().sort((a, b) => order[a.health] - order[b.health] || a.id.localeCompare(b.id)).slice(0, 5);
  return panel('Services Health',
    kv([
      ['Healthy', h('span', { dataset: { services: 'healthy' } }, String(count('health', 'Healthy')))],
      ['Unhealthy', h('span', { dataset: { services: 'unhealthy' } }, String(count('health', 'Unhealthy')))],
      ['Running', h('span', { dataset: { services: 'running' } }, String(count('status', 'Running')))],
      ['Deploying', h('span', { dataset: { services: 'deploying' } }, String(count('status', 'Deploying')))],
      ['Waiting', h('span', { dataset: { services: 'waiting' } }, String(count('status', 'Waiting')))],
      ['Suspended', h('span', { dataset: { services: 'suspended' } }, String(count('status', 'Suspended')))],
    ]),
    top.length
      ? h('ul', { class: 'dash-list' }, top.map((a) => h('li', null,
        h('a', { href: `#/services/detail/${encodeURIComponent(a.id)}` }, a.id), ' ',
        badge(a.health === 'No health checks' ? a.status : a.health, HEALTH_KIND[a.health] || ''))))
      : h('p', { class: 'muted' }, 'No services are running.'),
    h('a', { href: '#/services' }, 'View all services'));
}

function componentsPanel(result) {
  const link = h('a', { href: '#/components' }, 'View all component health');
  if (result.error) {
    return panel('Component Health', notice('warn', `Component health is not available: ${result.error}`), link);
  }
  const unhealthy = result.units.filter((u) => u.health !== 0);
  return panel('Component Health',
    kv([
      ['Healthy', h('span', { dataset: { components: 'healthy' } }, String(result.units.length - unhealthy.length))],
      ['Unhealthy', h('span', { dataset: { components: 'unhealthy' } }, String(unhealthy.length))],
    ]),
    unhealthy.length
      ? h('ul', { class: 'dash-list' }, unhealthy.map((u) => h('li', null,
        h('a', { href: `#/components/${encodeURIComponent(u.id)}` }, u.name || u.id), ' ', badge('Unhealthy', 'bad'))))
      : h('p', { class: 'muted' }, 'All components are healthy.'),
    link);
}

/** What a settled request gave, or its error's message. */
function settled(r, shape) {
  return r.status === 'fulfilled' ? shape(r.value) : { error: r.reason?.message || String(r.reason) };
}

export function render(root) {
  const error = h('div');
  const grid = h('div', { class: 'grid dashboard' });
  replace(root, heading('Dashboard'), error, grid);
  let hour = [];
  let hourAt = 0;

  async function load() {
    const wantHour = Date.now() - hourAt > HOUR_EVERY_MS;
    const [summary, minute, hourR, apps, units] = await Promise.allSettled([
      api.get('mesos', '/master/state-summary'),
      api.get('history', '/history/minute'),
      wantHour ? api.get('history', '/history/hour') : Promise.resolve(hour),
      api.get('marathon', '/v2/apps?embed=apps.counts&embed=apps.taskStats'),
      api.get('health', '/units'),
    ]);
    if (summary.status === 'rejected') throw summary.reason;
    if (hourR.status === 'fulfilled' && Array.isArray(hourR.value)) {
      hour = hourR.value;
      if (wantHour) hourAt = Date.now();
    }
    const history = minute.status === 'fulfilled' && Array.isArray(minute.value)
      ? { minute: minute.value, hour }
      : { error: minute.reason?.message || 'no answer' };
    // The current values come from the master's own summary, fresher than the history's
    // newest snapshot (taken every 2 s), and there even when the history has none yet.
    update(grid,
      RESOURCES.map((r) => allocationPanel(r, allocation(summary.value, r[0]), history)),
      tasksPanel(summary.value),
      servicesPanel(settled(apps, (v) => ({ apps: (v && v.apps) || [] }))),
      componentsPanel(settled(units, (v) => ({ units: (v && v.units) || [] }))));
  }

  return live(load, (e) => update(error, e ? notice('bad', `The cluster's state could not be read: ${e.message}`) : null));
}
