// Nodes: every master and agent with its role, health (dcos-diagnostics), tasks and resources
// (the master's state summary), and one agent's detail: resources, tasks and units' health.

import { h, heading, crumbs, update, replace, notice, badge, bar, table, kv, mib, trim, taskStateBadge } from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';

/** An agent's IP: from its pid (`slave(1)@10.0.0.2:5051`), else its hostname. */
export function agentIp(slave) {
  const m = /@([^:]+):\d+$/.exec(slave.pid || '');
  return m ? m[1] : slave.hostname;
}

/** dcos-diagnostics' role as people say it. */
export function roleName(role) {
  return { master: 'master', agent: 'agent', agent_public: 'public agent' }[role] || role || 'agent';
}

/** Whether an agent is a public one, by what the master knows of it. */
function isPublic(slave) {
  const attrs = slave.attributes || {};
  return attrs.public_ip === 'true' || attrs.public_ip === true
    || Object.prototype.hasOwnProperty.call(slave.reserved_resources || {}, 'slave_public');
}

/** A health label: dcos-diagnostics' 0 is healthy, anything else unhealthy; undefined unknown. */
export function healthBadge(health) {
  if (health === undefined || health === null) return h('span', { class: 'badge', dataset: { health: 'unknown' } }, 'Unknown');
  const ok = Number(health) === 0;
  return h('span', { class: ['badge', ok ? 'ok' : 'bad'], dataset: { health: ok ? 'healthy' : 'unhealthy' } }, ok ? 'Healthy' : 'Unhealthy');
}

/** A time (seconds or ms since the epoch) as a date; stable between redraws, unlike "ago". */
export function when(t) {
  if (!t) return '';
  const ms = t < 1e11 ? t * 1000 : t;
  return new Date(ms).toLocaleString();
}

const ACTIVE = ['TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING', 'TASK_KILLING'];

/** A resource as a bar with its numbers: "0.1 of 2". */
function usage(used, total, kind, fmt, what) {
  return h('div', { class: 'usage' },
    bar(used, total, kind, `${what}: ${fmt(used)} of ${fmt(total)}`),
    h('span', { class: 'small muted' }, `${fmt(used)} of ${fmt(total)}`));
}

const cpus = (n) => trim(n);
const res = (s, key) => Number((s || {})[key]) || 0;

function resourceCells(slave) {
  const u = slave.used_resources || {};
  const t = slave.resources || {};
  return {
    cpu: usage(res(u, 'cpus'), res(t, 'cpus'), 'cpu', cpus, 'CPU'),
    mem: usage(res(u, 'mem'), res(t, 'mem'), 'mem', mib, 'Memory'),
    disk: usage(res(u, 'disk'), res(t, 'disk'), 'disk', mib, 'Disk'),
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
    r.id ? h('a', { href: `#/nodes/${encodeURIComponent(r.id)}` }, r.hostname) : r.hostname,
    r.hostname !== r.ip ? h('div', { class: 'small muted' }, r.ip) : null] },
  { title: 'Role', cell: (r) => roleName(r.role) },
  { title: 'Health', cell: (r) => [healthBadge(r.health), r.active ? null : [' ', badge('Inactive', 'warn')]] },
  { title: 'Tasks', num: true, cell: (r) => (r.slave ? String(r.tasks) : '—') },
  { title: 'CPU', cell: (r) => (r.slave ? resourceCells(r.slave).cpu : '—') },
  { title: 'Memory', cell: (r) => (r.slave ? resourceCells(r.slave).mem : '—') },
  { title: 'Disk', cell: (r) => (r.slave ? resourceCells(r.slave).disk : '—') },
];

/** `table()` with an attribute set on each row, from `rowData(row)`. */
export function keyedTable(columns, rows, empty, rowData, props = {}) {
  const t = table(columns, rows, empty, props);
  if (rows.length) [...t.tBodies[0].rows].forEach((tr, i) => Object.assign(tr.dataset, rowData(rows[i])));
  return t;
}

export function renderList(root) {
  const error = h('div');
  const content = h('div');
  replace(root, heading('Nodes'), error, content);
  return live(async () => {
    const [summary, health] = await Promise.allSettled([
      api.get('mesos', '/master/state-summary'),
      api.get('health', '/nodes'),
    ]);
    if (summary.status === 'rejected') throw summary.reason;
    const rows = nodeRows(summary.value, health.status === 'fulfilled' ? health.value?.nodes : []);
    const count = (role) => rows.filter((r) => r.role === role).length;
    update(content,
      health.status === 'rejected' ? notice('warn', `Node health is not available: ${health.reason.message}`) : null,
      h('p', { class: 'muted' }, `${rows.length} nodes: ${count('master')} master, ${count('agent')} agent, ${count('agent_public')} public agent`),
      keyedTable(NODE_COLUMNS, rows, 'No nodes have registered yet.', (r) => ({ nodeIp: r.ip }), { class: 'bars' }));
  }, (e) => update(error, e ? notice('bad', `The nodes could not be read: ${e.message}`) : null));
}

