// Services: Marathon's apps through Admin Router (`/service/marathon`). The list shows each
// app's status, instances and resources; the detail page shows one app's tasks, why it waits
// for resources (Marathon's launch queue), its deployments, last failure, definition and
// versions, with the actions to edit, scale, restart, suspend/resume and destroy it.

import {
  h, update, replace, mib, trim, badge, taskStateBadge, notice, kv, json, button, heading,
  crumbs, confirmDialog, promptDialog,
} from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';

const APP_EMBEDS = ['counts', 'tasks', 'deployments', 'lastTaskFailure', 'taskStats', 'readiness']
  .map((e) => `embed=apps.${e}`).join('&');

// Fields Marathon adds to an app it shows, which are not part of its definition.
const STATUS_FIELDS = ['tasks', 'deployments', 'tasksStaged', 'tasksRunning', 'tasksHealthy',
  'tasksUnhealthy', 'lastTaskFailure', 'taskStats', 'readinessCheckResults', 'version', 'versionInfo'];

/** An app id as Marathon writes it: absolute, without a trailing slash. */
export function canonicalId(id) {
  const s = String(id || '').trim().replace(/\/+$/, '');
  return s.startsWith('/') ? s : `/${s}`;
}

/** The `/v2/apps/<id>` path of an app (its segments escaped, its slashes kept). */
export function appPath(id, rest = '') {
  return `/v2/apps${canonicalId(id).split('/').map(encodeURIComponent).join('/')}${rest}`;
}

/** The hash of an app's detail page. */
export function detailHash(id) {
  return `#/services/detail/${encodeURIComponent(canonicalId(id))}`;
}

/** The app's definition as a client sends it: without what Marathon adds to show it. */
export function cleanDefinition(app) {
  const def = structuredClone(app || {});
  for (const k of STATUS_FIELDS) delete def[k];
  return def;
}

/**
 * The one app `id` with its tasks and counts, or null when there is none. Marathon's `id`
 * filter (a substring match) is used rather than `/v2/apps/<id>`, so that an unknown app is
 * an empty answer and not a failed request in the browser's console.
 */
export async function findApp(id) {
  const want = canonicalId(id);
  const answer = await api.get('marathon', `/v2/apps?id=${encodeURIComponent(want)}&${APP_EMBEDS}`);
  return (answer.apps || []).find((a) => a.id === want) || null;
}

/** What a failure of Marathon means for the page: its absence said in words. */
export function marathonError(e) {
  if ([404, 502, 503].includes(e.status)) {
    return notice('bad', `Marathon is not available on this cluster: ${e.message}`);
  }
  return notice('bad', e.message);
}

/** The queue entry of an app, if Marathon is waiting to launch some of its tasks. */
function queued(queue, id) {
  return ((queue && queue.queue) || []).find((q) => q.app && q.app.id === id) || null;
}

/** The offer reject reasons of a queue entry that declined something. */
function declinedReasons(entry) {
  const summary = (entry && entry.processedOffersSummary) || {};
  return (summary.rejectSummaryLastOffers || []).filter((r) => r.declined > 0);
}

/**
 * The status of an app as the DC/OS UI names it, with its badge kind: delayed after failures,
 * waiting for offers that fit, deploying, suspended (0 instances), unhealthy, running.
 */
export function appStatus(app, entry) {
  const deploying = (app.deployments || []).length > 0;
  if (entry) {
    if (entry.delay && entry.delay.overdue === false) return ['Delayed', 'warn'];
    const since = Date.parse(entry.since || '');
    const long = Number.isFinite(since) && Date.now() - since > 10000;
    if (declinedReasons(entry).length || long) return ['Waiting', 'warn'];
  }
  if (deploying) return ['Deploying', 'info'];
  if (app.instances === 0 && !app.tasksRunning) return ['Suspended', ''];
  if (app.tasksUnhealthy > 0) return ['Unhealthy', 'bad'];
  if (app.tasksRunning > 0) return ['Running', 'ok'];
  return entry ? ['Deploying', 'info'] : ['Stopped', ''];
}

function statusBadge(app, entry) {
  const [label, kind] = appStatus(app, entry);
  const el = badge(label, kind);
  el.dataset.status = label;
  return el;
}

