// A form built from a JSON schema (a package's options: draft 4, as Universe writes them):
// nested objects as fieldsets, each property a labelled field of its type with its default
// filled in. `value()` reads back an options object of typed values; `setErrors()` shows
// errors by JSON pointer (`/service/name`) under their fields.

import { h, field, uid } from '../dom.js';

/** A property name as a JSON pointer segment. */
const segment = (name) => String(name).replace(/~/g, '~0').replace(/\//g, '~1');

/** The schema's type: the first that is not null; guessed from properties or the default. */
function typeOf(schema) {
  let t = schema.type;
  if (Array.isArray(t)) t = t.find((x) => x !== 'null');
  if (t) return t;
  if (schema.properties) return 'object';
  const d = schema.default;
  if (typeof d === 'boolean') return 'boolean';
  if (typeof d === 'number') return Number.isInteger(d) ? 'integer' : 'number';
  if (Array.isArray(d)) return 'array';
  if (d && typeof d === 'object') return 'object';
  return 'string';
}

/** A labelled field, marked required (class for the visual mark, aria for the rest). */
function labelled(label, input, schema, required) {
  const wrap = field(label, input, schema.description || '');
  if (required) {
    wrap.classList.add('required');
    input.setAttribute('aria-required', 'true');
  }
  return wrap;
}

function stringNode(ctx) {
  const { schema, value } = ctx;
  const input = h('input', {
    type: 'text', value: value === undefined || value === null ? '' : String(value),
    maxlength: schema.maxLength, spellcheck: 'false',
  });
  const wrap = labelled(ctx.label, input, schema, ctx.required);
  return {
    element: wrap,
    setError: wrap.setError,
    // Empty is left out (the package's default applies) unless the user cleared a default.
    read: () => (input.value === '' && !ctx.required && !('default' in schema) ? undefined : input.value),
  };
}

function numberNode(ctx) {
  const { schema, value } = ctx;
  const integer = ctx.type === 'integer';
  const input = h('input', {
    type: 'number', value: typeof value === 'number' ? String(value) : '',
    min: schema.minimum, max: schema.maximum, step: integer ? '1' : 'any',
    inputmode: integer ? 'numeric' : 'decimal',
  });
  const wrap = labelled(ctx.label, input, schema, ctx.required);
  return {
    element: wrap,
    setError: wrap.setError,
    read: () => (input.value === '' ? undefined : Number(input.value)),
  };
}

function booleanNode(ctx) {
  const input = h('input', { type: 'checkbox', checked: ctx.value === true });
  const wrap = field(ctx.label, input, ctx.schema.description || '');
  // The box before its words, inside the label, as checkboxes read best.
  const label = wrap.querySelector('label');
  label.classList.add('check');
  label.prepend(input);
  return { element: wrap, setError: wrap.setError, read: () => input.checked };
}

function enumNode(ctx) {
  const choices = ctx.schema.enum;
  const at = choices.findIndex((c) => JSON.stringify(c) === JSON.stringify(ctx.value));
  const blank = !ctx.required && at < 0;
  const select = h('select', null,
    blank ? h('option', { value: '' }, '') : null,
    choices.map((c, i) => h('option', { value: String(i), selected: i === at }, c === null ? 'null' : String(c))));
  const wrap = labelled(ctx.label, select, ctx.schema, ctx.required);
  return {
    element: wrap,
    setError: wrap.setError,
    read: () => (select.value === '' ? undefined : choices[Number(select.value)]),
  };
}

/** Arrays and free-form objects: edited as JSON. */
function jsonNode(ctx) {
  const { value } = ctx;
  const area = h('textarea', { class: 'short', spellcheck: 'false' });
  area.value = value === undefined ? '' : JSON.stringify(value, null, 2);
  const help = [ctx.schema.description, `JSON (${ctx.type}).`].filter(Boolean).join(' ');
  const wrap = labelled(ctx.label, area, { description: help }, ctx.required);
  return {
    element: wrap,
    setError: wrap.setError,
    read: () => {
      if (area.value.trim() === '') return undefined;
      try {
        return JSON.parse(area.value);
      } catch (e) {
        wrap.setError(`This is not valid JSON: ${e.message}`);
        area.focus();
        throw new Error(`${ctx.label} is not valid JSON.`);
      }
    },
  };
}

function objectNode(ctx, fields) {
  const { schema, value, depth } = ctx;
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const children = Object.entries(schema.properties || {}).map(([name, sub]) => [name, node({
    schema: sub || {}, name, pointer: `${ctx.pointer}/${segment(name)}`, depth: depth + 1,
    value: value && typeof value === 'object' ? value[name] : undefined, required: required.has(name),
  }, fields)]);
  const error = h('div', { class: 'error', id: uid('fieldset-error'), 'aria-live': 'polite' });
  const parts = [
    depth > 0 && schema.description ? h('p', { class: 'help' }, schema.description) : null,
    error, children.map(([, c]) => c.element),
  ];
  const element = depth === 0
    ? h('div', { class: 'schema-form' }, parts)
    : h('fieldset', { 'aria-describedby': error.id }, h('legend', null, ctx.label), parts);
  return {
    element,
    setError: (msgs) => {
      error.textContent = [].concat(msgs || []).filter(Boolean).join(' ');
      element.classList.toggle('invalid', error.textContent !== '');
    },
    read: () => {
      const out = {};
      for (const [name, child] of children) {
        const v = child.read();
        if (v !== undefined) out[name] = v;
      }
      return depth === 0 || Object.keys(out).length ? out : undefined;
    },
  };
}

/** The node of one property; every node is registered by its pointer for setErrors(). */
function node(ctx, fields) {
  const { schema } = ctx;
  const type = typeOf(schema);
  const full = {
    ...ctx, type, label: schema.title || ctx.name,
    value: ctx.value !== undefined ? ctx.value : schema.default,
  };
  let made;
  if (type === 'object' && schema.properties) made = objectNode(full, fields);
  else if (Array.isArray(schema.enum) && schema.enum.length) made = enumNode(full);
  else if (type === 'boolean') made = booleanNode(full);
  else if (type === 'number' || type === 'integer') made = numberNode(full);
  else if (type === 'string') made = stringNode(full);
  else made = jsonNode(full);
  if (ctx.depth > 0) fields.set(ctx.pointer, made);
  return made;
}

/**
 * The form of `schema` with `values` (else the schema's defaults) filled in:
 * `{element, value(), setErrors(fieldErrors)}`. `value()` throws an Error when a JSON-edited
 * field does not parse (the reason is shown under it). `setErrors({'/service/name': [msg]})`
 * shows each message under its field (or fieldset), focuses the first, and returns the
 * errors no field matched (`''` is the whole document) for the caller to show.
 */
export function schemaForm(schema, values = {}) {
  const fields = new Map();
  const root = node({ schema: schema || {}, name: '', pointer: '', depth: 0, value: values || {}, required: true }, fields);
  return {
    element: root.element,
    value: () => root.read() || {},
    setErrors(fieldErrors) {
      for (const f of fields.values()) f.setError([]);
      const rest = {};
      for (const [p, msgs] of Object.entries(fieldErrors || {})) {
        const f = fields.get(p);
        if (f) f.setError(msgs);
        else rest[p] = msgs;
      }
      // The first invalid control in the page's order.
      root.element.querySelector('.invalid :is(input, select, textarea)')?.focus();
      return rest;
    },
  };
}
