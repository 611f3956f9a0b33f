// Running and editing a service: a form for the common fields and the whole app definition as
// JSON, kept in sync when switching tabs. POST /v2/apps creates; PUT /v2/apps/<id> with
// `partialUpdate=false` saves the whole definition (so what the form cleared is gone);
// Marathon's 422 `details` show under the fields they are about.

import {
  h, replace, notice, field, checkbox, heading, crumbs, button, hashTo, failureNotice, busy,
  formJsonTabs,
} from '../dom.js';
import * as api from '../api.js';
import { canonicalId, cleanDefinition, findApp, notFoundPage } from './services.js';

const DEFAULTS = {
  id: '', cmd: '', cpus: 0.1, mem: 128, disk: 0, instances: 1,
  portDefinitions: [{ port: 0, protocol: 'tcp' }],
};

// Marathon's type errors are Play's message keys: said in words, the key kept for searching.
const MESSAGES = {
  'error.pattern': 'is not in the expected form',
  'error.min': 'is below the minimum',
  'error.max': 'is above the maximum',
  'error.minLength': 'is too short',
  'error.maxLength': 'is too long',
  'error.path.missing': 'is required',
  'error.expected.jsnumber': 'must be a number',
  'error.expected.int': 'must be a whole number',
  'error.expected.long': 'must be a whole number',
  'error.expected.jsstring': 'must be text',
  'error.expected.jsboolean': 'must be true or false',
  'error.expected.jsarray': 'must be a list',
  'error.expected.jsobject': 'must be an object',
  'error.expected.enum': 'is not one of the allowed values',
  'error.unknown.enum.literal': 'is not one of the allowed values',
};
const ID_RULE = 'Use lowercase letters, digits, "-" and ".", in path segments such as /my-group/my-service.';

// Marathon's minimum of the form's numbers, for saying what `error.min` means.
const MINIMA = { '/cpus': 0.001, '/mem': 0, '/disk': 0, '/instances': 0 };

const PORTS_HELP = 'How many ports to take on the agent ($PORT0, $PORT1, …).';
const PORTS_HELP_CONTAINER = 'This service is on a container network: its ports are the port mappings of its container (JSON tab).';

function explain(path, msg) {
  const words = MESSAGES[msg];
  if (!words) return msg;
  let more = '';
  if (path === '/id' && msg === 'error.pattern') more = ` ${ID_RULE}`;
  if (msg === 'error.min' && MINIMA[path] !== undefined) more = ` It must be at least ${MINIMA[path]}.`;
  return `${words[0].toUpperCase()}${words.slice(1)} (${msg}).${more}`;
}

/** What a definition's JSON holds where a list or an object belongs, read safely. */
const list = (v) => (Array.isArray(v) ? v : []);
const object = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});

/** The form's inputs and fields, labelled as the tests and the DC/OS UI name them. */
function makeInputs(edit) {
  const num = (props) => h('input', { type: 'number', ...props });
  const inputs = {
    id: h('input', { type: 'text', name: 'id', placeholder: '/my-service', autocomplete: 'off', readonly: edit, spellcheck: 'false' }),
    cmd: h('input', { type: 'text', name: 'cmd', placeholder: 'python3 -m http.server $PORT0', autocomplete: 'off', spellcheck: 'false' }),
    image: h('input', { type: 'text', name: 'image', placeholder: 'library/nginx:1.25', autocomplete: 'off', spellcheck: 'false' }),
    cpus: num({ name: 'cpus', step: 'any' }),
    mem: num({ name: 'mem', step: 'any' }),
    disk: num({ name: 'disk', step: 'any' }),
    instances: num({ name: 'instances', step: '1' }),
    ports: num({ name: 'ports', step: '1' }),
    healthPath: h('input', { type: 'text', name: 'healthPath', autocomplete: 'off' }),
    json: h('textarea', { name: 'json', spellcheck: 'false', rows: 20 }),
  };
  const health = checkbox('HTTP health check');
  inputs.health = health.input;
  const fields = {
    id: field('Service ID', inputs.id, edit ? 'The ID of a service cannot change.' : 'Where the service lives, such as /my-service or /my-group/my-service.'),
    cmd: field('Command', inputs.cmd, 'Run by the shell; $PORT0 is the first host port.'),
    image: field('Container image', inputs.image, 'Optional: a Docker image to run in a Mesos container.'),
    cpus: field('CPUs', inputs.cpus),
    mem: field('Memory (MiB)', inputs.mem),
    disk: field('Disk (MiB)', inputs.disk),
    instances: field('Instances', inputs.instances),
    ports: field('Host ports', inputs.ports, PORTS_HELP),
    health,
    healthPath: field('Health check path', inputs.healthPath, 'Checked with HTTP GET on the first host port.'),
    json: field('App definition (JSON)', inputs.json, 'The whole Marathon app definition; the form edits its common fields.'),
  };
  inputs.health.addEventListener('change', () => { inputs.healthPath.disabled = !inputs.health.checked; });
  // `filledPorts`: the ports field as last filled, so that an untouched field leaves the
  // definition's port definitions as they are.
  return { inputs, fields, filledPorts: '' };
}

