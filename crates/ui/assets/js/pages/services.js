// Services: Marathon's apps through Admin Router (`/service/marathon`). The list shows each
// app's status, instances and resources; the detail page shows one app's tasks, why it waits
// for resources (Marathon's launch queue), its deployments, last failure, definition and
// versions, with the actions to edit, scale, restart, suspend/resume and destroy it.

import {
  h, update, replace, mib, trim, taskStateBadge, notice, kv, json, button, heading,
  crumbs, confirmDialog, promptDialog, table, when, hashTo, linkTo, failureNotice,
  notFoundNotice, healthBadge, busy,
} from '../dom.js';
import * as api from '../api.js';
import { live, liveSection } from '../poll.js';
import { appStatusBadge, declinedReasons, appHealthy, queueIndex } from '../model.js';

const embeds = (...names) => names.map((e) => `embed=apps.${e}`).join('&');
// What each page reads: counts and deployments (status) for the list; tasks and the last
// failure as well for one app's page.
const LIST_EMBEDS = embeds('counts', 'deployments');
const DETAIL_EMBEDS = embeds('counts', 'deployments', 'tasks', 'lastTaskFailure');

// Fields Marathon adds to an app it shows, which are not part of its definition.
const STATUS_FIELDS = ['tasks', 'deployments', 'tasksStaged', 'tasksRunning', 'tasksHealthy',
  'tasksUnhealthy', 'lastTaskFailure', 'taskStats', 'readinessCheckResults', 'version', 'versionInfo'];

/** An app id as Marathon writes it: absolute, without a trailing slash. */
export function canonicalId(id) {
  const s = String(id || '').trim().replace(/\/+$/, '');
  return s.startsWith('/') ? s : `/${s}`;
}

/** The app's definition as a client sends it: without what Marathon adds to show it. */
export function cleanDefinition(app) {
  const def = structuredClone(app || {});
  for (const k of STATUS_FIELDS) delete def[k];
  return def;
}

/**
 * The one app `id` (with `embed`'s parts), or null when there is none. Marathon's `id`
 * filter (a substring match) is used rather than `/v2/apps/<id>`, so that an unknown app is
 * an empty answer and not a failed request in the browser's console.
 */
export async function findApp(id, embed = DETAIL_EMBEDS) {
  const want = canonicalId(id);
  const answer = await api.get('marathon', `/v2/apps?id=${encodeURIComponent(want)}${embed ? `&${embed}` : ''}`);
  return (answer.apps || []).find((a) => a.id === want) || null;
}

/** The health column of the list: a badge and how many tasks it is about. */
function healthCell(app) {
  const healthy = appHealthy(app);
  if (healthy === undefined) return h('span', { class: 'muted' }, 'No health checks');
  const running = app.tasksRunning || 0;
  if (!running) return h('span', { class: 'muted' }, 'No tasks');
  if (healthy === false) return [healthBadge(false), ` ${app.tasksUnhealthy} of ${running}`];
  if (healthy === null) return [healthBadge(null), ` ${app.tasksHealthy || 0} of ${running} healthy`];
  return healthBadge(true);
}

/** The page of an app that does not exist. */
export function notFoundPage(root, id, title = id) {
  replace(root, crumbs(['Services', '#/services'], id), heading(title),
    notFoundNotice(`There is no service ${id}.`, 'Back to Services', '#/services'));
}

// --- List -----------------------------------------------------------------------------------

const LIST_COLUMNS = [
  { title: 'Name', cell: (a) => linkTo('services/detail', a.id) },
  { title: 'Status', cell: (a) => appStatusBadge(a, a.queued) },
  { title: 'Instances', num: true, cell: (a) => h('span', { 'data-instances': '' }, `${a.tasksRunning || 0}/${a.instances}`) },
  { title: 'CPUs', num: true, cell: (a) => trim(a.cpus * a.instances) },
  { title: 'Memory', num: true, cell: (a) => mib(a.mem * a.instances) },
  { title: 'Disk', num: true, cell: (a) => mib(a.disk * a.instances) },
  { title: 'Health', cell: healthCell },
];

