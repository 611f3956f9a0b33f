// Building the page: elements from plain calls (text always as text, never parsed as HTML),
// formatting of the cluster's units, tables, form fields and dialogs shared by every page.

let nextId = 0;

/** A fresh element id with `prefix`. */
export function uid(prefix = 'f') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * Whether `url` may be a link's or image's target: this app's hashes, paths on this origin,
 * or http(s). Anything else a cluster's data could carry (`javascript:`, `data:`) is not.
 */
function safeUrl(url) {
  const s = String(url).trim();
  return !/^[a-z][a-z0-9+.-]*:/i.test(s) || /^https?:/i.test(s);
}

function setProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if ((key === 'href' || key === 'src') && !safeUrl(value)) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

/** An HTML element: `h('a', {href: '#/x', class: 'y'}, 'text', child, [more])`. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

/** An SVG element, for charts. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** Replaces `el`'s children with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * Replaces `el`'s children only when what they show changed, so a redraw every 2 s neither
 * flickers nor takes away what a user is pointing at or has focused.
 */
export function update(el, ...children) {
  const next = document.createElement('div');
  append(next, children);
  const html = next.innerHTML;
  const last = rendered.get(el);
  // Unchanged only if the element still holds what update put there (not replaced since).
  if (last && last.html === html && last.first === el.firstChild) return;
  el.replaceChildren(...next.childNodes);
  rendered.set(el, { html, first: el.firstChild });
}

/** What `update` last put in each element: its HTML and first node. */
const rendered = new WeakMap();

// --- Formatting -----------------------------------------------------------------------------

/** Megabytes (Mesos' unit for mem and disk) for people: "512 MiB", "1.5 GiB". */
export function mib(value) {
  const n = Number(value) || 0;
  if (n >= 1024 * 1024) return `${trim(n / 1024 / 1024)} TiB`;
  if (n >= 1024) return `${trim(n / 1024)} GiB`;
  return `${trim(n)} MiB`;
}

/** Bytes for people. */
export function bytes(value) {
  const n = Number(value) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${trim(n / 1024)} KiB`;
  return mib(n / 1024 / 1024);
}

/** A number with at most two decimals. */
export function trim(n) {
  return String(Math.round((Number(n) || 0) * 100) / 100);
}

/** `used` of `total` as a whole percentage. */
export function percent(used, total) {
  return total > 0 ? Math.round((100 * used) / total) : 0;
}

/**
 * A time as a local date: seconds or milliseconds since the epoch, or an ISO 8601 text
 * (Metronome's `+0000` zones included). Stable between live redraws, unlike "5 s ago".
 */
export function when(t, empty = '—') {
  if (t === null || t === undefined || t === '') return empty;
  let ms = NaN;
  if (typeof t === 'number') ms = t < 1e11 ? t * 1000 : t;
  else ms = Date.parse(String(t).replace(/([+-]\d\d)(\d\d)$/, '$1:$2'));
  return Number.isFinite(ms) ? new Date(ms).toLocaleString() : String(t);
}

// --- Pieces ---------------------------------------------------------------------------------

/** A coloured status label; `kind` is ok, warn, bad, info or empty. */
export function badge(text, kind = '') {
  return h('span', { class: ['badge', kind] }, text);
}

/** The badge of a Mesos task state. */
export function taskStateBadge(state) {
  const s = String(state || '').replace(/^TASK_/, '');
  const kind = {
    RUNNING: 'ok', FINISHED: 'info', STAGING: 'warn', STARTING: 'warn', KILLING: 'warn',
    FAILED: 'bad', KILLED: 'bad', LOST: 'bad', ERROR: 'bad', DROPPED: 'bad', GONE: 'bad',
    UNREACHABLE: 'bad', UNKNOWN: 'bad',
  }[s] || '';
  return badge(s || 'unknown', kind);
}

/** A box with a message: kind is bad, warn, info or ok. */
export function notice(kind, ...content) {
  return h('div', { class: ['notice', kind], role: kind === 'bad' ? 'alert' : 'status' }, content);
}

/** The hash of an item's page: `hashTo('services/detail', '/web')` is `#/services/detail/%2Fweb`. */
export function hashTo(route, id) {
  return `#/${route}/${encodeURIComponent(id)}`;
}

/** A link to an item's page (see `hashTo`). */
export function linkTo(route, id, text = id, props = {}) {
  return h('a', { href: hashTo(route, id), ...props }, text);
}

/**
 * A failed request in words: when the component itself is missing (Admin Router answered for
 * it), the page says the component is not available rather than that the request failed.
 */
export function failureNotice(e, component, lead = '') {
  return notice('bad', e && e.unavailable
    ? `${component} is not available on this cluster: ${e.message}`
    : `${lead}${e ? e.message : ''}`);
}

/** The notice of an item that does not exist, with a way back. */
export function notFoundNotice(text, backLabel, backHref) {
  return notice('warn', text, backLabel ? [' ', h('a', { href: backHref }, backLabel)] : null);
}

/** A healthy/unhealthy/unknown badge (`data-health` holds its word). */
export function healthBadge(healthy, words = ['Healthy', 'Unhealthy', 'Unknown']) {
  const [yes, no, unknown] = words;
  const el = healthy === null || healthy === undefined
    ? badge(unknown) : healthy ? badge(yes, 'ok') : badge(no, 'bad');
  el.dataset.health = el.textContent;
  return el;
}

/** Runs `fn` with `button` disabled, so a form cannot be sent twice. */
export async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } finally {
    button.disabled = false;
  }
}

