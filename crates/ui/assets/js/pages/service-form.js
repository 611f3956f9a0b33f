// Running and editing a service: a form for the common fields and the whole app definition as
// JSON, kept in sync when switching tabs. POST /v2/apps creates, PUT /v2/apps/<id> saves;
// Marathon's 422 `details` show under the fields they are about.

import { h, replace, notice, field, checkbox, heading, crumbs, tabs } from '../dom.js';
import * as api from '../api.js';
import { canonicalId, appPath, detailHash, cleanDefinition, findApp, marathonError } from './services.js';

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

function explain(path, msg) {
  const words = MESSAGES[msg];
  if (!words) return msg;
  let more = '';
  if (path === '/id' && msg === 'error.pattern') more = ` ${ID_RULE}`;
  if (msg === 'error.min' && MINIMA[path] !== undefined) more = ` It must be at least ${MINIMA[path]}.`;
  return `${words[0].toUpperCase()}${words.slice(1)} (${msg}).${more}`;
}

/** The form's inputs, labelled as the tests and the DC/OS UI name them. */
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
    ports: field('Host ports', inputs.ports, 'How many ports to take on the agent ($PORT0, $PORT1, …).'),
    health,
    healthPath: field('Health check path', inputs.healthPath, 'Checked with HTTP GET on the first host port.'),
    json: field('App definition (JSON)', inputs.json, 'The whole Marathon app definition; the form edits its common fields.'),
  };
  return { inputs, fields };
}

const isHttpCheck = (c) => /HTTP/.test(String(c && c.protocol));

/** Shows a definition in the form. */
function fillForm(inputs, def) {
  const image = def.container && def.container.docker && def.container.docker.image;
  const check = (def.healthChecks || []).find(isHttpCheck);
  const text = (v) => (v === undefined || v === null ? '' : String(v));
  inputs.id.value = text(def.id);
  inputs.cmd.value = text(def.cmd);
  inputs.image.value = text(image);
  inputs.cpus.value = text(def.cpus);
  inputs.mem.value = text(def.mem);
  inputs.disk.value = text(def.disk);
  inputs.instances.value = text(def.instances);
  inputs.ports.value = String(Array.isArray(def.portDefinitions) ? def.portDefinitions.length : 1);
  inputs.health.checked = Boolean(check);
  inputs.healthPath.value = (check && check.path) || '/';
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
 * labels, constraints, …) is kept. A field emptied while editing is sent as null, because a
 * PUT keeps whatever it does not mention.
 */
function applyForm(inputs, def, edit) {
  const d = structuredClone(def);
  const clear = (key) => {
    if (edit) d[key] = null;
    else delete d[key];
  };
  const id = inputs.id.value.trim();
  if (id) d.id = id;
  else delete d.id;
  const cmd = inputs.cmd.value.trim();
  if (cmd) d.cmd = cmd;
  else if (d.cmd !== undefined) clear('cmd');
  applyImage(d, inputs.image.value.trim(), clear);
  for (const key of ['cpus', 'mem', 'disk', 'instances']) {
    const v = number(inputs[key]);
    if (v === '') delete d[key]; // Marathon's default (or, when editing, the value it has).
    else d[key] = v;
  }
  const ports = portCount(inputs);
  if (ports !== null) {
    const old = Array.isArray(d.portDefinitions) ? d.portDefinitions : [];
    d.portDefinitions = Array.from({ length: ports }, (_, i) => old[i] || { port: 0, protocol: 'tcp' });
  }
  const others = (d.healthChecks || []).filter((c) => !isHttpCheck(c));
  if (inputs.health.checked) {
    const old = (d.healthChecks || []).find(isHttpCheck) || {};
    const path = inputs.healthPath.value.trim() || '/';
    d.healthChecks = [{ ...old, protocol: old.protocol || 'MESOS_HTTP', path, portIndex: old.portIndex ?? 0 }, ...others];
  } else if (others.length || edit) {
    d.healthChecks = others;
  } else {
    delete d.healthChecks;
  }
  return d;
}

/** Sets or removes the container image: {type: MESOS, docker: {image}}. */
function applyImage(d, image, clear) {
  if (image) {
    const c = d.container || {};
    d.container = { ...c, type: c.type || 'MESOS', docker: { ...(c.docker || {}), image } };
    return;
  }
  if (!d.container || !d.container.docker) return;
  delete d.container.docker;
  // A container that held nothing but its image goes with it.
  const rest = Object.entries(d.container)
    .filter(([k, v]) => k !== 'type' && !(Array.isArray(v) && v.length === 0));
  if (!rest.length) clear('container');
}

/** Which form field a Marathon error path is about (null: the top notice). */
function fieldOf(path) {
  const exact = { '/id': 'id', '/cmd': 'cmd', '/cpus': 'cpus', '/mem': 'mem', '/disk': 'disk', '/instances': 'instances', '/container/docker/image': 'image' };
  if (exact[path]) return exact[path];
  if (path.startsWith('/portDefinitions')) return 'ports';
  return null;
}