export function renderList(root) {
  const count = h('span', { class: 'grow muted', 'data-count': '' });
  const body = h('div');
  replace(root,
    heading('Services'),
    h('div', { class: 'toolbar' }, count, h('a', { class: 'button primary', href: '#/services/new' }, 'Run a Service')),
    body);

  return liveSection(body, async () => {
    const [apps, queue] = await Promise.all([
      api.get('marathon', `/v2/apps?${LIST_EMBEDS}`),
      api.get('marathon', '/v2/queue'),
    ]);
    const queued = queueIndex(queue);
    const rows = (apps.apps || [])
      .map((a) => ({ ...a, queued: queued.get(a.id) || null }))
      .sort((a, b) => a.id.localeCompare(b.id));
    update(count, rows.length === 1 ? '1 service' : `${rows.length} services`);
    return table(LIST_COLUMNS, rows, 'No services are running yet. Run a Service to start one.',
      {}, (a) => ({ 'data-app-id': a.id }));
  }, 'Marathon');
}

// --- Detail: panels -------------------------------------------------------------------------

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
  if (!Array.isArray(app.healthChecks) || !app.healthChecks.length) return h('span', { class: 'muted' }, 'No health checks');
  const results = task.healthCheckResults || [];
  return healthBadge(results.length ? results.every((r) => r.alive) : null);
}

function endpoints(task) {
  const ports = task.ports || [];
  if (!ports.length) return '—';
  const links = ports.map((p) => h('a', { href: `http://${task.host}:${p}/`, 'data-endpoint': '', target: '_blank', rel: 'noopener' }, `${task.host}:${p}`));
  return links.flatMap((a, i) => (i ? [h('br'), a] : [a]));
}

function tasksTable(app) {
  const tasks = [...(app.tasks || [])].sort((a, b) => String(a.stagedAt).localeCompare(String(b.stagedAt)));
  return table([
    { title: 'Task', cell: (t) => linkTo('tasks', t.id, t.id, { class: 'mono' }) },
    { title: 'State', cell: (t) => h('span', { 'data-task-state': '' }, taskStateBadge(t.state)) },
    { title: 'Host', cell: (t) => t.host || '—' },
    { title: 'Endpoints', cell: endpoints },
    { title: 'Health', cell: (t) => taskHealth(app, t) },
    { title: 'Started', cell: (t) => when(t.startedAt || t.stagedAt) },
    { title: 'Version', cell: (t) => h('span', { class: 'small' }, when(t.version)) },
  ], tasks, app.instances ? 'No tasks are running yet.' : 'The service is suspended: it has no tasks.',
  {}, (t) => ({ 'data-task-id': t.id }));
}

function summaryPanel(app, entry) {
  const image = app.container && app.container.docker && app.container.docker.image;
  const checks = Array.isArray(app.healthChecks) ? app.healthChecks : [];
  const each = (v, f) => (app.instances > 1 ? `${f(v)} each, ${f(v * app.instances)} in all` : f(v));
  return h('section', { class: 'panel', 'data-summary': '' }, kv([
    ['Status', appStatusBadge(app, entry)],
    ['Instances', `${app.tasksRunning || 0}/${app.instances} running`
      + (app.tasksStaged ? `, ${app.tasksStaged} staging` : '')
      + (checks.length ? `, ${app.tasksHealthy || 0} healthy, ${app.tasksUnhealthy || 0} unhealthy` : '')],
    ['CPUs', each(app.cpus, trim)],
    ['Memory', each(app.mem, mib)],
    ['Disk', each(app.disk, mib)],
    app.gpus ? ['GPUs', String(app.gpus)] : null,
    image ? ['Container image', h('span', { class: 'mono' }, image)] : null,
    app.cmd ? ['Command', h('span', { class: 'mono' }, app.cmd)] : null,
    app.args ? ['Arguments', h('span', { class: 'mono' }, app.args.join(' '))] : null,
    ['Service ports', (app.portDefinitions || []).map((p) => p.port).join(', ') || '—'],
    ['Health checks', checks.map((c) => `${c.protocol}${c.path ? ` ${c.path}` : ''}`).join(', ') || '—'],
    ['Version', when(app.version)],
  ]));
}

