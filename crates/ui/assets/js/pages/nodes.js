// Nodes: every master and agent with its role, health (dcos-diagnostics), tasks and resources
// (the master's state summary), and one agent's detail: resources, its tasks (the agent's own
// state) and its units' health.

import {
  h, heading, crumbs, replace, notice, badge, bar, table, kv, mib, trim, taskStateBadge, when, linkTo,
  notFoundNotice,
} from '../dom.js';
import * as api from '../api.js';
import { liveSection } from '../poll.js';
import { agentTotals, roleName, unitHealthy } from '../model.js';
import { unitHealthBadge, unitCell } from './components.js';

/** An agent's IP: from its pid (`slave(1)@10.0.0.2:5051`), else its hostname. */
function agentIp(slave) {
  const m = /@([^:]+):\d+$/.exec(slave.pid || '');
  return m ? m[1] : slave.hostname;
}

/** Whether an agent is a public one, by what the master knows of it. */
function isPublic(slave) {
  const attrs = slave.attributes || {};
  return attrs.public_ip === 'true' || attrs.public_ip === true
    || Object.prototype.hasOwnProperty.call(slave.reserved_resources || {}, 'slave_public');
}

const ACTIVE = ['TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING', 'TASK_KILLING'];

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** A resource as a bar with its numbers: "0.1 of 2". */
function usage(used, total, kind, fmt, what) {
  return h('div', { class: 'usage' },
    bar(used, total, kind, `${what}: ${fmt(used)} of ${fmt(total)}`),
    h('span', { class: 'small muted' }, `${fmt(used)} of ${fmt(total)}`));
}

/** An agent's CPUs, memory and disk as usage bars. */
function resourceCells(slave) {
  const { used, total } = agentTotals([slave]);
  return {
    cpus: usage(used.cpus, total.cpus, 'cpu', trim, 'CPUs'),
    mem: usage(used.mem, total.mem, 'mem', mib, 'Memory'),
    disk: usage(used.disk, total.disk, 'disk', mib, 'Disk'),
    gpus: total.gpus > 0 ? usage(used.gpus, total.gpus, '', trim, 'GPUs') : null,
  };
}

/** The node rows: agents from the state summary joined by IP with dcos-diagnostics' nodes. */
function nodeRows(summary, healthNodes) {
  const byIp = new Map((healthNodes || []).map((n) => [n.host_ip, n]));
  const rows = [];
  for (const s of summary.slaves || []) {
    const ip = agentIp(s);
    const hn = byIp.get(ip);
    byIp.delete(ip);
    const role = hn && hn.role !== 'master' ? hn.role : (isPublic(s) ? 'agent_public' : 'agent');
    rows.push({ ip, hostname: s.hostname, id: s.id, role, health: hn?.health, active: s.active !== false,
      tasks: ACTIVE.reduce((n, k) => n + (Number(s[k]) || 0), 0), slave: s });
  }
  // Masters, and agents dcos-diagnostics knows of that are not registered with the master.
  for (const hn of byIp.values()) {
    rows.push({ ip: hn.host_ip, hostname: hn.host_ip, role: hn.role, health: hn.health, active: true });
  }
  const rank = { master: 0, agent: 1, agent_public: 2 };
  return rows.sort((a, b) => (rank[a.role] ?? 3) - (rank[b.role] ?? 3) || a.ip.localeCompare(b.ip, undefined, { numeric: true }));
}

const NODE_COLUMNS = [
  { title: 'Hostname / IP', cell: (r) => [
    r.id ? linkTo('nodes', r.id, r.hostname) : r.hostname,
    r.hostname !== r.ip ? h('div', { class: 'small muted' }, r.ip) : null] },
  { title: 'Role', cell: (r) => roleName(r.role) },
  { title: 'Health', cell: (r) => [unitHealthBadge(r.health), r.active ? null : [' ', badge('Inactive', 'warn')]] },
  { title: 'Tasks', num: true, cell: (r) => (r.slave ? String(r.tasks) : '—') },
  { title: 'CPUs', cell: (r) => (r.slave ? resourceCells(r.slave).cpus : '—') },
  { title: 'Memory', cell: (r) => (r.slave ? resourceCells(r.slave).mem : '—') },
  { title: 'Disk', cell: (r) => (r.slave ? resourceCells(r.slave).disk : '—') },
];

