// A task: its summary (the master's `/master/tasks`), its stdout and stderr followed as they
// grow, and its sandbox's files, all read through the agent's files API (`/agent/<id>/files/
// browse|read|download`), which serves running and finished tasks' sandboxes alike.

import {
  h, heading, crumbs, update, replace, notice, kv, tabs, button, taskStateBadge, healthBadge, bytes, mib, trim, when,
  hashTo, linkTo, failureNotice, notFoundNotice,
} from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';

const INITIAL = 256 * 1024; // a log is read from at most this far before its end at first
const CHUNK = 256 * 1024; // bytes per read
const BEHIND = 1024 * 1024; // a follower further behind than this skips ahead
const KEEP = 2 * 1024 * 1024; // characters a viewer keeps
const FOLLOW_MS = 1000;
const SANDBOX_RETRY_MS = 10000;

const TABS = [['stdout', 'Output (stdout)'], ['stderr', 'Errors (stderr)'], ['files', 'Files']];

function filesUrl(agentId, op, params) {
  return `/agent/${api.segment(agentId)}/files/${op}?${new URLSearchParams(params)}`;
}

const baseName = (p) => p.slice(p.lastIndexOf('/') + 1);

/** "[1025-1026, 31000-31000]" as "1025-1026, 31000". */
function ports(range) {
  if (!range) return '—';
  return String(range).replace(/[[\]]/g, '').split(',').map((r) => {
    const [a, b] = r.trim().split('-');
    return a === b ? a : r.trim();
  }).join(', ');
}

/** The task's sandbox directory on its agent, or null while the agent has not started it. */
async function findSandbox(task) {
  const state = await api.request(`/agent/${api.segment(task.slave_id)}/state`);
  const frameworks = [...(state.frameworks || []), ...(state.completed_frameworks || [])]
    .filter((f) => f.id === task.framework_id);
  for (const f of frameworks) {
    for (const e of [...(f.executors || []), ...(f.completed_executors || [])]) {
      const lists = [e.tasks, e.queued_tasks, e.completed_tasks];
      const has = lists.some((l) => (l || []).some((t) => t.id === task.id));
      if (!has && e.id !== task.id && e.id !== task.executor_id) continue;
      if (e.id === task.id || !e.directory) return e.directory || null;
      // A task group's (pod's) tasks each have a sandbox in the executor's, under tasks/<id>.
      const inside = await api.request(filesUrl(task.slave_id, 'browse', { path: e.directory }));
      const tasksDir = (inside || []).find((x) => baseName(x.path) === 'tasks' && x.mode.startsWith('d'));
      if (tasksDir) {
        const sub = await api.request(filesUrl(task.slave_id, 'browse', { path: tasksDir.path }));
        if ((sub || []).some((x) => baseName(x.path) === task.id)) return `${tasksDir.path}/${task.id}`;
      }
      return e.directory;
    }
  }
  return null;
}

/**
 * The text of a read of `length` bytes, and how many bytes it accounts for. The agent decodes
 * bytes as UTF-8, putting U+FFFD for a character cut at the chunk's end: such a tail is left
 * for the next read, which then starts at that character. Only text free of other U+FFFDs
 * re-encodes to exactly the bytes read; otherwise the offset moves on by the bytes read.
 */
function decodeChunk(data, length) {
  const encoder = new TextEncoder();
  if (!data.includes('\uFFFD')) return { text: data, used: Math.min(length, encoder.encode(data).length) };
  const keep = data.slice(0, -1);
  if (data.endsWith('\uFFFD') && !keep.includes('\uFFFD')) {
    const n = encoder.encode(keep).length;
    if (length - n >= 1 && length - n <= 3) return { text: keep, used: n };
  }
  return { text: data, used: length };
}