function deploymentsPanel(deployments) {
  if (!deployments.length) return h('p', { class: 'muted' }, 'No deployment in progress.');
  return table([
    { title: 'Deployment', cell: (d) => h('span', { class: 'mono small' }, d.id) },
    { title: 'Actions', cell: (d) => (d.currentActions || []).map((a) => `${a.action} ${a.app || a.pod || ''}`).join(', ') },
    { title: 'Step', cell: (d) => `${d.currentStep} of ${d.totalSteps}` },
    { title: 'Started', cell: (d) => when(d.version) },
  ], deployments, '', {}, (d) => ({ 'data-deployment-id': d.id }));
}

function failurePanel(failure) {
  if (!failure) return h('p', { class: 'muted' }, 'No task of this service has failed.');
  return h('div', { class: 'panel', 'data-last-failure': '' }, kv([
    ['Task', linkTo('tasks', failure.taskId, failure.taskId, { class: 'mono' })],
    ['State', taskStateBadge(failure.state)],
    ['Message', failure.message || '—'],
    ['Host', failure.host || '—'],
    ['When', when(failure.timestamp)],
    ['Version', when(failure.version)],
  ]));
}

// --- Detail: actions and versions -----------------------------------------------------------

/**
 * The toolbar of an app's page: built once (a redraw must not re-enable a busy button or
 * take the focus), with `sync(app)` showing Suspend or Resume. Each action says in
 * `message` what it did or why it failed; a deployment in the way (409) offers to force it.
 */