/** The health of an app's tasks from Marathon's counts. */
function appHealth(app) {
  if (!(app.healthChecks || []).length) return h('span', { class: 'muted' }, 'No health checks');
  const running = app.tasksRunning || 0;
  if (app.tasksUnhealthy > 0) return [badge('Unhealthy', 'bad'), ` ${app.tasksUnhealthy} of ${running}`];
  if (running > 0 && app.tasksHealthy >= running) return badge('Healthy', 'ok');
  if (running === 0) return h('span', { class: 'muted' }, 'No tasks');
  return [badge('Unknown'), ` ${app.tasksHealthy || 0} of ${running} healthy`];
}

/** A table whose rows carry attributes (`rowProps(row)`), for the tests' and scripts' hooks. */
function rowTable(columns, rows, rowProps, empty) {
  const head = h('tr', null, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.title)));
  const body = rows.length
    ? rows.map((r) => h('tr', rowProps(r), columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(r)))))
    : h('tr', null, h('td', { class: 'empty', colspan: columns.length }, empty));
  return h('table', null, h('thead', null, head), h('tbody', null, body));
}

function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

// --- List -----------------------------------------------------------------------------------

export function renderList(root) {
  const errors = h('div');
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading services…'));
  replace(root,
    heading('Services'),
    h('div', { class: 'toolbar' },
      h('span', { class: 'grow muted', 'data-count': '' }),
      h('a', { class: 'button primary', href: '#/services/new' }, 'Run a Service')),
    errors, body);
  const count = root.querySelector('[data-count]');

  const columns = [
    { title: 'Name', cell: (a) => h('a', { href: detailHash(a.id) }, a.id) },
    { title: 'Status', cell: (a) => statusBadge(a, a.queued) },
    { title: 'Instances', num: true, cell: (a) => h('span', { 'data-instances': '' }, `${a.tasksRunning || 0}/${a.instances}`) },
    { title: 'CPUs', num: true, cell: (a) => trim(a.cpus * a.instances) },
    { title: 'Memory', num: true, cell: (a) => mib(a.mem * a.instances) },
    { title: 'Disk', num: true, cell: (a) => mib(a.disk * a.instances) },
    { title: 'Health', cell: appHealth },
  ];

  async function load() {
    const [apps, queue] = await Promise.all([
      api.get('marathon', `/v2/apps?${APP_EMBEDS.replace('embed=apps.tasks&', '')}`),
      api.get('marathon', '/v2/queue'),
    ]);
    const rows = (apps.apps || [])
      .map((a) => ({ ...a, queued: queued(queue, a.id) }))
      .sort((a, b) => a.id.localeCompare(b.id));
    update(count, rows.length === 1 ? '1 service' : `${rows.length} services`);
    update(body, rowTable(columns, rows, (a) => ({ 'data-app-id': a.id }),
      'No services are running yet. Run a Service to start one.'));
  }
  return live(load, (e) => update(errors, e ? marathonError(e) : null));
}

// --- Detail ---------------------------------------------------------------------------------

/** Why Marathon cannot launch the tasks it has queued, in words. */
const REASONS = {
  InsufficientCpus: (app) => `no agent offers ${trim(app.cpus)} CPUs`,
  InsufficientMemory: (app) => `no agent offers ${mib(app.mem)} of memory`,
  InsufficientDisk: (app) => `no agent offers ${mib(app.disk)} of disk`,
  InsufficientGpus: (app) => `no agent offers ${app.gpus || 0} GPUs`,
  InsufficientPorts: (app) => `no agent has ${(app.portDefinitions || []).length} free ports in its offer`,
  UnfulfilledRole: () => 'the offers are for roles this service does not accept',
  UnfulfilledConstraint: () => 'the agents do not meet the placement constraints',
  NoCorrespondingReservationFound: () => 'no resources are reserved for this service',
  AgentMaintenance: () => 'the agents are in maintenance',
};

