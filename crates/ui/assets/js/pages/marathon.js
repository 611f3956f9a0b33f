// Marathon's own UI (data-view=marathon): served by Marathon at its `/`, reached through
// Admin Router at /marathon/ or directly on port 8080. Its REST API (/v2/apps,
// /v2/deployments, /v2/queue) is asked relative to this document and redrawn live.

import {
  h, heading, replace, update, table, kv, crumbs, json, taskStateBadge, mib, trim, when, linkTo,
  failureNotice, notFoundNotice, healthBadge, notice,
} from '../dom.js';
import * as api from '../api.js';
import { live, liveSection } from '../poll.js';
import { appStatusBadge, declinedReasons, queueIndex } from '../model.js';
import { findApp } from './services.js';

const appLink = (id) => linkTo('apps', id);

/** A queue entry's app or pod id. */
const queuedId = (q) => (q.app || q.pod || {}).id || '';

// --- #/ -------------------------------------------------------------------------------------

export function renderOverview(root) {
  const errors = h('div');
  const apps = h('section', { 'aria-labelledby': 'apps-title' });
  const deployments = h('section', { 'aria-labelledby': 'deployments-title' });
  const queue = h('section', { 'aria-labelledby': 'queue-title' });
  replace(root, heading('Marathon'), errors,
    h('h2', { id: 'apps-title' }, 'Applications'), apps,
    h('h2', { id: 'deployments-title' }, 'Deployments'), deployments,
    h('h2', { id: 'queue-title' }, 'Queue'), queue);

  // Three parts redrawn apart, so a change in one does not redraw (and unfocus) the others.
  return live(async () => {
    const [a, d, q] = await Promise.all([
      api.get('marathon', '/v2/apps?embed=apps.counts&embed=apps.deployments'),
      api.get('marathon', '/v2/deployments'),
      api.get('marathon', '/v2/queue'),
    ]);
    update(apps, appTable(a?.apps || [], queueIndex(q)));
    update(deployments, deploymentTable(Array.isArray(d) ? d : []));
    update(queue, queueTable(q?.queue || []));
  }, (e) => update(errors, e ? failureNotice(e, 'Marathon') : null));
}

function appTable(apps, queued) {
  const rows = [...apps].sort((x, y) => x.id.localeCompare(y.id));
  return table([
    { title: 'ID', cell: (a) => appLink(a.id) },
    { title: 'Instances', num: true, cell: (a) => h('span', { 'data-instances': '' }, `${a.tasksRunning || 0}/${a.instances}`) },
    { title: 'CPUs', num: true, cell: (a) => trim(a.cpus) },
    { title: 'Memory', num: true, cell: (a) => mib(a.mem) },
    { title: 'Status', cell: (a) => appStatusBadge(a, queued.get(a.id) || null) },
  ], rows, 'No applications.', { 'aria-labelledby': 'apps-title' }, (a) => ({ 'data-app-id': a.id }));
}

function deploymentTable(list) {
  return table([
    { title: 'ID', cell: (d) => h('span', { class: 'mono' }, d.id) },
    { title: 'Affected apps', cell: (d) => [...(d.affectedApps || []), ...(d.affectedPods || [])].map((id, i) => [i ? ', ' : '', appLink(id)]) },
    { title: 'Step', cell: (d) => [`${d.currentStep || 0} of ${d.totalSteps || (d.steps || []).length}`,
      (d.currentActions || []).length ? h('div', { class: 'muted small' }, d.currentActions.map((c) => c.action).join(', ')) : null] },
    { title: 'Started', cell: (d) => when(d.version) },
  ], list, 'No deployments in progress.', { 'aria-labelledby': 'deployments-title' }, (d) => ({ 'data-deployment-id': d.id }));
}

function queueTable(list) {
  // No delay (or one that is over) is shown as none.
  const delay = (q) => (q.delay && !q.delay.overdue ? `${trim(q.delay.timeLeftSeconds)} s` : '—');
  // Why the last offers did not fit: only reasons that declined some.
  const reasons = (q) => declinedReasons(q).map((x) => `${x.reason} (${x.declined} of ${x.processed})`).join(', ') || '—';
  return table([
    { title: 'App', cell: (q) => appLink(queuedId(q)) },
    { title: 'Count', num: true, cell: (q) => String(q.count ?? '—') },
    { title: 'Delay', cell: delay },
    { title: 'Reject reasons', cell: reasons },
  ], list, 'Nothing is waiting to launch.', { 'aria-labelledby': 'queue-title' }, (q) => ({ 'data-queued': queuedId(q) }));
}

