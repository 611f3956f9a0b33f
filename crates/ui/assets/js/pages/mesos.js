// The Mesos master's own UI (data-view=mesos): served by the master at its `/`, reached
// through Admin Router at /mesos/ or directly on port 5050. Everything comes from the
// master's /master/state, asked relative to this document, and is redrawn live.

import {
  h, heading, replace, table, kv, crumbs, badge, bar, taskStateBadge, mib, trim, percent, when, hashTo, linkTo,
  notFoundNotice,
} from '../dom.js';
import * as api from '../api.js';
import { liveSection } from '../poll.js';
import { agentTotals } from '../model.js';

// --- The state, indexed ---------------------------------------------------------------------

async function loadState() {
  return api.get('mesos', '/master/state');
}

/** Frameworks (also finished ones), agents by id, and every task with its framework. */
function index(state) {
  const frameworks = [...(state.frameworks || []), ...(state.completed_frameworks || [])];
  const agents = new Map((state.slaves || []).map((a) => [a.id, a]));
  const names = new Map(frameworks.map((f) => [f.id, f.name]));
  const active = [];
  const completed = [];
  for (const f of frameworks) {
    active.push(...(f.tasks || []), ...(f.unreachable_tasks || []));
    completed.push(...(f.completed_tasks || []));
  }
  completed.sort((a, b) => lastUpdate(b) - lastUpdate(a));
  return { frameworks, agents, names, active, completed };
}

function lastUpdate(task) {
  const s = task.statuses || [];
  return s.length ? Number(s[s.length - 1].timestamp) || 0 : 0;
}

// --- Formatting -----------------------------------------------------------------------------

/** Mesos times are seconds since the epoch (fractions allowed); 0 means never. */
const since = (seconds) => when(Number(seconds) > 0 ? Number(seconds) : null);

function resources(r = {}) {
  const parts = [`${trim(r.cpus)} CPUs`, mib(r.mem), `${mib(r.disk)} disk`];
  if (Number(r.gpus) > 0) parts.push(`${trim(r.gpus)} GPUs`);
  return parts.join(', ');
}

/** "used / total" of one scalar, with a bar. */
function usage(used, total, kind, what, format = trim) {
  return h('div', null, `${format(used || 0)} / ${format(total || 0)}`,
    bar(used || 0, total || 0, kind, `${what} ${percent(used || 0, total || 0)}% used`));
}

function agentLink(agents, id) {
  const a = agents.get(id);
  return linkTo('agents', id, a ? a.hostname : id);
}

function frameworkLink(id, name) {
  return linkTo('frameworks', id, name || id);
}

/** A framework's web UI: a link only to a web address. */
function webUi(url) {
  if (!url) return '—';
  return /^https?:\/\//i.test(url) ? h('a', { href: url, rel: 'noopener noreferrer' }, url) : String(url);
}

/**
 * Where a task's sandbox is: through Admin Router, the DC/OS UI's task page (its Files tab
 * browses it); on the master's own port the agents' files are out of reach, so the path the
 * agent's files API serves is shown instead.
 */
function sandbox(task, agents) {
  if (api.throughAdminRouter) {
    return h('a', { href: `/${hashTo('tasks', task.id)}` }, 'Sandbox');
  }
  const agent = agents.get(task.slave_id);
  const executor = task.executor_id || task.id;
  return h('span', { class: 'mono small', title: 'Sandbox on the agent' },
    `${agent ? agent.hostname : task.slave_id}:/frameworks/${task.framework_id}/executors/${executor}/runs/latest`);
}

/** A tasks table; `without` leaves out the framework or agent column on their own pages. */
function taskTable(tasks, ix, label, empty, without = '') {
  const columns = [
    { title: 'ID', cell: (t) => h('span', { class: 'mono' }, t.id) },
    { title: 'Name', cell: (t) => t.name },
    { title: 'State', cell: (t) => taskStateBadge(t.state) },
    without !== 'framework' && { title: 'Framework', cell: (t) => frameworkLink(t.framework_id, ix.names.get(t.framework_id)) },
    without !== 'agent' && { title: 'Agent', cell: (t) => agentLink(ix.agents, t.slave_id) },
    { title: 'Resources', cell: (t) => resources(t.resources) },
    { title: 'Sandbox', cell: (t) => sandbox(t, ix.agents) },
  ].filter(Boolean);
  return table(columns, tasks, empty, { 'aria-label': label }, (t) => ({ 'data-task-id': t.id }));
}