function resourcesPanel(slave) {
  const u = slave.used_resources || {};
  const t = slave.resources || {};
  const line = (label, key, kind, fmt) => [label, usage(res(u, key), res(t, key), kind, fmt, label)];
  return h('section', { class: 'panel' }, h('h2', null, 'Resources'), kv([
    line('CPU', 'cpus', 'cpu', cpus),
    line('Memory', 'mem', 'mem', mib),
    line('Disk', 'disk', 'disk', mib),
    res(t, 'gpus') > 0 ? line('GPU', 'gpus', '', cpus) : null,
    t.ports ? ['Ports', t.ports] : null,
  ]));
}

function detailsPanel(slave, row) {
  const attrs = Object.entries(slave.attributes || {}).map(([k, v]) => `${k}:${v}`).join(', ');
  return h('section', { class: 'panel' }, h('h2', null, 'Details'), kv([
    ['ID', slave.id],
    ['Hostname', slave.hostname],
    ['IP', row.ip],
    ['Role', roleName(row.role)],
    ['Health', healthBadge(row.health)],
    ['Status', slave.active !== false ? 'Active' : 'Inactive'],
    ['Registered', when(slave.registered_time)],
    ['Mesos version', slave.version || ''],
    attrs ? ['Attributes', attrs] : null,
  ]));
}

const TASK_COLUMNS = (frameworks) => [
  { title: 'Task', cell: (t) => [h('a', { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.name || t.id), h('div', { class: 'small muted' }, t.id)] },
  { title: 'State', cell: (t) => taskStateBadge(t.state) },
  { title: 'Framework', cell: (t) => frameworks.get(t.framework_id) || t.framework_id },
  { title: 'CPU', num: true, cell: (t) => trim(res(t.resources, 'cpus')) },
  { title: 'Memory', num: true, cell: (t) => mib(res(t.resources, 'mem')) },
  { title: 'Started', cell: (t) => when((t.statuses || [])[0]?.timestamp) },
];

// Finished tasks kept by the master beyond these are left out of the node's page.
const COMPLETED_SHOWN = 50;

export function renderDetail(root, [id]) {
  const error = h('div');
  const content = h('div');
  const title = heading(id);
  const trail = h('div');
  update(trail, crumbs(['Nodes', '#/nodes'], id));
  replace(root, trail, title, error, content);
  return live(async () => {
    const [summary, health] = await Promise.allSettled([
      api.get('mesos', '/master/state-summary'),
      api.get('health', '/nodes'),
    ]);
    if (summary.status === 'rejected') throw summary.reason;
    const slave = (summary.value.slaves || []).find((s) => s.id === id);
    if (!slave) {
      update(content, notice('warn', `Node ${id} was not found: no agent with this ID is registered with the master.`));
      return;
    }
    const row = nodeRows({ slaves: [slave] }, health.status === 'fulfilled' ? health.value?.nodes : [])
      .find((r) => r.id === id);
    // The units are asked for only of a node dcos-diagnostics knows (no expected 404s).
    const known = health.status === 'fulfilled' && (health.value?.nodes || []).some((n) => n.host_ip === row.ip);
    const [tasks, units] = await Promise.allSettled([
      api.get('mesos', '/master/tasks?limit=1000'),
      known ? api.get('health', `/nodes/${encodeURIComponent(row.ip)}/units`) : Promise.resolve(null),
    ]);
    const frameworks = new Map((summary.value.frameworks || []).map((f) => [f.id, f.name]));
    if (title.textContent !== slave.hostname) title.textContent = slave.hostname;
    update(trail, crumbs(['Nodes', '#/nodes'], slave.hostname));
    update(content,
      h('div', { class: 'grid node-detail' }, resourcesPanel(slave), detailsPanel(slave, row)),
      h('h2', null, 'Tasks'),
      tasksOf(tasks, id, frameworks),
      h('h2', null, 'Components'),
      unitsOf(units, known, health));
  }, (e) => update(error, e ? notice('bad', `The node could not be read: ${e.message}`) : null));
}

function tasksOf(result, agentId, frameworks) {
  if (result.status === 'rejected') return notice('bad', `The tasks could not be read: ${result.reason.message}`);
  const mine = (result.value?.tasks || []).filter((t) => t.slave_id === agentId);
  const running = mine.filter((t) => ACTIVE.includes(t.state));
  const done = mine.filter((t) => !ACTIVE.includes(t.state)).slice(0, COMPLETED_SHOWN);
  return table(TASK_COLUMNS(frameworks), running.concat(done), 'No tasks have run on this node.', { 'data-node-tasks': '' });
}

const UNIT_COLUMNS = [
  { title: 'Name', cell: (u) => [h('a', { href: `#/components/${encodeURIComponent(u.id)}` }, u.name || u.id), h('div', { class: 'small muted' }, u.id)] },
  { title: 'Health', cell: (u) => healthBadge(u.health) },
];

function unitsOf(result, known, health) {
  if (health.status === 'rejected') return notice('warn', `Component health is not available: ${health.reason.message}`);
  if (!known) return notice('info', 'dcos-diagnostics does not report on this node.');
  if (result.status === 'rejected') return notice('bad', `The node's components could not be read: ${result.reason.message}`);
  const units = (result.value?.units || []).slice()
    .sort((a, b) => (b.health !== 0) - (a.health !== 0) || (a.name || a.id).localeCompare(b.name || b.id));
  return keyedTable(UNIT_COLUMNS, units, 'No components reported.', (u) => ({ unit: u.id }));
}