// --- #/apps/:id -----------------------------------------------------------------------------

// What changes with every task, left out of the definition shown as JSON.
const RUNTIME = ['tasks', 'tasksRunning', 'tasksStaged', 'tasksHealthy', 'tasksUnhealthy', 'deployments',
  'lastTaskFailure', 'taskStats', 'readinessCheckResults', 'counts'];

export function renderApp(root, [id]) {
  const body = h('div');
  replace(root, crumbs(['Applications', '#/'], id), heading(id), body);
  // Looked up with Marathon's id filter: a missing app is an empty answer, not a failed request.
  const stop = liveSection(body, async () => {
    const [app, queue] = await Promise.all([findApp(id), api.get('marathon', '/v2/queue')]);
    if (!app) {
      // Gone (or never there): asking every 2 s would only say so again.
      stop();
      return notFoundNotice(`There is no application ${id}.`, 'Back to Applications', '#/');
    }
    return appDetail(app, queueIndex(queue).get(app.id) || null);
  }, 'Marathon');
  return stop;
}

function appDetail(app, entry) {
  const definition = Object.fromEntries(Object.entries(app).filter(([k]) => !RUNTIME.includes(k)));
  const docker = app.container?.docker?.image;
  const checks = Array.isArray(app.healthChecks) ? app.healthChecks : [];
  const ports = (app.portDefinitions || []).map((p) => `${p.port}/${p.protocol || 'tcp'}${p.name ? ` (${p.name})` : ''}`);
  const tasks = [...(app.tasks || [])].sort((a, b) => String(a.id).localeCompare(String(b.id)));
  const failure = app.lastTaskFailure;
  return [
    failure ? notice('warn', `Last task failure (${when(failure.timestamp)}): `, `${failure.state}: ${failure.message || ''}`) : null,
    h('section', { class: 'panel', 'aria-label': 'Definition' }, kv([
      ['Status', appStatusBadge(app, entry)],
      docker ? ['Container image', docker] : null,
      app.cmd ? ['Command', h('code', null, app.cmd)] : null,
      app.args?.length ? ['Arguments', h('code', null, app.args.join(' '))] : null,
      ['Instances', `${app.tasksRunning || 0}/${app.instances} running${app.tasksStaged ? `, ${app.tasksStaged} staged` : ''}`],
      checks.length ? ['Health', `${app.tasksHealthy || 0} healthy, ${app.tasksUnhealthy || 0} unhealthy`] : null,
      ['Resources', `${trim(app.cpus)} CPUs, ${mib(app.mem)}, ${mib(app.disk)} disk${app.gpus ? `, ${trim(app.gpus)} GPUs` : ''}`],
      ['Ports', ports.join(', ') || '—'],
      (app.constraints || []).length ? ['Constraints', app.constraints.map((c) => c.join(' ')).join('; ')] : null,
      Object.keys(app.labels || {}).length ? ['Labels', Object.entries(app.labels).map(([k, v]) => `${k}=${v}`).join(', ')] : null,
      ['Version', when(app.version)],
      ['Configuration changed', when(app.versionInfo?.lastConfigChangeAt)],
      (app.deployments || []).length ? ['Deployments', app.deployments.map((d) => d.id).join(', ')] : null,
    ])),
    h('h2', null, 'Tasks'),
    taskTable(tasks),
    h('h2', null, 'Definition'),
    json(definition),
  ];
}

function taskTable(tasks) {
  const health = (t) => {
    const r = t.healthCheckResults || [];
    return r.length ? healthBadge(r.every((x) => x.alive)) : '—';
  };
  return table([
    { title: 'ID', cell: (t) => h('span', { class: 'mono' }, t.id) },
    { title: 'State', cell: (t) => taskStateBadge(t.state) },
    { title: 'Host', cell: (t) => ((t.ports || []).length ? t.ports.map((p) => `${t.host}:${p}`).join(', ') : t.host || '—') },
    { title: 'Health', cell: health },
    { title: 'Started', cell: (t) => when(t.startedAt || t.stagedAt) },
    { title: 'Version', cell: (t) => when(t.version) },
  ], tasks, 'No tasks.', { 'aria-label': 'Tasks' }, (t) => ({ 'data-task-id': t.id }));
}