function waitingPanel(app, entry) {
  const summary = entry.processedOffersSummary || {};
  const reasons = declinedReasons(entry);
  const count = entry.count || 0;
  const launches = `${count} ${count === 1 ? 'instance' : 'instances'}`;
  const delayed = entry.delay && entry.delay.overdue === false;
  return h('section', { class: ['notice', 'warn'], 'data-waiting': '' },
    h('h2', null, delayed ? 'Launch delayed' : 'Waiting for resources'),
    h('p', null, `Marathon has been trying to launch ${launches} since ${when(entry.since)}`,
      summary.processedOffersCount ? `, and has looked at ${summary.processedOffersCount} offers from agents.` : '.'),
    reasons.length
      ? [h('p', null, 'The last offers did not fit for these reasons:'),
        h('ul', null, reasons.map((r) => h('li', null,
          `${r.reason}: ${r.declined} of ${r.processed} offers declined`,
          REASONS[r.reason] ? ` (${REASONS[r.reason](app)})` : '')))]
      : h('p', null, summary.processedOffersCount
        ? 'No offer has been declined for lack of resources yet.'
        : 'No offer from an agent has arrived since then.'),
    h('p', null, delayed
      ? `After failed tasks Marathon waits before launching again: the next launch is in ${entry.delay.timeLeftSeconds} s (backoff ${app.backoffSeconds} s × ${app.backoffFactor} per failure, at most ${app.maxLaunchDelaySeconds} s).`
      : 'There is no launch delay: Marathon launches as soon as an offer fits.'));
}

/** A task's health from its health check results. */
function taskHealth(app, task) {
  if (!(app.healthChecks || []).length) return h('span', { class: 'muted' }, 'No health checks');
  const results = task.healthCheckResults || [];
  if (!results.length) return badge('Unknown');
  return results.every((r) => r.alive)
    ? badge('Healthy', 'ok')
    : badge('Unhealthy', 'bad');
}

function endpoints(task) {
  const ports = task.ports || [];
  if (!ports.length) return h('span', { class: 'muted' }, 'None');
  const links = ports.map((p) => h('a', { href: `http://${task.host}:${p}/`, 'data-endpoint': '', target: '_blank', rel: 'noopener' }, `${task.host}:${p}`));
  return links.flatMap((a, i) => (i ? [h('br'), a] : [a]));
}

function tasksTable(app) {
  const tasks = [...(app.tasks || [])].sort((a, b) => String(a.stagedAt).localeCompare(String(b.stagedAt)));
  return rowTable([
    { title: 'Task', cell: (t) => h('a', { href: `#/tasks/${encodeURIComponent(t.id)}`, class: 'mono' }, t.id) },
    { title: 'State', cell: (t) => h('span', { 'data-task-state': '' }, taskStateBadge(t.state)) },
    { title: 'Host', cell: (t) => t.host },
    { title: 'Endpoints', cell: endpoints },
    { title: 'Health', cell: (t) => taskHealth(app, t) },
    { title: 'Started', cell: (t) => when(t.startedAt || t.stagedAt) },
    { title: 'Version', cell: (t) => h('span', { class: 'small' }, when(t.version)) },
  ], tasks, (t) => ({ 'data-task-id': t.id }), app.instances ? 'No tasks are running yet.' : 'The service is suspended: it has no tasks.');
}

function summaryPanel(app, entry) {
  const image = app.container && app.container.docker && app.container.docker.image;
  const each = (v, f) => (app.instances > 1 ? `${f(v)} each, ${f(v * app.instances)} in all` : f(v));
  return h('section', { class: 'panel', 'data-summary': '' }, kv([
    ['Status', statusBadge(app, entry)],
    ['Instances', `${app.tasksRunning || 0} running of ${app.instances}`
      + (app.tasksStaged ? `, ${app.tasksStaged} staging` : '')
      + ((app.healthChecks || []).length ? `, ${app.tasksHealthy || 0} healthy, ${app.tasksUnhealthy || 0} unhealthy` : '')],
    ['CPUs', each(app.cpus, trim)],
    ['Memory', each(app.mem, mib)],
    ['Disk', each(app.disk, mib)],
    app.gpus ? ['GPUs', String(app.gpus)] : null,
    image ? ['Container image', h('span', { class: 'mono' }, image)] : null,
    app.cmd ? ['Command', h('span', { class: 'mono' }, app.cmd)] : null,
    app.args ? ['Arguments', h('span', { class: 'mono' }, app.args.join(' '))] : null,
    ['Service ports', (app.portDefinitions || []).map((p) => p.port).join(', ') || 'None'],
    ['Health checks', (app.healthChecks || []).map((c) => `${c.protocol}${c.path ? ` ${c.path}` : ''}`).join(', ') || 'None'],
    ['Version', when(app.version)],
  ]));
}

