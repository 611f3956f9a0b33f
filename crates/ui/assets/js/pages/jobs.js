// Jobs: Metronome's jobs through Admin Router (`/service/metronome`): the list with each job's
// schedule and last run, a form (or JSON) creating a job and its schedule, and a job's page
// with its definition, schedules, active runs and run history. Lists are live.

import {
  h, replace, update, trim, mib, badge, notice, field, button, heading, crumbs, tabs, kv, json,
  confirmDialog, taskStateBadge,
} from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';

const LIST_EMBEDS = '?embed=activeRuns&embed=schedules&embed=historySummary';
const DETAIL_EMBEDS = '?embed=activeRuns&embed=schedules&embed=history';

const jobPath = (id) => `/v1/jobs/${encodeURIComponent(id)}`;
const detailHash = (id) => `#/jobs/detail/${encodeURIComponent(id)}`;

const RUN_KINDS = { SUCCESS: 'ok', FAILED: 'bad', ACTIVE: 'info', STARTING: 'warn', INITIAL: 'warn' };

/** A run's status as Metronome names it (`SUCCESS`, `FAILED`, `ACTIVE`...). */
function runStatus(status) {
  return h('span', { class: ['badge', RUN_KINDS[status] || ''], 'data-run-status': status }, status);
}

/** A Metronome time (`2026-12-07T22:19:37.882+0000`) in ms; its zone lacks the colon ISO wants. */
function parseTime(s) {
  return s ? Date.parse(String(s).replace(/([+-]\d\d)(\d\d)$/, '$1:$2')) : NaN;
}

/** A time as a stable local date (no "5 s ago": live redraws must not change every time). */
function time(s) {
  const t = parseTime(s);
  if (!Number.isFinite(t)) return s ? String(s) : '—';
  return h('time', { datetime: new Date(t).toISOString() }, new Date(t).toLocaleString());
}

