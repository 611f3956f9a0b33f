// Components: the health of DC/OS' systemd units as dcos-diagnostics reports them, unhealthy
// first, and one unit's health on each node with what its check said. Both pages read the
// cluster-wide `/report` (every node's units and outputs in one answer) beside `/units`.

import { h, heading, crumbs, replace, notice, table, healthBadge, linkTo, notFoundNotice } from '../dom.js';
import { roleName, unitHealthy } from '../model.js';
import * as api from '../api.js';
import { liveSection } from '../poll.js';

const COMPONENT = 'Component health (dcos-diagnostics)';

/** The badge of a dcos-diagnostics health number. */
export function unitHealthBadge(health) {
  return healthBadge(unitHealthy(health));
}

/** A unit's name linking to its page, with its systemd id below. */
export function unitCell(u) {
  return [linkTo('components', u.id, u.name || u.id), h('div', { class: 'small muted' }, u.id)];
}

const unhealthy = (health) => unitHealthy(health) === false;

/** Per node of the report: the unit `unitId`'s health there and its check's output. */
function unitOnNodes(report, unitId) {
  return Object.values((report && report.Nodes) || {}).flatMap((n) => {
    const u = (n.Units || []).find((x) => x.UnitName === unitId);
    return u ? [{ host_ip: n.IP, role: n.Role, health: u.Health, output: (n.Output || {})[unitId] || '' }] : [];
  });
}

/** Per unit id: how many nodes run it and on how many it is unhealthy. */
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

/** `/units` and `/report` at once; the report may fail alone (its notice says so). */
async function unitsAndReport() {
  const [units, report] = await Promise.allSettled([api.get('health', '/units'), api.get('health', '/report')]);
  if (units.status === 'rejected') throw units.reason;
  return {
    units: (units.value && units.value.units) || [],
    report: report.status === 'fulfilled' ? report.value : null,
    reportMissing: report.status === 'rejected'
      ? notice('warn', `The per-node report is not available: ${report.reason.message}`) : null,
  };
}

export function renderList(root) {
  const body = h('div');
  replace(root, heading('Components'), body);
  return liveSection(body, async () => {
    const { units, report, reportMissing } = await unitsAndReport();
    const counts = report ? nodeCounts(report) : null;
    const list = units.slice().sort(byHealthThenName);
    const bad = list.filter((u) => unhealthy(u.health)).length;
    const columns = [
      { title: 'Name', cell: unitCell },
      { title: 'Health', cell: (u) => unitHealthBadge(u.health) },
      { title: 'Unhealthy nodes', num: true, cell: (u) => h('span', { 'data-unhealthy-nodes': '' }, counts ? String(counts.get(u.id)?.bad ?? 0) : '—') },
      { title: 'Nodes', num: true, cell: (u) => (counts ? String(counts.get(u.id)?.nodes ?? 0) : '—') },
    ];
    return [
      reportMissing,
      h('p', { class: 'muted' }, `${list.length} components, ${bad} unhealthy`),
      table(columns, list, 'dcos-diagnostics reports no components yet.', {}, (u) => ({ 'data-unit': u.id })),
    ];
  }, COMPONENT);
}

const NODE_COLUMNS = [
  { title: 'IP', cell: (n) => n.host_ip },
  { title: 'Role', cell: (n) => roleName(n.role) },
  { title: 'Health', cell: (n) => unitHealthBadge(n.health) },
  { title: 'Output', cell: (n) => (n.output
    ? h('div', { class: 'unit-output mono' }, n.output)
    : h('span', { class: 'muted' }, unhealthy(n.health) ? 'No output.' : 'OK')) },
];

export function renderDetail(root, [unitId]) {
  const title = heading(unitId);
  const trail = crumbs(['Components', '#/components'], unitId);
  const body = h('div');
  replace(root, trail, title, body);
  return liveSection(body, async () => {
    const { units, report, reportMissing } = await unitsAndReport();
    const unit = units.find((u) => u.id === unitId);
    if (!unit) return notFoundNotice(`There is no component ${unitId}.`, 'Back to Components', '#/components');
    const rows = unitOnNodes(report, unitId)
      .sort((a, b) => unhealthy(b.health) - unhealthy(a.health) || a.host_ip.localeCompare(b.host_ip, undefined, { numeric: true }));
    const name = unit.name || unit.id;
    if (title.textContent !== name) title.textContent = name;
    if (trail.lastChild.textContent !== name) trail.lastChild.textContent = name;
    return [
      h('p', { class: 'component-health' }, unitHealthBadge(unit.health), ' ', h('span', { class: 'muted' }, unit.description || '')),
      h('p', { class: 'small muted' }, unit.id),
      h('h2', null, 'Nodes'),
      reportMissing || table(NODE_COLUMNS, rows, 'No node reports this component.', {}, (n) => ({ 'data-node-ip': n.host_ip })),
    ];
  }, COMPONENT);
}
