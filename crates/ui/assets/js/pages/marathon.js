// Marathon's own UI (data-view=marathon): served by Marathon at its `/`, reached through
// Admin Router at /marathon/ or directly on port 8080. Its REST API (/v2/apps,
// /v2/deployments, /v2/queue) is asked relative to this document and redrawn live.

import {
  h, heading, notice, replace, update, table, kv, crumbs, badge, json, taskStateBadge, mib, trim,
} from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';

function appHref(id) {
  return `#/apps/${encodeURIComponent(id)}`;
}

function appLink(id) {
  return h('a', { href: appHref(id) }, id);
}

/** `/group/app` as a path below /v2/apps, each segment escaped. */
function appPath(id) {
  const segs = String(id).split('/').filter(Boolean).map(encodeURIComponent);
  return `/v2/apps/${segs.join('/')}`;
}

function when(iso) {
  const t = Date.parse(iso || '');
  return Number.isFinite(t) ? new Date(t).toLocaleString() : '—';
}

function failure(e) {
  const away = [404, 502, 503].includes(e.status) && !e.body?.message;
  return notice('bad', away ? 'Marathon is not available: ' : 'Marathon did not answer: ', e.message);
}

/** The status the DC/OS UI would give an app. */
function status(app, queued) {
  const running = app.tasksRunning || 0;
  if ((app.deployments || []).length) return badge('Deploying', 'warn');
  if (queued && queued.delay && !queued.delay.overdue) return badge('Delayed', 'bad');
  if (app.instances === 0 && running === 0) return badge('Suspended', '');
  if (queued) return badge('Waiting', 'warn');
  return running >= app.instances ? badge('Running', 'ok') : badge('Waiting', 'warn');
}

/** A queue entry's app or pod id. */
function queuedId(q) {
  return (q.app || q.pod || {}).id || '';
}

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

  return live(async () => {
    const [a, d, q] = await Promise.all([
      api.get('marathon', '/v2/apps?embed=apps.counts&embed=apps.tasks'),
      api.get('marathon', '/v2/deployments'),
      api.get('marathon', '/v2/queue'),
    ]);
    const queued = new Map((q?.queue || []).map((e) => [queuedId(e), e]));
    update(apps, appTable(a?.apps || [], queued));
    update(deployments, deploymentTable(Array.isArray(d) ? d : []));
    update(queue, queueTable(q?.queue || []));
  }, (e) => update(errors, e ? failure(e) : null));
}

function appTable(apps, queued) {
  const rows = [...apps].sort((x, y) => x.id.localeCompare(y.id));
  const tbl = table([
    { title: 'ID', cell: (a) => appLink(a.id) },
    { title: 'Instances', num: true, cell: (a) => `${a.tasksRunning || 0} / ${a.instances}` },
    { title: 'CPUs', num: true, cell: (a) => trim(a.cpus) },
    { title: 'Memory', num: true, cell: (a) => mib(a.mem) },
    { title: 'Status', cell: (a) => status(a, queued.get(a.id)) },
  ], rows, 'No applications.', { 'aria-labelledby': 'apps-title' });
  if (rows.length) [...tbl.tBodies[0].rows].forEach((tr, i) => { tr.dataset.appId = rows[i].id; });
  return tbl;
}

function deploymentTable(list) {
  const tbl = table([
    { title: 'ID', cell: (d) => h('span', { class: 'mono' }, d.id) },
    { title: 'Affected apps', cell: (d) => [...(d.affectedApps || []), ...(d.affectedPods || [])].map((id, i) => [i ? ', ' : '', appLink(id)]) },
    { title: 'Step', cell: (d) => [`${d.currentStep || 0} / ${d.totalSteps || (d.steps || []).length}`,
      (d.currentActions || []).length ? h('div', { class: 'muted small' }, d.currentActions.map((c) => c.action).join(', ')) : null] },
    { title: 'Started', cell: (d) => when(d.version) },
  ], list, 'No deployments in progress.', { 'aria-labelledby': 'deployments-title' });
  if (list.length) [...tbl.tBodies[0].rows].forEach((tr, i) => { tr.dataset.deploymentId = list[i].id; });
  return tbl;
}