function taskSections(active, completed, ix, without) {
  return [
    h('h2', null, 'Active tasks'),
    taskTable(active, ix, 'Active tasks', 'No active tasks.', without),
    h('h2', null, 'Completed tasks'),
    taskTable(completed.slice(0, 100), ix, 'Completed tasks', 'No completed tasks.', without),
    completed.length > 100 ? h('p', { class: 'muted small' }, `The latest 100 of ${completed.length}.`) : null,
  ];
}

/** A page that shows the master's state live: `draw(state, ix)` gives what it shows. */
function livePage(root, head, draw) {
  const body = h('div');
  replace(root, head, body);
  return liveSection(body, async () => {
    const state = await loadState();
    return draw(state, index(state));
  }, 'The Mesos master');
}

// --- #/ -------------------------------------------------------------------------------------

export function renderOverview(root) {
  return livePage(root, heading('Overview'), (state, ix) => {
    const agents = [...ix.agents.values()];
    const { used, total } = agentTotals(agents);
    const leader = state.leader_info || {};
    return [
      h('div', { class: 'grid' },
        h('section', { class: 'panel', 'aria-label': 'Leader' }, h('h2', null, 'Leader'), kv([
          ['Cluster', state.cluster || '—'],
          ['Leader', state.leader || leader.pid || '—'],
          ['Hostname', leader.hostname || state.hostname || '—'],
          ['Version', state.version || leader.version || '—'],
          ['Started', since(state.start_time)],
          ['Elected', since(state.elected_time)],
        ])),
        h('section', { class: 'panel', 'aria-label': 'Resources' }, h('h2', null, 'Resources'), kv([
          ['CPUs', usage(used.cpus, total.cpus, '', 'CPUs')],
          ['Memory', usage(used.mem, total.mem, 'mem', 'Memory', mib)],
          ['Disk', usage(used.disk, total.disk, 'disk', 'Disk', mib)],
          ['Agents', `${state.activated_slaves ?? agents.length} active, ${state.deactivated_slaves || 0} inactive, ${state.unreachable_slaves || 0} unreachable`],
          ['Tasks', `${ix.active.length} active, ${ix.completed.length} completed`],
        ]))),
      h('h2', null, 'Agents'),
      agentTable(agents),
      h('h2', null, 'Frameworks'),
      frameworkTable(ix.frameworks),
      taskSections(ix.active, ix.completed, ix, ''),
    ];
  });
}

const agentState = (a) => (a.active ? badge('Active', 'ok') : badge('Inactive', 'warn'));

function agentTable(agents) {
  return table([
    { title: 'ID', cell: (a) => linkTo('agents', a.id, a.id, { class: 'mono' }) },
    { title: 'Hostname', cell: (a) => a.hostname },
    { title: 'State', cell: agentState },
    { title: 'CPUs', cell: (a) => usage(a.used_resources?.cpus, a.resources?.cpus, '', 'CPUs') },
    { title: 'Memory', cell: (a) => usage(a.used_resources?.mem, a.resources?.mem, 'mem', 'Memory', mib) },
    { title: 'Disk', cell: (a) => usage(a.used_resources?.disk, a.resources?.disk, 'disk', 'Disk', mib) },
  ], agents, 'No agents.', { 'aria-label': 'Agents', class: 'bars' }, (a) => ({ 'data-agent-id': a.id }));
}

function frameworkTable(frameworks) {
  return table([
    { title: 'Name', cell: (f) => frameworkLink(f.id, f.name) },
    { title: 'ID', cell: (f) => h('span', { class: 'mono' }, f.id) },
    { title: 'State', cell: (f) => frameworkState(f) },
    { title: 'Active tasks', num: true, cell: (f) => String((f.tasks || []).length) },
    { title: 'Resources', cell: (f) => resources(f.used_resources || f.resources) },
    { title: 'Registered', cell: (f) => since(f.registered_time) },
  ], frameworks, 'No frameworks.', { 'aria-label': 'Frameworks' }, (f) => ({ 'data-framework-id': f.id }));
}