/** A horizontal bar of `used` of `total`, labelled for screen readers. */
export function bar(used, total, kind = '', label = '') {
  const pct = percent(used, total);
  const fill = h('span');
  fill.style.width = `${Math.min(100, pct)}%`;
  return h('div', {
    class: ['bar', kind], role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': pct, 'aria-label': label || `${pct}%`, title: `${pct}%`,
  }, fill);
}

/**
 * A table: `columns` are `{title, cell(row) -> node|string, num}`; `rows` are anything.
 * `empty` is shown in place of no rows; `rowProps(row)` gives a row's attributes (the
 * `data-*` hooks the tests find rows by).
 */
export function table(columns, rows, empty = 'Nothing here yet.', props = {}, rowProps = null) {
  const head = h('tr', null, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.title)));
  const body = rows.length
    ? rows.map((r) => h('tr', rowProps ? rowProps(r) : null, columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(r)))))
    : h('tr', null, h('td', { class: 'empty', colspan: columns.length }, empty));
  return h('table', props, h('thead', null, head), h('tbody', null, body));
}

/** Term/definition pairs. */
export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

/** Pretty JSON in a block. */
export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/**
 * A labelled form field around `input` (given an id if it has none), with optional help text.
 * The returned element has `setError(messages)`, which shows messages under the input and
 * marks it invalid for assistive technology.
 */
export function field(label, input, help = '') {
  if (!input.id) input.id = uid('field');
  const error = h('div', { class: 'error', id: `${input.id}-error`, 'aria-live': 'polite' });
  const helpEl = help ? h('div', { class: 'help', id: `${input.id}-help` }, help) : null;
  if (helpEl) input.setAttribute('aria-describedby', helpEl.id);
  const wrap = h('div', { class: 'field' }, h('label', { for: input.id }, label), input, helpEl, error);
  wrap.setError = (messages) => {
    const list = [].concat(messages || []).filter(Boolean);
    error.textContent = list.join(' ');
    wrap.classList.toggle('invalid', list.length > 0);
    if (list.length) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-errormessage', error.id);
    } else {
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-errormessage');
    }
  };
  return wrap;
}

/** A checkbox with its label beside it. */
export function checkbox(label, checked = false, props = {}) {
  const input = h('input', { type: 'checkbox', id: uid('check'), checked, ...props });
  const wrap = h('div', { class: 'field' }, h('label', { class: 'check', for: input.id }, input, label));
  wrap.input = input;
  return wrap;
}

/** A button: `kind` is primary, danger or empty. */
export function button(label, onClick, kind = '', props = {}) {
  return h('button', { type: 'button', class: kind || null, onclick: onClick, ...props }, label);
}

/** Page heading, focusable so navigation can move focus to it. */
export function heading(text, ...extra) {
  return h('h1', { tabindex: '-1' }, text, extra);
}

/** "Services / web": links back up. */
export function crumbs(...parts) {
  const out = [];
  parts.forEach((p, i) => {
    if (i) out.push(' / ');
    out.push(Array.isArray(p) ? h('a', { href: p[1] }, p[0]) : p);
  });
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, out);
}