function serviceActions(id, message, page) {
  const appUrl = (rest = '') => `/v2/apps/${api.appPath(id)}${rest}`;

  async function act(label, fn, force = false) {
    update(message, notice('info', `${label}…`));
    try {
      await fn(force);
      update(message, notice('ok', `${label}: done. Marathon is deploying the change.`));
      page.refresh();
    } catch (e) {
      const again = e.status === 409 && !force
        ? [' ', button('Force it', (ev) => busy(ev.currentTarget, () => act(label, fn, true)), 'danger')]
        : null;
      update(message, notice('bad', `${label} failed: ${e.message}`, again));
    }
  }
  const put = (body) => (force) => api.send('marathon', appUrl(force ? '?force=true' : ''), body, 'PUT');

  async function scale(current) {
    const value = await promptDialog('Scale service', 'Instances', current, 'number');
    if (value === null) return;
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < 0) {
      update(message, notice('bad', `"${value}" is not a number of instances (a whole number, 0 or more).`));
      return;
    }
    await act(`Scaling ${id} to ${n}`, put({ instances: n }));
  }

  /** The instances before the app was suspended: from its newest versions with some. */
  async function previousCount() {
    for (const v of page.versions().slice(0, 10)) {
      try {
        const def = await api.get('marathon', appUrl(`/versions/${api.segment(v)}`));
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
    if (ok) await act(`Restarting ${id}`, (force) => api.send('marathon', appUrl(`/restart${force ? '?force=true' : ''}`), {}, 'POST'));
  }

  async function destroy() {
    const ok = await confirmDialog('Destroy service', `Destroy ${id}? Its tasks are killed and its definition is deleted. This cannot be undone.`, 'Destroy');
    if (!ok) return;
    update(message, notice('info', `Destroying ${id}…`));
    try {
      await api.send('marathon', appUrl(), undefined, 'DELETE');
      if (!page.disposed()) window.location.hash = '#/services';
    } catch (e) {
      update(message, notice('bad', `Destroying ${id} failed: ${e.message}`));
    }
  }

  // Each button is busy while its dialog is open and its request runs.
  const action = (label, fn, kind) => button(label, (e) => busy(e.currentTarget, fn)
    .catch((err) => update(message, notice('bad', `${label} failed: ${err.message}`))), kind);
  const suspendButton = action('Suspend', suspend);
  const resumeButton = action('Resume', async () => scale(await previousCount()), 'primary');
  // Suspend or Resume: whichever fits, swapped only when that changes.
  const toggle = h('span', { class: 'toggle' });
  const el = h('div', { class: 'toolbar' },
    button('Edit', () => { window.location.hash = hashTo('services/edit', id); }),
    action('Scale', () => scale(page.app().instances)),
    action('Restart', restart),
    toggle,
    action('Destroy', destroy, 'danger'));
  return {
    el,
    sync(app) {
      const want = app.instances === 0 ? resumeButton : suspendButton;
      if (toggle.firstChild !== want) toggle.replaceChildren(want);
    },
  };
}

/**
 * The app's versions, each a button showing that version's definition below the list.
 * `sync(app)` reads the list again when the app's version changed.
 */
function versionsSection(id) {
  let versions = [];
  let versionsOf = null;
  let current = null;
  const list = h('div');
  const view = h('div', { 'aria-live': 'polite' });

  async function show(v) {
    replace(view, h('p', { class: 'muted' }, `Loading version ${v}…`));
    try {
      const def = await api.get('marathon', `/v2/apps/${api.appPath(id)}/versions/${api.segment(v)}`);
      replace(view, h('section', { class: 'panel', 'data-version': v },
        h('h3', null, `Version ${when(v)}`, v === current ? ' (current)' : ''),
        json(def)));
    } catch (e) {
      replace(view, notice('bad', `Version ${v} could not be read: ${e.message}`));
    }
  }

  return {
    el: h('div', null, list, view),
    versions: () => versions,
    async sync(app) {
      current = app.version;
      if (versionsOf !== app.version) {
        const answer = await api.get('marathon', `/v2/apps/${api.appPath(id)}/versions`);
        versions = answer.versions || [];
        versionsOf = app.version;
      }
      update(list, versions.length
        ? h('ul', { class: 'versions' }, versions.map((v) => h('li', null,
          button(when(v), () => show(v), 'linkish', { 'data-version': v, 'aria-label': `Show version ${v}` }),
          v === app.version ? ' (current)' : '')))
        : h('p', { class: 'muted' }, 'No versions.'));
    },
  };
}

// --- Detail ---------------------------------------------------------------------------------

export function renderDetail(root, params) {
  const id = canonicalId(params[0]);
  let app = null;
  let disposed = false;
  let stop = null;
  const status = h('span');
  const errors = h('div');
  const message = h('div', { 'aria-live': 'polite' });
  const versions = versionsSection(id);
  const actions = serviceActions(id, message, {
    app: () => app,
    versions: versions.versions,
    disposed: () => disposed,
    refresh: () => stop && stop.now(),
  });
  const parts = {
    summary: h('div', null, h('p', { class: 'muted' }, 'Loading…')),
    waiting: h('div'), tasks: h('div'), deployments: h('div'), failure: h('div'), config: h('div'),
  };
  // The actions show once the app is known.
  const toolbar = h('div');
  replace(root,
    crumbs(['Services', '#/services'], id), heading(id, status), toolbar, message, errors,
    parts.summary, parts.waiting,
    h('h2', null, 'Tasks'), parts.tasks,
    h('h2', null, 'Deployments'), parts.deployments,
    h('h2', null, 'Last task failure'), parts.failure,
    h('h2', null, 'Configuration'), parts.config,
    h('h2', null, 'Versions'), versions.el);

  async function load() {
    const [found, queue, deployments] = await Promise.all([
      findApp(id), api.get('marathon', '/v2/queue'), api.get('marathon', '/v2/deployments'),
    ]);
    if (!found) {
      // Destroyed (or never there): asking every 2 s would only say so again.
      stop();
      notFoundPage(root, id);
      return;
    }
    app = found;
    await versions.sync(app);
    const entry = queueIndex(queue).get(id) || null;
    const mine = (Array.isArray(deployments) ? deployments : []).filter((d) => (d.affectedApps || []).includes(id));
    if (toolbar.firstChild !== actions.el) toolbar.replaceChildren(actions.el);
    actions.sync(app);
    update(status, appStatusBadge(app, entry));
    update(parts.summary, summaryPanel(app, entry));
    update(parts.waiting, entry ? waitingPanel(app, entry) : null);
    update(parts.tasks, tasksTable(app));
    update(parts.deployments, deploymentsPanel(mine));
    update(parts.failure, failurePanel(app.lastTaskFailure));
    update(parts.config, json(cleanDefinition(app)));
  }

  stop = live(load, (e) => update(errors, e ? failureNotice(e, 'Marathon') : null));
  return () => {
    disposed = true;
    stop();
  };
}