function duration(from, to) {
  const ms = parseTime(to) - parseTime(from);
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = ms / 1000;
  if (s < 60) return `${trim(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** A failed Metronome call in words; a missing Metronome (no job id in the answer) said plainly. */
function problem(e) {
  if ([404, 502, 503].includes(e.status) && !(e.body && e.body.id)) {
    return notice('bad', `Metronome is not available on this cluster: ${e.message}`);
  }
  return notice('bad', e.message);
}

/** Like dom's table(), with attributes on each row (the tests find rows by `data-*`). */
function rowTable(columns, rows, rowProps, empty, props = {}) {
  const head = h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c.title)));
  const body = rows.length
    ? rows.map((r) => h('tr', rowProps(r), columns.map((c) => h('td', null, c.cell(r)))))
    : h('tr', null, h('td', { class: 'empty', colspan: columns.length }, empty));
  return h('table', props, h('thead', null, head), h('tbody', null, body));
}

// --- List -----------------------------------------------------------------------------------

/** The last run of a listed job: an active one, else the later of the last success and failure. */
function lastRun(job) {
  const active = [...(job.activeRuns || [])].sort((a, b) => parseTime(b.createdAt) - parseTime(a.createdAt));
  if (active.length) return { status: active[0].status, at: active[0].createdAt };
  const s = job.historySummary || {};
  const ok = parseTime(s.lastSuccessAt);
  const bad = parseTime(s.lastFailureAt);
  if (Number.isFinite(ok) && !(bad > ok)) return { status: 'SUCCESS', at: s.lastSuccessAt };
  if (Number.isFinite(bad)) return { status: 'FAILED', at: s.lastFailureAt };
  return null;
}

function scheduleText(job) {
  const s = (job.schedules || [])[0];
  if (!s) return h('span', { class: 'muted' }, 'None');
  return [h('code', null, s.cron), ` ${s.timezone || 'UTC'}`, s.enabled === false ? [' ', badge('disabled')] : null];
}

function jobsTable(jobs) {
  const columns = [
    { title: 'Job', cell: (j) => [h('a', { href: detailHash(j.id) }, j.id), j.description ? h('div', { class: 'muted small' }, j.description) : null] },
    { title: 'Command', cell: (j) => (j.run && j.run.cmd ? h('code', { class: 'cmd' }, j.run.cmd) : h('span', { class: 'muted' }, (j.run && j.run.docker && j.run.docker.image) || '—')) },
    { title: 'Schedule', cell: scheduleText },
    {
      title: 'Last run',
      cell: (j) => {
        const last = lastRun(j);
        return last ? [badge(last.status, RUN_KINDS[last.status]), ' ', h('span', { class: 'muted small' }, time(last.at))] : h('span', { class: 'muted' }, 'Never run');
      },
    },
  ];
  return rowTable(columns, jobs, (j) => ({ 'data-job-id': j.id }),
    'No jobs yet. Create a Job to run a command once or on a schedule.', { class: 'jobs' });
}

export function renderList(root) {
  const message = h('div');
  const body = h('div');
  replace(root, heading('Jobs'),
    h('div', { class: 'toolbar' }, h('a', { class: 'button primary', href: '#/jobs/new' }, 'Create a Job')),
    message, body);
  return live(async () => {
    const jobs = await api.get('metronome', `/v1/jobs${LIST_EMBEDS}`);
    const list = Array.isArray(jobs) ? [...jobs].sort((a, b) => a.id.localeCompare(b.id)) : [];
    update(body, jobsTable(list));
  }, (e) => update(message, e ? problem(e) : null));
}

// --- Create ---------------------------------------------------------------------------------

/** A cron expression Metronome can read has 5 fields and no `@daily` aliases. */
function cronProblem(cron) {
  if (!cron.startsWith('@') && cron.split(/\s+/).length === 5) return null;
  return `Can not read cron expression "${cron}": it needs 5 fields (minute hour day-of-month month day-of-week), e.g. "0 * * * *".`;
}

function zoneProblem(zone) {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone }).format(0);
    return null;
  } catch (_) {
    return `No time zone found with this id: "${zone}" (an IANA name such as UTC or Europe/Berlin).`;
  }
}

/** Where Metronome's `details` paths are shown in the form. */
const FIELD_OF_PATH = {
  '/id': 'id', '/description': 'description', '/run/cmd': 'cmd', '/run/cpus': 'cpus',
  '/run/mem': 'mem', '/run/disk': 'disk', '/run/docker': 'image', '/run/docker/image': 'image',
  '/cron': 'cron', '/timezone': 'timezone',
};

function numberInput(name, value, min) {
  return h('input', { type: 'number', name, value: String(value), min, step: 'any', inputmode: 'decimal' });
}

function zoneList() {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  return h('datalist', { id: 'job-time-zones' }, ['UTC', ...zones.filter((z) => z !== 'UTC')].map((z) => h('option', { value: z })));
}

export function renderCreate(root) {
  const inputs = {
    id: h('input', { type: 'text', name: 'id', autocomplete: 'off', spellcheck: 'false', required: true }),
    description: h('input', { type: 'text', name: 'description' }),
    cmd: h('textarea', { name: 'cmd', rows: 3, class: 'cmd', spellcheck: 'false' }),
    cpus: numberInput('cpus', 0.1, 0.01),
    mem: numberInput('mem', 32, 32),
    disk: numberInput('disk', 0, 0),
    image: h('input', { type: 'text', name: 'image', placeholder: 'e.g. alpine:3.8', spellcheck: 'false' }),
    cron: h('input', { type: 'text', name: 'cron', placeholder: 'e.g. 0 * * * *', spellcheck: 'false' }),
    timezone: h('input', { type: 'text', name: 'timezone', value: 'UTC', list: 'job-time-zones', spellcheck: 'false' }),
  };
  const fields = {
    id: field('Job ID', inputs.id, 'Lower-case letters, digits, dashes; dots separate groups (e.g. backups.nightly).'),
    description: field('Description', inputs.description),
    cmd: field('Command', inputs.cmd, 'A shell command, run with sh -c.'),
    cpus: field('CPUs', inputs.cpus),
    mem: field('Memory (MiB)', inputs.mem),
    disk: field('Disk (MiB)', inputs.disk),
    image: field('Container image', inputs.image, 'Optional: a Docker image to run the command in.'),
    cron: field('Schedule (cron)', inputs.cron, 'Optional: minute hour day-of-month month day-of-week, e.g. "0 2 * * *" runs daily at 2:00. Empty: runs only when started.'),
    timezone: field('Time zone', inputs.timezone, 'The zone the schedule is read in.'),
  };
  const jsonInput = h('textarea', { name: 'definition', spellcheck: 'false' });
  const jsonField = field('Job definition (JSON)', jsonInput, 'The Metronome job; "schedules" (optional) are created after it.');
  const message = h('div');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create Job');
  const formPanel = h('div', { role: 'tabpanel', 'aria-label': 'Form' },
    h('fieldset', null, h('legend', null, 'General'), fields.id, fields.description),
    h('fieldset', null, h('legend', null, 'Run'), fields.cmd,
      h('div', { class: 'row' }, fields.cpus, fields.mem, fields.disk), fields.image),
    h('fieldset', null, h('legend', null, 'Schedule'), h('div', { class: 'row' }, fields.cron, fields.timezone), zoneList()));
  const jsonPanel = h('div', { role: 'tabpanel', 'aria-label': 'JSON', hidden: true }, jsonField);

  // What the JSON tab held, so keys the form has no field for survive a round trip.
  let base = {};
  let mode = 'form';
  // A job created by an earlier submit whose schedule failed: a resubmit updates it.
  let created = null;

  function fromForm() {
    const job = structuredClone(base);
    const oldSchedule = Array.isArray(job.schedules) ? job.schedules[0] : null;
    delete job.schedules;
    const text = (k) => inputs[k].value.trim();
    job.id = text('id');
    if (text('description')) job.description = inputs.description.value;
    else delete job.description;
    const run = { ...(job.run || {}) };
    if (inputs.cmd.value.trim()) run.cmd = inputs.cmd.value;
    else delete run.cmd;
    for (const k of ['cpus', 'mem', 'disk']) {
      if (text(k) === '') delete run[k];
      else run[k] = Number(text(k));
    }
    if (text('image')) run.docker = { ...(run.docker || {}), image: text('image') };
    else delete run.docker;
    job.run = run;
    if (text('cron')) {
      job.schedules = [{
        id: 'default', enabled: true, concurrencyPolicy: 'ALLOW', ...(oldSchedule || {}),
        cron: text('cron'), timezone: text('timezone') || 'UTC',
      }];
    }
    return job;
  }

  function toForm(def) {
    base = def;
    const run = def.run || {};
    const schedule = Array.isArray(def.schedules) ? def.schedules[0] || {} : {};
    const set = (k, v) => { inputs[k].value = v === undefined || v === null ? '' : String(v); };
    set('id', def.id);
    set('description', def.description);
    set('cmd', run.cmd);
    set('cpus', run.cpus);
    set('mem', run.mem);
    set('disk', run.disk);
    set('image', run.docker && run.docker.image);
    set('cron', schedule.cron);
    set('timezone', schedule.timezone || 'UTC');
  }

  /** The JSON tab's definition, or null (with the reason shown under it). */
  function fromJson() {
    try {
      const def = JSON.parse(jsonInput.value);
      if (def && typeof def === 'object' && !Array.isArray(def)) return def;
      jsonField.setError('The job definition must be a JSON object.');
    } catch (e) {
      jsonField.setError(`This is not valid JSON: ${e.message}`);
    }
    return null;
  }

  const tabList = tabs([['form', 'Form'], ['json', 'JSON']], 'form', (key) => {
    if (key === mode) return;
    if (key === 'json') {
      jsonInput.value = JSON.stringify(fromForm(), null, 2);
      jsonField.setError([]);
    } else {
      const def = fromJson();
      // Invalid JSON keeps the JSON tab open, with the reason under it.
      if (!def) {
        tabList.querySelector('[data-tab=json]').click();
        return;
      }
      toForm(def);
    }
    mode = key;
    formPanel.hidden = key !== 'form';
    jsonPanel.hidden = key !== 'json';
  });

  function clearErrors() {
    for (const f of Object.values(fields)) f.setError([]);
    jsonField.setError([]);
    replace(message);
  }

  /** Metronome's refusal: `details` under their fields (in the form), the rest on top. */
  function showErrors(e, lead) {
    const rest = [];
    let first = null;
    for (const [p, msgs] of Object.entries(typeof e.fieldErrors === 'function' ? e.fieldErrors() : {})) {
      const key = mode === 'form' ? FIELD_OF_PATH[p] : null;
      if (key) {
        fields[key].setError(msgs);
        first = first || inputs[key];
      } else {
        rest.push(p ? `${p}: ${msgs.join(' ')}` : msgs.join(' '));
      }
    }
    // An id already taken is about the id.
    if (e.status === 409 && mode === 'form' && !/schedule/i.test(e.message)) {
      fields.id.setError(e.message);
      first = inputs.id;
    }
    replace(message, notice('bad', lead || e.message, rest.length ? h('ul', null, rest.map((r) => h('li', null, r))) : null));
    (first || message).scrollIntoView({ block: 'center' });
    if (first) first.focus();
  }

  /** Checks the schedules here: Metronome would only refuse them after creating the job. */
  function checkSchedules(schedules) {
    for (const s of schedules) {
      const cron = String(s.cron || '').trim();
      const zone = String(s.timezone || 'UTC');
      const errors = { cron: cronProblem(cron), timezone: zoneProblem(zone) };
      if (!errors.cron && !errors.timezone) continue;
      if (mode === 'form') {
        fields.cron.setError(errors.cron);
        fields.timezone.setError(errors.timezone);
        (errors.cron ? inputs.cron : inputs.timezone).focus();
      } else {
        jsonField.setError([errors.cron, errors.timezone]);
        jsonInput.focus();
      }
      return false;
    }
    return true;
  }

  async function create() {
    const def = mode === 'form' ? fromForm() : fromJson();
    if (!def) return;
    const { schedules = [], ...job } = def;
    if (!Array.isArray(schedules) || !checkSchedules(schedules)) return;
    const id = String(job.id || '');
    try {
      if (created && created === id) await api.send('metronome', jobPath(id), job, 'PUT');
      else await api.send('metronome', '/v1/jobs', job);
      created = id;
    } catch (e) {
      showErrors(e);
      return;
    }
    for (const s of schedules) {
      try {
        await api.send('metronome', `${jobPath(id)}/schedules`, { id: 'default', enabled: true, concurrencyPolicy: 'ALLOW', ...s });
      } catch (e) {
        showErrors(e, [`The job ${id} was created, but its schedule was not: ${e.message}. Fix it and submit again, or `,
          h('a', { href: detailHash(id) }, 'open the job'), '.']);
        return;
      }
    }
    window.location.hash = detailHash(id);
  }

  const form = h('form', { class: 'form', novalidate: true }, message, tabList, formPanel, jsonPanel,
    h('div', { class: 'toolbar' }, submit, h('a', { class: 'button', href: '#/jobs' }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    submit.disabled = true;
    try {
      await create();
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, crumbs(['Jobs', '#/jobs'], 'Create a Job'), heading('Create a Job'), form);
}

// --- Detail ---------------------------------------------------------------------------------

function definitionView(job) {
  const run = job.run || {};
  const { schedules, activeRuns, history, historySummary, ...definition } = job;
  return [
    kv([
      ['Description', job.description || '—'],
      ['Command', run.cmd ? h('code', { class: 'cmd' }, run.cmd) : '—'],
      ['CPUs', trim(run.cpus)],
      ['Memory', mib(run.mem)],
      ['Disk', mib(run.disk)],
      run.docker ? ['Container image', h('code', null, run.docker.image || '')] : null,
      run.restart ? ['Restart policy', run.restart.policy] : null,
      run.maxLaunchDelay ? ['Max launch delay', `${run.maxLaunchDelay} s`] : null,
    ]),
    h('details', { class: 'definition' }, h('summary', null, 'Job definition (JSON)'), json(definition)),
  ];
}

function schedulesView(job) {
  return rowTable([
    { title: 'ID', cell: (s) => s.id },
    { title: 'Cron', cell: (s) => h('code', null, s.cron) },
    { title: 'Time zone', cell: (s) => s.timezone || 'UTC' },
    { title: 'Enabled', cell: (s) => (s.enabled === false ? badge('disabled') : badge('enabled', 'ok')) },
    { title: 'Concurrency', cell: (s) => s.concurrencyPolicy || '' },
    { title: 'Next run', cell: (s) => (s.enabled === false ? '—' : time(s.nextRunAt)) },
  ], job.schedules || [], (s) => ({ 'data-schedule-id': s.id }), 'No schedule: the job runs only when started.');
}

function activeView(job) {
  const runs = [...(job.activeRuns || [])].sort((a, b) => parseTime(b.createdAt) - parseTime(a.createdAt));
  return rowTable([
    { title: 'Run', cell: (r) => h('code', null, r.id) },
    { title: 'Status', cell: (r) => runStatus(r.status) },
    { title: 'Started', cell: (r) => time(r.createdAt) },
    {
      title: 'Tasks',
      cell: (r) => ((r.tasks || []).length
        ? (r.tasks || []).map((t) => h('div', null, h('a', { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.id), ' ', taskStateBadge(t.status)))
        : h('span', { class: 'muted' }, 'Waiting for an offer')),
    },
  ], runs, (r) => ({ 'data-run-id': r.id }), 'No active runs.');
}

function historyView(job) {
  const hist = job.history || {};
  const runs = [
    ...(hist.successfulFinishedRuns || []).map((r) => ({ ...r, status: 'SUCCESS' })),
    ...(hist.failedFinishedRuns || []).map((r) => ({ ...r, status: 'FAILED' })),
  ].sort((a, b) => parseTime(b.finishedAt) - parseTime(a.finishedAt));
  return [
    h('p', { class: 'muted' }, `${hist.successCount || 0} successful, ${hist.failureCount || 0} failed.`),
    rowTable([
      { title: 'Run', cell: (r) => h('code', null, r.id) },
      { title: 'Status', cell: (r) => runStatus(r.status) },
      { title: 'Started', cell: (r) => time(r.createdAt) },
      { title: 'Finished', cell: (r) => time(r.finishedAt) },
      { title: 'Duration', cell: (r) => duration(r.createdAt, r.finishedAt) },
    ], runs, (r) => ({ 'data-run-id': r.id }), 'No finished runs yet.'),
  ];
}

export function renderDetail(root, [id]) {
  const message = h('div');
  const actions = h('div');
  const parts = { definition: h('div'), schedules: h('div'), active: h('div'), history: h('div') };
  const runButton = button('Run now', runNow, 'primary');
  const deleteButton = button('Delete', remove, 'danger');
  replace(root, crumbs(['Jobs', '#/jobs'], id), heading(id),
    h('div', { class: 'toolbar' }, runButton, deleteButton), actions, message,
    h('section', { 'aria-label': 'Definition' }, h('h2', null, 'Definition'), parts.definition),
    h('section', { 'aria-label': 'Schedules' }, h('h2', null, 'Schedules'), parts.schedules),
    h('section', { 'aria-label': 'Active runs' }, h('h2', null, 'Active runs'), parts.active),
    h('section', { 'aria-label': 'Run history' }, h('h2', null, 'Run history'), parts.history));

  async function load() {
    const job = await api.get('metronome', `${jobPath(id)}${DETAIL_EMBEDS}`);
    update(parts.definition, definitionView(job));
    update(parts.schedules, schedulesView(job));
    update(parts.active, activeView(job));
    update(parts.history, historyView(job));
  }
  function onError(e) {
    if (!e) update(message);
    else if (e.status === 404 && e.body && e.body.id) {
      // Gone for good: asking again every 2 s would only fill the log.
      stop();
      update(message, notice('bad', `There is no job ${id}: it may have been deleted. `, h('a', { href: '#/jobs' }, 'Back to the jobs')));
    } else {
      update(message, problem(e));
    }
  }
  let stop = live(load, onError);
  // After an action: load now rather than at the next tick.
  const refresh = () => {
    stop();
    stop = live(load, onError);
  };

  async function runNow() {
    runButton.disabled = true;
    try {
      const run = await api.send('metronome', `${jobPath(id)}/runs`, {});
      replace(actions, notice('ok', `Started run ${run && run.id ? run.id : ''}.`));
      refresh();
    } catch (e) {
      replace(actions, notice('bad', `The job could not be started: ${e.message}`));
    } finally {
      runButton.disabled = false;
    }
  }

  async function remove() {
    const yes = await confirmDialog('Delete Job', `Delete the job ${id}? Its active runs are stopped.`, 'Delete');
    if (!yes) return;
    deleteButton.disabled = true;
    try {
      await api.send('metronome', `${jobPath(id)}?stopCurrentJobRuns=true`, undefined, 'DELETE');
      stop();
      window.location.hash = '#/jobs';
    } catch (e) {
      replace(actions, notice('bad', `The job could not be deleted: ${e.message}`));
      deleteButton.disabled = false;
    }
  }

  return () => stop();
}