/** A tab list whose tabs call `onSelect(key)`; arrow keys move between tabs. */
export function tabs(items, selected, onSelect) {
  const list = h('div', { class: 'tabs', role: 'tablist' });
  const buttons = items.map(([key, label]) => h('button', {
    type: 'button', role: 'tab', 'aria-selected': String(key === selected),
    tabindex: key === selected ? '0' : '-1', dataset: { tab: key },
    onclick: () => select(key),
  }, label));
  function select(key) {
    for (const b of buttons) {
      const on = b.dataset.tab === key;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      if (on) b.focus();
    }
    onSelect(key);
  }
  list.addEventListener('keydown', (e) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0 || (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft')) return;
    const next = buttons[(i + (e.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
    select(next.dataset.tab);
    e.preventDefault();
  });
  append(list, buttons);
  return list;
}

function modal(title, body, actions) {
  const dialog = h('dialog', { 'aria-label': title }, h('h2', null, title), body, h('div', { class: 'actions' }, actions));
  document.body.appendChild(dialog);
  dialog.addEventListener('close', () => dialog.remove());
  dialog.showModal();
  return dialog;
}

/** Asks a yes/no question; resolves true when confirmed. */
export function confirmDialog(title, text, confirmLabel = 'Confirm', kind = 'danger') {
  return new Promise((resolve) => {
    let answer = false;
    const dialog = modal(title, h('p', null, text), [
      button('Cancel', () => dialog.close()),
      button(confirmLabel, () => { answer = true; dialog.close(); }, kind, { 'data-confirm': '' }),
    ]);
    dialog.addEventListener('close', () => resolve(answer));
  });
}

/** Asks for one value; resolves to it, or null when cancelled. */
export function promptDialog(title, label, value = '', type = 'text') {
  return new Promise((resolve) => {
    let answer = null;
    const input = h('input', { type, value: String(value) });
    const form = h('form', { method: 'dialog' }, field(label, input));
    const dialog = modal(title, form, [
      button('Cancel', () => dialog.close()),
      button('OK', () => { answer = input.value; dialog.close(); }, 'primary', { 'data-confirm': '' }),
    ]);
    form.addEventListener('submit', () => { answer = input.value; });
    dialog.addEventListener('close', () => resolve(answer));
    input.select();
  });
}

/** A small line chart of `values` (0..max) as inline SVG. */
export function sparkline(values, max = 100, label = '') {
  const w = 300;
  const hgt = 80;
  const n = values.length;
  const x = (i) => (n <= 1 ? w : (i * w) / (n - 1));
  const y = (v) => hgt - (Math.min(max, Math.max(0, v)) / (max || 1)) * (hgt - 4) - 2;
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  const line = points.length ? `M${points.join(' L')}` : '';
  const area = points.length ? `${line} L${x(n - 1).toFixed(1)},${hgt} L0,${hgt} Z` : '';
  return svg('svg', { class: 'chart', viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label },
    svg('line', { class: 'axis', x1: 0, y1: hgt - 1, x2: w, y2: hgt - 1 }),
    area ? svg('path', { class: 'area', d: area }) : null,
    line ? svg('path', { class: 'line', d: line }) : null);
}

/**
 * Form and JSON tabs over one definition: opening the JSON tab shows `toJson()` (the
 * form's definition); going back gives the parsed object to `fromJson(def)`, which fills the
 * form. JSON that is not one object (or that `fromJson` cannot show) keeps the JSON tab open
 * with the reason under its field. `parse()` reads the JSON tab the same way (for submits).
 * Shared by the service and job forms; it belongs in dom.js.
 */
export function formJsonTabs(formContent, jsonField, jsonInput, { what, toJson, fromJson }) {
  let mode = 'form';
  const formPanel = h('div', { role: 'tabpanel', 'aria-label': 'Form' }, formContent);
  const jsonPanel = h('div', { role: 'tabpanel', 'aria-label': 'JSON', hidden: true }, jsonField);

  function parse() {
    let value = null;
    let why = null;
    try {
      value = JSON.parse(jsonInput.value);
      if (!value || typeof value !== 'object' || Array.isArray(value)) why = `${what} must be one JSON object.`;
    } catch (e) {
      why = `${what} is not valid JSON: ${e.message}`;
    }
    jsonField.setError(why ? [why] : []);
    return why ? null : value;
  }

  function fromJsonTab() {
    const def = parse();
    if (!def) return false;
    try {
      fromJson(def);
      return true;
    } catch (e) {
      jsonField.setError(`${what} cannot be shown in the form: ${e.message}`);
      return false;
    }
  }

  const tabList = tabs([['form', 'Form'], ['json', 'JSON']], 'form', (key) => {
    if (key === mode) return;
    if (key === 'json') {
      jsonInput.value = JSON.stringify(toJson(), null, 2);
      jsonField.setError([]);
    } else if (!fromJsonTab()) {
      // Back to the JSON tab (selecting it again is a no-op), the reason under the field.
      tabList.querySelector('[data-tab=json]').click();
      return;
    }
    mode = key;
    formPanel.hidden = key !== 'form';
    jsonPanel.hidden = key !== 'json';
  });

  return { tabList, formPanel, jsonPanel, parse, mode: () => mode };
}