function deploymentsPanel(deployments) {
  if (!deployments.length) return h('p', { class: 'muted' }, 'No deployment in progress.');
  return rowTable([
    { title: 'Deployment', cell: (d) => h('span', { class: 'mono small' }, d.id) },
    { title: 'Actions', cell: (d) => (d.currentActions || []).map((a) => `${a.action} ${a.app || a.pod || ''}`).join(', ') },
    { title: 'Step', cell: (d) => `${d.currentStep} of ${d.totalSteps}` },
    { title: 'Started', cell: (d) => when(d.version) },
  ], deployments, (d) => ({ 'data-deployment-id': d.id }), '');
}

function failurePanel(failure) {
  if (!failure) return h('p', { class: 'muted' }, 'No task of this service has failed.');
  return h('div', { class: 'panel', 'data-last-failure': '' }, kv([
    ['Task', h('a', { href: `#/tasks/${encodeURIComponent(failure.taskId)}`, class: 'mono' }, failure.taskId)],
    ['State', taskStateBadge(failure.state)],
    ['Message', failure.message || ''],
    ['Host', failure.host || ''],
    ['When', when(failure.timestamp)],
    ['Version', when(failure.version)],
  ]));
}

function notFound(root, id) {
  replace(root,
    crumbs(['Services', '#/services'], id),
    heading(id),
    notice('bad', `There is no service ${id}: it may have been destroyed, or the address is wrong.`),
    h('p', null, h('a', { href: '#/services' }, 'Back to Services')));
}