/** The Form tab: the fields in their groups. */
function formLayout({ fields }) {
  return [
    h('fieldset', null, h('legend', null, 'Service'), fields.id, fields.cmd, fields.image),
    h('fieldset', null, h('legend', null, 'Resources'),
      h('div', { class: 'row' }, fields.cpus, fields.mem, fields.disk, fields.instances)),
    h('fieldset', null, h('legend', null, 'Networking'), fields.ports),
    h('fieldset', null, h('legend', null, 'Health check'), fields.health, fields.healthPath),
  ];
}

const isHttpCheck = (c) => /HTTP/.test(String(c && c.protocol));

/**
 * Whether the app uses the agent's network (ports as `portDefinitions`); on a container or
 * bridge network its ports are the container's `portMappings`, which the form does not edit.
 */
function hostNetworking(def) {
  const modes = list(def.networks).map((n) => object(n).mode || 'host');
  const docker = object(object(def.container).docker).network;
  return modes.every((m) => m === 'host') && (!docker || docker === 'HOST');
}

/** Shows a definition in the form. */
function fillForm(ui, def) {
  const { inputs, fields } = ui;
  const image = object(object(def.container).docker).image;
  const check = list(def.healthChecks).find(isHttpCheck);
  const text = (v) => (v === undefined || v === null ? '' : String(v));
  inputs.id.value = text(def.id);
  inputs.cmd.value = text(def.cmd);
  inputs.image.value = text(image);
  inputs.cpus.value = text(def.cpus);
  inputs.mem.value = text(def.mem);
  inputs.disk.value = text(def.disk);
  inputs.instances.value = text(def.instances);
  const host = hostNetworking(def);
  inputs.ports.value = host ? String(Array.isArray(def.portDefinitions) ? def.portDefinitions.length : 1) : '';
  inputs.ports.disabled = !host;
  fields.ports.querySelector('.help').textContent = host ? PORTS_HELP : PORTS_HELP_CONTAINER;
  ui.filledPorts = inputs.ports.value;
  inputs.health.checked = Boolean(check);
  inputs.healthPath.value = (check && check.path) || '/';
  inputs.healthPath.disabled = !inputs.health.checked;
}

/** A number typed in a field; what is not a number goes as typed, for Marathon to refuse;
 * an empty field is ''. */
function number(input) {
  const v = input.value.trim();
  return v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
}