function queueTable(list) {
  const delay = (q) => {
    if (!q.delay) return '—';
    return q.delay.overdue ? 'none' : `${trim(q.delay.timeLeftSeconds)} s`;
  };
  // Why the last offers did not fit: only reasons that declined some.
  const reasons = (q) => {
    const r = (q.processedOffersSummary?.rejectSummaryLastOffers || []).filter((x) => x.declined > 0);
    return r.length ? r.map((x) => `${x.reason} (${x.declined} of ${x.processed})`).join(', ') : '—';
  };
  return table([
    { title: 'App', cell: (q) => appLink(queuedId(q)) },
    { title: 'Count', num: true, cell: (q) => String(q.count ?? '') },
    { title: 'Delay', cell: delay },
    { title: 'Reject reasons', cell: reasons },
  ], list, 'Nothing is waiting to launch.', { 'aria-labelledby': 'queue-title' });
}

// --- #/apps/:id -----------------------------------------------------------------------------

// What changes with every task, left out of the definition shown as JSON.
const RUNTIME = ['tasks', 'tasksRunning', 'tasksStaged', 'tasksHealthy', 'tasksUnhealthy', 'deployments',
  'lastTaskFailure', 'taskStats', 'readinessCheckResults', 'counts'];

export function renderApp(root, [id]) {
  const errors = h('div');
  const body = h('div');
  replace(root, crumbs(['Applications', '#/'], id), heading(id), errors, body);

  const stop = live(async () => {
    const answer = await api.get('marathon', appPath(id));
    update(body, appDetail(answer?.app || answer));
  }, (e) => {
    if (e?.status === 404) {
      // Gone (or never there): asking every 2 s would only fail again.
      stop();
      update(body);
      update(errors, notice('warn', `${e.message}. `, h('a', { href: '#/' }, 'Back to the applications')));
      return;
    }
    update(errors, e ? failure(e) : null);
  });
  return () => stop();
}

function appDetail(app) {
  const definition = Object.fromEntries(Object.entries(app).filter(([k]) => !RUNTIME.includes(k)));
  const docker = app.container?.docker?.image;
  const ports = (app.portDefinitions || []).map((p) => `${p.port}/${p.protocol || 'tcp'}${p.name ? ` (${p.name})` : ''}`);
  const tasks = [...(app.tasks || [])].sort((a, b) => String(a.id).localeCompare(String(b.id)));
  return [
    app.lastTaskFailure ? notice('warn', `Last task failure (${when(app.lastTaskFailure.timestamp)}): `,
      `${app.lastTaskFailure.state}: ${app.lastTaskFailure.message || ''}`) : null,
    h('section', { class: 'panel', 'aria-label': 'Definition' }, kv([
      ['Status', status(app, null)],
      docker ? ['Image', docker] : null,
      app.cmd ? ['Command', h('code', null, app.cmd)] : null,
      app.args?.length ? ['Arguments', h('code', null, app.args.join(' '))] : null,
      ['Instances', `${app.tasksRunning || 0} running of ${app.instances}${app.tasksStaged ? `, ${app.tasksStaged} staged` : ''}`],
      (app.healthChecks || []).length ? ['Health', `${app.tasksHealthy || 0} healthy, ${app.tasksUnhealthy || 0} unhealthy`] : null,
      ['Resources', `${trim(app.cpus)} CPU, ${mib(app.mem)}, ${mib(app.disk)} disk${app.gpus ? `, ${trim(app.gpus)} GPU` : ''}`],
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
    if (!r.length) return '—';
    return r.every((x) => x.alive) ? badge('Healthy', 'ok') : badge('Unhealthy', 'bad');
  };
  const tbl = table([
    { title: 'ID', cell: (t) => h('span', { class: 'mono' }, t.id) },
    { title: 'State', cell: (t) => taskStateBadge(t.state) },
    { title: 'Host', cell: (t) => ((t.ports || []).length ? t.ports.map((p) => `${t.host}:${p}`).join(', ') : t.host || '—') },
    { title: 'Health', cell: health },
    { title: 'Started', cell: (t) => when(t.startedAt || t.stagedAt) },
    { title: 'Version', cell: (t) => when(t.version) },
  ], tasks, 'No tasks.', { 'aria-label': 'Tasks' });
  if (tasks.length) [...tbl.tBodies[0].rows].forEach((tr, i) => { tr.dataset.taskId = tasks[i].id; });
  return tbl;
}
