// Components: the health of DC/OS' systemd units as dcos-diagnostics reports them, unhealthy
// first, and one unit's health on each node with what its check said.

import { h, heading, crumbs, update, replace, notice } from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';
import { healthBadge, keyedTable, roleName } from './nodes.js';

const unhealthy = (health) => Number(health) !== 0;

/** Per unit id: how many nodes run it and on how many it is unhealthy (from `/report`). */
function nodeCounts(report) {
  const counts = new Map();
  for (const node of Object.values((report && report.Nodes) || {})) {
    for (const u of node.Units || []) {
      const c = counts.get(u.UnitName) || { nodes: 0, bad: 0 };
      c.nodes += 1;
      if (unhealthy(u.Health)) c.bad += 1;
      counts.set(u.UnitName, c);
    }
  }
  return counts;
}

const byHealthThenName = (a, b) => unhealthy(b.health) - unhealthy(a.health)
  || (a.name || a.id).localeCompare(b.name || b.id);

export function renderList(root) {
  const error = h('div');
  const content = h('div');
  replace(root, heading('Components'), error, content);
  return live(async () => {
    // `/report` has every node's units in one answer, where `/units/<unit>/nodes` is one
    // request per unit.
    const [units, report] = await Promise.allSettled([api.get('health', '/units'), api.get('health', '/report')]);
    if (units.status === 'rejected') throw units.reason;
    const counts = report.status === 'fulfilled' ? nodeCounts(report.value) : null;
    const list = (units.value?.units || []).slice().sort(byHealthThenName);
    const bad = list.filter((u) => unhealthy(u.health)).length;
    const columns = [
      { title: 'Name', cell: (u) => [h('a', { href: `#/components/${encodeURIComponent(u.id)}` }, u.name || u.id), h('div', { class: 'small muted' }, u.id)] },
      { title: 'Health', cell: (u) => healthBadge(u.health) },
      { title: 'Unhealthy nodes', num: true, cell: (u) => h('span', { dataset: { unhealthyNodes: '' } }, counts ? String(counts.get(u.id)?.bad ?? 0) : '—') },
      { title: 'Nodes', num: true, cell: (u) => (counts ? String(counts.get(u.id)?.nodes ?? 0) : '—') },
    ];
    update(content,
      report.status === 'rejected' ? notice('warn', `The per-node report is not available: ${report.reason.message}`) : null,
      h('p', { class: 'muted' }, `${list.length} components, ${bad} unhealthy`),
      keyedTable(columns, list, 'dcos-diagnostics reports no components yet.', (u) => ({ unit: u.id })));
  }, (e) => update(error, e ? notice('bad', unavailable(e)) : null));
}

function unavailable(e) {
  return [404, 502, 503].includes(e.status)
    ? `Component health (dcos-diagnostics) is not available on this cluster: ${e.message}`
    : `Component health could not be read: ${e.message}`;
}

const NODE_COLUMNS = [
  { title: 'IP', cell: (n) => n.host_ip },
  { title: 'Role', cell: (n) => roleName(n.role) },
  { title: 'Health', cell: (n) => healthBadge(n.health) },
  { title: 'Output', cell: (n) => [
    n.output ? h('div', { class: 'unit-output mono' }, n.output) : h('span', { class: 'muted' }, unhealthy(n.health) ? 'No output.' : 'OK'),
    unhealthy(n.health) && n.help ? h('div', { class: 'small muted' }, n.help) : null] },
];

export function renderDetail(root, [unitId]) {
  const error = h('div');
  const content = h('div');
  const title = heading(unitId);
  const trail = h('div');
  replace(root, trail, title, error, content);
  update(trail, crumbs(['Components', '#/components'], unitId));
  return live(async () => {
    // The list first, so that an unknown unit is said so without a failing request.
    const units = await api.get('health', '/units');
    const unit = (units?.units || []).find((u) => u.id === unitId);
    if (!unit) {
      update(content, notice('warn', `Component ${unitId} was not found: no node reports it.`));
      return;
    }
    const p = `/units/${encodeURIComponent(unitId)}/nodes`;
    const nodes = (await api.get('health', p))?.nodes || [];
    const details = await Promise.allSettled(nodes.map((n) => api.get('health', `${p}/${encodeURIComponent(n.host_ip)}`)));
    const rows = nodes.map((n, i) => ({ ...n, ...(details[i].status === 'fulfilled' ? details[i].value : {}) }))
      .sort((a, b) => unhealthy(b.health) - unhealthy(a.health) || a.host_ip.localeCompare(b.host_ip, undefined, { numeric: true }));
    const name = unit.name || unit.id;
    if (title.textContent !== name) title.textContent = name;
    update(trail, crumbs(['Components', '#/components'], name));
    update(content,
      h('p', { class: 'component-health' }, healthBadge(unit.health), ' ', h('span', { class: 'muted' }, unit.description || '')),
      h('p', { class: 'small muted' }, unit.id),
      h('h2', null, 'Nodes'),
      keyedTable(NODE_COLUMNS, rows, 'No node reports this component.', (n) => ({ nodeIp: n.host_ip })));
  }, (e) => update(error, e ? notice('bad', unavailable(e)) : null));
}