export function renderDetail(root, params) {
  const id = canonicalId(params[0]);
  const state = { app: null, entry: null, versions: [], versionsOf: null, found: null };
  const status = h('span');
  const errors = h('div');
  const message = h('div', { 'aria-live': 'polite' });
  const toolbar = h('div', { class: 'toolbar' });
  const parts = {
    summary: h('div', null, h('p', { class: 'muted' }, 'Loading…')),
    waiting: h('div'), tasks: h('div'), deployments: h('div'), failure: h('div'),
    config: h('div'), versions: h('div'),
  };
  const versionView = h('div', { 'aria-live': 'polite' });
  const page = [
    crumbs(['Services', '#/services'], id), heading(id, status), toolbar, message, errors,
    parts.summary, parts.waiting,
    h('h2', null, 'Tasks'), parts.tasks,
    h('h2', null, 'Deployments'), parts.deployments,
    h('h2', null, 'Last task failure'), parts.failure,
    h('h2', null, 'Configuration'), parts.config,
    h('h2', null, 'Versions'), parts.versions, versionView,
  ];
  replace(root, page);

  /** Runs an action, showing what it did or why it failed; a deployment lock offers force. */
  async function act(label, fn, force = false) {
    update(message, notice('info', `${label}…`));
    try {
      await fn(force);
      update(message, notice('ok', `${label}: done. Marathon is deploying the change.`));
    } catch (e) {
      const again = e.status === 409 && !force
        ? [' ', button('Force it', () => act(label, fn, true), 'danger')]
        : null;
      update(message, notice('bad', `${label} failed: ${e.message}`, again));
    }
  }
  const put = (body) => (force) => api.send('marathon', appPath(id, force ? '?force=true' : ''), body, 'PUT');

  async function scale(current) {
    const value = await promptDialog('Scale service', 'Instances', current, 'number');
    if (value === null) return;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) {
      update(message, notice('bad', `"${value}" is not a number of instances (a whole number, 0 or more).`));
      return;
    }
    await act(`Scaling ${id} to ${n}`, put({ instances: n }));
  }

  /** The instances before the app was suspended: from its newest versions with some. */
  async function previousCount() {
    for (const v of state.versions.slice(0, 10)) {
      try {
        const def = await api.get('marathon', appPath(id, `/versions/${encodeURIComponent(v)}`));
        if (def.instances > 0) return def.instances;
      } catch (_) {
        break; // The dialog still asks; 1 is a fair guess.
      }
    }
    return 1;
  }

  async function suspend() {
    const ok = await confirmDialog('Suspend service', `Suspend ${id}? All its tasks are stopped; resume scales it back.`, 'Suspend');
    if (ok) await act(`Suspending ${id}`, put({ instances: 0 }));
  }

  async function restart() {
    const ok = await confirmDialog('Restart service', `Restart every task of ${id}? New tasks replace the running ones.`, 'Restart', 'primary');
    if (ok) await act(`Restarting ${id}`, (force) => api.send('marathon', appPath(id, `/restart${force ? '?force=true' : ''}`), {}, 'POST'));
  }

  async function destroy() {
    const ok = await confirmDialog('Destroy service', `Destroy ${id}? Its tasks are killed and its definition is deleted. This cannot be undone.`, 'Destroy');
    if (!ok) return;
    update(message, notice('info', `Destroying ${id}…`));
    try {
      await api.send('marathon', appPath(id), undefined, 'DELETE');
      window.location.hash = '#/services';
    } catch (e) {
      update(message, notice('bad', `Destroying ${id} failed: ${e.message}`));
    }
  }

  async function showVersion(v) {
    replace(versionView, h('p', { class: 'muted' }, `Loading version ${v}…`));
    try {
      const def = await api.get('marathon', appPath(id, `/versions/${encodeURIComponent(v)}`));
      replace(versionView, h('section', { class: 'panel', 'data-version': v },
        h('h3', null, `Version ${when(v)}`, v === (state.app && state.app.version) ? ' (current)' : ''),
        json(def)));
    } catch (e) {
      replace(versionView, notice('bad', `Version ${v} could not be read: ${e.message}`));
    }
  }

  function actions(app) {
    const suspended = app.instances === 0;
    return [
      button('Edit', () => { window.location.hash = `#/services/edit/${encodeURIComponent(id)}`; }),
      button('Scale', () => scale(state.app.instances)),
      button('Restart', restart),
      suspended
        ? button('Resume', async () => scale(await previousCount()), 'primary')
        : button('Suspend', suspend),
      button('Destroy', destroy, 'danger'),
    ];
  }

  function versionsList(app) {
    if (!state.versions.length) return h('p', { class: 'muted' }, 'No versions.');
    return h('ul', { class: 'versions' }, state.versions.map((v) => h('li', null,
      button(when(v), () => showVersion(v), 'linkish', { 'data-version': v, 'aria-label': `Show version ${v}` }),
      v === app.version ? ' (current)' : '')));
  }

  async function load() {
    const [app, queue, deployments] = await Promise.all([
      findApp(id), api.get('marathon', '/v2/queue'), api.get('marathon', '/v2/deployments'),
    ]);
    if (!app) {
      if (state.found !== false) notFound(root, id);
      state.found = false;
      return;
    }
    if (state.found === false) replace(root, page); // The app is back (made again).
    state.found = true;
    if (state.versionsOf !== app.version) {
      const answer = await api.get('marathon', appPath(id, '/versions'));
      state.versions = answer.versions || [];
      state.versionsOf = app.version;
    }
    const entry = queued(queue, id);
    state.app = app;
    state.entry = entry;
    const mine = (deployments || []).filter((d) => (d.affectedApps || []).includes(id));
    update(status, statusBadge(app, entry));
    update(toolbar, actions(app));
    update(parts.summary, summaryPanel(app, entry));
    update(parts.waiting, entry ? waitingPanel(app, entry) : null);
    update(parts.tasks, tasksTable(app));
    update(parts.deployments, deploymentsPanel(mine));
    update(parts.failure, failurePanel(app.lastTaskFailure));
    update(parts.config, json(cleanDefinition(app)));
    update(parts.versions, versionsList(app));
  }

  return live(load, (e) => update(errors, e ? marathonError(e) : null));
}
