// Jobs: Metronome's jobs through Admin Router (`/service/metronome`): the list with each job's
// schedule and last run, a form (or JSON) creating a job and its schedule, and a job's page
// with its definition, schedules, active runs and run history. Lists are live.

import {
  h, replace, update, trim, mib, badge, notice, field, button, heading, crumbs, kv, json,
  confirmDialog, taskStateBadge, table, when, hashTo, linkTo, failureNotice, notFoundNotice, busy,
  formJsonTabs,
} from '../dom.js';
import * as api from '../api.js';
import { live, liveSection } from '../poll.js';

const LIST_EMBEDS = '?embed=activeRuns&embed=schedules&embed=historySummary';
const DETAIL_EMBEDS = '?embed=activeRuns&embed=schedules&embed=history';

const jobPath = (id) => `/v1/jobs/${api.segment(id)}`;

const RUN_KINDS = { SUCCESS: 'ok', FAILED: 'bad', ACTIVE: 'info', STARTING: 'warn', INITIAL: 'warn' };

/** A run's status as Metronome names it (`SUCCESS`, `FAILED`, `ACTIVE`...). */
function runStatus(status) {
  return h('span', { class: ['badge', RUN_KINDS[status] || ''], 'data-run-status': status }, status);
}

/**
 * A Metronome time (`2026-12-07T22:19:37.882+0000`) in ms, for sorting and durations (its
 * zone lacks the colon ISO wants); dom's `when` shows times.
 */
function millis(s) {
  return s ? Date.parse(String(s).replace(/([+-]\d\d)(\d\d)$/, '$1:$2')) : NaN;
}

const newestFirst = (key) => (a, b) => (millis(b[key]) || 0) - (millis(a[key]) || 0);