/** The state summary, and dcos-diagnostics' nodes (or the reason they are missing). */
async function summaryAndHealth() {
  const [summary, health] = await Promise.allSettled([
    api.get('mesos', '/master/state-summary'),
    api.get('health', '/nodes'),
  ]);
  if (summary.status === 'rejected') throw summary.reason;
  return {
    summary: summary.value || {},
    healthNodes: health.status === 'fulfilled' ? (health.value?.nodes || []) : null,
    healthError: health.status === 'rejected' ? health.reason : null,
  };
}

export function renderList(root) {
  const body = h('div');
  replace(root, heading('Nodes'), body);
  return liveSection(body, async () => {
    const { summary, healthNodes, healthError } = await summaryAndHealth();
    const rows = nodeRows(summary, healthNodes);
    const count = (role) => rows.filter((r) => r.role === role).length;
    return [
      healthError ? notice('warn', `Node health is not available: ${healthError.message}`) : null,
      h('p', { class: 'muted' }, `${plural(rows.length, 'node')}: ${plural(count('master'), 'master')}, ${plural(count('agent'), 'agent')}, ${plural(count('agent_public'), 'public agent')}`),
      table(NODE_COLUMNS, rows, 'No nodes have registered yet.', { class: 'bars' }, (r) => ({ 'data-node-ip': r.ip })),
    ];
  }, 'Mesos');
}

function resourcesPanel(slave) {
  const cells = resourceCells(slave);
  const ports = (slave.resources || {}).ports;
  return h('section', { class: 'panel' }, h('h2', null, 'Resources'), kv([
    ['CPUs', cells.cpus],
    ['Memory', cells.mem],
    ['Disk', cells.disk],
    cells.gpus ? ['GPUs', cells.gpus] : null,
    ports ? ['Ports', ports] : null,
  ]));
}

function detailsPanel(slave, row) {
  const attrs = Object.entries(slave.attributes || {}).map(([k, v]) => `${k}:${v}`).join(', ');
  return h('section', { class: 'panel' }, h('h2', null, 'Details'), kv([
    ['ID', slave.id],
    ['Hostname', slave.hostname],
    ['IP', row.ip],
    ['Role', roleName(row.role)],
    ['Health', unitHealthBadge(row.health)],
    ['Status', slave.active !== false ? badge('Active', 'ok') : badge('Inactive', 'warn')],
    ['Registered', when(slave.registered_time || null)],
    ['Mesos version', slave.version || '—'],
    ['Attributes', attrs || '—'],
  ]));
}

const TASK_COLUMNS = (frameworks) => [
  { title: 'Task', cell: (t) => [linkTo('tasks', t.id, t.name || t.id), h('div', { class: 'small muted' }, t.id)] },
  { title: 'State', cell: (t) => taskStateBadge(t.state) },
  { title: 'Framework', cell: (t) => frameworks.get(t.framework_id) || t.framework_id || '—' },
  { title: 'CPUs', num: true, cell: (t) => trim(t.resources?.cpus) },
  { title: 'Memory', num: true, cell: (t) => mib(t.resources?.mem) },
  { title: 'Started', cell: (t) => when((t.statuses || [])[0]?.timestamp) },
];

// Finished tasks beyond these (newest first) are left out of the node's page.
const COMPLETED_SHOWN = 50;

const lastUpdate = (t) => Number((t.statuses || []).at(-1)?.timestamp) || 0;

/**
 * The tasks of an agent from its own state (`/agent/<id>/state`: every framework's
 * executors' tasks, queued, running and completed), so a busy cluster's other tasks do not
 * crowd them out. `names` gets the agent's frameworks' names.
 */