function frameworkState(f) {
  if (f.unregistered_time > 0 && !f.active) return badge('Completed', 'info');
  if (!f.active) return badge('Inactive', 'warn');
  return f.connected === false ? badge('Disconnected', 'warn') : badge('Active', 'ok');
}

// --- #/frameworks/:id -----------------------------------------------------------------------

export function renderFramework(root, [id]) {
  const title = heading('Framework');
  return livePage(root, [crumbs(['Overview', '#/'], 'Frameworks', id), title], (_state, ix) => {
    const f = ix.frameworks.find((x) => x.id === id);
    if (!f) return notFoundNotice(`There is no framework ${id}.`, 'Back to Overview', '#/');
    title.textContent = `Framework ${f.name || id}`;
    const tasks = (list) => list.filter((t) => t.framework_id === id);
    return [
      h('section', { class: 'panel', 'aria-label': 'Framework' }, kv([
        ['ID', h('span', { class: 'mono' }, f.id)],
        ['State', frameworkState(f)],
        ['User', f.user || '—'],
        ['Roles', (f.roles || [f.role]).filter(Boolean).join(', ') || '—'],
        ['Principal', f.principal || '—'],
        ['Hostname', f.hostname || '—'],
        ['Web UI', webUi(f.webui_url)],
        ['Registered', since(f.registered_time)],
        f.unregistered_time > 0 && ['Unregistered', since(f.unregistered_time)],
        ['Failover timeout', `${trim(f.failover_timeout)} s`],
        ['Capabilities', (f.capabilities || []).join(', ') || '—'],
        ['Used', resources(f.used_resources || f.resources)],
        ['Offered', resources(f.offered_resources)],
      ])),
      taskSections(tasks(ix.active), tasks(ix.completed), ix, 'framework'),
    ];
  });
}

// --- #/agents/:id ---------------------------------------------------------------------------

export function renderAgent(root, [id]) {
  const title = heading('Agent');
  return livePage(root, [crumbs(['Overview', '#/'], 'Agents', id), title], (_state, ix) => {
    const a = ix.agents.get(id);
    if (!a) return notFoundNotice(`There is no agent ${id}.`, 'Back to Overview', '#/');
    title.textContent = `Agent ${a.hostname}`;
    const tasks = (list) => list.filter((t) => t.slave_id === id);
    const attributes = Object.entries(a.attributes || {}).map(([k, v]) => `${k}:${v}`).join(', ');
    const kinds = [['cpus', 'CPUs'], ['mem', 'Memory'], ['disk', 'Disk'], ['gpus', 'GPUs'], ['ports', 'Ports']];
    const fmt = (k, v) => (v === undefined ? '—' : (k === 'mem' || k === 'disk') ? mib(v) : k === 'ports' ? v : trim(v));
    const rows = [['Total', a.resources], ['Used', a.used_resources], ['Offered', a.offered_resources],
      ['Unreserved', a.unreserved_resources]].filter(([, r]) => r);
    return [
      h('section', { class: 'panel', 'aria-label': 'Agent' }, kv([
        ['ID', h('span', { class: 'mono' }, a.id)],
        ['State', agentState(a)],
        ['PID', a.pid || '—'],
        ['Version', a.version || '—'],
        ['Registered', since(a.registered_time)],
        ['Attributes', attributes || '—'],
        ['Capabilities', (a.capabilities || []).join(', ') || '—'],
      ])),
      h('h2', null, 'Resources'),
      table([{ title: 'Resources', cell: ([name]) => h('strong', null, name) },
        ...kinds.map(([k, title]) => ({ title, num: k !== 'ports', cell: ([, r]) => fmt(k, r[k]) }))],
      rows, 'No resources.', { 'aria-label': 'Resources' }),
      taskSections(tasks(ix.active), tasks(ix.completed), ix, 'agent'),
    ];
  });
}