function duration(from, to) {
  const ms = millis(to) - millis(from);
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = ms / 1000;
  if (s < 60) return `${trim(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

// --- List -----------------------------------------------------------------------------------

/** The last run of a listed job: an active one, else the later of the last success and failure. */
function lastRun(job) {
  const active = [...(job.activeRuns || [])].sort(newestFirst('createdAt'));
  if (active.length) return { status: active[0].status, at: active[0].createdAt };
  const s = job.historySummary || {};
  const ok = millis(s.lastSuccessAt);
  const bad = millis(s.lastFailureAt);
  if (Number.isFinite(ok) && !(bad > ok)) return { status: 'SUCCESS', at: s.lastSuccessAt };
  if (Number.isFinite(bad)) return { status: 'FAILED', at: s.lastFailureAt };
  return null;
}

function scheduleText(job) {
  const s = (job.schedules || [])[0];
  if (!s) return '—';
  return [h('code', null, s.cron), ` ${s.timezone || 'UTC'}`, s.enabled === false ? [' ', badge('Disabled')] : null];
}

const LIST_COLUMNS = [
  { title: 'Job', cell: (j) => [linkTo('jobs/detail', j.id), j.description ? h('div', { class: 'muted small' }, j.description) : null] },
  { title: 'Command', cell: (j) => (j.run && j.run.cmd ? h('code', { class: 'cmd' }, j.run.cmd) : h('span', { class: 'muted' }, (j.run && j.run.docker && j.run.docker.image) || '—')) },
  { title: 'Schedule', cell: scheduleText },
  {
    title: 'Last run',
    cell: (j) => {
      const last = lastRun(j);
      return last ? [badge(last.status, RUN_KINDS[last.status]), ' ', h('span', { class: 'muted small' }, when(last.at))] : h('span', { class: 'muted' }, 'Never run');
    },
  },
];

export function renderList(root) {
  const body = h('div');
  replace(root, heading('Jobs'),
    h('div', { class: 'toolbar' }, h('a', { class: 'button primary', href: '#/jobs/new' }, 'Create a Job')),
    body);
  return liveSection(body, async () => {
    const jobs = await api.get('metronome', `/v1/jobs${LIST_EMBEDS}`);
    const list = Array.isArray(jobs) ? [...jobs].sort((a, b) => a.id.localeCompare(b.id)) : [];
    return table(LIST_COLUMNS, list, 'No jobs yet. Create a Job to run a command once or on a schedule.',
      { class: 'jobs' }, (j) => ({ 'data-job-id': j.id }));
  }, 'Metronome');
}

// --- Create: the form -----------------------------------------------------------------------

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

/** The job form's inputs and their labelled fields, and the JSON tab's. */
function jobInputs() {
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
    json: h('textarea', { name: 'definition', spellcheck: 'false' }),
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
    json: field('Job definition (JSON)', inputs.json, 'The Metronome job; "schedules" (optional) are created after it.'),
  };
  return { inputs, fields };
}

/** The Form tab: the fields in their groups. */
function jobFormLayout(fields) {
  return [
    h('fieldset', null, h('legend', null, 'General'), fields.id, fields.description),
    h('fieldset', null, h('legend', null, 'Run'), fields.cmd,
      h('div', { class: 'row' }, fields.cpus, fields.mem, fields.disk), fields.image),
    h('fieldset', null, h('legend', null, 'Schedule'), h('div', { class: 'row' }, fields.cron, fields.timezone), zoneList()),
  ];
}

/**
 * The job of the form: `base` (what the JSON tab held, so keys without a field survive a
 * round trip) with the fields laid over it; a cron makes its first schedule.
 */
function jobFromForm(inputs, base) {
  const job = structuredClone(base);
  const old = Array.isArray(job.schedules) ? job.schedules[0] : null;
  const oldSchedule = old && typeof old === 'object' ? old : {};
  delete job.schedules;
  const text = (k) => inputs[k].value.trim();
  job.id = text('id');
  if (text('description')) job.description = inputs.description.value;
  else delete job.description;
  const run = job.run && typeof job.run === 'object' ? { ...job.run } : {};
  if (text('cmd')) run.cmd = inputs.cmd.value;
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
      id: 'default', enabled: true, concurrencyPolicy: 'ALLOW', ...oldSchedule,
      cron: text('cron'), timezone: text('timezone') || 'UTC',
    }];
  }
  return job;
}

/** Shows a job definition in the form. */
function fillJobForm(inputs, def) {
  const run = def.run && typeof def.run === 'object' ? def.run : {};
  const first = Array.isArray(def.schedules) ? def.schedules[0] : null;
  const schedule = first && typeof first === 'object' ? first : {};
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

/**
 * What is wrong with a definition's `schedules`, checked here because Metronome would only
 * refuse them after creating the job: `{cron, timezone}` or `{other}` messages, or null.
 */
function scheduleErrors(schedules) {
  if (!Array.isArray(schedules)) return { other: '"schedules" must be a list of schedules.' };
  for (const s of schedules) {
    if (!s || typeof s !== 'object' || Array.isArray(s)) {
      return { other: 'Each schedule in "schedules" must be a JSON object, such as {"cron": "0 * * * *"}.' };
    }
    const errors = { cron: cronProblem(String(s.cron ?? '').trim()), timezone: zoneProblem(String(s.timezone || 'UTC')) };
    if (errors.cron || errors.timezone) return errors;
  }
  return null;
}

/** Creates job `job`, or replaces it (`again`: an earlier submit created it). */
function saveJob(job, again) {
  return again
    ? api.send('metronome', jobPath(job.id), job, 'PUT')
    : api.send('metronome', '/v1/jobs', job);
}

/** Adds the schedules of job `id`. */
async function addSchedules(id, schedules) {
  for (const s of schedules) {
    await api.send('metronome', `${jobPath(id)}/schedules`, { id: 'default', enabled: true, concurrencyPolicy: 'ALLOW', ...s });
  }
}

// --- Create: the page -----------------------------------------------------------------------

export function renderCreate(root) {
  const { inputs, fields } = jobInputs();
  const message = h('div');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create Job');
  let disposed = false;
  // What the JSON tab held, so keys the form has no field for survive a round trip.
  let base = {};
  // A job created by an earlier submit whose schedule failed: a resubmit updates it.
  let created = null;
  const sync = formJsonTabs(jobFormLayout(fields), fields.json, inputs.json, {
    what: 'The job definition',
    toJson: () => jobFromForm(inputs, base),
    fromJson: (def) => {
      fillJobForm(inputs, def);
      base = def;
    },
  });
  const inForm = () => sync.mode() === 'form';

  function clearErrors() {
    for (const f of Object.values(fields)) f.setError([]);
    replace(message);
  }

  /** Metronome's refusal: `details` under their fields (in the form), the rest on top. */
  function showErrors(e, lead) {
    const rest = [];
    let first = null;
    for (const [p, msgs] of Object.entries(typeof e.fieldErrors === 'function' ? e.fieldErrors() : {})) {
      const key = inForm() ? FIELD_OF_PATH[p] : null;
      if (key) {
        fields[key].setError(msgs);
        first = first || inputs[key];
      } else {
        rest.push(p ? `${p}: ${msgs.join(' ')}` : msgs.join(' '));
      }
    }
    // An id already taken is about the id.
    if (e.status === 409 && inForm() && !/schedule/i.test(e.message)) {
      fields.id.setError(e.message);
      first = inputs.id;
    }
    const box = lead ? notice('bad', lead) : failureNotice(e, 'Metronome');
    if (rest.length) box.append(h('ul', null, rest.map((r) => h('li', null, r))));
    replace(message, box);
    (first || message).scrollIntoView({ block: 'center' });
    if (first) first.focus();
  }

  function showScheduleErrors(errors) {
    if (inForm()) {
      fields.cron.setError(errors.cron);
      fields.timezone.setError(errors.timezone);
      (errors.cron ? inputs.cron : inputs.timezone).focus();
    } else {
      fields.json.setError([errors.other, errors.cron, errors.timezone]);
      inputs.json.focus();
    }
  }

  async function createJob() {
    clearErrors();
    const def = inForm() ? jobFromForm(inputs, base) : sync.parse();
    if (!def) {
      inputs.json.focus();
      return;
    }
    const { schedules = [], ...job } = def;
    const wrong = scheduleErrors(schedules);
    if (wrong) {
      showScheduleErrors(wrong);
      return;
    }
    const id = String(job.id ?? '');
    try {
      await saveJob(job, created !== null && created === id);
      created = id;
    } catch (e) {
      showErrors(e);
      return;
    }
    try {
      await addSchedules(id, schedules);
    } catch (e) {
      showErrors(e, [`The job ${id} was created, but its schedule was not: ${e.message}. Fix it and submit again, or `,
        linkTo('jobs/detail', id, 'open the job'), '.']);
      return;
    }
    if (!disposed) window.location.hash = hashTo('jobs/detail', id);
  }

  const form = h('form', { class: 'form', novalidate: true }, message, sync.tabList, sync.formPanel, sync.jsonPanel,
    h('div', { class: 'toolbar' }, submit, h('a', { class: 'button', href: '#/jobs' }, 'Cancel')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(submit, createJob).catch((err) => showErrors(err));
  });
  replace(root, crumbs(['Jobs', '#/jobs'], 'Create a Job'), heading('Create a Job'), form);
  return () => { disposed = true; };
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
      run.docker ? ['Container image', h('code', null, run.docker.image || '—')] : null,
      run.restart ? ['Restart policy', run.restart.policy] : null,
      run.maxLaunchDelay ? ['Max launch delay', `${run.maxLaunchDelay} s`] : null,
    ]),
    h('details', { class: 'definition' }, h('summary', null, 'Job definition (JSON)'), json(definition)),
  ];
}

function schedulesView(job) {
  return table([
    { title: 'ID', cell: (s) => s.id },
    { title: 'Cron', cell: (s) => h('code', null, s.cron) },
    { title: 'Time zone', cell: (s) => s.timezone || 'UTC' },
    { title: 'Enabled', cell: (s) => (s.enabled === false ? badge('Disabled') : badge('Enabled', 'ok')) },
    { title: 'Concurrency', cell: (s) => s.concurrencyPolicy || '—' },
    { title: 'Next run', cell: (s) => (s.enabled === false ? '—' : when(s.nextRunAt)) },
  ], job.schedules || [], 'No schedule: the job runs only when started.', {}, (s) => ({ 'data-schedule-id': s.id }));
}

function activeView(job) {
  const runs = [...(job.activeRuns || [])].sort(newestFirst('createdAt'));
  return table([
    { title: 'Run', cell: (r) => h('code', null, r.id) },
    { title: 'Status', cell: (r) => runStatus(r.status) },
    { title: 'Started', cell: (r) => when(r.createdAt) },
    {
      title: 'Tasks',
      cell: (r) => ((r.tasks || []).length
        ? r.tasks.map((t) => h('div', null, linkTo('tasks', t.id), ' ', taskStateBadge(t.status)))
        : h('span', { class: 'muted' }, 'Waiting for an offer')),
    },
  ], runs, 'No active runs.', {}, (r) => ({ 'data-run-id': r.id }));
}

function historyView(job) {
  const hist = job.history || {};
  const runs = [
    ...(hist.successfulFinishedRuns || []).map((r) => ({ ...r, status: 'SUCCESS' })),
    ...(hist.failedFinishedRuns || []).map((r) => ({ ...r, status: 'FAILED' })),
  ].sort(newestFirst('finishedAt'));
  return [
    h('p', { class: 'muted' }, `${hist.successCount || 0} successful, ${hist.failureCount || 0} failed.`),
    table([
      { title: 'Run', cell: (r) => h('code', null, r.id) },
      { title: 'Status', cell: (r) => runStatus(r.status) },
      { title: 'Started', cell: (r) => when(r.createdAt) },
      { title: 'Finished', cell: (r) => when(r.finishedAt) },
      { title: 'Duration', cell: (r) => duration(r.createdAt, r.finishedAt) },
    ], runs, 'No finished runs yet.', {}, (r) => ({ 'data-run-id': r.id })),
  ];
}

export function renderDetail(root, [id]) {
  const message = h('div');
  const actions = h('div');
  const parts = { definition: h('div'), schedules: h('div'), active: h('div'), history: h('div') };
  let disposed = false;
  const runButton = button('Run now', () => busy(runButton, runNow), 'primary');
  const deleteButton = button('Delete', () => busy(deleteButton, remove), 'danger');
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
  const stop = live(load, (e) => {
    if (e && e.status === 404 && !e.unavailable) {
      // Gone for good (Metronome said so): asking again every 2 s would only fill the log.
      stop();
      replace(root, crumbs(['Jobs', '#/jobs'], id), heading(id),
        notFoundNotice(`There is no job ${id}.`, 'Back to Jobs', '#/jobs'));
      return;
    }
    update(message, e ? failureNotice(e, 'Metronome') : null);
  });

  async function runNow() {
    try {
      const run = await api.send('metronome', `${jobPath(id)}/runs`, {});
      replace(actions, notice('ok', `Started run ${run && run.id ? run.id : ''}.`));
      // Load now rather than at the next tick; a no-op once the page is left.
      stop.now();
    } catch (e) {
      replace(actions, notice('bad', `The job could not be started: ${e.message}`));
    }
  }

  async function remove() {
    const yes = await confirmDialog('Delete Job', `Delete the job ${id}? Its active runs are stopped.`, 'Delete');
    if (!yes) return;
    try {
      await api.send('metronome', `${jobPath(id)}?stopCurrentJobRuns=true`, undefined, 'DELETE');
      if (disposed) return;
      stop();
      window.location.hash = '#/jobs';
    } catch (e) {
      replace(actions, notice('bad', `The job could not be deleted: ${e.message}`));
    }
  }

  return () => {
    disposed = true;
    stop();
  };
}