/** How many host ports the form asks for, or null when that is not a count. */
function portCount(inputs) {
  const n = Number(inputs.ports.value.trim() || 'x');
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/**
 * The definition `def` with the form's fields laid over it: what the form does not show (env,
 * labels, constraints, …) is kept. A field emptied removes its key: the whole definition is
 * sent (also when saving), so a missing key is Marathon's default.
 */
function applyForm(ui, def) {
  const { inputs } = ui;
  const d = structuredClone(def);
  const set = (key, v) => {
    if (v === '') delete d[key];
    else d[key] = v;
  };
  set('id', inputs.id.value.trim());
  set('cmd', inputs.cmd.value.trim());
  applyImage(d, inputs.image.value.trim());
  for (const key of ['cpus', 'mem', 'disk', 'instances']) set(key, number(inputs[key]));
  const ports = portCount(inputs);
  if (hostNetworking(d) && inputs.ports.value !== ui.filledPorts && ports !== null) {
    const old = list(d.portDefinitions);
    d.portDefinitions = Array.from({ length: ports }, (_, i) => old[i] || { port: 0, protocol: 'tcp' });
  }
  const checks = list(d.healthChecks);
  const others = checks.filter((c) => !isHttpCheck(c));
  if (inputs.health.checked) {
    const old = object(checks.find(isHttpCheck));
    const path = inputs.healthPath.value.trim() || '/';
    d.healthChecks = [{ ...old, protocol: old.protocol || 'MESOS_HTTP', path, portIndex: old.portIndex ?? 0 }, ...others];
  } else if (others.length || d.healthChecks !== undefined) {
    // No checks is a list, not a missing key: said so also to a Marathon that merges.
    d.healthChecks = others;
  } else {
    delete d.healthChecks;
  }
  return d;
}

/** Sets or removes the container image: {type: MESOS, docker: {image}}. */
function applyImage(d, image) {
  const c = object(d.container);
  if (image) {
    d.container = { ...c, type: c.type || 'MESOS', docker: { ...object(c.docker), image } };
    return;
  }
  if (!c.docker) return;
  delete c.docker;
  // A container that held nothing but its image goes with it.
  const rest = Object.entries(c).filter(([k, v]) => k !== 'type' && !(Array.isArray(v) && v.length === 0));
  if (!rest.length) delete d.container;
}

/** Which form field a Marathon error path is about (null: the top notice). */
function fieldOf(path) {
  const exact = { '/id': 'id', '/cmd': 'cmd', '/cpus': 'cpus', '/mem': 'mem', '/disk': 'disk', '/instances': 'instances', '/container/docker/image': 'image' };
  if (exact[path]) return exact[path];
  if (path.startsWith('/portDefinitions')) return 'ports';
  return null;
}

/**
 * Marathon's refusal: in the Form tab each `details` path under its field, the rest (and
 * all of them in the JSON tab) listed in `top`. Focuses the first field in error.
 */
function showMarathonErrors(e, ui, top, inForm) {
  const byField = typeof e.fieldErrors === 'function' ? e.fieldErrors() : {};
  const rest = [];
  for (const [path, msgs] of Object.entries(byField)) {
    const key = fieldOf(path);
    const words = msgs.map((m) => explain(path, m));
    if (key && inForm) ui.fields[key].setError(words);
    else rest.push(...words.map((w) => `${path || '/'}: ${w}`));
  }
  if (!Object.keys(byField).length) {
    replace(top, failureNotice(e, 'Marathon'));
  } else if (rest.length) {
    replace(top, notice('bad', `Marathon refused the definition (${e.message}):`, h('ul', null, rest.map((r) => h('li', null, r)))));
  } else {
    replace(top, notice('bad', `Marathon refused the definition (${e.message}): see the fields below.`));
  }
  const invalid = inForm ? top.closest('form').querySelector('[aria-invalid=true]') : null;
  if (invalid) invalid.focus();
}

/**
 * Creates the app (POST) or saves app `id` whole (PUT, `force` past a deployment in the
 * way); resolves to the id of its page.
 */
async function saveApp(edit, id, body, force = false) {
  if (edit) {
    const query = `?partialUpdate=false${force ? '&force=true' : ''}`;
    await api.send('marathon', `/v2/apps/${api.appPath(id)}${query}`, body, 'PUT');
    return id;
  }
  const app = await api.send('marathon', '/v2/apps', body, 'POST');
  return canonicalId((app && app.id) || body.id);
}

function renderForm(root, { edit, def: initial, page }) {
  const ui = makeInputs(edit);
  let def = initial;
  const top = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, edit ? 'Save' : 'Deploy');
  const sync = formJsonTabs(formLayout(ui), ui.fields.json, ui.inputs.json, {
    what: 'The app definition',
    toJson: () => {
      def = applyForm(ui, def);
      return def;
    },
    fromJson: (parsed) => {
      fillForm(ui, parsed);
      def = parsed;
      replace(top);
    },
  });
  const form = h('form', { class: 'form', novalidate: true }, top, sync.tabList, sync.formPanel, sync.jsonPanel,
    h('div', { class: 'toolbar' }, submit,
      h('a', { class: 'button', href: edit ? hashTo('services/detail', initial.id) : '#/services' }, 'Cancel')));

  function clearErrors() {
    for (const f of Object.values(ui.fields)) if (f.setError) f.setError([]);
    replace(top);
  }

  async function save(body, force = false) {
    try {
      const id = await saveApp(edit, initial.id, body, force);
      // The page may have been left while Marathon answered.
      if (!page.disposed) window.location.hash = hashTo('services/detail', id);
    } catch (e) {
      if (e.status === 409 && edit && !force) {
        replace(top, notice('bad', e.message, ' ', button('Save anyway', (ev) => busy(ev.currentTarget, () => save(body, true))
          .catch((err) => replace(top, notice('bad', err.message))), 'danger')));
      } else {
        showMarathonErrors(e, ui, top, sync.mode() === 'form');
      }
    }
  }

  async function submitForm() {
    clearErrors();
    if (sync.mode() === 'json') {
      const body = sync.parse();
      if (!body) {
        ui.inputs.json.focus();
        return;
      }
      def = body;
      await save(body);
      return;
    }
    if (!ui.inputs.ports.disabled && portCount(ui.inputs) === null) {
      ui.fields.ports.setError('Enter how many host ports the service needs: 0 or more.');
      ui.inputs.ports.focus();
      return;
    }
    await save(applyForm(ui, def));
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(submit, submitForm).catch((err) => replace(top, notice('bad', err.message)));
  });

  fillForm(ui, def);
  replace(root,
    edit ? crumbs(['Services', '#/services'], [def.id, hashTo('services/detail', def.id)], 'Edit') : crumbs(['Services', '#/services'], 'Run a Service'),
    heading(edit ? `Edit ${def.id}` : 'Run a Service'), form);
}

export function renderCreate(root) {
  const page = { disposed: false };
  renderForm(root, { edit: false, def: structuredClone(DEFAULTS), page });
  return () => { page.disposed = true; };
}

export function renderEdit(root, params) {
  const id = canonicalId(params[0]);
  const page = { disposed: false };
  replace(root, crumbs(['Services', '#/services'], id), heading(`Edit ${id}`), h('p', { class: 'muted' }, 'Loading…'));
  (async () => {
    try {
      // The definition only: what Marathon adds to show an app is left out anyway.
      const app = await findApp(id, '');
      if (page.disposed) return;
      if (!app) notFoundPage(root, id, `Edit ${id}`);
      else renderForm(root, { edit: true, def: cleanDefinition(app), page });
    } catch (e) {
      if (!page.disposed) replace(root, crumbs(['Services', '#/services'], id), heading(`Edit ${id}`), failureNotice(e, 'Marathon'));
    }
  })();
  return () => { page.disposed = true; };
}