/** Adds text at the end of a viewer, staying at the end unless the user scrolled up. */
function appendTo(pre, text) {
  if (!text) return;
  const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 32;
  pre.append(text);
  pre.shown = (pre.shown || 0) + text.length;
  if (pre.shown > KEEP) {
    const all = pre.textContent;
    const from = all.indexOf('\n', all.length - KEEP / 2) + 1;
    pre.textContent = `[… earlier output not shown; download the file for all of it …]\n${all.slice(from)}`;
    pre.shown = pre.textContent.length;
  }
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

/**
 * Follows a file into `pre`: every second its size, then what was added since the last read
 * (by byte offset). Returns stop.
 */
function followFile(pre, status, problem, agentId, path) {
  let offset = null;
  let cut = false; // the next read starts mid-line: drop up to its first newline
  let exists = false;
  let skipped = 0;
  let stopped = false;
  let timer = null;
  const read = (params) => api.request(filesUrl(agentId, 'read', { path, ...params }));
  async function tick() {
    try {
      if (!exists) {
        // The file is looked for first so that a task not yet writing it costs no failed read.
        const dir = path.slice(0, path.lastIndexOf('/')) || '/';
        const listing = await api.request(filesUrl(agentId, 'browse', { path: dir }));
        exists = (listing || []).some((x) => baseName(x.path) === baseName(path));
        if (!exists) {
          update(status, 'Waiting for the file to be created…');
          return;
        }
      }
      const end = (await read({ offset: -1 })).offset;
      if (offset === null || end < offset) {
        // First read (or the file was truncated): start near its end.
        if (offset !== null) pre.replaceChildren();
        offset = Math.max(0, end - INITIAL);
        skipped = offset;
        cut = offset > 0;
      } else if (end - offset > BEHIND) {
        appendTo(pre, `\n[… ${bytes(end - INITIAL - offset)} skipped …]\n`);
        offset = end - INITIAL;
        cut = true;
      }
      while (!stopped && end > offset) {
        const length = Math.min(CHUNK, end - offset);
        const { data } = await read({ offset, length });
        if (stopped) return;
        let { text, used } = decodeChunk(String(data ?? ''), length);
        if (!used) break;
        if (cut) {
          text = text.slice(text.indexOf('\n') + 1);
          cut = false;
        }
        offset += used;
        appendTo(pre, text);
      }
      update(status, `${bytes(end)}${skipped ? `; the first ${bytes(skipped)} are not shown (download the file for all of it)` : ''}`);
      update(problem);
    } catch (e) {
      if (!stopped) update(problem, notice('bad', `The file could not be read: ${e.message}`));
    } finally {
      if (!stopped) timer = setTimeout(tick, FOLLOW_MS);
    }
  }
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function downloadLink(agentId, path, kind = 'button') {
  return h('a', { class: kind, href: filesUrl(agentId, 'download', { path }), download: baseName(path) }, 'Download');
}

/** A followed file with its size and a Download link; `extra` goes in its toolbar. */
function fileViewer(container, agentId, path, dataset, label, ...extra) {
  const pre = h('pre', { class: 'log', tabindex: '0', 'aria-label': label, dataset });
  const status = h('span', { class: 'muted small' });
  const problem = h('div', { 'aria-live': 'polite' });
  replace(container, h('div', { class: 'toolbar' }, status, h('span', { class: 'grow' }), extra, downloadLink(agentId, path)), problem, pre);
  return followFile(pre, status, problem, agentId, path);
}

const byDirThenName = (a, b) => b.mode.startsWith('d') - a.mode.startsWith('d') || baseName(a.path).localeCompare(baseName(b.path));

/** The Files tab: the sandbox's directories, and a file opened in a viewer below. */
function filesView(container, agentId, sandbox) {
  const where = h('nav', { class: 'crumbs', 'aria-label': 'Directory' });
  const problem = h('div');
  const list = h('div');
  const viewer = h('div');
  replace(container, where, problem, list, viewer);
  let dir = sandbox;
  let stopList = null;
  let stopViewer = null;
  let names = null; // the listing's names, to redraw only its cells while it stays the same
  let cells = new Map();

  function close() {
    if (stopViewer) stopViewer();
    stopViewer = null;
    replace(viewer);
  }
  function open(path) {
    close();
    const heading3 = h('h3', { class: 'file-name' }, baseName(path));
    const body = h('div');
    replace(viewer, heading3, body);
    stopViewer = fileViewer(body, agentId, path, { log: 'file', file: path }, `Contents of ${baseName(path)}`,
      button('Close', () => close()));
    body.querySelector('pre')?.focus();
  }
  function crumbsOf() {
    const rel = dir.slice(sandbox.length).split('/').filter(Boolean);
    const parts = [['Sandbox', sandbox]];
    rel.forEach((seg, i) => parts.push([seg, `${sandbox}/${rel.slice(0, i + 1).join('/')}`]));
    return parts.map(([label, path], i) => [i ? ' / ' : '',
      i === parts.length - 1 ? h('span', { 'aria-current': 'location' }, label) : button(label, () => go(path), 'linkish')]);
  }
  function row(x) {
    const isDir = x.mode.startsWith('d');
    const name = baseName(x.path);
    return {
      name: isDir ? button(`${name}/`, () => go(x.path), 'linkish', { 'data-dir': name })
        : button(name, () => open(x.path), 'linkish', { 'data-file': name }),
      mode: h('span', { class: 'mono' }, x.mode),
      size: isDir ? '—' : bytes(x.size),
      mtime: when(x.mtime),
      download: isDir ? '' : downloadLink(agentId, x.path, null),
    };
  }
  function draw(entries) {
    const sorted = entries.slice().sort(byDirThenName);
    const now = sorted.map((x) => `${x.mode[0]}${x.path}`).join('\n');
    if (now === names) {
      // Same entries: only what changes (sizes, times) is redrawn, so focus stays put.
      for (const x of sorted) {
        const r = row(x);
        const c = cells.get(x.path);
        update(c.size, r.size);
        update(c.mtime, r.mtime);
      }
      return;
    }
    names = now;
    cells = new Map();
    const cols = [['Name', 'name'], ['Mode', 'mode'], ['Size', 'size', true], ['Modified', 'mtime'], ['', 'download']];
    const body = sorted.map((x) => {
      const r = row(x);
      const tds = cols.map(([, key, num]) => h('td', { class: num ? 'num' : null }, r[key]));
      cells.set(x.path, { size: tds[2], mtime: tds[3] });
      return h('tr', { dataset: { path: baseName(x.path) } }, tds);
    });
    replace(list, h('table', { class: 'files' },
      h('thead', null, h('tr', null, cols.map(([t, , num]) => h('th', { scope: 'col', class: num ? 'num' : null }, t)))),
      h('tbody', null, body.length ? body : h('tr', null, h('td', { class: 'empty', colspan: cols.length }, 'This directory is empty.')))));
  }
  function go(path) {
    dir = path;
    names = null;
    if (stopList) stopList();
    update(where, crumbsOf());
    stopList = live(async () => {
      const asked = dir;
      const listing = await api.request(filesUrl(agentId, 'browse', { path: asked }));
      // A listing of the folder left (answered after another was opened) is not drawn.
      if (asked === dir) draw(listing || []);
    }, (e) => update(problem, e ? notice('bad', `The directory could not be listed: ${e.message}`) : null));
  }
  go(sandbox);
  return () => {
    if (stopList) stopList();
    close();
  };
}

/** Services / <app> / task, or Jobs / <job> / task, from the task id's conventions. */
function trail(id, framework) {
  if (framework === 'marathon') {
    const m = /^(.+?)\.(instance-)?[0-9a-f]{8}-[0-9a-f]{4}-/.exec(id);
    if (m) {
      const app = `/${m[1].split('_').join('/')}`;
      return crumbs(['Services', '#/services'], [app, hashTo('services/detail', app)], id);
    }
  }
  if (framework === 'metronome') {
    const m = /^(.+?)_\d{14}[A-Za-z0-9]{5}\./.exec(id);
    if (m) return crumbs(['Jobs', '#/jobs'], [m[1], hashTo('jobs/detail', m[1])], id);
  }
  return crumbs(['Services', '#/services'], id);
}

function summaryOf(task, slave, framework) {
  const statuses = task.statuses || [];
  const running = statuses.find((s) => s.state === 'TASK_RUNNING');
  const last = statuses[statuses.length - 1] || {};
  const ips = statuses.flatMap((s) => s.container_status?.network_infos || [])
    .flatMap((n) => n.ip_addresses || []).map((a) => a.ip_address);
  const r = task.resources || {};
  return kv([
    ['State', taskStateBadge(task.state)],
    typeof last.healthy === 'boolean' ? ['Health', healthBadge(last.healthy)] : null,
    last.message && task.state !== 'TASK_RUNNING' ? ['Message', last.message] : null,
    ['Name', task.name || '—'],
    ['ID', task.id],
    ['Agent', linkTo('nodes', task.slave_id, slave ? slave.hostname : task.slave_id)],
    ['Host', [...new Set(ips.length ? ips : [slave ? slave.hostname : '—'])].join(', ')],
    ['Ports', ports(r.ports)],
    ['Framework', framework || task.framework_id],
    ['Resources', `${trim(r.cpus)} CPUs, ${mib(r.mem)} memory, ${mib(r.disk)} disk${r.gpus ? `, ${trim(r.gpus)} GPUs` : ''}`],
    [running ? 'Started' : 'Staged', when((running || statuses[0] || {}).timestamp)],
  ]);
}

export function render(root, [id], query) {
  const trailEl = h('div');
  const error = h('div');
  const summary = h('div', { class: 'panel task-summary' });
  const views = h('div');
  update(trailEl, crumbs(['Services', '#/services'], id));
  replace(root, trailEl, heading(id), error, views);
  let selected = TABS.some(([k]) => k === query.get('tab')) ? query.get('tab') : 'stdout';
  let task = null;
  let sandbox = null;
  let sandboxError = null;
  let sandboxTried = 0;
  let panel = null;
  let stopPanel = null;
  // Set by dispose: a sandbox found after it must start no viewer.
  let disposed = false;

  function showTab() {
    if (stopPanel) stopPanel();
    stopPanel = null;
    if (disposed || !panel) return;
    if (!sandbox) {
      replace(panel, sandboxError
        ? notice('bad', `The task's sandbox could not be read: ${sandboxError}`)
        : notice('info', 'Waiting for the task to start on its agent…'));
      return;
    }
    const [, label] = TABS.find(([k]) => k === selected);
    stopPanel = selected === 'files'
      ? filesView(panel, task.slave_id, sandbox)
      : fileViewer(panel, task.slave_id, `${sandbox}/${selected}`, { log: selected }, label);
  }

  async function locate() {
    if (sandbox || Date.now() - sandboxTried < (sandboxError ? SANDBOX_RETRY_MS : 0)) return;
    sandboxTried = Date.now();
    const before = sandboxError;
    try {
      sandbox = await findSandbox(task);
      sandboxError = null;
    } catch (e) {
      sandboxError = e.message;
    }
    if (disposed) return;
    if (sandbox || sandboxError !== before) showTab();
  }

  const stop = live(async () => {
    const [found, state] = await Promise.all([
      api.get('mesos', `/master/tasks?task_id=${encodeURIComponent(id)}`),
      api.get('mesos', '/master/state-summary'),
    ]);
    const t = ((found && found.tasks) || []).find((x) => x.id === id);
    if (!t) {
      // Finished tasks are forgotten by the master after a while; a new one may not be known yet.
      update(views, notFoundNotice(`There is no task ${id}.`, 'Back to Services', '#/services'));
      task = null;
      if (stopPanel) stopPanel();
      stopPanel = null;
      panel = null;
      return;
    }
    const first = !task;
    task = t;
    const framework = (state.frameworks || []).find((f) => f.id === t.framework_id)?.name;
    const slave = (state.slaves || []).find((s) => s.id === t.slave_id);
    update(trailEl, trail(id, framework));
    update(summary, summaryOf(t, slave, framework));
    if (first) {
      panel = h('div', { role: 'tabpanel', class: 'task-view' });
      replace(views, summary, tabs(TABS, selected, (key) => {
        selected = key;
        showTab();
      }), panel);
      showTab();
    }
    await locate();
  }, (e) => update(error, e ? failureNotice(e, 'Mesos', 'The task could not be read: ') : null));

  return () => {
    disposed = true;
    stop();
    if (stopPanel) stopPanel();
  };
}