function renderForm(root, { edit, def: initial }) {
  const { inputs, fields } = makeInputs(edit);
  let def = initial;
  let tab = 'form';
  const top = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, edit ? 'Save' : 'Deploy');
  const formPanel = h('div', { role: 'tabpanel', 'aria-label': 'Form' },
    h('fieldset', null, h('legend', null, 'Service'), fields.id, fields.cmd, fields.image),
    h('fieldset', null, h('legend', null, 'Resources'),
      h('div', { class: 'row' }, fields.cpus, fields.mem, fields.disk, fields.instances)),
    h('fieldset', null, h('legend', null, 'Networking'), fields.ports),
    h('fieldset', null, h('legend', null, 'Health check'), fields.health, fields.healthPath));
  const jsonPanel = h('div', { role: 'tabpanel', 'aria-label': 'JSON', hidden: true }, fields.json);
  const tabSlot = h('div');
  const form = h('form', { class: 'form', novalidate: true }, top, tabSlot, formPanel, jsonPanel,
    h('div', { class: 'toolbar' }, submit,
      h('a', { class: 'button', href: edit ? detailHash(def.id) : '#/services' }, 'Cancel')));

  const clearErrors = () => {
    for (const f of Object.values(fields)) if (f.setError) f.setError([]);
    replace(top);
  };
  const syncHealth = () => { inputs.healthPath.disabled = !inputs.health.checked; };
  inputs.health.addEventListener('change', syncHealth);

  /** The JSON tab's definition, or null (with the reason shown) when it is not JSON. */
  function parseJson() {
    try {
      const value = JSON.parse(inputs.json.value);
      if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('it must be one JSON object');
      return value;
    } catch (e) {
      const text = `The app definition is not valid JSON: ${e.message}`;
      fields.json.setError(text);
      replace(top, notice('bad', text));
      return null;
    }
  }

  function show(key) {
    tab = key;
    formPanel.hidden = key !== 'form';
    jsonPanel.hidden = key !== 'json';
    replace(tabSlot, tabs([['form', 'Form'], ['json', 'JSON']], key, select));
  }

  function select(key) {
    if (key === tab) return;
    if (key === 'json') {
      def = applyForm(inputs, def, edit);
      inputs.json.value = JSON.stringify(def, null, 2);
      fields.json.setError([]);
    } else {
      const parsed = parseJson();
      if (!parsed) {
        show('json');
        tabSlot.querySelector('[aria-selected=true]').focus();
        return;
      }
      def = parsed;
      fillForm(inputs, def);
      syncHealth();
      replace(top);
    }
    show(key);
    tabSlot.querySelector('[aria-selected=true]').focus();
  }

  function showErrors(e) {
    const byField = e.fieldErrors();
    const rest = [];
    for (const [path, msgs] of Object.entries(byField)) {
      const key = fieldOf(path);
      const words = msgs.map((m) => explain(path, m));
      if (key && tab === 'form') fields[key].setError(words);
      else rest.push(...words.map((w) => `${path || '/'}: ${w}`));
    }
    if (!Object.keys(byField).length) {
      replace(top, notice('bad', e.message));
    } else if (rest.length) {
      replace(top, notice('bad', `Marathon refused the definition (${e.message}):`, h('ul', null, rest.map((r) => h('li', null, r)))));
    } else {
      replace(top, notice('bad', `Marathon refused the definition (${e.message}): see the fields below.`));
    }
  }

  async function save(body, force = false) {
    submit.disabled = true;
    try {
      if (edit) {
        // The app edited, whatever id the JSON tab may say.
        await api.send('marathon', appPath(initial.id, force ? '?force=true' : ''), body, 'PUT');
        window.location.hash = detailHash(initial.id);
      } else {
        const app = await api.send('marathon', '/v2/apps', body, 'POST');
        window.location.hash = detailHash((app && app.id) || body.id);
      }
    } catch (e) {
      if (e.status === 409 && edit && !force) {
        replace(top, notice('bad', e.message, ' ',
          h('button', { type: 'button', class: 'danger', onclick: () => save(body, true) }, 'Save anyway')));
      } else {
        showErrors(e);
        const invalid = form.querySelector('[aria-invalid=true]');
        if (invalid && !invalid.closest('[hidden]')) invalid.focus();
      }
    } finally {
      submit.disabled = false;
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors();
    let body;
    if (tab === 'json') {
      body = parseJson();
      if (!body) return;
      def = body;
    } else {
      if (portCount(inputs) === null) {
        fields.ports.setError('Enter how many host ports the service needs: 0 or more.');
        inputs.ports.focus();
        return;
      }
      body = applyForm(inputs, def, edit);
      def = body;
    }
    save(body);
  });

  fillForm(inputs, def);
  syncHealth();
  show('form');
  const title = edit ? `Edit ${def.id}` : 'Run a Service';
  replace(root,
    edit ? crumbs(['Services', '#/services'], [def.id, detailHash(def.id)], 'Edit') : crumbs(['Services', '#/services'], 'Run a Service'),
    heading(title), form);
}

export function renderCreate(root) {
  renderForm(root, { edit: false, def: structuredClone(DEFAULTS) });
}

export function renderEdit(root, params) {
  const id = canonicalId(params[0]);
  let stopped = false;
  replace(root, crumbs(['Services', '#/services'], id), heading(`Edit ${id}`), h('p', { class: 'muted' }, 'Loading…'));
  (async () => {
    try {
      const app = await findApp(id);
      if (stopped) return;
      if (!app) {
        replace(root, crumbs(['Services', '#/services'], id), heading(`Edit ${id}`),
          notice('bad', `There is no service ${id}: it may have been destroyed, or the address is wrong.`),
          h('p', null, h('a', { href: '#/services' }, 'Back to Services')));
        return;
      }
      renderForm(root, { edit: true, def: cleanDefinition(app) });
    } catch (e) {
      if (!stopped) replace(root, crumbs(['Services', '#/services'], id), heading(`Edit ${id}`), marathonError(e));
    }
  })();
  return () => { stopped = true; };
}