async function agentTasks(agentId, names) {
  const state = await api.request(`/agent/${api.segment(agentId)}/state`);
  const active = [];
  const done = [];
  for (const f of [...(state.frameworks || []), ...(state.completed_frameworks || [])]) {
    if (f.name && !names.has(f.id)) names.set(f.id, f.name);
    for (const e of [...(f.executors || []), ...(f.completed_executors || [])]) {
      // Queued tasks are TaskInfos: they have no state of their own yet.
      active.push(...(e.queued_tasks || []).map((t) => ({ state: 'TASK_STAGING', framework_id: f.id, ...t })));
      active.push(...(e.tasks || []).map((t) => ({ framework_id: f.id, ...t })));
      done.push(...(e.completed_tasks || []).map((t) => ({ framework_id: f.id, ...t })));
    }
  }
  return { active, done };
}

/** The agent's tasks from the master's task list: for an agent that cannot be asked itself. */
async function masterTasks(agentId) {
  const all = ((await api.get('mesos', '/master/tasks?limit=1000'))?.tasks || []).filter((t) => t.slave_id === agentId);
  return { active: all.filter((t) => ACTIVE.includes(t.state)), done: all.filter((t) => !ACTIVE.includes(t.state)) };
}

/** The node's Tasks section: its own state when it is active, else (or failing that) the master's list. */
async function tasksSection(slave, names) {
  let tasks = null;
  let note = null;
  if (slave.active !== false) {
    try {
      tasks = await agentTasks(slave.id, names);
    } catch (e) {
      note = notice('warn', `The agent did not answer (${e.message}); its tasks are from the master's list.`);
    }
  }
  try {
    if (!tasks) tasks = await masterTasks(slave.id);
  } catch (e) {
    return notice('bad', `The tasks could not be read: ${e.message}`);
  }
  const done = tasks.done.sort((a, b) => lastUpdate(b) - lastUpdate(a)).slice(0, COMPLETED_SHOWN);
  return [note, table(TASK_COLUMNS(names), tasks.active.concat(done), 'No tasks have run on this node.', { 'data-node-tasks': '' })];
}

const UNIT_COLUMNS = [
  { title: 'Name', cell: unitCell },
  { title: 'Health', cell: (u) => unitHealthBadge(u.health) },
];

/** The node's Components section: its units, unhealthy first. */
async function unitsSection(row, healthNodes, healthError) {
  if (healthError) return notice('warn', `Component health is not available: ${healthError.message}`);
  // The units are asked for only of a node dcos-diagnostics knows (no expected 404s).
  if (!healthNodes.some((n) => n.host_ip === row.ip)) return notice('info', 'dcos-diagnostics does not report on this node.');
  try {
    const units = ((await api.get('health', `/nodes/${api.segment(row.ip)}/units`))?.units || []).slice()
      .sort((a, b) => (unitHealthy(a.health) - unitHealthy(b.health)) || (a.name || a.id).localeCompare(b.name || b.id));
    return table(UNIT_COLUMNS, units, 'No components reported.', {}, (u) => ({ 'data-unit': u.id }));
  } catch (e) {
    return notice('bad', `The node's components could not be read: ${e.message}`);
  }
}

export function renderDetail(root, [id]) {
  const title = heading(id);
  const trail = crumbs(['Nodes', '#/nodes'], id);
  const body = h('div');
  replace(root, trail, title, body);
  return liveSection(body, async () => {
    const { summary, healthNodes, healthError } = await summaryAndHealth();
    const slave = (summary.slaves || []).find((s) => s.id === id);
    if (!slave) return notFoundNotice(`There is no node ${id}.`, 'Back to Nodes', '#/nodes');
    const row = nodeRows({ slaves: [slave] }, healthNodes).find((r) => r.id === id);
    const names = new Map((summary.frameworks || []).map((f) => [f.id, f.name]));
    const [tasks, units] = await Promise.all([tasksSection(slave, names), unitsSection(row, healthNodes, healthError)]);
    if (title.textContent !== slave.hostname) title.textContent = slave.hostname;
    if (trail.lastChild.textContent !== slave.hostname) trail.lastChild.textContent = slave.hostname;
    return [
      h('div', { class: 'grid node-detail' }, resourcesPanel(slave), detailsPanel(slave, row)),
      h('h2', null, 'Tasks'),
      tasks,
      h('h2', null, 'Components'),
      units,
    ];
  }, 'Mesos');
}
